"""The offline quickstart data: scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes)."""
from __future__ import annotations

import numpy as np
import torch


def read_digits() -> tuple[torch.Tensor, torch.Tensor, tuple[float], tuple[float]]:
    """All 1,797 images as uint8 (N, 1, 8, 8) and labels int64 (N,), plus mean/std in [0, 1] units.

    scikit-learn stores grey levels 0..16; they become ``round(v * 255 / 16)`` in 0..255. mean and std are
    computed over all 1,797 images after that conversion (so they do not depend on the split seed).
    """
    from sklearn.datasets import load_digits  # imported here: scikit-learn is slow to import

    d = load_digits()
    x = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    f = x.astype(np.float64) / 255.0
    return (torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(d.target.astype(np.int64)),
            (float(f.mean()),), (float(f.std()),))
