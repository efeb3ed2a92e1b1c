"""Cutout (DeVries & Taylor, 2017): one square of zeros per image, batched on the device."""
from __future__ import annotations

import torch


def cutout(x: torch.Tensor, size: int, seed: int) -> torch.Tensor:
    """Zero a ``size`` x ``size`` square (clipped at the border) centred at a uniformly drawn pixel of each image
    of the float batch ``x`` (B, C, H, W), as DARTS's evaluation pipeline does after normalisation. The centres
    are drawn on the CPU from ``seed`` (the same on every device); ``size`` 0 returns ``x``."""
    if size <= 0:
        return x
    b, _, h, w = x.shape
    g = torch.Generator().manual_seed(seed)
    cy = torch.randint(0, h, (b, 1), generator=g).to(x.device)
    cx = torch.randint(0, w, (b, 1), generator=g).to(x.device)
    rows = torch.arange(h, device=x.device).view(1, h)
    cols = torch.arange(w, device=x.device).view(1, w)
    half = size // 2
    in_rows = (rows >= cy - half) & (rows < cy - half + size)          # (B, H)
    in_cols = (cols >= cx - half) & (cols < cx - half + size)          # (B, W)
    hole = in_rows.unsqueeze(2) & in_cols.unsqueeze(1)                 # (B, H, W)
    return x * (~hole).unsqueeze(1).to(x.dtype)
