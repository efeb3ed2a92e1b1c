"""Regenerate ``QUICKSTART_CELLS`` of ``nshot/quickstart.py``: NB201 cells stratified by their CIFAR-10 quality.

The quickstart compares architectures whose quality differs clearly, so that its tau has something to find.
Strata: ten 5-point bands of NB201's 200-epoch CIFAR-10 test accuracy, 45-50 % up to 90-95 % (connected
cells span 46.2-94.4 %); from each band four connected cells drawn with seed 0. Only the architecture strings
and their band go into the code (no benchmark numbers), so the quickstart stays offline.

    python -m benchmarks.quickstart_cells ../shared/data/nb201/nb201_200ep.csv [--out cells.py]
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from nshot import spaces

BANDS = [(lo, lo + 5) for lo in range(45, 95, 5)]
PER_BAND = 4


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


def main(argv=None) -> str:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("table", help="nb201_200ep.csv")
    p.add_argument("--out", help="write the code here instead of printing it")
    args = p.parse_args(argv)
    lines = ["QUICKSTART_CELLS: dict[str, tuple[str, ...]] = {"]
    cells = stratified_cells(args.table)
    for band in dict.fromkeys(b for b, _ in cells):
        archs = [a for b, a in cells if b == band]
        lines.append(f'    "{band}": (' + "".join(f'\n        "{a}",' for a in archs) + "),")
    lines.append("}")
    code = "\n".join(lines) + "\n"
    if args.out:
        Path(args.out).write_text(code)
    else:
        print(code, end="")
    return code


if __name__ == "__main__":
    main()
