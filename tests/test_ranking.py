"""nshot.score.ranking: Kendall/Spearman, precision@top, top-1, fairness by complexity, the JSON report."""
from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import stats

from nshot.score.ranking import (fairness_by_complexity, kendall_tau, kendall_tau_ci, precision_at_top,
                                 rank_report, spearman_rho, top1_truth, top_k)


# ------------------------------------------------------------------------------------------ tau and rho
def test_hand_values_four_items():
    # pairs: (1,3)/(1,2)/(1,4)/(3,4)/(2,4) concordant, (3,2) discordant: tau = (5 - 1) / 6
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(2 / 3)
    # d = (0, 1, -1, 0): rho = 1 - 6 * 2 / (4 * 15)
    assert spearman_rho([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman_rho([10, 20, 30, 40], [0.1, 0.2, 0.3, 0.4]) == pytest.approx(1.0)
    # a tie in scores: C = 5, D = 0, n0 = 6, n1 = 1, n2 = 0 -> tau-b = 5 / sqrt(5 * 6)
    assert kendall_tau([1, 1, 2, 3], [1, 2, 3, 4]) == pytest.approx(5 / math.sqrt(30))


@pytest.mark.parametrize("scores, truth", [
    ([0.3, 0.1, 0.4, 0.1, 0.5, 0.9, 0.2, 0.6], [3, 1, 4, 1, 5, 9, 2, 6]),
    ([1, 1, 1, 2, 2, 3], [5, 3, 3, 2, 2, 1]),                       # ties on both sides
    ([2.5, -1, 7, 7, 0, 3.25, 3.25, 9], [1, 2, 3, 4, 5, 6, 7, 8]),
    ([1, 2], [2, 1]),
])
def test_against_scipy(scores, truth):
    assert kendall_tau(scores, truth) == pytest.approx(stats.kendalltau(scores, truth, variant="b")[0])
    assert spearman_rho(scores, truth) == pytest.approx(stats.spearmanr(scores, truth)[0])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.floats(-5, 5, allow_nan=False)), min_size=2, max_size=40))
def test_against_scipy_random(pairs):
    s = [p[0] for p in pairs]
    t = [p[1] for p in pairs]
    tau, rho = kendall_tau(s, t), spearman_rho(s, t)
    if len(set(s)) == 1 or len(set(t)) == 1:
        assert math.isnan(tau) and math.isnan(rho)
    else:
        assert tau == pytest.approx(stats.kendalltau(s, t, variant="b")[0], abs=1e-12)
        assert rho == pytest.approx(stats.spearmanr(s, t)[0], abs=1e-12)


def test_undefined_is_nan_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for s, t in (([1, 1, 1], [1, 2, 3]), ([1, 2, 3], [5, 5, 5]), ([1, float("nan"), 3], [1, 2, 3]),
                     ([1, 2, 3], [1, 2, np.nan])):
            assert math.isnan(kendall_tau(s, t)) and math.isnan(spearman_rho(s, t))
        assert math.isnan(precision_at_top([1, np.nan, 3], [1, 2, 3], 0.5))
        assert math.isnan(top1_truth([1, 2, 3], [np.nan, 2, 3]))


@pytest.mark.parametrize("fn", [kendall_tau, spearman_rho, top1_truth, lambda s, t: precision_at_top(s, t, 0.5)])
def test_input_errors(fn):
    with pytest.raises(ValueError, match="same length"):
        fn([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="at least 2"):
        fn([1], [1])
    with pytest.raises(ValueError, match="at least 2"):
        fn([], [])
    with pytest.raises(ValueError, match="1-D"):
        fn([[1, 2], [3, 4]], [[1, 2], [3, 4]])
    with pytest.raises(ValueError, match="numbers"):
        fn(["a", "b"], [1, 2])


# ------------------------------------------------------------------------------------ precision and top-1
def test_precision_at_top_hand_cases():
    scores = [0.9, 0.1, 0.8, 0.3, 0.5]
    truth = [5, 4, 3, 2, 1]
    assert precision_at_top(scores, truth, 0.4) == 0.5          # k=2: {0, 2} vs {0, 1}
    assert precision_at_top(scores, truth, 0.2) == 1.0          # k=1: {0} vs {0}
    assert precision_at_top(scores, truth, 0.6) == pytest.approx(2 / 3)  # k=3: {0, 2, 4} vs {0, 1, 2}
    assert precision_at_top(scores, truth, 1.0) == 1.0
    assert precision_at_top(scores, truth, 0.01) == 1.0         # k = max(1, round(0.05)) = 1
    assert precision_at_top(truth, truth, 0.6) == 1.0
    assert precision_at_top([5, 4, 3, 2, 1], [1, 2, 3, 4, 5], 0.4) == 0.0


def test_precision_ties_by_input_order():
    # scores tie across the boundary: items 1 and 2 both 0.5, k=2 takes items 0 and 1 (earlier first)
    assert precision_at_top([0.9, 0.5, 0.5, 0.1], [4, 3, 2, 1], 0.5) == 1.0
    assert precision_at_top([0.9, 0.5, 0.5, 0.1], [4, 2, 3, 1], 0.5) == 0.5
    # ties in truth are resolved the same way
    assert precision_at_top([1, 3, 2, 0], [1, 2, 2, 0], 0.25) == 1.0   # top-1 by truth is item 1 (first 2)


def test_top_k_rounding():
    assert top_k(0.01, 327) == 3 and top_k(0.05, 327) == 16 and top_k(0.1, 327) == 33
    assert top_k(0.25, 10) == 3            # 2.5 rounds half up
    assert top_k(0.001, 10) == 1 and top_k(1, 10) == 10
    for bad in (0, -0.1, 1.5, "0.1", True, float("nan")):
        with pytest.raises(ValueError, match="fraction"):
            top_k(bad, 10)
    with pytest.raises(ValueError, match="fraction"):
        precision_at_top([1, 2], [1, 2], 0)


def test_top1_truth_ties_take_first():
    assert top1_truth([0.2, 0.9, 0.1], [10, 20, 30]) == 20
    assert top1_truth([0.9, 0.2, 0.9], [10, 20, 30]) == 10   # tie in score: first in input order
    assert top1_truth([1, 1, 1], [7, 8, 9]) == 7


# -------------------------------------------------------------------------------------- fairness by bins
def test_fairness_bins_equal_counts_and_cover():
    rng = np.random.default_rng(0)
    n = 103
    complexity = rng.permutation(n) * 10 + 5
    scores, truth = rng.normal(size=n), rng.normal(size=n)
    out = fairness_by_complexity(scores, truth, complexity, bins=5)
    assert [b["bin"] for b in out] == [0, 1, 2, 3, 4]
    assert [b["n"] for b in out] == [21, 21, 21, 20, 20]
    assert out[0]["complexity_min"] == complexity.min() and out[-1]["complexity_max"] == complexity.max()
    for lo, hi in zip(out, out[1:]):
        assert lo["complexity_max"] < hi["complexity_min"]
    assert isinstance(out[0]["complexity_min"], int) and isinstance(out[0]["mean_error"], float)
    # weighted mean error over all bins is 0 by construction
    assert sum(b["n"] * b["mean_error"] for b in out) == pytest.approx(0, abs=1e-12)
    # per-bin tau is tau over the bin's members
    order = np.argsort(complexity, kind="stable")
    first = order[:21]
    assert out[0]["kendall_tau"] == pytest.approx(kendall_tau(scores[first], truth[first]))


def test_fairness_small_subnets_overrated():
    n = 100
    complexity = np.arange(n)                 # params
    truth = complexity + np.random.default_rng(1).normal(0, 5, n)   # bigger nets are truly better
    scores = -complexity.astype(float)        # the supernet prefers small subnets
    out = fairness_by_complexity(scores, truth, complexity, bins=5)
    assert out[0]["mean_error"] > 0.5         # low bin ranked far higher than it deserves
    assert out[-1]["mean_error"] < -0.5
    assert [b["mean_error"] for b in out] == sorted((b["mean_error"] for b in out), reverse=True)
    # a faithful supernet has errors near zero
    fair = fairness_by_complexity(truth, truth, complexity, bins=5)
    assert all(b["mean_error"] == pytest.approx(0) for b in fair)
    assert all(b["kendall_tau"] == pytest.approx(1) for b in fair)


def test_fairness_ties_in_complexity_and_errors():
    complexity = [1, 1, 1, 1, 2, 2]           # ties straddle the boundary: stable order by input position
    out = fairness_by_complexity([1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6], complexity, bins=2)
    assert [(b["n"], b["complexity_min"], b["complexity_max"]) for b in out] == [(3, 1, 1), (3, 1, 2)]
    one = fairness_by_complexity([1, 2, 3], [3, 2, 1], [1, 2, 3], bins=3)
    assert all(b["n"] == 1 and math.isnan(b["kendall_tau"]) for b in one)
    nan = fairness_by_complexity([1, np.nan, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4], bins=2)
    assert all(math.isnan(b["mean_error"]) and math.isnan(b["kendall_tau"]) for b in nan)
    for bins in (0, 5, 2.0, True):
        with pytest.raises(ValueError, match="bins"):
            fairness_by_complexity([1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4], bins=bins)
    with pytest.raises(ValueError, match="same length"):
        fairness_by_complexity([1, 2, 3], [1, 2, 3], [1, 2], bins=1)
    with pytest.raises(ValueError, match="NaN"):
        fairness_by_complexity([1, 2, 3], [1, 2, 3], [1, np.nan, 2], bins=1)


# ------------------------------------------------------------------------------------------- the report
def test_rank_report_json_ready():
    rng = np.random.default_rng(2)
    n = 200
    archs = [f"arch{i}" for i in range(n)]
    truth = rng.uniform(10, 95, n)
    scores = truth + rng.normal(0, 10, n)
    complexity = rng.integers(70_000, 1_500_000, n)
    r = rank_report(archs, scores, truth, complexity)
    assert json.loads(json.dumps(r, allow_nan=False)) == r
    assert r["n"] == n
    assert r["kendall_tau"] == pytest.approx(kendall_tau(scores, truth))
    assert r["kendall_tau_ci95"] == list(kendall_tau_ci(scores, truth))
    assert r["spearman_rho"] == pytest.approx(spearman_rho(scores, truth))
    assert r["precision_k"] == {"0.01": 2, "0.05": 10, "0.1": 20}
    assert r["precision_at"]["0.05"] == precision_at_top(scores, truth, 0.05)
    assert r["precision_at"]["0.1"] == precision_at_top(scores, truth, 0.1)
    i = int(np.argmax(scores))
    assert r["top1"]["arch"] == archs[i] and r["top1_truth"] == r["top1"]["truth"] == truth[i]
    assert r["top1"]["truth_rank"] == int(np.sum(truth > truth[i])) + 1
    assert r["top1"]["regret"] == pytest.approx(truth.max() - truth[i])
    assert r["fairness"] == fairness_by_complexity(scores, truth, complexity)
    assert [b["n"] for b in r["fairness"]] == [40] * 5
    assert r["complexity_tau"]["scores"] == pytest.approx(kendall_tau(scores, complexity))
    no_c = rank_report(archs, scores, truth, None, fractions=(0.5,))
    assert no_c["fairness"] is None and no_c["complexity_tau"] is None
    assert no_c["precision_k"] == {"0.5": 100}
    with pytest.raises(ValueError, match="fraction"):
        rank_report(archs, scores, truth, None, fractions=(0.1, 2))


@pytest.mark.slow
def test_kendall_tau_ci_covers_the_population_tau_of_samples():
    """A sample's 90 % interval should hold the tau over the whole population about 90 % of the time."""
    rng = np.random.default_rng(0)
    truth = rng.normal(size=5000)
    scores = truth + rng.normal(0, 2, 5000)
    population = kendall_tau(scores, truth)
    hits, widths = 0, []
    for k in range(30):
        idx = rng.choice(5000, 150, replace=False)
        lo, hi = kendall_tau_ci(scores[idx], truth[idx], level=0.9, resamples=300, seed=k)
        assert lo <= kendall_tau(scores[idx], truth[idx]) <= hi
        hits += lo <= population <= hi
        widths.append(hi - lo)
    assert 22 <= hits <= 29                     # 90 % nominal (26 here); binomial(30, 0.9) in 23..29: p ~ 0.93
    # the width matches tau's sampling spread: 2 z sd, sd^2 = 2 (2n + 5) / (9 n (n - 1)) (the null variance,
    # which a tau of 0.3 lowers a little); a too-wide or too-narrow interval fails here
    assert 0.75 * 0.1812 <= np.median(widths) <= 1.1 * 0.1812
    lo, hi = kendall_tau_ci(scores[:1500], truth[:1500], level=0.9, resamples=300)
    assert hi - lo < 0.5 * np.median(widths)    # 10x the items: about 1/sqrt(10) of the width


def test_kendall_tau_ci_edge_cases():
    assert kendall_tau_ci([1, 2, 3, 4, 5], [2, 4, 6, 8, 10]) == pytest.approx((1.0, 1.0))
    assert kendall_tau_ci([1, 2, 3], [5, 4, 1], resamples=50, seed=3) == kendall_tau_ci([1, 2, 3], [5, 4, 1],
                                                                                         resamples=50, seed=3)
    assert all(math.isnan(v) for v in kendall_tau_ci([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError, match="level"):
        kendall_tau_ci([1, 2, 3], [1, 2, 3], level=1.0)


def test_rank_report_undefined_and_errors():
    r = rank_report(["a", "b", "c"], [1, 1, 1], [1, 2, 3], [3, 2, 1], bins=1)
    assert r["kendall_tau"] is None and r["spearman_rho"] is None and r["top1"]["arch"] == "a"
    json.dumps(r, allow_nan=False)
    r = rank_report(["a", "b", "c"], [1, np.nan, 1], [1, 2, 3], [3, 2, 1], bins=1)
    assert r["top1"] is None and r["top1_truth"] is None and r["precision_at"]["0.01"] is None
    assert all(b["kendall_tau"] is None and b["mean_error"] is None for b in r["fairness"])
    json.dumps(r, allow_nan=False)
    with pytest.raises(ValueError, match="archs must have the same length"):
        rank_report(["a", "b"], [1, 2, 3], [1, 2, 3], None)
    with pytest.raises(ValueError, match="unique.*'a'"):
        rank_report(["a", "b", "a"], [1, 2, 3], [1, 2, 3], None)
    with pytest.raises(ValueError, match="same length"):
        rank_report(["a", "b", "c"], [1, 2, 3], [1, 2], None)
    with pytest.raises(ValueError, match="at least 2"):
        rank_report(["a"], [1], [1], None)


# ------------------------------------------------------------------------------------------ file names
def test_ranking_file_tags_keep_subsets_and_scoring_protocols_apart():
    from nshot.score.rank import ranking_tag, subset_tag
    assert [subset_tag(s) for s in ("all", "kendall327", "1000", "/x/my subset.json")] == \
        ["all", "kendall327", "n1000", "my_subset"]
    assert ranking_tag("1000") == "n1000"                       # the default protocol keeps the plain name
    assert ranking_tag("1000", "recal") == "n1000-recal"
    assert ranking_tag("kendall327", "batch", "knn") == "kendall327-knn"
    assert ranking_tag("all", "recal", "linear") == "all-recal-linear"
    tags = {ranking_tag("all", bn, p) for bn in ("batch", "recal") for p in ("classifier", "knn", "linear")}
    assert len(tags) == 6
