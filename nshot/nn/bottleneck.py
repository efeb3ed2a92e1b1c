"""Pi-NAS's bottleneck networks (split-attention blocks): supernet and stand-alone network from the same code.

``blocks.{d}.shortcut`` is shared by the block's candidates; ``blocks.{d}.choices.{name}`` holds each candidate's
branch, so parameter names agree between supernet and stand-alone network and ``export_subnet`` is a key lookup.
Parameter counts equal :meth:`nshot.spaces.bottleneck.BottleneckSpace.num_params` exactly (tested).
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..spaces.bottleneck import CANDIDATES, EXPANSION, BottleneckSpace, attention_width, group_width
from .mbconv import check_candidates, path_names
from .builders import STANDALONE, SUPERNETS
from .ops import STANDALONE_BN, BNConfig


class SplitAttentionConv(nn.Module):
    """conv3x3 to ``radix`` splits (groups cardinality x radix) + BN + ReLU, then attention over the splits from
    their pooled sum (a 2-layer grouped MLP; softmax over splits, sigmoid when radix = 1)."""

    def __init__(self, channels: int, stride: int, radix: int, cardinality: int, bn: BNConfig):
        super().__init__()
        self.radix, self.cardinality, self.channels = radix, cardinality, channels
        inter = attention_width(channels, radix, cardinality)
        self.conv = nn.Conv2d(channels, channels * radix, 3, stride=stride, padding=1, groups=cardinality * radix,
                              bias=False)
        self.bn0 = bn.make(channels * radix)
        self.fc1 = nn.Conv2d(channels, inter, 1, groups=cardinality)
        self.bn1 = bn.make(inter)
        self.fc2 = nn.Conv2d(inter, channels * radix, 1, groups=cardinality)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn0(self.conv(x)))
        b = x.shape[0]
        splits = x.split(self.channels, dim=1) if self.radix > 1 else (x,)
        gap = sum(splits).mean(dim=(2, 3), keepdim=True)
        att = self.fc2(F.relu(self.bn1(self.fc1(gap))))
        if self.radix > 1:   # softmax over the splits within each cardinal group
            att = att.view(b, self.cardinality, self.radix, -1).transpose(1, 2).softmax(dim=1)
            att = att.reshape(b, -1, 1, 1)
            return sum(a * s for a, s in zip(att.split(self.channels, dim=1), splits))
        return torch.sigmoid(att) * x


class BottleneckBranch(nn.Module):
    """conv1x1 + BN + ReLU, split-attention conv, conv1x1 to 4 x planes + BN (the residual is added outside)."""

    def __init__(self, c_in: int, planes: int, stride: int, radix: int, cardinality: int, base_width: int,
                 bn: BNConfig):
        super().__init__()
        gw = group_width(planes, cardinality, base_width)
        self.conv1 = nn.Conv2d(c_in, gw, 1, bias=False)
        self.bn1 = bn.make(gw)
        self.attn = SplitAttentionConv(gw, stride, radix, cardinality, bn)
        self.conv3 = nn.Conv2d(gw, planes * EXPANSION, 1, bias=False)
        self.bn3 = bn.make(planes * EXPANSION)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn3(self.conv3(self.attn(F.relu(self.bn1(self.conv1(x))))))


class BottleneckBlock(nn.Module):
    """One searchable block: the candidates' branches and the shared shortcut; ``forward(x, name)``."""

    def __init__(self, c_in: int, planes: int, stride: int, names: Sequence[str], cand: Sequence[int], bn: BNConfig):
        super().__init__()
        c_out = planes * EXPANSION
        self.choices = nn.ModuleDict({names[c]: BottleneckBranch(c_in, planes, stride, *CANDIDATES[c], bn)
                                      for c in cand})
        if stride == 1 and c_in == c_out:
            self.shortcut: nn.Module = nn.Identity()
        else:
            pool = [nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False)] if stride > 1 else []
            self.shortcut = nn.Sequential(*pool, nn.Conv2d(c_in, c_out, 1, bias=False), bn.make(c_out))

    def forward(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.relu(self.choices[name](x) + self.shortcut(x))


class BottleneckNetwork(nn.Module):
    """stem -> searchable bottleneck blocks -> global average pool -> Linear; ``forward(x, arch)``."""

    def __init__(self, candidates: Optional[Sequence[Sequence[int]]] = None, num_classes: int = 10,
                 in_channels: int = 3, bn: BNConfig = BNConfig(), fixed_arch: Optional[str] = None, **options):
        super().__init__()
        self.space = BottleneckSpace(**options)
        self.fixed_arch, self.bn = fixed_arch, bn
        self.candidates = check_candidates(self.space, candidates)
        sw = self.space.stem_width
        self.stem = nn.Sequential(nn.Conv2d(in_channels, sw, 3, padding=1, bias=False), bn.make(sw), nn.ReLU())
        self.blocks = nn.ModuleList(
            BottleneckBlock(c_in, planes, stride, self.space.choices[d], self.candidates[d], bn)
            for d, (c_in, planes, stride, _) in enumerate(self.space.blocks()))
        self.feature_dim = self.space.widths[-1] * EXPANSION   # what a projection head or probe reads
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    def names_of(self, arch: Optional[str]) -> tuple[str, ...]:
        """The candidate name of every block of ``arch``, checked against the candidates this network holds."""
        return path_names(self.space, self.candidates, arch, self.fixed_arch, "block")

    def features(self, x: torch.Tensor, arch: Optional[str] = None) -> torch.Tensor:
        """Pooled features before the classifier."""
        names = self.names_of(arch)
        x = self.stem(x)
        for block, name in zip(self.blocks, names):
            x = block(x, name)
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor, arch: Optional[str] = None) -> torch.Tensor:
        return self.classifier(self.features(x, arch))

    def decision_param_names(self, decision: int) -> set[str]:
        """Parameters of block ``decision``'s candidate branches (not its shared shortcut)."""
        prefix = f"blocks.{decision}.choices."
        return {n for n, _ in self.named_parameters() if n.startswith(prefix)}


@SUPERNETS.register("bottleneck")
def bottleneck_supernet(candidates: Optional[Sequence[Sequence[int]]] = None, bn: BNConfig = BNConfig(),
                        **options) -> BottleneckNetwork:
    """Weight-sharing bottleneck supernet (all four candidates in every block unless ``candidates`` restricts)."""
    return BottleneckNetwork(candidates, bn=bn, **options)


@STANDALONE.register("bottleneck")
def bottleneck_standalone(arch: str, bn: BNConfig = STANDALONE_BN, **options) -> BottleneckNetwork:
    """Stand-alone network of one architecture (affine BN with running statistics)."""
    space = BottleneckSpace(**{k: v for k, v in options.items() if k in BottleneckSpace.space_options})
    choice = space.decode(arch)
    return BottleneckNetwork([[c] for c in choice], bn=bn, fixed_arch=space.encode(choice), **options)
