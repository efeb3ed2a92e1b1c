"""`nshot rank`: score a subset of architectures with a run's supernet and compare with a benchmark."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Optional, Union

import numpy as np

from .. import benchmarks, spaces
from ..train.checkpoint import atomic_write_bytes
from .ranking import rank_report
from .run import LoadedRun, load_run
from .scorer import ScoreProtocol, Scorer


def make_scorer(run: LoadedRun, bn_mode: str = "batch", recal_batches: int = 0, eval_images: Optional[int] = None,
                eval_batch_size: Optional[int] = None, progress: str = "auto") -> Scorer:
    """A cached scorer for ``run`` (cache: RUN/scores.csv)."""
    evald = run.eval if eval_images is None else run.eval.subset(min(eval_images, len(run.eval)))
    if bn_mode == "recal" and recal_batches < 1:
        recal_batches = 10
    proto = ScoreProtocol(bn_mode=bn_mode, recal_batches=recal_batches if bn_mode == "recal" else 0,
                          recal_batch_size=run.cfg.train.eval_batch_size,
                          eval_batch_size=eval_batch_size or run.cfg.train.eval_batch_size,
                          step=run.step, seed=run.cfg.seed)
    return Scorer(run.model, evald, proto, train_data=run.train, cache_path=run.run_dir / "scores.csv",
                  device=run.device, progress=progress)


def protocol_record(run: LoadedRun, scorer: Scorer) -> dict:
    """What a score means: data split, subset of images, BN mode, seed, checkpoint."""
    d = run.cfg.data
    p = scorer.protocol
    return {"run_dir": str(run.run_dir), "space": run.cfg.space.name, "checkpoint_step": run.step,
            "total_steps": run.total_steps, "seed": run.cfg.seed, "dataset": d.name, "split": d.split,
            "split_file": d.split_file, "scored_on": "eval half" if d.split == "nb201" else "test set",
            "eval_images": p.eval_images, "bn_mode": p.bn_mode, "recal_batches": p.recal_batches,
            "eval_batch_size": p.eval_batch_size}


def _write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, default=_json_default) + "\n").encode())


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    raise TypeError(type(o).__name__)


def subset_tag(subset) -> str:
    """A file-name tag for a subset: all, kendall327, the file's stem, or nN."""
    text = str(subset)
    if text.isdigit():
        return f"n{text}"
    if text in ("all", "kendall327"):
        return text
    stem = Path(text).stem
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in stem) or "subset"


def rank_run(run_dir: Union[str, Path], benchmark: str = "nb201", metric: str = "cifar10/test",
             subset: str = "all", table: Optional[str] = None, bn_mode: str = "batch", recal_batches: int = 0,
             eval_images: Optional[int] = None, device: Optional[str] = None, progress: str = "auto",
             run: Optional[LoadedRun] = None) -> dict:
    """Score ``subset`` of ``benchmark`` with the run's supernet; write RUN/rank.json and RUN/rank.csv."""
    bench = benchmarks.get(benchmark, path=table)
    if metric not in bench.metrics:
        raise ValueError(f"unknown metric {metric!r} for benchmark {bench.name}; available: {', '.join(bench.metrics)}")
    run = run or load_run(run_dir, device)
    if bench.space != run.cfg.space.name:
        raise ValueError(f"benchmark {bench.name} is for space {bench.space!r}, the run trained {run.cfg.space.name!r}")
    archs = bench.subset(subset, seed=run.cfg.seed)
    scorer = make_scorer(run, bn_mode, recal_batches, eval_images, progress=progress)
    scores = np.asarray(scorer.score_many(archs), dtype=float)
    truth = bench.query_many(archs, metric)
    space = spaces.get(bench.space)
    complexity = np.asarray([space.num_params(a) for a in archs], dtype=float)
    report = rank_report(archs, scores, truth, complexity)
    report["protocol"] = {**protocol_record(run, scorer), "benchmark": bench.name, "metric": metric,
                          "subset": str(subset), "n": len(archs), "complexity": "params of the stand-alone network"}
    tag = subset_tag(subset)
    _write_json(run.run_dir / "rank.json", report)          # the latest ranking (what the report shows)
    _write_json(run.run_dir / f"rank-{tag}.json", report)   # kept per subset: 327-cell and all-cell rankings
    report["protocol"]["files"] = [f"rank-{tag}.json", f"rank-{tag}.csv"]
    order_s = (-scores).argsort(kind="stable").argsort(kind="stable") + 1
    order_t = (-truth).argsort(kind="stable").argsort(kind="stable") + 1
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["arch", "score", "truth", "params", "score_rank", "truth_rank"])
    for i, a in enumerate(archs):
        w.writerow([a, repr(float(scores[i])), repr(float(truth[i])), int(complexity[i]), int(order_s[i]), int(order_t[i])])
    atomic_write_bytes(run.run_dir / "rank.csv", buf.getvalue().encode())
    atomic_write_bytes(run.run_dir / f"rank-{tag}.csv", buf.getvalue().encode())
    return report


def _f(value, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def format_rank(report: dict) -> str:
    """A plain-text table of a rank report (undefined values, e.g. tau of constant scores, print as n/a)."""
    p = report["protocol"]
    lines = [f"benchmark {p['benchmark']} metric {p['metric']} subset {p['subset']} (n={p['n']}); "
             f"scored on {p['dataset']} {p['scored_on']} ({p['eval_images']} images), BN {p['bn_mode']}, "
             f"checkpoint step {p['checkpoint_step']}/{p['total_steps']}, seed {p['seed']}",
             f"  Kendall tau-b      {_f(report['kendall_tau'], '.4f')}",
             f"  Spearman rho       {_f(report['spearman_rho'], '.4f')}"]
    for frac, v in report.get("precision_at", {}).items():
        lines.append(f"  precision@top{float(frac) * 100:g}%  {_f(v, '.4f')}")
    top = report.get("top1", {})
    if top:
        lines.append(f"  top-1 by supernet  {_f(top.get('truth'), '.2f')} ({top.get('arch')})")
    if report.get("fairness"):
        lines.append("  by complexity quintile:   params range            n    tau     mean error")
        for b in report["fairness"]:
            lines.append(f"    {b['bin']}  {int(b['complexity_min']):>10,d} - {int(b['complexity_max']):<10,d} "
                         f"{b['n']:5d}  {_f(b['kendall_tau'], '6.3f'):>6}  {_f(b['mean_error'], '+.3f')}")
    return "\n".join(lines)
