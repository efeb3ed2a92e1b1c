"""Search-space interface shared by every space (pure Python, no torch).

An architecture has ONE canonical value per space: a hashable string (the benchmark's own notation
where one exists). Internally every space is also a vector of discrete *decisions* (NB201: one op per
edge; MobileNet-style: one block per layer), so samplers, masks, few-shot splits and optimizer
groupings work on any space through ``decode``/``encode``.
"""
from __future__ import annotations

import dataclasses
import random
from abc import ABC, abstractmethod
from itertools import product
from types import MappingProxyType
from typing import Any, Iterator, Mapping, Optional, Sequence, Union

import numpy as np

Arch = str
Rng = Union[np.random.Generator, random.Random, int, None]


class ArchTypeError(TypeError, ValueError):
    """A non-string was given where an architecture string is expected.

    Subclasses both TypeError (it is a wrong type) and ValueError (it is a malformed architecture), so
    callers catching either keep working.
    """


def as_rng(rng: Rng) -> np.random.Generator:
    """Return a numpy Generator from a Generator, a ``random.Random``, an int seed, or None."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, random.Random):
        return np.random.default_rng(rng.getrandbits(64))
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise TypeError(f"expected a numpy Generator, random.Random, int seed or None, got {type(rng).__name__}")


class SearchSpace(ABC):
    """A finite space of architectures made of independent discrete decisions."""

    name: str = "abstract"
    #: ``model.*`` config keys that define the decisions (constructor arguments, e.g. proxyless ``depths``).
    space_options: tuple[str, ...] = ()
    #: ``model.*`` config keys that shape the network without changing the decisions: passed to
    #: ``num_params``/``flops`` and to the network builders (NB201: ``C``, ``N``).
    shape_options: tuple[str, ...] = ()

    @classmethod
    def check_model_options(cls, model: Any) -> None:
        """The config's hook (``Config.validate``): refuse ``model.*`` options this space does not take, or
        values it cannot use, with a ValueError naming the key (the config adds the space's name). The default
        refuses an option that is set (not null) but is neither a ``space_options`` nor a ``shape_options`` key
        (options with a value by default, like NB201's ``C``/``N``, are always present); a space with rules of
        its own overrides this and calls ``super()``. Building the space from the options (its constructor's
        checks) and sizing one architecture follow in the config."""
        used = set(cls.space_options) | set(cls.shape_options)
        if not dataclasses.is_dataclass(model):
            return
        for f in dataclasses.fields(model):
            if f.default is None and getattr(model, f.name) is not None and f.name not in used:
                takes = ", ".join(f"model.{k}" for k in (*cls.space_options, *cls.shape_options) if k not in ("C", "N"))
                raise ValueError(f"model.{f.name} is not an option of search space {cls.name!r} (leave it null); "
                                 f"{cls.name} takes {takes or 'none of the MobileNet options'}")

    @property
    def options(self) -> dict[str, Any]:
        """The constructor arguments of this instance (``get(self.name, **self.options)`` rebuilds it)."""
        return {}

    @property
    @abstractmethod
    def choices(self) -> tuple[tuple[str, ...], ...]:
        """Option names for each decision, in decision order."""

    @property
    def sizes(self) -> tuple[int, ...]:
        """Number of options for each decision."""
        return tuple(len(c) for c in self.choices)

    @property
    def num_decisions(self) -> int:
        return len(self.choices)

    def __len__(self) -> int:
        n = 1
        for s in self.sizes:
            n *= s
        return n

    # -- encodings -------------------------------------------------------------------------------------
    @abstractmethod
    def parse(self, text: str) -> Arch:
        """Validate ``text`` and return the canonical architecture value; raise ValueError if malformed."""

    def format(self, arch: Arch) -> str:
        """The canonical string of ``arch`` (identity for string-valued spaces, after validation)."""
        return self.parse(arch)

    @abstractmethod
    def decode(self, arch: Arch) -> tuple[int, ...]:
        """Choice index per decision."""

    @abstractmethod
    def encode(self, choice: Sequence[int]) -> Arch:
        """Canonical architecture from one choice index per decision."""

    def _check_choice(self, choice: Sequence[int]) -> tuple[int, ...]:
        choice = tuple(int(c) for c in choice)
        if len(choice) != self.num_decisions:
            raise ValueError(f"{self.name}: expected {self.num_decisions} choices, got {len(choice)}: {choice}")
        for i, (c, n) in enumerate(zip(choice, self.sizes)):
            if not 0 <= c < n:
                raise ValueError(f"{self.name}: choice {c} at decision {i} is out of range 0..{n - 1}")
        return choice

    # -- enumeration and sampling -----------------------------------------------------------------------
    def enumerate(self) -> Iterator[Arch]:
        """All architectures, decision 0 most significant."""
        for choice in product(*(range(n) for n in self.sizes)):
            yield self.encode(choice)

    def sample(self, rng: Rng = None) -> Arch:
        """One architecture drawn uniformly."""
        g = as_rng(rng)
        return self.encode([int(g.integers(n)) for n in self.sizes])

    def mutate(self, arch: Arch, rng: Rng = None, prob: float = 0.1) -> Arch:
        """Resample each decision independently with probability ``prob`` (SPOS-style mutation)."""
        g = as_rng(rng)
        choice = list(self.decode(arch))
        for i, n in enumerate(self.sizes):
            if g.random() < prob:
                choice[i] = int(g.integers(n))
        return self.encode(choice)

    def crossover(self, a: Arch, b: Arch, rng: Rng = None) -> Arch:
        """Uniform crossover: each decision taken from ``a`` or ``b`` with probability 1/2."""
        g = as_rng(rng)
        ca, cb = self.decode(a), self.decode(b)
        return self.encode([x if g.random() < 0.5 else y for x, y in zip(ca, cb)])

    # -- complexity -------------------------------------------------------------------------------------
    @abstractmethod
    def num_params(self, arch: Arch, **kwargs) -> int:
        """Exact trainable parameter count of the stand-alone network of ``arch``."""

    @abstractmethod
    def flops(self, arch: Arch, **kwargs) -> int:
        """Multiply-accumulate count of one forward pass of the stand-alone network."""

    # -- equivalence: which architectures a supernet's scoring may share (``nshot.score.dedup``) ----------
    #: whether :meth:`canonical` gives isomorphism classes (what scoring's ``dedup iso`` needs)
    has_isomorphism: bool = False

    def function_key(self, arch: Arch, candidates: Optional[Sequence[Sequence[int]]] = None) -> Arch:
        """The canonical form of ``arch`` under exact dedup: architectures with equal keys run the very same
        computation in a weight-sharing supernet (bit-identical outputs), so one evaluation stands for all of
        them. ``candidates``: the choice indices per decision the network holds (the key must be one of its
        paths; None: all). Default: ``arch`` itself (every architecture computes a function of its own)."""
        return arch

    def canonical(self, arch: Arch) -> Arch:
        """The representative of ``arch``'s isomorphism class (cells computing the same function of a
        stand-alone network); only spaces with :attr:`has_isomorphism` have one."""
        raise NotImplementedError(f"the {self.name} search space has no isomorphism classes")

    def evaluation_cost(self, arch: Arch) -> Optional[float]:
        """A relative cost of evaluating ``arch`` in a supernet, for balancing a scoring job's shards over
        ranks; None (the default): every evaluation costs the same (shards balanced by count)."""
        return None

    # -- what training asks of a space: its stand-alone protocol, differentiable search ------------------------
    #: whether the space's stand-alone network has an auxiliary classifier head (``standalone.aux_weight`` > 0
    #: trains it; the network builder then takes ``auxiliary=``): DARTS's evaluation network has one
    supports_auxiliary_head: bool = False
    #: whether the space's stand-alone network drops paths (``standalone.drop_path`` > 0 sets its
    #: ``drop_path_prob`` each epoch and its ``generator`` each step): DARTS's evaluation network does
    supports_drop_path: bool = False
    #: the space's own stand-alone protocol defaults (``standalone.*`` keys; a flag or a config value wins) where
    #: they differ from the NB201 protocol's, e.g. DARTS's evaluation network C 36, N 6
    standalone_defaults: Mapping[str, Any] = MappingProxyType({})
    #: whether differentiable search (``arch.method``: DARTS, SNAS) runs on this space: its supernet has the
    #: mixed-op forward over an edges x ops table of architecture weights (:meth:`op_weight_labels` names it)
    supports_differentiable: bool = False

    def complexity_shape(self, shape: Mapping[str, Any]) -> dict[str, Any]:
        """The network shape a subnet's complexity (CaLR, quintiles) is measured at, given the run's ``shape``
        (``space_shape``): the run's own by default. A space whose search network and evaluated network differ
        by design overrides it (DARTS: the 20-cell, 36-channel evaluation network)."""
        return dict(shape)

    def op_weight_labels(self) -> Optional[tuple[tuple[str, ...], tuple[str, ...]]]:
        """(op names, edge labels) of the space's architecture-weight table (rows: edges, columns: ops), as a
        differentiable search's report labels it; None (the default): the space has no such table."""
        return None

    # -- differentiable search (spaces with supports_differentiable) -------------------------------------------
    #: GM-NAS's rule for choosing the split of a differentiable search (:data:`nshot.train.gm_differentiable.
    #: SPLIT_RULES`): ``largest_cross`` (a balanced split, the edge with the largest cross-group distance, as
    #: GM-NAS on NB201) or ``smallest_within`` (any split, the smallest within-group distance, as on the DARTS space)
    soft_split_rule: str = "largest_cross"
    #: op columns a perturbation projection removes first and never keeps (DARTS: ``none``, column 0)
    projection_excluded_ops: tuple[int, ...] = ()

    def alpha_shape(self) -> tuple[int, int]:
        """(edges, ops) of the architecture-weight table, from :meth:`op_weight_labels`; ValueError when the
        space has none."""
        labels = self.op_weight_labels()
        if labels is None:
            raise ValueError(f"space {self.name!r} has no architecture-weight table: differentiable search runs "
                             f"on {', '.join(spaces_with('supports_differentiable'))}")
        ops, edges = labels
        return len(edges), len(ops)

    def derive_from_weights(self, weights: Any) -> Arch:
        """The discrete architecture an (edges x ops) table of op weights (softmaxed alphas) stands for: the
        space's derivation rule. A space with :attr:`supports_differentiable` overrides it."""
        raise ValueError(f"space {self.name!r} has no derivation rule for architecture weights")

    def topology_groups(self) -> list[tuple[str, tuple[int, ...], int]]:
        """Groups of alpha-table rows among which a perturbation projection keeps only some edges, as
        ``(label, rows, keep)`` (DARTS: each intermediate node keeps 2 of its input edges); empty (the default):
        the topology is fixed and every edge stays."""
        return []


_REGISTRY: dict[str, type] = {}


def register(name: str):
    """Class decorator registering a space under ``name`` for :func:`get`."""
    def deco(cls):
        cls.name = name
        _REGISTRY[name] = cls
        return cls
    return deco


def get(name: str, **kwargs) -> SearchSpace:
    """Instantiate a registered space by name, e.g. ``get("nb201")``."""
    return space_class(name)(**kwargs)


def available() -> list[str]:
    """The registered space names, sorted (``space.name``'s choices)."""
    return sorted(_REGISTRY)


def spaces_with(hook: str) -> list[str]:
    """The registered spaces whose class sets ``hook`` (e.g. ``"supports_differentiable"``) true, in
    registration order (the built-in spaces first): where an option applies, for error messages."""
    return [name for name, cls in _REGISTRY.items() if getattr(cls, hook, False)]


def _picked(model: Any, keys: Sequence[str]) -> dict[str, Any]:
    """The set (non-null) values of ``keys`` on a model config; lists become tuples (hashable)."""
    out = {}
    for k in keys:
        v = getattr(model, k, None)
        if v is not None:
            out[k] = tuple(v) if isinstance(v, list) else v
    return out


def space_class(name: str) -> type:
    """The class registered as space ``name`` (its class-level hooks, e.g. ``supports_differentiable``, read
    without building it); ValueError naming the available spaces."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown search space {name!r}; available: {', '.join(sorted(_REGISTRY))}") from None


def check_model_options(name: str, model: Any) -> None:
    """Refuse ``model.*`` options space ``name`` does not take: the space's own hook,
    :meth:`SearchSpace.check_model_options`. ValueError naming the key and the space's own options."""
    space_class(name).check_model_options(model)


def for_config(cfg: Any) -> SearchSpace:
    """The search space a run config describes: ``cfg.space.name`` built with the ``cfg.model`` options that
    define its decisions (``space_options``; null = the space's default)."""
    cls = space_class(cfg.space.name)
    return get(cfg.space.name, **_picked(cfg.model, cls.space_options))


def shape_from_config(cfg: Any) -> dict[str, Any]:
    """The ``cfg.model`` options that shape a space's network (``shape_options``; null ones are left out, so
    the space's default applies)."""
    return _picked(cfg.model, space_class(cfg.space.name).shape_options)
