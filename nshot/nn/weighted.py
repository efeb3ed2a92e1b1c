"""Weighted forward passes: every candidate of every decision runs, the architecture enters as a tensor.

A network that supports them (NB201, the layer-wise MobileNet spaces) offers, besides ``forward(x, arch)``:

* ``path_weights(arch)``: a (decisions x choices) table of floats on the host: 1 where ``arch`` takes a choice
  that can reach the output, 0 elsewhere (NB201 folds its dead edges in, so they contribute nothing, as the
  eager forward skips them);
* ``forward_weighted(x, weights, stats_batch=None)``: ``weights`` is a (P, decisions, choices) tensor; the batch
  holds P equal blocks, block p runs with the weights of path p (several paths in one forward), and with
  batch-statistics BN every BN normalises each block of ``stats_batch`` images (default: the path's block)
  with its own statistics, as separate passes would;
* ``choice_params()``: parameter name -> (decision, choice) for the parameters of candidate modules
  (parameters not listed are shared by every path).

With one-hot weights the output equals ``forward(x, arch)`` exactly in value (a term times 1 is itself, a
term times 0 adds an exact zero), and the gradient of a module whose weight is 0 is exactly zero, so a
masked optimizer step gives what the eager step gives (``nshot.train.static``). The same function with soft
weights is a mixed op (differentiable search).
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import Optional

import torch

from .ops import grouped_batch_stats


def weighted_add(total: Optional[torch.Tensor], out: torch.Tensor, w: torch.Tensor, paths: int) -> torch.Tensor:
    """``total + w * out`` where ``w`` (P,) holds one weight per path and the batch holds P equal blocks."""
    if paths == 1:
        w0 = w.reshape(())
        return out * w0 if total is None else torch.addcmul(total, out, w0)
    shape = out.shape
    o = out.reshape(paths, shape[0] // paths, *shape[1:])
    wv = w.reshape(paths, *([1] * (o.dim() - 1))).to(o.dtype)
    if total is None:
        return (o * wv).reshape(shape)
    return torch.addcmul(total.reshape(o.shape), o, wv).reshape(shape)


def path_stats(model: torch.nn.Module, batch: int, paths: int, stats_batch: Optional[int]):
    """The BN context of a weighted forward of ``paths`` blocks: grouped batch statistics when the batch holds
    more than one statistics block, else nothing."""
    if batch % paths:
        raise ValueError(f"a weighted forward of {paths} paths needs a batch divisible by {paths}, got {batch}")
    size = stats_batch if stats_batch is not None else batch // paths
    if batch <= size:
        return nullcontext()
    if batch % size:
        raise ValueError(f"batch of {batch} is not a multiple of the statistics block {size}")
    return grouped_batch_stats(model, size)
