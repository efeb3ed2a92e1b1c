"""How much work skipping dead edges removes on uniformly sampled NB201 cells (a work count, no timing).

xautodl's NB201 supernet runs the op of every non-`none` edge; nshot skips edges that cannot reach the cell
output or whose input is never computed. This counts, over N uniform cells, the conv multiply-adds of the
cells and of the whole network (C, N, 32x32) each computes: the upper bound of the speed-up that skipping
alone can give when both run the same kernels.

    python -m benchmarks.dead_edge_work --samples 20000 [--out work.json]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from benchmarks.common import command_line
from nshot import spaces
from nshot.spaces.nb201 import live_edges


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=20000)
    ap.add_argument("--C", type=int, default=16)
    ap.add_argument("--N", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="write the JSON here")
    args = ap.parse_args(argv)
    sp, rs = spaces.get("nb201"), np.random.default_rng(args.seed)
    kernel = {2: 1, 3: 9}                      # 1x1 and 3x3 convs: MACs per output pixel per channel pair
    all_k = live_k = all_e = live_e = 0
    for _ in range(args.samples):
        ops = sp.decode(sp.sample(rs))
        for o, live in zip(ops, live_edges(ops)):
            all_e += o != 0
            live_e += live
            all_k += kernel.get(o, 0)
            live_k += kernel.get(o, 0) * live
    C, N = args.C, args.N
    per_unit = sum(N * c * c * r * r for c, r in [(C, 32), (2 * C, 16), (4 * C, 8)])
    fixed = (3 * C * 9 * 32 * 32 + C * 2 * C * 9 * 16 * 16 + 2 * C * 2 * C * 9 * 16 * 16 + C * 2 * C * 16 * 16
             + 2 * C * 4 * C * 9 * 8 * 8 + 4 * C * 4 * C * 9 * 8 * 8 + 2 * C * 4 * C * 8 * 8)
    xa = fixed + all_k / args.samples * per_unit
    ns = fixed + live_k / args.samples * per_unit
    out = {"edges_computed_ratio": all_e / live_e, "cell_conv_macs_ratio": all_k / live_k,
           "network_conv_macs_ratio": xa / ns}
    for k, v in out.items():
        print(f"{k}: {v:.3f} (xautodl / nshot)")
    if args.out:
        Path(args.out).write_text(json.dumps({"command": command_line("dead_edge_work", argv), **out}, indent=1))
    return out


if __name__ == "__main__":
    main()
