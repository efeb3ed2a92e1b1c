"""Samplers: which architecture(s) a training step trains, and with the momentum grouping, in which group.

A sampler is a :class:`Sampler` with ``paths(rng, forced=None) -> list[arch]``; ``draw(rng, grouping)`` (the step
planner's call, :mod:`nshot.train.plan`) adds the step's momentum group. Registered by name in ``SAMPLERS``.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..registry import Registry
from ..spaces import SearchSpace

SAMPLERS = Registry("sampler")   # name -> Sampler class; the config's train.sampler choices


class Sampler:
    """The sampler interface. ``draw`` gives a step's paths and its momentum group: by default the paths are
    drawn and the step joins the group of the first path (Pi-NAS: path A's, decision recorded in
    docs/methods.md)."""

    name = ""

    def paths(self, rng: np.random.Generator, forced: Optional[dict[int, int]] = None) -> list[str]:
        """The architectures one step trains, drawn with ``rng``; ``forced``: decision -> choice fixed on every path."""
        raise NotImplementedError

    def check_grouping(self, grouping: Any) -> None:
        """Raise ValueError if this sampler cannot step its paths with ``grouping`` (None: no grouping)."""

    def draw(self, rng: np.random.Generator, grouping: Any = None) -> tuple[list[str], Optional[int]]:
        """(the step's paths, its momentum group under ``grouping``: the first path's; None without a grouping)."""
        archs = self.paths(rng)
        return archs, (grouping(archs[0]) if grouping is not None else None)


@SAMPLERS.register("uniform")
class UniformSampler(Sampler):
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


def allowed_choices(space: SearchSpace, mask=None) -> list[list[int]]:
    """Per decision, the choice indices a sampler may draw: the few-shot ``mask``, else all of them."""
    return [list(m) for m in mask] if mask is not None else [list(range(n)) for n in space.sizes]


@SAMPLERS.register("fair")
class FairSampler(Sampler):
    """FairNAS strict fairness (decision 6): m = max choices per decision paths per step; for each decision
    one random permutation of its choices, path k taking the k-th element, so every choice of a decision with
    m choices is trained exactly once per step. A decision with n < m choices (MobileNet layers without the
    identity, few-shot masks) continues with further independent permutations of its choices, cut at m, so each
    of its choices is trained floor(m/n) or ceil(m/n) times per step (at least once; no choice twice before
    every choice once). ``forced`` pins decisions for all m paths (momentum separation on one edge).
    """

    name = "fair"

    def __init__(self, space: SearchSpace, connected_only: bool = False, mask=None):
        if connected_only:
            raise ValueError("sampler.connected_only cannot be combined with the fair sampler: rejecting a path "
                             "would break strict fairness")
        self.space = space
        self.allowed = allowed_choices(space, mask)
        self.m = max(len(a) for a in self.allowed)

    def check_grouping(self, grouping: Any) -> None:
        if grouping is not None and not hasattr(grouping, "force"):
            raise ValueError("train.sampler=fair with momentum separation (train.optimizer=ms_sgd) needs "
                             "ms.grouping=edge (all paths of a FairNAS step share the op on the MS edge)")

    def draw(self, rng: np.random.Generator, grouping: Any = None) -> tuple[list[str], Optional[int]]:
        """Strict fairness with momentum separation: the group is drawn first and pinned on all m paths."""
        if grouping is None:
            return self.paths(rng), None
        k = int(rng.integers(grouping.num_groups))
        return self.paths(rng, forced=grouping.force(k)), k

    def paths(self, rng: np.random.Generator, forced: Optional[dict[int, int]] = None) -> list[str]:
        columns = []
        for d, allowed in enumerate(self.allowed):
            n = len(allowed)
            if forced and d in forced:
                col = np.full(self.m, forced[d])
            else:
                perms = [np.asarray(allowed)[rng.permutation(n)] for _ in range(-(-self.m // n))]
                col = np.concatenate(perms)[:self.m]
            columns.append(col)
        return [self.space.encode([int(col[k]) for col in columns]) for k in range(self.m)]


@SAMPLERS.register("pair")
class PairSampler(Sampler):
    """Pi-NAS (decision 12): two paths per step that differ at every decision: for each decision two distinct
    choices drawn without replacement, the first for path A, the second for path B. A decision with a single
    allowed choice (a few-shot mask) cannot differ and is shared; ``forced`` decisions are shared too.
    """

    name = "pair"

    def __init__(self, space: SearchSpace, connected_only: bool = False, mask=None):
        if connected_only:
            raise ValueError("sampler.connected_only cannot be combined with the pair sampler: rejecting one path "
                             "would bias the other")
        self.space = space
        self.allowed = allowed_choices(space, mask)

    def paths(self, rng: np.random.Generator, forced: Optional[dict[int, int]] = None) -> list[str]:
        a, b = [], []
        for d, allowed in enumerate(self.allowed):
            if forced and d in forced:
                a.append(forced[d])
                b.append(forced[d])
            elif len(allowed) == 1:
                a.append(allowed[0])
                b.append(allowed[0])
            else:
                i, j = rng.choice(len(allowed), size=2, replace=False)
                a.append(int(allowed[int(i)]))
                b.append(int(allowed[int(j)]))
        return [self.space.encode(a), self.space.encode(b)]


def build_sampler(name: str, space: SearchSpace, connected_only: bool = False, mask=None) -> Sampler:
    """Sampler by config name, restricted to ``mask`` (a sub-space's allowed choices per decision) when given."""
    return SAMPLERS.get(name)(space, connected_only, mask=mask)
