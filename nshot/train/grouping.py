"""Momentum-separation groupings: which momentum group a subnet belongs to (decision 2)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..spaces import SearchSpace
from . import rng as rngs
from .complexity import Complexity


class EdgeGrouping:
    """Group = the choice at one decision (NB201: the op on one edge; K = number of ops)."""

    name = "edge"

    def __init__(self, space: SearchSpace, edge: int):
        if not 0 <= edge < space.num_decisions:
            raise ValueError(f"ms.edge = {edge} is out of range 0..{space.num_decisions - 1}")
        self.space, self.edge, self.num_groups = space, edge, space.sizes[edge]

    def __call__(self, arch: str) -> int:
        return self.space.decode(arch)[self.edge]

    def force(self, group: int) -> dict[int, int]:
        """The decisions that put a path in ``group`` ({edge: choice}): a sampler whose paths must share one group
        draws the group first and pins these decisions."""
        return {self.edge: int(group)}


class ComplexityGrouping:
    """Group = which of K equal-count bins of the space's log-complexity distribution the subnet falls in."""

    name = "complexity"

    def __init__(self, space: SearchSpace, complexity: Complexity, num_groups: int, seed: int = 0):
        self.complexity, self.num_groups = complexity, num_groups
        if len(space) <= 200_000:
            values = np.fromiter((complexity(a) for a in space.enumerate()), dtype=float)
        else:
            rs = rngs.step_rng(seed, rngs.GROUPING, 0)
            values = np.asarray([complexity(space.sample(rs)) for _ in range(20_000)])
        self.edges = np.quantile(np.log(values), np.linspace(0, 1, num_groups + 1)[1:-1])

    def __call__(self, arch: str) -> int:
        return int(np.searchsorted(self.edges, np.log(self.complexity(arch)), side="right"))


def op_count_features(space: SearchSpace, arch: str) -> np.ndarray:
    """Structural features: how many decisions take each choice name (NB201: count of each op)."""
    names = sorted({n for c in space.choices for n in c})
    index = {n: i for i, n in enumerate(names)}
    f = np.zeros(len(names))
    for d, c in enumerate(space.decode(arch)):
        f[index[space.choices[d][c]]] += 1
    return f


class KMeansGrouping:
    """Group = k-means cluster (K clusters, seeded) of op-count features, fitted on the space."""

    name = "kmeans"

    def __init__(self, space: SearchSpace, num_groups: int, seed: int = 0):
        from sklearn.cluster import KMeans
        self.space, self.num_groups = space, num_groups
        rs = rngs.step_rng(seed, rngs.GROUPING, 1)
        archs = list(space.enumerate()) if len(space) <= 50_000 else [space.sample(rs) for _ in range(20_000)]
        feats = np.stack([op_count_features(space, a) for a in archs])
        uniq = np.unique(feats, axis=0)
        if len(uniq) < num_groups:
            raise ValueError(f"ms.groups = {num_groups} k-means clusters, but the space has only {len(uniq)} "
                             "distinct op-count vectors")
        self.km = KMeans(n_clusters=num_groups, n_init=10, random_state=int(rs.integers(2**31))).fit(uniq)
        # Few distinct feature vectors: label each once, then a lookup per architecture.
        self._by_features = {tuple(f): int(c) for f, c in zip(uniq, self.km.labels_)}
        self._cache: dict[str, int] = {}

    def __call__(self, arch: str) -> int:
        g = self._cache.get(arch)
        if g is None:
            f = op_count_features(self.space, arch)
            g = self._by_features.get(tuple(f))
            if g is None:  # a vector never seen in the fitting sample (sampled spaces only)
                g = int(self.km.predict(f[None])[0])
            self._cache[arch] = g
        return g


def resolve_edge(spec: str, space: SearchSpace, seed: int, exclude: Sequence[int] = ()) -> int:
    """``ms.edge``: an index, or ``random`` (drawn once from the seed, never one of ``exclude``: a few-shot
    sub-supernet's split or fixed decisions)."""
    if isinstance(exclude, int):
        exclude = [exclude]
    if spec != "random":
        if int(spec) in exclude:
            raise ValueError(f"ms.edge = {spec} is a split (fixed) decision of this sub-supernet; choose another")
        return int(spec)
    choices = [d for d in range(space.num_decisions) if d not in exclude]
    if not choices:
        raise ValueError("no decision is left for momentum separation in this sub-supernet")
    return int(choices[int(rngs.step_rng(seed, rngs.GROUPING, 2).integers(len(choices)))])


def build_grouping(name: str, space: SearchSpace, complexity: Complexity, edge: str, num_groups: int, seed: int,
                   exclude_edges: Sequence[int] = ()):
    """Grouping by config name."""
    if name == "edge":
        return EdgeGrouping(space, resolve_edge(edge, space, seed, exclude_edges))
    if name == "complexity":
        return ComplexityGrouping(space, complexity, num_groups, seed)
    if name == "kmeans":
        return KMeansGrouping(space, num_groups, seed)
    raise ValueError(f"unknown ms.grouping {name!r}; available: edge, complexity, kmeans")
