"""Checkpoints that a crash cannot tear: checksummed, written to a temporary file, fsynced, renamed.

File format: one header line ``NSHOT-CKPT 1 <sha256 of the payload>\n`` followed by a ``torch.save`` payload.
The previous good checkpoint is kept as ``prev.pt`` and used when ``last.pt`` fails its checksum.

Order of a save (a crash or a full disk at any point leaves a loadable ``last.pt``): the new file is written
completely to ``last.pt.tmp`` and fsynced; only then is ``last.pt`` hard-linked to ``prev.pt`` (a move where the
file system has no hard links) and the temporary file renamed over ``last.pt``. A write that fails removes
its temporary file and leaves ``last.pt`` and ``prev.pt`` as they were.
"""
from __future__ import annotations

import hashlib
import io
import os
import pickle
import warnings
from pathlib import Path
from typing import Any, Union

import torch

MAGIC = b"NSHOT-CKPT 1 "


from ..errors import CheckpointError  # noqa: E402  (re-exported: nshot.train.checkpoint.CheckpointError)
# the atomic write lives in nshot.run.io; re-exported here (tests replace ``atomic_write_bytes`` on this module)
from ..run.io import _write_temp, atomic_write_bytes  # noqa: E402,F401
from ..run.rundir import RunDir  # noqa: E402  (the file names: RunDir.LAST, RunDir.PREV)


def save_checkpoint(folder: Union[str, Path], state: dict[str, Any], keep_previous: bool = True) -> Path:
    """Save ``state`` as ``folder/last.pt``, keeping the previous one as ``folder/prev.pt``.

    ``keep_previous=False`` overwrites ``last.pt`` without touching ``prev.pt`` (used after resuming from
    ``prev.pt`` because ``last.pt`` was damaged: the damaged file must not replace the good one).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    check_plain(state)
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    digest = hashlib.sha256(payload).hexdigest().encode()
    last, prev = folder / RunDir.LAST, folder / RunDir.PREV
    atomic_write_bytes(last, MAGIC + digest + b"\n" + payload, keep_previous=prev if keep_previous else None)
    return last


_PLAIN = (bool, int, float, str, bytes, type(None), torch.dtype, torch.device, torch.Size)


def check_plain(value: Any, where: str = "state") -> None:
    """Refuse (TypeError) anything a weights-only load could not read back: only tensors, numbers, strings,
    None, lists, tuples and dicts with such keys and values may go into a checkpoint."""
    if isinstance(value, torch.Tensor) or isinstance(value, _PLAIN):
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, (str, int, float, bool, type(None))):
                raise TypeError(f"checkpoint {where}: key {k!r} of type {type(k).__name__} is not allowed")
            check_plain(v, f"{where}[{k!r}]")
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_plain(v, f"{where}[{i}]")
        return
    raise TypeError(f"checkpoint {where}: a {type(value).__name__} cannot be saved in a weights-only checkpoint "
                    "(tensors, numbers, strings, lists and dicts only)")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


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
    try:
        return torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path} holds objects other than tensors, numbers, strings, lists and dicts; nshot loads checkpoints "
            f"with weights_only=True and refuses it without running any of its code (a checkpoint written by "
            f"nshot 0.x before weights-only checkpoints, or a crafted file). If you trust its origin, convert it "
            f"once with `python -m nshot.train.checkpoint --convert {path}`. ({_first_line(exc)})") from None


def load_checkpoint(folder: Union[str, Path], map_location: Any = "cpu") -> dict[str, Any]:
    """Load ``folder/last.pt``, falling back to ``folder/prev.pt`` (with a warning) if it is damaged."""
    return load_checkpoint_from(folder, map_location)[0]


def load_checkpoint_from(folder: Union[str, Path], map_location: Any = "cpu") -> tuple[dict[str, Any], Path]:
    """Like :func:`load_checkpoint`, also returning which file was loaded."""
    folder = Path(folder)
    last, prev = folder / RunDir.LAST, folder / RunDir.PREV
    if not last.exists() and not prev.exists():
        raise CheckpointError(f"no checkpoint in {folder} (expected {RunDir.LAST})")
    try:
        return read_checkpoint_file(last, map_location), last
    except CheckpointError as exc:
        if not prev.exists():
            raise
        try:
            state = read_checkpoint_file(prev, map_location)
        except CheckpointError as exc_prev:
            raise CheckpointError(f"{exc}; the previous checkpoint is damaged too: {exc_prev}") from None
        warnings.warn(f"{exc}; using the previous checkpoint {prev}")
        return state, prev


def _plain(value: Any) -> Any:
    """``value`` with numpy arrays/scalars made tensors/Python numbers (old checkpoints held some)."""
    import numpy as np
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if isinstance(value, np.generic):
        return value.item()
    return value


def convert_checkpoint(path: Union[str, Path]) -> Path:
    """Rewrite a checkpoint that a weights-only load refuses, TRUSTING ITS ORIGIN (the old file is unpickled
    in full, which can run code). Keeps the original as ``<name>.unsafe``; refuses states that stay non-plain."""
    path = Path(path)
    raw = path.read_bytes()
    head, sep, payload = raw.partition(b"\n")
    if not sep or not head.startswith(MAGIC) or hashlib.sha256(payload).hexdigest().encode() != head[len(MAGIC):]:
        raise CheckpointError(f"{path} is not an intact nshot checkpoint")
    state = _plain(torch.load(io.BytesIO(payload), map_location="cpu", weights_only=False))
    check_plain(state)
    buf = io.BytesIO()
    torch.save(state, buf)
    new = buf.getvalue()
    os.replace(path, path.with_name(path.name + ".unsafe"))
    atomic_write_bytes(path, MAGIC + hashlib.sha256(new).hexdigest().encode() + b"\n" + new)
    return path


if __name__ == "__main__":   # python -m nshot.train.checkpoint --convert FILE [FILE ...]
    import sys
    args = sys.argv[1:]
    if not args or args[0] != "--convert" or len(args) < 2:
        print("usage: python -m nshot.train.checkpoint --convert CHECKPOINT.pt [...]  (only for files you trust: "
              "the old file is unpickled in full)", file=sys.stderr)
        sys.exit(2)
    for name in args[1:]:
        try:
            print(f"converted {convert_checkpoint(name)} (original kept as {name}.unsafe)")
        except (CheckpointError, OSError, TypeError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(1)
