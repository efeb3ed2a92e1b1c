"""What the benchmark scripts share: the repository root, the reference data, CIFAR-10 in the official
layout, and the command line a result records.

The scripts form the package ``benchmarks``, run from the repository root as ``python -m benchmarks.NAME``
(docs/benchmarks.md lists them); none of them edits ``sys.path``.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

REPO = Path(__file__).resolve().parents[1]


def shared_data() -> Path:
    """The reference data folder: ``$NSHOT_SHARED_DATA`` if set, else ``<repo>/../shared/data``."""
    env = os.environ.get("NSHOT_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def prepare_cifar(root: Path) -> Path:
    """Convert the shared JPEG blob into ROOT/cifar-10-batches-py (the official layout), unless it is there.

    The conversion goes to a private folder that is renamed into place when complete, so a killed conversion
    or two processes converting at once never leave a half-written folder that looks finished."""
    final = root / "cifar-10-batches-py"
    if not final.is_dir():
        blob = shared_data() / "cifar10" / "cifar10_jpeg.npz"
        tool = shared_data().parent / "tools" / "cifar_blob_to_batches.py"
        work = root / f".converting-{os.getpid()}"
        try:
            subprocess.run([sys.executable, str(tool), str(blob), str(work)], check=True)
            try:
                os.rename(work / "cifar-10-batches-py", final)
            except OSError:
                if not final.is_dir():   # not a concurrent conversion that finished first
                    raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return root


def command_line(name: str, argv: Optional[Sequence[str]] = None) -> str:
    """The command a result records: ``python -m benchmarks.NAME`` and the arguments (``argv``, or this
    process's own when None)."""
    args = list(argv) if argv is not None else sys.argv[1:]
    return " ".join([f"python -m benchmarks.{name}", *args])


def module_env() -> dict[str, str]:
    """The environment of a child ``python -m benchmarks.NAME`` / ``python -m nshot``: this one with the
    repository root first on ``PYTHONPATH``, so the child imports this checkout from any working folder."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(REPO) + (os.pathsep + path if path else "")}
