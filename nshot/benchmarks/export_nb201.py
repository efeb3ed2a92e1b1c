"""Build the NB201 CSV (docs/benchmarks.md) from the official NATS-Bench / NAS-Bench-201 API.

    pip install 'nshot[nats]'
    python -m nshot.benchmarks.export_nb201 PATH/NATS-tss-v1_0-3ffb9-simple nb201_200ep.csv

or, from Python, with an API object you created yourself::

    from nats_bench import create
    api = create("PATH/NATS-tss-v1_0-3ffb9-simple", "tss", fast_mode=True, verbose=False)
    export_nats(api, "nb201_200ep.csv", hp="200")

Queries, per benchmark index ``i`` (``hp`` = number of training epochs, ``is_random=False`` = the mean
over the trained seeds), as documented by NATS-Bench's ``get_more_info``:

=====================  ==========================================================
CSV column             API call
=====================  ==========================================================
``arch_str``           ``api.meta_archs[i]`` (``api.arch(i)`` if absent), through ``NB201Space.parse``
``c10_val_200ep``      ``get_more_info(i, "cifar10-valid")["valid-accuracy"]``
``c10_test_200ep``     ``get_more_info(i, "cifar10")["test-accuracy"]``
``c100_val_200ep``     ``get_more_info(i, "cifar100")["valid-accuracy"]`` (x-valid)
``c100_test_200ep``    ``get_more_info(i, "cifar100")["test-accuracy"]`` (x-test)
``in16_val_200ep``     ``get_more_info(i, "ImageNet16-120")["valid-accuracy"]``
``in16_test_200ep``    ``get_more_info(i, "ImageNet16-120")["test-accuracy"]``
``params_*``           ``NB201Space.num_params(arch, num_classes=10/100/120)``
=====================  ==========================================================

Parameter counts are computed exactly rather than read from the API: ``get_cost_info`` gives them as a float
in millions. With ``check_params=True`` (default) the exact count is compared with
``get_cost_info(i, dataset)["params"] * 1e6`` and a disagreement beyond 0.1% is an error (it would mean the
API's index/arch mapping or class count is not the one assumed here).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

from ..spaces import nb201 as nb201_space
from .base import BenchmarkError, PathLike
from .nb201 import COLUMNS, NB201Benchmark

# (CSV column, API dataset name, key in get_more_info's dict)
ACCURACY_QUERIES: tuple[tuple[str, str, str], ...] = (
    ("c10_val_200ep", "cifar10-valid", "valid-accuracy"),
    ("c10_test_200ep", "cifar10", "test-accuracy"),
    ("c100_val_200ep", "cifar100", "valid-accuracy"),
    ("c100_test_200ep", "cifar100", "test-accuracy"),
    ("in16_val_200ep", "ImageNet16-120", "valid-accuracy"),
    ("in16_test_200ep", "ImageNet16-120", "test-accuracy"),
)
# (CSV column, API dataset name, number of classes)
PARAMS_QUERIES: tuple[tuple[str, str, int], ...] = (
    ("params_c10", "cifar10", 10),
    ("params_c100", "cifar100", 100),
    ("params_in16", "ImageNet16-120", 120),
)


def _more_info(api: Any, index: int, dataset: str, hp: str) -> dict:
    try:
        return api.get_more_info(index, dataset, hp=hp, is_random=False)
    except TypeError as exc:
        # NAS-Bench-201 v1.0's API (nas_201_api) names the 200-epoch results ``use_12epochs_result=False``.
        if "hp" not in str(exc) or hp not in ("12", "200"):
            raise
        return api.get_more_info(index, dataset, use_12epochs_result=(hp == "12"), is_random=False)


def _arch_string(api: Any, index: int) -> str:
    meta = getattr(api, "meta_archs", None)
    text = meta[index] if meta is not None else api.arch(index)
    if not isinstance(text, str) and hasattr(text, "tostr"):
        text = text.tostr()
    try:
        return nb201_space.NB201Space().parse(text)
    except ValueError as exc:
        raise BenchmarkError(f"API index {index}: {exc}") from None


def export_nats(api: Any, out_csv: PathLike, hp: str = "200", *, check_params: bool = True,
                progress: Callable[[int, int], None] | None = None) -> int:
    """Write the NB201 CSV of every architecture of ``api`` to ``out_csv``; return the number of rows.

    ``api``: a NATS-Bench topology API (``nats_bench.create(path, "tss", ...)``) or a NAS-Bench-201 API
    (``nas_201_api.NASBench201API``); anything with ``len(api)``, ``meta_archs`` or ``arch(i)``,
    ``get_more_info(i, dataset, hp=..., is_random=False)`` and (with ``check_params``) ``get_cost_info(i,
    dataset)``. ``hp``: the training-epoch setting (``"200"`` for the published 200-epoch results; the column
    names keep ``200ep`` whatever ``hp`` is). Rows are written in index order; values are written with full
    float precision. The file is written to a temporary name, loaded back with
    :meth:`NB201Benchmark.from_csv` as a check, then moved to ``out_csv``. ``progress(done, total)`` is
    called after each architecture.
    """
    hp = str(hp)
    total = len(api)
    if total < 1:
        raise BenchmarkError("the API holds no architectures")
    space = nb201_space.NB201Space()
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out_csv.name + ".", suffix=".tmp", dir=out_csv.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(",".join(COLUMNS) + "\n")
            for index in range(total):
                arch = _arch_string(api, index)
                infos: dict[str, dict] = {}
                fields = [str(index), arch]
                for column, dataset, key in ACCURACY_QUERIES:
                    if dataset not in infos:
                        infos[dataset] = _more_info(api, index, dataset, hp)
                    value = infos[dataset].get(key)
                    if value is None or not math.isfinite(float(value)):
                        raise BenchmarkError(
                            f"API index {index} ({arch}): get_more_info(dataset={dataset!r}, hp={hp!r}) has no "
                            f"finite {key!r} (got {value!r}; keys: {', '.join(sorted(infos[dataset]))})")
                    fields.append(repr(float(value)))
                for column, dataset, classes in PARAMS_QUERIES:
                    count = space.num_params(arch, num_classes=classes)
                    if check_params:
                        reported = float(api.get_cost_info(index, dataset)["params"]) * 1e6
                        if abs(reported - count) > 1e-3 * count:
                            raise BenchmarkError(
                                f"API index {index} ({arch}): get_cost_info(dataset={dataset!r}) reports "
                                f"{reported / 1e6:.6f}M parameters but the stand-alone network has {count} "
                                f"({classes} classes); the API does not match NB201Space (pass "
                                f"check_params=False to skip this check)")
                    fields.append(str(count))
                f.write(",".join(fields) + "\n")
                if progress is not None:
                    progress(index + 1, total)
        NB201Benchmark.from_csv(tmp)
        os.replace(tmp, out_csv)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return total


def create_api(path: PathLike, fast_mode: bool | None = None) -> Any:
    """``nats_bench.create(path, "tss", fast_mode=..., verbose=False)``; a directory means fast mode.

    ``nats_bench`` is an optional dependency: ``pip install 'nshot[nats]'``.
    """
    try:
        from nats_bench import create
    except ImportError:
        raise BenchmarkError("exporting from NATS-Bench needs the optional package nats_bench: "
                             "pip install 'nshot[nats]' (or pip install 'nats_bench>=1.7')") from None
    path = Path(path)
    if not path.exists():
        raise BenchmarkError(f"NATS-Bench file {str(path)!r} not found: download NATS-tss-v1_0-3ffb9-simple.tar "
                             f"(or NATS-tss-v1_0-3ffb9.pickle.pbz2) as described at "
                             f"https://github.com/D-X-Y/NATS-Bench and pass its path")
    if fast_mode is None:
        fast_mode = path.is_dir()
    return create(str(path), "tss", fast_mode=fast_mode, verbose=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nshot.benchmarks.export_nb201",
        description="Write the NB201 CSV table (docs/benchmarks.md) from the official NATS-Bench topology file.")
    parser.add_argument("nats_path", help="NATS-tss-v1_0-3ffb9-simple directory or NATS-tss-v1_0-3ffb9.pickle.pbz2")
    parser.add_argument("out_csv", help="CSV file to write")
    parser.add_argument("--hp", default="200", help="training epochs setting of the results (default: 200)")
    parser.add_argument("--no-check-params", action="store_true",
                        help="do not compare the exact parameter counts with get_cost_info")
    args = parser.parse_args(argv)
    try:
        api = create_api(args.nats_path)

        def report(done: int, total: int) -> None:
            if done % 1000 == 0 or done == total:
                print(f"{done}/{total} architectures", file=sys.stderr, flush=True)

        n = export_nats(api, args.out_csv, hp=args.hp, check_params=not args.no_check_params, progress=report)
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {n} rows to {args.out_csv}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
