"""Device-side normalisation and augmentation, batched: random crop with zero padding + horizontal flip (CIFAR),
random-resized-crop + horizontal flip (ImageNet-style), centre crop.
"""
from __future__ import annotations

import math
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


def _generator(x: torch.Tensor, seed: int | None, generator: torch.Generator | None) -> torch.Generator | None:
    if generator is None and seed is not None:
        return torch.Generator(device=x.device).manual_seed(seed)
    if generator is not None and generator.device != x.device:
        raise ValueError(f"generator is on {generator.device} but the images are on {x.device}")
    return generator


def _size2(size: int | Sequence[int]) -> tuple[int, int]:
    oh, ow = (size, size) if isinstance(size, int) else tuple(size)
    if oh < 1 or ow < 1:
        raise ValueError(f"output size must be >= 1, got {size}")
    return int(oh), int(ow)


def center_crop(x: torch.Tensor, size: int | Sequence[int]) -> torch.Tensor:
    """The central ``size`` crop of every image of (B, C, H, W), a view; offsets ``(H - h) // 2``, ``(W - w) // 2``."""
    oh, ow = _size2(size)
    h, w = x.shape[-2:]
    if oh > h or ow > w:
        raise ValueError(f"crop {oh}x{ow} is larger than the images ({h}x{w})")
    top, left = (h - oh) // 2, (w - ow) // 2
    return x[..., top:top + oh, left:left + ow]


def random_crop_boxes(n: int, height: int, width: int, scale: Sequence[float] = (0.08, 1.0),
                      ratio: Sequence[float] = (3 / 4, 4 / 3), generator: torch.Generator | None = None,
                      device=None, attempts: int = 10) -> torch.Tensor:
    """Random-resized-crop boxes: int64 (n, 4) rows ``[top, left, h, w]``, each inside a height x width image.

    Per image, ``attempts`` candidates are drawn at once: area fraction uniform in ``scale``, aspect ratio w/h
    log-uniform in ``ratio``, ``w = round(sqrt(area * r))``, ``h = round(sqrt(area / r))``; the first candidate that
    fits (1 <= h <= height, 1 <= w <= width) is used, its top/left uniform over the positions that keep it inside.
    If none fits, the box is the largest centred box whose ratio is clamped into ``ratio``. No host sync.
    """
    s0, s1 = map(float, scale)
    r0, r1 = map(float, ratio)
    if not 0 < s0 <= s1 or not 0 < r0 <= r1:
        raise ValueError(f"need 0 < scale[0] <= scale[1] and 0 < ratio[0] <= ratio[1], got {scale} / {ratio}")
    if height < 1 or width < 1 or attempts < 1:
        raise ValueError(f"height, width and attempts must be >= 1, got {height}, {width}, {attempts}")
    dev = torch.device(device) if device is not None else (generator.device if generator is not None else None)
    f64 = torch.float64
    area = height * width * (s0 + (s1 - s0) * torch.rand(n, attempts, generator=generator, device=dev, dtype=f64))
    logr = math.log(r0) + (math.log(r1) - math.log(r0)) * torch.rand(n, attempts, generator=generator, device=dev,
                                                                      dtype=f64)
    r = torch.exp(logr)
    w = torch.round(torch.sqrt(area * r))
    h = torch.round(torch.sqrt(area / r))
    fits = (w >= 1) & (w <= width) & (h >= 1) & (h <= height)
    first = fits.to(torch.uint8).argmax(1, keepdim=True)      # index of the first fitting candidate
    found = fits.any(1)
    # fallback: the whole image, its ratio clamped into [r0, r1]
    in_ratio = width / height
    if in_ratio < r0:
        fw, fh = width, int(round(width / r0))
    elif in_ratio > r1:
        fw, fh = int(round(height * r1)), height
    else:
        fw, fh = width, height
    bh = torch.where(found, h.gather(1, first).squeeze(1), torch.full_like(found, fh, dtype=f64))
    bw = torch.where(found, w.gather(1, first).squeeze(1), torch.full_like(found, fw, dtype=f64))
    u = torch.rand(n, 2, generator=generator, device=dev, dtype=f64)
    top = torch.where(found, torch.floor(u[:, 0] * (height - bh + 1)).clamp(max=height - bh),
                      torch.floor((height - bh) / 2))
    left = torch.where(found, torch.floor(u[:, 1] * (width - bw + 1)).clamp(max=width - bw),
                       torch.floor((width - bw) / 2))
    return torch.stack([top, left, bh, bw], 1).long()


def _sample_points(start: torch.Tensor, length: torch.Tensor, out: int, limit: int
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # Pixel-centre mapping of `out` output pixels onto [start, start + length) (like bilinear resizing with
    # align_corners=False), clamped to the box so nothing outside it is read.
    start, length = start.float()[:, None], length.float()[:, None]
    i = torch.arange(out, device=start.device, dtype=torch.float32)[None]
    pos = start + (i + 0.5) * (length / out) - 0.5
    pos = torch.minimum(torch.maximum(pos, start), start + length - 1)
    lo = pos.floor()
    frac = pos - lo
    lo = lo.long().clamp(0, limit - 1)
    hi = torch.minimum(lo + 1, (start + length - 1).long().clamp(max=limit - 1))
    return lo, hi, frac


def resized_crop(x: torch.Tensor, boxes: torch.Tensor, size: int | Sequence[int],
                 flip: torch.Tensor | None = None) -> torch.Tensor:
    """Crop each image of uint8 (B, C, H, W) to its box and resize it bilinearly to ``size``; float32, 0..255 units.

    boxes: (B, 4) ``[top, left, h, w]`` in pixels, inside the image. Output pixel centres are mapped onto the box
    (align_corners=False), sampling points are clamped to the box, no antialiasing. flip: optional bool (B,),
    True mirrors that image left-right. A box that is the whole image with ``size == (H, W)`` returns the image
    exactly.
    """
    if x.dtype != torch.uint8 or x.dim() != 4:
        raise TypeError(f"expected a uint8 image batch (B, C, H, W), got {x.dtype} {tuple(x.shape)}")
    b, c, h, w = x.shape
    boxes = torch.as_tensor(boxes, device=x.device)
    if boxes.shape != (b, 4):
        raise ValueError(f"boxes must have shape ({b}, 4), got {tuple(boxes.shape)}")
    oh, ow = _size2(size)
    y0, y1, fy = _sample_points(boxes[:, 0], boxes[:, 2], oh, h)           # (B, oh)
    x0, x1, fx = _sample_points(boxes[:, 1], boxes[:, 3], ow, w)           # (B, ow)
    if flip is not None:
        mirror = torch.as_tensor(flip, device=x.device).bool().view(b, 1)
        x0, x1, fx = (torch.where(mirror, t.flip(1), t) for t in (x0, x1, fx))
    rows_lo = x.gather(2, y0.view(b, 1, oh, 1).expand(b, c, oh, w)).float()
    rows_hi = x.gather(2, y1.view(b, 1, oh, 1).expand(b, c, oh, w)).float()
    rows = torch.lerp(rows_lo, rows_hi, fy.view(b, 1, oh, 1))
    del rows_lo, rows_hi
    lo = rows.gather(3, x0.view(b, 1, 1, ow).expand(b, c, oh, ow))
    hi = rows.gather(3, x1.view(b, 1, 1, ow).expand(b, c, oh, ow))
    return torch.lerp(lo, hi, fx.view(b, 1, 1, ow))


def random_resized_crop(x: torch.Tensor, mean: Sequence[float], std: Sequence[float], size: int | Sequence[int],
                        seed: int | None = None, generator: torch.Generator | None = None,
                        scale: Sequence[float] = (0.08, 1.0), ratio: Sequence[float] = (3 / 4, 4 / 3),
                        flip: bool = True) -> torch.Tensor:
    """ImageNet-style training augmentation on the device, then :func:`normalize`: float32 (B, C, size, size).

    Each image gets its own box from :func:`random_crop_boxes` (area fraction in ``scale``, aspect ratio in
    ``ratio``), is resized bilinearly to ``size`` by :func:`resized_crop`, and with ``flip`` mirrored left-right
    with probability 1/2. Randomness as in :func:`augment_batch` (``generator`` on x's device, else a fresh one
    seeded with ``seed``, else torch's global RNG); draws: candidates, offsets, then flips. Deterministic for a
    seed on a device. Does not change :func:`augment_batch`.
    """
    mean, std = _check(x, mean, std)
    generator = _generator(x, seed, generator)
    b, _, h, w = x.shape
    boxes = random_crop_boxes(b, h, w, scale, ratio, generator=generator, device=x.device)
    mirror = torch.randint(0, 2, (b,), generator=generator, device=x.device).bool() if flip else None
    out = resized_crop(x, boxes, size, mirror)
    m, s = _stats(mean, std, x.device)
    return (out - m) / s


def train_input(x: torch.Tensor, mean: Sequence[float], std: Sequence[float], seed: int | None, augment: bool = True,
                pad: int = 4, flip: bool = True, size: int | None = None) -> torch.Tensor:
    """The network input for a uint8 training batch, as every training loop makes it.

    Images stored at ``size`` (or ``size`` None: CIFAR-style data): :func:`augment_batch` (pad-crop + flip) when
    ``augment``, else :func:`normalize`. Images stored larger than ``size`` (image folders keep a margin):
    :func:`random_resized_crop` to ``size`` when ``augment``, else the centre crop.
    """
    if size is None or tuple(x.shape[-2:]) == (size, size):
        return augment_batch(x, mean, std, seed=seed, pad=pad, flip=flip) if augment else normalize(x, mean, std)
    if augment:
        return random_resized_crop(x, mean, std, size, seed=seed, flip=flip)
    return normalize(center_crop(x, size), mean, std)


def eval_input(x: torch.Tensor, mean: Sequence[float], std: Sequence[float], size: int | None = None) -> torch.Tensor:
    """The network input for a uint8 batch at evaluation (BN re-calibration included): the centre ``size`` crop
    when the images are stored larger, then :func:`normalize`."""
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        x = center_crop(x, size)
    return normalize(x, mean, std)
