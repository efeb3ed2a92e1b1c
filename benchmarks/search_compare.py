"""Issue 23: tree search (LaNAS-style) vs SPOS evolution vs random search on NAS-Bench-201, with a cached fitness.

The fitness is a score known for every cell, so no network runs: by default NB201's own ``c10_val_200ep``
(the ``cifar10-valid`` accuracy, a proxy with real noise against the reported ``c10_test_200ep``), or the
scores of a supernet ranked over all cells (``--scores RUN/rank-all.csv``: its ``score`` column). For each
strategy and seed one search runs to ``--budget`` evaluations; the cell each would return after n evaluations
(the best fitness among its first n, in evaluation order) is looked up in ``c10_test_200ep``.

    python -m benchmarks.search_compare --budget 500 --seeds 0 1 2 3 4 --out runs/bench-search/summary.json
"""
from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.common import REPO, command_line

CHECKPOINTS = (25, 50, 100, 150, 200, 300, 400, 500, 750, 1000)


def load_truth(table: Path) -> tuple[dict, dict]:
    """(c10_val, c10_test) per canonical NB201 string."""
    from nshot import spaces
    sp = spaces.get("nb201")
    val, test = {}, {}
    with open(table, newline="") as fh:
        for row in csv.DictReader(fh):
            a = sp.parse(row["arch_str"])
            val[a], test[a] = float(row["c10_val_200ep"]), float(row["c10_test_200ep"])
    return val, test


def best_after(order: list[str], fitness: dict, n: int) -> str:
    """The cell a search returns after its first ``n`` evaluations (ties: the earlier evaluated)."""
    best = None
    for a in order[:n]:
        if best is None or fitness[a] > fitness[best]:
            best = a
    return best


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=int, default=500)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--table", default=str(REPO.parent / "shared" / "data" / "nb201" / "nb201_200ep.csv"))
    ap.add_argument("--scores", help="a rank CSV of all cells (arch,score,...) to use as the fitness instead")
    ap.add_argument("--out", help="write the summary JSON here")
    args = ap.parse_args(argv)
    from nshot import spaces
    from nshot.search import CachedFitness, evolution_search, random_search, tree_search
    sp = spaces.get("nb201")
    val, test = load_truth(Path(args.table))
    fitness = val
    if args.scores:
        with open(args.scores, newline="") as fh:
            fitness = {sp.parse(r["arch"]): float(r["score"]) for r in csv.DictReader(fh)}
        if len(fitness) != len(test):
            raise SystemExit(f"{args.scores} scores {len(fitness)} cells, not all {len(test)}")
    strategies = {
        "random": lambda f, s: random_search(sp, f, args.budget, np.random.default_rng(s)),
        "evolution": lambda f, s: evolution_search(sp, f, np.random.default_rng(s), budget=args.budget,
                                                   generations=10 ** 6),
        "tree": lambda f, s: tree_search(sp, f, args.budget, np.random.default_rng(s)),
    }
    points = [n for n in CHECKPOINTS if n <= args.budget]
    summary = {"command": command_line("search_compare", argv),
               "fitness": args.scores or "c10_val_200ep", "truth": "c10_test_200ep", "seeds": args.seeds,
               "best_possible_truth": max(test.values()), "strategies": {}}
    for name, run in strategies.items():
        per_seed, seconds = [], []
        for s in args.seeds:
            fit = CachedFitness(fn=fitness.__getitem__)
            t0 = time.perf_counter()
            res = run(fit, s)
            seconds.append(time.perf_counter() - t0)
            order = list(fit.cache)   # evaluation order
            assert res.evaluations == len(order) == args.budget, (name, res.evaluations)
            per_seed.append([test[best_after(order, fitness, n)] for n in points])
        arr = np.asarray(per_seed)
        summary["strategies"][name] = {"evaluations": points, "truth_mean": arr.mean(0).tolist(),
                                       "truth_std": arr.std(0).tolist(), "per_seed": per_seed,
                                       "seconds_per_search": float(np.mean(seconds))}
    print(f"found cell's NB201 c10_test (mean ± std over {len(args.seeds)} seeds) vs evaluations; fitness "
          f"{summary['fitness']}; best possible {summary['best_possible_truth']:.2f}")
    print("evaluations " + " ".join(f"{n:>13d}" for n in points))
    for name, r in summary["strategies"].items():
        print(f"{name:11} " + " ".join(f"{m:7.2f} ±{s:5.2f}" for m, s in zip(r["truth_mean"], r["truth_std"])))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(summary, indent=1) + "\n")
    return summary


if __name__ == "__main__":
    main()
