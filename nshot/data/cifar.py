"""CIFAR-10 / CIFAR-100 in the official "python version" layout (pickled batches)."""
from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .images import DataError


@dataclass(frozen=True)
class CifarSpec:
    """Where a CIFAR variant lives under ROOT, how its batches are keyed, and its official archive."""

    name: str
    folder: str                     # ROOT/<folder>/
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_key: str                  # b'labels' (CIFAR-10) or b'fine_labels' (CIFAR-100)
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    url: str
    md5: str

    @property
    def layout(self) -> str:
        files = ("data_batch_1..5" if len(self.train_files) == 5 else ", ".join(self.train_files))
        return f"ROOT/{self.folder}/{files}, {', '.join(self.test_files)}"

    @property
    def archive(self) -> str:
        return self.url.rsplit("/", 1)[-1]


SPECS = {
    "cifar10": CifarSpec("cifar10", "cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)),
                         ("test_batch",), "labels", 10,
                         (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616),
                         "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                         "c58f30108f718f92721af3b95e74349a"),
    "cifar100": CifarSpec("cifar100", "cifar-100-python", ("train",), ("test",), "fine_labels", 100,
                          (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762),
                          "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                          "eb9058c3a382ffc7106e4002c42a8d85"),
}

# Globals a CIFAR pickle may reference (numpy arrays written by Python 2 or 3, numpy 1 or 2); nothing else is
# resolved, so a tampered file cannot run code while being read.
_ALLOWED = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        if module.startswith("numpy.core.") and hasattr(np, "_core"):
            module = "numpy._core." + module[len("numpy.core."):]   # numpy 2 moved numpy.core
        return super().find_class(module, name)


def load_pickled_dict(path: Path, kind: str, fix: str) -> dict:
    """A pickled dict (numpy arrays and plain types only) with str keys; DataError naming ``kind`` and the file
    (and how to ``fix`` a corrupt one) if it cannot be read."""
    try:
        with open(path, "rb") as f:
            d = _Unpickler(f, encoding="bytes").load()
    except OSError as e:
        raise DataError(f"cannot read {kind} {path}: {e.strerror or e}") from None
    except Exception as e:  # truncated or corrupt pickles raise many different types
        raise DataError(f"{kind} {path} is corrupt or truncated ({type(e).__name__}: {e}); {fix}") from None
    if not isinstance(d, dict):
        raise DataError(f"{kind} {path}: expected a pickled dict, got {type(d).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in d.items()}


def read_batch(path: Path, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch -> (uint8 (N, 3, 32, 32), int64 (N,)). DataError naming the file if it is unusable."""
    d = load_pickled_dict(path, "CIFAR batch", "delete the folder and run again with data.download=true, or "
                                               "re-extract the archive")
    if "data" not in d or label_key not in d:
        raise DataError(f"CIFAR batch {path}: expected keys b'data' and b'{label_key}', got "
                        f"{sorted(map(str, d))}")
    data = np.asarray(d["data"])
    labels = np.asarray(d[label_key])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"CIFAR batch {path}: b'data' must be uint8 of shape (N, 3072), got {data.dtype} "
                        f"{data.shape}")
    if labels.shape != (data.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"CIFAR batch {path}: b'{label_key}' must hold {data.shape[0]} integer labels, got "
                        f"{labels.dtype} {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"CIFAR batch {path}: labels must lie in [0, {num_classes}), got range "
                        f"[{labels.min()}, {labels.max()}]")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def missing_message(spec: CifarSpec, root: Path, missing: list[str]) -> str:
    """The error text for a dataset whose files ``missing`` are not under ``root``: the layout and how to get it."""
    return (f"{spec.name} not found in {root / spec.folder} (missing: {', '.join(missing)}; expected layout "
            f"{spec.layout}, ROOT = data.root); add data.download=true to fetch it, or extract {spec.archive} into "
            f"data.root={root}")


def missing_files(spec: CifarSpec, root: Path) -> list[str]:
    """The dataset's train and test files not present under ``root``."""
    folder = root / spec.folder
    return [f for f in spec.train_files + spec.test_files if not (folder / f).is_file()]


def read_split(spec: CifarSpec, root: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """All images and labels of the training (train=True) or test set, in the official order."""
    parts = [read_batch(root / spec.folder / f, spec.label_key, spec.num_classes)
             for f in (spec.train_files if train else spec.test_files)]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y)
