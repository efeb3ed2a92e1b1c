"""NAS-Bench-201 networks: one cell implementation builds both the supernet and stand-alone networks.

A network is built from *candidates*: for each edge, the op indices it holds modules for. The supernet
holds all five, a stand-alone network one, a sub-supernet (few-shot) a subset. Parameter names are the
same in all of them (``cells.3.edges.2.nor_conv_3x3.1.weight``), so exporting a path is a key lookup.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from ..spaces import nb201 as space
from .builders import STANDALONE, SUPERNETS
from .ops import STANDALONE_BN, BNConfig, ResNetReduction, make_nb201_op
from .weighted import path_stats, weighted_add


class NB201Cell(nn.Module):
    """A 4-node NB201 cell; ``forward(x, ops)`` runs the op given for every edge, skipping dead edges."""

    def __init__(self, channels: int, candidates: Sequence[Sequence[int]], bn: BNConfig):
        super().__init__()
        self.edges = nn.ModuleList()
        for cand in candidates:
            edge = nn.ModuleDict()
            for op in sorted(set(cand)):
                if op != 0:  # "none" has no module
                    edge[space.OPS[op]] = make_nb201_op(space.OPS[op], channels, bn)
            self.edges.append(edge)

    def forward(self, x: torch.Tensor, ops: Sequence[int], prune: bool = True) -> torch.Tensor:
        live = space.live_edges(tuple(ops)) if prune else tuple(op != 0 for op in ops)
        nodes: list[Optional[torch.Tensor]] = [x]
        for i in range(1, space.NUM_NODES):
            total = None
            for e, (tgt, src) in enumerate(space.EDGES):
                if tgt != i or not live[e]:
                    continue
                inp = nodes[src] if nodes[src] is not None else torch.zeros_like(x)
                out = self.edges[e][space.OPS[ops[e]]](inp)
                total = out if total is None else total + out
            nodes.append(total)
        return nodes[-1] if nodes[-1] is not None else torch.zeros_like(x)

    def forward_weighted(self, x: torch.Tensor, weights: torch.Tensor, paths: int) -> torch.Tensor:
        """Every held op of every edge runs; node i = sum over its edges e and ops o of ``weights[:, e, o]`` times
        the op's output (per path block of the batch; see :mod:`nshot.nn.weighted`)."""
        nodes: list[torch.Tensor] = [x]
        for i in range(1, space.NUM_NODES):
            total = None
            for e, (tgt, src) in enumerate(space.EDGES):
                if tgt != i:
                    continue
                for name, module in self.edges[e].items():
                    total = weighted_add(total, module(nodes[src]), weights[:, e, _OP_INDEX[name]], paths)
            nodes.append(total if total is not None else torch.zeros_like(x))
        return nodes[-1]


_OP_INDEX = {name: i for i, name in enumerate(space.OPS)}


class NB201Network(nn.Module):
    """NB201 macro skeleton: stem, 3 stages of N cells at C/2C/4C with ResNet reductions, BN-ReLU-GAP-FC head.

    Args:
        candidates: per edge, the op indices to hold modules for (all five for a supernet).
        fixed_arch: the architecture a stand-alone network runs when ``forward`` gets none.
    """

    def __init__(self, candidates: Sequence[Sequence[int]], C: int = 16, N: int = 5, num_classes: int = 10,
                 in_channels: int = 3, bn: BNConfig = BNConfig(), fixed_arch: Optional[str] = None):
        super().__init__()
        if len(candidates) != len(space.EDGES):
            raise ValueError(f"NB201 needs candidates for {len(space.EDGES)} edges, got {len(candidates)}")
        for e, cand in enumerate(candidates):
            bad = [o for o in cand if not 0 <= o < len(space.OPS)]
            if bad or not cand:
                raise ValueError(f"edge {e}: candidate op indices must be a non-empty subset of 0..4, got {list(cand)}")
        if C < 1 or N < 1:
            raise ValueError(f"NB201 needs C >= 1 and N >= 1, got C={C}, N={N}")
        self.candidates = tuple(tuple(sorted(set(c))) for c in candidates)
        self.space = space.NB201Space()   # what the network runs (scoring's dedup asks it which archs are equal)
        self.C, self.N, self.num_classes, self.in_channels, self.bn = C, N, num_classes, in_channels, bn
        self.fixed_arch = fixed_arch
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C, 3, padding=1, bias=False), bn.make(C))
        self.cells = nn.ModuleList()
        c = C
        for stage in range(3):
            if stage > 0:
                self.cells.append(ResNetReduction(c, 2 * c, bn))
                c *= 2
            for _ in range(N):
                self.cells.append(NB201Cell(c, self.candidates, bn))
        self.lastact = nn.Sequential(bn.make(c), nn.ReLU(inplace=False))
        self.classifier = nn.Linear(c, num_classes)
        self.feature_dim = c   # width of features(): what a projection head or probe reads

    def ops_of(self, arch: Optional[str]) -> tuple[int, ...]:
        """Op index per edge of ``arch``, checked against the ops this network holds."""
        if arch is None:
            if self.fixed_arch is None:
                raise ValueError("a supernet forward needs an architecture: call net(x, arch)")
            arch = self.fixed_arch
        ops = space._parse(arch)
        for e, op in enumerate(ops):
            if op not in self.candidates[e]:
                raise ValueError(f"architecture {arch} uses {space.OPS[op]!r} on edge {e}, which this network "
                                 f"does not hold (edge {e} holds {[space.OPS[o] for o in self.candidates[e]]})")
        return ops

    def features(self, x: torch.Tensor, arch: Optional[str] = None, prune: bool = True) -> torch.Tensor:
        """Pooled features before the classifier."""
        ops = self.ops_of(arch)
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x, ops, prune) if isinstance(cell, NB201Cell) else cell(x)
        return self.lastact(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor, arch: Optional[str] = None, prune: bool = True) -> torch.Tensor:
        return self.classifier(self.features(x, arch, prune))

    # -- weighted forward (nshot.nn.weighted): the static training step, several paths per forward ---------------
    def path_weights(self, arch: str) -> tuple[tuple[float, ...], ...]:
        """(6 edges x 5 ops) one-hot table of ``arch`` with its dead edges zeroed (they are skipped eagerly)."""
        ops = self.ops_of(arch)
        live = space.live_edges(ops)
        return tuple(tuple(1.0 if (o == op and live[e]) else 0.0 for o in range(len(space.OPS)))
                     for e, op in enumerate(ops))

    def features_weighted(self, x: torch.Tensor, weights: torch.Tensor,
                          stats_batch: Optional[int] = None) -> torch.Tensor:
        """Pooled features of P paths at once: ``weights`` (P, 6, 5), the batch P equal blocks."""
        paths = weights.shape[0]
        with path_stats(self, x.shape[0], paths, stats_batch):
            x = self.stem(x)
            for cell in self.cells:
                x = cell.forward_weighted(x, weights, paths) if isinstance(cell, NB201Cell) else cell(x)
            return self.lastact(x).mean(dim=(2, 3))

    def forward_weighted(self, x: torch.Tensor, weights: torch.Tensor,
                         stats_batch: Optional[int] = None) -> torch.Tensor:
        """Logits of P paths at once (see :meth:`features_weighted`)."""
        return self.classifier(self.features_weighted(x, weights, stats_batch))

    def choice_params(self) -> dict[str, tuple[int, int]]:
        """Parameter name -> (edge, op index) for the parameters of cell ops; the rest are shared."""
        out = {}
        for name, _ in self.named_parameters():
            parts = name.split(".")
            if parts[0] == "cells" and len(parts) > 4 and parts[2] == "edges":
                out[name] = (int(parts[3]), _OP_INDEX[parts[4]])
        return out


@SUPERNETS.register("nb201")
def nb201_supernet(C: int = 16, N: int = 5, num_classes: int = 10, in_channels: int = 3,
                   bn: BNConfig = BNConfig(), candidates: Optional[Sequence[Sequence[int]]] = None) -> NB201Network:
    """Weight-sharing NB201 supernet (all ops on every edge unless ``candidates`` restricts them)."""
    cand = candidates if candidates is not None else [range(len(space.OPS))] * len(space.EDGES)
    return NB201Network(cand, C, N, num_classes, in_channels, bn)


@STANDALONE.register("nb201")
def nb201_standalone(arch: str, C: int = 16, N: int = 5, num_classes: int = 10, in_channels: int = 3,
                     bn: BNConfig = STANDALONE_BN) -> NB201Network:
    """Stand-alone network of one cell (NB201 benchmark settings: affine BN with running statistics)."""
    ops = space._parse(arch)
    return NB201Network([[o] for o in ops], C, N, num_classes, in_channels, bn, fixed_arch=space._format(ops))
