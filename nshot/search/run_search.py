"""`nshot search`: search a trained run's supernet; fitness = supernet score (cached in RUN/scores.csv)."""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Optional, Union

import numpy as np

from .. import spaces
from ..run import RunDir
from ..score.rank import _write_json, make_scorer, protocol_record
from ..score.run import load_run
from ..train.progress import Progress
from .constraint import Constraint
from .fitness import CachedFitness


def search_run(run_dir: Union[str, Path], strategy: str = "evolution", budget: Optional[int] = None,
               constraint: Optional[Constraint] = None, top_k: int = 10, seed: Optional[int] = None,
               bn_mode: str = "batch", recal_batches: int = 0, eval_images: Optional[int] = None,
               benchmark: Optional[str] = None, metric: Optional[str] = None, table: Optional[str] = None,
               device: Optional[str] = None, progress: str = "auto", probe: Optional[str] = None,
               probe_images: int = 5000, threads: Optional[int] = None, probe_epochs: int = 10,
               probe_lr: float = 1.0, **strategy_kwargs) -> dict:
    """Run ``strategy`` on the run's supernet; write RUN/search.json and return it as a dict.

    With ``benchmark``, the ground truth of the best architectures is looked up and reported too.
    """
    from . import get_strategy, needs_budget, progress_steps

    run = load_run(run_dir, device, threads=threads)
    space = spaces.for_config(run.cfg)
    bench = None
    if benchmark is not None:
        from .. import benchmarks
        bench = benchmarks.get(benchmark, path=table)
        metric = benchmarks.metric_for(bench, run.cfg.data.name, metric)   # the run's dataset's ground truth
    from ..run.build import space_shape
    shape = space_shape(run.cfg, run.train.num_classes, run.train.x.shape[1])   # the run's own network
    scorer = make_scorer(run, bn_mode, recal_batches, eval_images, progress="none", probe=probe,
                         probe_images=probe_images, probe_epochs=probe_epochs, probe_lr=probe_lr)
    fitness = CachedFitness(batch_fn=scorer.score_many, cache=dict(scorer.scores))
    fn = get_strategy(strategy)
    rng = np.random.default_rng(run.cfg.seed if seed is None else seed)
    kwargs = dict(strategy_kwargs)
    if constraint is not None:
        kwargs["constraint"] = constraint
    if needs_budget(fn) and budget is None:
        raise ValueError(f"{strategy} search needs --budget (number of distinct architectures to evaluate)")
    takes = inspect.signature(fn).parameters
    call = {**({"rng": rng} if "rng" in takes else {}), **({"budget": budget} if "budget" in takes else {})}
    steps = progress_steps(fn, kwargs)
    bar = None
    if steps is not None:
        bar = Progress(steps, mode=progress, desc=strategy, log_every=1)
        kwargs["progress"] = lambda info: bar.update(1, {"best": f"{info.get('best', float('nan')):.2f}",
                                                         "evals": info.get("evaluations")})
    result = fn(space, fitness, top_k=top_k, **call, **kwargs)
    if bar is not None:
        bar.close()
    out = result.to_dict()
    best = []
    for arch, score in result.best:
        row = {"arch": arch, "score": float(score), "truth": None, "params": space.num_params(arch, **shape),
               "flops": space.flops(arch, **shape)}
        if bench is not None and arch in bench:
            row["truth"] = float(bench.query(arch, metric))
        best.append(row)
    out["best"] = best
    out["protocol"] = {**protocol_record(run, scorer), "strategy": strategy, "budget": budget,
                       "constraint": constraint.to_dict() if constraint is not None else None,
                       "benchmark": bench.name if bench is not None else None,
                       "metric": metric if bench is not None else None,
                       "sizes": "params and FLOPs of the run's own network: " + ", ".join(
                           f"{k}={v}" for k, v in shape.items())}
    _write_json(RunDir(run.run_dir).search, out)
    return out


def format_search(out: dict) -> str:
    """Plain-text table of a search result."""
    lines = [f"{out.get('strategy')} search: {out.get('evaluations')} architectures evaluated "
             f"(scores cached in {out['protocol']['run_dir']}/scores.csv)",
             f"{'rank':>4} {'score':>7} {'truth':>7} {'params':>10}  architecture"]
    for i, r in enumerate(out["best"], 1):
        truth = f"{r['truth']:7.2f}" if r.get("truth") is not None else "    n/a"
        lines.append(f"{i:4d} {r['score']:7.2f} {truth} {r['params']:10,d}  {r['arch']}")
    return "\n".join(lines)
