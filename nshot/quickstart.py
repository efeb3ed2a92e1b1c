"""`nshot quickstart`: the whole idea in a few CPU minutes, offline.

Trains a small NB201 supernet on scikit-learn's bundled digits and, at the same time in worker processes (one
per core), trains architectures stand-alone on the same split as a small ground truth; then scores those architectures
with the supernet's shared weights, reports Kendall's tau with its bootstrap interval, and writes the run's
``report.html`` (the scatter of supernet score vs stand-alone accuracy, and the tau).

Protocol (issue 18): the compared cells are stratified by quality over the ten bands of ``QUICKSTART_CELLS``
(16 cells by default: every band once, six evenly spaced bands twice; with ten cells one or two swapped pairs
decided a seed's bootstrap interval), the bands cut from a pool of NB201 cells by their measured quality on digits itself (the pool spans NB201's CIFAR-10
accuracy from 45 % to 95 %, but that order predicts the digits quality only weakly), so that the comparison has
real differences to find; the supernet trains 120 epochs (sampled-path accuracy
still climbs at 60), each stand-alone network 30 epochs. The ground truth of a cell is the mean of
``truth_seeds`` (default 3) stand-alone trainings with seeds ``seed + 1000 k``, each evaluated with BN
statistics calibrated on the clean training images (``STANDALONE``): without the calibration the truth did not
reproduce at all (docs/results.md).
"""
from __future__ import annotations

import json
import os
import time
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any, Optional

import numpy as np

from . import spaces
from .config import Config, load_config
from .run.rundir import RunDir

QUICKSTART_OVERRIDES = [
    "data.name=digits", "data.augment=true", "data.crop_padding=1", "data.flip=false",
    "model.C=8", "model.N=1", "train.epochs=120", "train.batch_size=64", "optim.lr=0.05",
    "optim.weight_decay=5e-4", "train.log_every_steps=300", "sampler.connected_only=true",
    "threads=1",  # networks this small run fastest on one thread; the stand-alone ones train in worker processes
]
#: The stand-alone recipe of the truth. ``bn_calibrate`` and ``drop_last`` were chosen by how well the truth
#: repeats over training seeds alone (no supernet score seen): with BN's running averages and a 5-image last
#: batch, two seeds' truths agreed at tau -0.11; with both options at 0.63 (docs/results.md).
STANDALONE = dict(batch_size=64, lr=0.05, crop_padding=1, flip=False, bn_calibrate=True, drop_last=True)
MIN_ARCHS = 3
#: Cells compared by default (`nshot quickstart --archs`): every band once, six evenly spaced bands twice.
DEFAULT_ARCHS = 16
#: What to run next: the same line as README.md's "The real protocol" (a test checks they agree).
NEXT_COMMAND = ("nshot train configs/nb201/spos.yaml data.split_file=PATH/cifar10_valid_split.json "
                "--run-dir runs/spos-s0")

# NB201 cells in ten bands of their quality on digits (1/10 the weakest), written by benchmarks/quickstart_cells.py:
# a pool of four connected cells per 5-point band of NB201's CIFAR-10 accuracy (45-50 % to 90-95 %, seed 0), one
# cell kept per function, banded by the mean of three stand-alone digits trainings with this module's recipe
# (training seeds 7, 1007, 2007). Only names and bands: no benchmark numbers.
QUICKSTART_CELLS: dict[str, tuple[str, ...]] = {
    "1/10": (
        "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|none~0|none~1|avg_pool_3x3~2|",
        "|none~0|+|avg_pool_3x3~0|nor_conv_3x3~1|+|none~0|nor_conv_1x1~1|avg_pool_3x3~2|",
        "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|none~0|none~1|nor_conv_1x1~2|",),
    "2/10": (
        "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|avg_pool_3x3~0|avg_pool_3x3~1|skip_connect~2|",
        "|avg_pool_3x3~0|+|avg_pool_3x3~0|skip_connect~1|+|avg_pool_3x3~0|skip_connect~1|avg_pool_3x3~2|",
        "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|none~0|nor_conv_1x1~1|skip_connect~2|",),
    "3/10": (
        "|avg_pool_3x3~0|+|avg_pool_3x3~0|none~1|+|avg_pool_3x3~0|avg_pool_3x3~1|skip_connect~2|",
        "|skip_connect~0|+|avg_pool_3x3~0|none~1|+|avg_pool_3x3~0|none~1|avg_pool_3x3~2|",
        "|avg_pool_3x3~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|avg_pool_3x3~0|avg_pool_3x3~1|skip_connect~2|",),
    "4/10": (
        "|skip_connect~0|+|avg_pool_3x3~0|skip_connect~1|+|none~0|avg_pool_3x3~1|avg_pool_3x3~2|",
        "|skip_connect~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|avg_pool_3x3~1|avg_pool_3x3~2|",
        "|avg_pool_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_3x3~1|nor_conv_1x1~2|",),
    "5/10": (
        "|avg_pool_3x3~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|avg_pool_3x3~0|skip_connect~1|none~2|",
        "|none~0|+|avg_pool_3x3~0|none~1|+|avg_pool_3x3~0|skip_connect~1|nor_conv_3x3~2|",
        "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|none~0|nor_conv_1x1~1|none~2|",),
    "6/10": (
        "|avg_pool_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|avg_pool_3x3~0|none~1|none~2|",
        "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|skip_connect~0|avg_pool_3x3~1|avg_pool_3x3~2|",
        "|skip_connect~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|avg_pool_3x3~0|skip_connect~1|avg_pool_3x3~2|",),
    "7/10": (
        "|skip_connect~0|+|skip_connect~0|avg_pool_3x3~1|+|avg_pool_3x3~0|none~1|skip_connect~2|",
        "|avg_pool_3x3~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|avg_pool_3x3~1|avg_pool_3x3~2|",
        "|nor_conv_1x1~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|nor_conv_1x1~1|none~2|",),
    "8/10": (
        "|skip_connect~0|+|avg_pool_3x3~0|skip_connect~1|+|avg_pool_3x3~0|avg_pool_3x3~1|skip_connect~2|",
        "|avg_pool_3x3~0|+|skip_connect~0|nor_conv_3x3~1|+|skip_connect~0|skip_connect~1|avg_pool_3x3~2|",
        "|none~0|+|skip_connect~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",),
    "9/10": (
        "|avg_pool_3x3~0|+|skip_connect~0|skip_connect~1|+|nor_conv_1x1~0|nor_conv_3x3~1|none~2|",
        "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|none~1|skip_connect~2|",
        "|skip_connect~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|nor_conv_1x1~1|avg_pool_3x3~2|",
        "|nor_conv_1x1~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|nor_conv_3x3~0|skip_connect~1|none~2|",),
    "10/10": (
        "|none~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|nor_conv_1x1~1|avg_pool_3x3~2|",
        "|nor_conv_3x3~0|+|avg_pool_3x3~0|none~1|+|avg_pool_3x3~0|avg_pool_3x3~1|nor_conv_3x3~2|",
        "|none~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|nor_conv_3x3~1|avg_pool_3x3~2|",
        "|skip_connect~0|+|none~0|nor_conv_3x3~1|+|nor_conv_3x3~0|avg_pool_3x3~1|nor_conv_1x1~2|",),
}

def pick_architectures(n: int, seed: int) -> list[tuple[str, str]]:
    """``n`` distinct ``(band, arch)`` pairs spread over the quality bands (every band once before any twice;
    bands evenly spaced, the weakest and the strongest always included; a band with no cell left drops out of
    later rounds); ``seed`` picks the cell in a band."""
    bands = list(QUICKSTART_CELLS)
    pool = sum(len(v) for v in QUICKSTART_CELLS.values())
    if not MIN_ARCHS <= n <= pool:
        raise ValueError(f"--archs must be between {MIN_ARCHS} and {pool}, got {n}")
    rs = np.random.default_rng(seed)
    order = {b: list(rs.permutation(len(QUICKSTART_CELLS[b]))) for b in bands}
    picked: list[tuple[str, str]] = []
    while len(picked) < n:   # one round: evenly spaced bands among those with cells left
        left = [b for b in bands if order[b]]
        k = min(n - len(picked), len(left))
        for i in np.unique(np.round(np.linspace(0, len(left) - 1, k)).astype(int)):
            b = left[int(i)]
            picked.append((b, QUICKSTART_CELLS[b][int(order[b].pop(0))]))
    return picked


_WORKER_DATA: dict[str, Any] = {}


def _standalone_job(cfg_dict: dict, arch: str, epochs: int, seed: int) -> float:
    """Train ``arch`` stand-alone on the quickstart's split (in a worker process); its held-out accuracy (%)."""
    import torch

    from .config import from_dict
    from .train.standalone import StandaloneConfig, train_standalone
    from .run.build import load_data
    torch.set_num_threads(1)
    cfg = from_dict(Config, cfg_dict)
    key = json.dumps([cfg.seed, cfg_dict["data"]], sort_keys=True, default=str)   # the split depends on both
    if _WORKER_DATA.get("key") != key:
        _WORKER_DATA.update(key=key, data=load_data(cfg))
    train, evald = _WORKER_DATA["data"]
    sa = StandaloneConfig(epochs=epochs, C=cfg.model.C, N=cfg.model.N, **STANDALONE)
    return train_standalone(cfg.space.name, arch, train, evald, sa, seed=seed)


MAX_WORKERS = 8


def _workers(jobs: int) -> int:
    """Stand-alone worker processes: one per core (at most ``MAX_WORKERS`` and ``jobs``) where there are two
    cores or more, else none (everything in this process). The supernet shares a core with one worker while it
    trains, so every core trains the truth once it is done (10 cells on 2 cores: 50 s instead of 80 s with one worker)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(cores, MAX_WORKERS, jobs) if cores >= 2 else 0


TRUTH_SEED_STRIDE = 1000   # stand-alone training k of a cell uses seed + 1000 k


def run_quickstart(run_dir: Optional[str] = None, num_archs: int = DEFAULT_ARCHS, supernet_epochs: int = 120,
                   standalone_epochs: int = 30, seed: int = 0, progress: str = "auto", truth_seeds: int = 3) -> dict:
    """Run the demo; returns a summary dict (also written to RUN/quickstart.json, RUN/rank.json, rank.csv and
    RUN/report.html). A cell's ground truth is the mean of ``truth_seeds`` stand-alone trainings."""
    if truth_seeds < 1:
        raise ValueError(f"truth_seeds must be >= 1, got {truth_seeds}")
    from .config import to_dict
    from .report import build_report
    from .score import evaluate_arch
    from .score.ranking import rank_report
    from .train.trainer import Trainer, load_data
    from .train.checkpoint import atomic_write_bytes

    t0 = time.time()
    picked = pick_architectures(num_archs, seed)
    run_dir = Path(run_dir or f"runs/quickstart-{time.strftime('%Y%m%d-%H%M%S')}")
    overrides = QUICKSTART_OVERRIDES + [f"train.epochs={supernet_epochs}", f"seed={seed}", "device=cpu",
                                        f"run.progress={progress}"]
    cfg = load_config(None, overrides)
    space = spaces.get(cfg.space.name)
    archs = [a for _, a in picked]
    train, evald = load_data(cfg)
    trainer = Trainer.create(cfg, run_dir, data=(train, evald))
    jobs = [(a, seed + TRUTH_SEED_STRIDE * k) for a in archs for k in range(truth_seeds)]
    workers = _workers(len(jobs))
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=__import__("multiprocessing").get_context("spawn")) \
        if workers else None
    futures: list[Future] = []
    try:
        if pool is not None:   # the ground truth trains in the workers while the supernet trains here
            futures = [pool.submit(_standalone_job, to_dict(cfg), a, standalone_epochs, s) for a, s in jobs]
        print(f"[1/3] training an NB201 supernet (C={cfg.model.C}, N={cfg.model.N}) on digits "
              f"({len(train)} train / {len(evald)} held-out images, {supernet_epochs} epochs) in {run_dir}"
              + (f"; meanwhile {len(archs)} architectures train stand-alone in {workers} worker process"
                 f"{'es' if workers > 1 else ''}" if pool else ""))
        trainer.fit()
        if trainer.interrupted:
            raise KeyboardInterrupt
        print(f"[2/3] {len(archs)} architectures stand-alone ({standalone_epochs} epochs, mean of {truth_seeds} "
              f"training{'s' if truth_seeds > 1 else ''} each) as ground truth, spread over the digits quality bands")
        truth, runs = [], []
        for i, (band, arch) in enumerate(picked):
            accs = [futures[j].result() if pool is not None
                    else _standalone_job(to_dict(cfg), jobs[j][0], standalone_epochs, jobs[j][1])
                    for j in range(i * truth_seeds, (i + 1) * truth_seeds)]
            truth.append(float(np.mean(accs)))
            runs.append(accs)
            spread = f" ({min(accs):.1f}-{max(accs):.1f})" if truth_seeds > 1 else ""
            print(f"  {i + 1:2d}/{len(archs)} {truth[-1]:6.2f}%{spread}  (digits band {band})  {arch}", flush=True)
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    print("[3/3] scoring the same architectures with the supernet's shared weights")
    scores = [evaluate_arch(trainer.model, evald, a, batch_size=512) for a in archs]
    params = [space.num_params(a, C=cfg.model.C, N=cfg.model.N, num_classes=train.num_classes,
                              in_channels=train.x.shape[1]) for a in archs]
    report = rank_report(archs, scores, truth, params, bins=min(5, len(archs)))
    report["protocol"] = {"run_dir": str(run_dir), "space": cfg.space.name, "benchmark": "stand-alone training "
                          "(quickstart)", "metric": f"digits held-out accuracy after {standalone_epochs} epochs, "
                          f"mean of {truth_seeds} training{'s' if truth_seeds > 1 else ''}",
                          "dataset": "digits", "scored_on": "eval half", "n": len(archs),
                          "subset": "cells spread over the digits quality bands (every band once before any twice)", "checkpoint_step": trainer.step,
                          "total_steps": trainer.total_steps, "seed": seed, "bn_mode": "batch",
                          "complexity": "params of the run's stand-alone network"}
    _write_rank(run_dir, report, archs, scores, truth, params, atomic_write_bytes)
    tau, ci = report["kendall_tau"], report.get("kendall_tau_ci95") or [None, None]
    summary = {"kendall_tau": tau, "kendall_tau_ci95": ci, "spearman_rho": report["spearman_rho"],
               "archs": archs, "bands": [b for b, _ in picked], "supernet_acc": scores, "standalone_acc": truth,
               "standalone_runs": runs, "truth_seeds": truth_seeds, "seed": seed, "supernet_epochs": supernet_epochs,
               "standalone_epochs": standalone_epochs, "standalone": dict(STANDALONE), "run_dir": str(run_dir)}
    path = build_report(run_dir)
    summary["seconds"] = time.time() - t0
    atomic_write_bytes(RunDir(run_dir).quickstart, json.dumps(summary, indent=1).encode())
    print(format_summary(summary, path))
    return summary


def _write_rank(run_dir: Path, report: dict, archs, scores, truth, params, write) -> None:
    """rank.json / rank.csv in the format of `nshot rank`, so the report shows the quickstart's comparison."""
    import csv
    import io
    s, t = np.asarray(scores, float), np.asarray(truth, float)
    rs = (-s).argsort(kind="stable").argsort(kind="stable") + 1
    rt = (-t).argsort(kind="stable").argsort(kind="stable") + 1
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["arch", "score", "truth", "params", "score_rank", "truth_rank"])
    for i, a in enumerate(archs):
        w.writerow([a, repr(float(s[i])), repr(float(t[i])), int(params[i]), int(rs[i]), int(rt[i])])
    files = RunDir(run_dir)
    write(files.rank("csv"), buf.getvalue().encode())
    write(files.rank("json"), (json.dumps(report, indent=1) + "\n").encode())


def _fmt(x: Optional[float]) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def format_summary(summary: dict, report_path: Path) -> str:
    """The closing table: each architecture's two accuracies and band, tau with its interval, the next step."""
    lines = ["", f"{'supernet':>9} {'stand-alone':>11}  {'band':>5}  architecture"]
    rows = sorted(zip(summary["supernet_acc"], summary["standalone_acc"], summary["bands"], summary["archs"]),
                  key=lambda r: -r[0])
    lines += [f"{s:8.2f}% {g:10.2f}%  {b:>5}  {a}" for s, g, b, a in rows]
    lo, hi = summary["kendall_tau_ci95"]
    lines += ["", f"Kendall tau, supernet vs stand-alone: {_fmt(summary['kendall_tau'])} "
              f"(95 % bootstrap interval {_fmt(lo)} .. {_fmt(hi)}; Spearman {_fmt(summary['spearman_rho'])}) over "
              f"{len(summary['archs'])} architectures, {summary['seconds']:.0f} s.",
              "A DEMO scale (8x8 digits, tiny networks, a small stand-alone ground truth): see docs/results.md "
              "for its spread over seeds.",
              f"Report: {report_path}",
              "Next, the real protocol (NB201 on CIFAR-10, tau against the benchmark; README.md):",
              f"  {NEXT_COMMAND}"]
    return "\n".join(lines)
