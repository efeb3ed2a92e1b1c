"""Every recipe at the converged CPU protocol (issue 18 item 2): tau, rho, precision, top-1 and size bias of
SPOS, its CaLR / MS variants, FairNAS, Few-Shot NAS, GM-NAS (each ± CaLR + MS) and Pi-NAS, 3 seeds each.

The protocol is the budget curve's (``benchmarks.budget_curve``: NB201 supernet C 8 N 1 on the 25k `train` half,
scored on the first ``--eval-images`` `valid` images, ranked on the 327 subset and a seeded 1,000-cell sample)
at ``--epochs E``, the budget the SPOS curve chose. Every run is one :class:`~benchmarks.budget_curve.Point`,
so runs shared with the curve (SPOS and SPOS + CaLR + MS at E) are the same run directories when ``--out`` is
the curve's folder. Each row states its path updates (forward/backward passes of one path, in SPOS epochs):

* SPOS, SPOS + CaLR, SPOS + MS, SPOS + CaLR + MS: E epochs, E path updates.
* FairNAS (± CaLR + MS): 5 paths a step, so E / 5 epochs at equal path updates (every seed) and E epochs
  (seed 0 only, 5 E path updates).
* Pi-NAS (kNN probe on 1,000 labelled `train` images, lr 0.03 as ``benchmarks.pinas_cifar10``): two paths a
  step, so E / 2 epochs at equal path updates (every seed) and E epochs (seed 0 only).
* Few-Shot NAS, the paper's schedule (``-paper``): a one-shot warm-up of W = round(2 E / 3) epochs, then the 5
  sub-supernets of edge 0 inherit its weights and optimizer state and train to epoch E (the original's 600
  one-shot + 300 sub-supernet epochs, scaled so each sub-supernet's lineage sees E epochs):
  W + 5 (E - W) path updates.
* GM-NAS, the paper's schedule (``-paper``): splits at round(2 E / 9) and round(4 E / 9) of E epochs (NB201's
  20 / 40 of 90), the last split's children restarted (``fewshot.restart_final``): s1 + 2 (s2 - s1) +
  4 (E - s2) path updates.
* GM-NAS's schedule without the final restart (``gmnas-norestart-paper``): the last split's children
  inherit like the others (``fewshot.restart_final=false``); the same path updates. An ablation: how much of
  GM-NAS's ranking the restart costs at this budget.
* Few-Shot NAS and GM-NAS at equal path updates (``-equal``): Few-Shot NAS as ``benchmarks.fewshot_cifar10``
  at budget E (5 sub-supernets from scratch for E / 5 epochs); GM-NAS with the paper's proportions (splits at
  2/9 and 4/9 of the run) on the shorter run whose path updates come nearest E (:func:`gmnas_equal`), not
  ``fewshot_cifar10``'s longest-run schedule, which at E = 60 would leave the restarted sub-supernets 2 epochs.

Points run seed 0 of every row first, then seeds 1 and 2, ``--jobs`` at a time; each run directory is
resumable and a finished point is skipped, so the command continues where it stopped.

    python -m benchmarks.protocol_compare --epochs E --list                 # the points, their path updates
    python -m benchmarks.protocol_compare --epochs E --jobs 2 --threads 1 --out runs/budget
    python -m benchmarks.protocol_compare --epochs E --summary --out runs/budget
"""
from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.budget_curve import Point, run_point, selected, summary
from benchmarks.common import prepare_cifar
from benchmarks.jobs import in_parallel

SEEDS = (0, 1, 2)
FS_CHILDREN = 5      # Few-Shot NAS splits NB201's edge 0 into its 5 ops
FAIR_PATHS = 5       # FairNAS trains 5 paths a step
PINAS_PATHS = 2      # Pi-NAS trains a pair of paths a step
PINAS_ARGS = ("--lr", "0.03", "--probe", "knn", "--probe-images", "1000")


def fsnas_paper(epochs: int) -> int:
    """The warm-up W of Few-Shot NAS's schedule scaled to ``epochs``: round(2 E / 3), at least 1, < E."""
    return min(max(1, round(2 * epochs / 3)), epochs - 1)


def gmnas_paper(epochs: int) -> tuple[int, int]:
    """GM-NAS's NB201 split epochs (20, 40 of 90) scaled to ``epochs``: 1 <= s1 < s2 < E."""
    s1 = max(1, round(2 * epochs / 9))
    s2 = min(max(s1 + 1, round(4 * epochs / 9)), epochs - 1)
    if s1 >= s2:
        raise ValueError(f"--epochs {epochs} is too short for GM-NAS's two splits")
    return s1, s2


def gm_updates(epochs: int, s1: int, s2: int) -> int:
    """Path updates (SPOS epochs) of GM-NAS's two 2-way splits at s1 < s2 of ``epochs``."""
    return s1 + 2 * (s2 - s1) + 4 * (epochs - s2)


def gmnas_equal(budget: int) -> tuple[int, int, int]:
    """(E', s1, s2): GM-NAS's paper proportions (:func:`gmnas_paper`) on the run length E' whose path updates
    come nearest ``budget`` (ties: the longer run)."""
    best = None
    for e in range(3, budget + 1):
        try:
            s1, s2 = gmnas_paper(e)
        except ValueError:
            continue
        key = (-abs(gm_updates(e, s1, s2) - budget), e)
        if best is None or key > best[0]:
            best = (key, (e, s1, s2))
    if best is None:
        raise ValueError(f"no GM-NAS schedule fits {budget} path updates")
    return best[1]


def _split(epochs: list[int]) -> str:
    return f"fewshot.split_epochs=[{','.join(map(str, epochs))}]"


def rows(epochs: int, gm_batches: int = 10) -> list[list[Point]]:
    """The comparison's rows at protocol ``epochs``, each as its points (seed 0 first); path updates stated."""
    e = epochs
    if e % FAIR_PATHS or e % PINAS_PATHS or e % FS_CHILDREN:
        raise ValueError(f"--epochs {e} must be a multiple of 10 (FairNAS and Few-Shot NAS at E / 5, Pi-NAS at "
                         "E / 2 epochs)")
    w = fsnas_paper(e)
    s1, s2 = gmnas_paper(e)
    ge, g1, g2 = gmnas_equal(e)
    gm = (f"fewshot.gm_batches={gm_batches}",)
    out: list[list[Point]] = []
    for recipe in ("spos", "spos_calr", "spos_ms", "spos_calr_ms"):
        out.append([Point(recipe, e, s) for s in SEEDS])
    for recipe in ("fairnas", "fairnas_calr_ms"):
        out.append([Point(recipe, e // FAIR_PATHS, s, path_updates=e) for s in SEEDS])
        out.append([Point(recipe, e, 0, path_updates=FAIR_PATHS * e)])
    for suffix in ("", "_calr_ms"):
        out.append([Point(f"fsnas{suffix}", e, s, tag="-paper", args=("--extra", _split([w]), "fewshot.inherit=true"),
                          path_updates=w + FS_CHILDREN * (e - w)) for s in SEEDS])
        out.append([Point(f"gmnas{suffix}", e, s, tag="-paper", args=("--extra", _split([s1, s2]), *gm),
                          path_updates=gm_updates(e, s1, s2)) for s in SEEDS])
        out.append([Point(f"fsnas{suffix}", e // FS_CHILDREN, s, tag="-equal", path_updates=e) for s in SEEDS])
        out.append([Point(f"gmnas{suffix}", ge, s, tag="-equal", args=("--extra", _split([g1, g2]), *gm),
                          path_updates=gm_updates(ge, g1, g2)) for s in SEEDS])
    out.append([Point("pinas", e // PINAS_PATHS, s, args=PINAS_ARGS, path_updates=e) for s in SEEDS])
    out.append([Point("pinas", e, 0, args=PINAS_ARGS, path_updates=PINAS_PATHS * e)])
    out.append([Point("gmnas", e, s, tag="-norestart-paper",                  # ablation of the final restart
                      args=("--extra", _split([s1, s2]), *gm, "fewshot.restart_final=false"),
                      path_updates=gm_updates(e, s1, s2)) for s in SEEDS])
    return out


def points(epochs: int, gm_batches: int = 10) -> list[Point]:
    """Every point, in run order: seed 0 of every row, then seed 1, then seed 2."""
    table = rows(epochs, gm_batches)
    return [p for seed in SEEDS for row in table for p in row if p.seed == seed]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, required=True, help="the protocol's epochs E (from the budget curve)")
    ap.add_argument("--out", default="runs/budget", help="run folder (the budget curve's: shared runs reused)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--eval-images", type=int, default=2500, help="first N `valid` images per score")
    ap.add_argument("--sample", type=int, default=1000, help="cells of the all-cell sample (0: none)")
    ap.add_argument("--gm-batches", type=int, default=10, help="batches of each GM estimate (default 10)")
    ap.add_argument("--only", nargs="*", help="run only these point names, in this order")
    ap.add_argument("--data-root", default="/tmp/nshot-cifar")
    ap.add_argument("--list", action="store_true", help="print the points and their path updates, run nothing")
    ap.add_argument("--summary", action="store_true", help="only print/write the table of finished points")
    args = ap.parse_args(argv)
    try:
        todo = selected(points(args.epochs, args.gm_batches), args.only)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    if args.list:
        print("| point | epochs | path updates (SPOS epochs) | extra arguments |\n|---|---|---|---|")
        for p in todo:
            print(f"| {p.name} | {p.epochs} | {p.updates:g} | {' '.join(p.args) or '–'} |")
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.summary:
        prepare_cifar(Path(args.data_root))
        in_parallel(lambda p: run_point(p, out, args), todo, args.jobs)
    summary(out, args.sample, todo, name=f"protocol-e{args.epochs}.json")   # beside the curve's summary.json


if __name__ == "__main__":
    main()
