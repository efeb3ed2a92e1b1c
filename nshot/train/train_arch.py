"""`nshot train-arch`: train one architecture from scratch and record the result in a run directory."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Optional, Union

import torch

from .. import spaces
from ..config import Config
from ..run.io import atomic_write_bytes
from ..run.rundir import RunDir
from .env import environment, resolve_device
from .metrics import MetricsLog
from .standalone import StandaloneConfig, check_batches, train_standalone
from .trainer import RunDirError, load_data


def network_shape(cfg: Config, sa: StandaloneConfig) -> dict:
    """The shape of the network ``train-arch`` trains: NB201's ``--C``/``--N`` (the benchmark protocol by
    default), else the run's own model options (``model.widths`` etc. of a macro / proxyless run; unset ones
    keep the space's default)."""
    space = spaces.for_config(cfg)
    if "C" in space.shape_options:
        return {k: getattr(sa, k) for k in ("C", "N") if k in space.shape_options}
    return spaces.shape_from_config(cfg)


_FLAGS = {"epochs": 200, "batch_size": 256, "lr": 0.1, "weight_decay": 5e-4, "nesterov": True, "C": 16, "N": 5,
          "aux_weight": 0.0, "cutout": 0, "drop_path": 0.0, "grad_clip": None, "drop_last": False,
          "bn_calibrate": False}


def standalone_settings(args: Any, cfg: Config) -> dict[str, Any]:
    """The stand-alone protocol: a command-line flag (``args.<key>``, None when not given) wins over the config's
    ``standalone.<key>``, which wins over the space's own default (``SearchSpace.standalone_defaults``, e.g. the
    DARTS space's C 36, N 6), which wins over the built-in default (NB201 protocol)."""
    own = spaces.space_class(cfg.space.name).standalone_defaults
    out = {}
    for key, default in _FLAGS.items():
        flag = getattr(args, key, None)
        value = flag if flag is not None else getattr(cfg.standalone, key)
        out[key] = value if value is not None else own.get(key, default)
    return out


def train_arch(arch: str, cfg: Config, sa: StandaloneConfig, run_dir: Union[str, Path],
               source_run: Optional[Path] = None) -> dict:
    """Train ``arch`` stand-alone on ``cfg``'s data; writes RUN/result.json and RUN/metrics.jsonl."""
    files = RunDir(run_dir)
    run_dir = files.path
    if files.result.exists():
        raise RunDirError(f"{run_dir} already holds a result; choose another --run-dir")
    device = resolve_device(cfg.device)
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    train, evald = load_data(cfg)
    check_batches(sa, len(train))       # before the run directory is made
    run_dir.mkdir(parents=True, exist_ok=True)
    log = MetricsLog(files.metrics, tensorboard=cfg.run.tensorboard)
    t0 = time.time()

    def on_epoch(epoch: int, lr: float) -> None:
        log.write({"epoch": epoch + 1, "lr": lr, "seconds": time.time() - t0})
        print(f"epoch {epoch + 1}/{sa.epochs} lr {lr:.5f} {time.time() - t0:.0f}s", flush=True)

    space = spaces.for_config(cfg)
    shape = network_shape(cfg, sa)
    acc = train_standalone(cfg.space.name, arch, train, evald, sa, seed=cfg.seed, device=device, on_epoch=on_epoch,
                           options=space.options, shape=shape)
    protocol = {k: v for k, v in sa.__dict__.items() if k not in ("C", "N") or k in shape}
    result = {"arch": arch, "accuracy": acc, "evaluated_on": f"{cfg.data.name} "
              f"{'eval half' if cfg.data.split == 'nb201' else 'test set'} ({len(evald)} images)",
              "params": space.num_params(arch, **shape, num_classes=train.num_classes, in_channels=train.x.shape[1]),
              "flops": space.flops(arch, **shape, num_classes=train.num_classes, in_channels=train.x.shape[1]),
              "model": shape,
              "protocol": {**protocol, "seed": cfg.seed, "dataset": cfg.data.name, "split": cfg.data.split,
                           "split_file": cfg.data.split_file},
              "source_run": str(source_run) if source_run else None, "seconds": time.time() - t0,
              "env": environment(device)}
    atomic_write_bytes(files.result, json.dumps(result, indent=1).encode())
    return result
