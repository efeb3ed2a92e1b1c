"""`nshot quickstart`: the whole idea in a few CPU minutes, offline.

Trains a small NB201 supernet on scikit-learn's bundled digits, trains a handful of architectures
stand-alone on the same split as a small ground truth, and reports how well the supernet ranks them.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import numpy as np
from scipy import stats

from . import spaces
from .config import load_config
from .score import evaluate_arch
from .train.standalone import StandaloneConfig, train_standalone
from .train.trainer import Trainer, load_data

QUICKSTART_OVERRIDES = [
    "data.name=digits", "data.augment=true", "data.crop_padding=1", "data.flip=false",
    "model.C=8", "model.N=1", "train.epochs=60", "train.batch_size=64", "optim.lr=0.05",
    "optim.weight_decay=5e-4", "train.log_every_steps=100", "sampler.connected_only=true",
    "threads=1",  # networks this small run fastest on one thread, and never oversubscribe a busy machine
]


def pick_architectures(space, n: int, seed: int) -> list[str]:
    """``n`` distinct connected cells spread over complexity (a random draw per parameter-count bin)."""
    rs = np.random.default_rng(seed)
    pool = sorted({a for a in (space.sample(rs) for _ in range(4000)) if space.is_connected(a)},
                  key=lambda a: (space.num_params(a), a))
    bins = np.array_split(np.arange(len(pool)), n)
    return [pool[int(rs.choice(b))] for b in bins]


def run_quickstart(run_dir: Optional[str] = None, num_archs: int = 10, supernet_epochs: int = 60,
                   standalone_epochs: int = 30, seed: int = 0, progress: str = "auto") -> dict:
    """Run the demo; returns a summary dict (also written to RUN/quickstart.json)."""
    t0 = time.time()
    run_dir = Path(run_dir or f"runs/quickstart-{time.strftime('%Y%m%d-%H%M%S')}")
    overrides = QUICKSTART_OVERRIDES + [f"train.epochs={supernet_epochs}", f"seed={seed}", "device=cpu",
                                        f"run.progress={progress}"]
    cfg = load_config(None, overrides)
    space = spaces.get(cfg.space.name)
    train, evald = load_data(cfg)
    print(f"[1/3] training an NB201 supernet (C={cfg.model.C}, N={cfg.model.N}) on digits "
          f"({len(train)} train / {len(evald)} held-out images, {supernet_epochs} epochs) in {run_dir}")
    trainer = Trainer.create(cfg, run_dir, data=(train, evald))
    trainer.fit()

    archs = pick_architectures(space, num_archs, seed)
    print(f"[2/3] training {len(archs)} architectures stand-alone ({standalone_epochs} epochs each) as ground truth")
    sa_cfg = StandaloneConfig(epochs=standalone_epochs, batch_size=64, lr=0.05, C=cfg.model.C, N=cfg.model.N,
                              crop_padding=1, flip=False)
    truth = []
    for i, arch in enumerate(archs):
        acc = train_standalone(cfg.space.name, arch, train, evald, sa_cfg, seed=seed)
        truth.append(acc)
        print(f"  {i + 1:2d}/{len(archs)} {acc:6.2f}%  {arch}", flush=True)

    print("[3/3] scoring the same architectures with the supernet's shared weights")
    scores = [evaluate_arch(trainer.model, evald, a, batch_size=512) for a in archs]
    tau = float(stats.kendalltau(scores, truth).statistic)
    rho = float(stats.spearmanr(scores, truth).statistic)
    print(f"\n{'supernet':>9} {'stand-alone':>11}  architecture")
    for s, g, a in sorted(zip(scores, truth, archs), key=lambda r: -r[0]):
        print(f"{s:8.2f}% {g:10.2f}%  {a}")
    summary = {"kendall_tau": tau, "spearman_rho": rho, "archs": archs, "supernet_acc": scores,
               "standalone_acc": truth, "seconds": time.time() - t0, "run_dir": str(run_dir)}
    (run_dir / "quickstart.json").write_text(json.dumps(summary, indent=1))
    print(f"\nKendall tau between supernet and stand-alone accuracy: {tau:.3f} (Spearman {rho:.3f}) "
          f"over {len(archs)} architectures, {summary['seconds']:.0f} s.")
    print("This is a DEMO scale (8x8 digits, tiny networks, few epochs); its tau is noisy. The real protocol\n"
          "(NB201 on CIFAR-10, 250 epochs, tau against the benchmark) is:\n"
          "  nshot train configs/nb201/spos.yaml data.root=PATH/TO/cifar  data.split_file=PATH/TO/cifar10_valid_split.json\n"
          "See README.md.")
    return summary
