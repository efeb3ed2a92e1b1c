"""Fitness wrapper with a cache: every architecture is evaluated at most once.

A search strategy only ever talks to a :class:`CachedFitness`. It hides whether the underlying scorer works
one architecture at a time (``fn(arch) -> float``) or in batches (``batch_fn(list) -> list``, e.g. a GPU
scorer that evaluates many subnets per call), and it counts how many *distinct, new* architectures were
really evaluated: cache hits, including entries of a pre-filled cache, cost nothing.
"""
from __future__ import annotations

from typing import Callable, Iterable, MutableMapping, Optional, Sequence

from ..spaces import Arch


class CachedFitness:
    """Cached fitness, higher is better.

    Args:
        fn: ``fn(arch) -> float`` for one architecture.
        batch_fn: ``batch_fn(list_of_archs) -> sequence of floats`` (same length, same order). Used in
            preference to ``fn`` when both are given.
        cache: optional mapping ``arch -> fitness`` of already known scores (e.g. read from a run
            directory). It is used *in place*, not copied, so new scores are also written into it and the
            caller can persist them. Keys must be canonical architecture values (``space.format(arch)``).

    Attributes:
        evaluations: number of architectures computed by ``fn``/``batch_fn`` (new ones only).
        hits: number of look-ups not computed (cached, or repeated within one ``many`` call).
    """

    def __init__(self, fn: Optional[Callable[[Arch], float]] = None,
                 batch_fn: Optional[Callable[[Sequence[Arch]], Sequence[float]]] = None,
                 cache: Optional[MutableMapping[Arch, float]] = None):
        if fn is None and batch_fn is None:
            raise ValueError("CachedFitness needs fn(arch) -> float or batch_fn(list) -> list of floats")
        if fn is not None and not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        if batch_fn is not None and not callable(batch_fn):
            raise TypeError(f"batch_fn must be callable, got {type(batch_fn).__name__}")
        self.fn = fn
        self.batch_fn = batch_fn
        self.cache: MutableMapping[Arch, float] = cache if cache is not None else {}
        self.evaluations = 0
        self.hits = 0

    def __contains__(self, arch: Arch) -> bool:
        return arch in self.cache

    def __len__(self) -> int:
        return len(self.cache)

    def __call__(self, arch: Arch) -> float:
        return self.many([arch])[0]

    def many(self, archs: Iterable[Arch]) -> list[float]:
        """Fitness of each architecture, in order; only the ones not cached yet are computed (each once)."""
        archs = list(archs)
        missing: list[Arch] = []
        pending: set[Arch] = set()
        for a in archs:
            if a not in self.cache and a not in pending:
                pending.add(a)
                missing.append(a)
        self.hits += len(archs) - len(missing)
        if missing:
            if self.batch_fn is not None:
                values = list(self.batch_fn(list(missing)))
                if len(values) != len(missing):
                    raise ValueError(f"batch fitness function returned {len(values)} values for "
                                     f"{len(missing)} architectures")
                for a, v in zip(missing, values):
                    self._store(a, v)
            else:
                for a in missing:  # stored one by one: an exception keeps what was already computed
                    self._store(a, self.fn(a))
        return [self.cache[a] for a in archs]

    def _store(self, arch: Arch, value) -> None:
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"fitness of {arch!r} must be a number, got {type(value).__name__}: {value!r}") from None
        self.cache[arch] = v
        self.evaluations += 1


def as_cached(fitness) -> CachedFitness:
    """``fitness`` itself if it is a :class:`CachedFitness`, else a new one wrapping the callable."""
    if isinstance(fitness, CachedFitness):
        return fitness
    if callable(fitness):
        return CachedFitness(fn=fitness)
    raise TypeError(f"fitness must be a callable arch -> float or a CachedFitness, got {type(fitness).__name__}")
