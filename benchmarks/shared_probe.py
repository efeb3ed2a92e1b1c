"""Issue 23: the shared-linear probe vs the kNN and per-path linear probes, at equal scoring images, on the same
SPOS and Pi-NAS supernets: Kendall tau vs NB201 and the cost of scoring 1,000 architectures.

Trains (or continues, resumable) one SPOS and one Pi-NAS NB201 supernet on the first ``--train-images`` of
CIFAR-10's 25k ``train`` half, then scores ``--archs`` cells (a seeded sample of all 15,625, or ``kendall327``)
with every probe on the same ``--eval-images`` held-out images and the same ``--probe-images`` labelled
training images (the bank of knn / linear, the head's training set for shared-linear, ``--head-epochs``
epochs). Each probe scores into its own fresh cache file, so its wall time is all of its work (one thread);
the shared head's one-off training is reported apart and included in the cost per 1,000 architectures.

On a shared machine the wall times of the tau phase drift with the load, so ``--cost-only`` measures the
cost per architecture apart: the probes score the same ``--cost-archs`` cells without a cache, in alternating
ABBA rounds in one process (``benchmarks/timing.abba``), so a change of load hits every probe alike; it
reports the median per cell and, for shared-linear, adds one head training per 1,000 cells.

    python -m benchmarks.shared_probe --data-root /tmp/nshot-cifar --out runs/bench-shared-probe
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchmarks.common import REPO, command_line, prepare_cifar


def train(config: str, run_dir: Path, overrides: list[str]) -> None:
    """Start or continue a supernet run."""
    from nshot.config import load_config
    from nshot.train.trainer import Trainer
    if (run_dir / "checkpoints" / "last.pt").exists():
        Trainer.resume(run_dir).fit()
    else:
        Trainer.create(load_config(config, overrides), run_dir).fit()


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--C", type=int, default=8)
    ap.add_argument("--N", type=int, default=1)
    ap.add_argument("--train-images", type=int, default=10000)
    ap.add_argument("--eval-images", type=int, default=500)
    ap.add_argument("--probe-images", type=int, default=1000)
    ap.add_argument("--head-epochs", type=int, default=10)
    ap.add_argument("--archs", default="200", help="N (seeded sample of all cells) or kendall327")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--supernets", nargs="+", default=["spos", "pinas"], choices=["spos", "pinas"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data-root", default="/tmp/nshot-cifar")
    ap.add_argument("--table", default=str(REPO.parent / "shared" / "data" / "nb201" / "nb201_200ep.csv"))
    ap.add_argument("--out", default="runs/bench-shared-probe")
    ap.add_argument("--cost-only", action="store_true", help="only the side-by-side cost per architecture")
    ap.add_argument("--cost-archs", type=int, default=4, help="cells scored per timed block (default 4)")
    ap.add_argument("--cost-rounds", type=int, default=4, help="ABBA rounds (default 4)")
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    from nshot import benchmarks
    from nshot.score.rank import make_scorer
    from nshot.score.ranking import rank_report
    from nshot.score.run import load_run
    prepare_cifar(Path(args.data_root))
    out = Path(args.out)
    common = [f"seed={args.seed}", "device=cpu", f"threads={args.threads}", f"model.C={args.C}", f"model.N={args.N}",
              f"train.epochs={args.epochs}", f"data.root={args.data_root}", f"data.train_subset={args.train_images}",
              "run.progress=none"]
    split = REPO.parent / "shared" / "data" / "nb201" / "cifar10_valid_split.json"
    if split.is_file():
        common.append(f"data.split_file={split}")
    bench = benchmarks.get("nb201", path=args.table)
    subset = int(args.archs) if args.archs.isdigit() else args.archs
    if subset == "kendall327":
        subset = str(Path(args.table).parent / "kendall_subset_327.txt")
    archs = bench.subset(subset, seed=args.seed)
    truth = bench.query_many(archs, "cifar10/test")
    from nshot import spaces
    params = [spaces.get("nb201").num_params(a) for a in archs]
    summary = {"command": command_line("shared_probe", argv), "archs": len(archs), "settings": vars(args), "rows": []}
    configs = {"spos": "configs/nb201/spos.yaml", "pinas": "configs/nb201/pinas.yaml"}
    for name in args.supernets:
        config = configs[name]
        run_dir = out / name
        t0 = time.perf_counter()
        train(str(REPO / config), run_dir, common)
        run = load_run(run_dir, "cpu", threads=args.threads)
        run.eval = run.eval.subset(min(args.eval_images, len(run.eval)))
        probes = ["knn", "linear", "shared-linear"] + (["classifier"] if name == "spos" else [])
        if args.cost_only:
            summary.setdefault("cost", {})[name] = cost(run, probes, archs[:args.cost_archs], args)
            print(json.dumps({name: summary["cost"][name]}), flush=True)
            continue
        for probe in probes:
            cache = out / name / f"scores-bench-{probe}.csv"
            cache.unlink(missing_ok=True)
            head_file = None
            t1 = time.perf_counter()
            scorer = make_scorer(run, probe=probe, probe_images=args.probe_images, probe_epochs=args.head_epochs,
                                 progress="none", channels_last=False)
            if probe == "shared-linear":
                head_file = Path(scorer.head_record["file"])
                if not scorer.head_record["trained_now"]:   # measure the training too: train it again
                    head_file.unlink()
                    scorer = make_scorer(run, probe=probe, probe_images=args.probe_images,
                                         probe_epochs=args.head_epochs, progress="none", channels_last=False)
            setup = time.perf_counter() - t1
            scorer.cache.path = scorer.cache.write_path = cache
            scorer._load()
            t2 = time.perf_counter()
            scores = scorer.score_many(archs)
            seconds = time.perf_counter() - t2
            import numpy as np
            rep = rank_report(archs, np.asarray(scores), truth, np.asarray(params, dtype=float))
            n_eval = scorer.forward_passes
            row = {"supernet": name, "probe": probe, "tau": rep["kendall_tau"], "tau_ci95": rep["kendall_tau_ci95"],
                   "rho": rep["spearman_rho"], "archs": len(archs), "evaluations": n_eval,
                   "setup_s": setup, "score_s": seconds,
                   "s_per_1000": (seconds / max(n_eval, 1)) * 1000 + (setup if probe == "shared-linear" else 0.0),
                   "head_training_s": scorer.head_record.get("seconds") if probe == "shared-linear" else None,
                   "mean_score": float(np.mean(scores))}
            summary["rows"].append(row)
            print(json.dumps(row), flush=True)
        summary.setdefault("train_s", {})[name] = time.perf_counter() - t0
    (out / ("cost.json" if args.cost_only else "summary.json")).write_text(
        json.dumps(summary, indent=1, default=float) + "\n")
    if args.cost_only:
        return summary
    print(f"{'supernet':8} {'probe':14} {'tau':>7} {'95% CI':>17} {'s/1000 archs':>13} {'head s':>7}")
    for r in summary["rows"]:
        f = lambda v: "n/a" if v is None else f"{v:.3f}"   # noqa: E731 (tau of constant scores is undefined)
        ci = r["tau_ci95"]
        print(f"{r['supernet']:8} {r['probe']:14} {f(r['tau']):>7} {f(ci[0]):>8}..{f(ci[1]):>6} "
              f"{r['s_per_1000']:13.1f} {(r['head_training_s'] or 0):7.1f}")
    return summary


def cost(run, probes: list[str], archs: list[str], args) -> dict:
    """Median seconds per cell of each probe (no cache, ABBA rounds), and s per 1,000 cells (shared-linear: plus
    one head training, timed here too)."""
    import statistics

    from benchmarks.timing import abba
    from nshot.score.rank import make_scorer
    scorers, head_s = {}, None
    for probe in probes:
        s = make_scorer(run, probe=probe, probe_images=args.probe_images, probe_epochs=args.head_epochs,
                        progress="none", channels_last=False)
        s.cache.path = s.cache.write_path = None
        scorers[probe] = s
        if probe == "shared-linear":   # time one head training (the file is already there: train it again)
            from nshot import spaces
            from nshot.score.shared_head import SharedHeadSpec, train_shared_head
            spec = SharedHeadSpec(images=min(args.probe_images, len(run.train)), epochs=args.head_epochs,
                                  batch_size=run.cfg.train.eval_batch_size, seed=run.cfg.seed, step=run.step)
            t0 = time.perf_counter()
            train_shared_head(run.model, spaces.for_config(run.cfg), run.train, spec, run.device)
            head_s = time.perf_counter() - t0

    def block(s):
        def f():
            s.scores, s._measured = {}, {}
            s.score_many(archs)
        return f
    times = abba({p: block(s) for p, s in scorers.items()}, args.cost_rounds, 1)
    out = {}
    for p, ms in times.items():
        per = statistics.median(ms) / 1000 / len(archs)
        out[p] = {"s_per_arch": per, "s_per_1000": per * 1000 + (head_s if p == "shared-linear" else 0.0),
                  "blocks_ms": ms}
    out["shared-linear"]["head_training_s"] = head_s
    return out


if __name__ == "__main__":
    main()
