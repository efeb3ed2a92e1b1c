"""Drawings of architectures: the NB201 cell as a small graph, any other space as a row of layer boxes.

``draw_arch(arch, space)`` dispatches on the space name (``space.name`` of the run's config) to a drawer
registered with :func:`register_drawer`; spaces without one get :func:`draw_layer_row`. Drawers raise
ValueError for an architecture they cannot read; :func:`draw_arch` lets it propagate so the report can
say why a drawing is missing.
"""
from __future__ import annotations

import re
from typing import Callable, Optional

from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch

from .plots import new_figure, to_png, _cmap

Drawer = Callable[[str], bytes]
_DRAWERS: dict[str, Drawer] = {}

# NB201 ops: short label and colour per op.
NB201_STYLE: dict[str, tuple[str, str]] = {
    "none": ("none", "#b8bec8"),
    "skip_connect": ("skip", "#6b7280"),
    "nor_conv_1x1": ("conv1x1", "#2f6db5"),
    "nor_conv_3x3": ("conv3x3", "#c8423b"),
    "avg_pool_3x3": ("pool3x3", "#3a8f5c"),
}
_MAX_BOXES = 64


_LEGENDS: dict[str, Callable[[], str]] = {}


def register_drawer(space: str, legend: Optional[Callable[[], str]] = None) -> Callable[[Drawer], Drawer]:
    """Decorator: ``fn(arch) -> PNG bytes`` draws architectures of the space called ``space``; ``legend()``
    (optional) returns the HTML that explains the drawing's marks, shown once above the drawings."""
    def deco(fn: Drawer) -> Drawer:
        _DRAWERS[space] = fn
        if legend is not None:
            _LEGENDS[space] = legend
        return fn
    return deco


def drawing_legend(space: Optional[str]) -> Optional[str]:
    """The HTML legend of ``space``'s drawings (None: its drawings need none, or it has no drawer)."""
    fn = _LEGENDS.get(space or "")
    return fn() if fn is not None else None


def draw_arch(arch: str, space: Optional[str] = None) -> bytes:
    """PNG drawing of ``arch`` for the space named ``space`` (a row of boxes if no drawer is registered)."""
    drawer = _DRAWERS.get(space or "")
    if drawer is not None:
        return drawer(arch)
    return draw_layer_row(arch, space)


def _nb201_legend() -> str:
    """Each op's label in its colour, and what faint / faded edges mean."""
    from html import escape
    ops = " ".join(f'<span style="color:{col};font-weight:600">{escape(lbl)}</span> = {escape(op)}'
                   for op, lbl, col in op_legend() if op != "none")
    return (f"Nodes 0 (input) to 3 (output); each arrow is an edge j→i with its op: {ops}. Faint dashed: none; "
            "faded dotted: dead edge (cannot reach the output).")


@register_drawer("nb201", legend=_nb201_legend)
def draw_nb201_cell(arch: str) -> bytes:
    """The NB201 cell: nodes 0..3 in a row, one curved arrow per non-``none`` edge, labelled and coloured by op.

    ``none`` edges are drawn faint and dashed without a label; edges that cannot affect the output (dead,
    see ``NB201Space.live_edges``) are drawn faded and dotted, labelled "(dead)".
    """
    from ..spaces import get
    from ..spaces.nb201 import EDGES, NUM_NODES, OPS

    space = get("nb201")
    ops = space.decode(arch)  # ValueError for a malformed string
    live = space.live_edges(arch)

    step = 2.0
    pos = {i: (i * step, 0.0) for i in range(NUM_NODES)}
    fig_w, fig_h = 4.2, 2.15
    fig = new_figure(fig_w, fig_h, dpi=130, layout=None)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    x_lo, x_hi = -0.4, (NUM_NODES - 1) * step + 0.4
    y_span = (x_hi - x_lo) * fig_h / fig_w  # equal scale on both axes, so arc3 curves are symmetric
    y_mid = 0.22
    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(y_mid - y_span / 2, y_mid + y_span / 2)

    radius = 0.25
    circles = {}
    for i, (x, y) in pos.items():
        io_node = i in (0, NUM_NODES - 1)
        c = Circle((x, y), radius, facecolor="#1f2a3c" if io_node else "#ffffff", edgecolor="#1f2a3c",
                   linewidth=1.6, zorder=4)
        ax.add_patch(c)
        circles[i] = c
        ax.text(x, y, str(i), ha="center", va="center", fontsize=10.5, fontweight="bold", zorder=5,
                color="#ffffff" if io_node else "#1f2a3c")
    ax.text(pos[0][0], -radius - 0.12, "input", ha="center", va="top", fontsize=8, color="#5d6678")
    ax.text(pos[NUM_NODES - 1][0], -radius - 0.12, "output", ha="center", va="top", fontsize=8, color="#5d6678")

    # curvature per (target, source): neighbours straight, 2-spans above/below, the 3-span high above.
    rads = {(1, 0): 0.0, (2, 1): 0.0, (3, 2): 0.0, (2, 0): -0.34, (3, 1): 0.34, (3, 0): -0.46}
    for e, (tgt, src) in enumerate(EDGES):
        name = OPS[ops[e]]
        label, color = NB201_STYLE.get(name, (name, "#333333"))
        rad = rads.get((tgt, src), -0.3)
        (x0, y0), (x1, y1) = pos[src], pos[tgt]
        if name == "none":
            style = dict(arrowstyle="-", linestyle=(0, (3, 3)), color="#c3c8d0", linewidth=0.9, alpha=0.8)
        elif live[e]:
            style = dict(arrowstyle="-|>", color=color, linewidth=2.0, mutation_scale=13)
        else:
            style = dict(arrowstyle="-|>", color=color, linewidth=1.4, mutation_scale=11, alpha=0.45,
                         linestyle=(0, (1, 2)))
        arrow = FancyArrowPatch((x0, y0), (x1, y1), connectionstyle=f"arc3,rad={rad}", patchA=circles[src],
                                patchB=circles[tgt], zorder=2 if name == "none" else 3, **style)
        ax.add_patch(arrow)
        if name == "none":
            continue
        # arc3 puts its control point at mid + rad * (dy, -dx); the curve's midpoint is halfway there.
        mx, my = (x0 + x1) / 2, (y0 + y1) / 2
        lx, ly = mx + rad * (y1 - y0) / 2, my - rad * (x1 - x0) / 2
        text = label if live[e] else f"{label}\n(dead)"
        ax.text(lx, ly, text, ha="center", va="center", fontsize=8.5, linespacing=0.95, color=color, zorder=6,
                alpha=1.0 if live[e] else 0.7, fontweight="bold" if live[e] else "normal",
                bbox=dict(boxstyle="round,pad=0.18", facecolor="white", edgecolor="none", alpha=0.92))
    return to_png(fig)


def _tokens(arch: str) -> list[str]:
    """Layer choices of a plain architecture string: digits one per character, else split on separators."""
    s = str(arch).strip()
    if re.fullmatch(r"[0-9]+", s):
        return list(s)
    parts = [p for p in re.split(r"[\s,;|:/+\-]+", s) if p]
    return parts if len(parts) > 1 else list(s)


def draw_layer_row(arch: str, space: Optional[str] = None) -> bytes:
    """A row of boxes, one per layer/decision, labelled with its choice (e.g. NAS-Bench-Macro ``02012100``).

    When ``space`` is a registered nshot space, the choice names come from its ``decode`` and ``choices``;
    otherwise the string itself is split (one box per digit, or per separated token).
    """
    labels: Optional[list[str]] = None
    keys: Optional[list[int]] = None
    if space:
        try:
            from ..spaces import get
            sp = get(space)
            idx = sp.decode(arch)
            labels = [str(sp.choices[d][c]) for d, c in enumerate(idx)]
            keys = list(idx)
        except Exception:  # unknown space or unreadable arch: fall back to the string itself
            labels = None
    if labels is None:
        labels = _tokens(arch)
    if not labels:
        raise ValueError(f"cannot draw an empty architecture {arch!r}")
    if len(labels) > _MAX_BOXES:
        raise ValueError(f"architecture has {len(labels)} layers; drawing at most {_MAX_BOXES}")
    if keys is None:
        uniq = sorted(set(labels), key=lambda v: (len(v), v))
        keys = [int(v) if v.isdigit() else uniq.index(v) for v in labels]  # digits: same colour in every drawing
    n = len(labels)
    longest = max(len(v) for v in labels)
    box_w = max(1.0, 0.16 * longest + 0.4)
    gap = 0.18
    width = n * box_w + (n - 1) * gap
    fig = new_figure(min(12.0, max(2.6, 0.42 * width + 0.4)), 1.25, dpi=120, layout=None)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    ax.set_xlim(-0.2, width + 0.2)
    ax.set_ylim(-0.35, 1.55)
    cmap = _cmap("tab10")
    for i, (lbl, k) in enumerate(zip(labels, keys)):
        x = i * (box_w + gap)
        color = cmap(k % 10)
        ax.add_patch(FancyBboxPatch((x, 0), box_w, 1.0, boxstyle="round,pad=0,rounding_size=0.12",
                                    facecolor=(*color[:3], 0.22), edgecolor=color, linewidth=1.4))
        ax.text(x + box_w / 2, 0.5, lbl, ha="center", va="center", fontsize=10, color="#1d2330",
                fontweight="bold", parse_math=False)
        ax.text(x + box_w / 2, 1.12, f"L{i + 1}", ha="center", va="bottom", fontsize=7.5, color="#5d6678")
        if i < n - 1:
            ax.annotate("", xy=(x + box_w + gap, 0.5), xytext=(x + box_w, 0.5),
                        arrowprops=dict(arrowstyle="-", color="#9aa3b2", linewidth=1.0))
    return to_png(fig)


def op_legend() -> list[tuple[str, str, str]]:
    """(op name, short label, colour) of the NB201 drawing, for a legend in the page."""
    return [(op, lbl, col) for op, (lbl, col) in NB201_STYLE.items()]


__all__ = ["NB201_STYLE", "draw_arch", "drawing_legend", "draw_layer_row", "draw_nb201_cell", "op_legend", "register_drawer"]
