"""Complexity constraints on architectures (parameter count, FLOPs)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from ..spaces import Arch, SearchSpace

_FIELDS = ("min_params", "max_params", "min_flops", "max_flops")


@dataclass
class Constraint:
    """Optional limits (``None`` = no limit), inclusive.

    ``space_kwargs`` are passed to ``space.num_params`` and ``space.flops`` (e.g. ``C``, ``N``,
    ``num_classes`` for NB201), so the limits refer to the network that will actually be built.
    """

    max_params: Optional[int] = None
    min_params: Optional[int] = None
    max_flops: Optional[int] = None
    min_flops: Optional[int] = None
    space_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        for name in _FIELDS:
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0):
                raise ValueError(f"Constraint.{name} must be a non-negative number or None, got {v!r}")
        for what in ("params", "flops"):
            lo, hi = getattr(self, f"min_{what}"), getattr(self, f"max_{what}")
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(f"Constraint: min_{what}={lo} is larger than max_{what}={hi}")
        if not isinstance(self.space_kwargs, dict):
            raise TypeError(f"Constraint.space_kwargs must be a dict, got {type(self.space_kwargs).__name__}")

    @property
    def active(self) -> bool:
        """Whether any limit is set."""
        return any(getattr(self, n) is not None for n in _FIELDS)

    def ok(self, space: SearchSpace, arch: Arch) -> bool:
        """Whether ``arch`` satisfies every limit (only the needed quantities are computed)."""
        if self.min_params is not None or self.max_params is not None:
            p = space.num_params(arch, **self.space_kwargs)
            if (self.min_params is not None and p < self.min_params) or \
                    (self.max_params is not None and p > self.max_params):
                return False
        if self.min_flops is not None or self.max_flops is not None:
            f = space.flops(arch, **self.space_kwargs)
            if (self.min_flops is not None and f < self.min_flops) or \
                    (self.max_flops is not None and f > self.max_flops):
                return False
        return True

    def describe(self) -> str:
        parts = []
        for what in ("params", "flops"):
            lo, hi = getattr(self, f"min_{what}"), getattr(self, f"max_{what}")
            if lo is not None and hi is not None:
                parts.append(f"{lo:,} <= {what} <= {hi:,}")
            elif lo is not None:
                parts.append(f"{what} >= {lo:,}")
            elif hi is not None:
                parts.append(f"{what} <= {hi:,}")
        text = " and ".join(parts) or "no limit"
        if self.space_kwargs:
            text += " (with " + ", ".join(f"{k}={v}" for k, v in self.space_kwargs.items()) + ")"
        return text

    def to_dict(self) -> dict:
        d = {n: getattr(self, n) for n in _FIELDS if getattr(self, n) is not None}
        if self.space_kwargs:
            d["space_kwargs"] = dict(self.space_kwargs)
        return d
