"""BatchNorm modes for scoring (decision 8): batch statistics, or running statistics re-calibrated per path."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator, Optional

import torch
from torch import nn

from ..nn.ops import batchnorms, grouped_batch_stats  # noqa: F401  (grouped statistics: re-exported)


@contextmanager
def running_stats_mode(model: nn.Module) -> Iterator[None]:
    """Inside the block every BN keeps running statistics as a cumulative average (momentum None) and uses
    them in eval mode; on exit the BN modules are exactly as before (buffers, flags, momentum)."""
    saved = []
    for bn in batchnorms(model):
        saved.append((bn, bn.track_running_stats, bn.momentum, bn.running_mean, bn.running_var,
                      bn.num_batches_tracked))
        dev = next((t.device for t in (bn.weight, bn.running_mean) if t is not None), None)
        if dev is None:
            dev = next(model.parameters()).device
        bn.track_running_stats, bn.momentum = True, None
        bn.running_mean = torch.zeros(bn.num_features, device=dev)
        bn.running_var = torch.ones(bn.num_features, device=dev)
        bn.num_batches_tracked = torch.zeros((), dtype=torch.long, device=dev)
    try:
        yield
    finally:
        for bn, track, momentum, mean, var, nbt in saved:
            bn.track_running_stats, bn.momentum = track, momentum
            bn.running_mean, bn.running_var, bn.num_batches_tracked = mean, var, nbt


@contextmanager
def batch_stats_mode(model: nn.Module) -> Iterator[None]:
    """Inside the block every BN normalises with the statistics of the batch it sees, also in eval mode (a BN
    without running buffers does); on exit the running statistics and flags are restored untouched."""
    saved = []
    for bn in batchnorms(model):
        saved.append((bn, bn.track_running_stats, bn.running_mean, bn.running_var, bn.num_batches_tracked))
        bn.track_running_stats = False
        bn.running_mean = bn.running_var = bn.num_batches_tracked = None
    try:
        yield
    finally:
        for bn, track, mean, var, nbt in saved:
            bn.track_running_stats = track
            bn.running_mean, bn.running_var, bn.num_batches_tracked = mean, var, nbt


@torch.no_grad()
def recalibrate(model: nn.Module, batches: Iterable[torch.Tensor], arch: Optional[str] = None) -> None:
    """Reset running statistics and re-estimate them for ``arch`` on ``batches`` (normalised inputs; ``arch``
    None: a stand-alone network, called on the input alone).

    Must run inside :func:`running_stats_mode` (or on a model whose BN tracks running statistics).
    Only BN modules on the path see data; parameters are untouched.
    """
    for bn in batchnorms(model):
        bn.reset_running_stats()
    was_training = model.training
    model.train()
    try:
        for x in batches:
            model(x) if arch is None else model(x, arch)
    finally:
        model.train(was_training)
