"""ImageNet-style class folders (``ROOT/train/<class>/*.jpg``, ``ROOT/val/<class>/...``), decoded once with Pillow.

Every image is decoded (in worker processes with ``workers > 0``), converted to RGB and brought to a fixed size,
so a split is one uint8 tensor like the other datasets. Training images are stored a little larger than the
network input (``stored_size``) so that :func:`nshot.data.augment.random_resized_crop` can crop them per batch
on the device; evaluation images get the usual resize + centre crop. See docs/data.md.
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .images import DataError, ImageData

# Files with these extensions (compared case-insensitively) are images; every other file is ignored.
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".pbm", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp")
CROP_FRACTION = 0.875          # evaluation: resize the shorter side to image_size / 0.875, centre crop image_size
LAYOUT = "ROOT/train/<class>/<images>, ROOT/val/<class>/<images>"


def _pil():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("image-folder datasets need Pillow to decode images: pip install Pillow "
                          "(it is a dependency of nshot, but it is missing from this environment)") from None
    return Image


def resize_size(image_size: int) -> int:
    """Shorter side before the centre crop: ``round(image_size / 0.875)`` (224 -> 256, 32 -> 37)."""
    return int(round(image_size / CROP_FRACTION))


@dataclass(frozen=True)
class FolderSplit:
    """The images of one split folder: ``files[i]`` has label ``labels[i]``, the index of its class in ``classes``.

    Files are ordered by class index, then by their path relative to the class folder.
    """

    folder: Path
    classes: tuple[str, ...]
    files: tuple[Path, ...]
    labels: np.ndarray


def _is_image(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _images_in(class_dir: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(class_dir):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found += [Path(dirpath) / f for f in filenames if _is_image(f)]
    return sorted(found, key=lambda p: p.relative_to(class_dir).as_posix())


def scan_split(folder: str | Path, classes: Sequence[str] | None = None) -> FolderSplit:
    """List the class folders and image files of ``folder`` (e.g. ``ROOT/train``).

    Class folders are the non-hidden sub-folders, sorted by name; their images are the non-hidden files with an
    extension in :data:`IMAGE_EXTENSIONS` anywhere below them (sub-folders included, symlinked sub-folders not
    followed). ``classes``: the class list of the training split; the folder's classes must be among them and keep
    their index (a class may be absent). DataError for a missing folder, no class folders, image files outside a
    class folder, a class folder without images (named), classes not in ``classes``, or no images at all.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"image folder {folder} does not exist; expected layout {LAYOUT}")
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    names = [p.name for p in entries if p.is_dir()]
    if not names:
        raise DataError(f"{folder} holds no class folders; expected {folder}/<class>/<images> ({LAYOUT})")
    stray = [p.name for p in entries if p.is_file() and _is_image(p.name)]
    if stray:
        raise DataError(f"{folder} holds image files outside any class folder (e.g. {stray[0]!r}, {len(stray)} in "
                        f"all); move them into {folder}/<class>/")
    if classes is None:
        classes = tuple(names)
    else:
        classes = tuple(classes)
        extra = sorted(set(names) - set(classes))
        if extra:
            raise DataError(f"{folder} has class folders that the training split does not have: "
                            f"{', '.join(map(repr, extra[:10]))}{' ...' if len(extra) > 10 else ''}")
    per_class = {name: _images_in(folder / name) for name in names}
    if not any(per_class.values()):
        raise DataError(f"no images under {folder}: none of its {len(names)} class folders holds a file with an "
                        f"image extension ({', '.join(IMAGE_EXTENSIONS)}, any case)")
    for name in names:
        if not per_class[name]:
            raise DataError(f"class {name!r} has no images: {folder / name} holds no file with an image extension "
                            f"({', '.join(IMAGE_EXTENSIONS)}, any case)")
    index = {c: i for i, c in enumerate(classes)}
    files = [f for name in sorted(names, key=index.__getitem__) for f in per_class[name]]
    labels = np.array([index[name] for name in sorted(names, key=index.__getitem__) for _ in per_class[name]],
                      dtype=np.int64)
    return FolderSplit(folder, classes, tuple(files), labels)


def _to_rgb(im):
    """Any Pillow mode -> RGB. 16-bit grey keeps its high byte; alpha is dropped; palettes are expanded."""
    Image = _pil()
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        a = np.asarray(im).astype(np.int64).clip(0, 65535) >> 8
        im = Image.fromarray(a.astype(np.uint8), "L")
    elif im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")       # the documented route for palettes with transparency; alpha is then dropped
    return im if im.mode == "RGB" else im.convert("RGB")


def decode_image(path: str | Path, short: int, crop: int) -> np.ndarray:
    """One image -> uint8 (3, crop, crop): RGB, shorter side resized to ``short``, centre crop ``crop`` x ``crop``.

    Resizing uses Pillow's bilinear filter (antialiased when shrinking) and is skipped when the shorter side is
    already ``short``; the longer side becomes ``round(long * short / shorter)``; crop offsets are
    ``(size - crop) // 2``. JPEGs are decoded at the smallest DCT scale that keeps the shorter side >= ``short``.
    DataError naming the file if it cannot be decoded.
    """
    Image = _pil()
    try:
        with Image.open(path) as im:
            im.draft("RGB", (short, short))
            im = _to_rgb(im)
            w, h = im.size
            if min(w, h) != short:
                if w <= h:
                    size = (short, max(short, (h * short + w // 2) // w))
                else:
                    size = (max(short, (w * short + h // 2) // h), short)
                im = im.resize(size, Image.BILINEAR)
                w, h = size
            left, top = (w - crop) // 2, (h - crop) // 2
            im = im.crop((left, top, left + crop, top + crop))
            a = np.asarray(im, dtype=np.uint8)
    except Exception as e:  # Pillow raises many types (OSError, SyntaxError, ValueError, ...) for bad files
        raise DataError(f"cannot decode image {path}: {type(e).__name__}: {e}") from None
    if a.shape != (crop, crop, 3):
        raise DataError(f"cannot decode image {path}: got an array of shape {a.shape}, expected ({crop}, {crop}, 3)")
    return np.ascontiguousarray(a.transpose(2, 0, 1))


def _decode_chunk(job: tuple[list[str], int, int]) -> np.ndarray:
    paths, short, crop = job
    return np.stack([decode_image(p, short, crop) for p in paths])


def decode_all(files: Sequence[str | Path], short: int, crop: int, workers: int = 0,
               chunk: int = 64) -> np.ndarray:
    """Decode ``files`` with :func:`decode_image` into uint8 (N, 3, crop, crop), in order.

    ``workers > 0`` decodes chunks of ``chunk`` files in that many processes (``ProcessPoolExecutor``); the result
    is identical to ``workers=0`` (in this process). The first bad file raises DataError naming it.
    """
    if workers < 0:
        raise DataError(f"workers must be >= 0, got {workers}")
    out = np.empty((len(files), 3, crop, crop), dtype=np.uint8)
    if not len(files):
        return out
    _pil()
    paths = [str(f) for f in files]
    if workers:
        chunk = max(1, min(chunk, -(-len(paths) // (4 * workers))))
    jobs = [(paths[i:i + chunk], short, crop) for i in range(0, len(paths), chunk)]
    pos = 0
    if workers == 0:
        for part in map(_decode_chunk, jobs):
            out[pos:pos + len(part)] = part
            pos += len(part)
        return out
    with ProcessPoolExecutor(max_workers=workers) as pool:
        try:
            for part in pool.map(_decode_chunk, jobs):
                out[pos:pos + len(part)] = part
                pos += len(part)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)   # a bad file: drop the chunks not started yet
            raise
    return out


def channel_stats(x: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and std (population) of uint8 (N, C, H, W), in [0, 1] units, from 256-bin counts."""
    values = np.arange(256, dtype=np.float64) / 255.0
    counts = np.zeros((x.shape[1], 256), dtype=np.float64)
    for i in range(0, len(x), 256):
        part = x[i:i + 256]
        for c in range(x.shape[1]):
            counts[c] += np.bincount(part[:, c].ravel(), minlength=256)
    n = counts.sum(1)
    mean = (counts * values).sum(1) / n
    var = (counts * (values[None] - mean[:, None]) ** 2).sum(1) / n
    return tuple(map(float, mean)), tuple(map(float, np.sqrt(var)))


def load_folder(root: str | Path, image_size: int, split: str = "full", split_file: str | Path | None = None,
                seed: int = 0, workers: int = 0, stored_size: int | None = None,
                shuffle: bool = False) -> tuple[ImageData, ImageData]:
    """``(train, eval)`` from ``ROOT/train/<class>/...`` (and ``ROOT/val/<class>/...``), as uint8 RGB tensors.

    Classes are the sorted folder names of ``ROOT/train``; the training images are stored at ``stored_size``
    (default :func:`resize_size`: shorter side resized to it, centre square crop) for device-side
    random-resized-crop to ``image_size``; the evaluation images get the evaluation transform (shorter side to
    ``round(image_size / 0.875)``, centre crop ``image_size``). mean/std are computed over the stored training
    images. split: ``"full"``: train = ROOT/train, eval = ROOT/val; ``"nb201"``: both from ROOT/train, by
    ``split_file`` (``{"train": [...], "valid": [...]}``, indices into the training images in scan order) or
    the seeded stratified halving of :func:`nshot.data.splits.stratified_halves`; ROOT/val is not read.
    Images are in scan order (class by class) unless ``shuffle``: then each split is put in a seeded random order
    (``numpy.random.default_rng([seed, 1]).permutation``, train first, then eval), so that a first-N subset,
    an evaluation batch or a probe bank mixes the classes (``load_dataset`` shuffles).
    """
    from .splits import read_split_file, stratified_halves

    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 1:
        raise DataError(f"image_size must be an integer >= 1 for an image-folder dataset, got {image_size!r}")
    short = resize_size(image_size)
    stored = short if stored_size is None else int(stored_size)
    if stored < image_size:
        raise DataError(f"stored_size ({stored}) must be >= image_size ({image_size})")
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 0:
        raise DataError(f"workers must be an integer >= 0, got {workers!r}")
    root = Path(root).expanduser().absolute()
    if not root.is_dir():
        raise DataError(f"image-folder dataset root {root} does not exist; expected layout {LAYOUT}")
    if not (root / "train").is_dir():
        raise DataError(f"{root} has no train/ folder; expected layout {LAYOUT}")
    train = scan_split(root / "train")
    k = len(train.classes)
    if split == "full":
        if not (root / "val").is_dir():
            raise DataError(f"split 'full' needs {root / 'val'} ({LAYOUT}); it is missing. Use split 'nb201' to "
                            f"train and evaluate on two halves of {root / 'train'}")
        val = scan_split(root / "val", train.classes)
        tr_files, tr_y, ev_files, ev_y = train.files, train.labels, val.files, val.labels
    elif split == "nb201":
        if split_file is not None:
            tr, ev = read_split_file(split_file, len(train.files))
        else:
            tr, ev = stratified_halves(train.labels, seed)
        tr_files, tr_y = [train.files[i] for i in tr], train.labels[tr]
        ev_files, ev_y = [train.files[i] for i in ev], train.labels[ev]
    else:
        raise DataError(f"unknown split {split!r} for an image-folder dataset; expected 'full' or 'nb201'")
    if shuffle:
        order = np.random.default_rng([int(seed), 1])
        pt, pe = order.permutation(len(tr_files)), order.permutation(len(ev_files))
        tr_files, tr_y = [tr_files[i] for i in pt], np.asarray(tr_y)[pt]
        ev_files, ev_y = [ev_files[i] for i in pe], np.asarray(ev_y)[pe]
    xt = decode_all(tr_files, stored, stored, workers)
    xe = decode_all(ev_files, short, image_size, workers)
    mean, std = channel_stats(xt)
    std = tuple(s if s > 0 else 1.0 for s in std)       # a constant channel would otherwise divide by 0
    return (ImageData(torch.from_numpy(xt), torch.from_numpy(np.asarray(tr_y, np.int64)), k, mean, std, "folder"),
            ImageData(torch.from_numpy(xe), torch.from_numpy(np.asarray(ev_y, np.int64)), k, mean, std, "folder"))
