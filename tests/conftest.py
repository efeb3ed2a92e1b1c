"""Shared pytest fixtures."""
from __future__ import annotations

import os
from pathlib import Path

import pytest


def shared_data_dir() -> Path:
    """Where the reference data lives: ``$NSHOT_SHARED_DATA`` if set, else ``<repo>/../shared/data``."""
    env = os.environ.get("NSHOT_SHARED_DATA")
    if env:
        return Path(env).expanduser().resolve()
    return Path(__file__).resolve().parents[2] / "shared" / "data"


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


def tiny_overrides(*extra: str) -> list[str]:
    """Config overrides for a seconds-long CPU run on ``tiny_data``."""
    return ["device=cpu", "model.C=4", "model.N=1", "train.epochs=3", "train.batch_size=32",
            "data.crop_padding=1", "run.progress=none", *extra]
