"""DARTS CNN networks: the search supernet (every op on every edge) and the stand-alone evaluation network.

Both are built from the same op code (:func:`make_op`). The supernet (DARTS's search model: C = 16, 8 cells,
pools followed by a non-affine BN) runs

* ``forward(x, arch)``: one genotype (single-path training, scoring), only its ops;
* ``forward_mixed(x, weights)``: the mixed op of differentiable search, every held op of every edge weighted by
  ``weights`` (28 x 8: the normal cell's 14 edges, then the reduction cell's; ``none`` adds nothing).

Parameter names: ``cells.{i}.edges.{k}.{op}.*`` with ``k`` the edge (:data:`nshot.spaces.darts.EDGES`). The
evaluation network (:class:`DartsNetwork`, DARTS's ``NetworkCIFAR``) holds one module per genotype pair
(``cells.{i}.ops.{p}``), drop-path on non-identity ops in training, and an auxiliary head after cell
``2 * cells // 3`` whose logits ``forward`` returns beside the main ones in training mode.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..spaces import darts as space
from .builders import STANDALONE, SUPERNETS
from .ops import STANDALONE_BN, BNConfig


class DilConv(nn.Sequential):
    """ReLU -> depthwise k x k (dilation d) -> pointwise 1x1 -> BN."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int, dilation: int, bn: BNConfig):
        pad = dilation * (k - 1) // 2
        super().__init__(nn.ReLU(inplace=False),
                         nn.Conv2d(c_in, c_in, k, stride, pad, dilation=dilation, groups=c_in, bias=False),
                         nn.Conv2d(c_in, c_out, 1, bias=False), bn.make(c_out))


class SepConv(nn.Sequential):
    """Two DilConv(dilation 1) halves; the first carries the stride."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int, bn: BNConfig):
        super().__init__(DilConv(c_in, c_in, k, stride, 1, bn), DilConv(c_in, c_out, k, 1, 1, bn))


class FactorizedReduce(nn.Module):
    """ReLU, then two 1x1 stride-2 convs (the second on the input shifted by one pixel), concatenated, BN."""

    def __init__(self, c_in: int, c_out: int, bn: BNConfig):
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = bn.make(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


class ReLUConvBN(nn.Sequential):
    """ReLU, 1x1 convolution, BN: the DARTS cell's preprocessing of its two inputs."""

    def __init__(self, c_in: int, c_out: int, bn: BNConfig):
        super().__init__(nn.ReLU(inplace=False), nn.Conv2d(c_in, c_out, 1, bias=False), bn.make(c_out))


def make_op(name: str, c: int, stride: int, bn: BNConfig, pool_bn: bool) -> nn.Module:
    """One DARTS op on ``c`` channels; ``pool_bn`` appends a BN to the pools (the search network)."""
    if name in ("max_pool_3x3", "avg_pool_3x3"):
        pool = (nn.MaxPool2d(3, stride, 1) if name == "max_pool_3x3"
                else nn.AvgPool2d(3, stride, 1, count_include_pad=False))
        return nn.Sequential(pool, bn.make(c)) if pool_bn else pool
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c, bn)
    k = int(name[-1])
    if name.startswith("sep_conv"):
        return SepConv(c, c, k, stride, bn)
    if name.startswith("dil_conv"):
        return DilConv(c, c, k, stride, 2, bn)
    raise ValueError(f"unknown DARTS op {name!r}")


def _preprocess(c_pp: int, c_p: int, c: int, reduction_prev: bool, bn: BNConfig) -> tuple[nn.Module, nn.Module]:
    pre0 = FactorizedReduce(c_pp, c, bn) if reduction_prev else ReLUConvBN(c_pp, c, bn)
    return pre0, ReLUConvBN(c_p, c, bn)


class SearchCell(nn.Module):
    """A supernet cell: per edge, the held candidate ops (a ModuleDict by op name)."""

    def __init__(self, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool,
                 candidates: Sequence[Sequence[int]], bn: BNConfig):
        super().__init__()
        self.reduction = reduction
        self.preprocess0, self.preprocess1 = _preprocess(c_pp, c_p, c, reduction_prev, bn)
        self.edges = nn.ModuleList()
        for e, (node, src) in enumerate(space.EDGES):
            stride = 2 if reduction and src < 2 else 1
            ops = nn.ModuleDict()
            for o in sorted(set(candidates[e])):
                if o != 0:
                    ops[space.OPS[o]] = make_op(space.OPS[o], c, stride, bn, pool_bn=True)
            self.edges.append(ops)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, pairs: Sequence[tuple[str, int]]) -> torch.Tensor:
        """One genotype's pairs (two per node 2..5)."""
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for i in range(space.STEPS):
            node = i + 2
            total = None
            for op, src in pairs[2 * i:2 * i + 2]:
                out = self.edges[space.edge_index(node, src)][op](states[src])
                total = out if total is None else total + out
            states.append(total)
        return torch.cat(states[2:], dim=1)

    def forward_mixed(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Node i = sum over its edges e and held ops o of ``weights[e, o]`` x op(input)."""
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for i in range(space.STEPS):
            node = i + 2
            total = None
            for src in range(node):
                e = space.edge_index(node, src)
                for name, module in self.edges[e].items():
                    term = module(states[src]) * weights[e, _OP_INDEX[name]]
                    total = term if total is None else total + term
            if total is None:   # every edge into the node holds only `none`: a zero node
                ref = states[0]
                n, ch, h, w = ref.shape
                shape = (n, ch, (h - 1) // 2 + 1, (w - 1) // 2 + 1) if self.reduction else ref.shape
                total = ref.new_zeros(shape)
            states.append(total)
        return torch.cat(states[2:], dim=1)


_OP_INDEX = {name: i for i, name in enumerate(space.OPS)}


class DartsSupernet(nn.Module):
    """DARTS search network: stem conv3x3 -> 3C, ``3N + 2`` cells (reductions at 1/3 and 2/3), GAP, linear."""

    def __init__(self, C: int = 16, N: int = 2, num_classes: int = 10, in_channels: int = 3,
                 bn: BNConfig = BNConfig(), candidates: Optional[Sequence[Sequence[int]]] = None,
                 resolution: Optional[int] = None):
        super().__init__()
        num_decisions = 2 * space.NUM_EDGES
        if candidates is None:
            candidates = [range(len(space.OPS))] * num_decisions
        if len(candidates) != num_decisions:
            raise ValueError(f"DARTS supernet candidates: one op set per edge of both cells ({num_decisions}), "
                             f"got {len(candidates)}")
        self.candidates = tuple(tuple(sorted(set(c))) for c in candidates)
        self.C, self.N, self.num_classes = C, N, num_classes
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 3 * C, 3, padding=1, bias=False), bn.make(3 * C))
        self.cells = nn.ModuleList()
        c_pp, c_p, c = 3 * C, 3 * C, C
        reduction_prev = False
        for reduction in space.cell_plan(space.layers(N)):
            if reduction:
                c *= 2
            cand = self.candidates[space.NUM_EDGES:] if reduction else self.candidates[:space.NUM_EDGES]
            self.cells.append(SearchCell(c_pp, c_p, c, reduction, reduction_prev, cand, bn))
            reduction_prev = reduction
            c_pp, c_p = c_p, 4 * c
        self.classifier = nn.Linear(c_p, num_classes)
        self.feature_dim = c_p
        self.alpha_shape = (num_decisions, len(space.OPS))
        self.space = space.DartsSpace()   # what the network runs (scoring's dedup asks it)

    def features(self, x: torch.Tensor, arch: str) -> torch.Tensor:
        g = space.parse_genotype(arch)
        for cell_pairs, lo in ((g.normal, 0), (g.reduce, space.NUM_EDGES)):
            for node_k, (op, src) in enumerate(cell_pairs):
                e = lo + space.edge_index(2 + node_k // 2, src)
                if space.OPS.index(op) not in self.candidates[e]:
                    raise ValueError(f"architecture uses {op!r} on edge {e}, which this supernet does not hold")
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, g.reduce if cell.reduction else g.normal)
        return s1.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor, arch: str) -> torch.Tensor:
        return self.classifier(self.features(x, arch))

    def forward_mixed(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Logits with every op weighted: ``weights`` (28, 8), normal-cell edges first."""
        wn, wr = weights[:space.NUM_EDGES], weights[space.NUM_EDGES:]
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell.forward_mixed(s0, s1, wr if cell.reduction else wn)
        return self.classifier(s1.mean(dim=(2, 3)))

    def edge_param_names(self) -> dict[str, tuple[int, int]]:
        """Parameter name -> (edge 0..27, op index) for the parameters of cell ops; the rest are shared."""
        out = {}
        for i, cell in enumerate(self.cells):
            lo = space.NUM_EDGES if cell.reduction else 0
            for e, ops in enumerate(cell.edges):
                for name, module in ops.items():
                    for pname, _ in module.named_parameters():
                        out[f"cells.{i}.edges.{e}.{name}.{pname}"] = (lo + e, _OP_INDEX[name])
        return out


def drop_path(x: torch.Tensor, prob: float, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Zero whole samples with probability ``prob``, scaling the rest by 1 / (1 - prob)."""
    if prob <= 0.0:
        return x
    keep = 1.0 - prob
    mask = torch.rand(x.shape[0], 1, 1, 1, generator=generator, device="cpu").to(x.device) < keep
    return x / keep * mask.to(x.dtype)


class EvalCell(nn.Module):
    """A stand-alone cell: one module per genotype pair, outputs of nodes 2..5 concatenated."""

    def __init__(self, pairs: Sequence[tuple[str, int]], c_pp: int, c_p: int, c: int, reduction: bool,
                 reduction_prev: bool, bn: BNConfig):
        super().__init__()
        self.reduction = reduction
        self.pairs = tuple(pairs)
        self.preprocess0, self.preprocess1 = _preprocess(c_pp, c_p, c, reduction_prev, bn)
        self.ops = nn.ModuleList(make_op(op, c, 2 if reduction and src < 2 else 1, bn, pool_bn=False)
                                 for op, src in self.pairs)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for i in range(space.STEPS):
            total = None
            for p in (2 * i, 2 * i + 1):
                out = self.ops[p](states[self.pairs[p][1]])
                if self.training and drop_prob > 0 and not isinstance(self.ops[p], nn.Identity):
                    out = drop_path(out, drop_prob, generator)
                total = out if total is None else total + out
            states.append(total)
        return torch.cat(states[2:], dim=1)


class AuxiliaryHead(nn.Module):
    """DARTS's CIFAR auxiliary head (input 8x8): ReLU, avgpool 5/3, conv1x1 128, BN, ReLU, conv2x2 768, BN, ReLU,
    linear."""

    def __init__(self, c: int, num_classes: int, bn: BNConfig):
        super().__init__()
        h1, h2 = space.AUX_HIDDEN
        self.features = nn.Sequential(
            nn.ReLU(inplace=False), nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False),
            nn.Conv2d(c, h1, 1, bias=False), bn.make(h1), nn.ReLU(inplace=False),
            nn.Conv2d(h1, h2, 2, bias=False), bn.make(h2), nn.ReLU(inplace=False))
        self.classifier = nn.Linear(h2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[-2:]) < 5:
            raise ValueError(f"the DARTS auxiliary head needs feature maps of at least 5x5 after the second "
                             f"reduction (32x32 inputs give 8x8), got {tuple(x.shape[-2:])}; train without it "
                             "(aux_weight 0) on smaller images")
        return self.classifier(self.features(x).flatten(1))


class DartsNetwork(nn.Module):
    """DARTS's evaluation network for one genotype (``NetworkCIFAR``), ``3N + 2`` cells at C/2C/4C.

    In training mode with ``auxiliary`` ``forward`` returns ``(logits, aux_logits)``; otherwise the logits.
    ``drop_path_prob`` is set by the training loop (DARTS raises it linearly over the epochs).
    """

    def __init__(self, arch: str, C: int = 36, N: int = 6, num_classes: int = 10, in_channels: int = 3,
                 auxiliary: bool = True, bn: BNConfig = STANDALONE_BN, resolution: Optional[int] = None):
        super().__init__()
        g = space.parse_genotype(arch)
        self.arch = space.format_genotype(g)
        self.drop_path_prob = 0.0
        self.generator: Optional[torch.Generator] = None
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 3 * C, 3, padding=1, bias=False), bn.make(3 * C))
        self.cells = nn.ModuleList()
        num_cells = space.layers(N)
        self.aux_after = 2 * num_cells // 3
        c_pp, c_p, c = 3 * C, 3 * C, C
        reduction_prev = False
        self.auxiliary = None
        for i, reduction in enumerate(space.cell_plan(num_cells)):
            if reduction:
                c *= 2
            self.cells.append(EvalCell(g.reduce if reduction else g.normal, c_pp, c_p, c, reduction,
                                       reduction_prev, bn))
            reduction_prev = reduction
            c_pp, c_p = c_p, 4 * c
            if i == self.aux_after and auxiliary:
                self.auxiliary = AuxiliaryHead(c_p, num_classes, bn)
        self.classifier = nn.Linear(c_p, num_classes)
        self.feature_dim = c_p

    def forward(self, x: torch.Tensor, arch: Optional[str] = None):
        if arch is not None and space.format_genotype(space.parse_genotype(arch)) != self.arch:
            raise ValueError("this stand-alone DARTS network runs only its own genotype")
        aux = None
        s0 = s1 = self.stem(x)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob, self.generator)
            if i == self.aux_after and self.auxiliary is not None and self.training:
                aux = self.auxiliary(s1)
        logits = self.classifier(F.adaptive_avg_pool2d(s1, 1).flatten(1))
        return (logits, aux) if aux is not None else logits


@SUPERNETS.register("darts")
def darts_supernet(C: int = 16, N: int = 2, num_classes: int = 10, in_channels: int = 3, bn: BNConfig = BNConfig(),
                   candidates: Optional[Sequence[Sequence[int]]] = None,
                   resolution: Optional[int] = None) -> DartsSupernet:
    """DARTS search supernet (C = 16, N = 2: DARTS's 8 cells)."""
    return DartsSupernet(C, N, num_classes, in_channels, bn, candidates)


@STANDALONE.register("darts")
def darts_standalone(arch: str, C: int = 36, N: int = 6, num_classes: int = 10, in_channels: int = 3,
                     bn: BNConfig = STANDALONE_BN, auxiliary: bool = True,
                     resolution: Optional[int] = None) -> DartsNetwork:
    """DARTS evaluation network of ``arch`` (C = 36, N = 6: 20 cells; auxiliary head)."""
    return DartsNetwork(arch, C, N, num_classes, in_channels, auxiliary, bn)
