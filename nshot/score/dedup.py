"""Which architectures can share one evaluation when a supernet scores many of them.

Two levels, on purpose kept apart:

* ``exact``: two NB201 cells that differ only on edges that are not live (:func:`nshot.spaces.nb201.live_edges`)
  run the very same computation in the supernet: the forward pass skips every non-live edge, so the same
  modules see the same tensors in the same order and the outputs are bit-identical. Their scores are
  shared without any approximation. The representative is the cell with every non-live edge set to
  ``none`` (or, in a network that does not hold ``none`` on that edge, its smallest held op).
* ``iso``: NB201's isomorphism classes (:meth:`NB201Space.canonical`): cells that compute the same function
  *of a stand-alone network* (node relabelling, ``skip`` as identity, commutative sums). In a supernet the
  weights live on edges, so two isomorphic cells generally use *different* weights (``conv3x3`` on edge
  ``1<-0`` is not the ``conv3x3`` module of edge ``2<-0``): their supernet scores differ. Scoring one
  representative per class is an approximation; the representative is the class member with the smallest
  choice index.

``none`` switches both off (every distinct string is evaluated).
"""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

import torch

from ..spaces import nb201 as nb201_space

DEDUP_MODES = ("none", "exact", "iso")


def exact_representative(arch: str, candidates: Optional[Sequence[Sequence[int]]] = None) -> str:
    """``arch`` with every non-live edge replaced by ``none`` (or by the smallest op in ``candidates[e]``
    when ``none`` is not among them). Same live edges, same ops on them, hence the same supernet function.

    Changing a non-live edge never changes which edges are live: every live edge lies on an input-to-output
    path of non-``none`` edges, all of whose edges are live, and a swap between two non-``none`` ops leaves
    the graph of non-``none`` edges as it is.
    """
    ops = nb201_space._parse(arch)
    live = nb201_space.live_edges(ops)
    out = []
    for e, (op, is_live) in enumerate(zip(ops, live)):
        if is_live:
            out.append(op)
        elif candidates is None or 0 in candidates[e]:
            out.append(0)
        else:
            out.append(min(candidates[e]))
    return nb201_space._format(tuple(out))


def is_nb201_model(model: torch.nn.Module) -> bool:
    """Whether ``model`` runs NB201 cells (a supernet, a sub-supernet or a few-shot set of them)."""
    from ..nn.nb201 import NB201Network
    return any(isinstance(m, NB201Network) for m in model.modules())


class Deduper:
    """Maps each architecture to the one whose evaluation stands for it, for one model and mode.

    ``measured(arch)`` is the architecture actually run (equal archs -> the same forward pass);
    ``representative(arch)`` is what is recorded as the mapping (for ``exact`` the same; for ``iso`` the
    canonical class member). Models that are not NB201 get ``none`` behaviour in ``exact`` mode and are
    refused in ``iso`` mode.
    """

    def __init__(self, mode: str, model: torch.nn.Module, nb201: Optional[bool] = None):
        if mode not in DEDUP_MODES:
            raise ValueError(f"dedup mode {mode!r} is invalid: expected one of {', '.join(DEDUP_MODES)}")
        self.nb201 = is_nb201_model(model) if nb201 is None else nb201
        if mode == "iso" and not self.nb201:
            raise ValueError("dedup mode 'iso' needs an NB201 supernet (isomorphism classes are NB201's)")
        self.mode = mode if self.nb201 else "none"
        self.model = model
        self._tree = getattr(model, "tree", None) if hasattr(model, "leaves") else None
        self._space = nb201_space.NB201Space() if self.nb201 else None
        self._memo: dict[str, tuple[str, str]] = {}

    def _net_for(self, arch: str):
        if self._tree is None:
            return self.model, None
        leaf = self._tree.route(arch).id
        return self.model.leaves[str(leaf)], leaf

    def _exact(self, arch: str) -> str:
        net, leaf = self._net_for(arch)
        rep = exact_representative(arch, getattr(net, "candidates", None))
        if leaf is not None and self._tree.route(rep).id != leaf:   # another sub-supernet: other weights
            return arch
        return rep

    def _runnable(self, arch: str) -> bool:
        net, _ = self._net_for(arch)
        cand = getattr(net, "candidates", None)
        return cand is None or all(op in c for op, c in zip(nb201_space._parse(arch), cand))

    def function_key(self, arch: str) -> str:
        """A name of the supernet function ``arch`` computes: archs with equal keys give bit-identical
        outputs (``none`` mode: the arch itself, nothing is shared)."""
        return arch if self.mode == "none" else self._exact(arch)

    def _pair(self, arch: str) -> tuple[str, str]:
        hit = self._memo.get(arch)
        if hit is None:
            if self.mode == "iso":
                rep = self._space.canonical(arch)
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


def count_functions(archs: Iterable[str], mode: str) -> int:
    """How many evaluations ``archs`` need under ``mode`` with a plain (unpartitioned) NB201 supernet."""
    archs = list(dict.fromkeys(archs))
    if mode == "none":
        return len(archs)
    if mode == "exact":
        return len({exact_representative(a) for a in archs})
    if mode == "iso":
        space = nb201_space.NB201Space()
        return len({space.canonical(a) for a in archs})
    raise ValueError(f"dedup mode {mode!r} is invalid: expected one of {', '.join(DEDUP_MODES)}")
