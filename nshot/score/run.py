"""Open a training run for scoring: its config, its supernet at the last checkpoint, its data."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import torch

from ..config import Config
from ..data import ImageData, num_batches
from ..errors import CheckpointError, RunDirError
from ..run import RunDir, check_supernet_state
from ..run.build import build_model, load_data
from ..train.checkpoint import load_checkpoint_from
from ..preflight import refuse_differentiable
from ..train.env import resolve_device


@dataclass
class LoadedRun:
    """A trained run, ready to score."""
    run_dir: Path
    cfg: Config
    model: torch.nn.Module
    step: int
    total_steps: int
    train: ImageData
    eval: ImageData
    device: torch.device


def load_run(run_dir: Union[str, Path], device: Optional[str] = None,
             data: Optional[tuple[ImageData, ImageData]] = None, threads: Optional[int] = None) -> LoadedRun:
    """Load ``run_dir``'s config and last checkpoint; raise RunDirError with the reason if it cannot be scored.
    ``device`` and ``threads`` (CPU threads) override the run's own settings."""
    files = RunDir(run_dir)
    run_dir = files.path
    files.require_run()
    refuse_differentiable(run_dir, files.load_config())
    if files.fewshot.is_file():
        return _load_fewshot_run(run_dir, device, data, threads)
    try:
        state, source = load_checkpoint_from(files.checkpoints)
    except CheckpointError as exc:
        kind = CheckpointError if files.has_checkpoint() else RunDirError
        raise kind(f"{run_dir} has no usable checkpoint ({exc}); train it first with "
                   f"`nshot train CONFIG --run-dir {run_dir}`") from None
    cfg = check_supernet_state(state, source)
    if state.get("node") is not None:
        raise RunDirError(f"{run_dir} is one sub-supernet of a few-shot run: score the whole run ({files.top()})")
    dev = resolve_device(device or cfg.device)
    _set_threads(threads or cfg.threads)
    train, evald = data if data is not None else load_data(cfg)
    model = build_model(cfg, train.num_classes, train.x.shape[1])
    model.load_state_dict(state["model"])
    model.to(dev).eval()
    total = cfg.train.epochs * num_batches(len(train), cfg.train.batch_size, cfg.train.drop_last)
    return LoadedRun(run_dir, cfg, model, int(state["step"]), total, train, evald, dev)


def _set_threads(threads: Optional[int]) -> None:
    if threads is not None:
        torch.set_num_threads(threads)


def _load_fewshot_run(run_dir: Path, device: Optional[str], data, threads: Optional[int]) -> LoadedRun:
    from ..train.fewshot import load_partitioned
    cfg = RunDir(run_dir).load_config()
    _set_threads(threads or cfg.threads)
    train, evald = data if data is not None else load_data(cfg)
    cfg, model, step, total = load_partitioned(run_dir, (train, evald))
    dev = resolve_device(device or cfg.device)
    model.to(dev).eval()
    return LoadedRun(run_dir, cfg, model, step, total, train, evald, dev)
