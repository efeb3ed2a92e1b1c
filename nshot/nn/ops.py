"""Building blocks shared by supernets and stand-alone networks."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn


@dataclass(frozen=True)
class BNConfig:
    """BatchNorm settings. Supernets default to NB201-search style: no affine, batch statistics always.
    ``momentum`` applies when running statistics are tracked (None: a cumulative average)."""

    affine: bool = False
    track_running_stats: bool = False
    momentum: Optional[float] = None

    def make(self, channels: int) -> nn.BatchNorm2d:
        # momentum=None: running statistics are a cumulative average, which is what re-calibration wants.
        return nn.BatchNorm2d(channels, affine=self.affine, track_running_stats=self.track_running_stats,
                              momentum=self.momentum if self.track_running_stats else 0.1)


STANDALONE_BN = BNConfig(affine=True, track_running_stats=True)


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv(k, no bias) -> BN. A conv bias before BN would be cancelled by the mean subtraction."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, bn: BNConfig):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=(kernel - 1) // 2, bias=False),
            bn.make(c_out),
        )


class ResNetReduction(nn.Module):
    """NB201's reduction block: ReLUConvBN(stride 2) -> ReLUConvBN, plus AvgPool -> Conv1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int, bn: BNConfig):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, bn)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, bn)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


def make_nb201_op(name: str, channels: int, bn: BNConfig) -> nn.Module:
    """The module of one NB201 op inside a cell (C_in == C_out, stride 1). ``none`` has no module."""
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1, bn)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1, bn)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"no module for NB201 op {name!r}")
