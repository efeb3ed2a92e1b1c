"""Side-by-side timing for the speed benchmarks: variants timed in alternating ABBA order in one process.

Every benchmark that times variants against each other uses these: :func:`abba` when each variant is a
closure timed as a block, :func:`abba_order` when a benchmark times its blocks itself (e.g. to record CPU
time next to wall time).
"""
from __future__ import annotations

import statistics
import time
from typing import Callable, Sequence, TypeVar

T = TypeVar("T")


def abba_order(names: Sequence[T], r: int) -> list[T]:
    """The order of round ``r``: ``names`` as given on even rounds, reversed on odd ones (A B, B A, A B, ...),
    so drifting machine noise hits every variant alike."""
    return list(names) if r % 2 == 0 else list(names)[::-1]


def abba(fns: dict[str, Callable[[], None]], rounds: int, reps: int, warmup: bool = True) -> dict[str, list[float]]:
    """Per variant, the ms per call of each round's block of ``reps`` calls; the variant order alternates
    ABBA across rounds (:func:`abba_order`). With ``warmup`` every variant is called once, untimed, first."""
    names = list(fns)
    times: dict[str, list[float]] = {n: [] for n in names}
    if warmup:
        for fn in fns.values():
            fn()
    for r in range(rounds):
        for n in abba_order(names, r):
            t = time.perf_counter()
            for _ in range(reps):
                fns[n]()
            times[n].append((time.perf_counter() - t) / reps * 1000)
    return times


def ratio_row(name: str, times: dict[str, list[float]], base: str, new: str) -> dict:
    """Medians of two variants' block times and base/new (the speed-up of ``new``)."""
    med = {n: statistics.median(v) for n, v in times.items()}
    return {"workload": name, f"{base}_ms": med[base], f"{new}_ms": med[new], "ratio": med[base] / med[new],
            "rounds": times}
