"""The by-recipe table of ``docs/results.md`` (issue 18 item 2), computed from the per-point rows recorded there.

Run directories of long experiments do not survive a machine reset, so the per-point rows in
``docs/results.md`` (the budget curve's table and the recipe comparison's table) are the lasting record. This
tool groups those rows by recipe and prints each recipe's mean ± sample standard deviation (n − 1) of tau on
the 327 subset and on the 1,000-cell sample, the mean top-1 and the mean training accuracy, in the format of
the by-recipe table; ``--check`` compares it with the table in the file and ``--write`` replaces it::

    python -m benchmarks.recipe_table              # print
    python -m benchmarks.recipe_table --check      # exit 1 where docs/results.md's table differs
    python -m benchmarks.recipe_table --write      # rewrite docs/results.md's table in place
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "results.md"
CURVE_HEADER = "| point | tau 327 | rho |"
COMPARE_HEADER = "| point | path updates | tau 327 |"
TABLE_HEADER = "| recipe | seeds | tau 327 | tau n1000 | top-1 (mean) | train acc % |"


@dataclass(frozen=True)
class Recipe:
    """One line of the by-recipe table: its label and the pattern its rows' names match (seed excluded)."""

    label: str
    table: str  # "curve" or "compare"
    pattern: str  # regex matched (fullmatch) against the row's name with its ", seed K..." tail removed


# Order and labels of the published table. SPOS and SPOS + CaLR + MS come from the budget curve's 60-epoch rows.
RECIPES: tuple[Recipe, ...] = (
    Recipe("SPOS", "curve", r"SPOS 60 epochs"),
    Recipe("SPOS + CaLR", "compare", r"SPOS \+ CaLR"),
    Recipe("SPOS + MS", "compare", r"SPOS \+ MS"),
    Recipe("SPOS + CaLR + MS", "curve", r"SPOS \+ CaLR \+ MS 60 epochs"),
    Recipe("FairNAS (12 epochs: 60 path updates)", "compare", r"FairNAS, 12 epochs"),
    Recipe("FairNAS + CaLR + MS (12 epochs)", "compare", r"FairNAS \+ CaLR \+ MS, 12 epochs"),
    Recipe("FairNAS (60 epochs: 300 path updates)", "compare", r"FairNAS, 60 epochs"),
    Recipe("FairNAS + CaLR + MS (60 epochs)", "compare", r"FairNAS \+ CaLR \+ MS, 60 epochs"),
    Recipe("Few-Shot NAS, equal budget", "compare", r"Few-Shot NAS, equal budget.*"),
    Recipe("Few-Shot NAS + CaLR + MS, equal budget", "compare", r"Few-Shot NAS \+ CaLR \+ MS, equal budget.*"),
    Recipe("GM-NAS, equal budget", "compare", r"GM-NAS, equal budget.*"),
    Recipe("GM-NAS + CaLR + MS, equal budget", "compare", r"GM-NAS \+ CaLR \+ MS, equal budget.*"),
    Recipe("Few-Shot NAS, the paper's schedule (140 path updates)", "compare", r"Few-Shot NAS, the paper's schedule.*"),
    Recipe("Few-Shot NAS + CaLR + MS, the paper's schedule", "compare", r"Few-Shot NAS \+ CaLR \+ MS, the paper's schedule"),
    Recipe("GM-NAS, the paper's schedule (173 path updates)", "compare",
           r"GM-NAS, the paper's schedule( \(splits.*\))?"),
    Recipe("GM-NAS + CaLR + MS, the paper's schedule", "compare", r"GM-NAS \+ CaLR \+ MS, the paper's schedule"),
    Recipe("GM-NAS, the paper's schedule without the final restart (ablation)", "compare",
           r"GM-NAS, the paper's schedule without the final restart.*"),
    Recipe("Pi-NAS (30 epochs: 60 path updates; kNN probe)", "compare", r"Pi-NAS, 30 epochs.*"),
    Recipe("Pi-NAS (60 epochs: 120 path updates; kNN probe)", "compare", r"Pi-NAS, 60 epochs.*"),
)

SEED_TAIL = re.compile(r",? seed (\d+)\b.*$")


def _num(cell: str) -> Decimal:
    """A table cell's leading number, exact as written (a typographic minus counts as a minus)."""
    m = re.search(r"[−-]?\d+(?:\.\d+)?", cell)
    if m is None:
        raise ValueError(f"no number in cell {cell!r}")
    return Decimal(m.group(0).replace("−", "-"))


def _round(x: Decimal, places: int) -> str:
    """``x`` rounded half away from zero (means of the rows' exact decimals, so no binary-float ties)."""
    return str(x.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def _span(lines: list[str], header: str) -> tuple[int, int]:
    """Start (the header line) and end (exclusive) line indices of the first markdown table whose header line
    starts with ``header``."""
    start = next((i for i, line in enumerate(lines) if line.startswith(header)), None)
    if start is None:
        raise ValueError(f"no table with header {header!r} in the document")
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return start, end


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _rows(lines: list[str], header: str) -> list[dict[str, str]]:
    """The rows of the first markdown table whose header line starts with ``header``, as column → cell."""
    start, end = _span(lines, header)
    cols = _cells(lines[start])
    out = []
    for row in lines[start + 2:end]:
        cells = _cells(row)
        if len(cells) != len(cols):
            raise ValueError(f"row has {len(cells)} cells, header {len(cols)}: {row!r}")
        out.append(dict(zip(cols, cells)))
    return out


def _mean(xs: list[Decimal]) -> Decimal:
    return sum(xs, Decimal(0)) / len(xs)


def _mean_std(xs: list[Decimal]) -> str:
    mean = _round(_mean(xs), 3).replace("-", "−")
    if len(xs) == 1:
        return mean
    return f"{mean} ± {_round(Decimal(statistics.stdev(xs)), 3)}"


def table(text: str) -> list[str]:
    """The by-recipe table's lines (header included), computed from the rows in ``text``; recipes without rows are left out."""
    lines = text.splitlines()
    tables = {"curve": _rows(lines, CURVE_HEADER), "compare": _rows(lines, COMPARE_HEADER)}
    out = [TABLE_HEADER, "|---|---|---|---|---|---|"]
    for recipe in RECIPES:
        picked: dict[int, dict[str, str]] = {}
        for row in tables[recipe.table]:
            name = row["point"]
            m = SEED_TAIL.search(name)
            if m is None or not re.fullmatch(recipe.pattern, name[: m.start()]):
                continue
            picked.setdefault(int(m.group(1)), row)  # a point recorded twice (curve point re-listed) counts once
        if not picked:
            continue
        rows = [picked[s] for s in sorted(picked)]
        tau = [_num(r["tau 327"]) for r in rows]
        sample = [_num(r["tau n1000"]) for r in rows]
        top1 = _round(_mean([_num(r["top-1 truth" if recipe.table == "curve" else "top-1"]) for r in rows]), 2)
        acc = _round(_mean([_num(r["train acc %"]) for r in rows]), 1)
        acc_cell = f"(contrastive {acc})" if "contrastive" in rows[0]["train acc %"] else acc
        out.append(f"| {recipe.label} | {len(rows)} | {_mean_std(tau)} | {_mean_std(sample)} | {top1} | {acc_cell} |")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--doc", type=Path, default=DOC, help="the results document (default: docs/results.md)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 where the document's table differs")
    mode.add_argument("--write", action="store_true", help="replace the document's table with the computed one")
    args = ap.parse_args(argv)
    text = args.doc.read_text()
    new = table(text)
    lines = text.splitlines()
    start, end = _span(lines, TABLE_HEADER)
    if args.check:
        old = lines[start:end]
        if old != new:
            sys.stdout.write("by-recipe table differs from its rows:\n")
            for a, b in zip(old + [""] * len(new), new + [""] * len(old)):
                if a != b:
                    sys.stdout.write(f"- {a}\n+ {b}\n")
            return 1
        print(f"by-recipe table matches its rows ({len(new) - 2} recipes)")
        return 0
    if args.write:
        args.doc.write_text("\n".join(lines[:start] + new + lines[end:]) + ("\n" if text.endswith("\n") else ""))
        print(f"wrote {len(new) - 2} recipes into {args.doc}")
        return 0
    print("\n".join(new))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
