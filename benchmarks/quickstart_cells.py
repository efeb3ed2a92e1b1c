"""Regenerate ``QUICKSTART_CELLS`` of ``nshot/quickstart.py``: NB201 cells stratified by their quality on digits.

The quickstart compares architectures whose quality differs clearly, so that its tau has something to find.
Two stages:

1. The candidate pool: ten 5-point bands of NB201's 200-epoch CIFAR-10 test accuracy, 45-50 % up to 90-95 %
   (connected cells span 46.2-94.4 %); from each band four connected cells drawn with seed 0
   (:func:`stratified_cells`).
2. The bands the quickstart picks from (``--digits``): the pool's cells trained stand-alone on digits with the
   quickstart's own recipe (``python -m benchmarks.quickstart_truth --pool TABLE``, training seeds that no
   quickstart seed 0-6 uses), one cell kept per function (:meth:`NB201Space.canonical`), sorted by their mean
   held-out accuracy and cut into ten bands of (nearly) equal size (:func:`digits_bands`). NB201's CIFAR-10
   bands predict the digits quality only weakly (tau 0.35 over the pool; docs/results.md), so stage 1's bands
   alone left some quickstart seeds with ten cells inside 2.3 points.

Only the architecture strings and their band go into the code (no benchmark numbers), so the quickstart stays
offline.

    python -m benchmarks.quickstart_cells ../shared/data/nb201/nb201_200ep.csv      # stage 1 (print)
    python -m benchmarks.quickstart_truth --pool ../shared/data/nb201/nb201_200ep.csv \\
        --seeds 7 1007 2007 --out pool.json
    python -m benchmarks.quickstart_cells ../shared/data/nb201/nb201_200ep.csv --digits pool.json \\
        --seeds 7 1007 2007 [--epochs 30] [--out cells.py]                             # stage 2
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from nshot import spaces

BANDS = [(lo, lo + 5) for lo in range(45, 95, 5)]
PER_BAND = 4
DIGITS_BANDS = 10


def stratified_cells(table: str, seed: int = 0) -> list[tuple[str, str]]:
    """``(band label, arch)`` pairs: ``PER_BAND`` connected cells per accuracy band, seeded."""
    sp = spaces.get("nb201")
    rows = [(r["arch_str"], float(r["c10_test_200ep"])) for r in csv.DictReader(open(table))]
    rng = np.random.default_rng(seed)
    out = []
    for lo, hi in BANDS:
        pool = sorted(a for a, acc in rows if lo <= acc < hi and sp.is_connected(sp.parse(a)))
        for a in rng.choice(pool, size=min(PER_BAND, len(pool)), replace=False):
            out.append((f"{lo}-{hi}", str(a)))
    return out


def digits_bands(archs: Sequence[str], accuracy: Mapping[str, float],
                 bands: int = DIGITS_BANDS) -> list[tuple[str, str]]:
    """``(band label, arch)`` pairs: ``archs`` with one cell per function (the first of each class in the given
    order), sorted by ``accuracy`` (ties kept in the given order) and cut into ``bands`` consecutive groups whose
    sizes differ by at most one (the larger ones at the strong end). Labels run ``"1/B"`` (weakest) to ``"B/B"``."""
    sp = spaces.get("nb201")
    first: dict = {}
    for a in archs:
        first.setdefault(sp.canonical(sp.parse(a)), a)
    kept = list(first.values())
    if len(kept) < bands:
        raise ValueError(f"{len(kept)} distinct cells cannot fill {bands} bands")
    ranked = sorted(kept, key=lambda a: accuracy[a])          # stable: ties keep the given order
    small, extra = divmod(len(ranked), bands)
    sizes = [small] * (bands - extra) + [small + 1] * extra
    out, start = [], 0
    for b, size in enumerate(sizes):
        out += [(f"{b + 1}/{bands}", a) for a in ranked[start:start + size]]
        start += size
    return out


def pool_accuracy(trainings: Mapping[str, float], archs: Sequence[str], seeds: Sequence[int],
                  epochs: int = 30, recipe: str = "quickstart") -> dict[str, float]:
    """Mean held-out accuracy of each arch over ``seeds``, from ``benchmarks.quickstart_truth``'s trainings."""
    from benchmarks.quickstart_truth import _key
    missing = [_key(recipe, epochs, s, a) for a in archs for s in seeds if _key(recipe, epochs, s, a) not in trainings]
    if missing:
        raise SystemExit(f"{len(missing)} trainings missing from the pool file, e.g. {missing[0]}")
    return {a: float(np.mean([trainings[_key(recipe, epochs, s, a)] for s in seeds])) for a in archs}


def render(cells: Sequence[tuple[str, str]]) -> str:
    """The ``QUICKSTART_CELLS`` literal for ``cells``."""
    lines = ["QUICKSTART_CELLS: dict[str, tuple[str, ...]] = {"]
    for band in dict.fromkeys(b for b, _ in cells):
        archs = [a for b, a in cells if b == band]
        lines.append(f'    "{band}": (' + "".join(f'\n        "{a}",' for a in archs) + "),")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> str:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("table", help="nb201_200ep.csv")
    p.add_argument("--digits", help="stage 2: the pool's digits trainings (benchmarks.quickstart_truth --pool --out)")
    p.add_argument("--seeds", type=int, nargs="+", default=[7, 1007, 2007], help="training seeds to average (stage 2)")
    p.add_argument("--epochs", type=int, default=30, help="stand-alone epochs of the pool's trainings (stage 2)")
    p.add_argument("--out", help="write the code here instead of printing it")
    args = p.parse_args(argv)
    cells = stratified_cells(args.table)
    if args.digits:
        archs = [a for _, a in cells]
        cells = digits_bands(archs, pool_accuracy(json.loads(Path(args.digits).read_text()), archs, args.seeds, args.epochs))
    code = render(cells)
    if args.out:
        Path(args.out).write_text(code)
    else:
        print(code, end="")
    return code


if __name__ == "__main__":
    main()
