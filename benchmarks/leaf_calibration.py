"""Where a few-shot supernet loses ranking: inside its sub-supernets, or between them.

A few-shot run scores each cell with the leaf sub-supernet that holds it, so its ranking mixes two things: how
well each leaf orders its own cells, and whether the leaves' score levels follow their cells' quality (leaves
trained for different lengths or from a restart can score on different scales). For each finished few-shot run
ranked by ``nshot rank`` (``rank-<tag>.csv``: arch, score, truth), this routes every ranked cell to its leaf
(``fewshot.json``'s partition tree) and reports per leaf: its cells, Kendall's tau inside the leaf, the mean
score and mean truth of its cells and the leaf's last-epoch sampled-path training accuracy; then the run's
overall tau, the cell-weighted mean of the within-leaf taus, and the tau between the leaves' mean scores and
their mean truths (+1: the leaves' levels are ordered as their cells' quality). Reads files only.

    python -m benchmarks.leaf_calibration RUN [RUN ...] [--tag kendall_subset_327]
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Optional

import numpy as np

from nshot import spaces
from nshot.run.rundir import RunDir
from nshot.score.ranking import kendall_tau
from nshot.train.partition import PartitionTree


def _last_train_acc(node: RunDir) -> Optional[float]:
    """The last epoch record's sampled-path training accuracy of one node, if it logged any."""
    if not node.metrics.exists():
        return None
    epochs = [r for r in map(json.loads, node.metrics.read_text().splitlines()) if "epoch" in r and "acc" in r]
    return float(epochs[-1]["acc"]) if epochs else None


def _tau(x, y) -> Optional[float]:
    """``nshot.score.ranking.kendall_tau``, with None where it is undefined (fewer than 2 cells, constant input)."""
    if len(x) < 2:
        return None
    t = kendall_tau(x, y)
    return None if np.isnan(t) else t


def leaf_calibration(run: Path, tag: str = "kendall_subset_327") -> dict:
    """Per-leaf and overall figures of one ranked few-shot run (see the module docstring)."""
    rd = RunDir(run)
    if not rd.fewshot.exists():
        raise SystemExit(f"{run}: no {rd.fewshot.name} (not a few-shot run)")
    ranking = rd.rank("csv", tag)
    if not ranking.exists():
        raise SystemExit(f"{run}: no {ranking.name}; rank the run first (nshot rank ... --subset ...)")
    tree_data = json.loads(rd.fewshot.read_text())["tree"]
    tree = PartitionTree.from_dict(spaces.get(tree_data["space"]), tree_data)
    rows = list(csv.DictReader(ranking.open()))
    score = np.array([float(r["score"]) for r in rows])
    truth = np.array([float(r["truth"]) for r in rows])
    leaf = np.array([tree.route(r["arch"]).id for r in rows])
    leaves = []
    for node_id in sorted(set(leaf.tolist())):
        m = leaf == node_id
        leaves.append({"leaf": node_id, "cells": int(m.sum()), "tau": _tau(score[m], truth[m]),
                       "mean_score": float(score[m].mean()), "mean_truth": float(truth[m].mean()),
                       "train_acc": _last_train_acc(rd.node(node_id))})
    scored = [lf for lf in leaves if lf["tau"] is not None]
    within = (sum(lf["cells"] * lf["tau"] for lf in scored) / sum(lf["cells"] for lf in scored)) if scored else None
    return {"run": str(run), "tag": tag, "cells": len(rows), "tau": _tau(score, truth), "within_leaf_tau": within,
            "leaf_level_tau": _tau([lf["mean_score"] for lf in leaves], [lf["mean_truth"] for lf in leaves]),
            "leaves": leaves}


def _f(x: Optional[float], spec: str = ".3f") -> str:
    return "–" if x is None else format(x, spec)


def table(results: list[dict]) -> str:
    """Markdown: one line per leaf under one line per run."""
    lines = ["| run / leaf | cells | tau | mean score | mean truth | train acc % |", "|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| **{Path(r['run']).name}** (overall; cell-weighted within leaves; leaf levels) | {r['cells']} "
                     f"| {_f(r['tau'])}; {_f(r['within_leaf_tau'])}; {_f(r['leaf_level_tau'])} | | | |")
        for lf in r["leaves"]:
            lines.append(f"| leaf {lf['leaf']} | {lf['cells']} | {_f(lf['tau'])} | {lf['mean_score']:.2f} "
                         f"| {lf['mean_truth']:.2f} | {_f(lf['train_acc'], '.1f')} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="few-shot run directories, ranked")
    p.add_argument("--tag", default="kendall_subset_327", help="which ranking: rank-<tag>.csv (default: the 327 subset)")
    p.add_argument("--json", help="also write the figures here")
    a = p.parse_args(argv)
    results = [leaf_calibration(Path(r), a.tag) for r in a.runs]
    print(table(results))
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
