"""The outcome of a search."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


def _jsonable(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "item") and callable(x.item):  # numpy scalars
        return _jsonable(x.item())
    return x


@dataclass
class SearchResult:
    """Top-k architectures of a search, best first, and how the search got there.

    ``evaluations`` counts the distinct architectures whose fitness was computed during the search (cache
    hits, including a pre-filled cache, do not count). ``history`` has one dict per generation (evolution)
    or per evaluated architecture (random) or per evaluated chunk (exhaustive); each has at least
    ``evaluations`` (cumulative) and ``best`` (best fitness so far). ``info`` holds the settings and why
    the search stopped.
    """

    strategy: str
    best: list[tuple[str, float]]
    history: list[dict]
    evaluations: int
    info: dict = field(default_factory=dict)

    @property
    def best_arch(self) -> str:
        return self.best[0][0]

    @property
    def best_fitness(self) -> float:
        return self.best[0][1]

    def to_dict(self) -> dict:
        """JSON-ready (non-finite floats become ``None``)."""
        return _jsonable({
            "strategy": self.strategy,
            "evaluations": self.evaluations,
            "best": [{"arch": a, "fitness": f} for a, f in self.best],
            "history": self.history,
            "info": self.info,
        })
