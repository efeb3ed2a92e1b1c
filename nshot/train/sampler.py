"""Samplers: which architecture(s) a training step trains."""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..spaces import SearchSpace


class UniformSampler:
    """SPOS: one architecture per step, uniform over the space (optionally connected cells only)."""

    name = "uniform"

    def __init__(self, space: SearchSpace, connected_only: bool = False, max_tries: int = 10_000, mask=None):
        if connected_only and not hasattr(space, "is_connected"):
            raise ValueError(f"sampler.connected_only is not supported by space {space.name!r}")
        self.space, self.connected_only, self.max_tries = space, connected_only, max_tries
        self.mask = mask   # per decision, the allowed choices (a few-shot sub-supernet); None = all

    def paths(self, rng: np.random.Generator, forced: Optional[dict[int, int]] = None) -> list[str]:
        """The architectures of one step (a list of one). ``forced`` fixes some decisions {decision: choice}."""
        for _ in range(self.max_tries):
            if self.mask is None:
                choice = [int(rng.integers(n)) for n in self.space.sizes]
            else:
                choice = [int(m[int(rng.integers(len(m)))]) for m in self.mask]
            for d, c in (forced or {}).items():
                choice[d] = c
            arch = self.space.encode(choice)
            if not self.connected_only or self.space.is_connected(arch):
                return [arch]
        raise RuntimeError(f"no connected architecture in {self.max_tries} draws")


class FairSampler:
    """FairNAS strict fairness (decision 6): m = max choices per decision paths per step; for each decision
    one random permutation of its choices, path k taking the k-th element, so every choice of every decision
    is trained exactly once per step (a decision with fewer than m choices repeats random ones to fill up).
    ``forced`` pins decisions for all m paths (momentum separation on one edge).
    """

    name = "fair"

    def __init__(self, space: SearchSpace, connected_only: bool = False, mask=None):
        if connected_only:
            raise ValueError("sampler.connected_only cannot be combined with the fair sampler: rejecting a path "
                             "would break strict fairness")
        self.space = space
        self.allowed = [list(m) for m in mask] if mask is not None else [list(range(n)) for n in space.sizes]
        self.m = max(len(a) for a in self.allowed)

    def paths(self, rng: np.random.Generator, forced: Optional[dict[int, int]] = None) -> list[str]:
        columns = []
        for d, allowed in enumerate(self.allowed):
            n = len(allowed)
            if forced and d in forced:
                col = np.full(self.m, forced[d])
            else:
                col = np.asarray(allowed)[rng.permutation(n)]
                if n < self.m:
                    col = np.concatenate([col, np.asarray(allowed)[rng.integers(n, size=self.m - n)]])
            columns.append(col)
        return [self.space.encode([int(col[k]) for col in columns]) for k in range(self.m)]


def build_sampler(name: str, space: SearchSpace, connected_only: bool = False, mask=None):
    """Sampler by config name, restricted to ``mask`` (allowed choices per decision) when given."""
    if name == "uniform":
        return UniformSampler(space, connected_only, mask=mask)
    if name == "fair":
        return FairSampler(space, connected_only, mask=mask)
    raise ValueError(f"unknown sampler {name!r}; available: uniform, fair")
