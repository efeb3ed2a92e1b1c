"""BatchNorm modes for scoring (decision 8): batch statistics, or running statistics re-calibrated per path."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn


def batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


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
def recalibrate(model: nn.Module, batches: list[torch.Tensor], arch) -> None:
    """Reset running statistics and re-estimate them for ``arch`` on ``batches`` (normalised inputs).

    Must run inside :func:`running_stats_mode` (or on a model whose BN tracks running statistics).
    Only BN modules on the path see data; parameters are untouched.
    """
    for bn in batchnorms(model):
        bn.reset_running_stats()
    was_training = model.training
    model.train()
    for x in batches:
        model(x, arch)
    model.train(was_training)


@contextmanager
def grouped_batch_stats(model: nn.Module, stats_batch: int) -> Iterator[None]:
    """Inside the block a batch of ``g * stats_batch`` images is normalised by every BN as ``g`` separate
    batches of ``stats_batch`` (each with its own statistics), so one large forward pass gives what ``g``
    passes of ``stats_batch`` give. A batch of at most ``stats_batch`` images is normalised as usual.

    Use it inside :func:`batch_stats_mode`. The ``g`` groups are laid side by side as channels of one
    ``(stats_batch, g * C, H, W)`` tensor, so each group's statistics are reduced by the same BatchNorm
    kernel over the same elements as in a separate pass (bit-identical on CPU in the tests).
    """
    def grouped(bn: nn.modules.batchnorm._BatchNorm, original):
        def forward(x: torch.Tensor) -> torch.Tensor:
            n = x.shape[0]
            if x.dim() != 4 or n <= stats_batch or bn.running_mean is not None:
                return original(x)
            if n % stats_batch:
                raise ValueError(f"grouped BN got a batch of {n}, not a multiple of {stats_batch}")
            g, (c, h, w) = n // stats_batch, x.shape[1:]
            z = x.reshape(g, stats_batch, c, h, w).transpose(0, 1).reshape(stats_batch, g * c, h, w)
            weight = None if bn.weight is None else bn.weight.repeat(g)
            bias = None if bn.bias is None else bn.bias.repeat(g)
            out = F.batch_norm(z, None, None, weight, bias, True, 0.0, bn.eps)
            return out.reshape(stats_batch, g, c, h, w).transpose(0, 1).reshape(n, c, h, w)
        return forward

    patched = []
    for bn in batchnorms(model):
        if "forward" in bn.__dict__:
            raise RuntimeError("grouped_batch_stats: a BN forward is already patched (nested use?)")
        bn.forward = grouped(bn, bn.forward)
        patched.append(bn)
    try:
        yield
    finally:
        for bn in patched:
            del bn.forward
