"""Train/eval splits of a training set: NB201's split file, or a seeded stratified halving."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .images import DataError


def stratified_halves(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified 50/50 split of ``range(len(labels))``.

    Rule: ``rng = numpy.random.default_rng(seed)``; for each class c in ascending order, permute that class's
    indices with ``rng.permutation``; the first ``ceil(n_c / 2)`` go to train, the rest to eval. Both index
    arrays are returned sorted ascending (original order), disjoint and covering all items.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train, valid = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = (len(idx) + 1) // 2
        train.append(idx[:k])
        valid.append(idx[k:])
    empty = np.zeros(0, np.int64)
    return (np.sort(np.concatenate(train or [empty])).astype(np.int64),
            np.sort(np.concatenate(valid or [empty])).astype(np.int64))


def _indices(value, n: int, where: str) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except ValueError as e:
        raise DataError(f"{where}: expected a flat list of integer indices ({e})") from None
    if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"{where}: expected a non-empty flat list of integer indices, got "
                        f"{arr.size} value(s) of type {arr.dtype} with shape {arr.shape}")
    arr = arr.astype(np.int64)
    if arr.min() < 0 or arr.max() >= n:
        raise DataError(f"{where}: indices must lie in [0, {n}) (the training set), got range "
                        f"[{arr.min()}, {arr.max()}]")
    dup = arr.size - np.unique(arr).size
    if dup:
        raise DataError(f"{where}: {dup} duplicate index/indices")
    return arr


def read_split_json(path: Path):
    """The parsed JSON of a split file; DataError naming the file if it cannot be read or parsed."""
    try:
        return json.loads(path.read_text())
    except OSError as e:
        raise DataError(f"split file {path}: cannot read it ({e.strerror or e})") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise DataError(f"split file {path}: not valid JSON ({e})") from None


def check_disjoint(path: Path, a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    """DataError naming the split file if index lists ``a`` and ``b`` share an index."""
    both = np.intersect1d(a, b)
    if both.size:
        raise DataError(f"split file {path}: {both.size} indices are in both '{name_a}' and '{name_b}' "
                        f"(first: {both[:5].tolist()})")


def read_split_file(path: str | Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Read ``{"train": [...], "valid": [...]}`` (indices into a training set of ``n`` items) and check it.

    Returns (train, valid) int64 index arrays in the file's order. Raises DataError naming the file for a missing
    or unreadable file, a wrong shape, indices out of range, duplicates or train/valid overlap.
    """
    path = Path(path)
    doc = read_split_json(path)
    if not isinstance(doc, dict) or not {"train", "valid"} <= doc.keys():
        got = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
        raise DataError(f'split file {path}: expected a JSON object {{"train": [...], "valid": [...]}}, got {got}')
    train = _indices(doc["train"], n, f"split file {path}, 'train'")
    valid = _indices(doc["valid"], n, f"split file {path}, 'valid'")
    check_disjoint(path, train, valid, "train", "valid")
    return train, valid
