"""How well does Kendall's tau on a uniform sample of NB201 cells estimate the tau over all 15,625 cells, and
does its 95 % bootstrap interval cover that value as often as it claims?

Checked on scores whose all-cell tau is known exactly, because they exist for every cell without a supernet:
the table's parameter counts, its ``cifar10/valid`` accuracies and a weak score (the truth plus seeded Gaussian
noise, tau near that of the CPU-scale supernets). For each, ``--samples`` samples of ``--n`` cells are drawn
exactly as ``nshot rank --subset N`` draws them (``NB201Benchmark.subset(N, seed)``, seeds 0, 1, ...), and
each sample's tau and ``kendall_tau_ci`` (1,000 resamples) are compared with the exact all-cell tau of the
same score. Reported per score: the exact tau, the mean and standard deviation of the sample taus, the mean
interval width and the fraction of intervals that hold the exact tau (coverage). This is what justifies
quoting ``benchmarks.rank_sample``'s 1,000-cell taus as estimates of the all-cell tau.

    python -m benchmarks.sample_tau_check --n 1000 --samples 40 --out /tmp/sample_tau_check.json
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np

from benchmarks.common import command_line, shared_data
from nshot.benchmarks.nb201 import NB201Benchmark
from nshot.score.ranking import kendall_tau, kendall_tau_ci


def check(table: NB201Benchmark, scores: dict[str, float], truth: dict[str, float], n: int, samples: int) -> dict:
    """Exact all-cell tau of ``scores`` vs ``truth`` and the behaviour of ``samples`` n-cell sample estimates."""
    archs = table.archs()
    exact = kendall_tau([scores[a] for a in archs], [truth[a] for a in archs])
    taus, widths, covered = [], [], 0
    for seed in range(samples):
        cells = table.subset(n, seed=seed)
        s, t = [scores[a] for a in cells], [truth[a] for a in cells]
        lo, hi = kendall_tau_ci(s, t)
        taus.append(kendall_tau(s, t))
        widths.append(hi - lo)
        covered += lo <= exact <= hi
    return {"exact_tau": exact, "sample_tau_mean": statistics.mean(taus), "sample_tau_std": statistics.stdev(taus),
            "ci_width_mean": statistics.mean(widths), "coverage": covered / samples, "samples": samples, "n": n}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="cells per sample (default 1000)")
    ap.add_argument("--samples", type=int, default=40, help="samples per score (seeds 0..samples-1)")
    ap.add_argument("--noise", type=float, default=60.0, help="sd of the noise of the weak score, in %% points")
    ap.add_argument("--table", default=str(shared_data() / "nb201" / "nb201_200ep.csv"))
    ap.add_argument("--out", help="write the JSON here")
    args = ap.parse_args(argv)
    if args.samples < 2 or args.n < 2:
        ap.error("--samples and --n must be at least 2")
    table = NB201Benchmark.from_csv(args.table)
    archs = table.archs()
    truth = dict(zip(archs, table.query_many(archs, "cifar10/test")))
    noise = np.random.default_rng(12345).normal(0.0, args.noise, len(archs))
    proxies = {"params/cifar10": dict(zip(archs, table.query_many(archs, "params/cifar10"))),
               "cifar10/valid": dict(zip(archs, table.query_many(archs, "cifar10/valid"))),
               f"truth + N(0, {args.noise:g}^2)": {a: truth[a] + z for a, z in zip(archs, noise)}}
    rows = {name: check(table, scores, truth, args.n, args.samples) for name, scores in proxies.items()}
    print(f"| score vs cifar10/test | exact tau (all {len(archs):,}) | sample tau mean ± std (n = {args.n}, "
          f"{args.samples} samples) | mean 95 % CI width | coverage |\n|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['exact_tau']:.4f} | {r['sample_tau_mean']:.4f} ± {r['sample_tau_std']:.4f} | "
              f"{r['ci_width_mean']:.4f} | {r['coverage']:.2f} |")
    result = {"command": command_line("sample_tau_check", argv),
              "rows": rows}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
