"""The run core, shared by training, scoring, search and reports (below ``train/`` and ``score/``).

- :mod:`.rundir`: :class:`RunDir` (every file name of a run directory, the kind of run it holds) and
  :func:`check_supernet_state` (the one check of a supernet checkpoint);
- :mod:`.io`: the atomic file write (the one implementation);
- :mod:`.build`: the data splits and the supernet a config describes (torch);
- :mod:`.evaluate`: accuracy of one path on a split (torch);
- :mod:`.rng`: the stateless random streams, functions of (seed, stream, step).

Importing the package loads only the torch-free parts (``config.py`` writes through :mod:`.io`).
"""
from .io import atomic_write_bytes
from .rundir import SUPERNET_FORMAT, RunDir, RunKind, check_supernet_state

__all__ = ["RunDir", "RunKind", "SUPERNET_FORMAT", "atomic_write_bytes", "check_supernet_state"]
