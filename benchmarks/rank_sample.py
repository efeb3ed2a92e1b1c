"""Kendall's tau over *all* NB201 cells for finished benchmark runs, from a seeded uniform sample.

Scoring every one of the 15,625 cells costs 9,445 supernet evaluations per run (exact dedup); on a CPU that is
hours per run. A uniform sample of ``--sample`` cells (``nshot rank --subset N``: drawn with the run's seed,
so two variants trained with the same seed are ranked on the same cells) estimates the tau over all cells,
and the 95 % percentile-bootstrap interval over the sampled cells says how precisely. ``--sample 0`` ranks
every cell (the interval is then not an uncertainty of that tau: see ``kendall_tau_ci``). Each run is scored
with the protocol it was ranked with in its benchmark (``bench_rank.json``: BN mode, held-out images, probe). Each run is one ``python -m nshot rank`` subprocess (its scores cache is reused, so cells already
scored, e.g. the 327-cell subset, are not evaluated again); ``--jobs`` run at once.

    python -m benchmarks.rank_sample --sample 1000 --jobs 2 \\
        --variant spos runs/bench-dyn-c8n2/spos-s0 runs/bench-dyn-c8n2/spos-s1 runs/bench-dyn-c8n2/spos-s2 \\
        --variant spos_calr_ms runs/bench-dyn-c8n2/spos_calr_ms-s0 ... --out runs/rank-sample-1000.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Optional

from benchmarks.common import command_line, module_env, shared_data
from benchmarks.jobs import in_parallel
from nshot.score.rank import format_optional as _fmt


def scoring_args(run: Path, eval_images: Optional[int]) -> list[str]:
    """The ``nshot rank`` options of the protocol the run was ranked with in its benchmark (BN mode, held-out
    images, probe; from RUN/bench_rank.json), so scores cached then are reused and the taus are comparable.
    ``eval_images`` overrides the recorded number; a run without a record gets the CLI defaults."""
    rec = run / "bench_rank.json"
    proto = json.loads(rec.read_text()).get("protocol", {}) if rec.exists() else {}
    out = ["--bn", proto.get("bn_mode", "batch")]
    if proto.get("bn_mode") == "recal":
        out += ["--recal-batches", str(proto["recal_batches"])]
    images = eval_images or proto.get("eval_images")
    if images:
        out += ["--eval-images", str(images)]
    if proto.get("probe", "classifier") != "classifier":
        out += ["--probe", proto["probe"], "--probe-images", str(proto["probe_images"])]
    return out


def rank_one(run: Path, subset: str, eval_images: Optional[int], table: Path, threads: int) -> dict:
    """``nshot rank`` one run dir on ``subset`` (log appended to RUN/rank-sample.log); the ranking it wrote."""
    cmd = [sys.executable, "-m", "nshot", "rank", str(run), "--benchmark", "nb201", "--metric", "cifar10/test",
           "--table", str(table), "--subset", subset, *scoring_args(run, eval_images), "--threads", str(threads),
           "--progress", "log"]
    with open(run / "rank-sample.log", "a") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, env=module_env())
    return json.loads((run / "rank.json").read_text())   # the ranking just written (= its rank-<tag>.json)


def run_diagnostics(report: dict) -> dict:
    """What the results tables quote from one run's rank report besides tau: how its scores follow size
    (tau with params), the rank error of the smallest and largest complexity quintiles, precision@top-10 %
    and the ground truth of its top-1 cell."""
    bins = report.get("fairness") or []
    return {"tau_scores_params": (report.get("complexity_tau") or {}).get("scores"),
            "rank_error_smallest_largest": [bins[0]["mean_error"], bins[-1]["mean_error"]] if bins else None,
            "precision_at_10pct": (report.get("precision_at") or {}).get("0.1"),
            "top1_truth": report.get("top1_truth")}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", nargs="+", action="append", required=True, metavar=("NAME", "RUN_DIR"),
                    help="a variant's name then its run directories (one per seed); repeat per variant")
    ap.add_argument("--sample", type=int, default=1000, help="cells in the uniform sample (0: all 15,625)")
    ap.add_argument("--eval-images", type=int, help="held-out images per score (default: what each run was "
                    "ranked with in its benchmark, from RUN/bench_rank.json)")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads per rank process")
    ap.add_argument("--table", default=str(shared_data() / "nb201" / "nb201_200ep.csv"))
    ap.add_argument("--out", help="write the summary JSON here")
    args = ap.parse_args(argv)
    if any(len(v) < 2 for v in args.variant):
        ap.error("--variant needs a name and at least one run directory")
    subset = "all" if args.sample == 0 else str(args.sample)
    jobs = [(v[0], Path(d)) for v in args.variant for d in v[1:]]
    for _, d in jobs:
        if not (d / "config.yaml").exists():
            ap.error(f"{d} is not a run directory (no config.yaml)")
    reports = in_parallel(lambda j: rank_one(j[1], subset, args.eval_images, Path(args.table), args.threads),
                          jobs, args.jobs)
    summary: dict = {"command": command_line("rank_sample", argv),
                     "subset": subset, "eval_images": args.eval_images, "variants": {}}
    print(f"| variant | tau (sample of {subset}) mean ± std | per run [95% CI over cells] | evaluations/run |")
    print("|---|---|---|---|")
    for v in args.variant:
        rows = [(str(d), r) for (name, d), r in zip(jobs, reports) if name == v[0]]
        taus = [r["kendall_tau"] for _, r in rows]
        defined = [t for t in taus if t is not None]
        mean = statistics.mean(defined) if defined else None
        sd = statistics.stdev(defined) if len(defined) > 1 else None
        summary["variants"][v[0]] = {"runs": [d for d, _ in rows], "taus": taus, "tau_mean": mean, "tau_std": sd,
                                     "ci95": [r.get("kendall_tau_ci95") for _, r in rows],
                                     "n": [r["n"] for _, r in rows],
                                     "evaluations": [r["protocol"]["evaluations_needed"] for _, r in rows],
                                     "diagnostics": [run_diagnostics(r) for _, r in rows]}
        per = ", ".join(f"{_fmt(r['kendall_tau'])} [{', '.join(_fmt(c) for c in r.get('kendall_tau_ci95') or (None, None))}]"
                        for _, r in rows)
        print(f"| {v[0]} | {_fmt(mean)} ± {_fmt(sd)} | {per} | "
              f"{statistics.mean(r['protocol']['evaluations_needed'] for _, r in rows):.0f} |")
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main()
