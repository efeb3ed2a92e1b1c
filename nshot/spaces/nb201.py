"""NAS-Bench-201 cell space: 6 edges x 5 ops, canonical value = the benchmark string.

Besides parsing/formatting, this module gives the exact parameter count and MAC count of the stand-alone
NB201 network, connectivity and isomorphism (``canonical``), and converters to the other encodings found in
the wild: the NB201 benchmark index, our own choice index, NNI's edge dict and NASLib's op indices.
Pure Python: no torch import.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Sequence

from .base import Arch, ArchTypeError, SearchSpace, register  # noqa: F401 (ArchTypeError re-exported)

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# Edge index e -> (target node, source node), sorted as NB201's edge2index: 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2.
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
NUM_NODES = 4
_TOKEN = re.compile(r"([^~]+)~([0-9]+)")


def _parse(text: str) -> tuple[int, ...]:
    """Op index per edge of an NB201 string; ValueError naming the bad part if malformed."""
    if not isinstance(text, str):
        raise ArchTypeError(f"NB201 architecture must be a string like '|op~0|+|op~0|op~1|+|op~0|op~1|op~2|', "
                            f"got {type(text).__name__}: {text!r}")
    return _parse_str(text)


@lru_cache(maxsize=65536)
def _parse_str(text: str) -> tuple[int, ...]:
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
            raise ValueError(f"malformed NB201 string {text!r}: node {i} must have {i} incoming edges, "
                             f"got {len(tokens)}")
        for j, tok in enumerate(tokens):
            m = _TOKEN.fullmatch(tok)
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
    """The NAS-Bench-201 cell space (15,625 cells).

    Decision ``e`` is the op on edge ``EDGES[e]``; ``enumerate()`` runs in choice-index order (edge 0 most
    significant, see :func:`choice_index`), which is NOT the NB201 benchmark index.
    """

    ops = OPS
    edges = EDGES
    shape_options = ("C", "N")
    has_isomorphism = True   # canonical(): see below
    supports_differentiable = True   # DARTS/SNAS on NB201's supernet (forward_weighted), as NB201's baselines

    def op_weight_labels(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """NB201's 6 x 5 architecture-weight table: the five ops, one row per edge ``node<-src``."""
        return OPS, tuple(f"{node}<-{src}" for node, src in EDGES)

    def derive_from_weights(self, weights: Any) -> Arch:
        """The strongest op per edge of a 6 x 5 op-weight table, ``none`` included (as NB201's DARTS baselines
        derive; ties: the earlier op)."""
        rows = [[float(v) for v in row] for row in weights]
        if len(rows) != len(EDGES) or any(len(r) != len(OPS) for r in rows):
            raise ValueError(f"NB201 op weights must be {len(EDGES)} x {len(OPS)}")
        return self.encode([max(range(len(OPS)), key=lambda o: (r[o], -o)) for r in rows])

    @property
    def choices(self) -> tuple[tuple[str, ...], ...]:
        return (OPS,) * len(EDGES)

    def parse(self, text: str) -> Arch:
        return _format(_parse(text))

    def decode(self, arch: Arch) -> tuple[int, ...]:
        return _parse(arch)

    def encode(self, choice: Sequence[int]) -> Arch:
        return _format(self._check_choice(choice))

    # -- complexity -------------------------------------------------------------------------------------
    def num_params(self, arch: Arch, C: int = 16, N: int = 5, num_classes: int = 10,
                   in_channels: int = 3) -> int:
        """Exact trainable parameter count of the stand-alone NB201 network of ``arch``.

        Network: stem Conv3x3(in_channels->C, no bias) + BN; three stages of ``N`` cells at C, 2C, 4C
        separated by ResNet reduction blocks (ReLU-Conv3x3/s2-BN, ReLU-Conv3x3-BN, shortcut
        AvgPool2d(2,2)->Conv1x1 without bias or BN); head BN + ReLU + GAP + Linear(4C->num_classes, bias).
        Every BN is affine (2 parameters per channel). In a cell, ``nor_conv_kxk`` is ReLU-Conv(k, no bias)-BN
        (k*k*c*c + 2c parameters); ``none``, ``skip_connect`` and ``avg_pool_3x3`` have none.

        Like the NB201 benchmark, this counts the ops on ALL edges, dead ones included (the benchmark
        network instantiates them): it equals the benchmark's ``params`` for CIFAR-10 (10 classes),
        CIFAR-100 (100) and ImageNet16-120 (120) exactly. All-``none`` with the defaults gives 73,306.
        """
        C, N, num_classes, in_channels = _positive(C=C, N=N, num_classes=num_classes, in_channels=in_channels)
        ops = _parse(arch)
        cell_kernels = [_CONV_KERNEL[o] for o in ops if o in _CONV_KERNEL]
        total = 9 * in_channels * C + 2 * C  # stem conv + BN
        for stage in range(3):
            c = C << stage
            total += N * sum(k * k * c * c + 2 * c for k in cell_kernels)
            if stage < 2:  # reduction block c -> 2c
                total += 9 * c * 2 * c + 2 * 2 * c  # conv_a + BN
                total += 9 * 2 * c * 2 * c + 2 * 2 * c  # conv_b + BN
                total += c * 2 * c  # shortcut conv1x1
        total += 2 * 4 * C + 4 * C * num_classes + num_classes  # head BN + Linear
        return total

    def flops(self, arch: Arch, C: int = 16, N: int = 5, num_classes: int = 10, in_channels: int = 3,
              resolution: int = 32) -> int:
        """Multiply-accumulates (MACs) of one forward pass of one image through the stand-alone network.

        Counted: every convolution, ``k*k*c_in*c_out*H_out*W_out``, and the classifier, ``in*out``.
        Not counted: BN, ReLU, pooling (including ``avg_pool_3x3`` and the global average pool), the
        additions of the cell and shortcut sums and the biases. Convolutions on dead edges are counted,
        as in :meth:`num_params`. Stages run at ``resolution``, ``resolution/2`` and ``resolution/4``
        (``resolution`` must be a multiple of 4, else the reduction shortcut and main path disagree).
        """
        C, N, num_classes, in_channels, resolution = _positive(
            C=C, N=N, num_classes=num_classes, in_channels=in_channels, resolution=resolution)
        if resolution % 4:
            raise ValueError(f"NB201 resolution must be a multiple of 4 (two stride-2 reductions), got {resolution}")
        ops = _parse(arch)
        cell_kernels = [_CONV_KERNEL[o] for o in ops if o in _CONV_KERNEL]
        hw = resolution * resolution
        total = 9 * in_channels * C * hw  # stem
        for stage in range(3):
            c = C << stage
            hw_s = hw >> (2 * stage)
            total += N * sum(k * k * c * c for k in cell_kernels) * hw_s
            if stage < 2:  # reduction c -> 2c, all three convs produce the halved resolution
                hw_o = hw_s >> 2
                total += (9 * c * 2 * c + 9 * 2 * c * 2 * c + c * 2 * c) * hw_o
        total += 4 * C * num_classes  # classifier
        return total

    # -- topology -----------------------------------------------------------------------------------------
    def live_edges(self, arch: Arch) -> tuple[bool, ...]:
        """Per edge, whether its op can change the cell output (see :func:`live_edges`)."""
        return live_edges(_parse(arch))

    def is_connected(self, arch: Arch) -> bool:
        """Whether a path from node 0 (input) to node 3 (output) made of non-``none`` edges exists.

        Equivalently, whether any edge is live: every edge on such a path is live, and a live edge lies on
        one. A disconnected cell outputs zeros.
        """
        return any(live_edges(_parse(arch)))

    def expression(self, arch: Arch) -> str:
        """The function the cell computes, as a canonical string (see :func:`cell_expression`)."""
        return cell_expression(_parse(arch))

    def canonical(self, arch: Arch) -> Arch:
        """One representative shared by every cell that computes the same function.

        Two cells are equivalent when their :meth:`expression` is equal: dead edges are dropped,
        ``skip_connect`` is the identity, and node sums are commutative and associative (multisets of
        terms); each op application stays its own term. The representative is the member with the
        smallest choice index (the first in ``enumerate()`` order); e.g. all disconnected cells map to
        the all-``none`` cell. There are 4,930 classes. NB201's own rule (``to_unique_str(consider_zero=True)``)
        gives 6,466: it keeps zero terms inside sums (``x + 0`` differs from ``x``) and does not treat an op
        applied to a sum of zeros as zero; each of its classes lies inside one of ours.
        """
        return _canonical_map()[_parse(arch)]

    def canonical_groups(self) -> dict[str, list[Arch]]:
        """Every isomorphism class: expression -> its cells in ``enumerate()`` order (a fresh copy)."""
        return {expr: list(archs) for expr, archs in _canonical_groups().items()}

    # -- what a supernet's scoring may share (nshot.score.dedup) --------------------------------------------
    def function_key(self, arch: Arch, candidates: Sequence[Sequence[int]] | None = None) -> Arch:
        """``arch`` with every non-live edge replaced by ``none`` (or by the smallest op in ``candidates[e]``
        when ``none`` is not among them): see :func:`exact_representative`."""
        return exact_representative(arch, candidates)

    def evaluation_cost(self, arch: Arch) -> float:
        """The stand-alone MACs (default shape) of ``arch``: of its live edges when ``arch`` is a
        :meth:`function_key` (dead edges are ``none``, and the supernet skips them)."""
        return self.flops(arch)


_CONV_KERNEL = {OPS.index("nor_conv_1x1"): 1, OPS.index("nor_conv_3x3"): 3}


def _positive(**values: Any) -> tuple[int, ...]:
    out = []
    for name, v in values.items():
        if isinstance(v, bool) or not hasattr(v, "__index__") or v.__index__() < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
        out.append(v.__index__())
    return tuple(out)


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


# -- isomorphism --------------------------------------------------------------------------------------------
@lru_cache(maxsize=65536)
def exact_representative(arch: Arch, candidates: Sequence[Sequence[int]] | None = None) -> Arch:
    """``arch`` with every non-live edge replaced by ``none`` (or by the smallest op in ``candidates[e]``
    when ``none`` is not among them). Same live edges, same ops on them, hence the same supernet function:
    the forward pass skips every non-live edge, so the same modules see the same tensors in the same order
    and the outputs are bit-identical (what ``dedup exact`` shares, :meth:`NB201Space.function_key`).

    Changing a non-live edge never changes which edges are live: every live edge lies on an input-to-output
    path of non-``none`` edges, all of whose edges are live, and a swap between two non-``none`` ops leaves
    the graph of non-``none`` edges as it is.
    """
    ops = _parse(arch)
    live = live_edges(ops)
    out = []
    for e, (op, is_live) in enumerate(zip(ops, live)):
        if is_live:
            out.append(op)
        elif candidates is None or 0 in candidates[e]:
            out.append(0)
        else:
            out.append(min(candidates[e]))
    return _format(tuple(out))


def cell_expression(ops: tuple[int, ...]) -> str:
    """Canonical string of the function computed by the cell with op index ``ops`` per edge.

    Node 0 is ``x``. Node i is the multiset of terms over its live incoming edges: ``skip_connect`` adds
    the source node's terms themselves (sums flatten), any other op adds the single term
    ``op(<source terms>)``. Terms are sorted and joined by ``+``. Dead edges (:func:`live_edges`) are
    dropped, so a cell with no live edge is ``0``. The op of each edge is kept as its own term: two
    ``nor_conv_3x3`` on parallel edges give ``nor_conv_3x3(x)+nor_conv_3x3(x)``, not one term.

    Dropping a dead edge whose source node is unreachable is exact for ``avg_pool``/``skip`` (they map
    zeros to zeros); for a conv it drops the constant that BN's shift adds to a zero input, which the
    standard treatment of NB201 isomorphism ignores as well.
    """
    live = live_edges(ops)
    nodes: list[list[str]] = [["x"]]
    for i in range(1, NUM_NODES):
        terms: list[str] = []
        for e, (tgt, src) in enumerate(EDGES):
            if tgt != i or not live[e]:
                continue
            if OPS[ops[e]] == "skip_connect":
                terms.extend(nodes[src])
            else:
                terms.append(f"{OPS[ops[e]]}({'+'.join(nodes[src])})")
        nodes.append(sorted(terms))
    return "+".join(nodes[-1]) or "0"


@lru_cache(maxsize=1)
def _canonical_groups() -> dict[str, tuple[Arch, ...]]:
    groups: dict[str, list[Arch]] = {}
    for arch in NB201Space().enumerate():  # choice-index order, so each group's first member is its smallest
        groups.setdefault(cell_expression(_parse(arch)), []).append(arch)
    return {expr: tuple(archs) for expr, archs in groups.items()}


@lru_cache(maxsize=1)
def _canonical_map() -> dict[tuple[int, ...], Arch]:
    out: dict[tuple[int, ...], Arch] = {}
    for archs in _canonical_groups().values():
        for arch in archs:
            out[_parse(arch)] = archs[0]
    return out


# -- converters ---------------------------------------------------------------------------------------------
NUM_ARCHS = len(OPS) ** len(EDGES)


def choice_index(arch: Arch) -> int:
    """Our own index: sum over edges of op_e * 5**(5 - e), edge 0 most significant (``enumerate()`` order).

    Index 0 is all-``none``, 11718 all-``nor_conv_3x3``. This is NOT the NB201 benchmark index.
    """
    idx = 0
    for op in _parse(arch):
        idx = idx * len(OPS) + op
    return idx


def from_choice_index(i: int) -> Arch:
    """Inverse of :func:`choice_index`."""
    i = _check_int(i, "choice index")
    if not 0 <= i < NUM_ARCHS:
        raise ValueError(f"NB201 choice index {i} is out of range 0..{NUM_ARCHS - 1}")
    ops = []
    for _ in EDGES:
        i, op = divmod(i, len(OPS))
        ops.append(op)
    return _format(tuple(reversed(ops)))


def _check_int(i: Any, what: str) -> int:
    if isinstance(i, bool) or not hasattr(i, "__index__"):
        raise ValueError(f"NB201 {what} must be an int, got {type(i).__name__}: {i!r}")
    return i.__index__()


def to_index(arch: Arch, table: Mapping | Sequence) -> int:
    """The NB201 benchmark index of ``arch``, looked up in ``table``.

    ``table`` relates benchmark indices and arch strings in either direction: a mapping arch -> index
    (fast), a mapping index -> arch, or a sequence of arch strings whose position is the index (both
    scanned). Build it e.g. from the CSV columns ``nb201_index`` and ``arch_str``. Raises ValueError
    naming ``arch`` when it is not in the table.
    """
    key = _format(_parse(arch))
    if isinstance(table, Mapping):
        if key in table:
            return _check_int(table[key], "index in table")
        for i, a in table.items():
            if isinstance(a, str) and _same_arch(a, key):
                return _check_int(i, "index in table")
    else:
        for i, a in enumerate(table):
            if isinstance(a, str) and _same_arch(a, key):
                return i
    raise ValueError(f"NB201 arch {key!r} not found in the index table ({len(table)} entries)")


def from_index(i: int, table: Mapping | Sequence) -> Arch:
    """The architecture at NB201 benchmark index ``i`` in ``table`` (see :func:`to_index` for ``table``).

    Raises ValueError naming ``i`` when it is not in the table.
    """
    i = _check_int(i, "benchmark index")
    if isinstance(table, Mapping):
        if i in table:
            return _format(_parse(table[i]))
        for a, j in table.items():
            if isinstance(a, str) and not isinstance(j, (str, bool)) and hasattr(j, "__index__") \
                    and j.__index__() == i:
                return _format(_parse(a))
    elif 0 <= i < len(table):
        return _format(_parse(table[i]))
    raise ValueError(f"NB201 benchmark index {i} not found in the index table ({len(table)} entries)")


def _same_arch(text: str, key: str) -> bool:
    if text == key:
        return True
    try:
        return _format(_parse(text)) == key
    except ValueError:
        return False


# NNI (microsoft/nni, nni/nas/benchmark/nasbench201/db_gen.py::parse_arch_str and schema.py
# Nb201TrialConfig.arch): a dict with keys "<source>_<target>" and op names without NB201's "nor_" prefix.
NNI_KEYS: tuple[str, ...] = tuple(f"{src}_{tgt}" for tgt, src in EDGES)  # "0_1","0_2","1_2","0_3","1_3","2_3"
NNI_OPS: tuple[str, ...] = ("none", "skip_connect", "conv_1x1", "conv_3x3", "avg_pool_3x3")  # same order as OPS


def to_nni(arch: Arch) -> dict[str, str]:
    """NNI's NAS-Bench-201 dict, e.g. ``{"0_1": "conv_3x3", "0_2": "none", ...}`` (keys in edge order)."""
    return {key: NNI_OPS[op] for key, op in zip(NNI_KEYS, _parse(arch))}


def from_nni(d: Mapping[str, str]) -> Arch:
    """Inverse of :func:`to_nni`; ValueError naming a missing/unknown key or an unknown op."""
    if not isinstance(d, Mapping):
        raise ValueError(f"NNI NB201 architecture must be a dict with keys {', '.join(NNI_KEYS)}, "
                         f"got {type(d).__name__}")
    missing = [k for k in NNI_KEYS if k not in d]
    extra = [k for k in d if k not in NNI_KEYS]
    if missing or extra:
        raise ValueError(f"NNI NB201 dict has missing keys {missing} / unknown keys {extra}; "
                         f"expected exactly {', '.join(NNI_KEYS)}")
    ops = []
    for k in NNI_KEYS:
        if d[k] not in NNI_OPS:
            raise ValueError(f"unknown NNI op {d[k]!r} on edge {k!r}; expected one of {', '.join(NNI_OPS)}")
        ops.append(NNI_OPS.index(d[k]))
    return _format(tuple(ops))


# NASLib (automl/NASLib, naslib/search_spaces/nasbench201/conversions.py, convert_str_to_op_indices /
# convert_op_indices_to_str): op indices into OP_NAMES_NB201 = [skip_connect, none, nor_conv_3x3,
# nor_conv_1x1, avg_pool_3x3] (OP_NAMES = Identity, Zero, ReLUConvBN3x3, ReLUConvBN1x1, AvgPool1x1), over
# EDGE_LIST = (1,2),(1,3),(1,4),(2,3),(2,4),(3,4) with nodes numbered from 1, i.e. edges
# 1<-0, 2<-0, 3<-0, 2<-1, 3<-1, 3<-2 (sorted by source, unlike NB201's sort by target).
NASLIB_OPS: tuple[str, ...] = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")
NASLIB_EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (3, 0), (2, 1), (3, 1), (3, 2))  # (target, source)
_NASLIB_TO_EDGE = tuple(EDGES.index(e) for e in NASLIB_EDGES)  # NASLib position -> our edge index
_OP_TO_NASLIB = tuple(NASLIB_OPS.index(name) for name in OPS)  # our op index -> NASLib op index


def to_naslib(arch: Arch) -> tuple[int, ...]:
    """NASLib's NB201 op indices (its ``convert_str_to_op_indices``), e.g. all-``nor_conv_3x3`` -> (2,)*6."""
    ops = _parse(arch)
    return tuple(_OP_TO_NASLIB[ops[e]] for e in _NASLIB_TO_EDGE)


def from_naslib(indices: Sequence[int]) -> Arch:
    """Inverse of :func:`to_naslib` (NASLib's ``convert_op_indices_to_str``)."""
    if isinstance(indices, (str, bytes, Mapping)) or not hasattr(indices, "__iter__"):
        raise ValueError(f"NASLib NB201 op indices must be a sequence of {len(EDGES)} ints, got {indices!r}")
    indices = list(indices)
    if len(indices) != len(EDGES):
        raise ValueError(f"NASLib NB201 op indices must have {len(EDGES)} entries, got {len(indices)}: {indices}")
    ops = [0] * len(EDGES)
    for pos, v in enumerate(indices):
        if isinstance(v, bool) or not hasattr(v, "__index__") or not 0 <= v.__index__() < len(NASLIB_OPS):
            raise ValueError(f"NASLib op index {v!r} at position {pos} is invalid; expected an int in "
                             f"0..{len(NASLIB_OPS) - 1} ({', '.join(NASLIB_OPS)})")
        ops[_NASLIB_TO_EDGE[pos]] = OPS.index(NASLIB_OPS[v.__index__()])
    return _format(tuple(ops))
