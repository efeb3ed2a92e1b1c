"""Ground-truth benchmark tables: the interface, an in-memory table, subsets and the registry.

A :class:`Benchmark` answers "what is the true value of ``metric`` for ``arch``?" for every architecture in
its table (e.g. NAS-Bench-201's 200-epoch accuracies). Architectures are the canonical strings of the search
space named by :attr:`Benchmark.space` (``nshot.spaces.get(space).parse``). No torch import.

Every error raised here is a :class:`BenchmarkError` (a ``ValueError``); a missing file raises
:class:`BenchmarkNotFound`, which is also a ``FileNotFoundError``.
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence, Union

import numpy as np

from .. import spaces

PathLike = Union[str, "os.PathLike[str]"]
SubsetSpec = Union[str, "os.PathLike[str]", int]


class BenchmarkError(ValueError):
    """A benchmark table, subset file, metric name or architecture is unusable; the message says why."""


class BenchmarkNotFound(BenchmarkError, FileNotFoundError):
    """A benchmark table or subset file does not exist (also a ``FileNotFoundError``)."""


class BenchmarkNotConfigured(BenchmarkNotFound):
    """No path was given and the benchmark's default location (its environment variable) is not set: a caller
    for whom the ground truth is optional can tell this from a table that was named but is missing."""


class Benchmark(ABC):
    """Ground truth for the architectures of one search space.

    Attributes: ``name`` (registry name, e.g. ``"nb201"``), ``space`` (search space name in
    :mod:`nshot.spaces`), ``metrics`` (the metric names :meth:`query` accepts) and ``named_subsets``
    (keyword -> ``(environment variable, expected size or None)`` for subsets that are not shipped, see
    :meth:`subset`).
    """

    name: str = "abstract"
    space: str = ""
    metrics: tuple[str, ...] = ()
    default_metric: str = ""   # the table's headline metric (its first dataset's)
    #: training dataset (``data.name``) -> the metric that is its ground truth; a run on a dataset not listed
    #: here has none in this table (:meth:`metric_for`)
    dataset_metrics: Mapping[str, str] = {}
    named_subsets: Mapping[str, tuple[str, int | None]] = {}

    # -- required ---------------------------------------------------------------------------------------
    @abstractmethod
    def query(self, arch: str, metric: str) -> float:
        """The value of ``metric`` for ``arch``.

        ``arch`` is any string the space's ``parse`` accepts. Raises :class:`BenchmarkError` naming the arch
        when it is not in the table, or naming the metric and listing the valid ones when it is unknown.
        """

    @abstractmethod
    def archs(self) -> list[str]:
        """Every architecture in the table (canonical strings), in table order."""

    @abstractmethod
    def __contains__(self, arch: object) -> bool:
        """Whether ``arch`` (any accepted spelling) is in the table; False for malformed or non-strings."""

    # -- generic ----------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.archs())

    def query_many(self, archs: Iterable[str], metric: str) -> np.ndarray:
        """``query`` for each arch, as a float64 array in the given order."""
        archs = _arch_list(archs)
        self.check_metric(metric)
        return np.array([self.query(a, metric) for a in archs], dtype=np.float64)

    def check_metric(self, metric: str) -> str:
        """Return ``metric`` if this benchmark has it, else raise :class:`BenchmarkError` listing the valid ones."""
        if not isinstance(metric, str) or metric not in self.metrics:
            raise BenchmarkError(f"unknown metric {metric!r} for benchmark {self.name}; "
                                 f"valid metrics: {', '.join(self.metrics)}")
        return metric

    def parse_arch(self, arch: str) -> str:
        """The canonical string of ``arch`` in this benchmark's space (ValueError if malformed)."""
        return spaces.get(self.space).parse(arch)

    def subset(self, spec: SubsetSpec, seed: int = 0, stratify: str | None = None) -> list[str]:
        """A list of architectures of this table, chosen by ``spec``.

        * ``"all"``: :meth:`archs` (table order).
        * a keyword of :attr:`named_subsets` (NB201: ``"kendall327"``): the file named by its environment
          variable (NB201: ``NSHOT_KENDALL327``), read as below; such subsets are not shipped with nshot, so
          without the variable the error says to pass the file path instead. When the keyword has an expected
          size, a file of another size is refused.
        * a path to a text file (``str`` or ``os.PathLike``): one architecture per line, parsed with the
          space's ``parse``; blank lines and ``#`` comments (whole-line or trailing) are ignored. A malformed
          line, an arch missing from the table or a repeated arch raises :class:`BenchmarkError` naming the
          file and line number. Result in file order.
        * an ``int`` N (or a string of digits that is not an existing file): N distinct architectures drawn
          with ``numpy.random.default_rng(seed)``, returned in table order. By default the draw is uniform
          without replacement over the table (``rng.choice(len(table), N, replace=False)``). With
          ``stratify=METRIC`` it is stratified by that metric: the table is sorted by the metric (ties in
          table order), cut into N consecutive equal-count strata (sizes differ by at most one) and one arch
          is drawn uniformly from each, so the subset spans the whole range of the metric.

        The same ``spec``, ``seed`` and table give the same list. An empty result (empty file, N < 1) or
        N larger than the table raises :class:`BenchmarkError`.
        """
        if isinstance(spec, bool):
            raise BenchmarkError(f"subset must be 'all', a subset keyword, a file path or a count, got {spec!r}")
        if isinstance(spec, (int, np.integer)):
            return self._random_subset(int(spec), seed, stratify)
        if isinstance(spec, str) and spec == "all":
            if stratify is not None:
                raise BenchmarkError("stratify only applies to a drawn subset (an int count), not 'all'")
            out = self.archs()
            if not out:
                raise BenchmarkError(f"benchmark {self.name} has an empty table")
            return out
        if isinstance(spec, str) and spec in self.named_subsets:
            env, size = self.named_subsets[spec]
            path = os.environ.get(env)
            if not path:
                raise BenchmarkError(
                    f"subset {spec!r} is not shipped with nshot: pass its file path instead (e.g. --subset "
                    f"PATH/{spec}.txt, one arch per line) or set {env}=PATH; see docs/benchmarks.md")
            archs = self.read_subset_file(path)
            if size is not None and len(archs) != size:
                raise BenchmarkError(f"subset {spec!r} from {env}={path} has {len(archs)} archs, expected {size}")
            return archs
        if isinstance(spec, (str, os.PathLike)):
            path = Path(spec)
            if not path.exists() and isinstance(spec, str) and spec.strip().isdigit():
                return self._random_subset(int(spec), seed, stratify)
            if stratify is not None:
                raise BenchmarkError("stratify only applies to a drawn subset (an int count), not a subset file")
            return self.read_subset_file(path)
        raise BenchmarkError(f"subset must be 'all', one of {sorted(self.named_subsets)}, a file path or an int "
                             f"count, got {type(spec).__name__}: {spec!r}")

    def read_subset_file(self, path: PathLike) -> list[str]:
        """Read a subset file (see :meth:`subset`): canonical archs in file order."""
        path = Path(path)
        if not path.is_file():
            raise BenchmarkNotFound(f"subset file {str(path)!r} not found (expected a text file with one "
                                    f"{self.space} arch per line, or 'all', "
                                    f"{', '.join(repr(k) for k in self.named_subsets)}{',' if self.named_subsets else ''}"
                                    f" or a count)")
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise BenchmarkError(f"cannot read subset file {str(path)!r}: {exc}") from None
        space = spaces.get(self.space)
        out: list[str] = []
        seen: dict[str, int] = {}
        for lineno, line in enumerate(text.splitlines(), start=1):
            item = line.split("#", 1)[0].strip()
            if not item:
                continue
            try:
                arch = space.parse(item)
            except ValueError as exc:
                raise BenchmarkError(f"{path}, line {lineno}: {exc}") from None
            if arch not in self:
                raise BenchmarkError(f"{path}, line {lineno}: arch {arch!r} is not in the {self.name} table "
                                     f"({len(self)} archs{self._source_suffix()})")
            if arch in seen:
                raise BenchmarkError(f"{path}, line {lineno}: arch {arch!r} repeats line {seen[arch]}")
            seen[arch] = lineno
            out.append(arch)
        if not out:
            raise BenchmarkError(f"subset file {path} lists no architectures (only blank lines or # comments)")
        return out

    def _random_subset(self, n: int, seed: int, stratify: str | None) -> list[str]:
        table = self.archs()
        if n < 1:
            raise BenchmarkError(f"subset size must be at least 1, got {n}")
        if n > len(table):
            raise BenchmarkError(f"subset size {n} exceeds the {self.name} table ({len(table)} archs)")
        rng = np.random.default_rng(seed)
        if stratify is None:
            rows = rng.choice(len(table), size=n, replace=False)
        else:
            values = self.query_many(table, self.check_metric(stratify))
            order = np.argsort(values, kind="stable")
            rows = np.array([stratum[rng.integers(len(stratum))] for stratum in np.array_split(order, n)])
        return [table[i] for i in np.sort(rows)]

    def _source_suffix(self) -> str:
        source = getattr(self, "source", None)
        return f" from {source}" if source else ""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}: {len(self)} archs{self._source_suffix()}>"


def _arch_list(archs: Iterable[str]) -> list:
    if isinstance(archs, (str, bytes)):
        raise BenchmarkError("query_many takes a sequence of archs, got a single string; use query() for one arch")
    return list(archs)


class TableBenchmark(Benchmark):
    """A benchmark held in memory: canonical arch strings and one float64 column per metric.

    ``archs`` must be canonical (``space.parse(a) == a``) and unique; ``columns`` maps every metric name to
    an array of ``len(archs)`` values in the same order. Columns are stored read-only.
    """

    def __init__(self, archs: Sequence[str], columns: Mapping[str, np.ndarray], *, name: str, space: str,
                 source: str | None = None):
        self.name = name
        self.space = space
        self.source = source
        self._archs = list(archs)
        self._row = {a: i for i, a in enumerate(self._archs)}
        if len(self._row) != len(self._archs):
            dup = next(a for i, a in enumerate(self._archs) if self._row[a] != i)
            raise BenchmarkError(f"benchmark {name}: arch {dup!r} appears more than once")
        self._columns: dict[str, np.ndarray] = {}
        for metric, values in columns.items():
            col = np.array(values, dtype=np.float64)
            if col.shape != (len(self._archs),):
                raise BenchmarkError(f"benchmark {name}: column {metric!r} has shape {col.shape}, "
                                     f"expected ({len(self._archs)},)")
            col.setflags(write=False)
            self._columns[metric] = col
        self.metrics = tuple(self._columns)

    def archs(self) -> list[str]:
        return list(self._archs)

    def __len__(self) -> int:
        return len(self._archs)

    def __contains__(self, arch: object) -> bool:
        if not isinstance(arch, str):
            return False
        if arch in self._row:
            return True
        try:
            return self.parse_arch(arch) in self._row
        except ValueError:
            return False

    def row(self, arch: str) -> int:
        """Position of ``arch`` in :meth:`archs`; BenchmarkError naming the arch if it is not in the table."""
        i = self._row.get(arch) if isinstance(arch, str) else None
        if i is not None:
            return i
        canonical = self.parse_arch(arch)  # ValueError naming the arch if malformed
        i = self._row.get(canonical)
        if i is None:
            raise BenchmarkError(f"arch {canonical!r} is not in the {self.name} table "
                                 f"({len(self._archs)} archs{self._source_suffix()})")
        return i

    def column(self, metric: str) -> np.ndarray:
        """The whole (read-only) column of ``metric``, aligned with :meth:`archs`."""
        return self._columns[self.check_metric(metric)]

    def query(self, arch: str, metric: str) -> float:
        col = self.column(metric)
        return float(col[self.row(arch)])

    def query_many(self, archs: Iterable[str], metric: str) -> np.ndarray:
        col = self.column(metric)
        rows = np.fromiter((self.row(a) for a in _arch_list(archs)), dtype=np.intp)
        return col[rows]  # fancy indexing: a fresh, writable array


# -- registry ------------------------------------------------------------------------------------------------
_REGISTRY: dict[str, Callable[[PathLike | None], Benchmark]] = {}


def register(name: str):
    """Decorator registering ``loader(path_or_None) -> Benchmark`` under ``name`` for :func:`get`."""
    def deco(loader):
        _REGISTRY[name] = loader
        return loader
    return deco


def _loader(name: str) -> Callable[[PathLike | None], Benchmark]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise BenchmarkError(f"unknown benchmark {name!r}; available: {', '.join(sorted(_REGISTRY))}") from None


def get(name: str, path: PathLike | None = None) -> Benchmark:
    """Load the benchmark registered as ``name`` from ``path`` (None: the benchmark's default location).

    ``get("nb201")`` reads the CSV named by the environment variable ``NSHOT_NB201_CSV``; see
    docs/benchmarks.md for the format and how to build it.
    """
    return _loader(name)(path)


def dataset_metrics(name: str) -> Mapping[str, str]:
    """Benchmark ``name``'s ground-truth metric per training dataset, known without loading its table (empty
    for a loader that is not a benchmark class's ``load``)."""
    return dict(getattr(getattr(_loader(name), "__self__", None), "dataset_metrics", {}))


def available() -> list[str]:
    """Registered benchmark names."""
    return sorted(_REGISTRY)


def metric_for(bench: "Benchmark", dataset: str, metric: "str | None" = None) -> str:
    """The metric a run trained on ``dataset`` is compared with: ``metric`` if given (validated), else the
    benchmark's ground truth for that dataset. A dataset without one (digits, image folders, ImageNet16 with
    1000 classes) is refused with the flag to pass if a comparison is meant anyway."""
    if metric is not None:
        if metric not in bench.metrics:
            raise BenchmarkError(f"unknown metric {metric!r} for benchmark {bench.name}; available: "
                                 f"{', '.join(bench.metrics)}")
        return metric
    if dataset in bench.dataset_metrics:
        return bench.dataset_metrics[dataset]
    known = ", ".join(f"{d} -> {m}" for d, m in bench.dataset_metrics.items())
    raise BenchmarkError(f"the run trained on {dataset!r}, which has no ground truth in benchmark {bench.name} "
                         f"({known}); to compare with one of its metrics anyway, pass it, e.g. "
                         f"--metric {bench.default_metric}")


# The benchmark `nshot rank` uses for a run of each space when no --benchmark is given.
DEFAULT_FOR_SPACE: dict[str, str] = {"nb201": "nb201", "macro": "macro"}


def default_for_space(space: str) -> str:
    """The default benchmark of search space ``space``; BenchmarkError if it has none."""
    try:
        return DEFAULT_FOR_SPACE[space]
    except KeyError:
        raise BenchmarkError(f"search space {space!r} has no ground-truth benchmark in nshot (spaces with one: "
                             f"{', '.join(sorted(DEFAULT_FOR_SPACE))}); name one with --benchmark") from None
