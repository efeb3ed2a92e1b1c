"""``load_dataset``: a dataset by name, split into (train, eval) in memory."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from . import cifar
from .digits import read_digits
from .download import fetch_and_extract
from .images import DataError, ImageData
from .splits import read_split_file, stratified_halves

DATASETS = ("cifar10", "cifar100", "digits")
SPLITS = ("nb201", "full")


def _ensure_cifar(spec: cifar.CifarSpec, root: Path, download: bool) -> None:
    missing = cifar.missing_files(spec, root)
    if not missing:
        return
    if not download:
        raise DataError(cifar.missing_message(spec, root, missing))
    try:
        fetch_and_extract(spec.url, spec.md5, root, spec.folder)
    except DataError as e:
        raise DataError(f"{e}\n{cifar.missing_message(spec, root, missing)}") from None
    still = cifar.missing_files(spec, root)
    if still:
        raise DataError(f"archive {spec.url} did not provide {', '.join(still)}.\n"
                        f"{cifar.missing_message(spec, root, still)}")


def _halves(y: torch.Tensor, split_file, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if split_file is not None:
        return read_split_file(split_file, len(y))
    return stratified_halves(y.numpy(), seed)


def load_dataset(name: str, root: str | Path | None = None, split: str = "nb201",
                 split_file: str | Path | None = None, download: bool = False,
                 seed: int = 0) -> tuple[ImageData, ImageData]:
    """Return ``(train, eval)`` as in-memory :class:`ImageData` on the CPU.

    name: ``"cifar10"``, ``"cifar100"`` or ``"digits"``.

    split:
      * ``"nb201"``: both halves come from the 50k training set. With ``split_file`` (JSON
        ``{"train": [...], "valid": [...]}``, indices into the training set in its original order, e.g.
        NAS-Bench-201's ``cifar10-valid`` split) train = the ``train`` indices and eval = the ``valid`` indices,
        in the file's order. Without it, a seeded stratified halving: ``rng = numpy.random.default_rng(seed)``;
        for each class in ascending order, ``rng.permutation`` of that class's indices, the first
        ``ceil(n_c / 2)`` to train and the rest to eval; both sorted ascending. CIFAR-100 uses the same rules.
      * ``"full"``: train = the whole training set, eval = the test set.
      * digits (``sklearn.datasets.load_digits``: 1,797 grey 8x8 images, 1 channel, 10 classes, grey levels
        0..16 scaled to 0..255) has no test set: both splits give the seeded stratified halving above (901 / 896
        images); ``split_file`` indexes the 1,797 images. mean/std are computed over all 1,797 images.

    root: folder that holds ``cifar-10-batches-py/`` or ``cifar-100-python/``; default ``./data``.
    download: if the CIFAR files are missing, fetch the official archive into ``root``, check its md5, extract it
    safely and load. Missing data without ``download`` (or a failed download), corrupt batches and bad split files
    raise :class:`DataError` naming the path and what was expected.
    """
    key = str(name).lower().replace("-", "").replace("_", "")
    if key not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")

    if key == "digits":
        x, y, mean, std = read_digits()
        tr, ev = _halves(y, split_file, seed)
        full = ImageData(x, y, 10, mean, std, "digits")
        return full.subset(tr), full.subset(ev)

    spec = cifar.SPECS[key]
    root = Path("data" if root is None else root).expanduser().absolute()
    _ensure_cifar(spec, root, download)
    x, y = cifar.read_split(spec, root, train=True)
    train = ImageData(x, y, spec.num_classes, spec.mean, spec.std, key)
    if split == "full":
        xt, yt = cifar.read_split(spec, root, train=False)
        return train, ImageData(xt, yt, spec.num_classes, spec.mean, spec.std, key)
    tr, ev = _halves(y, split_file, seed)
    return train.subset(tr), train.subset(ev)
