"""Checkpoints that a crash cannot tear: checksummed, written to a temporary file, fsynced, renamed.

File format: one header line ``NSHOT-CKPT 1 <sha256 of the payload>\n`` followed by a ``torch.save`` payload.
The previous good checkpoint is kept as ``prev.pt`` and used when ``last.pt`` fails its checksum.
"""
from __future__ import annotations

import hashlib
import io
import os
import warnings
from pathlib import Path
from typing import Any, Union

import torch

MAGIC = b"NSHOT-CKPT 1 "


class CheckpointError(RuntimeError):
    """A checkpoint is missing, torn or corrupted."""


def atomic_write_bytes(path: Union[str, Path], data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the complete new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(folder: Union[str, Path], state: dict[str, Any]) -> Path:
    """Save ``state`` as ``folder/last.pt``, keeping the previous one as ``folder/prev.pt``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    digest = hashlib.sha256(payload).hexdigest().encode()
    last, prev = folder / "last.pt", folder / "prev.pt"
    if last.exists():
        os.replace(last, prev)
    atomic_write_bytes(last, MAGIC + digest + b"\n" + payload)
    return last


def read_checkpoint_file(path: Union[str, Path], map_location: Any = "cpu") -> dict[str, Any]:
    """Load one checkpoint file, verifying its checksum."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror}") from None
    head, sep, payload = raw.partition(b"\n")
    if not sep or not head.startswith(MAGIC):
        raise CheckpointError(f"{path} is not an nshot checkpoint (bad header)")
    if hashlib.sha256(payload).hexdigest().encode() != head[len(MAGIC):]:
        raise CheckpointError(f"{path} is corrupted or truncated (checksum mismatch)")
    return torch.load(io.BytesIO(payload), map_location=map_location, weights_only=False)


def load_checkpoint(folder: Union[str, Path], map_location: Any = "cpu") -> dict[str, Any]:
    """Load ``folder/last.pt``, falling back to ``folder/prev.pt`` (with a warning) if it is damaged."""
    folder = Path(folder)
    last, prev = folder / "last.pt", folder / "prev.pt"
    if not last.exists() and not prev.exists():
        raise CheckpointError(f"no checkpoint in {folder} (expected last.pt)")
    try:
        return read_checkpoint_file(last, map_location)
    except CheckpointError as exc:
        if not prev.exists():
            raise
        warnings.warn(f"{exc}; using the previous checkpoint {prev}")
        return read_checkpoint_file(prev, map_location)
