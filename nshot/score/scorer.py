"""Score many architectures with a trained supernet on a held-out split, with a cache in the run directory.

``scores.csv`` holds one row per (architecture, protocol); a scorer re-uses rows whose protocol matches, so
ranking and search never evaluate an architecture twice, and an interrupted scoring resumes from the cache.
"""
from __future__ import annotations

import csv
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import torch

from ..data import ImageData, epoch_batches, normalize
from ..train.progress import Progress
from .bn import batch_stats_mode, recalibrate, running_stats_mode

BN_MODES = ("batch", "recal")
FLUSH_SECONDS = 2.0   # scores are appended to the cache at least this often (and every flush_every archs)
_FIELDS = ["arch", "score", "bn_mode", "recal_batches", "eval_images", "step", "seed"]


@dataclass(frozen=True)
class ScoreProtocol:
    """How a score is measured. ``bn_mode``: ``batch`` (batch statistics) or ``recal`` (running statistics
    re-estimated per architecture on ``recal_batches`` training batches of ``recal_batch_size``)."""
    bn_mode: str = "batch"
    recal_batches: int = 0
    recal_batch_size: int = 256
    eval_batch_size: int = 256
    eval_images: int = 0          # how many held-out images were used (filled in by the scorer)
    step: int = 0                 # checkpoint step of the supernet
    seed: int = 0

    def key(self) -> tuple:
        return (self.bn_mode, int(self.recal_batches), int(self.eval_images), int(self.step), int(self.seed))


class ScoreCache:
    """Append-only CSV of scores; rows of other protocols are kept but ignored."""

    def __init__(self, path: Optional[Union[str, Path]]):
        self.path = Path(path) if path is not None else None

    def load(self, protocol: ScoreProtocol) -> dict[str, float]:
        if self.path is None or not self.path.exists():
            return {}
        out: dict[str, float] = {}
        with open(self.path, newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames != _FIELDS:
                raise ValueError(f"{self.path}: unexpected columns {reader.fieldnames}, expected {_FIELDS}")
            for line, row in enumerate(reader, start=2):
                try:
                    key = (row["bn_mode"], int(row["recal_batches"]), int(row["eval_images"]), int(row["step"]),
                           int(row["seed"]))
                    score = float(row["score"])
                except (TypeError, ValueError):
                    if line > 2 and f.read() == "":  # a torn last line from a crash: ignore it
                        break
                    raise ValueError(f"{self.path}, line {line}: malformed row {row}") from None
                if key == protocol.key():
                    out[row["arch"]] = score
        return out

    def append(self, protocol: ScoreProtocol, rows: Sequence[tuple[str, float]]) -> None:
        if self.path is None or not rows:
            return
        new = not self.path.exists() or self.path.stat().st_size == 0
        with open(self.path, "a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(_FIELDS)
            for arch, score in rows:
                w.writerow([arch, repr(float(score)), protocol.bn_mode, protocol.recal_batches,
                            protocol.eval_images, protocol.step, protocol.seed])
            f.flush()
            os.fsync(f.fileno())


class Scorer:
    """Top-1 accuracy (%) of architectures on ``eval_data`` with the supernet's shared weights.

    Deterministic for a given protocol: evaluation batches are in order, re-calibration batches are drawn
    from ``train_data`` with ``protocol.seed`` (the same batches for every architecture).
    """

    def __init__(self, model: torch.nn.Module, eval_data: ImageData, protocol: ScoreProtocol = ScoreProtocol(),
                 train_data: Optional[ImageData] = None, cache_path: Optional[Union[str, Path]] = None,
                 device: Optional[torch.device] = None, progress: str = "auto"):
        if protocol.bn_mode not in BN_MODES:
            raise ValueError(f"bn mode {protocol.bn_mode!r} is invalid: expected one of {', '.join(BN_MODES)}")
        if protocol.bn_mode == "recal" and (train_data is None or protocol.recal_batches < 1):
            raise ValueError("bn mode 'recal' needs training data and recal_batches >= 1")
        self.device = device or next(model.parameters()).device
        self.model = model.to(self.device).eval()
        self.protocol = ScoreProtocol(**{**asdict(protocol), "eval_images": len(eval_data)})
        self.progress = progress
        x = normalize(eval_data.x.to(self.device), eval_data.mean, eval_data.std)
        self._eval = list(zip(x.split(protocol.eval_batch_size), eval_data.y.to(self.device).split(protocol.eval_batch_size)))
        self._recal: list[torch.Tensor] = []
        if protocol.bn_mode == "recal":
            assert train_data is not None
            idx = list(epoch_batches(len(train_data), protocol.recal_batch_size, protocol.seed, 0, drop_last=True))
            if len(idx) < protocol.recal_batches:
                raise ValueError(f"recal_batches={protocol.recal_batches} batches of {protocol.recal_batch_size} "
                                 f"need {protocol.recal_batches * protocol.recal_batch_size} training images, "
                                 f"have {len(train_data)}")
            self._recal = [normalize(train_data.x[i].to(self.device), train_data.mean, train_data.std)
                           for i in idx[:protocol.recal_batches]]
        self.cache = ScoreCache(cache_path)
        self.scores: dict[str, float] = self.cache.load(self.protocol)
        self.forward_passes = 0   # architectures actually evaluated by this scorer

    @torch.no_grad()
    def _evaluate(self, arch: str) -> float:
        self.forward_passes += 1
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        total = 0
        for x, y in self._eval:
            correct += (self.model(x, arch).argmax(1) == y).sum()
            total += len(y)
        return 100.0 * int(correct) / max(total, 1)

    def score(self, arch: str) -> float:
        """Score of one architecture (cached)."""
        return self.score_many([arch])[0]

    def score_many(self, archs: Iterable[str], flush_every: int = 50) -> list[float]:
        """Scores of ``archs`` in order; only architectures not in the cache are evaluated.

        New scores reach ``scores.csv`` every ``flush_every`` architectures or :data:`FLUSH_SECONDS`, whichever
        comes first, so a killed scoring loses at most that much work.
        """
        archs = list(archs)
        todo = list(dict.fromkeys(a for a in archs if a not in self.scores))
        if todo:
            bar = Progress(len(todo), mode=self.progress if len(todo) > 1 else "none", desc="score",
                           log_every=max(1, len(todo) // 10))
            pending: list[tuple[str, float]] = []
            self._last_flush = time.monotonic()
            self.model.eval()
            try:
                if self.protocol.bn_mode == "recal":
                    with running_stats_mode(self.model):
                        for arch in todo:
                            recalibrate(self.model, self._recal, arch)
                            self.model.eval()
                            pending.append((arch, self._evaluate(arch)))
                            pending = self._flush(pending, flush_every, bar)
                else:
                    with batch_stats_mode(self.model):   # even a supernet that tracks running statistics
                        for arch in todo:
                            pending.append((arch, self._evaluate(arch)))
                            pending = self._flush(pending, flush_every, bar)
            finally:
                self._flush(pending, 1, bar)
                bar.close()
        return [self.scores[a] for a in archs]

    def _flush(self, pending: list[tuple[str, float]], every: int, bar: Progress) -> list[tuple[str, float]]:
        if pending and (len(pending) >= every or time.monotonic() - self._last_flush >= FLUSH_SECONDS):
            self._last_flush = time.monotonic()
            for arch, s in pending:
                self.scores[arch] = s
            self.cache.append(self.protocol, pending)
            bar.update(len(pending))
            return []
        return pending
