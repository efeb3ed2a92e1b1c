"""metrics.jsonl: one JSON object per line, appended as training goes (and, with ``run.tensorboard``, the same
numbers as TensorBoard scalars: :mod:`nshot.train.tensorboard`)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Union

from ..run.io import atomic_write_bytes
from ..run.rundir import RunDir


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class MetricsLog:
    """Append-only JSON-lines log. With ``tensorboard=True`` every record also goes to ``tensorboard/`` beside
    the file (the event file is opened at the first record; the package must be installed)."""

    def __init__(self, path: Union[str, Path], tensorboard: bool = False):
        self.path = Path(path)
        self.tensorboard = None
        if tensorboard:
            from .tensorboard import TensorBoardLog, require
            require()   # fail when the run starts, not at the end of its first epoch
            self.tensorboard = TensorBoardLog(RunDir(self.path.parent).tensorboard)

    def write(self, record: dict[str, Any]) -> None:
        try:
            with open(self.path, "a") as f:
                f.write(json.dumps({k: _clean(v) for k, v in record.items()}) + "\n")
        except OSError as exc:
            raise OSError(exc.errno, f"cannot append to {self.path}: {exc.strerror or exc}") from None
        if self.tensorboard is not None:
            self.tensorboard.write(record)

    def read(self) -> list[dict[str, Any]]:
        """The records; a torn last line (a crash or a full disk while appending) is ignored."""
        if not self.path.exists():
            return []
        text = self.path.read_text()
        lines = text.splitlines()
        out = []
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except ValueError:
                if i == len(lines) - 1 and not text.endswith("\n"):
                    break
                raise ValueError(f"{self.path}, line {i + 1}: not a JSON record") from None
        return out

    def truncate_after(self, step: int) -> None:
        """Drop records written after ``step`` (by a run that crashed before its next checkpoint); atomic."""
        kept = [r for r in self.read() if r.get("step", 0) <= step]
        atomic_write_bytes(self.path, "".join(json.dumps(r) + "\n" for r in kept).encode())
        if self.tensorboard is None:
            return
        if self.tensorboard.log_dir.exists():   # TensorBoard hides the dropped steps too
            self.tensorboard.purge_step = step + 1
        else:   # turned on at this resume (run.tensorboard=true): the records so far go in first
            for record in kept:
                self.tensorboard.write(record)
