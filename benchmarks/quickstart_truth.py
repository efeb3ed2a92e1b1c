"""How reproducible is the quickstart's ground truth? Its cells trained stand-alone at two seeds.

The quickstart ranks its supernet against a small ground truth: each compared cell trained stand-alone on
the digits train half and scored on the held-out half (``nshot quickstart``). This script trains the same
cells (``pick_architectures(--archs, --pick-seed)``) with the quickstart's stand-alone settings at each of
``--seeds`` and each of ``--epochs``, and reports Kendall's tau between the seeds' accuracies: the ceiling a
supernet's tau against one such ground truth can reach. With ``--quickstart RUN`` it also ranks that run's
supernet scores against each seed's truth. Resumable: finished trainings are kept in ``--out`` (JSON).

    python -m benchmarks.quickstart_truth --epochs 30 90 --seeds 0 1 --out /tmp/qs-truth.json \\
        --quickstart /tmp/qs-seeds/s0
"""
from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from scipy.stats import kendalltau

from nshot.config import load_config
from nshot.quickstart import QUICKSTART_OVERRIDES, STANDALONE, pick_architectures
from nshot.run.build import load_data
from nshot.run.io import atomic_write_bytes
from nshot.train.standalone import StandaloneConfig, train_standalone


def train_all(out: Path, archs: list[str], epochs: list[int], seeds: list[int]) -> dict[str, float]:
    """Stand-alone held-out accuracy (%) of every (epochs, seed, arch), keyed ``"E|S|ARCH"``; resumable."""
    cfg = load_config(None, QUICKSTART_OVERRIDES + ["seed=0", "device=cpu"])
    train, evald = load_data(cfg)
    res: dict[str, float] = json.loads(out.read_text()) if out.exists() else {}
    todo = [(e, s, a) for e, s, a in itertools.product(epochs, seeds, archs) if f"{e}|{s}|{a}" not in res]
    for i, (e, s, a) in enumerate(todo):
        t0 = time.time()
        sa = StandaloneConfig(epochs=e, C=cfg.model.C, N=cfg.model.N, **STANDALONE)
        res[f"{e}|{s}|{a}"] = train_standalone(cfg.space.name, a, train, evald, sa, seed=s)
        print(f"[{i + 1}/{len(todo)}] {e} epochs seed {s}: {res[f'{e}|{s}|{a}']:.2f} % "
              f"({time.time() - t0:.0f} s) {a}", flush=True)
        atomic_write_bytes(out, json.dumps(res, indent=1).encode())
    return res


def summarize(res: dict[str, float], archs: list[str], epochs: list[int], seeds: list[int],
              supernet: Optional[list[float]] = None) -> list[str]:
    """Table lines: per (epochs, seed) the truth's mean and range, tau between seeds, and the supernet's tau."""
    lines = ["| epochs | seed | mean % | range % | tau vs other seeds | supernet tau |", "|---|---|---|---|---|---|"]
    for e in epochs:
        truth = {s: [res[f"{e}|{s}|{a}"] for a in archs] for s in seeds}
        for s in seeds:
            others = ", ".join(f"{kendalltau(truth[s], truth[o])[0]:.3f}" for o in seeds if o != s)
            sup = f"{kendalltau(supernet, truth[s])[0]:.3f}" if supernet is not None else "–"
            v = truth[s]
            lines.append(f"| {e} | {s} | {np.mean(v):.1f} | {min(v):.1f}–{max(v):.1f} | {others} | {sup} |")
    return lines


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, nargs="+", default=[30])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--archs", type=int, default=10, help="cells compared (as `nshot quickstart --archs`)")
    p.add_argument("--pick-seed", type=int, default=0, help="the quickstart seed whose cells are trained")
    p.add_argument("--quickstart", help="a finished quickstart run dir of the same --pick-seed: rank its scores")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True, help="JSON of the trainings (resumable)")
    a = p.parse_args(argv)
    if len(a.seeds) < 2:
        p.error("--seeds needs at least two seeds to compare")
    torch.set_num_threads(a.threads)
    archs = [arch for _, arch in pick_architectures(a.archs, a.pick_seed)]
    res = train_all(Path(a.out), archs, a.epochs, a.seeds)
    supernet = None
    if a.quickstart:
        q = json.loads((Path(a.quickstart) / "quickstart.json").read_text())
        if q["archs"] != archs:
            raise SystemExit(f"{a.quickstart} compared other cells (its seed is {q['seed']}, --pick-seed {a.pick_seed})")
        supernet = q["supernet_acc"]
    print("\n".join(summarize(res, archs, a.epochs, a.seeds, supernet)))


if __name__ == "__main__":
    main()
