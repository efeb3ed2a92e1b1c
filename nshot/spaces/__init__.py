"""Search spaces: what an architecture is (pure Python, no torch import)."""
from .base import (Arch, ArchTypeError, SearchSpace, as_rng, available, check_model_options, for_config, get, register,
                   shape_from_config, space_class, spaces_with)
from . import nb201  # noqa: F401  (registers "nb201")
from . import macro  # noqa: F401  (registers "macro")
from . import proxyless  # noqa: F401  (registers "proxyless")
from . import bottleneck  # noqa: F401  (registers "bottleneck")
from . import darts  # noqa: F401  (registers "darts")
from .bottleneck import BottleneckSpace
from .macro import MacroSpace
from .nb201 import NB201Space
from .proxyless import ProxylessSpace

__all__ = ["Arch", "ArchTypeError", "BottleneckSpace", "MacroSpace", "NB201Space", "ProxylessSpace", "SearchSpace", "as_rng", "available",
           "check_model_options", "for_config", "get", "register", "shape_from_config", "space_class",
           "spaces_with"]
