"""The report's plots, rendered to PNG bytes with matplotlib's Agg canvas.

Figures are built as ``matplotlib.figure.Figure`` objects with their own ``FigureCanvasAgg``: pyplot is never
imported, so no backend is selected, no figure is registered with pyplot's manager and ``rcParams`` are left
untouched for the caller's own plotting. Every text drawn from data (labels, metric names) is drawn with
``parse_math=False`` so a ``$`` in a string cannot break rendering.
"""
from __future__ import annotations

import io
import math
from typing import Any, Optional, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .html import fmt_compact, fmt_num, to_float

DPI = 110
GRID = "#e4e7ec"
BLUE = "#2f6db5"
ORANGE = "#d9772b"
GREEN = "#3a8f5c"
RED = "#c8423b"
MUTED = "#5d6678"


def new_figure(width: float, height: float, dpi: int = DPI, layout: Optional[str] = "constrained") -> Figure:
    """A figure attached to its own Agg canvas (no pyplot, no global backend)."""
    fig = Figure(figsize=(width, height), dpi=dpi, layout=layout, facecolor="white")
    FigureCanvasAgg(fig)
    return fig


def to_png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi, facecolor="white", metadata={"Software": None})
    return buf.getvalue()


def style_axes(ax, grid: bool = True) -> None:
    if grid:
        ax.grid(True, color=GRID, linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color("#9aa3b2")
    ax.tick_params(colors="#333a46", labelsize=9)


def _label(ax, title: Optional[str] = None, xlabel: Optional[str] = None, ylabel: Optional[str] = None) -> None:
    if title:
        ax.set_title(title, fontsize=11, loc="left", color="#1d2330", parse_math=False)
    if xlabel:
        ax.set_xlabel(xlabel, fontsize=9.5, color="#333a46", parse_math=False)
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=9.5, color="#333a46", parse_math=False)


def _floats(values: Sequence[Any]) -> np.ndarray:
    return np.asarray([to_float(v) for v in values], dtype=float)


def _marker(n: int) -> Optional[str]:
    return "o" if n <= 40 else None


def training_curves(epochs: Sequence[Any], loss: Sequence[Any], acc: Sequence[Any]) -> bytes:
    """Two panels: training loss and training accuracy against epoch."""
    x, yl, ya = _floats(epochs), _floats(loss), _floats(acc)
    fig = new_figure(10.0, 3.5)
    ax1, ax2 = fig.subplots(1, 2)
    for ax, y, color, title, ylabel in ((ax1, yl, BLUE, "Training loss", "loss (mean over the epoch)"),
                                       (ax2, ya, ORANGE, "Training accuracy", "train accuracy (%)")):
        style_axes(ax)
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.any():
            ax.plot(x[ok], y[ok], color=color, linewidth=1.8, marker=_marker(int(ok.sum())), markersize=3.5)
        else:
            _empty(ax)
        _label(ax, title, "epoch", ylabel)
    return to_png(fig)


def _epoch_line(epochs: Sequence[Any], values: Sequence[Any], color: str, label: Optional[str] = None):
    """(figure, axes, drawn): one line of the finite (epoch, value) pairs, or an empty-plot note."""
    x, y = _floats(epochs), _floats(values)
    fig = new_figure(5.2, 3.3)
    ax = fig.subplots()
    style_axes(ax)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.any():
        ax.plot(x[ok], y[ok], color=color, linewidth=1.8, marker=_marker(int(ok.sum())), markersize=3.5, label=label)
    else:
        _empty(ax)
    return fig, ax, bool(ok.any())


def lr_curve(epochs: Sequence[Any], lr: Sequence[Any], planned: Optional[tuple[Sequence[float], Sequence[float]]] = None
             ) -> bytes:
    """The learning rate actually used (mean over each epoch) against epoch."""
    fig, ax, _ = _epoch_line(epochs, lr, GREEN, label="used (epoch mean)")
    ax.set_ylim(bottom=0)
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 4))
    _label(ax, "Learning rate", "epoch", "learning rate")
    return to_png(fig)


def loss_by_quintile(epochs: Sequence[Any], rows: Sequence[Sequence[Any]]) -> bytes:
    """Training loss by complexity quintile: one line per quintile (Q1 = smallest architectures)."""
    x = _floats(epochs)
    k = max(len(r) for r in rows)
    data = np.full((len(rows), k), np.nan)
    for i, r in enumerate(rows):
        data[i, :len(r)] = _floats(r)
    fig = new_figure(5.2, 3.3)
    ax = fig.subplots()
    style_axes(ax)
    cmap = _cmap("viridis")
    for q in range(k):
        y = data[:, q]
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.any():
            ax.plot(x[ok], y[ok], color=cmap(0.1 + 0.8 * q / max(k - 1, 1)), linewidth=1.6,
                    marker=_marker(int(ok.sum())), markersize=3, label=f"Q{q + 1}")
    if ax.lines:
        ax.legend(fontsize=7.5, frameon=False, loc="upper right", title="quintile", title_fontsize=7.5)
    else:
        _empty(ax)
    _label(ax, "Training loss by complexity quintile", "epoch", "loss")
    return to_png(fig)


def rank_scatter(score: Sequence[float], truth: Sequence[float], params: Optional[Sequence[float]] = None,
                 truth_label: str = "benchmark truth", highlight: Optional[int] = None,
                 title: Optional[str] = None) -> bytes:
    """Supernet score against benchmark truth, one dot per architecture, coloured by log10(params)."""
    s, t = _floats(score), _floats(truth)
    fig = new_figure(7.2, 5.0)
    ax = fig.subplots()
    style_axes(ax)
    ok = np.isfinite(s) & np.isfinite(t)
    n = int(ok.sum())
    size = 26 if n <= 200 else 12 if n <= 2000 else 5
    p = _floats(params) if params is not None else None
    if p is not None and np.isfinite(p[ok]).any() and (p[ok] > 0).any():
        with np.errstate(divide="ignore", invalid="ignore"):
            c = np.where(p > 0, np.log10(np.where(p > 0, p, 1.0)), np.nan)
        has_c = ok & np.isfinite(c)
        no_c = ok & ~np.isfinite(c)
        sc = ax.scatter(t[has_c], s[has_c], c=c[has_c], cmap=_cmap("viridis"), s=size, alpha=0.85,
                        linewidths=0, rasterized=n > 5000)
        if no_c.any():
            ax.scatter(t[no_c], s[no_c], color="#b0b6c0", s=size, linewidths=0, label="params unknown")
        cb = fig.colorbar(sc, ax=ax, pad=0.01, fraction=0.05)
        cb.set_label("log10(params)", fontsize=9.5)
        cb.ax.tick_params(labelsize=8.5)
    elif n:
        ax.scatter(t[ok], s[ok], color=BLUE, s=size, alpha=0.8, linewidths=0)
    if highlight is not None and 0 <= highlight < len(s) and ok[highlight]:
        ax.scatter([t[highlight]], [s[highlight]], marker="*", s=260, facecolor="none", edgecolor=RED,
                   linewidths=1.6, label="top-1 by supernet score", zorder=5)
    if not n:
        _empty(ax)
    if any(h.get_label() and not h.get_label().startswith("_") for h in ax.collections):
        ax.legend(fontsize=8.5, frameon=True, framealpha=0.9, edgecolor="none", loc="best")
    _label(ax, title or "Supernet score vs benchmark truth", truth_label, "supernet score")
    return to_png(fig)


def fairness_bars(labels: Sequence[str], tau: Sequence[Any], mean_error: Sequence[Any]) -> bytes:
    """Kendall tau per complexity bin (left) and mean error per bin (right); NaN bins are marked n/a."""
    tv, ev = _floats(tau), _floats(mean_error)
    x = np.arange(len(labels))
    fig = new_figure(10.0, 3.6)
    ax1, ax2 = fig.subplots(1, 2)
    for ax, y, title, ylabel, signed in ((ax1, tv, "Kendall tau by complexity bin", "Kendall tau", False),
                                         (ax2, ev, "Mean error by complexity bin", "mean error", True)):
        style_axes(ax)
        ax.grid(False, axis="x")
        finite = np.isfinite(y)
        colors = [(RED if v < 0 else BLUE) if signed else (BLUE if v >= 0 else RED) for v in np.nan_to_num(y)]
        ax.bar(x[finite], y[finite], color=[c for c, f in zip(colors, finite) if f], width=0.62)
        ax.axhline(0, color="#8a93a3", linewidth=0.9)
        lo, hi = 0.0, 1.0
        if finite.any():
            lo, hi = min(0.0, float(np.min(y[finite]))), max(0.0, float(np.max(y[finite])))
        span = (hi - lo) or 1.0
        ax.set_ylim(lo - 0.08 * span, hi + 0.16 * span)
        for xi, v in zip(x, y):
            if np.isfinite(v):
                ax.text(xi, v + (0.02 * span if v >= 0 else -0.02 * span), fmt_num(float(v), 3), ha="center",
                        va="bottom" if v >= 0 else "top", fontsize=8.5, color="#333a46", parse_math=False)
            else:
                ax.text(xi, 0.02 * span, "n/a", ha="center", va="bottom", fontsize=8.5, color=MUTED,
                        style="italic", parse_math=False)
        ax.set_xticks(x, [str(lbl) for lbl in labels], fontsize=8.5, parse_math=False)
        ax.set_xlim(-0.6, len(labels) - 0.4)
        _label(ax, title, "complexity bin (params)", ylabel)
    return to_png(fig)


def search_progress(evaluations: Sequence[Any], best: Sequence[Any], strategy: str = "") -> bytes:
    """Best fitness so far against the number of evaluated architectures."""
    x, y = _floats(evaluations), _floats(best)
    fig = new_figure(7.2, 3.6)
    ax = fig.subplots()
    style_axes(ax)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.any():
        ax.step(x[ok], y[ok], where="post", color=BLUE, linewidth=1.8)
        if ok.sum() <= 60:
            ax.plot(x[ok], y[ok], "o", color=BLUE, markersize=3.5)
    else:
        _empty(ax)
    title = "Search progress" + (f" ({strategy})" if strategy else "")
    _label(ax, title, "architectures evaluated", "best score so far")
    return to_png(fig)


def bin_labels(fairness: Sequence[dict]) -> list[str]:
    """Tick labels for complexity bins: ``Q1`` (or the bin's own name) and its params range."""
    out = []
    for i, b in enumerate(fairness):
        name = b.get("bin", i)
        if isinstance(name, (int, float)) and not isinstance(name, bool) and math.isfinite(float(name)):
            name = f"Q{int(name) + 1}" if _zero_based(fairness) else f"Q{int(name)}"
        lo, hi = b.get("complexity_min"), b.get("complexity_max")
        rng = f"{fmt_compact(lo)}–{fmt_compact(hi)}" if lo is not None or hi is not None else ""
        out.append(f"{name}\n{rng}" if rng else str(name))
    return out


def _zero_based(fairness: Sequence[dict]) -> bool:
    bins = [b.get("bin") for b in fairness]
    return any(isinstance(v, (int, float)) and not isinstance(v, bool) and v == 0 for v in bins)


def _empty(ax) -> None:
    ax.text(0.5, 0.5, "no finite values", transform=ax.transAxes, ha="center", va="center", color=MUTED,
            fontsize=10, parse_math=False)


def _cmap(name: str):
    import matplotlib

    return matplotlib.colormaps[name]


def node_curves(series: Sequence[tuple[str, Sequence[Any], Sequence[Any]]], ylabel: str = "train loss") -> bytes:
    """One line per few-shot node: (label, epochs, values); a child's line starts where its parent split."""
    fig = new_figure(7.2, 3.4)
    ax = fig.add_subplot()
    colors = [BLUE, ORANGE, GREEN, RED, MUTED, "#7a4fb3", "#1f9aa6", "#b3568a"]
    for i, (label, epochs, values) in enumerate(series):
        x, y = _floats(epochs), _floats(values)
        ax.plot(x, y, color=colors[i % len(colors)], linewidth=1.6, marker=_marker(len(x)), markersize=3,
                label=label)
    if not series:
        _empty(ax)
    style_axes(ax)
    _label(ax, "Training loss per sub-supernet", "epoch", ylabel)
    if series:
        ax.legend(fontsize=8, frameon=False, ncol=2 if len(series) > 6 else 1)
    return to_png(fig)


def distance_matrices(panels: Sequence[tuple[str, Sequence[str], Sequence[Sequence[Any]], bool]]) -> bytes:
    """Gradient-matching distance matrices, one panel per candidate decision: (title, choice labels, matrix,
    chosen); the chosen decision's panel is framed in red. Cell text: the distance (1 - cos)."""
    n = max(len(panels), 1)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig = new_figure(3.2 * cols, 2.9 * rows)
    vmax = max([max((to_float(v) for r in m for v in r), default=1.0) for _, _, m, _ in panels] or [1.0])
    for k, (title, labels, matrix, chosen) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, k + 1)
        m = np.asarray([[to_float(v) for v in r] for r in matrix], dtype=float)
        ax.imshow(m, cmap=_cmap("Blues"), vmin=0.0, vmax=vmax if math.isfinite(vmax) and vmax > 0 else 1.0)
        ax.set_xticks(range(len(labels)), [str(x) for x in labels], rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(labels)), [str(x) for x in labels], fontsize=7)
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                if math.isfinite(m[i, j]):
                    ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=6.5,
                            color="white" if m[i, j] > 0.6 * vmax else "#1d2330", parse_math=False)
        ax.set_title(title, fontsize=9, loc="left", color=RED if chosen else "#1d2330", parse_math=False)
        for side in ax.spines.values():
            side.set_color(RED if chosen else "#9aa3b2")
            side.set_linewidth(2.0 if chosen else 0.8)
    return to_png(fig)


def grad_momentum_cosine(epochs: Sequence[Any], cos: Sequence[Any]) -> bytes:
    """Epoch mean of the cosine between the update direction and the momentum buffer it joins (noisy momentum:
    near 0 when consecutive subnets' gradients disagree)."""
    fig, ax, drawn = _epoch_line(epochs, cos, ORANGE)
    if drawn:
        ax.axhline(0.0, color=MUTED, linewidth=0.8)
    _label(ax, "Gradient vs momentum", "epoch", "cosine (epoch mean)")
    return to_png(fig)
