"""The slices of a step's global batch an objective runs on (micro-batches, a rank's share), and per-path losses
averaged over them."""
from __future__ import annotations

from typing import Optional, Sequence

import torch


def resolve_parts(parts: Optional[Sequence[slice]], n: Optional[int], batch: int) -> tuple[list[slice], int]:
    """The non-empty slices to run (default: the whole batch) and the global batch size ``n`` (default: batch)."""
    parts = [p for p in (parts or [slice(0, batch)]) if p.stop > p.start]
    return parts, (n if n is not None else batch)


def mean_over_parts(means: list[torch.Tensor], parts: Sequence[slice]) -> torch.Tensor:
    """Per-path mean loss over all slices (the slice means weighted by size; one slice: returned as it is)."""
    if len(means) == 1:
        return means[0]
    sizes = [p.stop - p.start for p in parts]
    return sum(m.double() * s for m, s in zip(means, sizes)).div(sum(sizes)).float()
