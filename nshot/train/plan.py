"""The step plan: what one training step does, decided by the plug-ins, carried out by an executor.

A :class:`StepPlanner` asks the plug-ins, for iteration ``t``:

- the **sampler** (``sampler.draw``) which path(s) to train and, given the momentum **grouping**, into which
  momentum group the step goes (a sampler whose paths must share a group draws the group first);
- the **LR policy** (``lr_policy.rates``) the optimizer lr and each path's loss scale (a subnet-aware policy
  over several paths keeps the base lr and scales the losses, decision 4);

inside the run's :class:`SubSpace` (a few-shot sub-supernet: its mask, schedule start, random-stream salt and
the decisions momentum separation may not use). The result is a :class:`StepPlan`, a pure function of ``t``,
which both executors (eager: ``Trainer.train_step``; static: :class:`nshot.train.static.StaticStep`) run
without knowing which methods made it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch

from . import rng


@dataclass(frozen=True)
class SubSpace:
    """The part of the space a (few-shot) sub-supernet trains, as one value.

    ``mask``: per decision, the allowed choice indices (None: the whole space); ``start``: the step its LR
    schedule starts at (a child that starts afresh at a split gets its own schedule); ``salt``: separates its
    random streams and its initialisation from other nodes' (None: a one-shot run); ``exclude``: decisions that
    momentum separation may not use (the decisions split above it).
    """
    mask: Optional[tuple[tuple[int, ...], ...]] = None
    start: int = 0
    salt: Optional[int] = None
    exclude: tuple[int, ...] = ()

    @classmethod
    def of(cls, mask: Any = None, start: int = 0, salt: Optional[int] = None,
           exclude: Sequence[int] = ()) -> "SubSpace":
        """A sub-space from plain values (lists from a checkpoint or a partition tree)."""
        m = tuple(tuple(int(c) for c in d) for d in mask) if mask is not None else None
        return cls(m, int(start), None if salt is None else int(salt), tuple(int(d) for d in exclude))

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "SubSpace":
        """The sub-space recorded in a checkpoint (the whole space for a one-shot run)."""
        return cls.of(state.get("mask"), state.get("schedule_start", 0), state.get("node"),
                      state.get("ms_exclude", ()))

    def state(self) -> dict[str, Any]:
        """Its checkpoint entries (the keys :meth:`from_state` reads)."""
        return {"mask": [list(m) for m in self.mask] if self.mask is not None else None,
                "schedule_start": self.start, "node": self.salt, "ms_exclude": list(self.exclude)}

    def fixed(self) -> list[int]:
        """Decisions with fewer than two allowed choices (nothing to separate on them)."""
        return [d for d, m in enumerate(self.mask) if len(m) < 2] if self.mask is not None else []

    def grouping_exclusions(self) -> list[int]:
        """Decisions a momentum grouping must not use: the excluded and the fixed ones."""
        return sorted(set(self.exclude) | set(self.fixed()))


@dataclass(frozen=True)
class StepPlan:
    """What one step trains: its paths, their momentum group (None: one group), the optimizer lr, each path's
    loss scale, the lr logged for the step (several scaled paths: the mean effective rate) and in how many
    micro-batches each process splits its slice of the batch."""
    archs: list[str]
    group: Optional[int]
    lr: float
    scales: list[float]
    logged_lr: float
    micro_batches: int = 1


class StepPlanner:
    """Makes each step's :class:`StepPlan` from a sampler, an LR policy and a momentum grouping."""

    def __init__(self, seed: int, sampler: Any, lr_policy: Any, grouping: Any, total_steps: int,
                 subspace: SubSpace = SubSpace(), micro_batches: int = 1):
        sampler.check_grouping(grouping)
        self.seed, self.sampler, self.lr_policy, self.grouping = seed, sampler, lr_policy, grouping
        self.total_steps, self.subspace, self.micro_batches = total_steps, subspace, micro_batches

    def paths(self, t: int) -> tuple[list[str], Optional[int]]:
        """The architectures trained at iteration ``t`` and their momentum group."""
        r = rng.step_rng(self.seed, rng.SAMPLER, t, self.subspace.salt)
        return self.sampler.draw(r, self.grouping)

    def __call__(self, t: int) -> StepPlan:
        archs, group = self.paths(t)
        s0 = self.subspace.start   # a sub-supernet that starts afresh: its own schedule
        lr, scales = self.lr_policy.rates(t - s0, self.total_steps - s0, archs)
        return StepPlan(archs, group, lr, scales, lr * sum(scales) / len(scales), self.micro_batches)


def apply_plan(optimizer: torch.optim.Optimizer, plan: StepPlan) -> None:
    """Put the plan's lr and momentum group into the optimizer's param groups (what its next ``step()`` uses),
    as a torch LR scheduler sets ``lr``."""
    for pg in optimizer.param_groups:
        pg["lr"] = plan.lr
        if plan.group is not None:
            pg["momentum_group"] = plan.group
