"""Which architectures can share one evaluation when a supernet scores many of them.

The search space says which architectures are the same (:class:`nshot.spaces.SearchSpace`); this module
knows no space. Two levels, on purpose kept apart:

* ``exact``: architectures with the same :meth:`~nshot.spaces.SearchSpace.function_key` run the very same
  computation in the supernet (bit-identical outputs), so their scores are shared without any approximation.
  Spaces without the notion give every architecture its own key (nothing is shared). NB201: cells that differ
  only on edges that are not live (the forward pass skips them); the key is the cell with every non-live edge
  ``none`` (or, in a network that does not hold ``none`` on that edge, its smallest held op).
* ``iso``: the space's isomorphism classes (:meth:`~nshot.spaces.SearchSpace.canonical`, spaces with
  ``has_isomorphism``; NB201: node relabelling, ``skip`` as identity, commutative sums): architectures that
  compute the same function *of a stand-alone network*. In a supernet the weights live on edges, so two
  isomorphic cells generally use *different* weights (``conv3x3`` on edge ``1<-0`` is not the ``conv3x3``
  module of edge ``2<-0``): their supernet scores differ. Scoring one representative per class is an
  approximation; the representative is the class member with the smallest choice index.

``none`` switches both off (every distinct string is evaluated). The space is the network's own (its
``space`` attribute; for a few-shot set of sub-supernets, theirs), or given.
"""
from __future__ import annotations

from typing import Iterable, Optional, Union

import torch

from .. import spaces
from ..spaces import SearchSpace

DEDUP_MODES = ("none", "exact", "iso")


def space_of(model: torch.nn.Module) -> Optional[SearchSpace]:
    """The search space ``model`` runs: the first ``space`` attribute that is a :class:`SearchSpace` among the
    model and its submodules (a supernet, a sub-supernet, or the sub-supernets of a few-shot set); None."""
    for m in model.modules():
        sp = getattr(m, "space", None)
        if isinstance(sp, SearchSpace):
            return sp
    return None


class Deduper:
    """Maps each architecture to the one whose evaluation stands for it, for one model and mode.

    ``measured(arch)`` is the architecture actually run (equal archs -> the same forward pass);
    ``representative(arch)`` is what is recorded as the mapping (for ``exact`` the same; for ``iso`` the
    canonical class member). ``space``: the model's search space (default: :func:`space_of`); a model
    without one gets ``none`` behaviour in ``exact`` mode, and ``iso`` mode is refused unless the space has
    isomorphism classes.
    """

    def __init__(self, mode: str, model: torch.nn.Module, space: Optional[SearchSpace] = None):
        if mode not in DEDUP_MODES:
            raise ValueError(f"dedup mode {mode!r} is invalid: expected one of {', '.join(DEDUP_MODES)}")
        self.space = space if space is not None else space_of(model)
        if mode == "iso" and not (self.space is not None and self.space.has_isomorphism):
            what = f"the {self.space.name} space has none" if self.space is not None else "this model has no space"
            raise ValueError(f"dedup mode 'iso' needs a search space with isomorphism classes, such as nb201 "
                             f"({what})")
        self.mode = mode if self.space is not None else "none"
        self.model = model
        self._tree = getattr(model, "tree", None) if hasattr(model, "leaves") else None
        self._memo: dict[str, tuple[str, str]] = {}

    def _net_for(self, arch: str):
        if self._tree is None:
            return self.model, None
        leaf = self._tree.route(arch).id
        return self.model.leaves[str(leaf)], leaf

    def _exact(self, arch: str) -> str:
        net, leaf = self._net_for(arch)
        rep = self.space.function_key(arch, getattr(net, "candidates", None))
        if leaf is not None and self._tree.route(rep).id != leaf:   # another sub-supernet: other weights
            return arch
        return rep

    def _runnable(self, arch: str) -> bool:
        net, _ = self._net_for(arch)
        cand = getattr(net, "candidates", None)
        return cand is None or all(op in c for op, c in zip(self.space.decode(arch), cand))

    def function_key(self, arch: str) -> str:
        """A name of the supernet function ``arch`` computes: archs with equal keys give bit-identical
        outputs (``none`` mode: the arch itself, nothing is shared)."""
        return arch if self.mode == "none" else self._exact(arch)

    def _pair(self, arch: str) -> tuple[str, str]:
        hit = self._memo.get(arch)
        if hit is None:
            if self.mode == "iso":
                rep = self.space.canonical(arch)
                if not self._runnable(rep):        # a restricted network without the canonical member's ops
                    rep = arch
            else:
                rep = self.function_key(arch)
            hit = (rep, self.function_key(rep))
            self._memo[arch] = hit
        return hit

    def representative(self, arch: str) -> str:
        """The architecture recorded as the one whose score ``arch`` receives."""
        return self._pair(arch)[0]

    def measured(self, arch: str) -> str:
        """The architecture actually evaluated for ``arch`` (a canonical key of the supernet function)."""
        return self._pair(arch)[1]

    def groups(self, archs: Iterable[str]) -> dict[str, list[str]]:
        """measured arch -> the given archs it stands for, both in order of first appearance."""
        out: dict[str, list[str]] = {}
        for a in dict.fromkeys(archs):
            out.setdefault(self.measured(a), []).append(a)
        return out


def count_functions(archs: Iterable[str], mode: str, space: Union[str, SearchSpace] = "nb201") -> int:
    """How many evaluations ``archs`` need under ``mode`` with a plain (unpartitioned) supernet of ``space``
    (a name or an instance; NB201 by default)."""
    archs = list(dict.fromkeys(archs))
    sp = spaces.get(space) if isinstance(space, str) else space
    if mode == "none":
        return len(archs)
    if mode == "exact":
        return len({sp.function_key(a) for a in archs})
    if mode == "iso":
        if not sp.has_isomorphism:
            raise ValueError(f"dedup mode 'iso' needs a search space with isomorphism classes ({sp.name} has none)")
        return len({sp.canonical(a) for a in archs})
    raise ValueError(f"dedup mode {mode!r} is invalid: expected one of {', '.join(DEDUP_MODES)}")
