"""Architecture search over any :class:`nshot.spaces.SearchSpace` (pure Python/numpy, no torch import).

Strategies (registered by name in ``STRATEGIES``, each in its own file; ``get_strategy(name)``): ``exhaustive_search``, ``random_search``, ``evolution_search``
(SPOS), ``tree_search`` (LaNAS-style partition tree, Pi-NAS). Fitness is higher-is-better and goes through
:class:`CachedFitness` (each architecture evaluated once, batched through ``many``); :class:`Constraint` limits parameters/FLOPs; every strategy returns a
:class:`SearchResult`.
"""
from .constraint import Constraint
from .fitness import CachedFitness, as_cached
from .result import SearchResult
from .strategies import (STRATEGIES, available, cli_options, evolution_search, exhaustive_search, get_strategy,
                         needs_budget, progress_steps, random_search)
from .tree import tree_search   # noqa: E402  (registers "tree"; a new strategy's file is imported here too)

__all__ = ["CachedFitness", "Constraint", "STRATEGIES", "SearchResult", "as_cached", "available", "cli_options",
           "evolution_search", "exhaustive_search", "get_strategy", "needs_budget", "progress_steps", "random_search",
           "tree_search"]
