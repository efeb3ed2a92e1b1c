"""Scoring with several processes: split the work, find this process's rank, meet at a barrier.

Each rank evaluates its shard and appends the scores to its own part file next to ``scores.csv``
(``scores.part-r<rank>.csv``); after a barrier rank 0 merges every part file into ``scores.csv``
(:meth:`nshot.score.scorer.ScoreCache.merge_parts`) and writes the outputs. Only files are exchanged, so the
process group needs nothing but a barrier (gloo, on CPU or GPU machines alike).
"""
from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta
from typing import Iterator, Mapping, Optional, Sequence, TypeVar

from ..train.distributed import from_env

T = TypeVar("T")


def shard(items: Sequence[T], rank: int, world: int, cost: Optional[Sequence[float]] = None) -> list[T]:
    """The items of ``rank`` out of ``world``, in their original order.

    Every item goes to exactly one rank and rank sizes differ by at most one. Without ``cost``: every
    ``world``-th item from position ``rank``. With ``cost`` (one number per item): items sorted by
    decreasing cost (ties by position) are dealt in a snake order (0..w-1, w-1..0, ...), which keeps the
    counts balanced and the total costs close. Deterministic: a pure function of its arguments.
    """
    if isinstance(world, bool) or not isinstance(world, int) or world < 1:
        raise ValueError(f"world must be an int >= 1, got {world!r}")
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world:
        raise ValueError(f"rank must be an int in 0..{world - 1}, got {rank!r}")
    items = list(items)
    if cost is None:
        return items[rank::world]
    cost = [float(c) for c in cost]
    if len(cost) != len(items):
        raise ValueError(f"cost must have one entry per item, got {len(cost)} for {len(items)} items")
    order = sorted(range(len(items)), key=lambda i: (-cost[i], i))
    mine = []
    for p, i in enumerate(order):
        r, q = divmod(p, world)
        if (q if r % 2 == 0 else world - 1 - q) == rank:
            mine.append(i)
    return [items[i] for i in sorted(mine)]


def dist_env(environ: Optional[Mapping[str, str]] = None) -> tuple[int, int]:
    """``(rank, world)`` from ``RANK`` and ``WORLD_SIZE`` as torchrun sets them; ``(0, 1)`` when unset."""
    info = from_env(environ)
    return info.rank, info.world


@contextmanager
def process_group(world: int, timeout_hours: float = 24.0) -> Iterator[None]:
    """A gloo process group from the torchrun environment for the block (nothing when ``world`` is 1, and an
    existing group is used as it is). The long timeout lets a slow rank finish its shard before the barrier."""
    if world <= 1:
        yield
        return
    import torch.distributed as dist
    created = False
    if not dist.is_initialized():
        dist.init_process_group("gloo", timeout=timedelta(hours=timeout_hours))
        created = True
    try:
        yield
    finally:
        if created:
            dist.destroy_process_group()
