"""Search spaces: what an architecture is (pure Python, no torch import)."""
from .base import Arch, SearchSpace, as_rng, available, get, register
from . import nb201  # noqa: F401  (registers "nb201")

__all__ = ["Arch", "SearchSpace", "as_rng", "available", "get", "register"]
