"""Search spaces: what an architecture is (pure Python, no torch import)."""
from .base import Arch, SearchSpace, as_rng, available, get, register
from . import nb201  # noqa: F401  (registers "nb201")
from .nb201 import NB201Space

__all__ = ["Arch", "NB201Space", "SearchSpace", "as_rng", "available", "get", "register"]
