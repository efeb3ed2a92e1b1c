"""One-shot vs Few-Shot NAS (exhaustive split) vs GM-NAS on CIFAR-10 at EQUAL total training budget, each with
and without CaLR + MS, several seeds: tau on the 327-cell subset and top-1.

Budget = supernet-epochs: an epoch of one (sub-)supernet over the training split counts 1, so B epochs of a
one-shot supernet cost as much as B/5 epochs of 5 FSNAS sub-supernets trained from scratch (split at epoch 0,
the CVPR 2025 paper's FSNAS), or GM-NAS with two 2-way splits at epochs s1 < s2 of E epochs, which costs
s1 + 2 (s2 - s1) + 4 (E - s2). The GM estimate itself (``--gm-batches`` batches x ops x candidate edges per
split) is extra forward/backward work, reported as wall time. Each (variant, seed) is one run of
benchmarks.rank_cifar10.

    python -m benchmarks.fewshot_cifar10 --budget 15 --C 8 --N 2 --train-images 25000 --eval-images 1000 \\
        --seeds 0 1 2 --jobs 1 --threads 1 --data-root /tmp/cifar --out runs/bench-fewshot
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
import time
from pathlib import Path

from benchmarks.common import REPO, command_line, prepare_cifar
from benchmarks.jobs import Variant, run_jobs
from benchmarks.suite import shared_settings, summarize, write_summary

FAMILIES = ("oneshot", "fsnas", "gmnas")


def gm_schedule(budget: int) -> tuple[int, int, int]:
    """(E, s1, s2) with s1 + 2 (s2 - s1) + 4 (E - s2) == budget, every phase >= 1 epoch, the last >= 2 if
    possible, and the longest run E (ties: the latest first split). ValueError if no schedule fits."""
    best = None
    for e in range(3, budget + 1):
        for s2 in range(2, e):
            for s1 in range(1, s2):
                if s1 + 2 * (s2 - s1) + 4 * (e - s2) == budget:
                    key = (e - s2 >= 2, e, s1)
                    if best is None or key > best[0]:
                        best = (key, (e, s1, s2))
    if best is None:
        raise ValueError(f"no GM-NAS schedule with two splits spends exactly {budget} supernet-epochs")
    return best[1]


RECIPES = {"plain": "", "calr_ms": "_calr_ms"}


def variants(budget: int, families, gm_batches: int, fs_children: int = 5,
             recipes=tuple(RECIPES)) -> list[Variant]:
    """The recipes of the comparison at ``budget`` supernet-epochs (``recipes``: plain and/or calr_ms)."""
    if budget % fs_children:
        raise ValueError(f"--budget must be a multiple of {fs_children} (FSNAS trains {fs_children} sub-supernets)")
    e, s1, s2 = gm_schedule(budget)
    cfg = lambda name: str(REPO / f"configs/nb201/{name}.yaml")  # noqa: E731
    out = []
    for suffix in (RECIPES[r] for r in recipes):
        if "oneshot" in families:
            out.append(Variant(f"spos{suffix}", cfg(f"spos{suffix}"), ("--epochs", str(budget))))
        if "fsnas" in families:
            out.append(Variant(f"fsnas{suffix}", cfg(f"fsnas{suffix}"), ("--epochs", str(budget // fs_children))))
        if "gmnas" in families:
            out.append(Variant(f"gmnas{suffix}", cfg(f"gmnas{suffix}"),
                               ("--epochs", str(e), "--extra", f"fewshot.split_epochs=[{s1},{s2}]",
                                f"fewshot.gm_batches={gm_batches}")))
    return out


def leaf_breakdown(run: Path, ranking: str = "rank-kendall_subset_327.csv") -> list[dict]:
    """Per sub-supernet (leaf) of a few-shot run: how many ranked cells it scored, their mean score, truth and
    params, and tau within the leaf. Shows whether a low tau comes from the ranking inside each
    sub-supernet or from the scales of the sub-supernets disagreeing with each other."""
    from nshot import spaces
    from nshot.score.ranking import kendall_tau
    from nshot.train.partition import PartitionTree
    payload = json.loads((run / "fewshot.json").read_text())
    tree = PartitionTree.from_dict(spaces.get(payload["tree"]["space"]), payload["tree"])
    rows: dict[int, list[tuple[float, float, float]]] = {}
    with open(run / ranking) as f:
        for r in csv.DictReader(f):
            rows.setdefault(tree.route(r["arch"]).id, []).append((float(r["score"]), float(r["truth"]),
                                                                 float(r["params"])))
    out = []
    for leaf, v in sorted(rows.items()):
        s_, t_, p_ = zip(*v)
        tau = kendall_tau(s_, t_) if len(v) > 1 else float("nan")   # nan: undefined (constant scores)
        out.append({"leaf": leaf, "n": len(v), "score_mean": statistics.mean(s_), "truth_mean": statistics.mean(t_),
                    "params_mean": statistics.mean(p_), "tau_within": tau if tau == tau else None})   # nan -> None
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=int, default=15, help="supernet-epochs per run (default 15, a multiple of 5)")
    ap.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    ap.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES),
                    help="training recipes to run: plain and/or calr_ms (default both)")
    ap.add_argument("--gm-batches", type=int, default=10, help="batches R of each GM estimate (default 10)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--C", type=int, default=8)
    ap.add_argument("--N", type=int, default=2)
    ap.add_argument("--train-images", type=int, default=25000)
    ap.add_argument("--eval-images", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data-root", default="/tmp/nshot-cifar", help="converted CIFAR-10 (made once if absent)")
    ap.add_argument("--out", default="runs/bench-fewshot")
    args = ap.parse_args(argv)
    vs = variants(args.budget, args.families, args.gm_batches, recipes=args.recipes)
    prepare_cifar(Path(args.data_root))
    common = ["--C", str(args.C), "--N", str(args.N), "--train-images", str(args.train_images), "--eval-images",
              str(args.eval_images), "--threads", str(args.threads), "--data-root", args.data_root]
    t0 = time.time()
    results = run_jobs(Path(args.out), vs, args.seeds, common, args.jobs)
    summary = {"command": command_line("fewshot_cifar10", argv),
               "seconds": time.time() - t0, "gm_schedule": dict(zip(("epochs", "s1", "s2"), gm_schedule(args.budget))),
               "variants": {v.name: list(v.args) for v in vs}, "protocol": shared_settings(args, ("families",))}
    summary["results"] = summarize(results, [v.name for v in vs], args.seeds)
    summary["leaves"] = {}
    print("\n| run | leaf: n, mean score, mean truth, tau within |\n|---|---|")
    for v in vs:
        for seed in args.seeds:
            run = Path(args.out) / f"{v.name}-s{seed}"
            if (run / "fewshot.json").exists():
                leaves = summary["leaves"][run.name] = leaf_breakdown(run)
                print(f"| {run.name} | " + "; ".join(
                    f"{lf['leaf']}: {lf['n']}, {lf['score_mean']:.1f}, {lf['truth_mean']:.1f}, "
                    f"{'n/a' if lf['tau_within'] is None else format(lf['tau_within'], '.2f')}" for lf in leaves) + " |")
    return write_summary(Path(args.out) / "summary.json", summary, ("variants", "results", "leaves"))


if __name__ == "__main__":
    main()
