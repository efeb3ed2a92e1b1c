"""ProxylessNAS-style networks: supernet and stand-alone network from the same layer-wise code.

Stem (``imagenet``: conv3x3/s2 + BN + ReLU6 + MBConv e1 k3; ``cifar``: conv3x3/s1 + BN + ReLU6), one choice
layer per searchable layer, head conv1x1 + BN + ReLU6, global average pool, Linear. Every activation is
ReLU6. Parameter counts equal ``ProxylessSpace.num_params`` exactly.
"""
from __future__ import annotations

from typing import Optional, Sequence

from torch import nn

from ..spaces.proxyless import ProxylessSpace
from .mbconv import LayerwiseNetwork, MBConv
from .builders import STANDALONE, SUPERNETS
from .ops import STANDALONE_BN, BNConfig


def proxyless_network(candidates: Optional[Sequence[Sequence[int]]] = None, num_classes: Optional[int] = None,
                      in_channels: int = 3, bn: BNConfig = BNConfig(), fixed_arch: Optional[str] = None,
                      **options) -> LayerwiseNetwork:
    """A proxyless network holding ``candidates`` per layer (all when None); ``options`` are the space's
    (``stem``, ``stem_width``, ``first_width``, ``widths``, ``depths``, ``strides``, ``head_width``,
    ``resolution``; see :mod:`nshot.spaces.proxyless`)."""
    space = ProxylessSpace(**options)
    spec = space.net_spec(num_classes=num_classes, in_channels=in_channels)   # validates
    num_classes = num_classes if num_classes is not None else space.default_classes()
    sw = space.stem_width
    if space.stem == "imagenet":
        stem = nn.Sequential(nn.Conv2d(in_channels, sw, 3, stride=2, padding=1, bias=False), bn.make(sw), nn.ReLU6(),
                             MBConv(sw, space.first_width, 3, 1, 1, bn))
    else:
        stem = nn.Sequential(nn.Conv2d(in_channels, sw, 3, padding=1, bias=False), bn.make(sw), nn.ReLU6())
    head = nn.Sequential(nn.Conv2d(space.widths[-1], space.head_width, 1, bias=False), bn.make(space.head_width),
                         nn.ReLU6())
    cand = candidates if candidates is not None else [range(n) for n in space.sizes]
    return LayerwiseNetwork(space, spec.layers, cand, stem, head, space.head_width, num_classes, bn,
                            fixed_arch=fixed_arch)


@SUPERNETS.register("proxyless")
def proxyless_supernet(candidates: Optional[Sequence[Sequence[int]]] = None, bn: BNConfig = BNConfig(),
                       **options) -> LayerwiseNetwork:
    """Weight-sharing proxyless supernet (every choice in every layer unless ``candidates`` restricts)."""
    return proxyless_network(candidates, bn=bn, **options)


@STANDALONE.register("proxyless")
def proxyless_standalone(arch: str, bn: BNConfig = STANDALONE_BN, **options) -> LayerwiseNetwork:
    """Stand-alone network of one architecture (affine BN with running statistics)."""
    space = ProxylessSpace(**{k: v for k, v in options.items() if k in ProxylessSpace.space_options})
    choice = space.decode(arch)
    return proxyless_network([[c] for c in choice], bn=bn, fixed_arch=space.encode(choice), **options)
