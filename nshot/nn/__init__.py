"""Torch modules: how an architecture runs. Builders are registered by space name (``SUPERNETS``, ``STANDALONE``
in :mod:`nshot.nn.builders`); a new network's module registers its own and is imported here."""
from __future__ import annotations

from typing import Optional, Sequence

from torch import nn

from .builders import STANDALONE, SUPERNETS
from .export import export_subnet
from .macro import macro_standalone, macro_supernet
from .mbconv import LayerwiseNetwork, MBConv
from .nb201 import NB201Cell, NB201Network, nb201_standalone, nb201_supernet
from .ops import STANDALONE_BN, BNConfig
from .proxyless import proxyless_standalone, proxyless_supernet
from .bottleneck import BottleneckNetwork, bottleneck_standalone, bottleneck_supernet
from .darts import DartsNetwork, DartsSupernet, darts_standalone, darts_supernet


def build_supernet(space: str, *, candidates: Optional[Sequence[Sequence[int]]] = None, **kwargs) -> nn.Module:
    """Supernet of a registered space; ``kwargs`` are the space's model options (NB201: C, N, num_classes,
    in_channels, bn; macro: stem_width, widths, head_width, resolution; proxyless: the space's options, see
    ``nshot.spaces.proxyless``). ``candidates`` restricts the choices per decision (a few-shot sub-supernet)."""
    try:
        builder = SUPERNETS[space]
    except KeyError:
        raise ValueError(f"no supernet for space {space!r}; available: {', '.join(sorted(SUPERNETS))}") from None
    return builder(candidates=candidates, **kwargs)


def build_standalone(space: str, arch: str, **kwargs) -> nn.Module:
    """Stand-alone network of ``arch`` in a registered space."""
    try:
        builder = STANDALONE[space]
    except KeyError:
        raise ValueError(f"no stand-alone network for space {space!r}; available: {', '.join(sorted(STANDALONE))}") from None
    return builder(arch, **kwargs)


__all__ = ["STANDALONE", "SUPERNETS", "DartsNetwork", "DartsSupernet", "darts_standalone", "darts_supernet", "BNConfig", "STANDALONE_BN", "LayerwiseNetwork", "MBConv", "NB201Cell", "NB201Network", "build_standalone",
           "BottleneckNetwork", "bottleneck_standalone", "bottleneck_supernet", "build_supernet", "export_subnet", "macro_standalone", "macro_supernet", "nb201_standalone", "nb201_supernet",
           "proxyless_standalone", "proxyless_supernet"]
