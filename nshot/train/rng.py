"""Stateless random streams: moved to :mod:`nshot.run.rng` (shared by training and scoring); re-exported."""
from ..run.rng import AUGMENT, GRADMATCH, GROUPING, INIT, PINAS, SAMPLER, step_rng, torch_seed  # noqa: F401
