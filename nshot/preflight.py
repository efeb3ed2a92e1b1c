"""What the ``nshot`` commands check before torch is imported, so that a wrong path, run directory, option or
config key fails in a fraction of a second, in the command line's words (issue 22).

Only cheap, certain checks live here (files that must exist, configs, benchmark tables and metrics, option
combinations); the commands repeat the library's own checks when they run, so nothing here is the only guard.
No torch import, directly or through ``nshot.train`` / ``nshot.score``.
"""
from __future__ import annotations

import importlib.util
import json
from argparse import Namespace
from pathlib import Path
from typing import Optional, Union

from . import benchmarks, spaces
from .config import Config, load_config
from .errors import RunDirError, UsageError
from .run.rundir import RunDir

TENSORBOARD_HINT = "pip install 'nshot[tensorboard]' (or pip install tensorboard)"


def tensorboard_available() -> bool:
    """Whether the optional ``tensorboard`` package is installed (checked without importing it)."""
    return importlib.util.find_spec("tensorboard") is not None


def require_tensorboard() -> None:
    """Refuse ``run.tensorboard=true`` without the optional tensorboard package."""
    if not tensorboard_available():
        raise ValueError(f"run.tensorboard=true needs the tensorboard package: {TENSORBOARD_HINT}; or set "
                         "run.tensorboard=false")


def run_config(run_dir: Union[str, Path]) -> Config:
    """The config of the run in ``run_dir``; RunDirError when it is no run directory, its config is invalid."""
    files = RunDir(run_dir)
    run_dir = files.path
    if not files.is_run():
        why = "no such directory" if not run_dir.exists() else "not a directory" if not run_dir.is_dir() \
            else f"no {files.CONFIG}"
        raise RunDirError(f"{run_dir} is not a run directory ({why})")
    try:
        return load_config(files.config)
    except ValueError as exc:
        raise RunDirError(f"{run_dir}: its {files.CONFIG} is not valid for this nshot ({exc})") from None


def refuse_differentiable(run_dir: Union[str, Path], cfg: Config) -> None:
    """Raise RunDirError if ``run_dir`` (config ``cfg``) is a differentiable search (``arch.method`` darts or
    snas, with or without GM-NAS splits). Scoring sampled architectures with its supernet would rank them with
    weights trained under the mixed op, which is not what the run searched: its result is one derived cell."""
    method = cfg.arch.method
    if method == "none":
        return
    run_dir = Path(run_dir)
    kind = f"a differentiable search (arch.method {method}{', GM-NAS splits' if cfg.fewshot.method == 'gm' else ''})"
    result = RunDir(run_dir).result
    arch = None
    if result.is_file():
        try:
            arch = json.loads(result.read_text()).get("arch")
        except ValueError:
            arch = None
    if arch:
        found = f"its result is the derived cell in {result}: {arch}"
    else:
        found = (f"its result will be the derived cell in {result} when it finishes (continue it with "
                 f"`nshot train --resume {run_dir}`)")
    raise RunDirError(f"{run_dir} is {kind}: its supernet mixes every op on every edge, so rank and search, "
                      f"which score single architectures with a single-path supernet, do not apply; {found}; "
                      f"train that cell stand-alone with `nshot train-arch {run_dir}`")


def scorable_config(run_dir: Union[str, Path]) -> Config:
    """The config of a run that ``rank`` / ``search`` can score: a supernet run with a checkpoint (or a few-shot
    run); a differentiable search, a few-shot node or a run not trained yet is refused with what to do."""
    files = RunDir(run_dir)
    run_dir = files.path
    cfg = run_config(run_dir)
    if files.fewshot.is_file():
        return cfg
    top = files.top()
    if files.is_node() and (top.fewshot.is_file() or top.gm.is_file()):
        raise RunDirError(f"{run_dir} is one sub-supernet of a few-shot run: score the whole run ({top})")
    refuse_differentiable(run_dir, cfg)
    if not files.has_checkpoint():
        raise RunDirError(f"{run_dir} has no checkpoint yet; train it first with `nshot train --resume {run_dir}`")
    return cfg


def _benchmark(cfg: Config, name: Optional[str], table: Optional[str], metric: Optional[str]):
    """The run's benchmark table and metric, as ``nshot rank`` will use them (the same errors)."""
    bench = benchmarks.get(name or benchmarks.default_for_space(cfg.space.name), path=table)
    metric = benchmarks.metric_for(bench, cfg.data.name, metric)
    if bench.space != cfg.space.name:
        raise ValueError(f"benchmark {bench.name} is for space {bench.space!r}, the run trained {cfg.space.name!r}")
    return bench, metric


def check_rank(args: Namespace) -> None:
    """``nshot rank``: the run, its benchmark table, metric and subset."""
    cfg = scorable_config(args.run_dir)
    bench, _ = _benchmark(cfg, args.benchmark, args.table, args.metric)
    subset = int(args.subset) if args.subset.isdigit() else args.subset
    bench.subset(subset, seed=cfg.seed)
    _check_device(args.device)


def check_search(args: Namespace) -> None:
    """``nshot search``: the run, the strategy's required options, the ground-truth table if one is asked for."""
    cfg = scorable_config(args.run_dir)
    from .search import get_strategy, needs_budget   # pure Python/numpy
    if needs_budget(get_strategy(args.strategy)) and args.budget is None:
        raise UsageError(f"--strategy {args.strategy} needs --budget (the number of distinct architectures to "
                         "evaluate)")
    if args.benchmark is not None:
        _benchmark(cfg, args.benchmark, args.table, args.metric)
    elif args.table is not None or args.metric is not None:
        raise UsageError("--table and --metric name the ground truth of the best architectures: add --benchmark "
                         f"({', '.join(benchmarks.available())})")
    _check_device(args.device)


def _check_device(device: Optional[str]) -> None:
    if device is not None and not (device in ("auto", "cpu") or device.startswith("cuda")):
        raise UsageError(f"--device {device!r}: expected auto, cpu, cuda or cuda:N")


def check_train(config: Config, run_dir: Optional[Union[str, Path]]) -> None:
    """``nshot train`` (a new run): the run directory is free, the optional packages the config needs exist."""
    if config.run.tensorboard:
        require_tensorboard()
    if run_dir is not None:
        check_free_run_dir(run_dir, f"resume it with `nshot train --resume {run_dir}` or choose another run.dir")


def check_free_run_dir(run_dir: Union[str, Path], hint: str) -> None:
    """A new run may be written to ``run_dir``: it is not a file, holds no run, and can be created."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"{run_dir} is a file, not a directory")
    if RunDir(run_dir).is_taken():
        raise RunDirError(f"{run_dir} already holds a run; {hint}")
    _try_create(run_dir)


def _try_create(folder: Path) -> None:
    """Create the missing folders down to ``folder`` and remove them again: UsageError when that fails (a
    read-only or special file system, a file in the way), so the run does not fail after loading its data."""
    missing = []
    parent = folder
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"cannot create {folder}: {parent} is not a directory")
    made = []
    try:
        for d in reversed(missing):
            d.mkdir()
            made.append(d)
    except OSError as exc:
        raise UsageError(f"cannot create {folder}: {exc.strerror or exc}") from None
    finally:
        for d in reversed(made):
            d.rmdir()


def resolve_arch(arch_or_run: str, space: Union[str, spaces.SearchSpace]) -> tuple[str, Optional[Path]]:
    """An architecture string, or the best architecture of a run's search.json, or a differentiable search's
    derived cell (its result.json); ``space``: a name or an instance, e.g. ``spaces.for_config(cfg)``."""
    sp = spaces.get(space) if isinstance(space, str) else space
    p = Path(arch_or_run)
    files = RunDir(p)
    if p.is_dir() and not files.search.is_file() and files.result.is_file():
        derived = json.loads(files.result.read_text())   # a differentiable search: its derived architecture
        if "method" in derived and "arch" in derived:
            return sp.parse(derived["arch"]), p
    if p.is_dir():
        found = files.search
        if not found.is_file():
            raise RunDirError(f"{p} has no {files.SEARCH}; run `nshot search {p}` first or pass an architecture string")
        best = json.loads(found.read_text()).get("best") or []
        if not best:
            raise RunDirError(f"{found} lists no architecture")
        return sp.parse(best[0]["arch"]), p
    try:
        return sp.parse(arch_or_run), None
    except ValueError as exc:
        if p.exists() or any(ch in arch_or_run for ch in "|~[{("):
            raise
        raise UsageError(f"{arch_or_run} is neither a run directory (no such directory) nor a {sp.name} "
                         f"architecture ({exc})") from None


def check_train_arch(args: Namespace) -> tuple[Config, str, Optional[Path]]:
    """``nshot train-arch``: the config (``--config``, else the run's, else the defaults) with its overrides, the
    architecture, a free ``--run-dir``. Returns ``(config, arch, source run or None)``."""
    cfg_path = args.config
    if cfg_path is None and Path(args.arch).is_dir() and RunDir(args.arch).is_run():
        cfg_path = str(RunDir(args.arch).config)
    cfg = load_config(cfg_path, args.overrides)
    if cfg.run.tensorboard:
        require_tensorboard()
    arch, source = resolve_arch(args.arch, spaces.for_config(cfg))
    if args.run_dir is not None:
        run_dir = Path(args.run_dir)
        if RunDir(run_dir).result.exists():
            raise RunDirError(f"{run_dir} already holds a result; choose another --run-dir")
        if run_dir.exists() and not run_dir.is_dir():
            raise RunDirError(f"{run_dir} is a file, not a directory")
        _try_create(run_dir)
    return cfg, arch, source


def check_report(args: Namespace) -> None:
    """``nshot report``: the run directory exists and holds config.yaml (the same words as the report's)."""
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        why = "not a directory" if run_dir.exists() else "no such directory"
        raise RunDirError(f"{run_dir}: not a run directory ({why})")
    if not RunDir(run_dir).is_run():
        raise RunDirError(f"{run_dir}: not a run directory (no {RunDir.CONFIG})")


def check_quickstart(args: Namespace) -> None:
    """``nshot quickstart``: its ``--run-dir`` holds no run and can be created."""
    if args.run_dir is not None:
        check_free_run_dir(args.run_dir, "choose another --run-dir (the quickstart does not resume)")
