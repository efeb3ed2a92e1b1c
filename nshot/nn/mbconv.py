"""MobileNet-style blocks and the layer-wise network shared by the macro and proxyless spaces.

A :class:`LayerwiseNetwork` is stem -> one *choice layer* per decision -> head -> classifier. A choice layer
is an ``nn.ModuleDict`` holding a module for each candidate choice (all of them in a supernet, one in a
stand-alone network, a subset in a few-shot sub-supernet), keyed by the choice name, so parameter names are
identical in all three (``layers.3.k5e6.depthwise.0.weight``) and exporting a path is a name lookup.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from torch import nn

from ..spaces.mobile import LayerSpec, LayerwiseSpace, mbconv_kind
from .ops import BNConfig
from .weighted import path_stats, weighted_add

Activation = Callable[[], nn.Module]


class MBConv(nn.Module):
    """MobileNetV2 inverted residual: [1x1 expand + BN + act] (absent when ``expand`` = 1), kxk depthwise with
    ``stride`` + BN + act, 1x1 project + BN; plus the input when stride is 1 and the width is unchanged.
    Hidden width = ``expand`` x ``c_in``. Convs have no bias (BN follows each)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, expand: int, stride: int, bn: BNConfig,
                 act: Activation = nn.ReLU6):
        super().__init__()
        mid = c_in * expand
        self.expand = None if expand == 1 else nn.Sequential(
            nn.Conv2d(c_in, mid, 1, bias=False), bn.make(mid), act())
        self.depthwise = nn.Sequential(
            nn.Conv2d(mid, mid, kernel, stride=stride, padding=kernel // 2, groups=mid, bias=False),
            bn.make(mid), act())
        self.project = nn.Sequential(nn.Conv2d(mid, c_out, 1, bias=False), bn.make(c_out))
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.expand(x) if self.expand is not None else x
        h = self.project(self.depthwise(h))
        return x + h if self.residual else h


def skip_module(c_in: int, c_out: int, stride: int, bn: BNConfig) -> nn.Module:
    """The identity choice: ``nn.Identity``, or conv1x1(stride) + BN where stride or width must change."""
    if stride == 1 and c_in == c_out:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), bn.make(c_out))


def choice_module(name: str, layer: LayerSpec, bn: BNConfig, act: Activation = nn.ReLU6) -> nn.Module:
    """The module of choice ``name`` (``id`` or ``kKeE``) at ``layer``."""
    kind = mbconv_kind(name)
    if kind is None:
        return skip_module(layer.c_in, layer.c_out, layer.stride, bn)
    return MBConv(layer.c_in, layer.c_out, kind[0], kind[1], layer.stride, bn, act)


def check_candidates(space: LayerwiseSpace,
                     candidates: Optional[Sequence[Sequence[int]]]) -> tuple[tuple[int, ...], ...]:
    """Candidate choice indices per decision (all when ``candidates`` is None), validated and sorted."""
    if candidates is None:
        return tuple(tuple(range(n)) for n in space.sizes)
    if len(candidates) != space.num_decisions:
        raise ValueError(f"{space.name} needs candidates for {space.num_decisions} layers, got {len(candidates)}")
    out = []
    for d, (cand, n) in enumerate(zip(candidates, space.sizes)):
        cand = sorted({int(c) for c in cand})
        if not cand or cand[0] < 0 or cand[-1] >= n:
            raise ValueError(f"layer {d}: candidate choices must be a non-empty subset of 0..{n - 1}, got {list(cand)}")
        out.append(tuple(cand))
    return tuple(out)


def path_names(space, candidates: Sequence[Sequence[int]], arch: Optional[str], fixed_arch: Optional[str],
               unit: str) -> tuple[str, ...]:
    """The choice name of every decision of ``arch`` (``fixed_arch`` when None), checked against the
    ``candidates`` a network holds; ValueError naming the ``unit`` (layer, block) otherwise."""
    if arch is None:
        if fixed_arch is None:
            raise ValueError("a supernet forward needs an architecture: call net(x, arch)")
        arch = fixed_arch
    choice = space.decode(arch)
    for d, c in enumerate(choice):
        if c not in candidates[d]:
            held = [space.choices[d][k] for k in candidates[d]]
            raise ValueError(f"architecture {arch} uses {space.choices[d][c]!r} at {unit} {d}, which this "
                             f"network does not hold ({unit} {d} holds {held})")
    return tuple(space.choices[d][c] for d, c in enumerate(choice))


class LayerwiseNetwork(nn.Module):
    """stem -> choice layers -> head (pooled features) -> classifier; ``forward(x, arch)`` runs one path.

    Args:
        space: the layer-wise space (its ``decode`` and choice names).
        layers: one :class:`LayerSpec` per decision.
        candidates: per decision, the choice indices to hold modules for.
        stem, head: modules before the first and after the last choice layer (the head ends before pooling).
        feature_dim: width of the pooled features (the head's output channels).
        fixed_arch: the architecture a stand-alone network runs when ``forward`` gets none.
    """

    def __init__(self, space: LayerwiseSpace, layers: Sequence[LayerSpec], candidates: Sequence[Sequence[int]],
                 stem: nn.Module, head: nn.Module, feature_dim: int, num_classes: int, bn: BNConfig,
                 act: Activation = nn.ReLU6, fixed_arch: Optional[str] = None):
        super().__init__()
        self.space, self.bn, self.fixed_arch = space, bn, fixed_arch
        self.candidates = check_candidates(space, candidates)
        self.stem = stem
        self.layers = nn.ModuleList()
        for d, (layer, cand) in enumerate(zip(layers, self.candidates)):
            self.layers.append(nn.ModuleDict({space.choices[d][c]: choice_module(space.choices[d][c], layer, bn, act)
                                              for c in cand}))
        self.head = head
        self.feature_dim = feature_dim   # width of features(): what a projection head or probe reads
        self.classifier = nn.Linear(feature_dim, num_classes)

    def names_of(self, arch: Optional[str]) -> tuple[str, ...]:
        """The choice name of every layer of ``arch``, checked against the choices this network holds."""
        return path_names(self.space, self.candidates, arch, self.fixed_arch, "layer")

    def features(self, x: torch.Tensor, arch: Optional[str] = None) -> torch.Tensor:
        """Pooled features before the classifier."""
        names = self.names_of(arch)
        x = self.stem(x)
        for layer, name in zip(self.layers, names):
            x = layer[name](x)
        return self.head(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor, arch: Optional[str] = None) -> torch.Tensor:
        return self.classifier(self.features(x, arch))

    # -- weighted forward (nshot.nn.weighted): the static training step, several paths per forward ---------------
    def path_weights(self, arch: str) -> tuple[tuple[float, ...], ...]:
        """(layers x max choices) one-hot table of ``arch``."""
        names = self.names_of(arch)
        width = max(len(c) for c in self.space.choices)
        return tuple(tuple(1.0 if self.space.choices[d].index(names[d]) == c else 0.0 for c in range(width))
                     for d in range(len(names)))

    def features_weighted(self, x: torch.Tensor, weights: torch.Tensor,
                          stats_batch: Optional[int] = None) -> torch.Tensor:
        """Pooled features of P paths at once: ``weights`` (P, layers, max choices), the batch P equal blocks;
        layer d's output is the weighted sum of its held choices' outputs."""
        paths = weights.shape[0]
        with path_stats(self, x.shape[0], paths, stats_batch):
            x = self.stem(x)
            for d, layer in enumerate(self.layers):
                total = None
                for name, module in layer.items():
                    total = weighted_add(total, module(x), weights[:, d, self.space.choices[d].index(name)], paths)
                x = total
            return self.head(x).mean(dim=(2, 3))

    def forward_weighted(self, x: torch.Tensor, weights: torch.Tensor,
                         stats_batch: Optional[int] = None) -> torch.Tensor:
        """Logits of P paths at once (see :meth:`features_weighted`)."""
        return self.classifier(self.features_weighted(x, weights, stats_batch))

    def choice_params(self) -> dict[str, tuple[int, int]]:
        """Parameter name -> (layer, choice index) for the parameters of choice modules; the rest are shared."""
        out = {}
        for name, _ in self.named_parameters():
            parts = name.split(".")
            if parts[0] == "layers" and len(parts) > 3:
                d = int(parts[1])
                out[name] = (d, self.space.choices[d].index(parts[2]))
        return out

    def decision_param_names(self, decision: int) -> set[str]:
        """Names of the parameters of decision ``decision``'s candidate modules (left out by gradient matching)."""
        prefix = f"layers.{decision}."
        return {n for n, _ in self.named_parameters() if n.startswith(prefix)}
