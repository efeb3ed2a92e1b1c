"""Device-side contrastive views (MoCo-v2 style) of a uint8 image batch, in torch ops only.

One call makes one *view* of every image: random resized crop, horizontal flip, colour jitter (with
probability ``p_jitter``), grayscale (``p_gray``), Gaussian blur (``p_blur``), then normalisation. Every random
draw comes from one seeded ``torch.Generator`` on the batch's device, so a view is a pure function of
(images, seed). Used by Pi-NAS (:mod:`nshot.train.pinas`), which takes four views per image.

The crop is :func:`nshot.data.augment.random_crop_boxes` / :func:`~nshot.data.augment.resized_crop` (the
ImageNet-style training crop). Differences from the PIL pipeline of MoCo-v2, on purpose: the jitter ops run in
a fixed order (brightness, contrast, saturation, hue) instead of a random one; hue is rotated in YIQ space (a
linear approximation of an HSV hue shift).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from .augment import _check, _stats, random_crop_boxes, resized_crop

# ITU-R 601 luma, the weights torchvision's rgb_to_grayscale uses
_LUMA = (0.299, 0.587, 0.114)
_RGB_TO_YIQ = ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))


@dataclass(frozen=True)
class ViewConfig:
    """Parameters of one contrastive view (defaults: Pi-NAS / MoCo-v2, crop scale as in Pi-NAS)."""

    size: Optional[int] = None                  # output side; None = input side
    scale: tuple[float, float] = (0.2, 1.0)     # crop area as a fraction of the image
    ratio: tuple[float, float] = (3 / 4, 4 / 3)  # crop aspect ratio (w / h)
    flip: float = 0.5
    p_jitter: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    p_gray: float = 0.2
    p_blur: float = 0.5
    sigma: tuple[float, float] = (0.1, 2.0)     # blur sigma, in pixels of a 224-pixel image (scaled to size)

    def validate(self) -> "ViewConfig":
        lo, hi = self.scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"crop scale must satisfy 0 < min <= max <= 1, got {self.scale}")
        if not 0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"crop ratio must satisfy 0 < min <= max, got {self.ratio}")
        for name in ("flip", "p_jitter", "p_gray", "p_blur"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} is a probability in [0, 1], got {getattr(self, name)}")
        if not 0 <= self.hue <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5], got {self.hue}")
        if min(self.brightness, self.contrast, self.saturation) < 0:
            raise ValueError("brightness, contrast and saturation must be >= 0")
        if self.size is not None and self.size < 1:
            raise ValueError(f"size must be >= 1, got {self.size}")
        return self


def _uniform(b: int, lo: float, hi: float, g: torch.Generator, dev: torch.device) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(b, generator=g, device=dev)


def _gray(x: torch.Tensor) -> torch.Tensor:
    wts = torch.tensor(_LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * wts).sum(1, keepdim=True)


def color_jitter(x: torch.Tensor, apply: torch.Tensor, cfg: ViewConfig, g: torch.Generator) -> torch.Tensor:
    """Brightness, contrast, saturation and hue jitter on RGB ``x`` in [0, 1] for the images where ``apply``."""
    b, dev = x.shape[0], x.device
    one = torch.ones(b, device=dev)

    def factor(strength: float) -> torch.Tensor:
        f = _uniform(b, max(0.0, 1 - strength), 1 + strength, g, dev)
        return torch.where(apply, f, one).view(b, 1, 1, 1)

    x = (x * factor(cfg.brightness)).clamp(0, 1)
    c = factor(cfg.contrast)
    mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - mean) * c + mean).clamp(0, 1)
    s = factor(cfg.saturation)
    gray = _gray(x)
    x = ((x - gray) * s + gray).clamp(0, 1)
    angle = _uniform(b, -cfg.hue, cfg.hue, g, dev) * (2 * math.pi)
    angle = torch.where(apply, angle, torch.zeros_like(angle))
    m = torch.tensor(_RGB_TO_YIQ, device=dev, dtype=x.dtype)
    yiq = torch.einsum("ij,bjhw->bihw", m, x)
    cos, sin = torch.cos(angle).view(b, 1, 1), torch.sin(angle).view(b, 1, 1)
    i, q = yiq[:, 1], yiq[:, 2]
    yiq = torch.stack([yiq[:, 0], cos * i - sin * q, sin * i + cos * q], 1)
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(m), yiq).clamp(0, 1)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, max_sigma: float | None = None) -> torch.Tensor:
    """Separable Gaussian blur of each image with its own ``sigma`` (pixels; <= 0 leaves it unchanged),
    kernel radius ceil(2 max_sigma), reflect padding. Pass ``max_sigma`` (a bound on ``sigma``) to avoid reading
    ``sigma.max()`` from the device."""
    b, c, h, w = x.shape
    if max_sigma is None:
        max_sigma = float(sigma.max()) if sigma.numel() else 0.0
    radius = min(int(math.ceil(2 * max_sigma)), h - 1, w - 1)
    if radius < 1:
        return x
    offs = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    safe = sigma.clamp_min(1e-6).view(b, 1)
    k = torch.exp(-0.5 * (offs.view(1, -1) / safe) ** 2)
    k = k / k.sum(1, keepdim=True)
    ident = (offs == 0).to(x.dtype).view(1, -1).expand(b, -1)
    k = torch.where((sigma > 0).view(b, 1), k, ident)
    kk = k.repeat_interleave(c, 0)                               # (B*C, K): one kernel per image channel
    y = x.reshape(1, b * c, h, w)
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="reflect"), kk.view(b * c, 1, 1, -1), groups=b * c)
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="reflect"), kk.view(b * c, 1, -1, 1), groups=b * c)
    return y.view(b, c, h, w)


def contrastive_view(x: torch.Tensor, mean: Sequence[float], std: Sequence[float], seed: int,
                     cfg: ViewConfig = ViewConfig()) -> torch.Tensor:
    """One random view of every image of uint8 ``x`` (B, C, H, W), normalised float32 (B, C, size, size).

    Colour jitter and grayscale need 3 channels and are skipped for other channel counts.
    """
    mean, std = _check(x, mean, std)
    cfg.validate()
    b, c, h, w = x.shape
    dev = x.device
    g = torch.Generator(device=dev).manual_seed(int(seed))
    size = cfg.size or h
    boxes = random_crop_boxes(b, h, w, cfg.scale, cfg.ratio, generator=g, device=dev)
    mirror = torch.rand(b, generator=g, device=dev) < cfg.flip
    out = resized_crop(x, boxes, size, mirror) / 255.0
    jitter = torch.rand(b, generator=g, device=dev) < cfg.p_jitter
    gray = torch.rand(b, generator=g, device=dev) < cfg.p_gray
    blur = torch.rand(b, generator=g, device=dev) < cfg.p_blur
    if c == 3:
        out = color_jitter(out, jitter, cfg, g)
        out = torch.where(gray.view(b, 1, 1, 1), _gray(out).expand(-1, 3, -1, -1), out)
    sigma = _uniform(b, cfg.sigma[0], cfg.sigma[1], g, dev) * (size / 224.0)
    out = gaussian_blur(out, torch.where(blur, sigma, torch.zeros_like(sigma)), max_sigma=cfg.sigma[1] * size / 224.0)
    m, s = _stats(mean, std, dev)
    return (out * 255.0 - m) / s
