"""Wall time of one GM-NAS split decision (``choose_split``) on the NB201 supernet as a function of the
number of batches R and of candidate edges E: the estimate runs one forward/backward per batch, op and
candidate edge, so its time should be linear in R x E (issue 6: "GM estimation cost grows linearly in R and in
the number of candidate edges").

Timing protocol: every (R, E) configuration in one process on the same supernet and seeded random batches of
CIFAR shape; ``--rounds`` rounds, each timing one call per configuration, the configuration order reversed
every other round (ABBA) so drifting machine noise spreads over all. The sampled paths (whose cost varies
with their ops) are drawn with seed k in the k-th call of every configuration, so each round is one fresh
draw of paths, the same round index for all configurations. Reported: the median seconds per configuration;
the least-squares line t = a * R * E + b through the medians with its R^2; the exponents of a separate
power law t ~ R^p * E^q (p = q = 1: linear in each); each median divided by the time per unit R * E of
the smallest configuration.

    python -m benchmarks.gm_cost --C 8 --N 2 --batch 64 --threads 1 --out /tmp/gm_cost.json
"""
from __future__ import annotations

import argparse
import itertools
import json
import statistics
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from benchmarks.common import command_line
from benchmarks.timing import abba
from nshot import spaces
from nshot.nn import nb201_supernet
from nshot.train.gradmatch import choose_split
from nshot.train.partition import full_mask


def linear_fit(x: list[float], y: list[float]) -> tuple[float, float, float]:
    """Least-squares ``y = a * x + b``; returns (a, b, R^2)."""
    a, b = np.polyfit(np.asarray(x, float), np.asarray(y, float), 1)
    pred = a * np.asarray(x) + b
    ss_res = float(((np.asarray(y) - pred) ** 2).sum())
    ss_tot = float(((np.asarray(y) - np.mean(y)) ** 2).sum())
    return float(a), float(b), 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0


def power_exponents(configs: list[tuple[int, int]], seconds: list[float]) -> tuple[float, float]:
    """Least-squares exponents (p, q) of ``t = c * R^p * E^q`` (a plane in log space) over (R, E) configs."""
    x = np.array([[np.log(r), np.log(e), 1.0] for r, e in configs])
    coef = np.linalg.lstsq(x, np.log(np.asarray(seconds, float)), rcond=None)[0]
    return float(coef[0]), float(coef[1])


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--C", type=int, default=8)
    ap.add_argument("--N", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--R", type=int, nargs="+", default=[1, 2, 4], help="batches per estimate")
    ap.add_argument("--E", type=int, nargs="+", default=[1, 2, 4], help="candidate edges (the first E)")
    ap.add_argument("--rounds", type=int, default=6, help="an even number balances the ABBA order")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", help="write the JSON here")
    args = ap.parse_args(argv)
    sp = spaces.get("nb201")
    if min(args.R) < 1 or min(args.E) < 1 or max(args.E) > sp.num_decisions:
        ap.error(f"--R must be >= 1 and --E between 1 and {sp.num_decisions}")
    if len(set(args.R)) < 2 or len(set(args.E)) < 2:
        ap.error("give at least two values of --R and two of --E (the fits need them)")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = nb201_supernet(C=args.C, N=args.N, num_classes=10)
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(args.batch, 3, 32, 32, generator=g), torch.randint(0, 10, (args.batch,), generator=g))
               for _ in range(max(args.R))]
    mask = full_mask(sp)

    def config(r: int, e: int) -> Callable[[], None]:
        calls = itertools.count()          # k-th call: paths drawn with seed k (warm-up = call 0)
        return lambda: choose_split(model, sp, mask, list(range(e)), lambda i: batches[i], r,
                                    np.random.default_rng(next(calls)))

    fns = {f"R={r} E={e}": config(r, e) for r in args.R for e in args.E}
    times = abba(fns, args.rounds, reps=1)
    med = {k: statistics.median(v) / 1000 for k, v in times.items()}     # seconds
    units = {f"R={r} E={e}": r * e for r in args.R for e in args.E}
    a, b, r2 = linear_fit([units[k] for k in med], list(med.values()))
    p, q = power_exponents([(r, e) for r in args.R for e in args.E], [med[f"R={r} E={e}"] for r in args.R
                                                                       for e in args.E])
    base = med[f"R={min(args.R)} E={min(args.E)}"] / units[f"R={min(args.R)} E={min(args.E)}"]
    rows = [{"config": k, "R_x_E": units[k], "median_s": med[k], "relative": med[k] / base} for k in med]
    print("| R x E | configuration | median s | time / time per unit at the smallest |\n|---|---|---|---|")
    for row in sorted(rows, key=lambda r: (r["R_x_E"], r["config"])):
        print(f"| {row['R_x_E']} | {row['config']} | {row['median_s']:.3f} | {row['relative']:.2f} |")
    print(f"least squares: t = {a:.4f} s x (R x E) {b:+.4f} s, R^2 = {r2:.4f}; "
          f"{a / 5 * 1000:.1f} ms per forward/backward (5 ops per edge); power law t ~ R^{p:.3f} x E^{q:.3f}")
    result = {"command": command_line("gm_cost", argv),
              "torch": torch.__version__, "threads": args.threads, "C": args.C, "N": args.N, "batch": args.batch,
              "rows": rows, "fit": {"seconds_per_R_x_E": a, "intercept_s": b, "r2": r2, "exponent_R": p, "exponent_E": q}, "rounds_ms": times}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
