"""Search strategies over any :class:`~nshot.spaces.SearchSpace`: exhaustive, random, SPOS evolution.

All three are pure Python/numpy and use only the space's ``enumerate/sample/mutate/crossover`` (and
``num_params/flops`` through a :class:`Constraint`). Fitness is "higher is better" and goes through a
:class:`CachedFitness`, so an architecture is never evaluated twice and a pre-filled cache costs nothing;
each strategy hands whole batches to ``fitness.many`` so a GPU scorer can batch them.

Randomness comes only from the ``rng`` argument (a numpy Generator, or anything
:func:`nshot.spaces.as_rng` accepts): the same seed gives the same result, with or without a pre-filled
cache as long as no ``budget`` is hit (with a budget, cached architectures are free, so the search can go
further). Ties in fitness are broken by evaluation order (first evaluated wins).
"""
from __future__ import annotations

import inspect
import math
from typing import Any, Callable, Optional

from ..registry import Registry
from ..spaces import Arch, SearchSpace, as_rng
from .constraint import Constraint
from .fitness import CachedFitness, as_cached
from .result import SearchResult

Progress = Optional[Callable[[dict], None]]

STRATEGIES = Registry("search strategy")
"""name -> search function ``fn(space, fitness, *, rng, budget, top_k, constraint, progress, ...)`` (``rng`` and
``budget`` only if it takes them; ``budget`` without a default makes ``--budget`` required). Each strategy is
registered in its own file with ``@STRATEGIES.register("name")``; :func:`command_line` says what ``nshot search``
passes it."""


def command_line(options: Optional[Callable[[Any], dict]] = None,
                 progress: Optional[Callable[[dict], int]] = None) -> Callable:
    """How ``nshot search`` runs a strategy: ``options(args)`` its keyword arguments from the command's options
    (default none), ``progress(kwargs)`` the number of ``progress`` calls it makes (a progress bar; default none)."""
    def add(fn):
        fn.cli_options, fn.progress_steps = options, progress
        return fn
    return add


def cli_options(fn: Callable, args) -> dict:
    """The strategy's keyword arguments from the ``nshot search`` options ``args``."""
    options = getattr(fn, "cli_options", None)
    return options(args) if options is not None else {}


def progress_steps(fn: Callable, kwargs: dict) -> Optional[int]:
    """How many ``progress`` calls the strategy makes with ``kwargs`` (None: no progress bar)."""
    steps = getattr(fn, "progress_steps", None)
    return steps(kwargs) if steps is not None else None


def needs_budget(fn: Callable) -> bool:
    """Whether the strategy requires a budget (a ``budget`` parameter without a default)."""
    p = inspect.signature(fn).parameters.get("budget")
    return p is not None and p.default is inspect.Parameter.empty


def evolution_defaults(population: int, parents: Optional[int] = None, mutants: Optional[int] = None,
                       crossovers: Optional[int] = None) -> dict[str, int]:
    """SPOS's proportions at any population (50 -> 10 parents, 25 mutants, 25 crossovers); given values are kept,
    and mutants + crossovers more than the population is refused in the CLI's words."""
    parents = parents if parents is not None else min(population, max(2, population // 5))
    mutants = mutants if mutants is not None else population // 2
    crossovers = crossovers if crossovers is not None else population // 2
    if mutants + crossovers > population:
        raise ValueError(f"--mutants {mutants} + --crossovers {crossovers} must be at most --population {population}")
    if parents > population:
        raise ValueError(f"--parents {parents} must be at most --population {population}")
    return {"parents": parents, "mutants": mutants, "crossovers": crossovers}


def _rank_key(f: float) -> float:
    return -math.inf if math.isnan(f) else f


def _check_int(name: str, value, minimum: int, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}{' or None' if allow_none else ''}, got {value!r}")


class _State:
    """What one search has seen: evaluated architectures in order, the constraint memo, the budget."""

    def __init__(self, space: SearchSpace, fitness, constraint: Optional[Constraint], budget: Optional[int],
                 max_tries: int = 100):
        if not isinstance(space, SearchSpace):
            raise TypeError(f"space must be an nshot.spaces.SearchSpace, got {type(space).__name__}")
        if constraint is not None and not isinstance(constraint, Constraint):
            raise TypeError(f"constraint must be an nshot.search.Constraint or None, got {type(constraint).__name__}")
        _check_int("max_tries", max_tries, 1)
        self.space = space
        self.fitness: CachedFitness = as_cached(fitness)
        self.constraint = constraint if constraint is not None and constraint.active else None
        self.budget = budget
        self.max_tries = max_tries
        self.start = self.fitness.evaluations
        self.seen: dict[Arch, float] = {}   # insertion order = evaluation order
        self._ok: dict[Arch, bool] = {}

    # -- bookkeeping ---------------------------------------------------------------------------------
    @property
    def evaluations(self) -> int:
        return self.fitness.evaluations - self.start

    @property
    def remaining(self) -> float:
        return math.inf if self.budget is None else self.budget - self.evaluations

    def ok(self, arch: Arch) -> bool:
        if self.constraint is None:
            return True
        r = self._ok.get(arch)
        if r is None:
            r = self._ok[arch] = self.constraint.ok(self.space, arch)
        return r

    def acceptable(self, arch: Arch, taken: set) -> bool:
        """New to this search, not already in the batch being built, and within the constraint."""
        return arch not in self.seen and arch not in taken and self.ok(arch)

    def within_budget(self, archs: list[Arch]) -> list[Arch]:
        """The longest prefix of ``archs`` whose not-yet-cached members fit in the remaining budget."""
        left = self.remaining
        out = []
        for a in archs:
            if a not in self.fitness:
                if left <= 0:
                    break
                left -= 1
            out.append(a)
        return out

    def evaluate(self, archs: list[Arch]) -> tuple[list[float], list[bool]]:
        """Fitness of ``archs`` (distinct, unseen) in one batch; also which ones were newly computed."""
        new = [a not in self.fitness for a in archs]
        values = self.fitness.many(archs)
        for a, v in zip(archs, values):
            self.seen[a] = v
        return values, new

    def top(self, k: int) -> list[tuple[Arch, float]]:
        """The ``k`` best evaluated architectures, best first; ties go to the earlier evaluated."""
        items = list(self.seen.items())
        order = sorted(range(len(items)), key=lambda i: -_rank_key(items[i][1]))  # stable sort
        return [items[i] for i in order[:k]]

    def best(self) -> tuple[Optional[Arch], float]:
        best_a, best_f = None, -math.inf
        for a, f in self.seen.items():
            if best_a is None or _rank_key(f) > _rank_key(best_f):
                best_a, best_f = a, f
        return best_a, best_f

    # -- proposals -----------------------------------------------------------------------------------------
    def random_new(self, n: int, rng, taken: Optional[set] = None) -> list[Arch]:
        """Up to ``n`` uniformly sampled acceptable architectures (at most ``max_tries * n`` draws)."""
        taken = set() if taken is None else taken
        out: list[Arch] = []
        tries = self.max_tries * n
        while len(out) < n and tries > 0:
            tries -= 1
            a = self.space.sample(rng)
            if self.acceptable(a, taken):
                taken.add(a)
                out.append(a)
        return out

    def nothing_found(self, draws: int) -> ValueError:
        what = f"satisfying the constraint ({self.constraint.describe()})" if self.constraint else "new"
        return ValueError(f"no architecture {what} found in {draws:,} random draws from the {self.space.name} "
                          f"space; the constraint is probably impossible (check it against "
                          f"space.num_params/space.flops), or raise max_tries")


def _finish(strategy: str, state: _State, top_k: int, history: list[dict], info: dict) -> SearchResult:
    info = dict(info)
    if state.constraint is not None:
        info["constraint"] = state.constraint.to_dict()
    info["seen"] = len(state.seen)
    return SearchResult(strategy=strategy, best=state.top(top_k), history=history,
                        evaluations=state.evaluations, info=info)


# ---------------------------------------------------------------------------------------------------------
@STRATEGIES.register("exhaustive")
def exhaustive_search(space: SearchSpace, fitness, constraint: Optional[Constraint] = None, top_k: int = 10,
                      progress: Progress = None, batch_size: int = 1024) -> SearchResult:
    """Evaluate every architecture of ``space`` that satisfies ``constraint``, in ``enumerate()`` order.

    Architectures are handed to ``fitness.many`` in chunks of ``batch_size``; ``history`` and ``progress``
    get one dict per chunk: ``evaluations``, ``done``, ``total``, ``best``, ``best_arch``.
    Raises ValueError if no architecture satisfies the constraint.
    """
    _check_int("top_k", top_k, 1)
    _check_int("batch_size", batch_size, 1)
    state = _State(space, fitness, constraint, None)
    archs = [a for a in space.enumerate() if state.ok(a)]
    if not archs:
        raise ValueError(f"no architecture of the {space.name} space ({len(space):,} in all) satisfies the "
                         f"constraint ({state.constraint.describe()})")
    history: list[dict] = []
    for i in range(0, len(archs), batch_size):
        state.evaluate(archs[i:i + batch_size])
        best_a, best_f = state.best()
        entry = {"evaluations": state.evaluations, "done": len(state.seen), "total": len(archs),
                 "best": best_f, "best_arch": best_a}
        history.append(entry)
        if progress is not None:
            progress(dict(entry))
    return _finish("exhaustive", state, top_k, history, {"candidates": len(archs), "stop": "done"})


@STRATEGIES.register("random")
def random_search(space: SearchSpace, fitness, budget: int, rng=None, constraint: Optional[Constraint] = None,
                  top_k: int = 10, batch_size: int = 50, max_tries: int = 100,
                  progress: Progress = None) -> SearchResult:
    """Uniformly sampled distinct architectures until ``budget`` distinct new evaluations are done.

    Only architectures satisfying ``constraint`` are evaluated (rejection sampling, at most
    ``max_tries`` draws per wanted architecture). Repeated draws are skipped for free; architectures in a
    pre-filled cache are taken at no cost. The search stops early when no new architecture can be found
    (the space, or its constrained part, is exhausted). ``history`` has one dict per architecture
    (``evaluations``, ``arch``, ``fitness``, ``best``); ``progress`` is called once per batch of
    ``batch_size`` with ``evaluations``, ``budget``, ``best``, ``best_arch``.
    """
    _check_int("budget", budget, 1)
    _check_int("top_k", top_k, 1)
    _check_int("batch_size", batch_size, 1)
    g = as_rng(rng)
    state = _State(space, fitness, constraint, budget, max_tries)
    history: list[dict] = []
    stop = "budget"
    while state.remaining > 0:
        n = int(min(batch_size, state.remaining))
        batch = state.random_new(n, g)
        if not batch:
            if not state.seen:
                raise state.nothing_found(max_tries * n)
            stop = "exhausted"
            break
        before = state.evaluations
        values, new = state.evaluate(batch)
        best_f = history[-1]["best"] if history else -math.inf
        for a, f, is_new in zip(batch, values, new):
            before += is_new
            if not history or _rank_key(f) > _rank_key(best_f):
                best_f = f
            history.append({"evaluations": before, "arch": a, "fitness": f, "best": best_f})
        if progress is not None:
            best_a, best_f = state.best()
            progress({"evaluations": state.evaluations, "budget": budget, "best": best_f, "best_arch": best_a})
    return _finish("random", state, top_k, history,
                   {"budget": budget, "batch_size": batch_size, "stop": stop})


def _evolution_options(args) -> dict:
    return dict(population=args.population, generations=args.generations, mutation_prob=args.mutation_prob,
                **evolution_defaults(args.population, args.parents, args.mutants, args.crossovers))


@STRATEGIES.register("evolution")
@command_line(options=_evolution_options, progress=lambda kwargs: kwargs.get("generations", 20))
def evolution_search(space: SearchSpace, fitness, rng=None, population: int = 50, generations: int = 20,
                     parents: int = 10, mutants: int = 25, crossovers: int = 25, mutation_prob: float = 0.1,
                     constraint: Optional[Constraint] = None, top_k: int = 10, budget: Optional[int] = None,
                     max_tries: int = 100, progress: Progress = None) -> SearchResult:
    """SPOS evolutionary search (Guo et al., ECCV 2020, ``src/Search/search.py``).

    Generation 0 is ``population`` uniformly random architectures satisfying ``constraint``. After each
    generation is evaluated (one ``fitness.many`` call), the parents are the top ``parents`` architectures
    **over everything this search has evaluated so far**. This is exactly SPOS's ``update_top_k``, which
    merges the new population into the previous top-k and keeps the best k: the top-k of (population ∪
    previous top-k) is the top-k of all evaluated architectures. The next generation is

    * ``mutants``: a uniformly chosen parent, each decision resampled with probability ``mutation_prob``
      (``space.mutate``);
    * ``crossovers``: uniform gene-wise crossover (``space.crossover``) of two distinct parents drawn
      uniformly;
    * random architectures filling up to ``population``.

    As SPOS's ``is_legal``, a child is rejected (and redrawn) if this search already evaluated it, if it
    already is in the generation, or if it violates the constraint; each of the three groups makes at
    most ``max_tries`` draws per wanted child, so a generation can come out smaller when the (constrained)
    space runs out, and the search stops when a generation comes out empty. Architectures already in the
    cache (pre-filled, or shared with an earlier search) are accepted and cost nothing.

    ``generations`` counts evaluated populations, generation 0 included (SPOS: 20 × 50 = 1,000
    evaluations). ``budget`` (optional) stops the search after exactly that many distinct new evaluations
    (the last generation is truncated). ``history`` and ``progress`` get one dict per generation:
    ``generation``, ``evaluations`` (cumulative), ``size``, ``mutants``, ``crossovers``, ``random``,
    ``gen_best``, ``gen_mean``, ``best``, ``best_arch``.

    Raises ValueError when no architecture satisfying the constraint is found for generation 0.
    """
    for name, value, minimum in (("population", population, 1), ("generations", generations, 1),
                                 ("parents", parents, 1), ("mutants", mutants, 0),
                                 ("crossovers", crossovers, 0), ("top_k", top_k, 1)):
        _check_int(name, value, minimum)
    _check_int("budget", budget, 1, allow_none=True)
    if mutants + crossovers > population:
        raise ValueError(f"mutants + crossovers ({mutants} + {crossovers}) must not exceed population ({population})")
    if not 0.0 <= float(mutation_prob) <= 1.0:
        raise ValueError(f"mutation_prob must be in [0, 1], got {mutation_prob!r}")
    g = as_rng(rng)
    state = _State(space, fitness, constraint, budget, max_tries)
    history: list[dict] = []
    stop = "generations"

    for gen in range(generations):
        if state.remaining <= 0:
            stop = "budget"
            break
        if gen == 0:
            pop = state.random_new(population, g)
            if not pop:
                raise state.nothing_found(max_tries * population)
            n_mut = n_cross = 0
        else:
            par = [a for a, _ in state.top(parents)]
            taken: set = set()
            pop = []
            tries = max_tries * mutants
            while len(pop) < mutants and tries > 0:
                tries -= 1
                child = space.mutate(par[int(g.integers(len(par)))], g, prob=mutation_prob)
                if state.acceptable(child, taken):
                    taken.add(child)
                    pop.append(child)
            n_mut = len(pop)
            tries = max_tries * crossovers if len(par) >= 2 else 0
            while len(pop) < n_mut + crossovers and tries > 0:
                tries -= 1
                i, j = g.choice(len(par), size=2, replace=False)
                child = space.crossover(par[int(i)], par[int(j)], g)
                if state.acceptable(child, taken):
                    taken.add(child)
                    pop.append(child)
            n_cross = len(pop) - n_mut
            pop += state.random_new(population - len(pop), g, taken)
        pop = state.within_budget(pop)
        if not pop:
            stop = "exhausted"
            break
        n_mut = min(n_mut, len(pop))
        n_cross = min(n_cross, len(pop) - n_mut)
        values, _ = state.evaluate(pop)
        best_a, best_f = state.best()
        finite = [v for v in values if math.isfinite(v)]
        entry = {"generation": gen, "evaluations": state.evaluations, "size": len(pop),
                 "mutants": n_mut, "crossovers": n_cross, "random": len(pop) - n_mut - n_cross,
                 "gen_best": max(values, key=_rank_key),
                 "gen_mean": sum(finite) / len(finite) if finite else math.nan,
                 "best": best_f, "best_arch": best_a}
        history.append(entry)
        if progress is not None:
            progress(dict(entry))
    if state.budget is not None and state.remaining <= 0:
        stop = "budget"
    info = {"population": population, "generations": generations, "generations_run": len(history),
            "parents": parents, "mutants": mutants, "crossovers": crossovers, "mutation_prob": mutation_prob,
            "budget": budget, "parent_selection": "top-k over all evaluated (SPOS update_top_k)", "stop": stop}
    return _finish("evolution", state, top_k, history, info)


def get_strategy(name: str) -> Callable[..., SearchResult]:
    """The search function registered as ``name`` in :data:`STRATEGIES` (``exhaustive``, ``random``, ``evolution``,
    ``tree``, ...)."""
    try:
        return STRATEGIES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown search strategy {name!r}; available: {', '.join(sorted(STRATEGIES))}") from None


def available() -> list[str]:
    """The registered search strategy names, sorted."""
    return sorted(STRATEGIES)
