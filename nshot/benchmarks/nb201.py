"""NAS-Bench-201 ground truth from a CSV table (format in docs/benchmarks.md).

The table is not shipped with nshot. Point ``NSHOT_NB201_CSV`` at it (or pass ``path``), or build it from the
official NATS-Bench topology file with :mod:`nshot.benchmarks.export_nb201`.
"""
from __future__ import annotations

import csv
import io
import os
from functools import lru_cache
from itertools import product
from pathlib import Path

import numpy as np

from ..spaces import nb201 as nb201_space
from .base import BenchmarkError, BenchmarkNotConfigured, BenchmarkNotFound, PathLike, TableBenchmark, register

ENV_CSV = "NSHOT_NB201_CSV"
ENV_KENDALL327 = "NSHOT_KENDALL327"

ARCH_COLUMN = "arch_str"
INDEX_COLUMN = "nb201_index"
# CSV column -> metric name, in metric order. Accuracies in %, params as exact integer counts.
ACCURACY_COLUMNS: dict[str, str] = {
    "c10_val_200ep": "cifar10/valid",
    "c10_test_200ep": "cifar10/test",
    "c100_val_200ep": "cifar100/valid",
    "c100_test_200ep": "cifar100/test",
    "in16_val_200ep": "imagenet16/valid",
    "in16_test_200ep": "imagenet16/test",
}
PARAMS_COLUMNS: dict[str, str] = {
    "params_c10": "params/cifar10",
    "params_c100": "params/cifar100",
    "params_in16": "params/imagenet16",
}
COLUMNS: tuple[str, ...] = (INDEX_COLUMN, ARCH_COLUMN, *ACCURACY_COLUMNS, *PARAMS_COLUMNS)
METRICS: tuple[str, ...] = (*ACCURACY_COLUMNS.values(), *PARAMS_COLUMNS.values(), "index")
NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "imagenet16": 120}


@lru_cache(maxsize=1)
def canonical_strings() -> frozenset[str]:
    """All 15,625 canonical NB201 strings (equal to ``set(NB201Space().enumerate())``, tested).

    The loader accepts a string found here as it is (it is its own ``parse``) and sends any other through
    ``NB201Space.parse``, which normalises it or raises. This keeps loading the full table fast.
    """
    ops = nb201_space.OPS
    return frozenset(f"|{a}~0|+|{b}~0|{c}~1|+|{d}~0|{e}~1|{f}~2|" for a, b, c, d, e, f in product(ops, repeat=6))


class NB201Benchmark(TableBenchmark):
    """NAS-Bench-201: 200-epoch accuracies on CIFAR-10/100 and ImageNet16-120, parameter counts, NB201 index.

    Metrics: ``cifar10/valid`` (the ``cifar10-valid`` setting: trained on 25k, evaluated on the other 25k
    training images), ``cifar10/test`` (the ``cifar10`` setting: trained on 50k, evaluated on the test set),
    ``cifar100/valid``, ``cifar100/test``, ``imagenet16/valid``, ``imagenet16/test`` (the benchmark's
    ``x-valid`` / ``x-test``), all in %; ``params/cifar10``, ``params/cifar100``, ``params/imagenet16``
    (parameters of the stand-alone network for 10/100/120 classes); ``index`` (the official NB201 index).
    """

    named_subsets = {"kendall327": (ENV_KENDALL327, 327)}
    default_metric = "cifar10/test"
    dataset_metrics = {"cifar10": "cifar10/test", "cifar100": "cifar100/test", "imagenet16-120": "imagenet16/test"}

    def __init__(self, archs, columns, *, source: str | None = None):
        super().__init__(archs, columns, name="nb201", space="nb201", source=source)

    @classmethod
    def from_csv(cls, path: PathLike) -> "NB201Benchmark":
        """Load a table in the format of docs/benchmarks.md; BenchmarkError naming file, line and problem."""
        archs, columns = read_nb201_csv(path)
        return cls(archs, columns, source=str(path))

    @classmethod
    def load(cls, path: PathLike | None = None) -> "NB201Benchmark":
        """``from_csv(path)``; with ``path=None`` the file named by ``NSHOT_NB201_CSV``."""
        if path is None:
            path = os.environ.get(ENV_CSV)
            if not path:
                raise BenchmarkNotConfigured(
                    f"no NB201 table given: pass its path or set {ENV_CSV}=PATH/nb201_200ep.csv. nshot does not "
                    f"ship the table; build it from the official NATS-Bench topology file (NATS-tss-v1_0-3ffb9) "
                    f"with `pip install 'nshot[nats]'` and `python -m nshot.benchmarks.export_nb201 "
                    f"NATS_TSS_PATH nb201_200ep.csv`, or write one in the CSV format of docs/benchmarks.md")
        return cls.from_csv(path)

    def index_of(self, arch: str) -> int:
        """The official NB201 index of ``arch``."""
        return int(self.query(arch, "index"))

    def arch_at(self, index: int) -> str:
        """The arch with official NB201 index ``index`` (BenchmarkError if the table has no such row)."""
        hits = np.flatnonzero(self.column("index") == index)
        if not len(hits):
            raise BenchmarkError(f"NB201 index {index!r} is not in the table{self._source_suffix()}")
        return self._archs[int(hits[0])]


register("nb201")(NB201Benchmark.load)


def read_nb201_csv(path: PathLike) -> tuple[list[str], dict[str, np.ndarray]]:
    """Parse and validate an NB201 CSV: (canonical archs, metric -> float64 column), rows in file order.

    Checks, each failing with a BenchmarkError that names the file, the line and the problem: the header has
    every column of :data:`COLUMNS` (in any order; other columns are ignored, a repeated name is refused);
    every data row has as many fields as the header (a short last row is reported as a truncated file);
    ``arch_str`` is a valid NB201 string (normalised through ``NB201Space.parse``) and appears once; every
    number parses and is finite; accuracies lie in [0, 100]; params are positive integers; ``nb201_index`` is
    a non-negative integer that appears once. Blank lines are skipped; a UTF-8 byte-order mark is accepted.
    """
    path = Path(path)
    if not path.is_file():
        raise BenchmarkNotFound(f"NB201 table {str(path)!r} not found (see docs/benchmarks.md for the format and "
                                f"how to export it from NATS-Bench)")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchmarkError(f"cannot read NB201 table {path}: {exc}") from None

    def fail(line: int | str, problem: str) -> BenchmarkError:
        return BenchmarkError(f"{path}, line {line}: {problem}")

    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise BenchmarkError(f"{path}: empty file, expected a header line with columns {', '.join(COLUMNS)}") \
            from None
    except csv.Error as exc:
        raise fail(1, f"bad CSV: {exc}") from None
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise fail(1, f"missing column(s) {', '.join(missing)}; the header must name {', '.join(COLUMNS)} "
                      f"(see docs/benchmarks.md), got {', '.join(header)}")
    repeated = sorted({h for h in header if header.count(h) > 1 and h in COLUMNS})
    if repeated:
        raise fail(1, f"column(s) {', '.join(repeated)} appear more than once in the header")
    pos = {c: header.index(c) for c in COLUMNS}
    nfields = len(header)

    canon = canonical_strings()
    space = nb201_space.NB201Space()
    archs: list[str] = []
    lines: list[int] = []
    raw: dict[str, list[str]] = {c: [] for c in COLUMNS if c != ARCH_COLUMN}
    first_line: dict[str, int] = {}
    arch_pos = pos[ARCH_COLUMN]
    numeric = [(c, pos[c], raw[c].append) for c in raw]
    try:
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            line = reader.line_num
            if len(row) != nfields:
                last = not any(f.strip() for rest in reader for f in rest)
                hint = "; the file looks truncated" if last and len(row) < nfields else ""
                raise fail(line, f"expected {nfields} fields ({', '.join(header)}), got {len(row)}{hint}")
            text_arch = row[arch_pos]
            if text_arch in canon:
                arch = text_arch
            else:
                try:
                    arch = space.parse(text_arch)
                except ValueError as exc:
                    raise fail(line, f"column {ARCH_COLUMN}: {exc}") from None
            if arch in first_line:
                raise fail(line, f"duplicate arch {arch!r} (already on line {first_line[arch]})")
            first_line[arch] = line
            archs.append(arch)
            lines.append(line)
            for _, p, append in numeric:
                append(row[p])
    except csv.Error as exc:
        raise fail(reader.line_num, f"bad CSV: {exc}") from None
    if not archs:
        raise BenchmarkError(f"{path}: the table has a header but no data rows")

    values: dict[str, np.ndarray] = {}
    for col, strings in raw.items():
        try:
            arr = np.array(strings, dtype=np.float64)
        except ValueError:
            for line, s in zip(lines, strings):
                try:
                    float(s)
                except ValueError:
                    raise fail(line, f"column {col}: {s.strip()!r} is not a number") from None
            raise  # pragma: no cover  (numpy and float() disagree)
        bad = ~np.isfinite(arr)
        if bad.any():
            i = int(np.argmax(bad))
            raise fail(lines[i], f"column {col}: {strings[i].strip()!r} is not a finite number")
        values[col] = arr

    def first_bad(col: str, mask: np.ndarray, problem: str) -> None:
        if mask.any():
            i = int(np.argmax(mask))
            raise fail(lines[i], f"column {col}: {raw[col][i].strip()!r} {problem}")

    for col in ACCURACY_COLUMNS:
        first_bad(col, (values[col] < 0) | (values[col] > 100), "is outside 0..100 (accuracies are in %)")
    for col in PARAMS_COLUMNS:
        first_bad(col, (values[col] <= 0) | (values[col] != np.round(values[col])), "is not a positive integer")
    idx = values[INDEX_COLUMN]
    first_bad(INDEX_COLUMN, (idx < 0) | (idx != np.round(idx)), "is not a non-negative integer")
    order = np.argsort(idx, kind="stable")
    same = np.flatnonzero(idx[order][1:] == idx[order][:-1])
    if len(same):
        a, b = sorted((int(order[same[0]]), int(order[same[0] + 1])))
        raise fail(lines[b], f"column {INDEX_COLUMN}: index {int(idx[b])} already on line {lines[a]}")

    columns = {metric: values[col] for col, metric in {**ACCURACY_COLUMNS, **PARAMS_COLUMNS}.items()}
    columns["index"] = idx
    return archs, columns
