"""ImageNet16-120 (and all 1000 classes) in NAS-Bench-201's downsampled 16x16 format (pickled batches)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .cifar import load_pickled_dict
from .images import DataError
from .splits import _indices, check_disjoint, read_split_json

FOLDER = "ImageNet16"
TRAIN_FILES = tuple(f"train_data_batch_{i}" for i in range(1, 11))
VAL_FILE = "val_data"
SIDE = 16
# NAS-Bench-201's normalisation constants for ImageNet16 (its data pipeline uses these, not computed values).
MEAN = tuple(v / 255 for v in (122.68, 116.66, 104.01))
STD = tuple(v / 255 for v in (63.22, 61.26, 65.09))
# Dataset name -> number of classes kept: labels 1..K (1-based in the files) become 0..K-1.
CLASSES = {"imagenet16-120": 120, "imagenet16": 1000}
LAYOUT = f"ROOT/{FOLDER}/train_data_batch_1..10, val_data"


def missing_files(root: Path) -> list[str]:
    """Names of the expected files that are not in ``root/ImageNet16``."""
    folder = root / FOLDER
    return [f for f in TRAIN_FILES + (VAL_FILE,) if not (folder / f).is_file()]


def missing_message(name: str, root: Path, missing: list[str], download: bool) -> str:
    """What is missing, where it was looked for, the expected layout and how to get the files."""
    shown = missing if len(missing) <= 4 else missing[:3] + [f"... ({len(missing)} files)"]
    msg = (f"{name} not found: looked in {root / FOLDER} (missing: {', '.join(shown)}). Expected layout: {LAYOUT}, "
           f"i.e. the 16x16 downsampled ImageNet (Imagenet16_train.zip and Imagenet16_val.zip from image-net.org, "
           f"the files NAS-Bench-201 uses) extracted into ROOT/{FOLDER} with ROOT={root}.")
    if download:
        msg += " It cannot be downloaded automatically (image-net.org needs an account): fetch it yourself."
    return msg


def read_batch(path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch -> images uint8 (n, 3, 16, 16) and labels int64 (n,) in 0..num_classes-1.

    The file holds ``data`` (uint8 (N, 3072), channel-major like CIFAR) and ``labels`` (N ints in 1..1000).
    Only images with label <= num_classes are kept, in file order, and their labels become ``label - 1``.
    """
    d = load_pickled_dict(path, "ImageNet16 batch", "extract the archive again")
    if "data" not in d or "labels" not in d:
        raise DataError(f"ImageNet16 batch {path}: expected keys 'data' and 'labels', got {sorted(map(str, d))}")
    data = np.asarray(d["data"])
    labels = np.asarray(d["labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * SIDE * SIDE:
        raise DataError(f"ImageNet16 batch {path}: 'data' must be uint8 of shape (N, {3 * SIDE * SIDE}), got "
                        f"{data.dtype} {data.shape}")
    if labels.shape != (data.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"ImageNet16 batch {path}: 'labels' must hold {data.shape[0]} integer labels, got "
                        f"{labels.dtype} {labels.shape}")
    if labels.size and (labels.min() < 1 or labels.max() > 1000):
        raise DataError(f"ImageNet16 batch {path}: labels must lie in [1, 1000] (1-based class ids), got range "
                        f"[{labels.min()}, {labels.max()}]")
    keep = labels <= num_classes
    x = data[keep].reshape(-1, 3, SIDE, SIDE)      # a copy: the full batch can be freed
    return x, labels[keep].astype(np.int64) - 1


def read_split(root: Path, train: bool, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All kept images and labels of the training batches 1..10 in order (train=True) or of ``val_data``."""
    parts = [read_batch(root / FOLDER / f, num_classes) for f in (TRAIN_FILES if train else (VAL_FILE,))]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y)


def _index_list(value, n: int, where: str) -> np.ndarray:
    # NB201 ships its split as an xautodl config: {"xvalid": ["int", ["1", "2", ...]], ...}.
    if (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
            and isinstance(value[1], list)):
        if value[0] != "int":
            raise DataError(f"{where}: typed value must be [\"int\", [...]], got type {value[0]!r}")
        try:
            value = [int(v) for v in value[1]]
        except (TypeError, ValueError) as e:
            raise DataError(f"{where}: expected integer indices ({e})") from None
    return _indices(value, n, where)


def read_valid_test_file(path: str | Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """NB201's ImageNet16-120 valid/test split of ``val_data``: ``{"xvalid": [...], "xtest": [...]}``.

    Indices (0-based) into the ``n`` kept validation images in file order. Each list is either plain integers or
    NB201's typed form ``["int", ["1", "2", ...]]`` (as in its ``imagenet-16-120-test-split.txt``). Returns
    (xvalid, xtest) in the file's order; DataError naming the file for anything malformed, out of range,
    duplicated or in both lists.
    """
    path = Path(path)
    doc = read_split_json(path)
    if not isinstance(doc, dict) or not {"xvalid", "xtest"} <= doc.keys():
        got = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
        raise DataError(f'split file {path}: an ImageNet16 split file is a JSON object {{"xvalid": [...], '
                        f'"xtest": [...]}} indexing val_data, got {got}')
    valid = _index_list(doc["xvalid"], n, f"split file {path}, 'xvalid'")
    test = _index_list(doc["xtest"], n, f"split file {path}, 'xtest'")
    check_disjoint(path, valid, test, "xvalid", "xtest")
    return valid, test
