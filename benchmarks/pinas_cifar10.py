"""Pi-NAS (trained without labels, scored by a kNN probe) vs supervised SPOS at equal budget on CIFAR-10, several
seeds: Kendall tau on the 327-cell NB201 subset.

Equal budget = the same epochs over the same 25k `train` half at the same batch size (every image is seen as
often; a Pi-NAS step costs more: four views, two student and two teacher passes; the wall times are reported).
Pi-NAS scores a path by a weighted kNN vote of its frozen features on ``--probe-images`` labelled training
images after the chosen BN mode; SPOS by its own classifier (and, with ``--spos-probe``, also by the same kNN
probe, to separate the training objective from the scoring rule). Each (variant, seed) is one run of
benchmarks.rank_cifar10; SPOS runs of benchmarks.dynamic_cifar10 at the same scale can be linked in as
``OUT/spos-s<seed>``.

    python -m benchmarks.pinas_cifar10 --epochs 15 --C 8 --N 2 --eval-images 1000 --probe-images 1000 \\
        --seeds 0 1 2 --jobs 1 --threads 1 --data-root /tmp/cifar --out runs/bench-pinas
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmarks.common import REPO, command_line, prepare_cifar
from benchmarks.jobs import Variant, run_jobs
from benchmarks.suite import shared_settings, summarize, write_summary


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--C", type=int, default=8)
    ap.add_argument("--N", type=int, default=2)
    ap.add_argument("--train-images", type=int, default=25000)
    ap.add_argument("--eval-images", type=int, default=1000)
    ap.add_argument("--probe-images", type=int, default=1000, help="labelled bank of the kNN probe (default 1000)")
    ap.add_argument("--bn", default="batch", choices=["batch", "recal"], help="BN mode when scoring (default batch)")
    ap.add_argument("--spos-probe", action="store_true", help="also score the SPOS supernet with the kNN probe")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data-root", default="/tmp/nshot-cifar", help="converted CIFAR-10 (made once if absent)")
    ap.add_argument("--out", default="runs/bench-pinas")
    args = ap.parse_args(argv)
    prepare_cifar(Path(args.data_root))
    common = ["--epochs", str(args.epochs), "--C", str(args.C), "--N", str(args.N), "--train-images",
              str(args.train_images), "--eval-images", str(args.eval_images), "--threads", str(args.threads),
              "--data-root", args.data_root, "--bn", args.bn]
    knn = ("--probe", "knn", "--probe-images", str(args.probe_images))
    variants = [Variant("spos", str(REPO / "configs/nb201/spos.yaml")),
                Variant("pinas", str(REPO / "configs/nb201/pinas.yaml"), ("--lr", "0.03", *knn))]
    t0 = time.time()
    out = Path(args.out)
    results = run_jobs(out, variants, args.seeds, common, args.jobs)
    names = [v.name for v in variants]
    if args.spos_probe:   # re-rank the finished SPOS runs with the probe (their checkpoints are reused)
        from nshot.score.rank import rank_run
        data = REPO.parent / "shared" / "data" / "nb201"
        for s in args.seeds:
            rep = rank_run(out / f"spos-s{s}", "nb201", "cifar10/test", str(data / "kendall_subset_327.txt"),
                           table=str(data / "nb201_200ep.csv"), bn_mode=args.bn, eval_images=args.eval_images,
                           progress="log", probe="knn", probe_images=args.probe_images)
            results[("spos+knn", s)] = {**results[("spos", s)], "kendall_tau": rep["kendall_tau"],
                                        "spearman_rho": rep["spearman_rho"], "top1": rep.get("top1"),
                                        "precision_at": rep.get("precision_at")}
        names.append("spos+knn")
    summary = {"command": command_line("pinas_cifar10", argv),
               "seconds": time.time() - t0, "protocol": shared_settings(args)}
    summary["results"] = summarize(results, names, args.seeds)
    return write_summary(out / "summary.json", summary, ("results",))


if __name__ == "__main__":
    main()
