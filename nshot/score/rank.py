"""`nshot rank`: score a subset of architectures with a run's supernet and compare with a benchmark."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Optional, Union

import numpy as np

from .. import benchmarks, spaces
from ..run import RunDir, atomic_write_bytes
from .ranking import rank_report
from .run import LoadedRun, load_run
from .scorer import ScoreProtocol, Scorer
from ..train.distributed import DistInfo, barrier
from .shard import dist_env, process_group


def make_scorer(run: LoadedRun, bn_mode: str = "batch", recal_batches: int = 0, eval_images: Optional[int] = None,
                eval_batch_size: Optional[int] = None, progress: str = "auto", dedup: str = "exact",
                precision: str = "auto", channels_last: Optional[bool] = None, batch_group: Optional[int] = None,
                rank: int = 0, world: int = 1, probe: Optional[str] = None, probe_images: int = 5000,
                probe_epochs: int = 10, probe_lr: float = 1.0, arch_batch: Optional[int] = None) -> Scorer:
    """A cached scorer for ``run`` (cache: RUN/scores.csv; with ``world > 1`` this rank writes its own part).
    ``probe`` None: ``knn`` for a run trained without labels (Pi-NAS), else the supernet's ``classifier``.
    ``shared-linear`` trains (or reads from RUN/probes/) one head on ``probe_images`` images for
    ``probe_epochs`` epochs at peak learning rate ``probe_lr`` (:mod:`nshot.score.shared_head`)."""
    if probe is None:
        probe = "knn" if run.cfg.train.objective == "pinas" else "classifier"
    evald = run.eval if eval_images is None else run.eval.subset(min(eval_images, len(run.eval)))
    if bn_mode == "recal" and recal_batches < 1:
        recal_batches = 10
    head, head_record, tag = None, {}, ""
    if probe == "shared-linear":
        from .shared_head import SharedHeadSpec, shared_head
        spec = SharedHeadSpec(images=min(probe_images, len(run.train)), epochs=probe_epochs, lr=probe_lr,
                              batch_size=run.cfg.train.eval_batch_size, seed=run.cfg.seed, step=run.step)
        head, head_record = shared_head(run.run_dir, run.model, spaces.for_config(run.cfg), run.train, spec,
                                        run.device, size=run.eval.x.shape[-1])
        tag = spec.tag
    proto = ScoreProtocol(bn_mode=bn_mode, recal_batches=recal_batches if bn_mode == "recal" else 0,
                          recal_batch_size=run.cfg.train.eval_batch_size,
                          eval_batch_size=eval_batch_size or run.cfg.train.eval_batch_size,
                          step=run.step, seed=run.cfg.seed, dedup=dedup, precision=precision, probe=probe,
                          probe_images=probe_images if probe != "classifier" else 0, probe_tag=tag)
    scorer = Scorer(run.model, evald, proto, train_data=run.train, cache_path=RunDir(run.run_dir).scores,
                    device=run.device, progress=progress, channels_last=channels_last, batch_group=batch_group,
                    arch_batch=arch_batch, rank=rank, world=world, head=head)
    scorer.head_record = head_record
    return scorer


def protocol_record(run: LoadedRun, scorer: Scorer) -> dict:
    """What a score means: data split, subset of images, BN mode, seed, checkpoint, dedup mode, precision."""
    d = run.cfg.data
    p = scorer.protocol
    return {"run_dir": str(run.run_dir), "space": run.cfg.space.name, "checkpoint_step": run.step,
            "total_steps": run.total_steps, "seed": run.cfg.seed, "dataset": d.name, "split": d.split,
            "split_file": d.split_file, "scored_on": "eval half" if d.split == "nb201" else "test set",
            "eval_images": p.eval_images, "bn_mode": p.bn_mode, "recal_batches": p.recal_batches,
            "eval_batch_size": p.eval_batch_size, "dedup": p.dedup, "precision": p.precision, "probe": p.probe,
            "probe_images": p.probe_images,
            **({"probe_settings": p.probe_tag, "shared_head": scorer.head_record} if p.probe == "shared-linear" else {})}


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


def ranking_tag(subset, bn_mode: str = "batch", probe: str = "classifier") -> str:
    """The file-name tag of a ranking: :func:`subset_tag`, plus ``-recal`` for recalibrated BN and ``-knn`` /
    ``-linear`` / ``-shared-linear`` for a probe other than the classifier head, so rankings of one run under different scoring
    protocols are kept side by side instead of overwriting each other."""
    tag = subset_tag(subset)
    if bn_mode != "batch":
        tag += f"-{bn_mode}"
    if probe != "classifier":
        tag += f"-{probe}"
    return tag


def rank_run(run_dir: Union[str, Path], benchmark: Optional[str] = None, metric: Optional[str] = None,
             subset: str = "all", table: Optional[str] = None, bn_mode: str = "batch", recal_batches: int = 0,
             eval_images: Optional[int] = None, device: Optional[str] = None, progress: str = "auto",
             run: Optional[LoadedRun] = None, dedup: str = "exact", precision: str = "auto",
             channels_last: Optional[bool] = None, batch_group: Optional[int] = None, probe: Optional[str] = None,
             probe_images: int = 5000, threads: Optional[int] = None, probe_epochs: int = 10,
             probe_lr: float = 1.0, arch_batch: Optional[int] = None) -> dict:
    """Score ``subset`` of ``benchmark`` with the run's supernet; write RUN/rank.json and RUN/rank.csv.
    ``device`` and ``threads`` override the run's own.

    Under torchrun (``RANK``/``WORLD_SIZE`` set, several processes) every rank scores its share of the
    architectures; rank 0 merges the scores and writes the outputs. A rank other than 0 returns
    ``{"rank", "world", "evaluated"}`` only.
    """
    rank, world = dist_env()
    cfg = run.cfg if run is not None else run_config(run_dir)   # read once, before the run is loaded
    if benchmark is None:   # the run's space's own table: nb201 -> nb201, macro -> macro
        benchmark = benchmarks.default_for_space(cfg.space.name)
    bench = benchmarks.get(benchmark, path=table)
    dataset = cfg.data.name
    explicit = metric is not None
    metric = benchmarks.metric_for(bench, dataset, metric)   # the run's dataset's ground truth by default
    run = run or load_run(run_dir, device, threads=threads)
    if bench.space != run.cfg.space.name:
        raise ValueError(f"benchmark {bench.name} is for space {bench.space!r}, the run trained {run.cfg.space.name!r}")
    if world > 1:
        _use_local_gpu(run)
    archs = bench.subset(subset, seed=run.cfg.seed)
    scorer = make_scorer(run, bn_mode, recal_batches, eval_images, progress=progress if rank == 0 else "none",
                         dedup=dedup, precision=precision, channels_last=channels_last, batch_group=batch_group,
                         rank=rank, world=world, probe=probe, probe_images=probe_images, probe_epochs=probe_epochs,
                         probe_lr=probe_lr, arch_batch=arch_batch)
    if world > 1:
        with process_group(world):
            scorer.score_shard(archs)
            barrier(DistInfo(rank, world))
            if rank == 0:
                scorer.gather()
        if rank != 0:
            return {"rank": rank, "world": world, "evaluated": scorer.forward_passes}
    scores = np.asarray(scorer.score_many(archs), dtype=float)
    truth = bench.query_many(archs, metric)
    space = spaces.get(bench.space)
    complexity = np.asarray([space.num_params(a) for a in archs], dtype=float)
    report = rank_report(archs, scores, truth, complexity)
    needed = scorer.evaluations_needed(archs)
    report["protocol"] = {**protocol_record(run, scorer), "benchmark": bench.name, "metric": metric,
                          "subset": str(subset), "n": len(archs), "complexity": "params of the stand-alone network",
                          "evaluations_needed": needed, "evaluations_saved_by_dedup": len(set(archs)) - needed}
    tag = ranking_tag(subset, report["protocol"]["bn_mode"], report["protocol"]["probe"])
    if explicit and metric != bench.dataset_metrics.get(dataset):   # not the run's own ground truth: say which
        tag += "-" + "".join(ch if ch.isalnum() else "_" for ch in metric)
    files = RunDir(run.run_dir)
    _write_json(files.rank("json"), report)          # the latest ranking (what the report shows)
    _write_json(files.rank("json", tag), report)     # kept per subset and scoring protocol
    report["protocol"]["files"] = [files.rank("json", tag).name, files.rank("csv", tag).name]
    report["protocol"]["evaluated_now"] = scorer.forward_passes   # this call's work, not part of the files
    report["protocol"]["world_size"] = world
    order_s = (-scores).argsort(kind="stable").argsort(kind="stable") + 1
    order_t = (-truth).argsort(kind="stable").argsort(kind="stable") + 1
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["arch", "score", "truth", "params", "score_rank", "truth_rank"])
    for i, a in enumerate(archs):
        w.writerow([a, repr(float(scores[i])), repr(float(truth[i])), int(complexity[i]), int(order_s[i]), int(order_t[i])])
    atomic_write_bytes(files.rank("csv"), buf.getvalue().encode())
    atomic_write_bytes(files.rank("csv", tag), buf.getvalue().encode())
    return report


def run_config(run_dir: Union[str, Path]):
    """A run directory's config (read from its config.yaml, without loading the run)."""
    from ..preflight import refuse_differentiable
    cfg = RunDir(run_dir).load_config()
    refuse_differentiable(run_dir, cfg)
    return cfg


def _use_local_gpu(run: LoadedRun) -> None:
    """Under torchrun on a CUDA run, move the model to this process's GPU (``LOCAL_RANK``)."""
    import os

    import torch
    local = os.environ.get("LOCAL_RANK")
    if run.device.type == "cuda" and local is not None and torch.cuda.device_count() > int(local):
        run.device = torch.device("cuda", int(local))
        run.model.to(run.device)


def format_optional(value: Optional[float], fmt: str = ".3f") -> str:
    """``value`` formatted with ``fmt``, or 'n/a' when it is undefined (None, e.g. tau of constant scores)."""
    return "n/a" if value is None else format(value, fmt)


def _ci(ci) -> str:
    """'  (95% bootstrap CI lo .. hi)' or '' when the report has none or it is undefined."""
    if not ci or None in ci:
        return ""
    return f"  (95% bootstrap CI over archs {ci[0]:.3f} .. {ci[1]:.3f})"


def format_rank(report: dict) -> str:
    """A plain-text table of a rank report (undefined values, e.g. tau of constant scores, print as n/a)."""
    p = report["protocol"]
    lines = [f"benchmark {p['benchmark']} metric {p['metric']} subset {p['subset']} (n={p['n']}); "
             f"scored on {p['dataset']} {p['scored_on']} ({p['eval_images']} images), BN {p['bn_mode']}, "
             f"checkpoint step {p['checkpoint_step']}/{p['total_steps']}, seed {p['seed']}",
             *([f"  dedup {p['dedup']}: {p['n']} archs need {p['evaluations_needed']} evaluations "
                f"({p['evaluations_saved_by_dedup']} saved); evaluated now {p.get('evaluated_now', 'n/a')}, "
                f"precision {p.get('precision')}"] if "evaluations_needed" in p else []),
             f"  Kendall tau-b      {format_optional(report['kendall_tau'], '.4f')}{_ci(report.get('kendall_tau_ci95'))}",
             f"  Spearman rho       {format_optional(report['spearman_rho'], '.4f')}"]
    for frac, v in report.get("precision_at", {}).items():
        lines.append(f"  precision@top{float(frac) * 100:g}%  {format_optional(v, '.4f')}")
    top = report.get("top1", {})
    if top:
        lines.append(f"  top-1 by supernet  {format_optional(top.get('truth'), '.2f')} ({top.get('arch')})")
    if report.get("fairness"):
        lines.append("  by complexity quintile:   params range            n    tau     mean error")
        for b in report["fairness"]:
            lines.append(f"    {b['bin']}  {int(b['complexity_min']):>10,d} - {int(b['complexity_max']):<10,d} "
                         f"{b['n']:5d}  {format_optional(b['kendall_tau'], '6.3f'):>6}  {format_optional(b['mean_error'], '+.3f')}")
    return "\n".join(lines)
