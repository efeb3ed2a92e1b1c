"""NAS-Bench-201 cell space: 6 edges x 5 ops, canonical value = the benchmark string."""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Sequence

from .base import Arch, SearchSpace, register

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# Edge index e -> (target node, source node), sorted as NB201's edge2index: 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2.
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
NUM_NODES = 4
_TOKEN = re.compile(r"^([a-z_0-9]+)~(\d+)$")


@lru_cache(maxsize=65536)
def _parse(text: str) -> tuple[int, ...]:
    if not isinstance(text, str):
        raise TypeError(f"NB201 architecture must be a string, got {type(text).__name__}")
    s = text.strip()
    nodes = s.split("+")
    if len(nodes) != NUM_NODES - 1:
        raise ValueError(f"malformed NB201 string {text!r}: expected {NUM_NODES - 1} nodes separated by '+', "
                         f"got {len(nodes)}; format is |op~0|+|op~0|op~1|+|op~0|op~1|op~2|")
    ops: list[int] = []
    for i, node in enumerate(nodes, start=1):
        if not (node.startswith("|") and node.endswith("|")) or len(node) < 2:
            raise ValueError(f"malformed NB201 string {text!r}: node {i} {node!r} must be wrapped in '|'")
        tokens = node[1:-1].split("|")
        if len(tokens) != i:
            raise ValueError(f"malformed NB201 string {text!r}: node {i} must have {i} incoming edges, got {len(tokens)}")
        for j, tok in enumerate(tokens):
            m = _TOKEN.match(tok)
            if not m:
                raise ValueError(f"malformed NB201 string {text!r}: edge token {tok!r} is not 'op~source'")
            op, src = m.group(1), int(m.group(2))
            if op not in OPS:
                raise ValueError(f"unknown op {op!r} in NB201 string {text!r}; expected one of {', '.join(OPS)}")
            if src != j:
                raise ValueError(f"wrong source index in NB201 string {text!r}: edge {tok!r} of node {i} "
                                 f"must come from node {j}, got {src}")
            ops.append(OPS.index(op))
    return tuple(ops)


@lru_cache(maxsize=65536)
def _format(ops: tuple[int, ...]) -> str:
    parts, e = [], 0
    for i in range(1, NUM_NODES):
        toks = []
        for j in range(i):
            toks.append(f"{OPS[ops[e]]}~{j}")
            e += 1
        parts.append("|" + "|".join(toks) + "|")
    return "+".join(parts)


@register("nb201")
class NB201Space(SearchSpace):
    """The NAS-Bench-201 cell space (15,625 cells)."""

    ops = OPS
    edges = EDGES

    @property
    def choices(self) -> tuple[tuple[str, ...], ...]:
        return (OPS,) * len(EDGES)

    def parse(self, text: str) -> Arch:
        return _format(_parse(text))

    def decode(self, arch: Arch) -> tuple[int, ...]:
        return _parse(arch)

    def encode(self, choice: Sequence[int]) -> Arch:
        return _format(self._check_choice(choice))


@lru_cache(maxsize=65536)
def live_edges(ops: tuple[int, ...]) -> tuple[bool, ...]:
    """Per edge, whether its op can change the cell output.

    An edge j->i is live when its op is not ``none``, node j is reachable from the cell input through
    non-``none`` edges, and node i reaches the output (node 3) through non-``none`` edges. Dead edges
    contribute nothing (zeros, or a constant that batch-statistics BN maps to zero) and are skipped.
    """
    forward = {0}
    for (i, j), op in zip(EDGES, ops):  # EDGES is sorted by target, so sources are final before use
        if op != 0 and j in forward:
            forward.add(i)
    backward = {NUM_NODES - 1}
    for (i, j), op in sorted(zip(EDGES, ops), key=lambda t: -t[0][0]):
        if op != 0 and i in backward:
            backward.add(j)
    return tuple(op != 0 and j in forward and i in backward for (i, j), op in zip(EDGES, ops))
