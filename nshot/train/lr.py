"""Learning-rate policies, stepped per iteration (decision 5).

A policy maps (t, T, arch) to a learning rate; ``arch`` lets subnet-aware policies depend on the subnet.
"""
from __future__ import annotations

import math
from typing import Optional


class CosineLR:
    """lr_t = lr_min + (lr_0 - lr_min) * (1 + cos(pi t / T)) / 2, per iteration."""

    name = "cosine"

    def __init__(self, lr: float, lr_min: float = 0.0):
        self.lr0, self.lr_min = lr, lr_min

    def __call__(self, t: int, T: int, arch: Optional[str] = None) -> float:
        return self.lr_min + (self.lr0 - self.lr_min) * 0.5 * (1.0 + math.cos(math.pi * min(t, T) / T))


class ConstantLR:
    """lr_t = lr_0."""

    name = "constant"

    def __init__(self, lr: float, lr_min: float = 0.0):
        self.lr0 = lr

    def __call__(self, t: int, T: int, arch: Optional[str] = None) -> float:
        return self.lr0


def build_lr_policy(name: str, lr: float, lr_min: float = 0.0):
    """LR policy by config name."""
    policies = {"cosine": CosineLR, "constant": ConstantLR}
    if name not in policies:
        raise ValueError(f"unknown lr policy {name!r}; available: {', '.join(policies)}")
    return policies[name](lr, lr_min)
