"""How reproducible is the quickstart's ground truth? Its cells trained stand-alone at several seeds.

The quickstart ranks its supernet against a small ground truth: each compared cell trained stand-alone on
the digits train half and scored on the held-out half (``nshot quickstart``). This script trains the cells of
each ``--pick-seeds`` quickstart seed (``pick_architectures(--archs, seed)``) with the quickstart's stand-alone
settings, changed by each ``--recipes`` entry (``RECIPES``), at each of ``--epochs`` and ``--seeds``, and
reports how well the truth repeats: Kendall's tau between the training seeds' accuracies (the ceiling a
supernet's tau against one such truth can reach) and a cell's spread over seeds beside the spread between
cells. With ``--quickstart RUN`` (one pick seed) it also ranks that run's supernet scores against each seed's
truth. With ``--pool TABLE`` it trains instead every cell of the quickstart's candidate pool
(``benchmarks.quickstart_cells.stratified_cells``), the measurement that ``quickstart_cells --digits`` bands.
Resumable: finished trainings are kept in ``--out`` (JSON).

    python -m benchmarks.quickstart_truth --recipes running calibrated calibrated+drop-last \\
        --pick-seeds 0 1 --seeds 0 1000 2000 --out /tmp/qs-recipes.json
    python -m benchmarks.quickstart_truth --pool ../shared/data/nb201/nb201_200ep.csv --seeds 7 1007 2007 \\
        --out pool.json
"""
from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import kendalltau

from nshot.config import load_config
from nshot.quickstart import DEFAULT_ARCHS, QUICKSTART_OVERRIDES, STANDALONE, pick_architectures
from nshot.run.build import load_data
from nshot.run.io import atomic_write_bytes
from nshot.train.standalone import StandaloneConfig, train_standalone

#: Stand-alone recipes compared, as changes to the quickstart's ``STANDALONE`` settings.
RECIPES: dict[str, dict] = {
    "quickstart": {},
    "running": {"bn_calibrate": False, "drop_last": False},       # BN's running averages from training
    "calibrated": {"bn_calibrate": True, "drop_last": False},     # BN statistics of the clean train images
    "calibrated+drop-last": {"bn_calibrate": True, "drop_last": True},
}


def train_all(out: Path, recipes: list[str], archs: list[str], epochs: list[int],
              seeds: list[int]) -> dict[str, float]:
    """Stand-alone held-out accuracy (%) of every (recipe, epochs, seed, arch), keyed ``"R|E|S|ARCH"``;
    resumable."""
    cfg = load_config(None, QUICKSTART_OVERRIDES + ["seed=0", "device=cpu"])
    train, evald = load_data(cfg)
    res: dict[str, float] = json.loads(out.read_text()) if out.exists() else {}
    todo = [k for k in itertools.product(recipes, epochs, seeds, archs) if _key(*k) not in res]
    for i, (r, e, s, a) in enumerate(todo):
        t0 = time.time()
        sa = StandaloneConfig(epochs=e, C=cfg.model.C, N=cfg.model.N, **{**STANDALONE, **RECIPES[r]})
        res[_key(r, e, s, a)] = train_standalone(cfg.space.name, a, train, evald, sa, seed=s)
        print(f"[{i + 1}/{len(todo)}] {r}, {e} epochs, seed {s}: {res[_key(r, e, s, a)]:.2f} % "
              f"({time.time() - t0:.0f} s) {a}", flush=True)
        atomic_write_bytes(out, json.dumps(res, indent=1).encode())
    return res


def _key(recipe: str, epochs: int, seed: int, arch: str) -> str:
    return f"{recipe}|{epochs}|{seed}|{arch}"


def agreement(res: dict[str, float], recipe: str, epochs: int, seeds: list[int],
              groups: list[list[str]]) -> dict[str, float]:
    """How a recipe's truth repeats over ``seeds``, for cell ``groups`` (one per quickstart seed): the mean tau
    between two seeds' truths over all pairs and groups, the median over cells of a cell's standard deviation
    over seeds, the mean over groups of the standard deviation between the cells' seed-mean accuracies, and the
    mean accuracy."""
    taus, within, between, accs = [], [], [], []
    for archs in groups:
        t = np.array([[res[_key(recipe, epochs, s, a)] for a in archs] for s in seeds])   # seeds x cells
        taus += [kendalltau(t[i], t[j])[0] for i, j in itertools.combinations(range(len(seeds)), 2)]
        within += list(t.std(0, ddof=1))
        between.append(t.mean(0).std(ddof=1))
        accs.append(t.mean())
    return {"tau_between_seeds": float(np.mean(taus)), "cell_std_over_seeds": float(np.median(within)),
            "std_between_cells": float(np.mean(between)), "mean_acc": float(np.mean(accs))}


def summarize(res: dict[str, float], recipes: list[str], epochs: list[int], seeds: list[int],
              groups: list[list[str]]) -> list[str]:
    """Table lines: per (recipe, epochs) how the truth repeats over the seeds (:func:`agreement`)."""
    lines = ["| recipe | epochs | mean tau between two seeds' truths | a cell's std over seeds (median, points) "
             "| std between cells (points) | mean accuracy % |", "|---|---|---|---|---|---|"]
    for r, e in itertools.product(recipes, epochs):
        g = agreement(res, r, e, seeds, groups)
        lines.append(f"| {r} | {e} | {g['tau_between_seeds']:.3f} | {g['cell_std_over_seeds']:.1f} "
                     f"| {g['std_between_cells']:.1f} | {g['mean_acc']:.1f} |")
    return lines


def supernet_lines(res: dict[str, float], recipes: list[str], epochs: list[int], seeds: list[int],
                   archs: list[str], supernet: list[float]) -> list[str]:
    """Table lines: the supernet's tau against each (recipe, epochs, seed) truth and against their seed mean."""
    lines = ["| recipe | epochs | supernet tau per seed's truth | against the seeds' mean |", "|---|---|---|---|"]
    for r, e in itertools.product(recipes, epochs):
        t = np.array([[res[_key(r, e, s, a)] for a in archs] for s in seeds])
        per = ", ".join(f"{kendalltau(supernet, row)[0]:.3f}" for row in t)
        lines.append(f"| {r} | {e} | {per} | {kendalltau(supernet, t.mean(0))[0]:.3f} |")
    return lines


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipes", nargs="+", default=["quickstart"], choices=list(RECIPES))
    p.add_argument("--epochs", type=int, nargs="+", default=[30])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1000, 2000], help="training seeds")
    p.add_argument("--archs", type=int, help=f"cells compared (as `nshot quickstart --archs`, default {DEFAULT_ARCHS})")
    p.add_argument("--pick-seeds", type=int, nargs="+", default=[0],
                   help="the quickstart seeds whose cells are trained")
    p.add_argument("--pool", metavar="TABLE", help="train the candidate pool of benchmarks.quickstart_cells "
                   "(NB201's nb201_200ep.csv) instead of the cells of --pick-seeds")
    p.add_argument("--quickstart", help="a finished quickstart run dir of the (one) --pick-seeds: rank its scores")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True, help="JSON of the trainings (resumable)")
    a = p.parse_args(argv)
    if len(a.seeds) < 2:
        p.error("--seeds needs at least two seeds to compare")
    if a.pool and (a.quickstart or a.pick_seeds != [0] or a.archs is not None):
        p.error("--pool trains the whole candidate pool: --quickstart, --pick-seeds and --archs choose a "
                "quickstart's cells instead; give one or the other")
    if a.quickstart and len(a.pick_seeds) != 1:
        p.error("--quickstart ranks one run: give one --pick-seeds")
    torch.set_num_threads(a.threads)
    if a.pool:
        from benchmarks.quickstart_cells import stratified_cells
        groups = [[arch for _, arch in stratified_cells(a.pool)]]
    else:
        groups = [[arch for _, arch in pick_architectures(a.archs or DEFAULT_ARCHS, s)] for s in a.pick_seeds]
    archs = list(dict.fromkeys(x for g in groups for x in g))
    res = train_all(Path(a.out), a.recipes, archs, a.epochs, a.seeds)
    print("\n".join(summarize(res, a.recipes, a.epochs, a.seeds, groups)))
    if a.quickstart:
        q = json.loads((Path(a.quickstart) / "quickstart.json").read_text())
        if q["archs"] != groups[0]:
            raise SystemExit(f"{a.quickstart} compared other cells (its seed is {q['seed']}, "
                             f"--pick-seeds {a.pick_seeds[0]})")
        print("\n".join(supernet_lines(res, a.recipes, a.epochs, a.seeds, groups[0], q["supernet_acc"])))


if __name__ == "__main__":
    main()
