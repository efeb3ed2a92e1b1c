"""NAS-Bench-Macro networks: supernet and stand-alone network from the same layer-wise code.

Stem conv3x3 (stride 1) + BN + ReLU, 8 choice layers (``id`` / ``k3e3`` / ``k5e6``, MBConv with ReLU6), head
conv1x1 + BN + ReLU, global average pool, Linear. The defaults are the benchmark network; parameter counts
equal ``MacroSpace.num_params`` (and so the benchmark table) exactly.
"""
from __future__ import annotations

from typing import Optional, Sequence

from torch import nn

from ..spaces.macro import HEAD_WIDTH, RESOLUTION, STEM_WIDTH, WIDTHS, MacroSpace
from .mbconv import LayerwiseNetwork
from .builders import STANDALONE, SUPERNETS
from .ops import BNConfig

# The benchmark's stand-alone BN: affine, running statistics with PyTorch's default momentum.
MACRO_STANDALONE_BN = BNConfig(affine=True, track_running_stats=True, momentum=0.1)


def macro_network(candidates: Optional[Sequence[Sequence[int]]] = None, stem_width: int = STEM_WIDTH,
                  widths: Sequence[int] = WIDTHS, head_width: int = HEAD_WIDTH, num_classes: int = 10,
                  in_channels: int = 3, resolution: int = RESOLUTION, bn: BNConfig = BNConfig(),
                  fixed_arch: Optional[str] = None) -> LayerwiseNetwork:
    """A NAS-Bench-Macro network holding ``candidates`` per layer (all three when None). ``resolution`` only
    matters to FLOPs; it is accepted so one set of model options describes the network."""
    space = MacroSpace()
    spec = space.net_spec(stem_width=stem_width, widths=widths, head_width=head_width, num_classes=num_classes,
                          in_channels=in_channels, resolution=resolution)   # validates the shape
    stem = nn.Sequential(nn.Conv2d(in_channels, stem_width, 3, padding=1, bias=False), bn.make(stem_width), nn.ReLU())
    head = nn.Sequential(nn.Conv2d(widths[-1], head_width, 1, bias=False), bn.make(head_width), nn.ReLU())
    return LayerwiseNetwork(space, spec.layers, candidates if candidates is not None else [range(3)] * 8, stem, head,
                            head_width, num_classes, bn, fixed_arch=fixed_arch)


@SUPERNETS.register("macro")
def macro_supernet(candidates: Optional[Sequence[Sequence[int]]] = None, bn: BNConfig = BNConfig(),
                   **shape) -> LayerwiseNetwork:
    """Weight-sharing NAS-Bench-Macro supernet (all choices in every layer unless ``candidates`` restricts)."""
    return macro_network(candidates, bn=bn, **shape)


@STANDALONE.register("macro")
def macro_standalone(arch: str, bn: BNConfig = MACRO_STANDALONE_BN, **shape) -> LayerwiseNetwork:
    """Stand-alone network of one architecture (the benchmark's BN: affine, running statistics)."""
    choice = MacroSpace().decode(arch)
    return macro_network([[c] for c in choice], bn=bn, fixed_arch=MacroSpace().encode(choice), **shape)
