"""Report plots of a differentiable search: the op weights (softmax of the alphas) of every edge over the epochs,
and the ground truth of each epoch's derived architecture."""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np

from .plots import BLUE, _empty, _floats, _label, new_figure, style_axes, to_png

_COLORS = ("#9aa3b2", "#2f6db5", "#d9772b", "#3a8f5c", "#c8423b", "#7b4fb3", "#b38f2f", "#2fa6b3")


def op_names(space: str) -> Optional[tuple[tuple[str, ...], tuple[str, ...]]]:
    """(op names, edge labels) of a space's architecture-weight table (the space's ``op_weight_labels``), or
    None for a space that names none."""
    from .. import spaces
    if space not in spaces.available():   # a report of a run without a readable config
        return None
    return spaces.get(space).op_weight_labels()


def _generic_labels(table: Sequence[Sequence[Sequence[float]]]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``op k`` / ``edge e`` labels for a table whose space names none."""
    edges, ops = np.asarray(table, dtype=float).shape[1:]
    return tuple(f"op {k}" for k in range(ops)), tuple(f"edge {e}" for e in range(edges))


def alpha_panels(epochs: Sequence[Any], alphas: Sequence[Sequence[Sequence[float]]], ops: Sequence[str],
                 edges: Sequence[str]) -> bytes:
    """One small panel per edge: each op's weight against epoch (a shared legend of the ops)."""
    table = np.asarray(alphas, dtype=float)               # (epochs, edges, ops)
    x = _floats(epochs)
    n = table.shape[1]
    cols = 6 if n > 8 else 3
    rows = -(-n // cols)
    fig = new_figure(2.1 * cols, 1.7 * rows + 0.6)
    axes = np.atleast_1d(fig.subplots(rows, cols, sharey=True)).ravel()
    for e, ax in enumerate(axes):
        if e >= n:
            ax.set_axis_off()
            continue
        style_axes(ax)
        for o, name in enumerate(ops):
            ax.plot(x, table[:, e, o], color=_COLORS[o % len(_COLORS)], linewidth=1.2, label=name)
        ax.set_title(edges[e], fontsize=8, parse_math=False)
        ax.tick_params(labelsize=7)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(ops), 8), fontsize=7)
    return to_png(fig)


def truth_curve(epochs: Sequence[Any], truth: Sequence[Any]) -> bytes:
    """The ground-truth accuracy of each epoch's derived architecture."""
    x, y = _floats(epochs), _floats(truth)
    fig = new_figure(5.2, 3.3)
    ax = fig.subplots()
    style_axes(ax)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.any():
        ax.plot(x[ok], y[ok], color=BLUE, linewidth=1.8, marker="o", markersize=3.5)
    else:
        _empty(ax)
    _label(ax, "Derived architecture's ground truth", "epoch", "benchmark accuracy (%)")
    return to_png(fig)


def differentiable_figures(image: Callable[..., Any], space: str, recs: Sequence[dict]) -> list[Any]:
    """The figures of a run whose metrics carry ``alphas`` (and ``truth``); none for other runs."""
    rows = [r for r in recs if isinstance(r.get("alphas"), list)]
    if not rows:
        return []
    ops, edges = op_names(space) or _generic_labels([r["alphas"] for r in rows])
    epochs = [r.get("epoch") for r in rows]
    out = [image("alphas.png", alpha_panels(epochs, [r["alphas"] for r in rows], ops, edges),
                 "architecture weights per edge over the epochs",
                 "Softmax of the architecture parameters per edge at the end of each epoch; the derived "
                 "architecture keeps the strongest op(s).")]
    if any(r.get("truth") is not None for r in rows):
        out.append(image("truth.png", truth_curve(epochs, [r.get("truth") for r in rows]),
                         "ground truth of the derived architecture per epoch",
                         "Benchmark accuracy of the architecture derived after each epoch (in the test metric of the "
                         "run's dataset, e.g. cifar10/test)."))
    return out
