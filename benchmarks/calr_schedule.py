"""How much learning rate CaLR gives the paths SPOS samples, against the cosine it replaces (no training).

CaLR (``nshot.train.lr.CaLR``) sets a path's lr to lr_min + (lr_0 - lr_min)(1 - t/T)^gamma(a), with gamma linear in
log C(a) over the whole space's complexity range. SPOS samples every NB201 cell with equal probability, so the
lr a sampled path gets at a point t of the run, on average, is CaLR's mean over all 15,625 cells. This reports,
for each network shape asked, the mean gamma and that average lr as a share of the cosine schedule's, over the
whole run and over the two phases of a few-shot run split at ``--split`` of ``--epochs`` (the one-shot warm-up,
then the sub-supernets inheriting it); with ``--by-edge E``, the post-split share of each sub-supernet that
fixes edge E to one op (Few-Shot NAS's exhaustive split of edge 0). Shares are means over ``--points`` evenly
spaced midpoints of each phase (lr_min = 0, as the configs set it; the share does not depend on lr_0).

    python -m benchmarks.calr_schedule --shape 8,1 --shape 16,5 --split 40 --epochs 60 --by-edge 0
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Optional

import numpy as np

from nshot import spaces
from nshot.train.complexity import get_complexity
from nshot.train.lr import CaLR, CosineLR


def _midpoints(lo: float, hi: float, points: int) -> np.ndarray:
    """``points`` midpoints of equal pieces of [lo, hi] (fractions of the run)."""
    return lo + (hi - lo) * (np.arange(points) + 0.5) / points


def _relative_factors(gammas: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Per cell: the mean over ``ts`` of CaLR's factor (1 - t)^gamma, over the mean of the cosine's
    (``CosineLR`` from 1 to 0); a phase's share for any set of cells is the mean of their entries."""
    calr = np.zeros_like(gammas)
    for t in ts:
        calr += (1.0 - t) ** gammas
    cosine = sum(CosineLR(1.0)(float(t), 1) for t in ts)
    return calr / cosine


def calr_schedule(C: int, N: int, split: float, epochs: float, gamma_max: float = 4.0, points: int = 1000,
                  by_edge: Optional[int] = None) -> dict:
    """Mean gamma and CaLR's lr share of cosine (whole run, before and after ``split``) for shape C, N on NB201."""
    if not (math.isfinite(epochs) and math.isfinite(gamma_max)):
        raise ValueError(f"--epochs {epochs} and --gamma-max {gamma_max} must be finite")
    if not 0 < split < epochs:
        raise ValueError(f"--split {split} must lie strictly inside the run's {epochs} epochs")
    if points < 1:
        raise ValueError(f"--points {points} must be at least 1")
    space = spaces.get("nb201")
    if by_edge is not None and not 0 <= by_edge < space.num_decisions:
        raise ValueError(f"--by-edge {by_edge} is not an NB201 edge (0..{space.num_decisions - 1})")
    policy = CaLR(1.0, 0.0, get_complexity(space, "params", C=C, N=N), gamma_max)
    archs = list(space.enumerate())
    gammas = np.array([policy.gamma(a) for a in archs])
    s = split / epochs
    after = _relative_factors(gammas, _midpoints(s, 1.0, points))
    out = {"C": C, "N": N, "gamma_max": gamma_max, "split": split, "epochs": epochs, "cells": len(archs),
           "mean_gamma": float(gammas.mean()),
           "share_run": float(_relative_factors(gammas, _midpoints(0.0, 1.0, points)).mean()),
           "share_before_split": float(_relative_factors(gammas, _midpoints(0.0, s, points)).mean()),
           "share_after_split": float(after.mean())}
    if by_edge is not None:
        op = np.array([space.decode(a)[by_edge] for a in archs])
        out["share_after_split_by_op"] = {space.ops[o]: float(after[op == o].mean()) for o in sorted(set(op.tolist()))}
    return out


def table(results: list[dict]) -> str:
    """Markdown: one line per shape (and the by-op shares, where asked)."""
    ops = [list(r["share_after_split_by_op"]) for r in results if "share_after_split_by_op" in r]
    head = "| C, N | mean gamma | share of cosine's lr: whole run | before the split | after the split |"
    head += "".join(f" after, {o} |" for o in (ops[0] if ops else []))
    lines = [head, "|" + "---|" * head.count(" |")]
    for r in results:
        line = (f"| {r['C']}, {r['N']} | {r['mean_gamma']:.2f} | {r['share_run']:.3f} | {r['share_before_split']:.3f} "
                f"| {r['share_after_split']:.3f} |")
        line += "".join(f" {v:.3f} |" for v in r.get("share_after_split_by_op", {}).values())
        lines.append(line)
    return "\n".join(lines)


def _shape(text: str) -> tuple[int, int]:
    try:
        C, N = (int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shape {text!r}: expected C,N (e.g. 8,1)") from None
    if C < 1 or N < 1:
        raise argparse.ArgumentTypeError(f"shape {text!r}: C and N must be positive")
    return C, N


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", type=_shape, action="append", help="network shape C,N (repeatable; default 8,1)")
    p.add_argument("--epochs", type=float, default=60.0, help="the run's length (default 60)")
    p.add_argument("--split", type=float, default=40.0, help="the few-shot split epoch (default 40)")
    p.add_argument("--gamma-max", type=float, default=4.0, help="calr.gamma_max (default 4)")
    p.add_argument("--by-edge", type=int, help="also the post-split share per op fixed on this edge")
    p.add_argument("--points", type=int, default=1000, help="midpoints per phase (default 1000)")
    p.add_argument("--json", help="also write the figures here")
    a = p.parse_args(argv)
    try:
        results = [calr_schedule(C, N, a.split, a.epochs, a.gamma_max, a.points, a.by_edge)
                   for C, N in (a.shape or [(8, 1)])]
    except ValueError as e:
        p.error(str(e))
    print(table(results))
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
