"""Accuracy of one architecture on a held-out split: moved to :mod:`nshot.run.evaluate`; re-exported."""
from ..run.evaluate import evaluate_arch  # noqa: F401
