"""An image split held in memory as tensors, and seeded epoch batching over it."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterator

import numpy as np
import torch


class DataError(ValueError):
    """Data missing, malformed or inconsistent; the message names the file or value and what was expected."""


@dataclass
class ImageData:
    """A whole split in memory: ``x`` uint8 (N, C, H, W), ``y`` int64 (N,).

    ``mean``/``std`` are per-channel statistics in [0, 1] units, meant for :func:`nshot.data.normalize`.
    """

    x: torch.Tensor
    y: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    name: str = ""

    def __post_init__(self) -> None:
        if self.x.dtype != torch.uint8 or self.x.dim() != 4:
            raise DataError(f"ImageData.x must be uint8 (N, C, H, W), got {self.x.dtype} {tuple(self.x.shape)}")
        if self.y.dtype != torch.int64 or self.y.shape != (self.x.shape[0],):
            raise DataError(f"ImageData.y must be int64 ({self.x.shape[0]},), got {self.y.dtype} {tuple(self.y.shape)}")
        self.mean, self.std = tuple(map(float, self.mean)), tuple(map(float, self.std))
        c = self.x.shape[1]
        if len(self.mean) != c or len(self.std) != c:
            raise DataError(f"ImageData mean/std need {c} values (one per channel), got {self.mean} / {self.std}")

    def __len__(self) -> int:
        return self.x.shape[0]

    def to(self, device) -> ImageData:
        """The same split with ``x`` and ``y`` on ``device``."""
        return replace(self, x=self.x.to(device), y=self.y.to(device))

    def subset(self, index) -> ImageData:
        """``index``: an int n (the first n images, like ``x[:n]``) or a sequence/tensor of indices."""
        if isinstance(index, (int, np.integer)):
            if index < 0:
                raise ValueError(f"subset size must be >= 0, got {index}")
            return replace(self, x=self.x[:index], y=self.y[:index])
        idx = torch.as_tensor(np.asarray(index) if not isinstance(index, torch.Tensor) else index)
        if idx.dtype != torch.bool:
            idx = idx.long()
            if idx.numel() and (int(idx.min()) < -len(self) or int(idx.max()) >= len(self)):
                raise DataError(f"subset indices must lie in [0, {len(self)}), got range "
                                f"[{int(idx.min())}, {int(idx.max())}]")
        idx = idx.to(self.x.device)
        return replace(self, x=self.x[idx], y=self.y[idx])


def num_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    """Number of batches :func:`epoch_batches` yields for one full epoch."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be > 0, got {batch_size}")
    return n // batch_size if drop_last else -(-n // batch_size)


def _epoch_seed(seed: int, epoch: int) -> int:
    a, b = np.random.SeedSequence([seed, epoch]).generate_state(2, np.uint32)
    return ((int(a) << 32) | int(b)) & (2**63 - 1)


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, shuffle: bool = True,
                  drop_last: bool = False, start: int = 0) -> Iterator[torch.Tensor]:
    """Index tensors (int64, CPU) for one epoch over ``n`` items.

    The order is a pure function of ``(seed, epoch)`` (a ``torch.Generator`` seeded from both), so a run resumed
    at batch ``start`` of an epoch sees exactly the batches it would have seen: ``start`` skips the first
    ``start`` batches. ``shuffle=False`` gives ``0..n-1`` in order; ``drop_last`` drops a final short batch.
    """
    if n < 0 or seed < 0 or epoch < 0:
        raise ValueError(f"n, seed and epoch must be >= 0, got n={n}, seed={seed}, epoch={epoch}")
    total = num_batches(n, batch_size, drop_last)
    if not 0 <= start <= total:
        raise ValueError(f"start must be in [0, {total}] (batches in this epoch), got {start}")
    if shuffle:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(_epoch_seed(seed, epoch)))
    else:
        order = torch.arange(n)
    for i in range(start, total):
        yield order[i * batch_size:(i + 1) * batch_size]

