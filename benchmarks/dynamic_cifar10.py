"""SPOS vs SPOS+CaLR+MS and FairNAS vs FairNAS+CaLR+MS on CIFAR-10 (NB201 `train` half), several seeds.

Each (recipe, seed) is one run of benchmarks.rank_cifar10 (train, then score the 327-cell subset on the
`valid` half and compare with NB201's c10_test_200ep); runs go in parallel processes (--jobs) with
--threads each. Prints mean ± std of Kendall tau per recipe and writes everything to --out/summary.json.

    python -m benchmarks.dynamic_cifar10 --epochs 5 --C 8 --N 1 --train-images 10000 --eval-images 500 \
        --seeds 0 1 2 --jobs 2 --threads 1 --out runs/bench-dynamic
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmarks.common import REPO, command_line, prepare_cifar
from benchmarks.jobs import Variant, run_jobs
from benchmarks.suite import shared_settings, summarize, write_summary

RECIPES = ["spos", "spos_calr_ms", "fairnas", "fairnas_calr_ms"]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", nargs="+", default=RECIPES, help=f"configs/nb201/<name>.yaml (default {RECIPES})")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--C", type=int, default=8)
    ap.add_argument("--N", type=int, default=1)
    ap.add_argument("--train-images", type=int, default=10000)
    ap.add_argument("--eval-images", type=int, default=500)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data-root", default="/tmp/nshot-cifar", help="converted CIFAR-10 (made once if absent)")
    ap.add_argument("--out", default="runs/bench-dynamic")
    args = ap.parse_args(argv)
    out = Path(args.out)
    prepare_cifar(Path(args.data_root))
    common = ["--epochs", str(args.epochs), "--C", str(args.C), "--N", str(args.N), "--train-images",
              str(args.train_images), "--eval-images", str(args.eval_images), "--threads", str(args.threads),
              "--data-root", args.data_root]
    variants = [Variant(r, str(REPO / f"configs/nb201/{r}.yaml")) for r in args.recipes]
    t0 = time.time()
    results = run_jobs(out, variants, args.seeds, common, args.jobs)
    summary = {"command": command_line("dynamic_cifar10", argv),
               "seconds": time.time() - t0, "protocol": shared_settings(args)}
    summary["recipes"] = summarize(results, args.recipes, args.seeds)
    return write_summary(out / "summary.json", summary, ("recipes",))


if __name__ == "__main__":
    main()
