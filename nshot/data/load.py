"""``load_dataset``: a dataset by name, split into (train, eval) in memory."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from . import cifar, imagenet16
from .digits import read_digits
from .download import fetch_and_extract
from .folders import load_folder
from .images import DataError, ImageData
from .splits import read_split_file, stratified_halves

DATASETS = ("cifar10", "cifar100", "digits", "imagenet16-120", "imagenet16", "folder")
SPLITS = ("nb201", "full")
_NATIVE_SIZE = {"cifar10": 32, "cifar100": 32, "digits": 8, "imagenet16-120": 16, "imagenet16": 16}


def _canonical(name: str) -> str | None:
    def key(s: str) -> str:
        return str(s).lower().replace("-", "").replace("_", "")
    return next((d for d in DATASETS if key(d) == key(name)), None)


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


def _load_imagenet16(name: str, root, split: str, split_file, download: bool,
                     seed: int) -> tuple[ImageData, ImageData]:
    root = Path("data" if root is None else root).expanduser().absolute()
    missing = imagenet16.missing_files(root)
    if missing:
        raise DataError(imagenet16.missing_message(name, root, missing, download))
    k = imagenet16.CLASSES[name]
    x, y = imagenet16.read_split(root, train=True, num_classes=k)
    xv, yv = imagenet16.read_split(root, train=False, num_classes=k)
    train = ImageData(x, y, k, imagenet16.MEAN, imagenet16.STD, name)
    val = ImageData(xv, yv, k, imagenet16.MEAN, imagenet16.STD, name)
    if split == "full":
        return train, val
    if split_file is not None:
        valid, _ = imagenet16.read_valid_test_file(split_file, len(val))
    else:
        valid, _ = stratified_halves(yv.numpy(), seed)
    return train, val.subset(valid)


def load_dataset(name: str, root: str | Path | None = None, split: str = "nb201",
                 split_file: str | Path | None = None, download: bool = False,
                 seed: int = 0, image_size: int | None = None, workers: int = 0) -> tuple[ImageData, ImageData]:
    """Return ``(train, eval)`` as in-memory :class:`ImageData` on the CPU.

    name: ``"cifar10"``, ``"cifar100"``, ``"digits"``, ``"imagenet16-120"``, ``"imagenet16"`` (all 1000 classes)
    or ``"folder"`` (ImageNet-style class folders, see :func:`nshot.data.folders.load_folder`); case, ``-`` and
    ``_`` do not matter.

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
      * ImageNet16-120 / ImageNet16: train = the training batches 1..10 (images with label <= 120 for
        ImageNet16-120, labels re-indexed to 0..119). ``"full"``: eval = all of ``val_data`` (the kept classes).
        ``"nb201"``: eval = NB201's *valid* half of ``val_data``: with ``split_file`` its ``xvalid`` indices
        (NB201's ``imagenet-16-120-test-split.txt``, ``{"xvalid": [...], "xtest": [...]}``), without it the first
        output of the seeded stratified halving above applied to ``val_data``.
      * folder: ``"full"``: ROOT/train vs ROOT/val; ``"nb201"``: the halving or ``split_file`` applied to ROOT/train.

    root: folder that holds ``cifar-10-batches-py/``, ``cifar-100-python/`` or ``ImageNet16/``, or for ``folder``
    the folder with ``train/`` and ``val/``; default ``./data``.
    download: if the CIFAR files are missing, fetch the official archive into ``root``, check its md5, extract it
    safely and load (ImageNet16 and folders cannot be downloaded). Missing data without ``download`` (or a failed
    download), corrupt batches and bad split files raise :class:`DataError` naming the path and what was expected.
    image_size: ``folder`` only (required there): the network's input size; other datasets accept only their own
    size or None. workers: ``folder`` only: processes decoding images (0 = this process).
    """
    key = _canonical(name)
    if key is None:
        raise DataError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise DataError(f"workers must be an integer >= 0, got {workers!r}")
    if key == "folder":
        if image_size is None:
            raise DataError("dataset 'folder' needs image_size (config: data.image_size), the network's input size")
        root = Path("data" if root is None else root).expanduser().absolute()
        return load_folder(root, image_size, split=split, split_file=split_file, seed=seed, workers=workers,
                           shuffle=True)
    if image_size is not None and image_size != _NATIVE_SIZE[key]:
        raise DataError(f"image_size={image_size!r} does not apply to {key}: its images are "
                        f"{_NATIVE_SIZE[key]}x{_NATIVE_SIZE[key]} (image_size is for 'folder' datasets; leave it null)")

    if key in imagenet16.CLASSES:
        return _load_imagenet16(key, root, split, split_file, download, seed)

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
