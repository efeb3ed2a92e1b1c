#!/usr/bin/env python
"""Throughput of nshot: architectures/s of the plain vs the fast scorer (and, later, training images/s).

Scoring half. One supernet with random weights (default C=8, N=1, 10 classes, BN affine=False with batch
statistics, as nshot trains it) scores the same architectures with:

* ``plain``: every distinct string evaluated, one protocol batch per forward pass, one host read per
  architecture, fp32: what ``nshot rank`` did before dedup (``dedup=none, batch_group=1, sync_every=1``);
* ``fast exact``: ``dedup=exact`` (cells that differ only on dead edges share one evaluation, identical
  scores) with the device's default batching, sync and precision (CPU: 1 batch per pass, one read per arch,
  fp32; CUDA: about 2048 images per pass, one read per 32 archs, bf16 autocast where supported);
* ``fast iso``: as ``fast exact`` with ``dedup=iso`` (one cell per NB201 isomorphism class: an approximation
  for a supernet, shown for scale only).

Workloads: ``random<N>`` (N cells drawn uniformly from the 15,625 with a seeded generator, disconnected ones
included) and ``kendall327`` (the 327-cell subset, from ``--subset``, default ``../shared/data/nb201/
kendall_subset_327.txt`` when present). Data: ``--images`` random 32x32 images (content does not change the
cost). Every scorer starts with an empty cache. Timing: ``--rounds`` rounds, each scoring every workload with
every scorer, the scorer order rotating between rounds; reported: median wall time per (workload, scorer),
architectures/s = workload size / time (so dedup shows as a higher rate), and fast/plain. ``identical``
checks that ``fast exact`` gave exactly the plain scores; for ``fast iso`` the share of equal scores.

    python benchmarks/throughput.py                         # CPU scale of the results table
    python benchmarks/throughput.py --device cuda --C 16 --N 5 --images 10000
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from nshot import spaces  # noqa: E402
from nshot.data import ImageData  # noqa: E402
from nshot.nn import nb201_supernet  # noqa: E402
from nshot.score import ScoreProtocol, Scorer, count_functions  # noqa: E402

DEFAULT_SUBSET = ROOT.parent / "shared" / "data" / "nb201" / "kendall_subset_327.txt"
SCORERS = {   # name -> (dedup, execution options; None = the device default)
    "plain": ("none", dict(batch_group=1, sync_every=1), "fp32"),
    "fast exact": ("exact", dict(batch_group=None, sync_every=None), "auto"),
    "fast iso": ("iso", dict(batch_group=None, sync_every=None), "auto"),
}


def workloads(args) -> dict[str, list[str]]:
    """Workload name -> architectures (NB201 strings)."""
    sp = spaces.get("nb201")
    rng = random.Random(args.seed)
    every = list(sp.enumerate())
    out = {f"random{args.random_cells}": [every[rng.randrange(len(every))] for _ in range(args.random_cells)]}
    if args.subset == "none":
        return out
    subset = Path(args.subset) if args.subset else DEFAULT_SUBSET
    if subset.is_file():
        archs = [sp.parse(line.split("#")[0].strip()) for line in subset.read_text().splitlines()
                 if line.split("#")[0].strip()]
        out[f"kendall{len(archs)}" if len(archs) == 327 else subset.stem] = archs
    elif args.subset:
        raise SystemExit(f"subset file {subset} not found")
    return out


def make_data(args) -> ImageData:
    g = torch.Generator().manual_seed(args.seed)
    x = torch.randint(0, 256, (args.images, 3, 32, 32), generator=g, dtype=torch.uint8)
    y = torch.randint(0, 10, (args.images,), generator=g)
    return ImageData(x, y, 10, (0.49, 0.48, 0.45), (0.25, 0.24, 0.26), "random")


def time_scorer(net, data, archs, name, args, device) -> tuple[float, list[float], Scorer]:
    dedup, options, precision = SCORERS[name]
    proto = ScoreProtocol(eval_batch_size=args.eval_batch_size, dedup=dedup, precision=precision)
    scorer = Scorer(net, data, proto, device=device, progress="none", **options)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    scores = scorer.score_many(archs)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, scores, scorer


def scoring_throughput(args, device: torch.device) -> list[dict]:
    """Rows of the scoring half: one per workload, plain vs fast scorers side by side."""
    torch.manual_seed(args.seed)
    net = nb201_supernet(C=args.C, N=args.N, num_classes=10).to(device).eval()
    data = make_data(args)
    loads = workloads(args)
    names = list(SCORERS)
    # warm-up: a few cells through every scorer (kernels, allocator, autocast caches)
    warm = list(loads.values())[0][:4]
    for name in names:
        time_scorer(net, data, warm, name, args, device)
    times = {(w, n): [] for w in loads for n in names}
    results: dict[tuple, tuple] = {}
    for r in range(args.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for w, archs in loads.items():
            for name in order:
                t, scores, scorer = time_scorer(net, data, archs, name, args, device)
                times[(w, name)].append(t)
                results[(w, name)] = (scores, scorer.forward_passes, scorer)
    rows = []
    for w, archs in loads.items():
        plain_scores, plain_evals, _ = results[(w, "plain")]
        t_plain = statistics.median(times[(w, "plain")])
        row = {"workload": w, "archs": len(archs), "distinct": len(set(archs)),
               "plain": {"seconds": t_plain, "archs_per_s": len(archs) / t_plain, "evaluations": plain_evals}}
        for name in names[1:]:
            scores, evals, scorer = results[(w, name)]
            t = statistics.median(times[(w, name)])
            same = sum(a == b for a, b in zip(scores, plain_scores))
            row[name] = {"seconds": t, "archs_per_s": len(archs) / t, "evaluations": evals,
                         "ratio": t_plain / t, "identical": same == len(archs), "equal_share": same / len(archs),
                         "precision": scorer.protocol.precision, "batch_group": scorer.batch_group,
                         "sync_every": scorer.sync_every}
        row["functions"] = {"exact": count_functions(archs, "exact"), "iso": count_functions(archs, "iso")}
        row["times"] = {n: times[(w, n)] for n in names}
        rows.append(row)
    return rows


def training_throughput(args, device: torch.device) -> Optional[list[dict]]:
    """Training half (images/s of supernet training steps, plain vs fast): to be added by the lead.

    Return rows shaped like :func:`scoring_throughput`'s (one per workload, one dict per variant with
    ``seconds`` and a rate, and ``ratio`` against the plain variant) and extend :func:`markdown` to print them.
    ``None`` means "not measured" and prints nothing.
    """
    return None


def markdown(scoring: list[dict], training: Optional[list[dict]], command: str, env: dict) -> str:
    lines = [f"Command: `{command}`", "",
             f"Device {env['device']}, torch {env['torch']}, {env['threads']} threads, {env['cpu']}; "
             f"supernet C={env['C']} N={env['N']}, {env['images']} images, eval batch {env['eval_batch_size']}, "
             f"median of {env['rounds']} rounds.", "",
             "| workload | archs | evaluations plain / exact / iso | plain archs/s | fast exact archs/s | "
             "fast exact / plain | identical scores | fast iso archs/s (approx.) | fast iso / plain |",
             "|---|---:|---:|---:|---:|---:|---|---:|---:|"]
    for r in scoring:
        e, i = r["fast exact"], r["fast iso"]
        lines.append(f"| {r['workload']} | {r['archs']} | {r['plain']['evaluations']} / {e['evaluations']} / "
                     f"{i['evaluations']} | {r['plain']['archs_per_s']:.1f} | {e['archs_per_s']:.1f} | "
                     f"{e['ratio']:.2f}x | {'yes' if e['identical'] else 'NO'} | {i['archs_per_s']:.1f} | "
                     f"{i['ratio']:.2f}x |")
    if scoring:
        e = scoring[0]["fast exact"]
        lines += ["", f"fast scorer on this device: precision {e['precision']}, {e['batch_group']} eval batch(es) "
                      f"per forward pass, one host read per {e['sync_every']} architecture(s)."]
    if training is not None:
        lines += ["", "(training half: printed here once training_throughput returns rows)"]
    return "\n".join(lines)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda")
    ap.add_argument("--C", type=int, default=8)
    ap.add_argument("--N", type=int, default=1)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--eval-batch-size", type=int, default=256)
    ap.add_argument("--random-cells", type=int, default=100)
    ap.add_argument("--subset", help=f"subset file, or none (default {DEFAULT_SUBSET} when present)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, help="torch threads (CPU)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the raw results here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    env = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
           "torch": torch.__version__, "threads": torch.get_num_threads(),
           "cpu": platform.processor() or platform.machine(), "C": args.C, "N": args.N, "images": args.images,
           "eval_batch_size": args.eval_batch_size, "rounds": args.rounds, "cpus": os.cpu_count()}
    scoring = scoring_throughput(args, device)
    training = training_throughput(args, device)
    command = "python benchmarks/throughput.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(markdown(scoring, training, command.strip(), env))
    out = {"env": env, "command": command, "scoring": scoring, "training": training}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
