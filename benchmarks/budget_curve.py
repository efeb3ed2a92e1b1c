"""The SPOS budget curve of issue 18: tau against training epochs, to fix a converged CPU protocol.

Every point is one (recipe, C, N, epochs, seed) run of ``benchmarks.rank_cifar10`` on NB201's 25k `train`
half, scored on the first ``--eval-images`` of the `valid` half: the 327-cell subset, then a seeded uniform
sample of ``--sample`` cells (``nshot rank --subset N``, the estimate of the all-cell tau that
``benchmarks.rank_sample`` validated). Points run in the order of ``POINTS`` (the ones that decide the
protocol first; with ``--only``, in the order given), ``--jobs`` at a time; each run directory ``OUT/<point>``
is resumable, a finished point is skipped, so the command can be repeated after an interruption and continues
where it stopped.

    python -m benchmarks.budget_curve --jobs 2 --threads 1 --out runs/budget
    python -m benchmarks.budget_curve --summary --out runs/budget      # the table from what has finished

The protocol (scoring images, sample size) was fixed before any of these runs was ranked.
"""
from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from benchmarks.common import REPO, prepare_cifar, shared_data
from benchmarks.jobs import Job, in_parallel, run_job


@dataclass(frozen=True)
class Point:
    """One run: a recipe (``configs/nb201/<recipe>.yaml``) at a budget, shape and seed. ``tag`` tells apart
    two schedules of one recipe, ``args`` are more ``benchmarks.rank_cifar10`` arguments (e.g. ``--extra``
    overrides), ``path_updates`` the path forward/backward passes of the whole run in SPOS epochs (what a
    comparison at equal path updates holds equal)."""
    recipe: str
    epochs: int
    seed: int
    C: int = 8
    N: int = 1
    tag: str = ""
    args: tuple[str, ...] = ()
    path_updates: Optional[float] = None

    @property
    def name(self) -> str:
        shape = "" if (self.C, self.N) == (8, 1) else f"-c{self.C}n{self.N}"
        return f"{self.recipe}{self.tag}{shape}-e{self.epochs}-s{self.seed}"

    @property
    def group(self) -> str:
        """The name less the seed: the runs a mean ± std is taken over."""
        return self.name.rsplit("-s", 1)[0]

    @property
    def updates(self) -> float:
        """Path updates in SPOS epochs (SPOS: one path per step, so its epochs)."""
        return float(self.epochs) if self.path_updates is None else self.path_updates


def _points() -> list[Point]:
    """SPOS seed 0 along the curve first (it decides the protocol), then CaLR + MS seed 0, then the other
    seeds at 60 and 120 epochs, then one deeper (N = 2) and one wider (C = 16) point."""
    pts = [Point("spos", e, 0) for e in (15, 30, 60, 120)]
    pts += [Point("spos_calr_ms", e, 0) for e in (15, 30, 60, 120)]
    pts += [Point("spos", e, s) for e in (60, 120) for s in (1, 2)]
    pts += [Point("spos_calr_ms", e, s) for e in (60, 120) for s in (1, 2)]
    pts += [Point("spos", 60, 0, C=8, N=2), Point("spos", 60, 0, C=16, N=1)]
    return pts


POINTS = _points()


def selected(points: Sequence[Point], only: Optional[Sequence[str]]) -> list[Point]:
    """``points``, or the ones named in ``only`` in that order; SystemExit naming an unknown name."""
    if not only:
        return list(points)
    by_name = {p.name: p for p in points}
    unknown = [n for n in only if n not in by_name]
    if unknown:
        raise SystemExit(f"unknown point(s) {', '.join(unknown)}; known: {', '.join(by_name)}")
    return [by_name[n] for n in dict.fromkeys(only)]            # a name given twice runs once


def run_point(p: Point, out: Path, args) -> None:
    """Train + rank (327 subset) + rank (seeded sample) one point; each stage skips what is already done."""
    run = out / p.name
    log = out / f"{p.name}.log"
    rank_args = ["--config", str(REPO / f"configs/nb201/{p.recipe}.yaml"), "--epochs", str(p.epochs), "--C", str(p.C),
                 "--N", str(p.N), "--seed", str(p.seed), "--eval-images", str(args.eval_images), "--threads",
                 str(args.threads), "--data-root", args.data_root, *p.args, "--out", str(run)]
    run_job(Job("rank_cifar10", rank_args, run / "bench_rank.json", log))
    if args.sample and not (run / f"rank-{ranking_files(run, args.sample)[1]}.json").exists():
        from benchmarks.rank_sample import rank_one
        rank_one(run, str(args.sample), None, shared_data() / "nb201" / "nb201_200ep.csv", args.threads)


def _ties(csv_path: Path) -> Optional[int]:
    """Cells of a ranking whose score equals the score of a cell computed by another supernet function (ties
    the scoring images could not separate). Cells that exact dedup maps to one representative (they differ
    only on dead edges, so the supernet computes the same function) tie by construction and are not counted."""
    import csv
    if not csv_path.exists():
        return None
    rep: dict[str, str] = {}
    scores_csv = csv_path.parent / "scores.csv"
    if scores_csv.exists():
        with open(scores_csv) as f:
            rep = {row["arch"]: row["representative"] or row["arch"] for row in csv.DictReader(f)}
    groups: dict[str, set] = {}
    counts: dict[str, int] = {}
    with open(csv_path) as f:
        for row in csv.DictReader(f):
            groups.setdefault(row["score"], set()).add(rep.get(row["arch"], row["arch"]))
            counts[row["score"]] = counts.get(row["score"], 0) + 1
    return sum(counts[s] for s, reps in groups.items() if len(reps) > 1)


def ranking_files(run: Path, sample: int) -> tuple[str, str]:
    """Tags of the run's 327-subset and ``sample``-cell rankings (``rank-<tag>.json``/``.csv``) under the scoring
    protocol it was ranked with (``bench_rank.json``: a kNN probe's rankings are ``...-knn``)."""
    from nshot.score.rank import ranking_tag
    proto = json.loads((run / "bench_rank.json").read_text()).get("protocol", {})
    bn, probe = proto.get("bn_mode", "batch"), proto.get("probe", "classifier")
    return ranking_tag("kendall_subset_327.txt", bn, probe), ranking_tag(str(sample), bn, probe)


def final_train(metrics: dict) -> dict:
    """The last epoch's training record of a run; for a few-shot run (one record per leaf, keyed by node id)
    the leaves' mean accuracy and loss and their largest step."""
    if "acc" in metrics:
        return metrics
    leaves = list(metrics.values())
    return {"acc": statistics.mean(r["acc"] for r in leaves), "loss": statistics.mean(r["loss"] for r in leaves),
            "step": max(r["step"] for r in leaves), "leaves": len(leaves)}


def point_result(run: Path, sample: int) -> Optional[dict]:
    """What the curve reports for one finished point, read from its run directory."""
    bench = run / "bench_rank.json"
    if not bench.exists():
        return None
    b = json.loads(bench.read_text())
    tag327, tag_sample = ranking_files(run, sample)
    r327 = json.loads((run / f"rank-{tag327}.json").read_text())
    final = final_train(b["final_train_metrics"])
    res = {"tau_327": r327["kendall_tau"], "rho_327": r327["spearman_rho"],
           "ci95_327": r327.get("kendall_tau_ci95"),
           "p10_327": (r327.get("precision_at") or {}).get("0.1"), "top1_327": r327.get("top1_truth"),
           "tau_params_327": (r327.get("complexity_tau") or {}).get("scores"),
           "rank_error_q": [q["mean_error"] for q in r327.get("fairness") or []],
           "ties_327": _ties(run / f"rank-{tag327}.csv"),
           "train_acc_last": final["acc"], "train_loss_last": final["loss"],
           "train_minutes": b["train_seconds"] / 60, "rank_minutes_327": b["rank_seconds"] / 60,
           "steps": final["step"]}
    rs = run / f"rank-{tag_sample}.json"
    if rs.exists():
        r = json.loads(rs.read_text())
        res.update({"tau_sample": r["kendall_tau"], "ci95_sample": r.get("kendall_tau_ci95"),
                    "p10_sample": (r.get("precision_at") or {}).get("0.1"), "top1_sample": r.get("top1_truth"),
                    "tau_params_sample": (r.get("complexity_tau") or {}).get("scores"),
                    "ties_sample": _ties(run / f"rank-{tag_sample}.csv")})
    return res


def _fmt(x, spec: str = ".3f") -> str:
    return "–" if x is None else format(x, spec)


def summary(out: Path, sample: int, points: Sequence[Point] = POINTS, name: str = "summary.json") -> dict:
    """Per point and per group of seeds (:attr:`Point.group`); printed as markdown tables (with each point's
    path updates in SPOS epochs), written to OUT/``name``."""
    rows = {p.name: point_result(out / p.name, sample) for p in points}
    print("| point | path updates (SPOS epochs) | tau 327 | rho | p@10% | top-1 | tau(scores, params) | "
          f"rank err q0 / q4 | ties 327 | tau n{sample} | ties n{sample} | train acc % | train min |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for p in points:
        r = rows[p.name]
        if r is None:
            continue
        q = r["rank_error_q"]
        print(f"| {p.name} | {p.updates:g} | {_fmt(r['tau_327'])} | {_fmt(r['rho_327'])} | "
              f"{_fmt(r['p10_327'], '.2f')} | {_fmt(r['top1_327'], '.2f')} | {_fmt(r['tau_params_327'])} | "
              f"{_fmt(q[0] if q else None, '+.2f')} / {_fmt(q[-1] if q else None, '+.2f')} | {r['ties_327']} | "
              f"{_fmt(r.get('tau_sample'))} | {r.get('ties_sample', '–')} | {r['train_acc_last']:.1f} | "
              f"{r['train_minutes']:.0f} |")
    groups: dict[str, list[dict]] = {}
    for p in points:
        if rows[p.name] is not None:
            rows[p.name]["path_updates"] = p.updates
            groups.setdefault(p.group, []).append(rows[p.name])
    agg = {}
    print("\n| recipe / epochs | seeds | tau 327 mean ± std | tau sample mean ± std | top-1 mean | train acc % | "
          "train min/run |")
    print("|---|---|---|---|---|---|---|")
    for key, rs in groups.items():
        t = [r["tau_327"] for r in rs]
        ts = [r["tau_sample"] for r in rs if r.get("tau_sample") is not None]
        top1 = [r["top1_327"] for r in rs if r.get("top1_327") is not None]
        agg[key] = {"n": len(rs), "tau_327_mean": statistics.mean(t),
                    "tau_327_std": statistics.stdev(t) if len(t) > 1 else None,
                    "tau_sample_mean": statistics.mean(ts) if ts else None,
                    "tau_sample_std": statistics.stdev(ts) if len(ts) > 1 else None,
                    "top1_327_mean": statistics.mean(top1) if top1 else None,
                    "train_acc_mean": statistics.mean(r["train_acc_last"] for r in rs),
                    "train_minutes_mean": statistics.mean(r["train_minutes"] for r in rs)}
        a = agg[key]
        print(f"| {key} | {len(rs)} | {_fmt(a['tau_327_mean'])} ± {_fmt(a['tau_327_std'])} | "
              f"{_fmt(a['tau_sample_mean'])} ± {_fmt(a['tau_sample_std'])} | {_fmt(a['top1_327_mean'], '.2f')} | "
              f"{a['train_acc_mean']:.1f} | "
              f"{a['train_minutes_mean']:.0f} |")
    result = {"points": rows, "groups": agg, "sample": sample}
    (out / name).write_text(json.dumps(result, indent=1))
    return result


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/budget")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--eval-images", type=int, default=2500, help="first N `valid` images per score")
    ap.add_argument("--sample", type=int, default=1000, help="cells of the all-cell sample (0: none)")
    ap.add_argument("--only", nargs="*", help="run only these point names, in this order")
    ap.add_argument("--data-root", default="/tmp/nshot-cifar")
    ap.add_argument("--summary", action="store_true", help="only print/write the table of finished points")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.summary:
        prepare_cifar(Path(args.data_root))
        in_parallel(lambda p: run_point(p, out, args), selected(POINTS, args.only), args.jobs)
    summary(out, args.sample)


if __name__ == "__main__":
    main()
