"""End-to-end CPU-scale ranking experiment: SPOS on CIFAR-10's NB201 `train` half, tau on the 327-cell subset.

The shared CIFAR-10 file is converted once into the official `cifar-10-batches-py` layout under --data-root and
loaded through nshot's normal loader. The supernet trains on NB201's `train` half (optionally the first
--train-images of it), then the 327 cells are scored on the first --eval-images of the `valid` half and
compared with NB201's `c10_test_200ep`.

    python -m benchmarks.rank_cifar10 --epochs 10 --C 8 --N 2 --out runs/bench-rank-s0
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from benchmarks.common import REPO, command_line, prepare_cifar, shared_data
from benchmarks.suite import train_supernet
from nshot.score.rank import format_rank, rank_run


def parser() -> argparse.ArgumentParser:
    """The command line of this script (also used to compare a finished run's recorded command)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(REPO / "configs/nb201/spos.yaml"), help="recipe (default spos.yaml)")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--C", type=int, default=8)
    ap.add_argument("--N", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.025)
    ap.add_argument("--train-images", type=int, help="first N images of the train half (default: all 25k)")
    ap.add_argument("--eval-images", type=int, default=2000, help="first N images of the valid half used to score")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bn", default="batch", choices=["batch", "recal"])
    ap.add_argument("--probe", choices=["classifier", "knn", "linear"],
                    help="what scores a path (default: knn for a Pi-NAS run, else the classifier)")
    ap.add_argument("--probe-images", type=int, default=1000, help="labelled bank of a knn/linear probe: a "
                    "seeded sample of N training images (default 1000)")
    ap.add_argument("--data-root", default="/tmp/nshot-cifar",
                    help="converted CIFAR-10 (cifar-10-batches-py; made once if absent; default /tmp/nshot-cifar)")
    ap.add_argument("--out", default=None, help="run directory (default runs/bench-rank-<time>); an interrupted "
                    "run there continues where it stopped")
    ap.add_argument("--extra", nargs="*", default=[], help="more config overrides key.sub=value")
    return ap


def main(argv=None) -> dict:
    args = parser().parse_args(argv)

    data = shared_data()
    split = data / "nb201" / "cifar10_valid_split.json"
    table = data / "nb201" / "nb201_200ep.csv"
    subset = data / "nb201" / "kendall_subset_327.txt"
    for p in (split, table, subset):
        if not p.exists():
            sys.exit(f"missing reference data {p} (set NSHOT_SHARED_DATA)")
    root = Path(args.data_root)
    t0 = time.time()
    prepare_cifar(root)
    out = Path(args.out or f"runs/bench-rank-{time.strftime('%Y%m%d-%H%M%S')}")
    overrides = [f"data.root={root}", f"data.split_file={split}", "data.name=cifar10", "data.split=nb201",
                 f"model.C={args.C}", f"model.N={args.N}", f"train.epochs={args.epochs}",
                 f"train.batch_size={args.batch_size}", f"optim.lr={args.lr}", f"seed={args.seed}",
                 f"threads={args.threads}", "run.progress=log", "train.log_every_steps=100", *args.extra]
    if args.train_images:
        overrides.append(f"data.train_subset={args.train_images}")
    final, t_train = train_supernet(args.config, overrides, out)   # continues an interrupted run in OUT
    t_rank = time.time()
    report = rank_run(out, "nb201", "cifar10/test", str(subset), table=str(table), bn_mode=args.bn,
                      eval_images=args.eval_images, progress="log", probe=args.probe, probe_images=args.probe_images)
    t_rank = time.time() - t_rank
    print(format_rank(report))
    summary = {"command": command_line("rank_cifar10", argv),
               "kendall_tau": report["kendall_tau"], "spearman_rho": report["spearman_rho"],
               "top1": report.get("top1"), "precision_at": report.get("precision_at"),
               "train_seconds": t_train, "rank_seconds": t_rank, "total_seconds": time.time() - t0,
               "protocol": report["protocol"], "config_overrides": overrides,
               "final_train_metrics": final}
    (out / "bench_rank.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: summary[k] for k in ("kendall_tau", "spearman_rho", "train_seconds", "rank_seconds")}))
    return summary


if __name__ == "__main__":
    main()
