"""Open a training run for scoring: its config, its supernet at the last checkpoint, its data."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import torch

from ..config import Config, ConfigError, from_dict
from ..data import ImageData, num_batches
from ..train.checkpoint import CheckpointError, load_checkpoint
from ..preflight import refuse_differentiable
from ..train.env import resolve_device
from ..train.trainer import FORMAT_VERSION, RunDirError, build_model, load_data


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
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise RunDirError(f"{run_dir} is not a run directory (no config.yaml)")
    from ..config import load_config
    refuse_differentiable(run_dir, load_config(run_dir / "config.yaml"))
    if (run_dir / "fewshot.json").is_file():
        return _load_fewshot_run(run_dir, device, data, threads)
    try:
        state = load_checkpoint(run_dir / "checkpoints")
    except CheckpointError as exc:
        ck = run_dir / "checkpoints"
        kind = CheckpointError if (ck / "last.pt").exists() or (ck / "prev.pt").exists() else RunDirError
        raise kind(f"{run_dir} has no usable checkpoint ({exc}); train it first with "
                   f"`nshot train CONFIG --run-dir {run_dir}`") from None
    if state.get("format") != FORMAT_VERSION or state.get("kind") != "supernet":
        raise RunDirError(f"{run_dir}: checkpoint format {state.get('format')!r} / kind {state.get('kind')!r} is not "
                          f"a supernet checkpoint of format {FORMAT_VERSION} (written by another nshot version?)")
    try:
        cfg = from_dict(Config, state.get("config")).validate()
    except ConfigError as exc:
        raise RunDirError(f"{run_dir}: the checkpoint's config is not valid for this nshot ({exc})") from None
    if state.get("space") != cfg.space.name:
        raise RunDirError(f"{run_dir}: checkpoint is for space {state.get('space')!r}, its config says "
                          f"{cfg.space.name!r}")
    if state.get("node") is not None:
        top = run_dir.parent.parent if run_dir.parent.name == "nodes" else run_dir
        raise RunDirError(f"{run_dir} is one sub-supernet of a few-shot run: score the whole run ({top})")
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
    from ..config import load_config
    from ..train.fewshot import load_partitioned
    cfg = load_config(run_dir / "config.yaml")
    _set_threads(threads or cfg.threads)
    train, evald = data if data is not None else load_data(cfg)
    cfg, model, step, total = load_partitioned(run_dir, (train, evald))
    dev = resolve_device(device or cfg.device)
    model.to(dev).eval()
    return LoadedRun(run_dir, cfg, model, step, total, train, evald, dev)
