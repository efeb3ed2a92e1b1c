"""Samplers: which architecture(s) a training step trains."""
from __future__ import annotations

import numpy as np

from ..spaces import SearchSpace


class UniformSampler:
    """SPOS: one architecture per step, uniform over the space (optionally connected cells only)."""

    name = "uniform"

    def __init__(self, space: SearchSpace, connected_only: bool = False, max_tries: int = 10_000):
        if connected_only and not hasattr(space, "is_connected"):
            raise ValueError(f"sampler.connected_only is not supported by space {space.name!r}")
        self.space, self.connected_only, self.max_tries = space, connected_only, max_tries

    def paths(self, rng: np.random.Generator) -> list[str]:
        """The architectures of one step (a list of one)."""
        for _ in range(self.max_tries):
            arch = self.space.sample(rng)
            if not self.connected_only or self.space.is_connected(arch):
                return [arch]
        raise RuntimeError(f"no connected architecture in {self.max_tries} draws")


def build_sampler(name: str, space: SearchSpace, connected_only: bool = False) -> UniformSampler:
    """Sampler by config name."""
    if name == "uniform":
        return UniformSampler(space, connected_only)
    raise ValueError(f"unknown sampler {name!r}; available: uniform")
