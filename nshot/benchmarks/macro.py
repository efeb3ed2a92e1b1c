"""NAS-Bench-Macro ground truth from its JSON table (``nas-bench-macro_cifar10.json``).

Format: ``{arch: {"test_acc": [3 floats], "mean_acc": float, "std": float, "params": int, "flops": int}}`` for
the 6,561 architectures of the ``macro`` space (8 characters over 0/1/2). Each architecture was trained 3
times on CIFAR-10 from scratch; ``mean_acc`` is the mean test accuracy (%). Not shipped with nshot: point
``NSHOT_MACRO_JSON`` at it or pass its path.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from ..spaces.macro import parse_macro
from .base import BenchmarkError, BenchmarkNotConfigured, BenchmarkNotFound, PathLike, TableBenchmark, register

ENV_JSON = "NSHOT_MACRO_JSON"
RUNS = 3
METRICS: tuple[str, ...] = ("mean_acc", "std", "params", "flops", *(f"test_acc/{i}" for i in range(RUNS)))


class MacroBenchmark(TableBenchmark):
    """NAS-Bench-Macro: ``mean_acc`` (mean CIFAR-10 test accuracy of 3 runs, %), ``std`` (their standard
    deviation), ``test_acc/0..2`` (each run), ``params`` and ``flops`` (multiply-accumulates) of the network."""

    default_metric = "mean_acc"
    dataset_metrics = {"cifar10": "mean_acc"}

    def __init__(self, archs, columns, *, source: str | None = None):
        super().__init__(archs, columns, name="macro", space="macro", source=source)

    @classmethod
    def from_json(cls, path: PathLike) -> "MacroBenchmark":
        """Load the JSON table; BenchmarkError naming the file, the arch and the problem."""
        archs, columns = read_macro_json(path)
        return cls(archs, columns, source=str(path))

    @classmethod
    def load(cls, path: PathLike | None = None) -> "MacroBenchmark":
        """``from_json(path)``; with ``path=None`` the file named by ``NSHOT_MACRO_JSON``."""
        if path is None:
            path = os.environ.get(ENV_JSON)
            if not path:
                raise BenchmarkNotConfigured(
                    f"no NAS-Bench-Macro table given: pass its path (--table PATH/nas-bench-macro_cifar10.json) "
                    f"or set {ENV_JSON}=PATH; nshot does not ship it (see docs/spaces.md)")
        return cls.from_json(path)


register("macro")(MacroBenchmark.load)


def _number(path: Path, arch: str, key: str, value, integer: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BenchmarkError(f"{path}: arch {arch!r}: {key} = {value!r} is not a finite number")
    if integer and (value != int(value) or value <= 0):
        raise BenchmarkError(f"{path}: arch {arch!r}: {key} = {value!r} is not a positive integer")
    return float(value)


def read_macro_json(path: PathLike) -> tuple[list[str], dict[str, np.ndarray]]:
    """Parse and validate the table: (archs in file order, metric -> float64 column).

    Every key must be a valid macro string; every entry must have ``mean_acc``, ``std`` and ``test_acc``
    (a list of 3 numbers) in [0, 100] (std >= 0), and positive integer ``params`` and ``flops``.
    """
    path = Path(path)
    if not path.is_file():
        raise BenchmarkNotFound(f"NAS-Bench-Macro table {str(path)!r} not found (expected "
                                f"nas-bench-macro_cifar10.json; see docs/spaces.md)")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BenchmarkError(f"cannot read NAS-Bench-Macro table {path}: {exc}") from None
    if not isinstance(data, dict) or not data:
        raise BenchmarkError(f"{path}: expected a non-empty JSON object {{arch: {{mean_acc, std, test_acc, params, "
                             f"flops}}}}, got {type(data).__name__}")
    archs: list[str] = []
    cols: dict[str, list[float]] = {m: [] for m in METRICS}
    for key, entry in data.items():
        try:
            arch = parse_macro(key)
        except ValueError as exc:
            raise BenchmarkError(f"{path}: bad key: {exc}") from None
        if not isinstance(entry, dict):
            raise BenchmarkError(f"{path}: arch {arch!r}: expected an object, got {type(entry).__name__}")
        missing = [k for k in ("mean_acc", "std", "test_acc", "params", "flops") if k not in entry]
        if missing:
            raise BenchmarkError(f"{path}: arch {arch!r} lacks {', '.join(missing)}")
        runs = entry["test_acc"]
        if not isinstance(runs, list) or len(runs) != RUNS:
            raise BenchmarkError(f"{path}: arch {arch!r}: test_acc must be a list of {RUNS} numbers, got {runs!r}")
        values = {"mean_acc": _number(path, arch, "mean_acc", entry["mean_acc"]),
                  "std": _number(path, arch, "std", entry["std"]),
                  "params": _number(path, arch, "params", entry["params"], integer=True),
                  "flops": _number(path, arch, "flops", entry["flops"], integer=True)}
        for i, v in enumerate(runs):
            values[f"test_acc/{i}"] = _number(path, arch, f"test_acc[{i}]", v)
        for m in ("mean_acc", *(f"test_acc/{i}" for i in range(RUNS))):
            if not 0 <= values[m] <= 100:
                raise BenchmarkError(f"{path}: arch {arch!r}: {m} = {values[m]!r} is outside 0..100 (accuracy in %)")
        if values["std"] < 0:
            raise BenchmarkError(f"{path}: arch {arch!r}: std = {values['std']!r} is negative")
        archs.append(arch)
        for m in METRICS:
            cols[m].append(values[m])
    return archs, {m: np.asarray(v, dtype=np.float64) for m, v in cols.items()}
