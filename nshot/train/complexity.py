"""Subnet complexity C(a) from the space (no forward pass): parameters or FLOPs of the subnet."""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Optional, Union

import numpy as np

from ..spaces import SearchSpace

_ENUMERATE_LIMIT = 200_000


class Complexity:
    """C(a) for a space and network shape, with the space's extremes and complexity quintile edges.

    ``measure``: ``params`` (exact parameter count of the subnet's network) or ``flops``. The extremes
    C_min / C_max and the quintile edges come from enumerating the space when it has at most 200,000
    architectures, else from 20,000 seeded samples (extremes then from the per-decision cheapest and
    costliest choices, found by probing each decision).
    """

    def __init__(self, space: SearchSpace, measure: str = "params", **shape):
        if measure not in ("params", "flops"):
            raise ValueError(f"complexity measure {measure!r} is invalid: expected params or flops")
        self.space, self.measure, self.shape = space, measure, shape
        self._fn = space.num_params if measure == "params" else space.flops
        self._cache: dict[str, float] = {}
        self._stats: Optional[tuple[float, float, np.ndarray]] = None

    def __call__(self, arch: str) -> float:
        value = self._cache.get(arch)
        if value is None:
            value = float(self._fn(arch, **self.shape))
            self._cache[arch] = value
        return value

    def _compute_stats(self) -> tuple[float, float, np.ndarray]:
        if self._stats is None:
            if math.prod(self.space.sizes) <= _ENUMERATE_LIMIT:   # len() overflows for huge spaces (DARTS)
                values = np.fromiter((self(a) for a in self.space.enumerate()), dtype=float)
                lo, hi = float(values.min()), float(values.max())
            else:
                rs = np.random.default_rng(0)
                values = np.asarray([self(self.space.sample(rs)) for _ in range(20_000)])
                base = [0] * self.space.num_decisions
                lo_choice, hi_choice = [], []
                for d, n in enumerate(self.space.sizes):
                    costs = [self(self.space.encode(base[:d] + [c] + base[d + 1:])) for c in range(n)]
                    lo_choice.append(int(np.argmin(costs)))
                    hi_choice.append(int(np.argmax(costs)))
                lo, hi = self(self.space.encode(lo_choice)), self(self.space.encode(hi_choice))
            edges = np.quantile(values, [0.2, 0.4, 0.6, 0.8])
            self._stats = (lo, hi, edges)
        return self._stats

    @property
    def c_min(self) -> float:
        return self._compute_stats()[0]

    @property
    def c_max(self) -> float:
        return self._compute_stats()[1]

    def quintile(self, arch: str) -> int:
        """0..4: which fifth of the space's complexity distribution ``arch`` falls in."""
        return int(np.searchsorted(self._compute_stats()[2], self(arch), side="right"))

    def log_position(self, arch: str) -> float:
        """(log C(a) - log C_min) / (log C_max - log C_min), in [0, 1]."""
        lo, hi = self.c_min, self.c_max
        if hi <= lo:
            return 0.0
        return (math.log(self(arch)) - math.log(lo)) / (math.log(hi) - math.log(lo))


@lru_cache(maxsize=32)
def _cached(space_name: str, options: tuple, measure: str, shape: tuple) -> Complexity:
    from .. import spaces
    return Complexity(spaces.get(space_name, **dict(options)), measure, **dict(shape))


def get_complexity(space: Union[str, SearchSpace], measure: str = "params", **shape) -> Complexity:
    """A shared :class:`Complexity` per (space and its options, measure, shape): its enumeration is done once
    per process. ``space`` is a registered name (default options) or a space instance."""
    name, options = (space, {}) if isinstance(space, str) else (space.name, space.options)
    return _cached(name, tuple(sorted(options.items())), measure, tuple(sorted(shape.items())))
