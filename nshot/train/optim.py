"""Optimizers by name, the off-path update rule (decision 1), the gradient-momentum cosine diagnostic.

Every optimizer here keeps torch's ``step()`` contract and shows the :class:`~nshot.train.ms_sgd.GroupedMomentum`
interface; one that keeps several momentum groups (``grouped``) gets the run's momentum grouping
(:mod:`nshot.train.grouping`), and the step plan selects the group through the param groups.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional

import torch

from ..config import Config, OptimConfig
from ..registry import Registry
from .grouping import build_grouping
from .ms_sgd import GroupedMomentum, MomentumSeparatedSGD


class SGD(GroupedMomentum, torch.optim.SGD):
    """``torch.optim.SGD`` (one momentum group) with the interface the trainer and diagnostics read."""


@dataclass(frozen=True)
class OptimizerEntry:
    """A registered optimizer: ``build(params, optim_config, num_groups)``; ``grouped``: it keeps one momentum
    buffer set per group of a momentum grouping (momentum separation); ``static``: its update is SGD with
    momentum, dampening, Nesterov and weight decay read from its param groups -- the update the static executor
    (:mod:`nshot.train.static`) computes itself, so only such an optimizer may run there."""
    build: Callable[[list[torch.nn.Parameter], OptimConfig, int], torch.optim.Optimizer]
    grouped: bool = False
    static: bool = False


OPTIMIZERS = Registry("optimizer")   # name -> OptimizerEntry; the config's train.optimizer choices
OPTIMIZERS.register("sgd")(OptimizerEntry(
    lambda ps, c, k: SGD(ps, lr=c.lr, momentum=c.momentum, nesterov=c.nesterov, weight_decay=c.weight_decay),
    static=True))
OPTIMIZERS.register("ms_sgd")(OptimizerEntry(
    lambda ps, c, k: MomentumSeparatedSGD(ps, lr=c.lr, num_groups=k, momentum=c.momentum, nesterov=c.nesterov,
                                          weight_decay=c.weight_decay), grouped=True, static=True))


def optimizer_entry(name: str) -> OptimizerEntry:
    """The :class:`OptimizerEntry` registered as ``name`` (an unknown name raises, listing the registered)."""
    return OPTIMIZERS.get(name)


def build_optimizer(name: str, params: Iterable[torch.nn.Parameter], cfg: OptimConfig,
                    num_groups: int = 1) -> torch.optim.Optimizer:
    """The optimizer registered as ``name`` over ``params`` (``num_groups`` momentum groups if grouped)."""
    return optimizer_entry(name).build(list(params), cfg, num_groups)


def build_momentum(cfg: Config, params: Iterable[torch.nn.Parameter], space: Any, complexity: Any,
                   exclude: Iterable[int] = ()) -> tuple[torch.optim.Optimizer, Optional[Any]]:
    """The run's optimizer and, for a grouped one, its momentum grouping (``ms.*``; never on the decisions in
    ``exclude``); the grouping is None for an optimizer with one group."""
    entry = optimizer_entry(cfg.train.optimizer)
    grouping = None
    if entry.grouped:
        grouping = build_grouping(cfg.ms.grouping, space, complexity, cfg.ms.edge, cfg.ms.groups, cfg.seed,
                                  exclude_edges=sorted(exclude))
    return entry.build(list(params), cfg.optim, grouping.num_groups if grouping else 1), grouping


@torch.no_grad()
def grad_momentum_cosine(optimizer: GroupedMomentum) -> Optional[torch.Tensor]:
    """Cosine between this step's update direction (grad + weight decay) and the momentum buffer it is about to
    join (the group the next ``step()`` uses), over parameters that have both; None if none do.
    A device tensor: no host sync."""
    dots, g2, m2 = [], [], []
    for p, weight_decay, buf in optimizer.pending_momentum():
        d = p.grad.add(p, alpha=weight_decay) if weight_decay else p.grad
        dots.append((d * buf).sum())
        g2.append((d * d).sum())
        m2.append((buf * buf).sum())
    if not dots:
        return None
    return torch.stack(dots).sum() / (torch.stack(g2).sum().sqrt() * torch.stack(m2).sum().sqrt() + 1e-12)


def fill_unused_grads(params: Iterable[torch.nn.Parameter]) -> None:
    """Give parameters off the sampled path a zero gradient, so momentum and weight decay still move them
    (``optim.update_unused: true``; the torch<2.0 zero_grad behaviour). By default such parameters keep
    ``grad=None`` and the optimizer skips them, as official SPOS does."""
    for p in params:
        if p.grad is None and p.requires_grad:
            p.grad = torch.zeros_like(p)
