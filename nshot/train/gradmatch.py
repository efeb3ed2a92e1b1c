"""Gradient matching (GM-NAS, decision 11): where do the candidate ops of a decision disagree?

For a candidate decision e of a (sub-)supernet, each of R batches draws one path inside the node's mask;
for every allowed op o at e the path is run with o at e on the same batch, and the gradients of all shared
weights (everything but e's own ops) are flattened. The distance of ops i, j is 1 - cos(g_i, g_j), averaged
over the R batches. The allowed ops are split into 2 groups of balanced sizes with the minimum intra-group
distance; the decision whose best split has the largest cross-group distance is split.

The loss whose gradients are matched is the run's training objective (a :class:`GMLoss`): cross-entropy on
labels (:class:`CrossEntropyGM`, the default) or, for Pi-NAS, the InfoNCE loss of the student on the path
against the teacher's key of a partner path (``nshot.train.pinas.InfoNCEGM``); its own shared parameters
(Pi-NAS's projection head) join the shared weights.
"""
from __future__ import annotations

from itertools import combinations
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..spaces import SearchSpace
from .partition import Mask, sample_in_mask


def decision_param_names(model: torch.nn.Module, decision: int) -> set[str]:
    """Names of the parameters that belong to the candidate ops of ``decision`` (NB201: edge ``decision`` in
    every cell; a network with a ``decision_param_names(decision)`` method, e.g. the layer-wise MobileNet
    networks, says itself), which gradient matching leaves out."""
    own = getattr(model, "decision_param_names", None)
    if callable(own):
        return set(own(decision))
    marker = f".edges.{decision}."
    return {n for n, _ in model.named_parameters() if marker in f".{n}"}


class CrossEntropyGM:
    """The supervised GM loss: cross-entropy of the path's logits on a labelled batch ``(x, y)``."""

    def extra_parameters(self) -> list[torch.nn.Parameter]:
        return []

    def prepare(self, model: torch.nn.Module, batch: Any, base: Sequence[int], rng: np.random.Generator) -> Any:
        return batch

    def loss(self, model: torch.nn.Module, prepared: Any, arch: str) -> torch.Tensor:
        x, y = prepared
        return F.cross_entropy(model(x, arch), y)


def shared_gradients(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, arch: str,
                     names: Sequence[str]) -> torch.Tensor:
    """Flattened gradient of the cross-entropy of ``arch`` on (x, y) w.r.t. the parameters ``names`` (zeros where
    a parameter gets no gradient on this path)."""
    params = dict(model.named_parameters())
    return loss_gradients(model, lambda: CrossEntropyGM().loss(model, (x, y), arch), [params[n] for n in names])


def loss_gradients(model: torch.nn.Module, loss_fn: Callable[[], torch.Tensor],
                   params: Sequence[torch.nn.Parameter]) -> torch.Tensor:
    """Flattened gradient of ``loss_fn()`` w.r.t. ``params`` (zeros where one gets no gradient); every
    gradient is cleared afterwards."""
    for p in params:
        p.grad = None
    model.zero_grad(set_to_none=True)
    loss_fn().backward()
    flat = [p.grad.reshape(-1) if p.grad is not None else torch.zeros_like(p).reshape(-1) for p in params]
    out = torch.cat(flat)
    for p in params:
        p.grad = None
    model.zero_grad(set_to_none=True)
    return out


def cosine_distance_matrix(grads: list[torch.Tensor], eps: float = 1e-6) -> np.ndarray:
    """1 - cos between every pair of gradient vectors."""
    g = torch.stack(grads)
    norms = g.norm(dim=1)
    cos = (g @ g.T) / (norms[:, None] * norms[None, :] + eps)
    d = (1.0 - cos).double().cpu().numpy()
    np.fill_diagonal(d, 0.0)
    return d


def _base_path(space: SearchSpace, mask: Mask, decision: int, rng: np.random.Generator,
               tries: int = 100) -> list[int]:
    """A path inside the mask on which the candidate decision matters: for spaces that know which decisions are
    live (NB201 edges that reach the output), re-draw until it is live with a non-``none`` op; a dead candidate
    edge would give every op the same gradient and only dilute the distances."""
    live_fn = getattr(space, "live_edges", None)
    probe = next((o for o in mask[decision] if o != 0), None)
    for _ in range(tries):
        base = list(space.decode(sample_in_mask(space, mask, rng)))
        if live_fn is None or probe is None:
            return base
        trial = list(base)
        trial[decision] = probe
        if live_fn(space.encode(trial))[decision]:
            return base
    return base


def gm_distances(model: torch.nn.Module, space: SearchSpace, mask: Mask, decision: int,
                 batches: Iterable[Any], rng: np.random.Generator, loss: Optional[Any] = None) -> np.ndarray:
    """Mean over ``batches`` of the pairwise distance matrix between the allowed ops of ``decision``, for the
    gradients of ``loss`` (a GM loss; default :class:`CrossEntropyGM`, batches ``(x, y)``)."""
    loss = loss if loss is not None else CrossEntropyGM()
    ops = list(mask[decision])
    excluded = decision_param_names(model, decision)
    params = [p for n, p in model.named_parameters() if p.requires_grad and n not in excluded]
    params += list(loss.extra_parameters())
    total, count = np.zeros((len(ops), len(ops))), 0
    was_training = model.training
    model.train()
    for batch in batches:
        base = _base_path(space, mask, decision, rng)
        prepared = loss.prepare(model, batch, tuple(base), rng)
        grads = []
        for o in ops:
            base[decision] = o
            arch = space.encode(base)
            grads.append(loss_gradients(model, lambda: loss.loss(model, prepared, arch), params))
        total += cosine_distance_matrix(grads)
        count += 1
    model.train(was_training)
    if count == 0:
        raise ValueError("gradient matching needs at least one batch")
    return total / count


def best_partition(distances: np.ndarray, groups: int = 2) -> tuple[list[list[int]], float, float]:
    """Split items 0..n-1 into ``groups`` groups of balanced sizes (they differ by at most one) minimising the
    summed intra-group distance.

    Returns (groups, intra-group distance, cross-group distance). GM-NAS splits 2 ways on NB201 and DARTS; more
    ways (ProxylessNAS-GM's later 3-way splits) go through :func:`_best_k_partition`. For 2 groups the first
    group is the smaller half (for an even n, the one holding item 0).
    """
    n = len(distances)
    if groups < 2:
        raise ValueError(f"a gradient-matching split needs at least 2 groups, got {groups}")
    if n < groups:
        raise ValueError(f"a decision with fewer than {groups} allowed choices ({n}) cannot be split {groups} ways")
    total = float(np.triu(distances, 1).sum())
    if groups > 2:
        parts, intra = _best_k_partition(distances, groups)
        return parts, intra, total - intra
    small = n // 2
    best: Optional[tuple[float, list[int]]] = None
    for first in combinations(range(n), small):
        rest = [i for i in range(n) if i not in first]
        if n % 2 == 0 and 0 not in first:   # each balanced split once when both halves have equal size
            continue
        intra = sum(distances[i, j] for i, j in combinations(first, 2)) + \
            sum(distances[i, j] for i, j in combinations(rest, 2))
        if best is None or intra < best[0] - 1e-12:
            best = (float(intra), list(first))
    assert best is not None
    first = best[1]
    parts = [first, [i for i in range(n) if i not in first]]
    return parts, best[0], total - best[0]


def _best_k_partition(distances: np.ndarray, k: int) -> tuple[list[list[int]], float]:
    """The balanced partition of 0..n-1 into ``k`` groups with the least summed intra-group distance, and that
    distance. Every partition is visited once: groups are built in order of their smallest item, each from the
    smallest item not yet placed and companions of a size still needed; ties keep the first found. Groups are
    returned in that order."""
    n = len(distances)
    small, big = divmod(n, k)   # `big` groups of small + 1 items, k - big of small items
    best: list = [np.inf, None]

    def place(rest: list[int], sizes: dict[int, int], parts: list[list[int]], intra: float) -> None:
        if intra >= best[0] - 1e-12:
            return   # intra only grows as groups are added
        if not rest:
            best[0], best[1] = intra, [list(p) for p in parts]
            return
        head, others = rest[0], rest[1:]
        for size in sorted(s for s, left in sizes.items() if left):
            for mates in combinations(others, size - 1):
                group = (head, *mates)
                cost = sum(distances[i, j] for i, j in combinations(group, 2))
                sizes[size] -= 1
                place([i for i in others if i not in mates], sizes, parts + [list(group)], intra + float(cost))
                sizes[size] += 1

    place(list(range(n)), {small: k - big, small + 1: big} if big else {small: k}, [], 0.0)
    return best[1], float(best[0])


def choose_split(model: torch.nn.Module, space: SearchSpace, mask: Mask, candidates: Sequence[int],
                 batch_fn: Callable[[int], Any], num_batches: int,
                 rng: np.random.Generator, loss: Optional[Any] = None, groups: int = 2) -> dict:
    """Score every candidate decision with at least ``groups`` allowed choices; return the chosen decision, its
    op groups (choice indices, ``groups`` of them) and, per candidate, the distance matrix, the best partition
    and its cross-group distance."""
    report = {}
    for d in candidates:
        if len(mask[d]) < max(groups, 2):
            continue
        dist = gm_distances(model, space, mask, d, (batch_fn(i) for i in range(num_batches)), rng, loss)
        parts, intra, cross = best_partition(dist, groups)
        ops = list(mask[d])
        report[d] = {"ops": ops, "distances": dist.tolist(), "groups": [[ops[i] for i in p] for p in parts],
                     "intra": intra, "cross": cross}
    if not report:
        raise ValueError(f"no decision of this node has {max(groups, 2)} or more allowed choices left to split "
                         f"{max(groups, 2)} ways")
    chosen = max(report, key=lambda d: (report[d]["cross"], -d))
    return {"decision": chosen, "groups": report[chosen]["groups"], "candidates": report}
