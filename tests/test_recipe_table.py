"""The by-recipe table of docs/results.md is what its per-point rows say (benchmarks/recipe_table.py)."""

from __future__ import annotations

from pathlib import Path

from benchmarks import recipe_table

CURVE = """\
| point | tau 327 | rho | p@10 % | top-1 truth | tau(scores, params) | rank error q0 / q4 | cells tied (327) | tau n1000 | train acc % | train min |
|---|---|---|---|---|---|---|---|---|---|---|
| SPOS 30 epochs, seed 0 | 0.454 | 0.6 | 0.1 | 91.33 | 0.2 | +0.1 / −0.1 | 1 | 0.365 | 59.1 | 44 |
| SPOS 60 epochs, seed 0 | 0.100 | 0.6 | 0.1 | 92.00 | 0.2 | +0.1 / −0.1 | 1 | −0.100 | 60.0 | 1 |
| SPOS 60 epochs, seed 1 | 0.200 | 0.6 | 0.1 | 93.00 | 0.2 | +0.1 / −0.1 | 1 | −0.200 | 61.0 | 1 |
| SPOS 60 epochs, seed 2 | 0.400 | 0.6 | 0.1 | 94.01 | 0.2 | +0.1 / −0.1 | 1 | −0.400 | 62.0 | 1 |
"""

COMPARE = """\
| point | path updates | tau 327 | rho | p@10 % | top-1 | tau(scores, params) | rank err q0 / q4 | ties 327 | tau n1000 | train acc % | train min | finished |
|---|---|---|---|---|---|---|---|---|---|---|---|---|
| SPOS + MS, seed 0 | 60 | 0.5185 | 0 | 0 | 90.00 | 0 | 0 / 0 | 0 | 0.3 | 50.0 | 1 | d |
| Pi-NAS, 30 epochs (kNN probe), seed 0 | 60 | −0.402 | 0 | 0 | 53.58 | 0 | 0 / 0 | 0 | −0.308 | 12.2 (contrastive top-1) | 1 | d |
| Pi-NAS, 30 epochs (kNN probe), seed 2 | 60 | −0.189 | 0 | 0 | 89.76 | 0 | 0 / 0 | 0 | −0.169 | 9.1 (contrastive top-1) | 1 | d |
"""


def _doc(table_lines: str = "") -> str:
    by_recipe = recipe_table.TABLE_HEADER + "\n|---|---|---|---|---|---|\n" + table_lines
    return f"# r\n\n{CURVE}\ntext\n\n{COMPARE}\nmore\n\n{by_recipe}\nend\n"


def test_means_and_sample_stds_of_the_rows() -> None:
    lines = recipe_table.table(_doc())
    assert lines[2:] == [
        # 60-epoch rows only (the 30-epoch row is another budget); std with n - 1: sqrt(0.0233...) = 0.153
        "| SPOS | 3 | 0.233 ± 0.153 | −0.233 ± 0.153 | 93.00 | 61.0 |",
        "| SPOS + MS | 1 | 0.519 | 0.300 | 90.00 | 50.0 |",  # a single seed: no spread; 0.5185 rounds half up
        # −0.2955 rounds away from zero; (12.2 + 9.1) / 2 = 10.65 → 10.7
        "| Pi-NAS (30 epochs: 60 path updates; kNN probe) | 2 | −0.296 ± 0.151 | −0.239 ± 0.098 | 71.67 | (contrastive 10.7) |",
    ]


def test_check_and_write_round_trip(tmp_path: Path, capsys) -> None:
    doc = tmp_path / "results.md"
    doc.write_text(_doc("| SPOS | 3 | 0.1 | 0.1 | 1 | 1 |\n"))
    assert recipe_table.main(["--doc", str(doc), "--check"]) == 1
    assert "- | SPOS | 3 | 0.1" in capsys.readouterr().out
    assert recipe_table.main(["--doc", str(doc), "--write"]) == 0
    assert recipe_table.main(["--doc", str(doc), "--check"]) == 0
    text = doc.read_text()
    assert text.endswith("end\n") and "| SPOS | 3 | 0.233 ± 0.153 |" in text and "| SPOS | 3 | 0.1 |" not in text


def test_results_md_table_matches_its_rows() -> None:
    assert recipe_table.main(["--check"]) == 0
