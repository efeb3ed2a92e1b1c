"""TensorBoard scalars beside ``metrics.jsonl`` (``run.tensorboard: true``; the optional ``tensorboard`` package).

Every record written to a run's ``metrics.jsonl`` is also written, as scalars, to an event file in
``RUN/tensorboard/`` (a few-shot or GM-NAS node: ``RUN/nodes/<id>/tensorboard/``, so ``tensorboard --logdir RUN``
shows each node as its own run). The scalars are the record's numbers, nothing else: :func:`scalars` names
each numeric leaf by its key (``loss``, ``acc``, ``lr``, ``grad_momentum_cos``, ...), a list's entries by
their position (``loss_by_quintile/0`` .. ``/4``, ``alphas/03/2``) and a dict's by their key; strings,
booleans and ``None`` are left out. The global step is the record's ``step`` (its ``epoch`` when it has none).

A resumed run drops the records written after its checkpoint from ``metrics.jsonl``; its first event then
carries TensorBoard's purge marker, so the dropped steps are hidden from TensorBoard too.

The package is imported only when a record is written with the option on, so nshot works without it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Optional, Union

from ..preflight import require_tensorboard as require   # a ValueError in the config's words without the package


def _leaves(key: str, value: Any) -> Iterator[tuple[str, float]]:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, (int, float)):
        yield key, float(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(f"{key}/{k}", v)
    elif isinstance(value, (list, tuple)):
        width = len(str(max(len(value) - 1, 0)))
        for i, v in enumerate(value):
            yield from _leaves(f"{key}/{i:0{width}d}", v)


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """The scalars of one metrics record: tag -> value (module docstring); ``step`` is the x-axis, not a tag."""
    out: dict[str, float] = {}
    for key, value in record.items():
        if key != "step":
            out.update(_leaves(key, value))
    return out


def global_step(record: dict[str, Any]) -> int:
    """The x-axis position of a record: its ``step``, else its ``epoch``."""
    return int(record["step"] if "step" in record else record.get("epoch", 0))


class TensorBoardLog:
    """An event-file writer for one run directory's metrics records (created on the first record)."""

    def __init__(self, log_dir: Union[str, Path], purge_step: Optional[int] = None):
        self.log_dir = Path(log_dir)
        self.purge_step = purge_step
        self._writer = None

    def _open(self):
        require()
        from torch.utils.tensorboard import SummaryWriter   # lazy: the package is optional
        return SummaryWriter(str(self.log_dir), purge_step=self.purge_step)

    def write(self, record: dict[str, Any]) -> None:
        """Add the record's scalars at its step and flush them to disk (records come once per epoch)."""
        if self._writer is None:
            self._writer = self._open()
        step = global_step(record)
        for tag, value in scalars(record).items():
            self._writer.add_scalar(tag, value, step)
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
