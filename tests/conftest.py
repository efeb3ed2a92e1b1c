"""Shared pytest fixtures; the plain helper functions and classes several test files use are in
``tests/helpers.py``."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.helpers import shared_data_dir


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The reference data folder; the test is skipped when it is absent (e.g. on a user's machine)."""
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"reference data not found at {path} (set NSHOT_SHARED_DATA or provide ../shared/data)")
    return path


@pytest.fixture
def tiny_data():
    """A small synthetic (train, eval) pair: 3x8x8 images, 4 classes, learnable (class-dependent means)."""
    import torch

    from nshot.data import ImageData

    g = torch.Generator().manual_seed(123)

    def make(n: int) -> ImageData:
        y = torch.randint(0, 4, (n,), generator=g)
        base = (y.float() * 50 + 40).view(n, 1, 1, 1)
        x = (base + 30 * torch.randn(n, 3, 8, 8, generator=g)).clamp(0, 255).to(torch.uint8)
        return ImageData(x, y, 4, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), "tiny")

    return make(96), make(64)


@pytest.fixture(scope="module")
def nb201_table(shared_data):
    """The real NB201 table as ``(c10_val, c10_test)`` dicts keyed by canonical string (skips when absent)."""
    from nshot import spaces
    sp = spaces.get("nb201")
    path = shared_data / "nb201" / "nb201_200ep.csv"
    if not path.is_file():
        pytest.skip(f"NB201 table not found at {path}")
    val, test = {}, {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            a = sp.parse(row["arch_str"])
            val[a], test[a] = float(row["c10_val_200ep"]), float(row["c10_test_200ep"])
    assert len(val) == 15625
    return val, test
