"""Cost of one Pi-NAS step vs one SPOS step, side by side in one process (NB201 supernet C=8, N=2, batch 64,
random images, 1 thread): 4 rounds of 10 steps alternating the order, median of rounds 2-4 (the first warms up).

    python benchmarks/pinas_step_cost.py
"""
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
torch.set_num_threads(1)
from nshot.config import load_config
from nshot.data import ImageData
from nshot.train.trainer import Trainer
g = torch.Generator().manual_seed(0)
x = torch.randint(0, 256, (640, 3, 32, 32), generator=g, dtype=torch.uint8); y = torch.randint(0, 10, (640,), generator=g)
d = ImageData(x, y, 10, (0.49, 0.48, 0.45), (0.25, 0.24, 0.26), "random")
base = ["device=cpu", "model.C=8", "model.N=2", "train.epochs=100", "train.batch_size=64", "run.progress=none"]
tmp = tempfile.mkdtemp()
tr = {"spos": Trainer.create(load_config(str(REPO / "configs/nb201/spos.yaml"), base), tmp + "/a", data=(d, d)),
      "pinas": Trainer.create(load_config(str(REPO / "configs/nb201/pinas.yaml"), base + ["pinas.queue_size=3125"]), tmp + "/b", data=(d, d))}
times = {k: [] for k in tr}
for r in range(4):
    for k in (("spos", "pinas") if r % 2 == 0 else ("pinas", "spos")):
        t0 = time.perf_counter()
        for i in range(10):
            idx = torch.arange(64) + 64 * (i % 10)
            tr[k].train_step(x[idx], y[idx])
        times[k].append((time.perf_counter() - t0) / 10)
m = {k: statistics.median(v[1:]) for k, v in times.items()}
print({k: round(v, 4) for k, v in m.items()}, "ratio", round(m["pinas"] / m["spos"], 2))
