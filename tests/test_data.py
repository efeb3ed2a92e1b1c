"""nshot.data: CIFAR/digits loading in the real on-disk formats, splits, download, batching, augmentation."""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import io
import json
import os
import pickle
import socket
import subprocess
import sys
import tarfile
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from nshot.data import (DataError, ImageData, augment_batch, epoch_batches, load_dataset, normalize,
                        num_batches)
from nshot.data import cifar
from nshot.data.download import extract_folder, fetch_and_extract
from nshot.data.splits import read_split_file, stratified_halves

PER_BATCH, N_TEST = 20, 10          # fake CIFAR-10: 5 x 20 training images, 10 test images


# ---------------------------------------------------------------------------------------------- helpers
@pytest.fixture(autouse=True)
def _only_localhost(monkeypatch):
    """Tests may contact 127.0.0.1 only, never the real archive URLs, and never through a proxy."""
    real = socket.socket.connect

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] != "127.0.0.1":
            raise AssertionError(f"a test tried to contact {address}")
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


def _images(n: int, seed: int) -> np.ndarray:
    """n random HWC uint8 images (the natural pixel order), to be stored channel-major as CIFAR does."""
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def _rows(hwc: np.ndarray) -> np.ndarray:
    """CIFAR's row format: R plane (1024 values, row-major), then G, then B."""
    return hwc.transpose(0, 3, 1, 2).reshape(len(hwc), 3072)


def _dump(path: Path, obj, protocol: int = pickle.DEFAULT_PROTOCOL) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))


def make_cifar10(root: Path, seed: int = 0) -> dict:
    """A small CIFAR-10 in the official layout; returns the HWC images and labels written."""
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    n = 5 * PER_BATCH
    x, xt = _images(n, seed), _images(N_TEST, seed + 1)
    y = np.random.default_rng(seed).permutation(np.arange(n) % 10)
    yt = np.arange(N_TEST) % 10
    for b in range(5):
        s = slice(b * PER_BATCH, (b + 1) * PER_BATCH)
        _dump(d / f"data_batch_{b + 1}", {b"batch_label": b"training batch", b"labels": [int(v) for v in y[s]],
                                          b"data": _rows(x[s]), b"filenames": [b"f.png"] * PER_BATCH}, protocol=2)
    _dump(d / "test_batch", {b"batch_label": b"testing batch", b"labels": yt.tolist(), b"data": _rows(xt)})
    _dump(d / "batches.meta", {b"label_names": [b"c%d" % i for i in range(10)], b"num_cases_per_batch": PER_BATCH,
                               b"num_vis": 3072})
    return {"x": x, "y": y, "xt": xt, "yt": yt}


def make_cifar100(root: Path, seed: int = 0) -> dict:
    d = root / "cifar-100-python"
    d.mkdir(parents=True)
    x, xt = _images(200, seed), _images(N_TEST, seed + 1)
    y = np.random.default_rng(seed).permutation(np.arange(200) % 100)
    yt = np.arange(N_TEST) * 7 % 100
    for name, xx, yy in (("train", x, y), ("test", xt, yt)):
        _dump(d / name, {b"filenames": [b"f.png"] * len(xx), b"batch_label": name.encode(),
                         b"fine_labels": yy.tolist(), b"coarse_labels": (yy // 5).tolist(), b"data": _rows(xx)})
    _dump(d / "meta", {b"fine_label_names": [b"f%d" % i for i in range(100)],
                       b"coarse_label_names": [b"c%d" % i for i in range(20)]})
    return {"x": x, "y": y, "xt": xt, "yt": yt}


def as_chw(hwc: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(hwc.transpose(0, 3, 1, 2)))


@pytest.fixture
def c10(tmp_path):
    return tmp_path, make_cifar10(tmp_path)


# ---------------------------------------------------------------------------------------------- CIFAR format
def test_cifar10_full_matches_pickles(c10):
    root, ref = c10
    train, test = load_dataset("cifar10", root, split="full")
    assert train.x.dtype == torch.uint8 and train.y.dtype == torch.int64
    assert train.x.shape == (100, 3, 32, 32) and test.x.shape == (N_TEST, 3, 32, 32)
    assert torch.equal(train.x, as_chw(ref["x"])) and torch.equal(test.x, as_chw(ref["xt"]))
    assert train.y.tolist() == ref["y"].tolist() and test.y.tolist() == ref["yt"].tolist()
    assert train.num_classes == test.num_classes == 10 and train.name == "cifar10"
    assert train.mean == (0.4914, 0.4822, 0.4465) and train.std == (0.2470, 0.2435, 0.2616)


def test_channel_major_rows(tmp_path):
    """Pixel (c, r, col) of image i is byte c*1024 + r*32 + col of the i-th row of b'data'."""
    make_cifar10(tmp_path)
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_2", "rb") as f:
        row = pickle.load(f, encoding="bytes")[b"data"][3]
    train, _ = load_dataset("cifar10", tmp_path, split="full")
    img = train.x[PER_BATCH + 3]
    for c, r, col in [(0, 0, 0), (1, 5, 7), (2, 31, 30), (0, 17, 2)]:
        assert img[c, r, col].item() == row[c * 1024 + r * 32 + col]


def test_cifar100_full(tmp_path):
    ref = make_cifar100(tmp_path)
    train, test = load_dataset("cifar100", tmp_path, split="full")
    assert train.x.shape == (200, 3, 32, 32) and len(test) == N_TEST
    assert torch.equal(train.x, as_chw(ref["x"])) and test.y.tolist() == ref["yt"].tolist()
    assert train.num_classes == 100 and train.mean == (0.5071, 0.4865, 0.4409)


def test_cifar100_nb201_halves(tmp_path):
    ref = make_cifar100(tmp_path)
    a, b = load_dataset("cifar100", tmp_path, split="nb201", seed=3)
    assert len(a) == len(b) == 100
    assert a.y.bincount(minlength=100).tolist() == [1] * 100 == b.y.bincount(minlength=100).tolist()
    both = torch.cat([a.x, b.x]).reshape(200, -1)
    assert len({bytes(r.numpy()) for r in both}) == 200          # disjoint and covering (images are distinct)
    assert set(map(bytes, _rows(ref["x"]))) == {bytes(r) for r in _rows(np.asarray(torch.cat([a.x, b.x])
                                                                                   .permute(0, 2, 3, 1)))}


def test_pickle_variants(tmp_path):
    """Batches that name numpy.core (numpy 1 / Python 2 era, as the official files do) and protocol-5 batches load."""
    ref = make_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    raw = (folder / "data_batch_1").read_bytes()                # protocol 2: newline-terminated global names
    assert b"numpy._core.multiarray\n" in raw
    (folder / "data_batch_1").write_bytes(raw.replace(b"numpy._core.", b"numpy.core."))
    with open(folder / "data_batch_2", "rb") as f:
        _dump(folder / "data_batch_2", pickle.load(f), protocol=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)   # numpy 2 warns on numpy.core; the loader maps it
        train, _ = load_dataset("cifar10", tmp_path, split="full")
    assert torch.equal(train.x, as_chw(ref["x"]))


# ---------------------------------------------------------------------------------------------- errors
def test_missing_data_names_path_and_layout(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset("cifar10", tmp_path / "nowhere")
    msg = str(e.value)
    assert str(tmp_path / "nowhere" / "cifar-10-batches-py") in msg
    assert "data_batch_1..5, test_batch" in msg and "data.download=true" in msg
    assert "download=True" not in msg             # the config key a user sets, not the Python keyword (issue 22)
    with pytest.raises(DataError, match=r"cifar-100-python/train, test"):
        load_dataset("cifar100", tmp_path)


def test_missing_one_file(c10):
    root, _ = c10
    (root / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(DataError, match="missing: test_batch"):
        load_dataset("cifar10", root, split="full")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_pickle_names_file(c10, damage):
    root, _ = c10
    path = root / "cifar-10-batches-py" / "data_batch_3"
    raw = path.read_bytes()
    path.write_bytes({"truncate": raw[:len(raw) // 2], "garbage": b"\x00not a pickle" * 10, "empty": b""}[damage])
    with pytest.raises(DataError) as e:
        load_dataset("cifar10", root)
    assert str(path) in str(e.value)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


@pytest.mark.parametrize("content, match", [
    ({b"data": _Evil(), b"labels": []}, "refusing to load global"),
    ([1, 2, 3], "expected a pickled dict"),
    ({b"data": np.zeros((2, 3072), np.uint8)}, "b'labels'"),
    ({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, r"\(N, 3072\)"),
    ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, "uint8"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "2 integer labels"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, r"\[0, 10\)"),
])
def test_malformed_batch(c10, monkeypatch, content, match):
    root, _ = c10
    monkeypatch.chdir(root)
    path = root / "cifar-10-batches-py" / "data_batch_5"
    _dump(path, content)
    with pytest.raises(DataError, match=match) as e:
        load_dataset("cifar10", root)
    assert str(path) in str(e.value)
    assert not (root / "pwned.txt").exists()


def test_unknown_name_and_split(tmp_path):
    with pytest.raises(DataError, match="unknown dataset 'mnist'"):
        load_dataset("mnist", tmp_path)
    with pytest.raises(DataError, match="unknown split 'half'.*nb201, full"):
        load_dataset("cifar10", tmp_path, split="half")


# ---------------------------------------------------------------------------------------------- splits
def test_split_file(c10):
    root, ref = c10
    rng = np.random.default_rng(1)
    perm = rng.permutation(100)
    split = {"train": perm[:40].tolist(), "valid": perm[40:70].tolist()}
    f = root / "split.json"
    f.write_text(json.dumps(split))
    tr, ev = load_dataset("cifar10", root, split="nb201", split_file=f)
    full = as_chw(ref["x"])
    assert torch.equal(tr.x, full[split["train"]]) and torch.equal(ev.x, full[split["valid"]])
    assert tr.y.tolist() == ref["y"][split["train"]].tolist()
    assert ev.y.tolist() == ref["y"][split["valid"]].tolist()


def test_fallback_split_is_seeded_stratified(c10):
    root, ref = c10
    a_tr, a_ev = load_dataset("cifar10", root, seed=5)
    b_tr, b_ev = load_dataset("cifar10", root, seed=5)
    c_tr, _ = load_dataset("cifar10", root, seed=6)
    assert torch.equal(a_tr.x, b_tr.x) and torch.equal(a_ev.y, b_ev.y)
    assert not torch.equal(a_tr.x, c_tr.x)
    tr_idx, ev_idx = stratified_halves(ref["y"], 5)
    assert torch.equal(a_tr.x, as_chw(ref["x"])[tr_idx])
    assert sorted(np.concatenate([tr_idx, ev_idx]).tolist()) == list(range(100))
    assert a_tr.y.bincount(minlength=10).tolist() == [5] * 10 == a_ev.y.bincount(minlength=10).tolist()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 6), max_size=80), st.integers(0, 2**32 - 1))
def test_stratified_halves_property(labels, seed):
    y = np.asarray(labels, dtype=np.int64)
    tr, ev = stratified_halves(y, seed)
    assert np.array_equal(np.sort(np.concatenate([tr, ev])), np.arange(len(y)))
    assert np.all(np.diff(tr) > 0) and np.all(np.diff(ev) > 0)
    for c in np.unique(y):
        n = int((y == c).sum())
        assert int((y[tr] == c).sum()) == (n + 1) // 2 and int((y[ev] == c).sum()) == n // 2
    tr2, ev2 = stratified_halves(y, seed)
    assert np.array_equal(tr, tr2) and np.array_equal(ev, ev2)


@pytest.mark.parametrize("text, match", [
    ("{not json", "not valid JSON"),
    ("[1, 2, 3]", "expected a JSON object"),
    ('{"train": [0, 1]}', "expected a JSON object"),
    ('{"train": [0, 1], "valid": [2, 100]}', r"'valid': indices must lie in \[0, 100\)"),
    ('{"train": [-1, 1], "valid": [2]}', r"'train': indices must lie in \[0, 100\)"),
    ('{"train": [0, 1, 2], "valid": [2, 3]}', "1 indices are in both"),
    ('{"train": [0, 1, 1], "valid": [2]}', "duplicate"),
    ('{"train": [0, 1.5], "valid": [2]}', "integer indices"),
    ('{"train": [[0, 1]], "valid": [2]}', "integer indices"),
    ('{"train": [], "valid": [2]}', "non-empty"),
    ('{"train": "0,1", "valid": [2]}', "integer indices"),
])
def test_bad_split_file(c10, text, match):
    root, _ = c10
    f = root / "bad_split.json"
    f.write_text(text)
    with pytest.raises(DataError, match=match) as e:
        load_dataset("cifar10", root, split_file=f)
    assert str(f) in str(e.value)


def test_missing_split_file(c10):
    root, _ = c10
    with pytest.raises(DataError, match="cannot read") as e:
        read_split_file(root / "absent.json", 100)
    assert str(root / "absent.json") in str(e.value)


# ---------------------------------------------------------------------------------------------- download
class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        type(self).requests.append(self.path)
        super().do_GET()


@pytest.fixture
def http_root(tmp_path):
    """Serve tmp_path/www on 127.0.0.1 (random port) for the test; yields (folder, base URL, request log)."""
    www = tmp_path / "www"
    www.mkdir()
    _Handler.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(www)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield www, f"http://127.0.0.1:{server.server_address[1]}", _Handler.requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _tar_folder(src: Path, folder: str, dest: Path) -> str:
    with tarfile.open(dest, "w:gz") as tar:
        tar.add(src / folder, arcname=folder)
    return hashlib.md5(dest.read_bytes()).hexdigest()


def _serve_cifar10(tmp_path, www, base, monkeypatch, md5=None):
    ref = make_cifar10(tmp_path / "src")
    real_md5 = _tar_folder(tmp_path / "src", "cifar-10-batches-py", www / "cifar-10-python.tar.gz")
    spec = dataclasses.replace(cifar.SPECS["cifar10"], url=f"{base}/cifar-10-python.tar.gz", md5=md5 or real_md5)
    monkeypatch.setitem(cifar.SPECS, "cifar10", spec)
    return ref


def _leftovers(root: Path) -> list[str]:
    return [p.name for p in root.iterdir() if p.name.startswith(".extract-") or p.name.endswith(".part")]


def test_official_archives():
    assert cifar.SPECS["cifar10"].url == "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    assert cifar.SPECS["cifar10"].md5 == "c58f30108f718f92721af3b95e74349a"
    assert cifar.SPECS["cifar100"].url == "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
    assert cifar.SPECS["cifar100"].md5 == "eb9058c3a382ffc7106e4002c42a8d85"


def test_download_verifies_and_loads(tmp_path, http_root, monkeypatch):
    www, base, requests = http_root
    ref = _serve_cifar10(tmp_path, www, base, monkeypatch)
    root = tmp_path / "data"
    train, test = load_dataset("cifar10", root, split="full", download=True)
    assert torch.equal(train.x, as_chw(ref["x"])) and test.y.tolist() == ref["yt"].tolist()
    assert requests == ["/cifar-10-python.tar.gz"]
    assert (root / "cifar-10-python.tar.gz").is_file() and not _leftovers(root)
    load_dataset("cifar10", root, split="full", download=True)      # present: nothing fetched again
    assert len(requests) == 1


def test_download_reuses_verified_archive(tmp_path, http_root, monkeypatch):
    www, base, requests = http_root
    _serve_cifar10(tmp_path, www, base, monkeypatch)
    root = tmp_path / "data"
    root.mkdir()
    (root / "cifar-10-python.tar.gz").write_bytes((www / "cifar-10-python.tar.gz").read_bytes())
    train, _ = load_dataset("cifar10", root, download=True)
    assert len(train) == 50 and requests == []


def test_download_wrong_md5_leaves_nothing(tmp_path, http_root, monkeypatch):
    www, base, _ = http_root
    _serve_cifar10(tmp_path, www, base, monkeypatch, md5="0" * 32)
    root = tmp_path / "data"
    with pytest.raises(DataError, match="does not match the expected 0000") as e:
        load_dataset("cifar10", root, download=True)
    assert str(root / "cifar-10-batches-py") in str(e.value)
    assert not (root / "cifar-10-batches-py").exists() and not (root / "cifar-10-python.tar.gz").exists()
    assert not _leftovers(root)


def test_download_http_error(tmp_path, http_root, monkeypatch):
    www, base, _ = http_root
    _serve_cifar10(tmp_path, www, base, monkeypatch)
    (www / "cifar-10-python.tar.gz").unlink()                       # server answers 404
    root = tmp_path / "data"
    with pytest.raises(DataError) as e:
        load_dataset("cifar10", root, download=True)
    msg = str(e.value)
    assert f"{base}/cifar-10-python.tar.gz failed" in msg and "data_batch_1..5, test_batch" in msg
    assert not _leftovers(root) and not (root / "cifar-10-batches-py").exists()


def test_partial_folder_is_completed_by_download(tmp_path, http_root, monkeypatch):
    www, base, _ = http_root
    ref = _serve_cifar10(tmp_path, www, base, monkeypatch)
    root = tmp_path / "data"
    (root / "cifar-10-batches-py").mkdir(parents=True)
    (root / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"stale")
    train, _ = load_dataset("cifar10", root, split="full", download=True)
    assert torch.equal(train.x, as_chw(ref["x"]))


def _evil_tar(path: Path, kind: str) -> str:
    with tarfile.open(path, "w:gz") as tar:
        def add(name, data=b"x", **kw):
            info = tarfile.TarInfo(name)
            for k, v in kw.items():
                setattr(info, k, v)
            info.size = len(data) if info.type == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)
        add("cifar-10-batches-py/data_batch_1")
        if kind == "dotdot":
            add("cifar-10-batches-py/../../escaped")
        elif kind == "absolute":
            add("/tmp/nshot-escaped-absolute")
        elif kind == "symlink":
            add("cifar-10-batches-py/link", type=tarfile.SYMTYPE, linkname="/etc/passwd")
        elif kind == "outside":
            add("other/file")
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("kind, match", [("dotdot", "unsafe member"), ("absolute", "unsafe member"),
                                         ("symlink", "not a regular file"), ("outside", "outside")])
def test_unsafe_archive_refused(tmp_path, http_root, kind, match):
    www, base, _ = http_root
    md5 = _evil_tar(www / "evil.tar.gz", kind)
    root = tmp_path / "a" / "data"
    with pytest.raises(DataError, match=match):
        fetch_and_extract(f"{base}/evil.tar.gz", md5, root, "cifar-10-batches-py")
    assert not (root / "cifar-10-batches-py").exists() and not _leftovers(root)
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "a" / "escaped").exists()
    assert not Path("/tmp/nshot-escaped-absolute").exists()


def test_truncated_archive(tmp_path):
    src = tmp_path / "src"
    make_cifar10(src)
    arc = tmp_path / "a.tar.gz"
    _tar_folder(src, "cifar-10-batches-py", arc)
    arc.write_bytes(arc.read_bytes()[:2000])
    root = tmp_path / "data"
    root.mkdir()
    with pytest.raises(DataError, match="corrupt or unreadable") as e:
        extract_folder(arc, root, "cifar-10-batches-py")
    assert str(arc) in str(e.value) and list(root.iterdir()) == []


# ---------------------------------------------------------------------------------------------- batching
def test_epoch_batches_cover_and_determinism():
    n, bs = 103, 10
    b0 = list(epoch_batches(n, bs, seed=7, epoch=0))
    assert len(b0) == num_batches(n, bs, False) == 11 and len(b0[-1]) == 3
    assert all(b.dtype == torch.int64 and b.device.type == "cpu" for b in b0)
    assert sorted(torch.cat(b0).tolist()) == list(range(n))
    assert torch.equal(torch.cat(b0), torch.cat(list(epoch_batches(n, bs, seed=7, epoch=0))))
    assert not torch.equal(torch.cat(b0), torch.cat(list(epoch_batches(n, bs, seed=7, epoch=1))))
    assert not torch.equal(torch.cat(b0), torch.cat(list(epoch_batches(n, bs, seed=8, epoch=0))))
    assert torch.equal(torch.cat(list(epoch_batches(n, bs, 7, 0, shuffle=False))), torch.arange(n))
    dl = list(epoch_batches(n, bs, 7, 0, drop_last=True))
    assert len(dl) == num_batches(n, bs, True) == 10 and all(len(b) == bs for b in dl)
    assert list(epoch_batches(n, bs, 7, 0, start=11)) == []
    with pytest.raises(ValueError, match="start"):
        list(epoch_batches(n, bs, 7, 0, start=12))
    with pytest.raises(ValueError, match="batch_size"):
        list(epoch_batches(n, 0, 7, 0))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 300), st.integers(1, 64), st.integers(0, 2**40), st.integers(0, 1000), st.booleans(),
       st.data())
def test_epoch_batches_resume_equals_tail(n, bs, seed, epoch, drop_last, data):
    full = list(epoch_batches(n, bs, seed, epoch, drop_last=drop_last))
    start = data.draw(st.integers(0, len(full)))
    tail = list(epoch_batches(n, bs, seed, epoch, drop_last=drop_last, start=start))
    assert len(tail) == len(full) - start
    assert all(torch.equal(a, b) for a, b in zip(full[start:], tail))


# ---------------------------------------------------------------------------------------------- augmentation
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def _batch(b=16, c=3, h=8, w=8, seed=0):
    return torch.randint(0, 256, (b, c, h, w), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def test_normalize_values():
    x = _batch()
    want = (x.double() / 255 - torch.tensor(MEAN, dtype=torch.double).view(1, 3, 1, 1)) \
        / torch.tensor(STD, dtype=torch.double).view(1, 3, 1, 1)
    out = normalize(x, MEAN, STD)
    assert out.dtype == torch.float32 and torch.allclose(out.double(), want, atol=1e-5)
    with pytest.raises(TypeError, match="uint8"):
        normalize(x.float(), MEAN, STD)
    with pytest.raises(ValueError, match="3 values"):
        normalize(x, (0.5,), (0.5,))


def test_augment_shape_and_identity():
    x = _batch()
    out = augment_batch(x, MEAN, STD, seed=0)
    assert out.shape == x.shape and out.dtype == torch.float32 and out.device == x.device
    assert torch.equal(augment_batch(x, MEAN, STD, seed=3, pad=0, flip=False), normalize(x, MEAN, STD))


def test_augment_is_a_shifted_flipped_crop():
    """Brute force: every output image equals one of the (2*pad+1)^2 * 2 crops of its zero-padded input."""
    pad, x = 2, _batch(b=64, h=6, w=7)
    out = augment_batch(x, MEAN, STD, seed=11, pad=pad)
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    seen = set()
    for i in range(len(x)):
        matches = [(dy, dx, fl) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1) for fl in (False, True)
                   if torch.equal(normalize((lambda c: c.flip(-1) if fl else c)(
                       padded[i:i + 1, :, dy:dy + 6, dx:dx + 7]), MEAN, STD), out[i:i + 1])]
        assert matches, f"image {i} is not a crop of its padded input"
        seen.update(matches)
    assert {m[2] for m in seen} == {False, True}                # both flipped and plain images occur
    assert len({m[:2] for m in seen}) > 5                       # and several offsets


def test_augment_determinism():
    x = _batch(b=32)
    a = augment_batch(x, MEAN, STD, seed=4)
    assert torch.equal(a, augment_batch(x, MEAN, STD, seed=4))
    assert not torch.equal(a, augment_batch(x, MEAN, STD, seed=5))
    g = torch.Generator().manual_seed(4)
    assert torch.equal(a, augment_batch(x, MEAN, STD, generator=g))
    assert not torch.equal(a, augment_batch(x, MEAN, STD, generator=g))   # the generator advanced


def test_augment_single_channel():
    x = _batch(c=1)
    assert augment_batch(x, (0.3,), (0.4,), seed=0).shape == x.shape


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_augment_on_cuda_matches_crop():
    x = _batch(b=8).cuda()
    out = augment_batch(x, MEAN, STD, seed=0)
    assert out.device == x.device and torch.equal(out, augment_batch(x, MEAN, STD, seed=0))
    assert torch.equal(augment_batch(x, MEAN, STD, seed=0, pad=0, flip=False).cpu(),
                       normalize(x.cpu(), MEAN, STD))
    with pytest.raises(ValueError, match="generator is on"):
        augment_batch(x, MEAN, STD, generator=torch.Generator())


# ---------------------------------------------------------------------------------------------- ImageData
def test_image_data_subset_and_to():
    x = _batch(b=10, c=1, h=4, w=4)
    d = ImageData(x, torch.arange(10) % 3, 3, (0.5,), (0.25,), "toy")
    assert len(d) == 10 and len(d.subset(4)) == 4 and len(d.subset(99)) == 10
    s = d.subset([7, 2])
    assert torch.equal(s.x, x[[7, 2]]) and s.y.tolist() == [1, 2] and s.name == "toy" and s.mean == (0.5,)
    assert torch.equal(d.subset(torch.tensor([1, 3])).y, torch.tensor([1, 0]))
    assert torch.equal(d.subset(np.array([0, 9])).x, x[[0, 9]])
    assert len(d.subset(d.y == 0)) == 4
    assert d.to("cpu").x.device.type == "cpu"
    with pytest.raises(DataError, match=r"\[0, 10\)"):
        d.subset([10])
    with pytest.raises(DataError, match="uint8"):
        ImageData(x.float(), d.y, 3, (0.5,), (0.25,))
    with pytest.raises(DataError, match="int64"):
        ImageData(x, d.y.int(), 3, (0.5,), (0.25,))


# ---------------------------------------------------------------------------------------------- digits
def test_digits_offline():
    tr, ev = load_dataset("digits")
    assert tr.x.shape[1:] == (1, 8, 8) and tr.x.dtype == torch.uint8 and tr.num_classes == 10
    assert len(tr) + len(ev) == 1797 and abs(len(tr) - len(ev)) <= 10
    assert tr.y.unique().tolist() == list(range(10)) and int(tr.x.max()) == 255
    assert len(tr.mean) == len(tr.std) == 1 and 0 < tr.mean[0] < 1
    tr2, _ = load_dataset("digits", seed=0)
    tr3, _ = load_dataset("digits", seed=1, split="full")
    assert torch.equal(tr.x, tr2.x) and not torch.equal(tr.y, tr3.y)
    full = torch.cat([tr.x, ev.x]).float() / 255
    assert abs(full.mean().item() - tr.mean[0]) < 1e-6 and abs(full.std(unbiased=False).item() - tr.std[0]) < 1e-6


# ---------------------------------------------------------------------------------------------- real data
@pytest.fixture(scope="session")
def real_cifar10(shared_data, tmp_path_factory):
    """The shared CIFAR-10 converted into the official pickled layout (about 6-12 s, once per session)."""
    pytest.importorskip("PIL", reason="Pillow is needed to decode the shared CIFAR-10 JPEGs")
    blob = shared_data / "cifar10" / "cifar10_jpeg.npz"
    tool = shared_data.parent / "tools" / "cifar_blob_to_batches.py"
    if not blob.is_file() or not tool.is_file():
        pytest.skip(f"shared CIFAR-10 not found ({blob} and {tool} are needed)")
    out = tmp_path_factory.mktemp("cifar10_real")
    subprocess.run([sys.executable, str(tool), str(blob), str(out)], check=True)
    return out, blob


def test_real_cifar10_nb201_split(real_cifar10, shared_data):
    root, blob = real_cifar10
    split_file = shared_data / "nb201" / "cifar10_valid_split.json"
    if not split_file.is_file():
        pytest.skip(f"NB201 split file not found at {split_file}")
    tr, ev = load_dataset("cifar10", root, split="nb201", split_file=split_file)
    assert len(tr) == len(ev) == 25000 and tr.x.shape[1:] == (3, 32, 32)
    split = json.loads(split_file.read_text())
    with np.load(blob) as z:
        y = z["y_train"].astype(np.int64)
    assert tr.y.bincount(minlength=10).tolist() == np.bincount(y[split["train"]], minlength=10).tolist()
    assert ev.y.tolist() == y[split["valid"]].tolist()


def test_real_cifar10_full(real_cifar10):
    from PIL import Image

    root, blob = real_cifar10
    tr, te = load_dataset("cifar10", root, split="full")
    assert len(tr) == 50000 and len(te) == 10000
    assert tr.y.bincount().tolist() == [5000] * 10 and te.y.bincount().tolist() == [1000] * 10
    with np.load(blob) as z:
        jpeg, off = z["train_jpeg"], z["train_offsets"]
    for i in (0, 12345, 49999):                                  # pixels in the right (channel-major) order
        rgb = np.array(Image.open(io.BytesIO(jpeg[off[i]:off[i + 1]].tobytes())).convert("RGB"))
        assert torch.equal(tr.x[i], torch.from_numpy(rgb).permute(2, 0, 1))
    mean = tr.x.numpy().sum((0, 2, 3), dtype=np.int64) / (255 * 50000 * 32 * 32)
    assert np.allclose(mean.tolist(), tr.mean, atol=2e-3)        # the documented mean, up to JPEG error
