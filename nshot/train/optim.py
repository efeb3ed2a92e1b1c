"""Optimizer construction and the off-path update rule (decision 1)."""
from __future__ import annotations

from typing import Iterable

import torch

from ..config import OptimConfig


def build_optimizer(name: str, params: Iterable[torch.nn.Parameter], cfg: OptimConfig) -> torch.optim.Optimizer:
    """SGD with the configured momentum, Nesterov and weight decay."""
    if name != "sgd":
        raise ValueError(f"unknown optimizer {name!r}; available: sgd")
    return torch.optim.SGD(list(params), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                           weight_decay=cfg.weight_decay)


def fill_unused_grads(params: Iterable[torch.nn.Parameter]) -> None:
    """Give parameters off the sampled path a zero gradient, so momentum and weight decay still move them
    (``optim.update_unused: true``; the torch<2.0 zero_grad behaviour). By default such parameters keep
    ``grad=None`` and the optimizer skips them, as official SPOS does."""
    for p in params:
        if p.grad is None and p.requires_grad:
            p.grad = torch.zeros_like(p)
