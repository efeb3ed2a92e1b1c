"""Exception classes the command line classifies, importable without torch (so ``nshot`` can fail fast).

Exit codes of ``nshot``: 0 finished, 130 interrupted (resumable), 2 a usage error (what was typed or pointed
at is wrong: :class:`UsageError`, and every ``ValueError`` such as a bad config key, architecture string,
metric or missing data), 1 a failure while running (:class:`FailureError`, ``OSError`` such as a full disk,
``FloatingPointError`` such as a non-finite loss).
"""
from __future__ import annotations

from typing import Optional

USAGE, FAILURE, INTERRUPTED = 2, 1, 130


class UsageError(RuntimeError):
    """The command was asked something it cannot do as asked (exit status 2)."""


class FailureError(RuntimeError):
    """The command was right, running it failed (exit status 1)."""


class RunDirError(UsageError):
    """A run directory is missing, incomplete or belongs to another kind of run."""


class CheckpointError(FailureError):
    """A checkpoint is missing, torn, corrupted or holds more than plain data."""


def exit_code(exc: BaseException) -> Optional[int]:
    """The exit status for an error nshot reports in one line, or None for a bug (shown with its traceback)."""
    if isinstance(exc, (UsageError, ValueError)):
        return USAGE
    if isinstance(exc, (FailureError, OSError, FloatingPointError)):
        return FAILURE
    return None
