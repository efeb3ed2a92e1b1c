"""Atomic file writes: readers see either the old file or the complete new one (the one implementation)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Union


def atomic_write_bytes(path: Union[str, Path], data: bytes, keep_previous: Union[str, Path, None] = None) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the complete new one.

    With ``keep_previous``, the old ``path`` (if any) becomes that file, but only once the new data is safely
    on disk. An ``OSError`` (disk full, permissions) names ``path``; the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _write_temp(path, data)
    try:
        _commit(tmp, path, None if keep_previous is None else Path(keep_previous))
    except OSError as exc:
        _remove_quietly(tmp)
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}") from None


def _write_temp(path: Path, data: bytes) -> Path:
    """``data`` in ``path.tmp``, fsynced; on failure the partial file is removed and the error names ``path``."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        _remove_quietly(tmp)
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc} (the file was not changed)") from None
    os.close(fd)
    return tmp


def _commit(tmp: Path, path: Path, keep_previous: Union[Path, None]) -> None:
    """Rename the complete ``tmp`` over ``path``, first keeping the old ``path`` as ``keep_previous``."""
    if keep_previous is not None and path.exists():
        link = keep_previous.with_name(keep_previous.name + ".tmp")
        _remove_quietly(link)
        try:
            os.link(path, link)             # path stays in place: there is always a complete last.pt
            os.replace(link, keep_previous)
        except OSError:                      # no hard links here: move it (a crash now leaves prev.pt only)
            _remove_quietly(link)
            os.replace(path, keep_previous)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _remove_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


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
