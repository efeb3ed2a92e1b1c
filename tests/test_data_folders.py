"""ImageNet-style class folders (decoded with Pillow, optionally in worker processes) and the device-side
random-resized-crop."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

Image = pytest.importorskip("PIL.Image")

from nshot.data import (DataError, center_crop, load_dataset, load_folder, normalize, random_crop_boxes,  # noqa: E402
                        random_resized_crop, resized_crop)
from nshot.data.folders import IMAGE_EXTENSIONS, channel_stats, resize_size, scan_split  # noqa: E402

SIZE = 8                      # network input size in these tests
S = resize_size(SIZE)         # 9: shorter side before the centre crop; also the stored training size
CLASSES = ["Zebra", "ant", "bee"]      # code-point order: upper case first


def _rgb(seed: int, h: int = S, w: int = S) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _save(path: Path, im, fmt: str, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, fmt, **kw)
    return path


@pytest.fixture
def tree(tmp_path):
    """ROOT/train/<class>/..., ROOT/val/<class>/... with every kind of file; returns ROOT and what was written."""
    root, t, v = tmp_path / "ds", tmp_path / "ds" / "train", tmp_path / "ds" / "val"
    arrays = {}

    def png(path, arr):
        arrays[path] = arr
        return _save(path, Image.fromarray(arr), "PNG")

    png(t / "Zebra" / "a.png", _rgb(1))
    png(t / "Zebra" / "b.PNG", _rgb(2))                                          # upper-case extension
    _save(t / "Zebra" / "c.JPG", Image.fromarray(_rgb(3, 12, 16)), "JPEG", quality=90)   # non-square JPEG
    png(t / "ant" / "rgb.Png", _rgb(4))
    grey = np.random.default_rng(5).integers(0, 256, (S, S), dtype=np.uint8)
    _save(t / "ant" / "grey.png", Image.fromarray(grey, "L"), "PNG")
    rgba = np.random.default_rng(6).integers(0, 256, (S, S, 4), dtype=np.uint8)
    _save(t / "ant" / "rgba.png", Image.fromarray(rgba, "RGBA"), "PNG")
    pal = Image.fromarray(np.random.default_rng(7).integers(0, 4, (S, S), dtype=np.uint8), "P")
    pal.putpalette([10, 20, 30, 40, 50, 60, 70, 80, 90, 200, 210, 220] + [0] * 756)
    _save(t / "bee" / "palette.png", pal, "PNG")
    _save(t / "bee" / "palette_t.png", pal, "PNG", transparency=1)                # palette with transparency
    deep = (np.random.default_rng(8).integers(0, 65536, (S, S))).astype(np.uint16)
    _save(t / "bee" / "deep16.png", Image.fromarray(deep), "PNG")                 # 16-bit grey
    png(t / "bee" / "nested" / "inner.png", _rgb(9))                              # a sub-folder of a class
    _save(t / "bee" / "x.bmp", Image.fromarray(_rgb(10)), "BMP")
    # not images: ignored
    (t / "bee" / "notes.txt").write_text("not an image")
    (t / "bee" / "labels.csv").write_text("a,b\n")
    (t / "ant" / ".DS_Store").write_bytes(b"\0\1junk")
    (t / "README.md").write_text("files outside class folders that are not images are ignored")
    png(v / "ant" / "v1.png", _rgb(11))
    png(v / "bee" / "v2.png", _rgb(12))
    _save(v / "bee" / "v3.jpeg", Image.fromarray(_rgb(13, 20, 14)), "JPEG")
    return root, {"grey": grey, "rgba": rgba, "pal": pal, "deep": deep, "arrays": arrays}


def _chw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))


def _valid_count(folder: Path) -> int:
    """Independent count of the image files the loader must use."""
    return sum(1 for d, _, fs in os.walk(folder) for f in fs
               if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_EXTENSIONS and Path(d) != folder)


# ------------------------------------------------------------------------------------------- folder loading
def test_classes_labels_and_nothing_valid_is_lost(tree):
    root, _ = tree
    train, val = load_folder(root, SIZE, split="full")
    assert len(train) == _valid_count(root / "train") == 11
    assert len(val) == _valid_count(root / "val") == 3
    sc = scan_split(root / "train")
    assert sc.classes == tuple(CLASSES)
    names = [f.relative_to(root / "train").as_posix() for f in sc.files]
    assert names == ["Zebra/a.png", "Zebra/b.PNG", "Zebra/c.JPG", "ant/grey.png", "ant/rgb.Png", "ant/rgba.png",
                     "bee/deep16.png", "bee/nested/inner.png", "bee/palette.png", "bee/palette_t.png", "bee/x.bmp"]
    assert train.y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2] and train.num_classes == val.num_classes == 3
    assert val.y.tolist() == [1, 2, 2]                # val uses train's class indices (it lacks 'Zebra')
    assert train.x.shape == (11, 3, S, S) and val.x.shape == (3, 3, SIZE, SIZE)
    assert train.x.dtype == val.x.dtype == torch.uint8 and train.name == "folder"


def test_pixels_round_trip_exactly_and_modes_become_rgb(tree):
    root, made = tree
    train, val = load_folder(root, SIZE, split="full")
    a = made["arrays"]
    t, v = root / "train", root / "val"
    # an S x S training image is stored as is; the evaluation transform of an S x S image is its centre crop
    assert torch.equal(train.x[0], _chw(a[t / "Zebra" / "a.png"]))
    assert torch.equal(train.x[1], _chw(a[t / "Zebra" / "b.PNG"]))
    o = (S - SIZE) // 2
    assert torch.equal(val.x[0], _chw(a[v / "ant" / "v1.png"][o:o + SIZE, o:o + SIZE]))
    assert torch.equal(val.x[1], _chw(a[v / "bee" / "v2.png"][o:o + SIZE, o:o + SIZE]))
    grey = torch.from_numpy(made["grey"])
    assert all(torch.equal(train.x[3, c], grey) for c in range(3))                 # L -> R = G = B
    assert torch.equal(train.x[5], _chw(made["rgba"][..., :3]))                    # alpha dropped, colour kept
    expanded = _chw(np.asarray(made["pal"].convert("RGB")))
    assert torch.equal(train.x[8], expanded) and torch.equal(train.x[9], expanded)  # palette expanded
    assert all(torch.equal(train.x[6, c], torch.from_numpy((made["deep"] >> 8).astype(np.uint8))) for c in range(3))


def test_workers_give_the_same_tensors(tree):
    root, _ = tree
    a_tr, a_ev = load_folder(root, SIZE, split="full", workers=0)
    b_tr, b_ev = load_folder(root, SIZE, split="full", workers=2)
    assert torch.equal(a_tr.x, b_tr.x) and torch.equal(a_ev.x, b_ev.x)
    assert torch.equal(a_tr.y, b_tr.y) and a_tr.mean == b_tr.mean and a_tr.std == b_tr.std


def test_mean_std_are_the_stored_training_pixels_statistics(tree):
    root, _ = tree
    train, val = load_folder(root, SIZE, split="full")
    f = train.x.double() / 255
    assert train.mean == pytest.approx(tuple(f.mean((0, 2, 3)).tolist()), abs=1e-12)
    assert train.std == pytest.approx(tuple(f.std((0, 2, 3), correction=0).tolist()), abs=1e-12)
    assert val.mean == train.mean and val.std == train.std
    assert channel_stats(np.full((2, 1, 3, 3), 51, np.uint8)) == ((0.2,), (0.0,))


def test_load_dataset_dispatches_folder_and_nb201_split_halves_train(tree):
    root, _ = tree
    tr, ev = load_dataset("folder", root, split="full", image_size=SIZE)
    ref_tr, ref_ev = load_folder(root, SIZE, split="full")
    # load_dataset shuffles each split (seeded): the same images and labels, the classes mixed
    assert tr.y.tolist() != ref_tr.y.tolist() and sorted(tr.y.tolist()) == sorted(ref_tr.y.tolist())
    for x, y in zip(tr.x, tr.y):
        hits = [i for i in range(len(ref_tr)) if torch.equal(ref_tr.x[i], x)]
        assert hits and all(ref_tr.y[i] == y for i in hits)
    again, _ = load_dataset("folder", root, split="full", image_size=SIZE)
    assert torch.equal(again.x, tr.x)
    a, b = load_dataset("folder", root, split="nb201", image_size=SIZE, seed=1)
    assert len(a) + len(b) == 11 and a.x.shape[-1] == S and b.x.shape[-1] == SIZE
    assert sorted(a.y.tolist() + b.y.tolist()) == sorted(ref_tr.y.tolist())        # a partition of train/
    assert sorted(b.y.tolist()) == [0, 1, 2, 2]                                    # floor(n_c / 2) per class
    with pytest.raises(DataError, match="needs image_size"):
        load_dataset("folder", root, split="full")
    with pytest.raises(DataError, match="workers must be an integer >= 0"):
        load_dataset("folder", root, split="full", image_size=SIZE, workers=-1)


def test_non_square_images_are_resized_then_centre_cropped(tmp_path):
    # 2 x 4 image, shorter side 2 -> 9 (x 4.5): 9 x 18, centre crop rows 0..8, cols 4..12; all pixels constant
    arr = np.full((2, 4, 3), (200, 100, 50), np.uint8)
    _save(tmp_path / "train" / "c" / "wide.png", Image.fromarray(arr), "PNG")
    _save(tmp_path / "val" / "c" / "wide.png", Image.fromarray(arr), "PNG")
    tr, ev = load_folder(tmp_path, SIZE, split="full")
    assert tr.x.shape == (1, 3, S, S) and ev.x.shape == (1, 3, SIZE, SIZE)
    assert tr.x[0, :, 0, 0].tolist() == [200, 100, 50] and bool((ev.x[0, 0] == 200).all())


def test_grey_and_cmyk_jpegs_become_rgb_and_large_jpegs_decode_close_to_a_full_decode(tmp_path):
    grey = np.random.default_rng(1).integers(0, 256, (S, S), dtype=np.uint8)
    _save(tmp_path / "train" / "a" / "g.jpg", Image.fromarray(grey, "L"), "JPEG", quality=95)
    _save(tmp_path / "train" / "a" / "k.jpeg", Image.fromarray(_rgb(2)).convert("CMYK"), "JPEG", quality=95)
    # smooth 72 x 96 image: decoded at a reduced DCT scale (draft), then resized to shorter side 9
    yy, xx = np.mgrid[0:72, 0:96]
    smooth = np.stack([yy * 3, xx * 2, (yy + xx)], -1).clip(0, 255).astype(np.uint8)
    _save(tmp_path / "train" / "a" / "big.JPEG", Image.fromarray(smooth), "JPEG", quality=95)
    tr, ev = load_folder(tmp_path, SIZE, split="nb201")              # no val/ needed
    from nshot.data.folders import decode_image
    g = decode_image(tmp_path / "train" / "a" / "g.jpg", S, S)
    assert g.shape == (3, S, S) and (g[0] == g[1]).all() and (g[1] == g[2]).all()
    k = decode_image(tmp_path / "train" / "a" / "k.jpeg", S, S)
    with Image.open(tmp_path / "train" / "a" / "k.jpeg") as im:
        assert np.array_equal(k, np.asarray(im.convert("RGB")).transpose(2, 0, 1))
    big = decode_image(tmp_path / "train" / "a" / "big.JPEG", S, S).astype(float)
    with Image.open(tmp_path / "train" / "a" / "big.JPEG") as im:        # reference: full decode, then resize
        ref = np.asarray(im.convert("RGB").resize((12, 9), Image.BILINEAR))[:, 1:10].transpose(2, 0, 1)
    assert np.abs(big - ref).mean() < 4
    assert len(tr) + len(ev) == 3 and tr.x.shape[1:] == (3, S, S) and ev.x.shape[1:] == (3, SIZE, SIZE)


# -------------------------------------------------------------------------------------------------- errors
def _expect(root, message, split="full", workers=0, **kw):
    with pytest.raises(DataError, match=message) as e:
        load_folder(root, SIZE, split=split, workers=workers, **kw)
    return str(e.value)


@pytest.mark.parametrize("workers", [0, 2])
def test_corrupt_image_names_the_file(tree, workers):
    root, _ = tree
    bad = root / "train" / "bee" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    assert str(bad) in _expect(root, "cannot decode image", workers=workers)
    bad.unlink()
    good = Image.fromarray(_rgb(20, 64, 64))
    _save(bad, good, "JPEG")
    bad.write_bytes(bad.read_bytes()[:200])                                   # truncated JPEG
    assert str(bad) in _expect(root, "cannot decode image", workers=workers)


def test_empty_class_is_named(tree):
    root, _ = tree
    (root / "train" / "cow").mkdir()
    (root / "train" / "cow" / "readme.txt").write_text("no images here")
    assert "'cow'" in _expect(root, "class 'cow' has no images")


def test_val_class_not_in_train_is_named(tree):
    root, _ = tree
    _save(root / "val" / "yak" / "y.png", Image.fromarray(_rgb(30)), "PNG")
    assert "'yak'" in _expect(root, "class folders that the training split does not have")


def test_missing_and_empty_layouts(tmp_path, tree):
    _expect(tmp_path / "nowhere", "does not exist")
    (tmp_path / "flat").mkdir()
    _expect(tmp_path / "flat", "has no train/ folder")
    (tmp_path / "noclass" / "train").mkdir(parents=True)
    (tmp_path / "noclass" / "train" / "notes.txt").write_text("x")
    _expect(tmp_path / "noclass", "holds no class folders")
    for c in ("a", "b"):
        (tmp_path / "noimg" / "train" / c).mkdir(parents=True)
        (tmp_path / "noimg" / "train" / c / "data.npy").write_bytes(b"x")
    _expect(tmp_path / "noimg", "no images under")
    root, _ = tree
    _save(root / "train" / "stray.png", Image.fromarray(_rgb(40)), "PNG")
    _expect(root, "image files outside any class folder")
    (root / "train" / "stray.png").unlink()
    for f in (root / "val").rglob("*"):
        if f.is_file():
            f.unlink()
    _expect(root, "no images under")
    import shutil
    shutil.rmtree(root / "val")
    _expect(root, "split 'full' needs")
    assert len(load_folder(root, SIZE, split="nb201")[0]) == 7     # nb201 does not need val/


# ---------------------------------------------------------------------------------- random-resized-crop
def _batch(b=6, h=20, w=30, seed=0) -> torch.Tensor:
    return torch.randint(0, 256, (b, 3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def test_rrc_is_deterministic_for_a_seed_and_keeps_shape():
    x = _batch()
    a = random_resized_crop(x, MEAN, STD, 16, seed=7)
    assert a.shape == (6, 3, 16, 16) and a.dtype == torch.float32
    assert torch.equal(a, random_resized_crop(x, MEAN, STD, 16, seed=7))
    assert not torch.equal(a, random_resized_crop(x, MEAN, STD, 16, seed=8))
    g = torch.Generator().manual_seed(7)
    assert torch.equal(a, random_resized_crop(x, MEAN, STD, 16, generator=g))
    assert random_resized_crop(x, MEAN, STD, (12, 10), seed=1).shape == (6, 3, 12, 10)


@pytest.mark.parametrize("h, w", [(20, 30), (31, 7), (16, 16), (1, 5)])
def test_rrc_boxes_stay_inside_the_image(h, w):
    boxes = random_crop_boxes(2000, h, w, generator=torch.Generator().manual_seed(h * w))
    top, left, bh, bw = boxes.T
    assert bool((top >= 0).all() and (left >= 0).all() and (bh >= 1).all() and (bw >= 1).all())
    assert bool((top + bh <= h).all() and (left + bw <= w).all())
    assert len({tuple(r) for r in boxes.tolist()}) > 1 or h * w == 5


def test_rrc_box_sizes_follow_scale_and_ratio_with_a_centred_fallback():
    boxes = random_crop_boxes(50, 100, 100, scale=(0.5, 0.5), ratio=(1, 1), generator=torch.Generator().manual_seed(0))
    assert bool((boxes[:, 2:] == 71).all())                       # round(sqrt(0.5 * 100 * 100))
    # an area larger than the image never fits: whole height, width clamped to ratio 4/3, centred
    boxes = random_crop_boxes(5, 20, 30, scale=(2, 2), generator=torch.Generator().manual_seed(0))
    assert boxes.tolist() == [[0, 1, 20, 27]] * 5


def test_resized_crop_is_bilinear_resize_of_the_crop_and_identity_for_the_full_image():
    x = _batch(2)
    full = torch.tensor([[0, 0, 20, 30]] * 2)
    assert torch.equal(resized_crop(x, full, (20, 30)), x.float())             # exact identity
    assert torch.equal(resized_crop(x, full, (20, 30), flip=torch.tensor([True, False])),
                       torch.stack([x[0].float().flip(2), x[1].float()]))
    for box, size in [((3, 5, 10, 12), (17, 23)), ((2, 1, 18, 26), (9, 13)), ((0, 7, 20, 4), (5, 5))]:
        t, lft, h, w = box
        got = resized_crop(x, torch.tensor([box] * 2), size)
        ref = F.interpolate(x[:, :, t:t + h, lft:lft + w].float(), size=size, mode="bilinear", align_corners=False)
        assert torch.allclose(got, ref, atol=1e-3)
        crop = x[:, :, t:t + h, lft:lft + w].float()
        assert got.min() >= crop.min() and got.max() <= crop.max()          # only pixels of the box are read


def test_random_resized_crop_is_resized_crop_of_its_boxes_then_normalised():
    x = _batch()
    g = torch.Generator().manual_seed(3)
    boxes = random_crop_boxes(6, 20, 30, generator=g)
    mirror = torch.randint(0, 2, (6,), generator=g).bool()
    want = (resized_crop(x, boxes, 16, mirror) / 255 - torch.tensor(MEAN).view(1, 3, 1, 1)) \
        / torch.tensor(STD).view(1, 3, 1, 1)
    assert torch.allclose(random_resized_crop(x, MEAN, STD, 16, seed=3), want, atol=1e-5)
    # the full-image box through the public op: scale 1 and the image's own ratio, no flip -> normalize(x)
    sq = _batch(4, 12, 12)
    assert torch.allclose(random_resized_crop(sq, MEAN, STD, 12, seed=0, scale=(1, 1), ratio=(1, 1), flip=False),
                          normalize(sq, MEAN, STD), atol=1e-6)


def test_center_crop_matches_the_eval_offsets():
    x = _batch(1, 9, 10)
    assert torch.equal(center_crop(x, 8), x[..., 0:8, 1:9])
    with pytest.raises(ValueError, match="larger than the images"):
        center_crop(x, 11)
