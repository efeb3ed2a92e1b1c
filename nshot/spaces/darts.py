"""The DARTS CNN cell space (Liu et al., ICLR 2019): a normal and a reduction cell, canonical value = the
genotype text.

A cell has two input nodes (0: the output of the cell before the previous one, 1: the previous cell's) and
four intermediate nodes 2..5; node i can read any node j < i, which gives 2 + 3 + 4 + 5 = 14 edges per cell,
each with the eight ops of :data:`OPS`. A *genotype* (a discrete architecture) keeps two incoming
``(op, input)`` pairs per intermediate node and concatenates nodes 2..5 as the cell output; ``none`` is never
kept. Its text is the one DARTS's ``genotypes.py`` writes::

    Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ...], normal_concat=[2, 3, 4, 5],
             reduce=[('max_pool_3x3', 0), ...], reduce_concat=[2, 3, 4, 5])

(one line). ``range(2, 6)``, the form DARTS's search logs print, is accepted and written back as the list.

Decisions (for samplers, masks, mutation): one per (cell, node, slot), 16 in all; the choice is the pair
``(input, op)`` with ``op`` one of the seven ops other than ``none``, so node i has ``i * 7`` choices. The two
slots of a node are independent decisions, so the space also holds genotypes whose node reads one input
twice; genotypes derived from architecture weights (:func:`derive`) never do.

Exact parameter count and MACs of the stand-alone evaluation network (DARTS's ``NetworkCIFAR``: stem
conv3x3 to 3C, ``layers`` cells with reductions at ``layers // 3`` and ``2 * layers // 3``, auxiliary head
after cell ``2 * layers // 3``). Pure Python (numpy for :func:`derive`); no torch import.
"""
from __future__ import annotations

import re
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np

from .base import Arch, ArchTypeError, SearchSpace, register

OPS: tuple[str, ...] = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
                        "dil_conv_3x3", "dil_conv_5x5")
KEPT_OPS: tuple[str, ...] = OPS[1:]           # the ops a genotype may keep
STEPS = 4                                     # intermediate nodes per cell
CELLS: tuple[str, ...] = ("normal", "reduce")
# Edge k of a cell -> (target node, source node), DARTS order: node 2 <- 0, 1; node 3 <- 0, 1, 2; ...
EDGES: tuple[tuple[int, int], ...] = tuple((i + 2, j) for i in range(STEPS) for j in range(i + 2))
NUM_EDGES = len(EDGES)                        # 14
CONCAT: tuple[int, ...] = tuple(range(2, 2 + STEPS))
AUX_HIDDEN = (128, 768)                       # the auxiliary head's conv widths


def edge_index(node: int, src: int) -> int:
    """Index of the edge ``src -> node`` (node 2..5) among a cell's 14 edges."""
    if not (2 <= node < 2 + STEPS and 0 <= src < node):
        raise ValueError(f"no DARTS edge {src} -> {node}")
    return sum(k + 2 for k in range(node - 2)) + src


class Genotype(NamedTuple):
    """Two ``(op, input)`` pairs per intermediate node, nodes 2..5 in order, for each cell type."""

    normal: tuple[tuple[str, int], ...]
    reduce: tuple[tuple[str, int], ...]


_PAIR = re.compile(r"\(\s*(['\"])([A-Za-z0-9_]+)\1\s*,\s*([0-9]+)\s*\)")
_CONCAT = r"(\[[^\]]*\]|range\([^)]*\))"
_GENOTYPE = re.compile(r"Genotype\(\s*normal\s*=\s*\[(.*?)\]\s*,\s*normal_concat\s*=\s*" + _CONCAT +
                       r"\s*,\s*reduce\s*=\s*\[(.*?)\]\s*,\s*reduce_concat\s*=\s*" + _CONCAT + r"\s*,?\s*\)",
                       re.DOTALL)


def _concat(text: str, what: str, whole: str) -> None:
    t = re.sub(r"\s+", "", text)
    ok = t in ("[2,3,4,5]", "range(2,6)")
    if not ok:
        raise ValueError(f"DARTS genotype {whole!r}: {what} must be [2, 3, 4, 5] (nodes 2..5), got {text!r}")


def _pairs(text: str, what: str, whole: str) -> tuple[tuple[str, int], ...]:
    pairs, pos = [], 0
    for m in _PAIR.finditer(text):
        gap = text[pos:m.start()].strip()
        if gap not in ("", ","):
            raise ValueError(f"DARTS genotype {whole!r}: unexpected {gap!r} in {what}")
        pairs.append((m.group(2), int(m.group(3))))
        pos = m.end()
    if text[pos:].strip() not in ("", ","):
        raise ValueError(f"DARTS genotype {whole!r}: unexpected {text[pos:].strip()!r} in {what}")
    if len(pairs) != 2 * STEPS:
        raise ValueError(f"DARTS genotype {whole!r}: {what} needs {2 * STEPS} (op, input) pairs (two per node "
                         f"2..5), got {len(pairs)}")
    for k, (op, src) in enumerate(pairs):
        node = 2 + k // 2
        if op not in KEPT_OPS:
            raise ValueError(f"DARTS genotype {whole!r}: {what} pair {k} has op {op!r}; expected one of "
                             f"{', '.join(KEPT_OPS)}")
        if src >= node:
            raise ValueError(f"DARTS genotype {whole!r}: {what} pair {k} belongs to node {node} and reads node "
                             f"{src}; node {node} can read nodes 0..{node - 1}")
    return tuple(pairs)


@lru_cache(maxsize=65536)
def _parse_str(text: str) -> Genotype:
    m = _GENOTYPE.fullmatch(text.strip())
    if not m:
        raise ValueError(f"malformed DARTS genotype {text!r}: expected \"Genotype(normal=[('op', input), ...], "
                         "normal_concat=[2, 3, 4, 5], reduce=[...], reduce_concat=[2, 3, 4, 5])\"")
    _concat(m.group(2), "normal_concat", text)
    _concat(m.group(4), "reduce_concat", text)
    return Genotype(_pairs(m.group(1), "normal", text), _pairs(m.group(3), "reduce", text))


def parse_genotype(text: str) -> Genotype:
    """The genotype of a DARTS genotype string; ValueError naming the bad part if malformed."""
    if not isinstance(text, str):
        raise ArchTypeError(f"DARTS architecture must be a genotype string, got {type(text).__name__}: {text!r}")
    return _parse_str(text)


def format_genotype(g: Genotype) -> str:
    """The canonical one-line text of ``g`` (DARTS's ``genotypes.py`` style)."""
    def pairs(p):
        return "[" + ", ".join(f"('{op}', {src})" for op, src in p) + "]"
    concat = "[" + ", ".join(str(c) for c in CONCAT) + "]"
    return (f"Genotype(normal={pairs(g.normal)}, normal_concat={concat}, reduce={pairs(g.reduce)}, "
            f"reduce_concat={concat})")


def derive(weights_normal: Any, weights_reduce: Any) -> Arch:
    """The DARTS derivation rule on (14 x 8) op weights per cell (softmaxed alphas, in :data:`OPS` order): each
    intermediate node keeps its two incoming edges with the strongest non-``none`` op weight, and on each kept
    edge its strongest non-``none`` op. Ties go to the lower input / the earlier op. Pairs are written in input
    order."""
    cells = []
    for w in (weights_normal, weights_reduce):
        w = np.asarray(w, dtype=np.float64)
        if w.shape != (NUM_EDGES, len(OPS)):
            raise ValueError(f"derive needs ({NUM_EDGES}, {len(OPS)}) weights per cell, got {w.shape}")
        gene = []
        for i in range(STEPS):
            node = i + 2
            strength = [float(w[edge_index(node, j), 1:].max()) for j in range(node)]
            kept = sorted(sorted(range(node), key=lambda j: -strength[j])[:2])
            for j in kept:
                gene.append((OPS[1 + int(np.argmax(w[edge_index(node, j), 1:]))], j))
        cells.append(tuple(gene))
    return format_genotype(Genotype(*cells))


# -- counts of the stand-alone evaluation network ----------------------------------------------------------------
@lru_cache(maxsize=4096)
def _op_count(op: str, c: int, stride: int, size: int) -> tuple[int, int]:
    """(params, MACs) of one eval-network op on ``c`` channels at input size ``size``."""
    out = (size - 1) // stride + 1
    if op in ("max_pool_3x3", "avg_pool_3x3") or (op == "skip_connect" and stride == 1):
        return 0, 0
    if op == "skip_connect":                              # FactorizedReduce(c, c)
        return 2 * c * (c // 2) + 2 * c, out * out * c * c
    k = int(op[-1])
    half = k * k * c + c * c + 2 * c                      # depthwise k x k, pointwise, BN
    macs_stride = out * out * (k * k * c + c * c)
    if op.startswith("dil_conv"):
        return half, macs_stride
    macs_second = out * out * (k * k * c + c * c)         # sep_conv: its second half runs at stride 1
    return 2 * half, macs_stride + macs_second


def layers(N: int) -> int:
    """Cells of a network with ``N`` normal cells per stage: 3N normal + 2 reduction (N = 6: 20, N = 2: 8)."""
    if N < 1:
        raise ValueError(f"DARTS networks need N >= 1 normal cells per stage, got {N}")
    return 3 * N + 2


def cell_plan(num_cells: int) -> list[bool]:
    """Whether each cell is a reduction cell (cells ``num_cells // 3`` and ``2 * num_cells // 3``, as DARTS)."""
    return [i in (num_cells // 3, 2 * num_cells // 3) for i in range(num_cells)]


def eval_network_counts(g: Genotype, C: int = 36, num_cells: int = 20, num_classes: int = 10, in_channels: int = 3,
                        resolution: int = 32) -> dict[str, int]:
    """Parameters and MACs of DARTS's evaluation network for genotype ``g``: ``params`` (without the auxiliary
    head, the convention of the published counts), ``aux_params`` (the auxiliary head), ``macs`` (convolutions
    and the classifier of one image at ``resolution``; BN, pooling, additions and the auxiliary head are not
    counted)."""
    params = in_channels * 9 * 3 * C + 2 * 3 * C
    size = resolution
    macs = size * size * 3 * C * in_channels * 9
    c_pp, c_p, c_cur = 3 * C, 3 * C, C
    reduction_prev = False
    aux_params = 0
    for i, reduction in enumerate(cell_plan(num_cells)):
        if reduction:
            c_cur *= 2
        c = c_cur
        if reduction_prev:                                 # FactorizedReduce(c_pp, c) on the older input
            params += 2 * c_pp * (c // 2) + 2 * c
            macs += size * size * c_pp * c
        else:
            params += c_pp * c + 2 * c
            macs += size * size * c_pp * c
        params += c_p * c + 2 * c
        macs += size * size * c_p * c
        out = (size - 1) // 2 + 1 if reduction else size
        for op, src in (g.reduce if reduction else g.normal):
            stride = 2 if reduction and src < 2 else 1
            p, m = _op_count(op, c, stride, size if stride == 2 else out)
            params, macs = params + p, macs + m
        size = out
        reduction_prev = reduction
        c_pp, c_p = c_p, 4 * c
        if i == 2 * num_cells // 3:
            h1, h2 = AUX_HIDDEN
            aux_params = c_p * h1 + 2 * h1 + h1 * h2 * 4 + 2 * h2 + h2 * num_classes + num_classes
    params += c_p * num_classes + num_classes
    macs += c_p * num_classes
    return {"params": params, "aux_params": aux_params, "macs": macs}


_CHOICES: tuple[tuple[str, ...], ...] = tuple(tuple(f"{op}~{j}" for j in range(node) for op in KEPT_OPS)
                                             for _ in CELLS for node in range(2, 2 + STEPS) for _slot in range(2))
_SIZES = tuple(len(c) for c in _CHOICES)


@register("darts")
class DartsSpace(SearchSpace):
    """The DARTS CNN space: 16 decisions (two ``(input, op)`` slots per node and cell), genotype text."""

    shape_options = ("C", "N", "resolution")
    supports_auxiliary_head = True    # the evaluation network (NetworkCIFAR): auxiliary head,
    supports_drop_path = True         # drop-path
    standalone_defaults = MappingProxyType({"C": 36, "N": 6})   # and DARTS's 20 cells of 36 channels
    supports_differentiable = True    # DARTS / SNAS over the 8-cell search network's mixed ops

    def complexity_shape(self, shape: Mapping[str, Any]) -> dict[str, Any]:
        """CaLR's C(a) is the parameter count of the genotype's stand-alone evaluation network: the run's shape
        with :attr:`standalone_defaults` (C 36, N 6: 20 cells) in place of the search network's C, N."""
        return {**shape, **self.standalone_defaults}

    def op_weight_labels(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The 28 x 8 architecture-weight table: the eight ops, the 14 normal-cell edges then the 14
        reduction-cell edges, each ``cell src->node``."""
        return OPS, tuple(f"{cell} {src}->{node}" for cell in CELLS for node, src in EDGES)

    soft_split_rule = "smallest_within"   # GM-NAS's DARTS-space rule: any split of an edge's ops
    projection_excluded_ops = (0,)        # ``none`` is never kept by a projection

    def derive_from_weights(self, weights: Any) -> Arch:
        """:func:`derive` on a 28 x 8 table: the 14 normal-cell rows, then the 14 reduction-cell rows."""
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (2 * NUM_EDGES, len(OPS)):
            raise ValueError(f"DARTS op weights must be {2 * NUM_EDGES} x {len(OPS)}, got {w.shape}")
        return derive(w[:NUM_EDGES], w[NUM_EDGES:])

    def topology_groups(self) -> list[tuple[str, tuple[int, ...], int]]:
        """Per cell and intermediate node, its input edges' rows: each node keeps two."""
        return [(f"{cell} node {node}", tuple(lo + edge_index(node, j) for j in range(node)), 2)
                for lo, cell in ((0, CELLS[0]), (NUM_EDGES, CELLS[1])) for node in range(2, 2 + STEPS)]

    @property
    def choices(self) -> tuple[tuple[str, ...], ...]:
        return _CHOICES

    @property
    def sizes(self) -> tuple[int, ...]:
        return _SIZES

    def parse(self, text: str) -> Arch:
        return format_genotype(parse_genotype(text))

    def genotype(self, arch: Arch) -> Genotype:
        return parse_genotype(arch)

    def decode(self, arch: Arch) -> tuple[int, ...]:
        g = parse_genotype(arch)
        return tuple(src * len(KEPT_OPS) + KEPT_OPS.index(op) for cell in g for op, src in cell)

    def encode(self, choice: Sequence[int]) -> Arch:
        choice = self._check_choice(choice)
        pairs = [(KEPT_OPS[c % len(KEPT_OPS)], c // len(KEPT_OPS)) for c in choice]
        half = 2 * STEPS
        return format_genotype(Genotype(tuple(pairs[:half]), tuple(pairs[half:])))

    def num_params(self, arch: Arch, C: int = 36, N: int = 6, num_classes: int = 10, in_channels: int = 3,
                   resolution: int = 32, auxiliary: bool = False) -> int:
        """Trainable parameters of the evaluation network with ``N`` normal cells per stage (``3N + 2`` cells;
        N = 6: DARTS's 20), without the auxiliary head unless ``auxiliary`` (the published counts leave it out)."""
        counts = eval_network_counts(parse_genotype(arch), C, layers(N), num_classes, in_channels, resolution)
        return counts["params"] + (counts["aux_params"] if auxiliary else 0)

    def flops(self, arch: Arch, C: int = 36, N: int = 6, num_classes: int = 10, in_channels: int = 3,
              resolution: int = 32) -> int:
        """MACs of one image through the evaluation network (convolutions and classifier; no auxiliary head)."""
        return eval_network_counts(parse_genotype(arch), C, layers(N), num_classes, in_channels, resolution)["macs"]
