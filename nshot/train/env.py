"""What a run records about where it ran: versions, git commit, device."""
from __future__ import annotations

import platform
import subprocess
from pathlib import Path
from typing import Any

import torch


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available, else CPU; other names are checked."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        from ..config import ConfigError
        raise ConfigError(f"device = {name!r} was asked for, but CUDA is not available on this machine "
                          "(use device=cpu or device=auto)")
    return dev


def git_commit() -> str | None:
    """The git commit of the nshot source tree, if it is a checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment(device: torch.device) -> dict[str, Any]:
    """Versions, commit, device description."""
    import numpy

    from .. import __version__
    info: dict[str, Any] = {
        "nshot": __version__, "git_commit": git_commit(), "python": platform.python_version(),
        "torch": torch.__version__, "numpy": numpy.__version__, "platform": platform.platform(),
        "device": str(device), "threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
    return info
