"""Learning-rate policies, stepped per iteration (decision 5).

A policy maps (t, T, arch) to a learning rate; ``arch`` lets subnet-aware policies depend on the subnet.
``rates(t, T, archs)`` is what the step plan asks: the optimizer lr and each path's loss scale. A policy is an
:class:`LRPolicy` subclass registered in ``LR_POLICIES`` (the config's ``train.lr_policy`` choices) and built by
its ``from_config(cfg, complexity)`` from its own config sections.
"""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence

from ..registry import Registry

LR_POLICIES = Registry("lr policy")   # name -> LRPolicy subclass; the config's train.lr_policy choices


class LRPolicy:
    """The LR policy interface: ``lr0`` and ``__call__(t, T, arch)``. By default every path of a step trains at
    the schedule's rate (loss scales 1)."""

    name = ""
    lr0: float

    def __call__(self, t: int, T: int, arch: Optional[str] = None) -> float:
        raise NotImplementedError

    def rates(self, t: int, T: int, archs: Sequence[str]) -> tuple[float, list[float]]:
        """(optimizer lr, loss scale of each path) of a step at iteration ``t`` of ``T`` training ``archs``."""
        return self(t, T, archs[0]), [1.0] * len(archs)

    @classmethod
    def from_config(cls, cfg: Any, complexity: Any = None) -> "LRPolicy":
        """The policy as ``cfg`` sets it (default: ``optim.lr`` and ``optim.lr_min``)."""
        return cls(cfg.optim.lr, cfg.optim.lr_min)


@LR_POLICIES.register("cosine")
class CosineLR(LRPolicy):
    """lr_t = lr_min + (lr_0 - lr_min) * (1 + cos(pi t / T)) / 2, per iteration."""

    name = "cosine"

    def __init__(self, lr: float, lr_min: float = 0.0):
        self.lr0, self.lr_min = lr, lr_min

    def __call__(self, t: int, T: int, arch: Optional[str] = None) -> float:
        return self.lr_min + (self.lr0 - self.lr_min) * 0.5 * (1.0 + math.cos(math.pi * min(t, T) / T))


@LR_POLICIES.register("constant")
class ConstantLR(LRPolicy):
    """lr_t = lr_0."""

    name = "constant"

    def __init__(self, lr: float, lr_min: float = 0.0):
        self.lr0 = lr

    def __call__(self, t: int, T: int, arch: Optional[str] = None) -> float:
        return self.lr0


@LR_POLICIES.register("calr")
class CaLR(LRPolicy):
    """Complexity-aware LR (CVPR 2025): lr_t(a) = lr_min + (lr_0 - lr_min) (1 - t/T)^gamma(a).

    gamma is linear in log C(a): gamma_max at C_min, 1/gamma_max at C_max. Small subnets (gamma > 1) decay
    fast, large ones (gamma < 1) keep a high LR longer; every schedule reaches lr_min at t = T.
    gamma_max = 1 gives gamma = 1 for all subnets, the plain linear schedule.
    """

    name = "calr"

    def __init__(self, lr: float, lr_min: float, complexity, gamma_max: float = 4.0):
        if gamma_max < 1:
            raise ValueError(f"calr.gamma_max = {gamma_max} is invalid: expected >= 1")
        self.lr0, self.lr_min, self.complexity, self.gamma_max = lr, lr_min, complexity, gamma_max
        self.gamma_min = 1.0 / gamma_max

    @classmethod
    def from_config(cls, cfg: Any, complexity: Any = None) -> "CaLR":
        """``optim.lr``/``lr_min`` and ``calr.gamma_max``; C(a) is the run's ``complexity`` (``calr.complexity``)."""
        if complexity is None:
            raise ValueError("the calr lr policy needs the space's complexity")
        return cls(cfg.optim.lr, cfg.optim.lr_min, complexity, cfg.calr.gamma_max)

    def gamma(self, arch: str) -> float:
        u = self.complexity.log_position(arch)
        return (1.0 - u) * self.gamma_max + u * self.gamma_min   # exact at both ends

    def factor(self, t: int, T: int, arch: str) -> float:
        """(1 - t/T)^gamma(a): the share of (lr_0 - lr_min) left at iteration t."""
        return max(0.0, 1.0 - min(t, T) / T) ** self.gamma(arch)

    def __call__(self, t: int, T: int, arch: Optional[str] = None) -> float:
        if arch is None:
            raise ValueError("CaLR needs the architecture being trained")
        return self.lr_min + (self.lr0 - self.lr_min) * self.factor(t, T, arch)

    def rates(self, t: int, T: int, archs: Sequence[str]) -> tuple[float, list[float]]:
        """One path: its own rate. Several paths share one update, so the optimizer keeps lr_0 and each path's
        loss is scaled by lr_t(a) / lr_0 (decision 4)."""
        if len(archs) == 1:
            return self(t, T, archs[0]), [1.0]
        return self.lr0, [self(t, T, a) / self.lr0 for a in archs]


def build_lr_policy(cfg: Any, complexity: Any = None) -> LRPolicy:
    """The LR policy ``cfg.train.lr_policy`` names, built from ``cfg`` (``calr`` needs a
    :class:`~nshot.train.complexity.Complexity`)."""
    return LR_POLICIES.get(cfg.train.lr_policy).from_config(cfg, complexity)
