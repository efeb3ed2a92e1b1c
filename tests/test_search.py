"""Search strategies: exhaustive, random, SPOS evolution (nshot.search)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nshot import spaces
from nshot.search import (CachedFitness, Constraint, SearchResult, evolution_search, exhaustive_search,
                          get_strategy, random_search)
from tests.helpers import Counting, ToySpace, synthetic, toy_fitness

SP = spaces.get("nb201")


# -- CachedFitness -----------------------------------------------------------------------------------------
def test_cached_fitness_counts_distinct_new_evaluations():
    fn = Counting()
    f = CachedFitness(fn)
    a, b = SP.sample(0), SP.sample(1)
    assert a != b
    assert f(a) == synthetic(a) and f(a) == synthetic(a)
    assert f.many([a, b, b, a]) == [synthetic(a), synthetic(b), synthetic(b), synthetic(a)]
    assert fn.calls == [a, b] and f.evaluations == 2 and f.hits == 4 and a in f and len(f) == 2


def test_cached_fitness_batch_fn_gets_only_missing_once():
    batches = []

    def batch(archs):
        batches.append(list(archs))
        return np.array([synthetic(x) for x in archs])

    f = CachedFitness(batch_fn=batch, cache={SP.sample(0): 1.5})
    archs = [SP.sample(s) for s in range(4)] + [SP.sample(2)]
    out = f.many(archs)
    assert out[0] == 1.5 and out[1:] == [synthetic(a) for a in archs[1:]]
    assert batches == [archs[1:4]] and f.evaluations == 3
    assert f(archs[3]) == synthetic(archs[3]) and len(batches) == 1
    assert all(isinstance(v, float) for v in out)


def test_cached_fitness_errors():
    with pytest.raises(ValueError, match="fn"):
        CachedFitness()
    with pytest.raises(ValueError, match="returned 1 values for 2"):
        CachedFitness(batch_fn=lambda xs: [0.0]).many([SP.sample(0), SP.sample(1)])
    with pytest.raises(TypeError, match="must be a number"):
        CachedFitness(lambda a: "high")(SP.sample(0))


def test_prefilled_cache_is_used_and_written_in_place():
    pre = {a: synthetic(a) for a in (SP.sample(s) for s in range(200))}
    cache = dict(pre)
    fn = Counting(forbidden=pre)
    res = evolution_search(SP, CachedFitness(fn, cache=cache), rng=3, generations=4)
    ref = evolution_search(SP, synthetic, rng=3, generations=4)
    assert res.best == ref.best and res.history[-1]["best"] == ref.history[-1]["best"]
    assert res.evaluations == len(fn.calls) == len(set(fn.calls)) < ref.evaluations
    assert set(fn.calls) <= set(cache) and len(cache) == len(pre) + len(fn.calls)


def test_shared_cache_across_searches_costs_nothing_twice():
    fn = Counting()
    f = CachedFitness(fn)
    r1 = random_search(SP, f, 100, rng=0)
    r2 = random_search(SP, f, 100, rng=0)  # same draws: all cached, so it keeps drawing new ones
    assert r1.evaluations == 100 and r2.evaluations == 100 and len(fn.calls) == 200 == len(set(fn.calls))
    assert r2.info["seen"] > 100


# -- determinism, evaluation counts, budget ---------------------------------------------------------------------
@pytest.mark.parametrize("strategy", ["evolution", "random"])
def test_deterministic_per_seed(strategy):
    kw = {"generations": 5} if strategy == "evolution" else {"budget": 150}
    run = lambda seed: get_strategy(strategy)(SP, synthetic, rng=np.random.default_rng(seed), **kw).to_dict()
    assert run(7) == run(7)
    assert run(7) != run(8)


def test_evaluations_equal_distinct_fn_calls():
    for name, kw in [("evolution", {"rng": 1}), ("random", {"rng": 1, "budget": 400}), ("exhaustive", {})]:
        fn = Counting()
        res = get_strategy(name)(SP, fn, **kw)
        assert res.evaluations == len(fn.calls) == len(set(fn.calls)), name
        assert res.info["seen"] == res.evaluations
    # SPOS defaults: 20 generations x 50 distinct architectures
    assert evolution_search(SP, synthetic, rng=0).evaluations == 1000


@settings(max_examples=15, deadline=None)
@given(budget=st.integers(1, 260), seed=st.integers(0, 2**31))
def test_budget_respected_exactly(budget, seed):
    for search in (lambda fn: evolution_search(SP, fn, seed, budget=budget),
                   lambda fn: random_search(SP, fn, budget, seed, batch_size=32)):
        fn = Counting()
        res = search(fn)
        assert res.evaluations == budget == len(fn.calls) == len(set(fn.calls))
        assert res.history[-1]["evaluations"] == budget


def test_evolution_batches_one_call_per_generation_and_reports_progress():
    batches, seen_progress = [], []

    def batch(archs):
        batches.append(list(archs))
        return [synthetic(a) for a in archs]

    res = evolution_search(SP, CachedFitness(batch_fn=batch), rng=2, generations=6,
                           progress=seen_progress.append)
    assert len(batches) == 6 == len(res.history) == len(seen_progress)
    assert all(len(b) == 50 == len(set(b)) for b in batches)
    flat = [a for b in batches for a in b]
    assert len(set(flat)) == len(flat) == res.evaluations
    h = res.history
    assert [e["generation"] for e in h] == list(range(6))
    assert h[0]["random"] == 50 and h[1]["mutants"] == 25 and h[1]["crossovers"] == 25
    assert all(e["mutants"] + e["crossovers"] + e["random"] == e["size"] for e in h)
    assert all(h[i]["best"] <= h[i + 1]["best"] for i in range(5))
    assert seen_progress[-1]["evaluations"] == 300


def test_result_is_sorted_and_json_ready():
    res = evolution_search(SP, synthetic, rng=0, generations=3, top_k=7)
    assert isinstance(res, SearchResult) and len(res.best) == 7
    fits = [f for _, f in res.best]
    assert fits == sorted(fits, reverse=True) and res.best_fitness == fits[0] == res.history[-1]["best"]
    d = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    assert d["strategy"] == "evolution" and d["best"][0]["arch"] == res.best_arch
    assert d["info"]["parent_selection"].startswith("top-k over all evaluated")


def test_nan_fitness_ranks_last_and_serialises():
    res = random_search(SP, lambda a: float("nan") if SP.decode(a)[0] == 0 else synthetic(a), 100, rng=0)
    assert not np.isnan(res.best_fitness)
    json.dumps(res.to_dict(), allow_nan=False)


# -- genericity and exhaustion on a tiny space ------------------------------------------------------------------
def test_toy_space_exhaustive_and_exhaustion():
    toy = ToySpace()
    ex = exhaustive_search(toy, toy_fitness, top_k=3)
    assert ex.evaluations == 24 and ex.best_arch == "b-z-3" and ex.best_fitness == 1 + 4 + 9
    fn = Counting(toy_fitness)
    ev = evolution_search(toy, fn, rng=0, population=10, parents=3, mutants=4, crossovers=4, generations=50)
    assert ev.info["stop"] == "exhausted" and ev.evaluations == 24 == len(set(fn.calls))
    assert ev.best_arch == "b-z-3"
    rs = random_search(toy, toy_fitness, budget=100, rng=0)
    assert rs.evaluations == 24 and rs.info["stop"] == "exhausted"


def test_constraint_on_toy_space_with_space_kwargs():
    toy = ToySpace()
    c = Constraint(max_params=40, min_flops=1000, space_kwargs={"scale": 10})
    ok = [a for a in toy.enumerate() if c.ok(toy, a)]
    assert ok and len(ok) < 24
    for res in (exhaustive_search(toy, toy_fitness, c), random_search(toy, toy_fitness, 50, 1, constraint=c),
                evolution_search(toy, toy_fitness, 1, population=6, parents=2, mutants=2, crossovers=2,
                                 constraint=c)):
        assert all(a in ok for a, _ in res.best)
        assert res.best_fitness == max(toy_fitness(a) for a in ok)
    assert not Constraint(max_params=40, space_kwargs={"scale": 100}).ok(toy, "b-z-3")


# -- errors ------------------------------------------------------------------------------------------------------
def test_unknown_strategy_lists_options():
    with pytest.raises(ValueError, match="unknown search strategy 'bohb'.*evolution, exhaustive, random"):
        get_strategy("bohb")
    assert get_strategy("evolution") is evolution_search


def test_impossible_constraint_raises():
    c = Constraint(max_params=1000)  # the smallest NB201 network has 73,306 parameters
    with pytest.raises(ValueError, match="no architecture of the nb201 space.*params <= 1,000"):
        exhaustive_search(SP, synthetic, c)
    for search in (lambda: random_search(SP, synthetic, 10, 0, constraint=c, max_tries=20),
                   lambda: evolution_search(SP, synthetic, 0, constraint=c, max_tries=20)):
        with pytest.raises(ValueError, match="no architecture satisfying the constraint.*impossible"):
            search()


def test_bad_arguments():
    with pytest.raises(ValueError, match="min_params=5 is larger than max_params=4"):
        Constraint(min_params=5, max_params=4)
    with pytest.raises(ValueError, match="must not exceed population"):
        evolution_search(SP, synthetic, 0, population=40)
    with pytest.raises(ValueError, match="budget"):
        random_search(SP, synthetic, 0, 0)
    with pytest.raises(ValueError, match="mutation_prob"):
        evolution_search(SP, synthetic, 0, mutation_prob=1.5)
    with pytest.raises(TypeError, match="fitness"):
        random_search(SP, 3.0, 5, 0)


def test_no_torch_import():
    code = "import sys, nshot.search; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


# -- the real NB201 table as oracle (the nb201_table fixture: conftest.py) -------------------------------------


def test_oracle_evolution_beats_random_at_equal_budget(nb201_table):
    val, test = nb201_table
    budget, seeds = 300, range(10)
    evo = [evolution_search(SP, val.__getitem__, np.random.default_rng(s), budget=budget) for s in seeds]
    rnd = [random_search(SP, val.__getitem__, budget, np.random.default_rng(s)) for s in seeds]
    assert all(r.evaluations == budget for r in evo + rnd)
    evo_val, rnd_val = np.mean([r.best_fitness for r in evo]), np.mean([r.best_fitness for r in rnd])
    evo_test, rnd_test = np.mean([test[r.best_arch] for r in evo]), np.mean([test[r.best_arch] for r in rnd])
    print(f"\nbudget {budget}, {len(seeds)} seeds: evolution val {evo_val:.3f} test {evo_test:.3f} | "
          f"random val {rnd_val:.3f} test {rnd_test:.3f}")
    assert evo_val > rnd_val
    assert evo_test > rnd_test  # the truth agrees: the architectures found are better on test too


def test_oracle_exhaustive_finds_true_max(nb201_table):
    val, test = nb201_table
    res = exhaustive_search(SP, val.__getitem__, top_k=5)
    assert res.evaluations == 15625 and res.best_fitness == max(val.values())
    assert [a for a, _ in res.best] == sorted(val, key=lambda a: -val[a])[:5]
    assert test[res.best_arch] == pytest.approx(94.373333)  # NB201's best-valid cell is also the best-test cell


def test_oracle_constraint_respected(nb201_table):
    val, _ = nb201_table
    c = Constraint(max_params=400_000)
    allowed = {a for a in val if SP.num_params(a) <= 400_000}
    assert 0 < len(allowed) < len(val)
    true_best = max(val[a] for a in allowed)
    ex = exhaustive_search(SP, val.__getitem__, c)
    assert ex.evaluations == len(allowed) and ex.best_fitness == true_best and ex.best_arch in allowed
    for seed in range(3):
        for res in (evolution_search(SP, val.__getitem__, seed, constraint=c, budget=300),
                    random_search(SP, val.__getitem__, 300, seed, constraint=c)):
            assert all(a in allowed for a, _ in res.best)
            assert all(e.get("arch", e.get("best_arch")) in allowed for e in res.history)
            assert res.best_fitness <= true_best
