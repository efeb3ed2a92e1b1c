"""Device-side normalisation and augmentation (random crop with zero padding, horizontal flip), batched."""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import torch
import torch.nn.functional as F


@lru_cache(maxsize=32)
def _stats(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    m = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    return m * 255.0, s * 255.0


def _check(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> tuple[tuple, tuple]:
    if x.dtype != torch.uint8 or x.dim() != 4:
        raise TypeError(f"expected a uint8 image batch (B, C, H, W), got {x.dtype} {tuple(x.shape)}")
    mean, std = tuple(map(float, mean)), tuple(map(float, std))
    if len(mean) != x.shape[1] or len(std) != x.shape[1]:
        raise ValueError(f"mean/std need {x.shape[1]} values (one per channel), got {mean} / {std}")
    return mean, std


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float32 ``(x / 255 - mean) / std``, on x's device. mean/std in [0, 1] units."""
    mean, std = _check(x, mean, std)
    m, s = _stats(mean, std, x.device)
    return (x.float() - m) / s


def augment_batch(x: torch.Tensor, mean: Sequence[float], std: Sequence[float], seed: int | None = None,
                  generator: torch.Generator | None = None, pad: int = 4, flip: bool = True) -> torch.Tensor:
    """Random crop with zero padding ``pad`` and random horizontal flip, then :func:`normalize`.

    x: uint8 (B, C, H, W) on any device. Each image is zero-padded by ``pad`` on every side and cropped back to
    H x W at its own offset (dy, dx), uniform in [0, 2 * pad]; with ``flip`` each image is mirrored left-right with
    probability 1/2. Everything is one gather on x's device. Randomness comes from ``generator`` (which must live
    on x.device), else from a fresh generator on x.device seeded with ``seed``, else from torch's global RNG.
    Deterministic given the seed (and device). Returns float32 (B, C, H, W).
    """
    mean, std = _check(x, mean, std)
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    if generator is None and seed is not None:
        generator = torch.Generator(device=x.device).manual_seed(seed)
    elif generator is not None and generator.device != x.device:
        raise ValueError(f"generator is on {generator.device} but the images are on {x.device}")
    b, c, h, w = x.shape
    dev = x.device
    dy = torch.randint(0, 2 * pad + 1, (b, 1), generator=generator, device=dev)
    dx = torch.randint(0, 2 * pad + 1, (b, 1), generator=generator, device=dev)
    rows = dy + torch.arange(h, device=dev)                      # (B, H) rows of the padded image
    cols = dx + torch.arange(w, device=dev)                      # (B, W) columns of the padded image
    if flip:
        mirror = torch.randint(0, 2, (b, 1), generator=generator, device=dev).bool()
        cols = torch.where(mirror, cols.flip(1), cols)
    padded = F.pad(x, (pad, pad, pad, pad)) if pad else x
    wp = w + 2 * pad
    flat = (rows[:, :, None] * wp + cols[:, None, :]).view(b, 1, h * w).expand(b, c, h * w)
    out = padded.reshape(b, c, -1).gather(2, flat).view(b, c, h, w)
    m, s = _stats(mean, std, dev)
    return (out.float() - m) / s
