"""Forward + backward time of NB201's ``avg_pool_3x3``: torch's ``nn.AvgPool2d(3, 1, 1,
count_include_pad=False)`` vs nshot's ``BoxAvgPool2d`` (a depthwise ones-kernel convolution divided by the
tap count), on the feature-map shapes of an NB201 network at the given C and batch, then on a whole SPOS
step of the supernet with either pool module.

Timing protocol: both variants in one process on the same inputs; ``--rounds`` rounds, each timing one
block of ``--reps`` calls per variant, the order alternating ABBA... across rounds so drifting machine
noise hits both; reported: median ms per call of each variant and torch/nshot (ratio of medians).
The step rows run the same seeded paths on the same batch with identical weights (one supernet, its pool
modules swapped between blocks).

    python -m benchmarks.pool_speed --C 16 --N 5 --batch 64 --threads 2 --out /tmp/pool_speed.json
"""
from __future__ import annotations

import argparse
import itertools
import json
import random
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.common import command_line
from benchmarks.timing import abba, ratio_row
from nshot.nn import nb201_supernet
from nshot.nn.ops import BoxAvgPool2d
from nshot.spaces import nb201 as space


def pool_call(pool: nn.Module, x: torch.Tensor, g: torch.Tensor) -> Callable[[], None]:
    def call() -> None:
        x.grad = None
        pool(x).backward(g)
    return call


def swap_pools(net: nn.Module, pool: nn.Module) -> None:
    """Make every edge's avg_pool_3x3 of an NB201 supernet the (stateless, shareable) module ``pool``."""
    for cell in net.cells:
        for edge in getattr(cell, "edges", []):
            if "avg_pool_3x3" in edge:
                edge["avg_pool_3x3"] = pool


def step_call(net: nn.Module, pool: nn.Module, x: torch.Tensor, y: torch.Tensor,
              archs: list[str]) -> Callable[[], None]:
    """One forward + backward of the supernet on the next path of ``archs``, with ``pool`` as the pool op."""
    paths = itertools.cycle(archs)

    def call() -> None:
        swap_pools(net, pool)
        net.zero_grad(set_to_none=True)
        F.cross_entropy(net(x, next(paths)), y).backward()
    return call


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--C", type=int, default=16)
    ap.add_argument("--N", type=int, default=5)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--reps", type=int, default=10, help="calls per block (op rows); step rows use reps // 2")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ref = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    rows = []
    for stage in range(3):
        c, r = args.C * 2 ** stage, args.resolution // 2 ** stage
        x = torch.randn(args.batch, c, r, r, requires_grad=True)
        g = torch.randn(args.batch, c, r, r)
        times = abba({"torch": pool_call(ref, x, g), "nshot": pool_call(BoxAvgPool2d(3), x, g)},
                     args.rounds, args.reps)
        rows.append(ratio_row(f"pool {args.batch}x{c}x{r}x{r}", times, "torch", "nshot"))
    net = nb201_supernet(C=args.C, N=args.N)
    x = torch.randn(args.batch, 3, args.resolution, args.resolution)
    y = torch.randint(0, 10, (args.batch,))
    rng = random.Random(0)
    for wl, archs in (("step, random paths", [space._format(tuple(rng.randrange(5) for _ in range(6)))
                                              for _ in range(64)]),
                      ("step, all avg_pool_3x3", [space._format((4,) * 6)])):
        times = abba({"torch": step_call(net, ref, x, y, archs), "nshot": step_call(net, BoxAvgPool2d(3), x, y, archs)},
                     args.rounds, max(1, args.reps // 2))
        rows.append(ratio_row(wl, times, "torch", "nshot"))
    print("| workload | torch AvgPool2d ms | nshot BoxAvgPool2d ms | ratio |\n|---|---|---|---|")
    for rw in rows:
        print(f"| {rw['workload']} | {rw['torch_ms']:.2f} | {rw['nshot_ms']:.2f} | **{rw['ratio']:.2f}×** |")
    result = {"command": command_line("pool_speed", argv),
              "torch": torch.__version__, "threads": args.threads, "rows": rows}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
