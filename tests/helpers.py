"""Helpers shared by several test files, imported as ``from tests.helpers import ...`` (fixtures live in
``conftest.py``). Test files never import each other: what two of them need is here."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import yaml
import torch
from torch import nn

from nshot import spaces
from nshot.config import Config, apply_overrides, from_dict, to_dict
from nshot.spaces import SearchSpace

REPO = Path(__file__).resolve().parents[1]


# -- reference data and tiny runs ----------------------------------------------------------------------------
def shared_data_dir() -> Path:
    """Where the reference data lives: ``$NSHOT_SHARED_DATA`` if set, else ``<repo>/../shared/data``."""
    env = os.environ.get("NSHOT_SHARED_DATA")
    if env:
        return Path(env).expanduser().resolve()
    return REPO.parent / "shared" / "data"


def tiny_overrides(*extra: str) -> list[str]:
    """Config overrides for a seconds-long CPU run on the ``tiny_data`` fixture."""
    return ["device=cpu", "model.C=4", "model.N=1", "train.epochs=3", "train.batch_size=32",
            "data.crop_padding=1", "run.progress=none", *extra]


def pinas_overrides(*extra: str) -> list[str]:
    """:func:`tiny_overrides` for a Pi-NAS run (paired paths, small queue and head)."""
    return tiny_overrides("train.sampler=pair", "train.objective=pinas", "pinas.queue_size=48",
                          "pinas.hidden_dim=16", "pinas.dim=8", *extra)


NB201_COLUMNS = ["nb201_index", "arch_str", "c10_val_200ep", "c10_test_200ep", "c100_val_200ep", "c100_test_200ep",
                 "in16_val_200ep", "in16_test_200ep", "params_c10", "params_c100", "params_in16"]


def write_table(path: Path, n: Optional[int] = 150) -> None:
    """A synthetic NB201 table (the CSV format of docs/benchmarks.md) of ``n`` seeded cells, or of every cell
    when ``n`` is None; accuracy grows with the convolutions of a cell, plus seeded noise."""
    sp = spaces.get("nb201")
    rs = np.random.default_rng(0)
    archs = list(sp.enumerate())
    rows = [",".join(NB201_COLUMNS)]
    for i in (range(len(archs)) if n is None else sorted(rs.choice(len(archs), n, replace=False))):
        arch = archs[i]
        ops = sp.decode(arch)
        acc = 40 + 8 * ops.count(3) + 4 * ops.count(2) + rs.normal()
        p = [sp.num_params(arch, num_classes=k) for k in (10, 100, 120)]
        rows.append(",".join([str(i), arch] + [f"{acc:.3f}"] * 6 + [str(v) for v in p]))
    path.write_text("\n".join(rows) + "\n")


# -- equality of runs -----------------------------------------------------------------------------------------
TIMING = ("seconds", "images_per_s")   # metrics keys that measure time: they differ between equal runs


def _bytes(t: torch.Tensor) -> bytes:
    return t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def assert_same_tensors(a, b, where=""):
    """Recursive equality; tensors compared byte for byte (dtype, shape and bits)."""
    if torch.is_tensor(a):
        assert torch.is_tensor(b) and a.dtype == b.dtype and a.shape == b.shape, where
        assert _bytes(a) == _bytes(b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            assert_same_tensors(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


def states_equal(a: dict, b: dict) -> None:
    """Two model state dicts hold the same keys and equal tensors."""
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def optim_equal(a: dict, b: dict) -> None:
    """Two optimizer state dicts are equal (param groups, and every state entry)."""
    assert a["param_groups"] == b["param_groups"]
    assert a["state"].keys() == b["state"].keys()
    for k in a["state"]:
        for name, v in a["state"][k].items():
            assert torch.equal(v, b["state"][k][name]) if torch.is_tensor(v) else v == b["state"][k][name]


# -- networks -------------------------------------------------------------------------------------------------
def count_macs(net: nn.Module, x: torch.Tensor, arch=None) -> int:
    """Multiply-accumulates of one forward pass of ``x`` (one image) by hooks on every conv and linear layer."""
    total = [0]

    def hook(mod, inp, out):
        total[0] += mod.weight.numel() * (out.shape[2] * out.shape[3] if out.dim() == 4 else 1)

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    net.eval()
    with torch.no_grad():
        net(x) if arch is None else net(x, arch)
    for h in handles:
        h.remove()
    return total[0]


# -- search: fitness functions and a toy space ------------------------------------------------------------------
WEIGHTS = (1.0, 2.0, 3.0, 5.0, 8.0, 13.0)
_NB201 = spaces.get("nb201")


def synthetic(arch: str) -> float:
    """A smooth NB201 fitness with a unique maximum (op 4 on every edge): weighted sum of op indices."""
    return float(sum(w * c for w, c in zip(WEIGHTS, _NB201.decode(arch))))


class Counting:
    """fn(arch) that records every call."""

    def __init__(self, fn=synthetic, forbidden=()):
        self.fn, self.calls, self.forbidden = fn, [], set(forbidden)

    def __call__(self, arch):
        assert arch not in self.forbidden, f"fitness called for cached arch {arch}"
        self.calls.append(arch)
        return self.fn(arch)


class ToySpace(SearchSpace):
    """3 decisions of sizes 2, 3, 4: 24 architectures, to test exhaustion and genericity."""

    name = "toy"

    @property
    def choices(self):
        return (("a", "b"), ("x", "y", "z"), ("0", "1", "2", "3"))

    def parse(self, text):
        parts = text.split("-")
        if len(parts) != 3 or any(p not in c for p, c in zip(parts, self.choices)):
            raise ValueError(f"bad toy arch {text!r}")
        return text

    def decode(self, arch):
        return tuple(c.index(p) for p, c in zip(self.parse(arch).split("-"), self.choices))

    def encode(self, choice):
        return "-".join(c[i] for i, c in zip(self._check_choice(choice), self.choices))

    def num_params(self, arch, scale=10):
        return scale * sum(self.decode(arch))

    def flops(self, arch, scale=10):
        return 100 * scale * self.decode(arch)[2]


def toy_fitness(arch):
    return float(sum((i + 1) * c for i, c in enumerate(ToySpace().decode(arch))))


def nshot(*argv: str, cwd: Path | None = None, timeout: int = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m nshot ARGV`` with this checkout first on the path."""
    e = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env or {})}
    e.pop("NSHOT_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "nshot", *argv], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd or REPO, env=e)


def digits_config(tmp: Path, **train) -> Path:
    cfg = tmp / "digits.yaml"
    cfg.write_text(yaml.safe_dump({"device": "cpu", "threads": 1, "data": {"name": "digits", "crop_padding": 1,
                                                                            "flip": False},
                                   "model": {"C": 4, "N": 1}, "train": {"epochs": 1, "batch_size": 128, **train},
                                   "run": {"progress": "none"}}))
    return cfg


def darts_config(**over) -> Config:
    """A tiny digits DARTS (``arch.method``) config on NB201, C 2 N 1, 2 epochs; ``over``: dotted overrides."""
    base = {"space": {"name": "nb201"}, "model": {"C": 2, "N": 1}, "threads": 1, "device": "cpu",
            "data": {"name": "digits", "train_subset": 96, "eval_subset": 64},
            "optim": {"lr": 0.05, "lr_min": 0.001},
            "train": {"epochs": 2, "batch_size": 32}, "arch": {"method": "darts"}}
    data = apply_overrides(to_dict(from_dict(Config, base)), [f"{k}={v}" for k, v in over.items()])
    return from_dict(Config, data).validate()
