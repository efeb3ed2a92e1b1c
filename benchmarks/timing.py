"""Side-by-side timing for the speed benchmarks: variants timed in alternating ABBA order in one process."""
from __future__ import annotations

import statistics
import time
from typing import Callable


def abba(fns: dict[str, Callable[[], None]], rounds: int, reps: int) -> dict[str, list[float]]:
    """Per variant, the ms per call of each round's block; variant order alternates ABBA across rounds."""
    names = list(fns)
    times: dict[str, list[float]] = {n: [] for n in names}
    for fn in fns.values():   # warm-up
        fn()
    for r in range(rounds):
        for n in (names if r % 2 == 0 else names[::-1]):
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
