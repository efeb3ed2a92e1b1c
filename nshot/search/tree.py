"""LaNAS-style tree search (Wang et al., "Learning search space partition for black-box optimization using
Monte Carlo tree search", NeurIPS 2020), the search Pi-NAS runs on its shared-head scores.

After ``init_samples`` uniformly random architectures, every round:

1. **build the tree** from everything this search has taken: a node holding at least ``2 * leaf_size``
   architectures (and above ``max_depth``) fits a linear boundary on their encoding (one-hot of every decision)
   that separates its better half from its worse half (ridge least squares on labels +1 / -1, ranks by
   fitness, ties to the earlier evaluated), and its architectures go to the side the boundary puts them
   on; a boundary that puts all of them on one side leaves the node a leaf;
2. **select** ``batch_size`` times a leaf by UCB from the root: at each node the child with the larger
   ``mean z + ucb_c * sqrt(2 ln n_node / n_child)`` (z = fitness standardised over all taken
   architectures, so ``ucb_c`` does not depend on the fitness's scale); ``ucb_c = 0`` is Pi-NAS's greedy
   choice;
3. **sample inside the leaf**: uniform draws from the space kept only if every boundary on the leaf's path
   puts them on the leaf's side (rejection, at most ``max_tries`` draws); if none is found, a mutation of the
   leaf's architectures that stays in the region; failing that, any new mutation of them;
4. evaluate the round's new architectures in one ``fitness.many`` call.

Pure numpy, deterministic for a given ``rng``. ``budget`` counts the architectures the search takes,
already cached ones included, so a search interrupted after any round and run again with the same seed on the
same cache (``RUN/scores.csv``) retraces the same steps and reaches the same result, evaluating only what
the interrupted one had not (evolution's budget counts new evaluations instead).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..spaces import Arch, SearchSpace, as_rng
from .constraint import Constraint
from .result import SearchResult
from .strategies import STRATEGIES, Progress, _check_int, _finish, _rank_key, _State, command_line


def one_hot(space: SearchSpace, archs: list[Arch]) -> np.ndarray:
    """The encoding the boundaries are fitted on: one column per (decision, choice)."""
    offsets = np.cumsum((0,) + tuple(space.sizes))[:-1]
    x = np.zeros((len(archs), int(sum(space.sizes))))
    for i, a in enumerate(archs):
        x[i, offsets + np.asarray(space.decode(a))] = 1.0
    return x


def fit_boundary(x: np.ndarray, good: np.ndarray, ridge: float = 1e-3) -> tuple[np.ndarray, float]:
    """(w, b) of the ridge least-squares fit of +1 (good) / -1 to ``x``; ``x @ w + b > 0`` is the good side."""
    design = np.hstack([x, np.ones((len(x), 1))])
    target = np.where(good, 1.0, -1.0)
    reg = ridge * len(x) * np.eye(design.shape[1])
    reg[-1, -1] = 0.0
    coef = np.linalg.solve(design.T @ design + reg, design.T @ target)
    return coef[:-1], float(coef[-1])


@dataclass
class Node:
    """A region of the space: the architectures (row indices) in it, its boundary if split, its children
    (good side first) and the (w, b, side) constraints from the root."""
    rows: np.ndarray
    path: list[tuple[np.ndarray, float, bool]] = field(default_factory=list)
    boundary: Optional[tuple[np.ndarray, float]] = None
    children: list["Node"] = field(default_factory=list)


def build_tree(x: np.ndarray, fitness: np.ndarray, leaf_size: int, max_depth: int, ridge: float) -> Node:
    """Recursive partition of the rows of ``x`` (see the module docstring)."""
    root = Node(np.arange(len(x)))
    todo = [(root, 0)]
    while todo:
        node, depth = todo.pop()
        n = len(node.rows)
        if depth >= max_depth or n < 2 * leaf_size:
            continue
        order = sorted(node.rows.tolist(), key=lambda r: (-_rank_key(fitness[r]), r))
        good = np.isin(node.rows, order[:(n + 1) // 2])
        w, b = fit_boundary(x[node.rows], good, ridge)
        side = x[node.rows] @ w + b > 0
        if side.all() or not side.any():
            continue
        node.boundary = (w, b)
        for s in (True, False):
            child = Node(node.rows[side == s], node.path + [(w, b, s)])
            node.children.append(child)
            todo.append((child, depth + 1))
    return root


def in_region(x: np.ndarray, path: list[tuple[np.ndarray, float, bool]]) -> np.ndarray:
    """Which rows of ``x`` lie on the given side of every boundary of ``path``."""
    ok = np.ones(len(x), dtype=bool)
    for w, b, s in path:
        ok &= (x @ w + b > 0) == s
    return ok


def select_leaf(root: Node, z: np.ndarray, c: float) -> Node:
    """UCB descent: the child with the larger mean z + c * sqrt(2 ln n / n_child); ties to the good side."""
    node = root
    while node.children:
        n = len(node.rows)
        node = max(node.children, key=lambda ch: float(z[ch.rows].mean()) +
                   c * math.sqrt(2.0 * math.log(n) / len(ch.rows)))
    return node


def _tree_options(args) -> dict:
    return dict(init_samples=args.init_samples, batch_size=args.tree_batch, leaf_size=args.leaf_size,
                max_depth=args.max_depth, ucb_c=args.ucb_c)


@STRATEGIES.register("tree")
@command_line(options=_tree_options)
def tree_search(space: SearchSpace, fitness, budget: int, rng=None, constraint: Optional[Constraint] = None,
                top_k: int = 10, init_samples: int = 50, batch_size: int = 8, leaf_size: int = 10,
                max_depth: int = 5, ucb_c: float = 0.5, ridge: float = 1e-3, max_tries: int = 100,
                progress: Progress = None) -> SearchResult:
    """LaNAS-style tree search (module docstring) until ``budget`` architectures are taken.

    ``history`` and ``progress`` get one dict per round (round 0 = the random start): ``round``,
    ``evaluations`` (new, cumulative), ``taken``, ``leaves``, ``depth``, ``sources`` (how the round's
    architectures were found: ``region``, ``mutation``, ``outside``, ``random``), ``best``, ``best_arch``.
    """
    for name, value, minimum in (("budget", budget, 1), ("top_k", top_k, 1), ("init_samples", init_samples, 2),
                                 ("batch_size", batch_size, 1), ("leaf_size", leaf_size, 1),
                                 ("max_depth", max_depth, 0)):
        _check_int(name, value, minimum)
    if not (isinstance(ucb_c, (int, float)) and ucb_c >= 0):
        raise ValueError(f"ucb_c must be a number >= 0, got {ucb_c!r}")
    g = as_rng(rng)
    state = _State(space, fitness, constraint, None, max_tries)
    history: list[dict] = []
    archs: list[Arch] = []
    stop = "budget"

    def take(batch: list[Arch], entry: dict) -> None:
        state.evaluate(batch)
        archs.extend(batch)
        best_a, best_f = state.best()
        entry.update({"evaluations": state.evaluations, "taken": len(archs), "best": best_f, "best_arch": best_a})
        history.append(entry)
        if progress is not None:
            progress(dict(entry))

    first = state.random_new(min(init_samples, budget), g)
    if not first:
        raise state.nothing_found(max_tries * init_samples)
    take(first, {"round": 0, "leaves": 1, "depth": 0, "sources": {"random": len(first)}})
    while len(archs) < budget:
        x = one_hot(space, archs)
        f = np.asarray([state.seen[a] for a in archs], dtype=float)
        ok = np.isfinite(f)
        mu, sd = (float(f[ok].mean()), float(f[ok].std())) if ok.any() else (0.0, 0.0)
        z = np.where(ok, (f - mu) / (sd if sd > 0 else 1.0), -10.0)   # a NaN fitness counts as very bad
        root = build_tree(x, f, leaf_size, max_depth, ridge)
        leaves, depth = _leaves(root)
        batch: list[Arch] = []
        taken: set = set()
        sources = {"region": 0, "mutation": 0, "outside": 0}
        for _ in range(int(min(batch_size, budget - len(archs)))):
            leaf = select_leaf(root, z, float(ucb_c))
            arch, how = _sample_in_leaf(space, state, leaf, archs, g, taken, max_tries)
            if arch is None:
                continue
            taken.add(arch)
            batch.append(arch)
            sources[how] += 1
        if not batch:
            stop = "exhausted"
            break
        take(batch, {"round": len(history), "leaves": leaves, "depth": depth, "sources": sources})
    info = {"budget": budget, "budget_counts": "architectures taken (cached ones included)",
            "init_samples": init_samples, "batch_size": batch_size, "leaf_size": leaf_size, "max_depth": max_depth,
            "ucb_c": ucb_c, "ridge": ridge, "rounds": len(history), "taken": len(archs), "stop": stop}
    return _finish("tree", state, top_k, history, info)


def _leaves(root: Node) -> tuple[int, int]:
    """(number of leaves, depth) of a tree."""
    count, depth, todo = 0, 0, [(root, 0)]
    while todo:
        node, d = todo.pop()
        depth = max(depth, d)
        if node.children:
            todo.extend((c, d + 1) for c in node.children)
        else:
            count += 1
    return count, depth


def _sample_in_leaf(space: SearchSpace, state: _State, leaf: Node, archs: list[Arch], g: np.random.Generator,
                    taken: set, max_tries: int) -> tuple[Optional[Arch], str]:
    """A new acceptable architecture for ``leaf``: uniform in its region, else a mutation of its members in
    the region, else any new mutation of its members; (None, '') when none is found."""
    draws = [space.sample(g) for _ in range(max_tries)]
    inside = in_region(one_hot(space, draws), leaf.path)
    for a, ok in zip(draws, inside):
        if ok and state.acceptable(a, taken):
            return a, "region"
    members = [archs[int(r)] for r in leaf.rows]
    prob = 1.0 / max(1, space.num_decisions)
    draws = [space.mutate(members[int(g.integers(len(members)))], g, prob=prob) for _ in range(max_tries)]
    inside = in_region(one_hot(space, draws), leaf.path)
    fresh = [(a, ok) for a, ok in zip(draws, inside) if state.acceptable(a, taken)]
    for a, ok in fresh:
        if ok:
            return a, "mutation"
    if fresh:
        return fresh[0][0], "outside"
    more = state.random_new(1, g, taken)
    return (more[0], "outside") if more else (None, "")
