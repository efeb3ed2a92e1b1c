"""Overhead of CaLR + MS over plain SPOS: time per training step, measured side by side in one run.

Both trainers get the same batches; steps alternate in blocks (A B B A ..., ``benchmarks.timing.abba``, after
one warm-up block each) so machine noise hits both alike. Diagnostics are off in both (their cost is reported
separately as a third variant).

    python -m benchmarks.dynamic_overhead --C 16 --N 5 --steps 40 --rounds 6
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Callable

import torch

from benchmarks.common import command_line
from benchmarks.timing import abba
from nshot.config import load_config
from nshot.data import ImageData
from nshot.train import Trainer

VARIANTS = {
    "spos": ["train.lr_policy=cosine", "train.optimizer=sgd", "diagnostics.grad_momentum_cos_every=0",
             "diagnostics.loss_by_quintile=false"],
    "spos+calr+ms": ["train.lr_policy=calr", "train.optimizer=ms_sgd", "diagnostics.grad_momentum_cos_every=0",
                     "diagnostics.loss_by_quintile=false"],
    "spos+calr+ms+diagnostics": ["train.lr_policy=calr", "train.optimizer=ms_sgd",
                                 "diagnostics.grad_momentum_cos_every=10", "diagnostics.loss_by_quintile=true"],
}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--C", type=int, default=16)
    ap.add_argument("--N", type=int, default=5)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=40, help="steps per block")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", help="write JSON here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    n = args.batch * args.steps * 2
    data = ImageData(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g),
                     torch.randint(0, 10, (n,), generator=g), 10, (0.5,) * 3, (0.25,) * 3)
    trainers = {}
    tmp = Path(tempfile.mkdtemp())
    for name, extra in VARIANTS.items():
        cfg = load_config(None, [f"model.C={args.C}", f"model.N={args.N}", f"train.batch_size={args.batch}",
                                 "train.epochs=1000", f"device={args.device}", "run.progress=none", *extra])
        trainers[name] = Trainer.create(cfg, tmp / name.replace("+", "_"), data=(data, data))
    batches = [torch.arange(i * args.batch, (i + 1) * args.batch) % n for i in range(args.steps)]
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)

    def block(tr) -> Callable[[], None]:
        def call() -> None:
            start = tr.step  # same iteration indices for every variant: the same paths and batches
            for idx in batches:
                out = tr.train_step(data.x[idx].to(tr.device), data.y[idx].to(tr.device))
            float(out["loss"])
            sync()
            tr.step = start
        return call

    # one warm-up block each, then blocks in ABBA order; ms per block -> seconds per step
    ms = abba({k: block(tr) for k, tr in trainers.items()}, args.rounds, 1)
    times = {k: [t / 1000 / len(batches) for t in v] for k, v in ms.items()}
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["spos"]
    result = {"command": command_line("dynamic_overhead", argv),
              "torch": torch.__version__, "threads": args.threads, "device": args.device,
              "median_step_seconds": med, "overhead_vs_spos": {k: v / base - 1 for k, v in med.items()}}
    print("| variant | median s/step | overhead vs SPOS |\n|---|---|---|")
    for k, v in med.items():
        print(f"| {k} | {v:.4f} | {100 * (v / base - 1):+.1f}% |")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
