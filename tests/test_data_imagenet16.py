"""ImageNet16-120 / ImageNet16 in NAS-Bench-201's downsampled format: pickles in the real layout, filtering, splits."""
from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from nshot.config import load_config
from nshot.data import DataError, load_dataset


# Labels per training batch (1-based, as in the files): some kept by ImageNet16-120 (<= 120), some not.
TRAIN_LABELS = [[1, 121, 120, 500], [2, 1000], [60], [130, 7], [120], [3, 3], [999], [1, 2, 119], [121], [5, 44]]
VAL_LABELS = [1, 1, 2, 2, 3, 3, 120, 120, 121, 777, 4, 4]


def _hwc(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)


def _rows(hwc: np.ndarray) -> np.ndarray:
    """The file format: one row per image, the R plane (256 values, row-major), then G, then B."""
    return hwc.transpose(0, 3, 1, 2).reshape(len(hwc), 3 * 16 * 16)


def _write(path: Path, data: np.ndarray, labels: list[int], with_mean: bool, protocol: int = 2) -> None:
    d = {"data": data, "labels": list(labels)}
    if with_mean:   # the official training batches also carry a float mean image
        d["mean"] = data.astype(np.float64).mean(0)
    with open(path, "wb") as f:
        pickle.dump(d, f, protocol=protocol)


@pytest.fixture
def root(tmp_path) -> tuple[Path, list[np.ndarray], np.ndarray]:
    """ROOT/ImageNet16/train_data_batch_1..10 + val_data; returns (ROOT, per-batch HWC images, val HWC images)."""
    folder = tmp_path / "ImageNet16"
    folder.mkdir()
    batches = []
    for i, labels in enumerate(TRAIN_LABELS, 1):
        hwc = _hwc(len(labels), i)
        batches.append(hwc)
        _write(folder / f"train_data_batch_{i}", _rows(hwc), labels, with_mean=True, protocol=2 if i % 2 else 4)
    val = _hwc(len(VAL_LABELS), 99)
    _write(folder / "val_data", _rows(val), VAL_LABELS, with_mean=False)
    return tmp_path, batches, val


def _expected(hwc: np.ndarray, labels, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    keep = np.asarray(labels) <= k
    return (torch.from_numpy(np.ascontiguousarray(hwc[keep].transpose(0, 3, 1, 2))),
            torch.tensor(np.asarray(labels)[keep] - 1, dtype=torch.int64))


def test_imagenet16_120_full_round_trips_pixels_and_filters_and_reindexes_labels(root):
    path, batches, val = root
    train, evald = load_dataset("imagenet16-120", path, split="full")
    ex, ey = zip(*(_expected(b, lab, 120) for b, lab in zip(batches, TRAIN_LABELS)))
    assert torch.equal(train.x, torch.cat(ex)) and torch.equal(train.y, torch.cat(ey))
    assert len(train) == sum(lab <= 120 for labs in TRAIN_LABELS for lab in labs) == 13
    assert train.y.min() == 0 and train.y.max() == 119          # labels 1 and 120 -> 0 and 119
    vx, vy = _expected(val, VAL_LABELS, 120)
    assert torch.equal(evald.x, vx) and torch.equal(evald.y, vy) and len(evald) == 10
    assert train.x.shape[1:] == (3, 16, 16) and train.x.dtype == torch.uint8
    assert train.num_classes == evald.num_classes == 120 and train.name == "imagenet16-120"
    assert train.mean == pytest.approx((122.68 / 255, 116.66 / 255, 104.01 / 255))
    assert train.std == pytest.approx((63.22 / 255, 61.26 / 255, 65.09 / 255))


def test_imagenet16_all_classes_keeps_everything(root):
    path, batches, val = root
    train, evald = load_dataset("ImageNet16", path, split="full")
    assert len(train) == sum(map(len, TRAIN_LABELS)) and len(evald) == len(VAL_LABELS)
    assert train.num_classes == 1000 and int(train.y.max()) == 999
    assert torch.equal(evald.y, torch.tensor(VAL_LABELS) - 1)


def test_nb201_split_without_file_halves_val_data_stratified_and_seeded(root):
    path, _, val = root
    full_train, full_val = load_dataset("imagenet16-120", path, split="full")
    train, evald = load_dataset("imagenet16-120", path, split="nb201", seed=3)
    assert torch.equal(train.x, full_train.x)                      # training set untouched
    # per class (labels 0, 1, 2, 3, 119 with 2 images each) exactly ceil(2 / 2) = 1 image goes to the valid half
    assert len(evald) == 5 and sorted(evald.y.tolist()) == [0, 1, 2, 3, 119]
    rows = {full_val.x[i].numpy().tobytes() for i in range(len(full_val))}
    assert all(evald.x[i].numpy().tobytes() in rows for i in range(len(evald)))
    again = load_dataset("imagenet16-120", path, split="nb201", seed=3)[1]
    assert torch.equal(again.x, evald.x)
    others = [load_dataset("imagenet16-120", path, split="nb201", seed=s)[1].x for s in range(4, 12)]
    assert any(not torch.equal(o, evald.x) for o in others)        # the seed matters


@pytest.mark.parametrize("typed", [True, False])
def test_nb201_split_file_takes_xvalid_in_file_order(root, tmp_path, typed):
    path, _, _ = root
    _, full_val = load_dataset("imagenet16-120", path, split="full")
    xvalid, xtest = [7, 0, 4, 2, 9], [1, 3, 5, 6, 8]
    f = tmp_path / "imagenet-16-120-test-split.txt"
    if typed:      # NB201's own file: xautodl config values ["int", ["7", "0", ...]]
        doc = {"xvalid": ["int", [str(i) for i in xvalid]], "xtest": ["int", [str(i) for i in xtest]]}
    else:
        doc = {"xvalid": xvalid, "xtest": xtest}
    f.write_text(json.dumps(doc))
    train, evald = load_dataset("imagenet16-120", path, split="nb201", split_file=f)
    assert torch.equal(evald.x, full_val.x[xvalid]) and torch.equal(evald.y, full_val.y[xvalid])
    assert len(train) == 13


@pytest.mark.parametrize("doc, message", [
    ({"train": [0], "valid": [1]}, "xvalid"),
    ({"xvalid": [0, 1], "xtest": [1, 2]}, "in both 'xvalid' and 'xtest'"),
    ({"xvalid": [0, 10], "xtest": [1]}, r"'xvalid': indices must lie in \[0, 10\)"),
    ({"xvalid": ["str", ["0"]], "xtest": [1]}, "typed value must be"),
    ({"xvalid": ["int", ["zero"]], "xtest": [1]}, "expected integer indices"),
])
def test_bad_split_file_names_the_file_and_the_problem(root, tmp_path, doc, message):
    f = tmp_path / "split.json"
    f.write_text(json.dumps(doc))
    with pytest.raises(DataError, match=message) as e:
        load_dataset("imagenet16-120", root[0], split="nb201", split_file=f)
    assert str(f) in str(e.value)


def test_missing_files_name_the_folder_the_files_and_the_layout(root):
    path = root[0]
    os.remove(path / "ImageNet16" / "val_data")
    with pytest.raises(DataError) as e:
        load_dataset("imagenet16-120", path, split="full", download=True)
    msg = str(e.value)
    assert "val_data" in msg and str(path / "ImageNet16") in msg and "train_data_batch_1..10" in msg
    assert "cannot be downloaded automatically" in msg
    with pytest.raises(DataError, match="looked in"):
        load_dataset("imagenet16-120", path / "elsewhere")


def _corrupt(folder: Path, name: str, kind: str) -> None:
    p = folder / name
    if kind == "truncated":
        p.write_bytes(p.read_bytes()[:100])
    elif kind == "label0":
        _write(p, _rows(_hwc(2, 1)), [0, 5], with_mean=False)
    elif kind == "label1001":
        _write(p, _rows(_hwc(2, 1)), [1001, 5], with_mean=False)
    elif kind == "shape":
        _write(p, np.zeros((2, 767), np.uint8), [1, 2], with_mean=False)
    elif kind == "dtype":
        _write(p, np.zeros((2, 768), np.int64), [1, 2], with_mean=False)
    elif kind == "nlabels":
        _write(p, _rows(_hwc(2, 1)), [1], with_mean=False)
    elif kind == "keys":
        with open(p, "wb") as f:
            pickle.dump({"data": _rows(_hwc(1, 1)), "fine_labels": [1]}, f)
    elif kind == "code":    # a pickle that would run a command when loaded without restriction
        class Evil:
            def __reduce__(self):
                return (os.system, ("echo pwned",))
        with open(p, "wb") as f:
            pickle.dump({"data": Evil(), "labels": [1]}, f)


@pytest.mark.parametrize("name", ["train_data_batch_4", "val_data"])
@pytest.mark.parametrize("kind, message", [
    ("truncated", "corrupt or truncated"),
    ("label0", r"labels must lie in \[1, 1000\]"),
    ("label1001", r"labels must lie in \[1, 1000\]"),
    ("shape", r"'data' must be uint8 of shape \(N, 768\)"),
    ("dtype", r"'data' must be uint8"),
    ("nlabels", "'labels' must hold 2 integer labels"),
    ("keys", "expected keys 'data' and 'labels'"),
    ("code", "refusing to load global"),
])
def test_bad_batches_raise_dataerror_naming_the_file(root, name, kind, message):
    path = root[0]
    _corrupt(path / "ImageNet16", name, kind)
    with pytest.raises(DataError, match=message) as e:
        load_dataset("imagenet16-120", path, split="full")
    assert str(path / "ImageNet16" / name) in str(e.value)


def test_image_size_other_than_16_is_refused_and_names_are_normalised(root):
    path = root[0]
    with pytest.raises(DataError, match="image_size=32 does not apply to imagenet16-120"):
        load_dataset("imagenet16-120", path, image_size=32)
    a = load_dataset("ImageNet16_120", path, split="full", image_size=16)[0]
    assert a.name == "imagenet16-120" and len(a) == 13
    with pytest.raises(DataError, match="unknown dataset 'imagenet32'.*imagenet16-120"):
        load_dataset("imagenet32", path)


def test_config_accepts_the_new_dataset_names():
    for name in ("imagenet16-120", "imagenet16", "folder"):
        assert load_config(None, [f"data.name={name}"]).data.name == name
    c = load_config(None, ["data.name=folder", "data.image_size=64", "data.workers=2"])
    assert (c.data.image_size, c.data.workers) == (64, 2)
    assert load_config(None, []).data.image_size is None
