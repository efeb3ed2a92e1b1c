"""Cost of one Pi-NAS step vs one SPOS step, side by side in one process (NB201 supernet C=8, N=2, batch 64,
random images, 1 thread): 4 rounds of 10 steps alternating the order (``benchmarks.timing.abba``, no separate
warm-up), median of rounds 2-4 (the first warms up).

    python -m benchmarks.pinas_step_cost [--out cost.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Callable

import torch

from benchmarks.common import REPO, command_line
from benchmarks.timing import abba


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="write the JSON here")
    args = ap.parse_args(argv)
    from nshot.config import load_config
    from nshot.data import ImageData
    from nshot.train.trainer import Trainer
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (640, 3, 32, 32), generator=g, dtype=torch.uint8)
    y = torch.randint(0, 10, (640,), generator=g)
    d = ImageData(x, y, 10, (0.49, 0.48, 0.45), (0.25, 0.24, 0.26), "random")
    base = ["device=cpu", "model.C=8", "model.N=2", "train.epochs=100", "train.batch_size=64", "run.progress=none"]
    tmp = tempfile.mkdtemp()
    tr = {"spos": Trainer.create(load_config(str(REPO / "configs/nb201/spos.yaml"), base), tmp + "/a", data=(d, d)),
          "pinas": Trainer.create(load_config(str(REPO / "configs/nb201/pinas.yaml"), base + ["pinas.queue_size=3125"]),
                                  tmp + "/b", data=(d, d))}

    def block(trainer) -> Callable[[], None]:
        def call() -> None:
            for i in range(10):
                idx = torch.arange(64) + 64 * (i % 10)
                trainer.train_step(x[idx], y[idx])
        return call

    ms = abba({k: block(t) for k, t in tr.items()}, rounds=4, reps=1, warmup=False)
    m = {k: statistics.median(v[1:]) / 1000 / 10 for k, v in ms.items()}   # seconds per step
    print({k: round(v, 4) for k, v in m.items()}, "ratio", round(m["pinas"] / m["spos"], 2))
    result = {"command": command_line("pinas_step_cost", argv), "seconds_per_step": m,
              "ratio": m["pinas"] / m["spos"], "rounds_ms": ms}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
