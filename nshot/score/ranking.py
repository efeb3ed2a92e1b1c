"""How well a supernet's scores rank architectures against ground truth (numpy/scipy, no torch).

Conventions shared by every function:

* ``scores`` and ``truth`` are 1-D sequences of numbers of the same length, one entry per architecture; higher
  is better for both (pass negated losses). Fewer than two items, different lengths, non-numeric or
  non-1-D input raise ``ValueError``.
* Undefined results are ``nan`` (``float("nan")``): a NaN anywhere in ``scores`` or ``truth`` makes every
  ranking quantity undefined, and Kendall's tau / Spearman's rho are undefined when either input is constant
  (zero variance). :func:`rank_report` turns ``nan`` into ``None`` so its result is strict JSON.
* Ties in ``scores`` or ``truth`` are broken by input position (earlier first) wherever an order is needed
  (top-k sets, the top-1 pick); tau-b and rho handle ties by their definitions.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from scipy import stats

NAN = float("nan")


def _vector(x: Any, name: str) -> np.ndarray:
    try:
        v = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a 1-D sequence of numbers: {exc}") from None
    if v.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {v.shape}")
    return v


def _pair(scores: Any, truth: Any) -> tuple[np.ndarray, np.ndarray]:
    s, t = _vector(scores, "scores"), _vector(truth, "truth")
    if len(s) != len(t):
        raise ValueError(f"scores and truth must have the same length, got {len(s)} and {len(t)}")
    if len(s) < 2:
        raise ValueError(f"ranking needs at least 2 items, got {len(s)}")
    return s, t


def _has_nan(*arrays: np.ndarray) -> bool:
    return any(bool(np.isnan(a).any()) for a in arrays)


def _constant(a: np.ndarray) -> bool:
    return bool(np.all(a == a[0]))


def _tau(s: np.ndarray, t: np.ndarray) -> float:
    """Kendall tau-b without input checks; nan when undefined (n < 2, NaN, constant input)."""
    if len(s) < 2 or _has_nan(s, t) or _constant(s) or _constant(t):
        return NAN
    return float(stats.kendalltau(s, t, variant="b")[0])


def kendall_tau(scores: Sequence[float], truth: Sequence[float]) -> float:
    """Kendall's tau-b between ``scores`` and ``truth`` (ties count as in ``scipy.stats.kendalltau``).

    tau-b = (C - D) / sqrt((n0 - n1) (n0 - n2)) with C/D the concordant/discordant pairs, n0 = n(n-1)/2 and
    n1, n2 the pairs tied in scores, in truth. nan if either input is constant or holds a NaN.
    """
    s, t = _pair(scores, truth)
    return _tau(s, t)


def kendall_tau_ci(scores: Sequence[float], truth: Sequence[float], level: float = 0.95, resamples: int = 1000,
                   seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of Kendall's tau-b over the architectures.

    ``resamples`` draws of n architectures with replacement (``numpy.random.default_rng(seed)``); the
    interval is the (1 - level)/2 and (1 + level)/2 quantiles of their taus (draws where tau is undefined are
    left out). For a random sample it says how well the sample's tau pins down the tau of the population it
    was drawn from (e.g. a 1,000-cell sample and all 15,625 cells); for a fixed set (all cells, the 327-cell
    subset) it is the spread tau would have over other sets like it, not an uncertainty of that set's tau.
    It never includes the seed-to-seed variation of supernet training. (nan, nan) when tau is undefined.
    """
    s, t = _pair(scores, truth)
    if not 0 < level < 1 or resamples < 1:
        raise ValueError(f"need 0 < level < 1 and resamples >= 1, got level={level}, resamples={resamples}")
    if math.isnan(_tau(s, t)):
        return NAN, NAN
    rng = np.random.default_rng(seed)
    taus = np.array([_tau(s[i], t[i]) for i in (rng.integers(0, len(s), len(s)) for _ in range(resamples))])
    taus = taus[~np.isnan(taus)]
    if not len(taus):
        return NAN, NAN
    lo, hi = np.quantile(taus, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def spearman_rho(scores: Sequence[float], truth: Sequence[float]) -> float:
    """Spearman's rho: Pearson correlation of the ranks (ties get their average rank).

    Equals ``scipy.stats.spearmanr``. nan if either input is constant or holds a NaN.
    """
    s, t = _pair(scores, truth)
    if _has_nan(s, t) or _constant(s) or _constant(t):
        return NAN
    rs = stats.rankdata(s) - (len(s) + 1) / 2
    rt = stats.rankdata(t) - (len(t) + 1) / 2
    rho = float(np.dot(rs, rt) / math.sqrt(float(np.dot(rs, rs)) * float(np.dot(rt, rt))))
    return max(-1.0, min(1.0, rho))


def top_k(fraction: float, n: int) -> int:
    """k = max(1, round(fraction * n)), rounding halves up; ``fraction`` must lie in (0, 1]."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.integer, np.floating)) \
            or not 0 < float(fraction) <= 1:
        raise ValueError(f"fraction must be a number in (0, 1], got {fraction!r}")
    return max(1, int(math.floor(float(fraction) * n + 0.5)))


def _order(v: np.ndarray) -> np.ndarray:
    """Indices from best (highest) to worst; equal values keep input order."""
    return np.argsort(-v, kind="stable")


def precision_at_top(scores: Sequence[float], truth: Sequence[float], fraction: float) -> float:
    """|top-k by score ∩ top-k by truth| / k with k = max(1, round(fraction * n)) (halves rounded up).

    Each top-k set is the first k of a descending sort in which equal values keep their input order, so a
    tie across the k-th place is resolved in favour of the architecture given first. nan if a NaN is present.
    """
    s, t = _pair(scores, truth)
    k = top_k(fraction, len(s))
    if _has_nan(s, t):
        return NAN
    hits = np.intersect1d(_order(s)[:k], _order(t)[:k], assume_unique=True)
    return len(hits) / k


def top1_index(scores: Sequence[float]) -> int:
    """Position of the highest score; among equal highest scores, the first in input order."""
    s = _vector(scores, "scores")
    if len(s) == 0:
        raise ValueError("scores is empty")
    return int(np.argmax(s))


def top1_truth(scores: Sequence[float], truth: Sequence[float]) -> float:
    """The truth of the architecture ranked first by score (ties in score: the first in input order).

    nan if a NaN is present.
    """
    s, t = _pair(scores, truth)
    if _has_nan(s, t):
        return NAN
    return float(t[top1_index(s)])


def _percentiles(v: np.ndarray) -> np.ndarray:
    """Rank percentile in [0, 1]: (average rank - 1) / (n - 1); 1 = best (highest)."""
    return (stats.rankdata(v) - 1) / (len(v) - 1)


def fairness_by_complexity(scores: Sequence[float], truth: Sequence[float], complexity: Sequence[float],
                           bins: int = 5) -> list[dict]:
    """Ranking quality per complexity bin: does the supernet over- or under-rate small subnets?

    The architectures are sorted by ``complexity`` (e.g. parameter count; ties keep input order) and cut
    into ``bins`` consecutive equal-count bins (sizes differ by at most one; with bins=5, quintiles), bin 0
    holding the least complex. Architectures of equal complexity can therefore straddle a boundary, so
    adjacent bins may share an endpoint of their complexity range. For each bin:

    * ``bin`` (0-based), ``complexity_min``, ``complexity_max``, ``n``;
    * ``kendall_tau``: tau-b between scores and truth within the bin (nan if the bin has fewer than two
      items or a constant input);
    * ``mean_error``: the mean over the bin of (score rank percentile - truth rank percentile), both
      percentiles taken over ALL architectures: percentile = (average rank - 1) / (n - 1), 0 = worst,
      1 = best. Positive means the supernet ranks these subnets higher than the benchmark does (e.g. a
      positive value in bin 0 = "the supernet favours small subnets"). Units: fraction of the ranking
      (0.1 = ten percentage points). Over all architectures the mean error is 0 by construction.

    NaN in scores or truth gives nan taus and errors; NaN in ``complexity`` raises ValueError.
    """
    s, t = _pair(scores, truth)
    c = _vector(complexity, "complexity")
    if len(c) != len(s):
        raise ValueError(f"complexity must have the same length as scores, got {len(c)} and {len(s)}")
    if np.isnan(c).any():
        raise ValueError("complexity holds NaN; every architecture needs a complexity to be binned")
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or not 1 <= bins <= len(s):
        raise ValueError(f"bins must be an int in 1..{len(s)} (the number of items), got {bins!r}")
    raw = np.asarray(complexity)
    shown = raw if raw.dtype.kind in "iu" else c  # report integer complexities as ints
    undefined = _has_nan(s, t)
    error = None if undefined else _percentiles(s) - _percentiles(t)
    out = []
    for b, idx in enumerate(np.array_split(np.argsort(c, kind="stable"), int(bins))):
        out.append({
            "bin": b,
            "complexity_min": shown[idx].min().item(),
            "complexity_max": shown[idx].max().item(),
            "n": int(len(idx)),
            "kendall_tau": NAN if undefined else _tau(s[idx], t[idx]),
            "mean_error": NAN if error is None else float(error[idx].mean()),
        })
    return out


def _json_ready(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _json_ready(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_ready(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _key(fraction: float) -> str:
    top_k(fraction, 1)  # validates
    return repr(float(fraction))


def rank_report(archs: Sequence[str], scores: Sequence[float], truth: Sequence[float],
                complexity: Sequence[float] | None,
                fractions: Sequence[float] = (0.01, 0.05, 0.1), bins: int = 5) -> dict:
    """Every measure above in one JSON-ready dict (plain Python types; nan and inf become ``None``).

    Keys: ``n``; ``kendall_tau``; ``kendall_tau_ci95``: :func:`kendall_tau_ci` at 95 % (``[lo, hi]``, 1,000
    resamples, seed 0); ``spearman_rho``; ``precision_at``: fraction -> :func:`precision_at_top`
    and ``precision_k``: fraction -> k, both keyed by ``repr(float(fraction))`` (``"0.01"``, ``"0.05"``,
    ``"0.1"``); ``top1``: ``{"arch", "score", "truth", "truth_rank", "best_truth", "regret"}`` for the
    architecture ranked first by score (``truth_rank`` 1 = best in truth; ties in truth share the best rank;
    ``regret`` = best truth - its truth; ``None`` when a NaN is present); ``top1_truth`` (= ``top1["truth"]``);
    ``fairness``: :func:`fairness_by_complexity` with ``bins`` bins; ``complexity_tau``: ``{"scores",
    "truth"}``, tau-b of each against complexity (a score tau well below the truth tau is another sign that
    the supernet favours small subnets). With ``complexity=None``, ``fairness`` and ``complexity_tau`` are
    ``None``. ``archs`` must be unique and as long as ``scores``.
    """
    s, t = _pair(scores, truth)
    names = [str(a) for a in archs]
    if len(names) != len(s):
        raise ValueError(f"archs must have the same length as scores, got {len(names)} and {len(s)}")
    if len(set(names)) != len(names):
        dup = next(a for i, a in enumerate(names) if a in names[:i])
        raise ValueError(f"archs must be unique; {dup!r} appears more than once")
    undefined = _has_nan(s, t)
    report: dict[str, Any] = {
        "n": len(s),
        "kendall_tau": _tau(s, t),
        "kendall_tau_ci95": list(kendall_tau_ci(s, t)),
        "spearman_rho": spearman_rho(s, t),
        "precision_at": {_key(f): precision_at_top(s, t, f) for f in fractions},
        "precision_k": {_key(f): top_k(f, len(s)) for f in fractions},
    }
    if undefined:
        report["top1"] = None
        report["top1_truth"] = NAN
    else:
        i = top1_index(s)
        best = float(t.max())
        report["top1"] = {"arch": names[i], "score": float(s[i]), "truth": float(t[i]),
                          "truth_rank": int(np.sum(t > t[i])) + 1, "best_truth": best, "regret": best - float(t[i])}
        report["top1_truth"] = float(t[i])
    if complexity is None:
        report["fairness"] = None
        report["complexity_tau"] = None
    else:
        report["fairness"] = fairness_by_complexity(s, t, complexity, bins=bins)
        c = _vector(complexity, "complexity")
        report["complexity_tau"] = {"scores": _tau(s, c), "truth": _tau(t, c)}
    return _json_ready(report)
