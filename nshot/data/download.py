"""Fetch an official archive, verify its md5, and extract it safely (no path traversal, no links)."""
from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import tarfile
import tempfile
import urllib.request
import zlib
from pathlib import Path, PurePosixPath

from .images import DataError

log = logging.getLogger(__name__)
CHUNK = 1 << 20


def file_md5(path: Path) -> str:
    """The MD5 hex digest of the file at ``path`` (read in chunks)."""
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def download_file(url: str, dest: Path, md5: str, timeout: float = 60.0) -> None:
    """Stream ``url`` to ``dest`` through a temporary file in dest's folder; it becomes ``dest`` only if its md5
    matches. On any failure nothing is left behind and DataError names the URL and the reason."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
    h = hashlib.md5(usedforsecurity=False)
    try:
        log.info("downloading %s to %s", url, dest)
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                for block in iter(lambda: resp.read(CHUNK), b""):
                    h.update(block)
                    out.write(block)
        except (OSError, http.client.HTTPException, ValueError) as e:  # URLError, HTTPError, timeouts, bad URL
            raise DataError(f"download of {url} failed: {getattr(e, 'reason', None) or e}") from None
        if h.hexdigest() != md5:
            raise DataError(f"download of {url}: md5 {h.hexdigest()} does not match the expected {md5} "
                            f"(file discarded)")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _member_parts(m: tarfile.TarInfo, archive: Path, folder: str) -> tuple[str, ...]:
    p = PurePosixPath(m.name)
    parts = tuple(x for x in p.parts if x not in ("", "."))
    if p.is_absolute() or ".." in parts or "\\" in m.name:
        raise DataError(f"archive {archive}: unsafe member path {m.name!r}; refusing to extract")
    if not (m.isfile() or m.isdir()):
        raise DataError(f"archive {archive}: member {m.name!r} is not a regular file or folder; refusing to extract")
    if not parts or parts[0] != folder:
        raise DataError(f"archive {archive}: member {m.name!r} lies outside {folder}/; refusing to extract")
    return parts


def extract_folder(archive: Path, root: Path, folder: str) -> Path:
    """Extract ``archive`` (tar.gz whose members all lie under ``folder/``) into ``root/folder``.

    Every member is checked before anything is written; extraction goes to a temporary folder in ``root`` which is
    moved into place only when complete, so a failure leaves no half-extracted ``root/folder``.
    """
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".extract-"))
    try:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                members = tar.getmembers()
                for m in members:
                    _member_parts(m, archive, folder)
                kw = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tar.extractall(tmp, members=members, **kw)
        except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
            raise DataError(f"archive {archive} is corrupt or unreadable ({type(e).__name__}: {e})") from None
        src, dest = tmp / folder, root / folder
        if not src.is_dir():
            raise DataError(f"archive {archive} does not contain the folder {folder}/")
        if dest.exists():  # an incomplete earlier copy: bring in the archive's files one by one
            for f in src.rglob("*"):
                if f.is_file():
                    target = dest / f.relative_to(src)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(f, target)
        else:
            os.replace(src, dest)
        return dest
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fetch_and_extract(url: str, md5: str, root: Path, folder: str, timeout: float = 60.0) -> Path:
    """Make ``root/folder`` from the archive at ``url``: reuse ``root/<archive name>`` if it is already there with
    the right md5, else download it (kept in ``root`` afterwards), then extract it safely."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    archive = root / url.rsplit("/", 1)[-1]
    if not (archive.is_file() and file_md5(archive) == md5):
        download_file(url, archive, md5, timeout)
    return extract_folder(archive, root, folder)
