"""Optimizer construction and the off-path update rule (decision 1)."""
from __future__ import annotations

from typing import Iterable, Optional

import torch

from ..config import OptimConfig
from .ms_sgd import MomentumSeparatedSGD


def build_optimizer(name: str, params: Iterable[torch.nn.Parameter], cfg: OptimConfig,
                    num_groups: int = 1) -> torch.optim.Optimizer:
    """``sgd``: torch SGD; ``ms_sgd``: momentum-separated SGD with ``num_groups`` momentum buffers."""
    if name == "sgd":
        return torch.optim.SGD(list(params), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay)
    if name == "ms_sgd":
        return MomentumSeparatedSGD(list(params), lr=cfg.lr, num_groups=num_groups, momentum=cfg.momentum,
                                    nesterov=cfg.nesterov, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; available: sgd, ms_sgd")


@torch.no_grad()
def grad_momentum_cosine(optimizer: torch.optim.Optimizer, group: int = 0) -> Optional[torch.Tensor]:
    """Cosine between this step's update direction (grad + weight decay) and the momentum buffer it is about to
    join (the buffer of momentum group ``group`` for MS), over parameters that have both; None if none do.
    A device tensor: no host sync."""
    dots, g2, m2 = [], [], []
    for pg in optimizer.param_groups:
        for p in pg["params"]:
            if p.grad is None or p not in optimizer.state:
                continue
            st = optimizer.state[p]
            buf = st.get(MomentumSeparatedSGD.buffer_key(group)) if isinstance(optimizer, MomentumSeparatedSGD) \
                else st.get("momentum_buffer")
            if buf is None:
                continue
            d = p.grad.add(p, alpha=pg["weight_decay"]) if pg["weight_decay"] else p.grad
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
