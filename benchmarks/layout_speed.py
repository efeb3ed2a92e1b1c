"""NCHW vs channels_last memory format in every space nshot builds supernets for: one SPOS training step,
and one scoring forward pass (no gradient, batch-statistics BN, as ``nshot rank`` runs it).

Per space: two copies of the supernet with the same initial weights (one converted to channels_last), each
with its own SGD (momentum 0.9); every block runs the same seeded paths on the same batch (64 images,
32x32, 10 classes); forward, cross-entropy, backward, optimizer step. Blocks alternate ABBA across
``--rounds`` rounds in one process (benchmarks/timing.py); reported: median ms per step and NCHW /
channels_last. The scoring rows run ``--eval-batch`` images per call through each path in ``torch.no_grad``.
Measured to decide nshot's CPU defaults: scoring uses channels_last; training stays NCHW on CPU because of
a torch bug in the backward pass (docs/results.md, "channels_last on CPU").

    python -m benchmarks.layout_speed --threads 1 --out /tmp/layout_speed.json
"""
from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.common import command_line
from benchmarks.timing import abba, ratio_row
from nshot import spaces
from nshot.nn import build_supernet

SPACES = ("nb201", "macro", "proxyless", "bottleneck")


def step_call(space: str, fmt: torch.memory_format, archs: list, x: torch.Tensor,
              y: torch.Tensor) -> Callable[[], None]:
    """A closure running one SPOS step per call on the next of ``archs`` (cycling), in layout ``fmt``."""
    torch.manual_seed(0)
    net = build_supernet(space).to(memory_format=fmt)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    xx = x.contiguous(memory_format=fmt)
    paths = itertools.cycle(archs)

    def call() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(xx, next(paths)), y).backward()
        opt.step()
    return call


def forward_call(space: str, fmt: torch.memory_format, archs: list, x: torch.Tensor) -> Callable[[], None]:
    """A closure running one scoring forward pass (no gradient, train-mode BN = batch statistics) per call."""
    torch.manual_seed(0)
    net = build_supernet(space).to(memory_format=fmt).train()
    xx = x.contiguous(memory_format=fmt)
    paths = itertools.cycle(archs)

    @torch.no_grad()
    def call() -> None:
        net(xx, next(paths)).argmax(1)
    return call


def check_forward(reps: int = 20) -> int:
    """Forward passes of small convolutions in channels_last vs NCHW (the shapes whose channels_last backward
    corrupts the heap in torch 2.13 and their neighbours): the number of (shape) cases checked; raises on a
    mismatch. Run it under ``MALLOC_CHECK_=3`` to have glibc abort on any heap damage."""
    cases = 0
    for c in range(1, 9):
        for h in (4, 7, 8, 16, 32):
            for k, s in ((1, 2), (1, 1), (3, 2), (1, 3)):
                conv = torch.nn.Conv2d(c, 4, k, stride=s, padding=k // 2, bias=False)
                w = conv.weight.detach()
                conv = conv.to(memory_format=torch.channels_last)
                with torch.no_grad():
                    for _ in range(reps):
                        x = torch.randn(32, c, h, h)
                        y = conv(x.contiguous(memory_format=torch.channels_last))
                        ref = F.conv2d(x, w, stride=s, padding=k // 2)
                        if not torch.allclose(y, ref, atol=1e-5):
                            raise AssertionError(f"channels_last forward differs: c_in={c}, {h}x{h}, k={k}, s={s}")
                cases += 1
    return cases


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spaces", nargs="+", default=list(SPACES), choices=SPACES)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--steps", type=int, default=6, help="steps (and scoring passes) per block (default 6)")
    ap.add_argument("--eval-batch", type=int, default=256, help="images per scoring pass (default 256)")
    ap.add_argument("--check-forward", action="store_true",
                    help="only check small convolutions' channels_last forward against NCHW (use MALLOC_CHECK_=3)")
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.check_forward:
        print(f"channels_last forward equals NCHW in all {check_forward()} convolution shapes")
        return {}
    x = torch.randn(args.batch, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 10, (args.batch,), generator=torch.Generator().manual_seed(1))
    rows = []
    for space in args.spaces:
        sp = spaces.get(space)
        archs = [sp.sample(np.random.default_rng(i)) for i in range(args.steps)]
        times = abba({"nchw": step_call(space, torch.contiguous_format, archs, x, y),
                      "channels_last": step_call(space, torch.channels_last, archs, x, y)}, args.rounds, args.steps)
        rows.append(ratio_row(f"{space}, training step", times, "nchw", "channels_last"))
        xe = torch.randn(args.eval_batch, 3, 32, 32, generator=torch.Generator().manual_seed(2))
        times = abba({"nchw": forward_call(space, torch.contiguous_format, archs, xe),
                      "channels_last": forward_call(space, torch.channels_last, archs, xe)}, args.rounds, args.steps)
        rows.append(ratio_row(f"{space}, scoring pass ({args.eval_batch} images)", times, "nchw", "channels_last"))
    print("| space (default shape), workload | NCHW ms | channels_last ms | NCHW / channels_last |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['workload']} | {r['nchw_ms']:.1f} | {r['channels_last_ms']:.1f} | **{r['ratio']:.2f}×** |")
    result = {"command": command_line("layout_speed", argv),
              "torch": torch.__version__, "threads": args.threads, "batch": args.batch, "rows": rows}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
