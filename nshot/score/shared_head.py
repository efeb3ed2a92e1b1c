"""The ``shared-linear`` probe (Pi-NAS's evaluation): ONE linear classifier trained on the frozen supernet's
features while paths are drawn uniformly at random, then used to score every path.

Training (:func:`train_shared_head`): the labelled images are the probe bank of the other probes (a seeded
sample of ``images`` training images, :func:`nshot.score.probe.bank_indices`), centre-cropped and normalised,
no augmentation. Each step takes the next ``batch_size`` bank images of a seeded permutation per epoch, draws
one path uniformly from the space (stream :data:`SHARED_HEAD`, a function of seed and step), computes its
pooled features without gradient with batch-statistics BN (the scoring protocol's default), and takes one
SGD step (momentum 0.9, no weight decay, learning rate cosine from ``lr`` to 0 over all steps) of the
cross-entropy of a zero-initialised ``Linear(feature_dim, classes)``. Everything is a function of the seed,
so the head is reproducible; it is written to ``RUN/probes/<name>.pt`` (tensors only, read back with
``weights_only=True``) and re-used by every later ``rank`` / ``search`` with the same settings.

Scoring a path then costs the forward passes of the held-out images only: no per-path bank features and no
per-path fit, unlike ``knn`` / ``linear`` (:mod:`nshot.score.probe`).
"""
from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..data import ImageData, epoch_batches, eval_input
from ..spaces import SearchSpace
from ..run import RunDir, atomic_write_bytes
from .bn import batch_stats_mode
from .probe import bank_indices

SHARED_HEAD = 11   # random stream of the paths the head is trained under (nshot.train.rng numbering)


@dataclass(frozen=True)
class SharedHeadSpec:
    """What the head is: trained on ``images`` bank images for ``epochs`` epochs of ``batch_size`` with peak
    learning rate ``lr``, for the supernet of checkpoint ``step`` and the run's ``seed``."""
    images: int
    epochs: int = 10
    lr: float = 1.0
    batch_size: int = 256
    seed: int = 0
    step: int = 0

    def validate(self) -> "SharedHeadSpec":
        for name in ("images", "epochs", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"shared-linear probe: {name} must be an integer >= 1, got {v!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"shared-linear probe: lr must be a positive number, got {self.lr!r}")
        return self

    @property
    def tag(self) -> str:
        """The probe's cache key in scores.csv (the checkpoint step and seed are their own columns)."""
        return f"shared-linear:{self.images}:e{self.epochs}:lr{self.lr:g}:b{self.batch_size}"

    @property
    def file_name(self) -> str:
        return f"shared-linear-s{self.step}-seed{self.seed}-n{self.images}-e{self.epochs}-lr{self.lr:g}-b{self.batch_size}.pt"


def train_shared_head(model: torch.nn.Module, space: SearchSpace, train: ImageData, spec: SharedHeadSpec,
                      device: torch.device, size: Optional[int] = None) -> torch.nn.Linear:
    """Train the shared linear head (module docstring); the supernet is left exactly as it was."""
    spec.validate()
    idx = bank_indices(len(train), spec.images, spec.seed)
    x = eval_input(train.x[idx].to(device), train.mean, train.std, size or train.x.shape[-1])
    y = train.y[idx].to(device)
    head = torch.nn.Linear(int(model.feature_dim), int(train.num_classes)).to(device)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    opt = torch.optim.SGD(head.parameters(), lr=spec.lr, momentum=0.9)
    per_epoch = list(epoch_batches(len(idx), spec.batch_size, spec.seed, 0, drop_last=False))
    total = spec.epochs * len(per_epoch)
    was_training = model.training
    model.eval()
    t = 0
    with batch_stats_mode(model):
        for epoch in range(spec.epochs):
            for b in epoch_batches(len(idx), spec.batch_size, spec.seed, epoch, drop_last=False):
                b = b.to(device)
                arch = space.sample(np.random.default_rng([spec.seed, SHARED_HEAD, t]))
                with torch.no_grad():
                    feats = model.features(x[b], arch).float()
                for group in opt.param_groups:
                    group["lr"] = 0.5 * spec.lr * (1.0 + math.cos(math.pi * t / total))
                loss = F.cross_entropy(head(feats), y[b])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                t += 1
    model.train(was_training)
    return head.eval().requires_grad_(False)


def shared_head(run_dir: Optional[Path], model: torch.nn.Module, space: SearchSpace, train: ImageData,
                spec: SharedHeadSpec, device: torch.device, size: Optional[int] = None) -> tuple[torch.nn.Linear, dict]:
    """The run's cached head for ``spec`` (``RUN/probes/``), trained and written first if absent; also a
    record: file, whether it was trained now, the seconds it took."""
    spec.validate()
    path = RunDir(run_dir).probes / spec.file_name if run_dir is not None else None
    head = torch.nn.Linear(int(model.feature_dim), int(train.num_classes))
    if path is not None and path.is_file():
        state = torch.load(io.BytesIO(path.read_bytes()), map_location="cpu", weights_only=True)
        head.load_state_dict(state)
        return head.to(device).eval().requires_grad_(False), {"file": str(path), "trained_now": False}
    t0 = time.perf_counter()
    head = train_shared_head(model, space, train, spec, device, size)
    seconds = time.perf_counter() - t0
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in head.state_dict().items()}, buf)
        atomic_write_bytes(path, buf.getvalue())
    return head, {"file": str(path) if path else None, "trained_now": True, "seconds": seconds}
