"""Accuracy of one architecture on a held-out split."""
from __future__ import annotations

from typing import Optional

import torch

from ..data import ImageData, normalize


@torch.no_grad()
def evaluate_arch(net: torch.nn.Module, data: ImageData, arch: Optional[str] = None, batch_size: int = 256,
                  device: Optional[torch.device] = None) -> float:
    """Top-1 accuracy (%) of ``net`` running ``arch`` on ``data``, in eval mode.

    With supernet BN (no running statistics) every batch is normalised by its own statistics, as in the
    NB201 search protocol; a network with running statistics uses them.
    """
    device = device or next(net.parameters()).device
    net.eval()
    correct = torch.zeros((), dtype=torch.long, device=device)
    for i in range(0, len(data), batch_size):
        x = normalize(data.x[i:i + batch_size].to(device), data.mean, data.std)
        y = data.y[i:i + batch_size].to(device)
        logits = net(x, arch) if arch is not None else net(x)
        correct += (logits.argmax(1) == y).sum()
    return 100.0 * int(correct) / max(len(data), 1)
