"""GM-NAS with differentiable search: soft-weight gradient matching, the DARTS-space partition, successive
halving among sub-supernets and DARTS-PT-style projection.

* :func:`soft_gm_distances`: for the edge under test, the op-weight table is the current softmax of the alphas
  with that edge's row zeroed except op o, which keeps its own softmax weight; the gradients of every shared
  weight except the edge's own ops are compared between ops (1 - cos, averaged over batches), as GM-NAS's
  DARTS/SNAS code does.
* :func:`darts_partition`: every split of an edge's ops into S and its complement with 2 <= |S| <= n/2 (1 <= |S|
  when fewer than 4 ops are left), minimal summed within-group distance; :func:`choose_soft_split` picks the edge
  whose best split has the *smallest* within-group distance (the sign convention of GM-NAS's DARTS-space code;
  normal and reduction edges are both candidates); :func:`choose_balanced_split` is GM-NAS's NB201 rule (balanced
  split, largest cross-group distance). :data:`SPLIT_RULES` names both; a space picks its own
  (``soft_split_rule``).
* :func:`successive_halving`: train the candidates a budget, keep the better half by held-out accuracy, repeat;
  finished rounds can be replayed from their scores (a resumed run) and each new round is reported.
* :func:`project_ops` / :func:`project_topology`: DARTS-PT's perturbation-based selection: on each edge remove
  one op at a time (its weight set to 0) and keep the op whose removal lowers held-out accuracy most; then, in
  each of the space's topology groups (DARTS: a node's input edges), keep the edges whose removal hurts most.
"""
from __future__ import annotations

from itertools import combinations
from typing import Callable, Iterable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .differentiable import mixed_logits
from .gradmatch import best_partition, cosine_distance_matrix

Batch = tuple[torch.Tensor, torch.Tensor]


def edge_param_names(model: torch.nn.Module, edge: int) -> set[str]:
    """Parameters of the candidate ops of alpha-table row ``edge`` (DARTS supernet: 0..27; NB201: edge in every
    cell)."""
    own = getattr(model, "edge_param_names", None)
    if callable(own):
        return {n for n, (e, _) in own().items() if e == edge}
    marker = f".edges.{edge}."
    return {n for n, _ in model.named_parameters() if marker in f".{n}"}


def soft_gm_distances(model: torch.nn.Module, probs: torch.Tensor, edge: int, ops: Sequence[int],
                      batches: Iterable[Batch]) -> np.ndarray:
    """Mean over ``batches`` of the pairwise 1 - cos distances between the shared-weight gradients obtained with
    each op of ``ops`` alone on ``edge`` (at its softmax weight ``probs[edge, o]``), the other edges at ``probs``."""
    excluded = edge_param_names(model, edge)
    names = [n for n, p in model.named_parameters() if p.requires_grad and n not in excluded]
    params = dict(model.named_parameters())
    total, count = np.zeros((len(ops), len(ops))), 0
    was = model.training
    model.train()
    for x, y in batches:
        grads = []
        for o in ops:
            w = probs.detach().clone()
            w[edge] = 0.0
            w[edge, o] = probs[edge, o]
            model.zero_grad(set_to_none=True)
            F.cross_entropy(mixed_logits(model, x, w), y).backward()
            grads.append(torch.cat([params[n].grad.reshape(-1) if params[n].grad is not None
                                    else torch.zeros(params[n].numel(), device=x.device) for n in names]))
        model.zero_grad(set_to_none=True)
        total += cosine_distance_matrix(grads)
        count += 1
    model.train(was)
    if not count:
        raise ValueError("gradient matching needs at least one batch")
    return total / count


def darts_partition(distances: np.ndarray) -> tuple[list[list[int]], float]:
    """The 2-way split of items 0..n-1 with the smallest summed within-group distance, over every subset S with
    2 <= |S| <= n/2 (1 <= |S| when n < 4) and its complement; returns (groups, within-group distance)."""
    d = np.asarray(distances, dtype=float)
    n = len(d)
    if n < 2:
        raise ValueError("an edge with fewer than 2 allowed ops cannot be split")
    lo = 2 if n >= 4 else 1
    best: Optional[tuple[float, list[int]]] = None
    for size in range(lo, n // 2 + 1):
        for first in combinations(range(n), size):
            if 2 * size == n and 0 not in first:      # each equal-size split once
                continue
            rest = [i for i in range(n) if i not in first]
            intra = sum(d[i, j] for i, j in combinations(first, 2)) + sum(d[i, j] for i, j in combinations(rest, 2))
            if best is None or intra < best[0] - 1e-12:
                best = (float(intra), list(first))
    assert best is not None
    first = best[1]
    return [first, [i for i in range(n) if i not in first]], best[0]


def choose_soft_split(distances_by_edge: dict[int, tuple[Sequence[int], np.ndarray]]) -> dict:
    """The edge to split among ``{edge: (ops, distance matrix)}``: the one whose best partition has the smallest
    within-group distance (ties: the lower edge). Returns the decision, its op groups and every candidate's."""
    report = {}
    for e, (ops, d) in distances_by_edge.items():
        if len(ops) < 2:
            continue
        parts, intra = darts_partition(d)
        report[e] = {"ops": list(ops), "distances": np.asarray(d).tolist(), "intra": intra,
                     "groups": [[list(ops)[i] for i in p] for p in parts]}
    if not report:
        raise ValueError("no edge has two or more allowed ops left to split")
    chosen = min(report, key=lambda e: (report[e]["intra"], e))
    return {"decision": chosen, "groups": report[chosen]["groups"], "candidates": report}


def choose_balanced_split(distances_by_edge: dict[int, tuple[Sequence[int], np.ndarray]]) -> dict:
    """GM-NAS's NB201 rule: per edge the balanced 2-way split with the smallest within-group distance
    (:func:`~nshot.train.gradmatch.best_partition`); the edge whose split has the *largest* cross-group distance
    (ties: the lower edge). Returns the decision, its op groups and every candidate's."""
    report = {}
    for e, (ops, d) in distances_by_edge.items():
        if len(ops) < 2:
            continue
        parts, intra, cross = best_partition(d)
        report[e] = {"ops": list(ops), "distances": np.asarray(d).tolist(), "intra": intra, "cross": cross,
                     "groups": [[list(ops)[i] for i in p] for p in parts]}
    if not report:
        raise ValueError("no edge has two or more allowed ops left to split")
    chosen = max(report, key=lambda e: (report[e]["cross"], -e))
    return {"decision": chosen, "groups": report[chosen]["groups"], "candidates": report}


#: GM-NAS's split rules for differentiable search by name; a space names its own
#: (:attr:`~nshot.spaces.base.SearchSpace.soft_split_rule`)
SPLIT_RULES: dict[str, Callable[[dict[int, tuple[Sequence[int], np.ndarray]]], dict]] = {
    "largest_cross": choose_balanced_split,
    "smallest_within": choose_soft_split,
}


def successive_halving(candidates: Sequence[str], train: Callable[[str, int], None],
                       score: Callable[[str], float], budget: int, rounds: Optional[int] = None,
                       history: Sequence[dict] = (),
                       on_round: Optional[Callable[[list, list], None]] = None) -> tuple[str, list]:
    """Keep the better half of ``candidates`` (by ``score``, higher is better; ties: the earlier) after each
    round of ``train(candidate, budget)``, until one is left; returns (winner, per-round scores).

    ``history``: the per-round scores of rounds already finished (a resumed run); they are replayed, neither
    trained nor scored again. ``on_round(history, alive)`` is called after each newly finished round with the
    scores so far and the survivors."""
    alive = list(candidates)
    history = [dict(h) for h in history]
    for scores in history:
        if set(scores) != set(alive):
            raise ValueError(f"halving history does not match the candidates: round scores {sorted(scores)}, "
                             f"alive {sorted(alive)}")
        alive = _better_half(alive, scores)
    r = len(history)
    while len(alive) > 1 and (rounds is None or r < rounds):
        for c in alive:
            train(c, budget)
        scores = {c: float(score(c)) for c in alive}
        history.append(scores)
        alive = _better_half(alive, scores)
        r += 1
        if on_round is not None:
            on_round([dict(h) for h in history], list(alive))
    return alive[0], history


def _better_half(alive: list, scores: dict) -> list:
    keep = max(1, len(alive) // 2)
    return sorted(alive, key=lambda c: (-scores[c], alive.index(c)))[:keep]


@torch.no_grad()
def _accuracy(model: torch.nn.Module, weights: torch.Tensor, batches: Sequence[Batch]) -> float:
    correct = total = 0
    for x, y in batches:
        correct += int((mixed_logits(model, x, weights).argmax(1) == y).sum())
        total += len(y)
    return 100.0 * correct / max(total, 1)


def project_ops(model: torch.nn.Module, probs: torch.Tensor, batches: Sequence[Batch],
                order: Optional[Sequence[int]] = None, exclude: Sequence[int] = (),
                tune: Optional[Callable[[torch.Tensor], None]] = None) -> tuple[torch.Tensor, list[dict]]:
    """DARTS-PT op selection, one edge at a time (in ``order``): for each op with non-zero weight, held-out
    accuracy with that op removed; the edge keeps (one-hot) the op whose removal hurts most (ties: the lower
    op). Ops in ``exclude`` (the DARTS space's ``none``: 0) are removed first and never kept. ``tune(table)``,
    if given, is called after each decision with the table so far (DARTS-PT tunes the supernet's weights there
    before the next edge is measured). Returns the projected table and per edge the accuracies."""
    w = probs.detach().clone()
    if exclude:
        w[:, list(exclude)] = 0.0
    log = []
    for e in (order if order is not None else range(w.shape[0])):
        ops = [o for o in range(w.shape[1]) if float(w[e, o]) > 0]
        if len(ops) <= 1:
            continue
        accs = {}
        for o in ops:
            trial = w.clone()
            trial[e, o] = 0.0
            accs[o] = _accuracy(model, trial, batches)
        keep = min(ops, key=lambda o: (accs[o], o))
        w[e] = 0.0
        w[e, keep] = 1.0
        log.append({"edge": int(e), "accuracy_without": {int(o): a for o, a in accs.items()}, "kept": int(keep)})
        if tune is not None:
            tune(w)
    return w, log


def project_topology(model: torch.nn.Module, weights: torch.Tensor, batches: Sequence[Batch],
                     groups: Sequence[tuple[str, Sequence[int], int]],
                     tune: Optional[Callable[[torch.Tensor], None]] = None) -> tuple[torch.Tensor, list[dict]]:
    """DARTS-PT topology selection after :func:`project_ops` (one op per edge): for each ``(label, rows, keep)``
    of ``groups`` (a space's :meth:`~nshot.spaces.base.SearchSpace.topology_groups`; DARTS: a node's input
    edges, keep 2), remove each row in turn and keep the ``keep`` rows whose removal lowers held-out accuracy
    most (ties: the lower row; an all-zero row only when no other is left); the other rows are zeroed before the
    next group (and ``tune(table)`` is called,
    as in :func:`project_ops`). Returns the table and per group the accuracies."""
    w = weights.detach().clone()
    log = []
    for label, rows, keep in groups:
        accs = {}
        for e in rows:
            trial = w.clone()
            trial[e] = 0.0
            accs[e] = _accuracy(model, trial, batches)
        # rows whose ops were all removed (a mask of only excluded ops) are never kept while another row is left
        kept = sorted(sorted(rows, key=lambda e: (not bool(w[e].any()), accs[e], e))[:keep])
        for e in rows:
            if e not in kept:
                w[e] = 0.0
        log.append({"group": label, "accuracy_without": {int(e): a for e, a in accs.items()},
                    "kept": [int(e) for e in kept]})
        if tune is not None:
            tune(w)
    return w, log
