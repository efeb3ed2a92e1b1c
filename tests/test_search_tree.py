"""LaNAS-style tree search (nshot.search.tree): boundaries, UCB, budget, constraints, resume from the cache."""
from __future__ import annotations

import numpy as np
import pytest

from nshot import spaces
from nshot.search import CachedFitness, Constraint, get_strategy, random_search, tree_search
from nshot.search.tree import build_tree, in_region, one_hot, select_leaf
from tests.helpers import Counting, ToySpace, synthetic, toy_fitness

SP = spaces.get("nb201")


def _leaves(node):
    return [node] if not node.children else [l for c in node.children for l in _leaves(c)]


def test_tree_partitions_exactly_and_the_good_side_is_better():
    g = np.random.default_rng(0)
    archs = list(dict.fromkeys(SP.sample(g) for _ in range(200)))
    f = np.asarray([synthetic(a) for a in archs])
    x = one_hot(SP, archs)
    assert x.shape == (len(archs), 30) and (x.sum(1) == 6).all()
    root = build_tree(x, f, leaf_size=10, max_depth=3, ridge=1e-3)
    leaves = _leaves(root)
    assert 2 < len(leaves) <= 8
    rows = np.sort(np.concatenate([l.rows for l in leaves]))
    assert rows.tolist() == list(range(len(archs)))                  # an exact cover of what was taken
    for leaf in leaves:                                              # each leaf's rows lie in its own region
        assert in_region(x[leaf.rows], leaf.path).all()
        assert not in_region(np.delete(x, leaf.rows, 0), leaf.path).any()
    good, bad = root.children                                        # a linear fitness: the boundary finds it
    assert f[good.rows].mean() > f[bad.rows].mean() + 5
    z = (f - f.mean()) / f.std()
    greedy = select_leaf(root, z, 0.0)
    node = root
    while node.children:                                             # c = 0: the better mean at every level
        node = max(node.children, key=lambda ch: f[ch.rows].mean())
    assert greedy is node


def test_ucb_exploration_visits_the_worse_side():
    g = np.random.default_rng(1)
    archs = list(dict.fromkeys(SP.sample(g) for _ in range(60)))
    f = np.asarray([synthetic(a) for a in archs])
    x = one_hot(SP, archs)
    root = build_tree(x, f, leaf_size=10, max_depth=1, ridge=1e-3)
    z = (f - f.mean()) / f.std()
    assert select_leaf(root, z, 0.0) is root.children[0]
    assert select_leaf(root, z, 100.0) is min(root.children, key=lambda c: len(c.rows)) or \
        len(root.children[0].rows) == len(root.children[1].rows)


@pytest.mark.parametrize("budget, seed", [(57, 0), (120, 3)])
def test_budget_determinism_and_one_batch_per_round(budget, seed):
    fn = Counting()
    calls = []
    fit = CachedFitness(batch_fn=lambda archs: calls.append(len(archs)) or [fn(a) for a in archs])
    r = tree_search(SP, fit, budget, np.random.default_rng(seed), init_samples=20, batch_size=8)
    assert r.evaluations == budget == len(fn.calls) == len(set(fn.calls)) == r.info["taken"]
    assert calls[0] == 20 and all(c <= 8 for c in calls[1:]) and len(calls) == len(r.history)
    again = tree_search(SP, synthetic, budget, np.random.default_rng(seed), init_samples=20, batch_size=8)
    assert again.best == r.best and again.history == r.history
    assert get_strategy("tree") is tree_search


def test_killed_search_rerun_on_its_cache_equals_uninterrupted():
    full = tree_search(SP, synthetic, 150, np.random.default_rng(7), init_samples=30)
    cache: dict = {}

    class Killed(Exception):
        pass

    def dying(arch):
        if len(cache) >= 77:
            raise Killed
        return synthetic(arch)
    with pytest.raises(Killed):
        tree_search(SP, CachedFitness(fn=dying, cache=cache), 150, np.random.default_rng(7), init_samples=30)
    assert len(cache) == 77                        # what the killed search had stored (RUN/scores.csv)
    fn = Counting(forbidden=set(cache))
    resumed = tree_search(SP, CachedFitness(fn=fn, cache=cache), 150, np.random.default_rng(7), init_samples=30)
    assert resumed.best == full.best and resumed.info["taken"] == 150
    assert len(fn.calls) == resumed.evaluations == 150 - 77
    assert [h["best_arch"] for h in resumed.history] == [h["best_arch"] for h in full.history]


def test_constraint_and_exhaustion_on_a_toy_space():
    toy = ToySpace()
    c = Constraint(max_params=40, space_kwargs={"scale": 10})   # sum of choices <= 4: 20 of 24 archs
    r = tree_search(toy, toy_fitness, 100, np.random.default_rng(0), constraint=c, init_samples=4, batch_size=3,
                    leaf_size=2)
    assert r.info["stop"] == "exhausted" and r.info["taken"] == r.evaluations == 20
    assert all(toy.num_params(a, scale=10) <= 40 for a, _ in r.best)
    assert r.best_fitness == max(toy_fitness(a) for a in toy.enumerate() if toy.num_params(a, scale=10) <= 40)
    with pytest.raises(ValueError, match="ucb_c"):
        tree_search(toy, toy_fitness, 10, 0, ucb_c=-1)
    with pytest.raises(ValueError, match="init_samples"):
        tree_search(toy, toy_fitness, 10, 0, init_samples=1)


def test_oracle_tree_beats_random_on_nb201(nb201_table):
    val, test = nb201_table
    tree = [tree_search(SP, val.__getitem__, 150, np.random.default_rng(s)) for s in range(5)]
    rnd = [random_search(SP, val.__getitem__, 150, np.random.default_rng(s)) for s in range(5)]
    assert all(r.evaluations == 150 for r in tree + rnd)
    assert np.mean([test[r.best_arch] for r in tree]) > np.mean([test[r.best_arch] for r in rnd])
