"""Stateless random streams: every random draw of a run is a pure function of (seed, stream, step).

A resumed run therefore needs no saved generator state to continue exactly where it stopped.
"""
from __future__ import annotations

import numpy as np

SAMPLER = 1   # which architecture(s) a step trains
AUGMENT = 2   # crop offsets and flips of a step's batch
INIT = 3      # weight initialisation
GROUPING = 4  # momentum-separation grouping (random edge, k-means)
GRADMATCH = 5  # gradient-matching split estimates
PINAS = 6      # Pi-NAS projection head and queue initialisation


def step_rng(seed: int, stream: int, step: int, salt: int | None = None) -> np.random.Generator:
    """A numpy Generator for one (seed, stream, step); ``salt`` separates parallel streams (few-shot nodes)."""
    key = [int(seed), int(stream), int(step)] + ([] if salt is None else [int(salt)])
    return np.random.default_rng(key)


def torch_seed(seed: int, stream: int, step: int, salt: int | None = None) -> int:
    """A 63-bit integer seed for a torch.Generator, derived from (seed, stream, step[, salt])."""
    key = [int(seed), int(stream), int(step)] + ([] if salt is None else [int(salt)])
    state = np.random.SeedSequence(key).generate_state(1, np.uint64)[0]
    return int(state >> np.uint64(1))
