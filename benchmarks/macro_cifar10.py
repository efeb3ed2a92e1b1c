"""SPOS vs SPOS+CaLR+MS on NAS-Bench-Macro (CIFAR-10) at CPU scale, several seeds: Kendall tau vs ``mean_acc``.

Each (recipe, seed) trains a supernet of the ``macro`` space (configs/macro/<recipe>.yaml) on the `train` half of
NB201's cifar10-valid split (optionally its first --train-images), scores the architectures on the first
--eval-images of the `valid` half (batch-statistics BN) and compares with the table's ``mean_acc`` (3 stand-alone
CIFAR-10 trainings of the full-width network). The supernet may be narrower than the benchmark network
(--stem-width/--widths/--head-width); CaLR's complexity is the trained network's parameter count.

Architectures: --subset all (6,561) or N: N archs stratified by ``mean_acc`` (sorted, cut into N equal-count
strata, one drawn per stratum with seed 0), the same for every run, written to OUT/subset-nN.txt.

Resumable: a run with OUT/<recipe>-s<seed>/bench_macro.json is done and kept; an unfinished one continues from
its last checkpoint (and its scores.csv cache). Runs go in parallel processes (--jobs), --threads each.
Prints mean ± std of tau per recipe and writes OUT/summary.json.

    python -m benchmarks.macro_cifar10 --epochs 10 --stem-width 8 --widths 16 32 64 --head-width 320 \\
        --train-images 10000 --eval-images 500 --subset 1000 --seeds 0 1 2 --jobs 2 --threads 1 --out runs/bench-macro

Cost at these defaults (measured on the shared 2-core machine under load, 1 thread): about 0.35 s per training
step of 64 images (157 steps/epoch, ~9 min per run) and 0.9 s per architecture scored on 500 images (~15 min
for 1,000 archs; all 6,561 would take ~1.6 h per run): ~25 min per (recipe, seed), 6 runs ~1.3 h with --jobs 2.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from benchmarks.common import REPO, command_line, prepare_cifar, shared_data
from benchmarks.jobs import Job, in_parallel, run_job
from benchmarks.suite import summarize, write_summary

RECIPES = ["spos", "spos_calr_ms"]


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", nargs="+", default=RECIPES, help=f"configs/macro/<name>.yaml (default {RECIPES})")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--stem-width", type=int, default=8, help="supernet stem width (benchmark: 32)")
    ap.add_argument("--widths", type=int, nargs=3, default=[16, 32, 64], help="stage widths (benchmark: 64 128 256)")
    ap.add_argument("--head-width", type=int, default=320, help="head conv width (benchmark: 1280)")
    ap.add_argument("--train-images", type=int, default=10000, help="first N images of the train half (0: all 25k)")
    ap.add_argument("--eval-images", type=int, default=500, help="first N images of the valid half used to score")
    ap.add_argument("--subset", default="1000", help="all, or N archs stratified by mean_acc (default 1000)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data-root", default="/tmp/nshot-cifar", help="converted CIFAR-10 (made once if absent)")
    ap.add_argument("--out", default="runs/bench-macro")
    ap.add_argument("--extra", nargs="*", default=[], help="more config overrides key.sub=value for every run")
    ap.add_argument("--single", nargs=2, metavar=("RECIPE", "SEED"), help=argparse.SUPPRESS)   # one run, in-process
    return ap


def reference_files() -> tuple[Path, Path]:
    """(NB201's cifar10-valid split file, the NAS-Bench-Macro table); exits with a message if missing."""
    data = shared_data()
    split = data / "nb201" / "cifar10_valid_split.json"
    table = data / "nas_bench_macro" / "nas-bench-macro_cifar10.json"
    for p in (split, table):
        if not p.exists():
            sys.exit(f"missing reference data {p} (set NSHOT_SHARED_DATA)")
    return split, table


def subset_file(out: Path, spec: str, table: Path) -> str:
    """``all``, or the path of a file with N archs stratified by mean_acc (written once, seed 0)."""
    if spec == "all":
        return "all"
    from nshot import benchmarks
    path = out / f"subset-n{int(spec)}.txt"
    if not path.exists():
        archs = benchmarks.get("macro", table).subset(int(spec), seed=0, stratify="mean_acc")
        path.write_text("\n".join(archs) + "\n")
    return str(path)


def run_one(recipe: str, seed: int, args: argparse.Namespace) -> dict:
    """Train (or continue) and rank one (recipe, seed); returns and writes RUN/bench_macro.json."""
    from benchmarks.suite import train_supernet
    from nshot.score.rank import format_rank, rank_run
    split, table = reference_files()
    out = Path(args.out)
    run = out / f"{recipe}-s{seed}"
    if (run / "bench_macro.json").exists():
        return json.loads((run / "bench_macro.json").read_text())
    overrides = [f"data.root={args.data_root}", f"data.split_file={split}", "data.name=cifar10", "data.split=nb201",
                 f"model.stem_width={args.stem_width}", f"model.widths=[{','.join(map(str, args.widths))}]",
                 f"model.head_width={args.head_width}", f"train.epochs={args.epochs}",
                 f"train.batch_size={args.batch_size}", f"seed={seed}", f"threads={args.threads}", "run.progress=log",
                 "train.log_every_steps=100", *args.extra]
    if args.train_images:
        overrides.append(f"data.train_subset={args.train_images}")
    final, t_train = train_supernet(REPO / f"configs/macro/{recipe}.yaml", overrides, run)  # or continue it
    t_rank = time.time()
    report = rank_run(run, "macro", "mean_acc", subset_file(out, args.subset, table), table=str(table),
                      eval_images=args.eval_images, progress="log")
    print(format_rank(report))
    summary = {"recipe": recipe, "seed": seed, "kendall_tau": report["kendall_tau"],
               "spearman_rho": report["spearman_rho"], "top1": report.get("top1"),
               "precision_at": report.get("precision_at"), "train_seconds": t_train,
               "rank_seconds": time.time() - t_rank, "protocol": report["protocol"], "config_overrides": overrides,
               "final_train_metrics": final}
    (run / "bench_macro.json").write_text(json.dumps(summary, indent=1))
    return summary


def main(argv=None) -> dict:
    args = _parser().parse_args(argv)
    if args.single:
        return run_one(args.single[0], int(args.single[1]), args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _, table = reference_files()
    prepare_cifar(Path(args.data_root))
    subset_file(out, args.subset, table)                 # once, before the parallel runs
    passthrough = list(argv if argv is not None else sys.argv[1:])

    def one(job: tuple[str, int]) -> dict:   # each (recipe, seed) in its own process: this script's --single
        recipe, seed = job
        return run_job(Job("macro_cifar10", [*passthrough, "--single", recipe, str(seed)],
                           out / f"{recipe}-s{seed}" / "bench_macro.json", out / f"{recipe}-s{seed}.log"))

    t0 = time.time()
    jobs = [(r, s) for s in args.seeds for r in args.recipes]
    results = dict(zip(jobs, in_parallel(one, jobs, args.jobs)))
    summary = {"command": command_line("macro_cifar10", passthrough), "seconds": time.time() - t0,
               "protocol": {"benchmark": "macro", "metric": "mean_acc", "subset": args.subset,
                            "subset_rule": "all 6,561" if args.subset == "all" else
                            f"{args.subset} archs stratified by mean_acc (seed 0), OUT/subset-n{args.subset}.txt",
                            "supernet": {"stem_width": args.stem_width, "widths": args.widths,
                                         "head_width": args.head_width},
                            "epochs": args.epochs, "train_images": args.train_images or 25000,
                            "eval_images": args.eval_images},
               "recipes": summarize(results, args.recipes, args.seeds, "tau (mean_acc)", "top-1 mean_acc")}
    return write_summary(out / "summary.json", summary, ("recipes",))


if __name__ == "__main__":
    main()
