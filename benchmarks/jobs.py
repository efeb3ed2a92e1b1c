"""The one job runner of the multi-run benchmarks: resumable ``python -m benchmarks.NAME`` subprocesses.

A :class:`Job` is one child command whose finished state is one JSON file (its result); a job whose result
exists is never run again (its result is read), an unfinished one is started again and continues where it
stopped (the children resume their run directories). Output of a job is appended to its log, so a continued
job keeps the log of its earlier tries. :func:`run_jobs` runs the (variant, seed) grid of
``benchmarks.rank_cifar10`` runs that ``dynamic_cifar10``, ``fewshot_cifar10`` and ``pinas_cifar10`` compare;
``macro_cifar10`` and ``budget_curve`` run their own jobs through :func:`run_job` / :func:`in_parallel`.
"""
from __future__ import annotations

import json
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence, TypeVar

from benchmarks.common import module_env

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Job:
    """One child run: ``python -m benchmarks.<module> <args>``, finished when ``result`` exists."""
    module: str                 # e.g. "rank_cifar10"
    args: Sequence[str]
    result: Path                # the JSON file the child writes last
    log: Path                   # stdout and stderr, appended


def run_job(job: Job, check: Optional[Callable[[dict], None]] = None) -> dict:
    """The result of ``job``: read if it exists (after ``check(result)``, which may exit), else made by running
    the child (its output appended to ``job.log``); CalledProcessError if the child fails."""
    if job.result.exists():
        finished = json.loads(job.result.read_text())
        if check is not None:
            check(finished)
        return finished
    cmd = [sys.executable, "-m", f"benchmarks.{job.module}", *job.args]
    job.log.parent.mkdir(parents=True, exist_ok=True)
    with open(job.log, "a") as log:   # a continued run appends
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, env=module_env())
    return json.loads(job.result.read_text())


def in_parallel(fn: Callable[[T], R], items: Iterable[T], jobs: int = 1) -> list[R]:
    """``[fn(x) for x in items]`` with ``jobs`` at a time (threads; each job is a child process), in order."""
    with ThreadPoolExecutor(jobs) as pool:
        return list(pool.map(fn, items))


@dataclass(frozen=True)
class Variant:
    """One training recipe of a comparison: a config and the rank_cifar10 arguments that differ."""
    name: str
    config: str                                   # path of the YAML recipe
    args: Sequence[str] = field(default_factory=tuple)   # extra rank_cifar10 arguments (e.g. --epochs 3)


NB201_TRAIN_HALF = 25000   # images in NB201's cifar10-valid train half: --train-images 25000 is all of it


def recorded_args(command: str) -> list[str]:
    """The arguments of a recorded ``python -m benchmarks.NAME ARGS`` (or, as older runs recorded it,
    ``python benchmarks/NAME.py ARGS``) command."""
    tokens = shlex.split(command)
    return tokens[3:] if tokens[1:2] == ["-m"] else tokens[2:]


def check_same_settings(run: Path, recorded_command: str, args: Sequence[str]) -> None:
    """Exit with a message unless the finished ``run`` was made with the rank_cifar10 settings of ``args``
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
    before = settings(recorded_args(recorded_command))
    now = settings(args)
    if before != now:
        diff = ", ".join(f"{k}: {before[k]!r} then, {now[k]!r} now" for k in sorted(now) if before[k] != now[k])
        sys.exit(f"{run} is a finished run made with other settings ({diff}): remove it or choose another --out")


def run_jobs(out: Path, variants: Sequence[Variant], seeds: Sequence[int], common: Sequence[str],
             jobs: int = 1) -> dict[tuple[str, int], dict]:
    """Run ``benchmarks.rank_cifar10`` for every (variant, seed) in ``OUT/<variant>-s<seed>`` (seeds outermost,
    so all variants of seed 0 finish first; a finished run is reused only if made with the same settings);
    returns each run's ``bench_rank.json``."""
    out.mkdir(parents=True, exist_ok=True)

    def one(job: tuple[Variant, int]) -> dict:
        v, seed = job
        run = out / f"{v.name}-s{seed}"
        args = ["--config", v.config, "--seed", str(seed), *common, *v.args, "--out", str(run)]
        return run_job(Job("rank_cifar10", args, run / "bench_rank.json", out / f"{v.name}-s{seed}.log"),
                       check=lambda finished: check_same_settings(run, finished["command"], args))

    todo = [(v, s) for s in seeds for v in variants]
    return {(v.name, s): r for (v, s), r in zip(todo, in_parallel(one, todo, jobs))}
