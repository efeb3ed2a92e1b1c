"""Run many (variant, seed) jobs of benchmarks/rank_cifar10.py, resumably, and summarise tau per variant.

Shared by the multi-seed benchmarks (dynamic_cifar10.py, fewshot_cifar10.py, pinas_cifar10.py): each job is
one train + rank run in its own directory ``OUT/<variant>-s<seed>``; a finished job (its ``bench_rank.json``
exists) is never run again, provided it was made with the same settings (:func:`check_same_settings`), and an
interrupted one continues where it stopped (:func:`train_supernet`, then the scorer's cache).
"""
from __future__ import annotations

import json
import shlex
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence, Union

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Variant:
    """One training recipe of a comparison: a config and the rank_cifar10.py arguments that differ."""
    name: str
    config: str                                   # path of the YAML recipe
    args: Sequence[str] = field(default_factory=tuple)   # extra rank_cifar10.py arguments (e.g. --epochs 3)


BENCH_ARGS = "bench_args.json"   # the recipe and overrides a benchmark run directory was started with


def train_supernet(config: Union[str, Path, None], overrides: Sequence[str], out: Path) -> tuple[Any, float]:
    """Train the supernet of ``config`` + ``overrides`` in the run directory ``out``, or continue it there.

    A directory left by an interrupted call with the same recipe and overrides (recorded in
    ``OUT/bench_args.json``) resumes from its last checkpoint; a directory holding anything else is refused.
    Returns the final epoch's metrics (per leaf, keyed by node id, for a few-shot run) and the training compute
    seconds summed over every call. Exits with a message if training was stopped (Ctrl-C) before its end.
    """
    from nshot.config import load_config
    from nshot.train import Trainer
    from nshot.train.checkpoint import atomic_write_bytes
    from nshot.train.fewshot import FewShotRun
    from nshot.train.metrics import MetricsLog
    args = {"config": str(Path(config).resolve()) if config is not None else None, "overrides": list(overrides)}
    cfg = load_config(config, list(overrides))
    if out.exists() and any(out.iterdir()):
        _check_same_run(out, args, cfg)
    resume = (out / "config.yaml").exists()
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / BENCH_ARGS, (json.dumps(args, indent=1) + "\n").encode())
    kind = FewShotRun if cfg.fewshot.method != "none" else Trainer
    run = kind.resume(out) if resume else kind.create(cfg, out)
    run.fit()
    if not run.done:
        sys.exit(f"{out}: training stopped before its end; run the benchmark again to continue")
    if isinstance(run, FewShotRun):
        final = {str(n.id): MetricsLog(run.node_dir(n.id) / "metrics.jsonl").read()[-1] for n in run.tree.leaves()}
        return final, run.train_seconds()
    records = run.metrics.read()
    return records[-1], sum(r["seconds"] for r in records)


def _check_same_run(out: Path, args: dict, cfg) -> None:
    """Exit with a message unless ``out`` holds (the start of) the run of ``args``: its record matches, or it
    was killed before anything but the record was written, or (a run from before records were kept) its
    config.yaml equals ``cfg`` up to threads, progress display and a randomly resolved MS edge."""
    from nshot.config import load_config, to_dict
    try:
        recorded = json.loads((out / BENCH_ARGS).read_text())
    except (OSError, ValueError):     # missing, or torn by a kill while it was written
        recorded = None
    if recorded == args:
        return
    if recorded is not None:
        changed = sorted(set(recorded["overrides"]) ^ set(args["overrides"]))
        if recorded["config"] != args["config"]:
            changed.insert(0, f"config {recorded['config']} vs {args['config']}")
        sys.exit(f"{out} holds a run started with other arguments ({', '.join(changed)}): remove it or choose "
                 "another --out")
    config_yaml = out / "config.yaml"
    if not config_yaml.exists() and all(p.name == BENCH_ARGS for p in out.iterdir()):
        return

    def comparable(c) -> dict:
        d = to_dict(c)
        d.pop("threads")
        d["run"] = {}
        if cfg.ms.edge == "random":
            d["ms"].pop("edge")
        return d
    if config_yaml.exists() and comparable(load_config(config_yaml)) == comparable(cfg):
        return
    sys.exit(f"{out} holds another run ({BENCH_ARGS} missing, config.yaml different or missing): remove it or "
             "choose another --out")


NB201_TRAIN_HALF = 25000   # images in NB201's cifar10-valid train half: --train-images 25000 is all of it


def check_same_settings(run: Path, recorded_command: str, args: Sequence[str]) -> None:
    """Exit with a message unless the finished ``run`` was made with the rank_cifar10.py settings of ``args``
    (its recorded ``command``, parsed; threads, data folder and output path may differ; a missing
    ``--train-images`` means the whole train half), so a benchmark never reuses a run made another way."""
    from benchmarks.rank_cifar10 import parser

    def settings(argv: Sequence[str]) -> dict:
        d = vars(parser().parse_args(list(argv)))
        for k in ("threads", "data_root", "out"):
            d.pop(k)
        d["config"] = str(Path(d["config"]).resolve())
        d["train_images"] = d["train_images"] or NB201_TRAIN_HALF
        return d
    before = settings(shlex.split(recorded_command)[2:])      # drop "python benchmarks/rank_cifar10.py"
    now = settings(args)
    if before != now:
        diff = ", ".join(f"{k}: {before[k]!r} then, {now[k]!r} now" for k in sorted(now) if before[k] != now[k])
        sys.exit(f"{run} is a finished run made with other settings ({diff}): remove it or choose another --out")


def run_jobs(out: Path, variants: Sequence[Variant], seeds: Sequence[int], common: Sequence[str],
             jobs: int = 1) -> dict[tuple[str, int], dict]:
    """Run every (variant, seed) (seeds outermost, so all variants of seed 0 finish first); returns results."""
    out.mkdir(parents=True, exist_ok=True)

    def one(job: tuple[Variant, int]) -> dict:
        v, seed = job
        run = out / f"{v.name}-s{seed}"
        args = ["--config", v.config, "--seed", str(seed), *common, *v.args, "--out", str(run)]
        if (run / "bench_rank.json").exists():
            finished = json.loads((run / "bench_rank.json").read_text())
            check_same_settings(run, finished["command"], args)
            return finished
        cmd = [sys.executable, str(REPO / "benchmarks/rank_cifar10.py"), *args]
        with open(out / f"{v.name}-s{seed}.log", "a") as log:   # a continued run appends
            subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)
        return json.loads((run / "bench_rank.json").read_text())

    todo = [(v, s) for s in seeds for v in variants]
    with ThreadPoolExecutor(jobs) as pool:
        return {(v.name, s): r for (v, s), r in zip(todo, pool.map(one, todo))}


RUN_OPTIONS = ("seeds", "recipes", "jobs", "threads", "data_root", "out")   # which runs, and how: not what


def shared_settings(args: Any, also_exclude: Sequence[str] = ()) -> dict:
    """The command-line settings a benchmark's variants share: its argparse namespace less ``RUN_OPTIONS`` and
    ``also_exclude``; what must match before two invocations' summaries may be merged."""
    skip = set(RUN_OPTIONS) | set(also_exclude)
    return {k: v for k, v in sorted(vars(args).items()) if k not in skip}


def write_summary(path: Path, summary: dict, per_variant: Sequence[str]) -> dict:
    """Write ``summary`` as JSON to ``path`` (atomically), merged into the summary already there when both
    have the same ``protocol`` entry (the settings the variants share, e.g. :func:`shared_settings`): the
    entries named in ``per_variant`` (dicts keyed by variant or run, e.g. ``results``) keep the keys of
    earlier invocations that this one did not produce, so running the variants of a comparison one command
    at a time into the same folder loses none of them; every other entry is this invocation's; ``commands``
    lists the distinct invocations in order of first appearance. Another ``protocol``, or an unreadable old
    file (a warning), replaces the old summary instead (its numbers were measured another way). Returns the
    written summary."""
    from nshot.train.checkpoint import atomic_write_bytes
    try:
        old = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError) as e:
        print(f"warning: {path} is unreadable ({e}); writing a new summary", file=sys.stderr)
        old = {}
    if old.get("protocol") != summary.get("protocol"):
        old = {}
    merged = dict(summary)
    for key in per_variant:
        merged[key] = {**old.get(key, {}), **summary.get(key, {})}
    commands = old.get("commands", [old["command"]] if "command" in old else [])
    new = summary.get("command")
    merged["commands"] = commands + ([new] if new is not None and new not in commands else [])
    atomic_write_bytes(path, json.dumps(merged, indent=1).encode())
    return merged


def summarize(results: dict[tuple[str, int], dict], names: Sequence[str], seeds: Sequence[int],
              tau_label: str = "tau (327)", top1_label: str = "top-1 (NB201 test)") -> dict:
    """Print a markdown table of tau (mean ± std over seeds), rho and top-1 per variant; return it as a dict."""
    summary = {}
    print(f"| variant | {tau_label} mean ± std | per seed | rho mean | {top1_label} mean | train min/run |")
    print("|---|---|---|---|---|---|")
    for name in names:
        runs = [results[(name, s)] for s in seeds]
        taus = [r["kendall_tau"] for r in runs]
        rhos = [r.get("spearman_rho") for r in runs]
        tops = [r["top1"]["truth"] for r in runs]
        mins = statistics.mean(r["train_seconds"] for r in runs) / 60
        sd = statistics.stdev(taus) if len(taus) > 1 else 0.0
        rho = statistics.mean(rhos) if None not in rhos else float("nan")
        summary[name] = {"seeds": list(seeds), "taus": taus, "tau_mean": statistics.mean(taus), "tau_std": sd, "rhos": rhos, "top1": tops,
                         "train_minutes_mean": mins}
        print(f"| {name} | {statistics.mean(taus):.3f} ± {sd:.3f} | {', '.join(f'{t:.3f}' for t in taus)} | "
              f"{rho:.3f} | {statistics.mean(tops):.2f} | {mins:.1f} |")
    return summary
