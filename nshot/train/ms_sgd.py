"""Momentum separation (MS): one SGD optimizer holding K momentum buffers per parameter.

Each step updates parameters with the momentum buffer of ONE group (the group of the subnet being trained);
the other groups' buffers are not touched. Buffers are allocated lazily, the first time a group steps a
parameter. With K = 1 this is ``torch.optim.SGD`` step for step (it calls the same functional update).

The optimizer keeps torch's ``step()`` contract: the group a step uses travels with the param group, as its
``lr`` does (``param_group["momentum_group"]``, set by :meth:`MomentumSeparatedSGD.select_group` or by the
step plan, :func:`nshot.train.plan.apply_plan`).
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Optional

import torch
from torch.optim.sgd import sgd


class GroupedMomentum:
    """What every nshot optimizer shows the trainer, the static executor and the diagnostics: ``num_groups``
    sets of momentum buffers per parameter, set ``k`` stored in the optimizer state under ``buffer_key(k)``;
    the set the next ``step()`` joins is the param group's ``momentum_group`` (0 when absent)."""

    num_groups = 1
    param_groups: list[dict[str, Any]]
    state: Any

    def buffer_key(self, group: int) -> str:
        return "momentum_buffer"

    def momentum_buffer(self, param: torch.Tensor, group: int = 0) -> Optional[torch.Tensor]:
        """Group ``group``'s buffer of ``param`` (None until that group first stepped it)."""
        return self.state[param].get(self.buffer_key(group)) if param in self.state else None

    def pending_momentum(self) -> Iterator[tuple[torch.Tensor, float, torch.Tensor]]:
        """(parameter, weight decay, momentum buffer) for every parameter the next ``step()`` updates that
        already has a buffer in the group that step joins."""
        for pg in self.param_groups:
            key = self.buffer_key(int(pg.get("momentum_group", 0)))
            for p in pg["params"]:
                if p.grad is None or p not in self.state:
                    continue
                buf = self.state[p].get(key)
                if buf is not None:
                    yield p, pg["weight_decay"], buf


class MomentumSeparatedSGD(GroupedMomentum, torch.optim.Optimizer):
    """SGD (momentum, Nesterov, weight decay) with ``num_groups`` momentum buffers per parameter.

    ``step()`` applies the update of each param group's ``momentum_group`` (:meth:`select_group`). Parameters
    whose ``grad`` is None are skipped (no momentum, no weight decay), exactly as ``torch.optim.SGD`` does.
    """

    def __init__(self, params: Iterable, lr: float, num_groups: int, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, foreach: Optional[bool] = None):
        if num_groups < 1:
            raise ValueError(f"num_groups must be >= 1, got {num_groups}")
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"invalid lr/momentum/weight_decay: {lr}, {momentum}, {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, foreach=foreach, momentum_group=0)
        super().__init__(params, defaults)
        self.num_groups = num_groups

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for pg in self.param_groups:   # checkpoints written before the group travelled with the param group
            pg.setdefault("momentum_group", 0)

    def buffer_key(self, group: int) -> str:
        return f"momentum_buffer_{group}"

    def select_group(self, group: int) -> None:
        """Make the next ``step()`` use momentum group ``group`` (in every param group)."""
        self._check_group(group)
        for pg in self.param_groups:
            pg["momentum_group"] = int(group)

    def _check_group(self, group: int) -> None:
        if not 0 <= group < self.num_groups:
            raise ValueError(f"momentum group {group} is out of range 0..{self.num_groups - 1}")

    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], float]] = None):
        """One update of the parameters, each param group with its ``momentum_group``'s buffers."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for pg in self.param_groups:
            group = int(pg["momentum_group"])
            self._check_group(group)
            key = self.buffer_key(group)
            params, grads, bufs = [], [], []
            for p in pg["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("MomentumSeparatedSGD does not support sparse gradients")
                params.append(p)
                grads.append(p.grad)
                bufs.append(self.state[p].get(key))
            if not params:
                continue
            sgd(params, grads, bufs, weight_decay=pg["weight_decay"], momentum=pg["momentum"], lr=pg["lr"],
                dampening=pg["dampening"], nesterov=pg["nesterov"], maximize=False, foreach=pg["foreach"])
            if pg["momentum"] != 0:
                for p, buf in zip(params, bufs):
                    self.state[p][key] = buf
        return loss

    def state_dict(self):
        sd = super().state_dict()
        sd["num_groups"] = self.num_groups
        return sd

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        k = state_dict.pop("num_groups", self.num_groups)
        if k != self.num_groups:
            raise ValueError(f"optimizer state has {k} momentum groups, this optimizer has {self.num_groups}")
        super().load_state_dict(state_dict)
