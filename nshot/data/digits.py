"""The offline quickstart data: scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def read_digits() -> tuple[torch.Tensor, torch.Tensor, tuple[float], tuple[float]]:
    """All 1,797 images as uint8 (N, 1, 8, 8) and labels int64 (N,), plus mean/std in [0, 1] units.

    scikit-learn stores grey levels 0..16; they become ``round(v * 255 / 16)`` in 0..255. mean and std are
    computed over all 1,797 images after that conversion (so they do not depend on the split seed).
    """
    images, target = _load_digits()
    x = np.rint(images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    f = x.astype(np.float64) / 255.0
    return (torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(target.astype(np.int64)),
            (float(f.mean()),), (float(f.std()),))


def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 8, 8) float, target (N,) int) as ``sklearn.datasets.load_digits`` gives them.

    Read straight from scikit-learn's bundled ``datasets/data/digits.csv.gz`` (importing scikit-learn takes
    seconds, a cost every `nshot` process on digits would pay); ``load_digits`` itself if the file is not there.
    """
    import gzip
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            with gzip.open(path, "rt") as f:
                data = np.loadtxt(f, delimiter=",")
            return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int)
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images, d.target
