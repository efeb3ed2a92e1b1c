"""Pi-NAS's ResNeSt-style bottleneck space, scaled for CIFAR (pure Python).

Every searchable block is a bottleneck whose middle conv is a split-attention conv; the block's candidates are
Pi-NAS's four (radix, cardinality, base width): ``0`` = (1, 1, 64), ``1`` = (2, 1, 64), ``2`` = (1, 2, 42),
``3`` = (2, 2, 40). Architecture string: one digit per block, in order (Pi-NAS writes its ImageNet models as
such lists: ``3 0 1 3 2 3 1 2 0 3 2 1 3 0 3 2``).

The network (every option below is a ``model.*`` config key): stem conv3x3 (stride 1) to ``stem_width`` + BN +
ReLU; stages of ``depths[s]`` blocks with ``widths[s]`` planes (output 4 x planes), the first block of stage
s > 0 with stride 2; global average pool of the last block; Linear. Block with planes P, input C, stride S and
candidate (r, k, w): group width G = floor(P * w / 64) * k;

* conv1x1 C -> G + BN + ReLU;
* split-attention conv: conv3x3 G -> G * r (stride S, groups k * r) + BN + ReLU; the r splits are summed,
  average-pooled and passed through conv1x1 G -> I (groups k, bias) + BN + ReLU and conv1x1 I -> G * r
  (groups k, bias), I = max(G * r // 4, 32) rounded up to a multiple of k; softmax over the r splits (a sigmoid
  when r = 1) weights the splits, summed to G channels;
* conv1x1 G -> 4P + BN; output ReLU(branch + shortcut).

The shortcut is shared by all candidates of a block (as in Pi-NAS): identity, or where stride or width change,
AvgPool(S) (when S > 1) + conv1x1 C -> 4P + BN. Differences from ImageNet ResNeSt-50 on purpose: one stem conv,
stride in the split-attention conv (no separate avg-down inside the branch), CIFAR widths. Defaults: stem 16,
widths 16 32 64 128, depths 2 2 2 2 (4^8 = 65,536 architectures), resolution 32.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from .base import Arch, ArchTypeError, Rng, SearchSpace, as_rng, register
from .mobile import bn_params, conv_bn_cost, int_list, out_size, positive_int

CANDIDATES: tuple[tuple[int, int, int], ...] = ((1, 1, 64), (2, 1, 64), (1, 2, 42), (2, 2, 40))
EXPANSION = 4
DEFAULTS: dict[str, Any] = {"stem_width": 16, "widths": (16, 32, 64, 128), "depths": (2, 2, 2, 2), "resolution": 32}


def group_width(planes: int, cardinality: int, base_width: int) -> int:
    """Channels of the split-attention conv's input/output: floor(planes * base_width / 64) * cardinality."""
    return int(planes * base_width / 64) * cardinality


def attention_width(gw: int, radix: int, cardinality: int) -> int:
    """Hidden width of the attention MLP: max(gw * radix // 4, 32), rounded up to a multiple of cardinality."""
    inter = max(gw * radix // 4, 32)
    return -(-inter // cardinality) * cardinality


def branch_cost(c_in: int, planes: int, stride: int, size: int, radix: int, cardinality: int,
                base_width: int) -> tuple[int, int]:
    """(params, MACs) of one candidate's branch (everything but the shared shortcut)."""
    gw = group_width(planes, cardinality, base_width)
    inter = attention_width(gw, radix, cardinality)
    out = out_size(size, stride)
    p1, m1 = conv_bn_cost(c_in, gw, 1, 1, size)
    p2, m2 = conv_bn_cost(gw, gw * radix, 3, stride, size, groups=cardinality * radix)
    fc1 = gw // cardinality * inter
    fc2 = inter // cardinality * gw * radix
    p3, m3 = conv_bn_cost(gw, planes * EXPANSION, 1, 1, out)
    params = p1 + p2 + (fc1 + inter + bn_params(inter)) + (fc2 + gw * radix) + p3
    return params, m1 + m2 + fc1 + fc2 + m3


def shortcut_cost(c_in: int, c_out: int, stride: int, size: int) -> tuple[int, int]:
    """(params, MACs) of the shared shortcut: nothing, or [AvgPool] + conv1x1 + BN (the conv at the output size)."""
    if stride == 1 and c_in == c_out:
        return 0, 0
    return conv_bn_cost(c_in, c_out, 1, 1, out_size(size, stride))


@register("bottleneck")
class BottleneckSpace(SearchSpace):
    """Pi-NAS's bottleneck space (see the module docstring for the network and the string format)."""

    space_options = tuple(DEFAULTS)

    def __init__(self, stem_width: int = DEFAULTS["stem_width"], widths: Sequence[int] = DEFAULTS["widths"],
                 depths: Sequence[int] = DEFAULTS["depths"], resolution: Optional[int] = None):
        self.stem_width = positive_int("stem_width", stem_width)
        self.depths = int_list("depths", depths)
        self.widths = int_list("widths (one per stage of depths)", widths, length=len(self.depths))
        self.resolution = positive_int("resolution", resolution if resolution is not None else DEFAULTS["resolution"])
        for planes in self.widths:
            for r, k, w in CANDIDATES:
                gw = group_width(planes, k, w)
                if gw < 1 or gw % (k * r):
                    raise ValueError(f"widths: {planes} planes give candidate (radix {r}, cardinality {k}, width {w}) "
                                     f"a group width of {gw}, not a positive multiple of {k * r} (use multiples of 16)")
        names = tuple(f"r{r}c{k}w{w}" for r, k, w in CANDIDATES)
        self._choices = tuple(names for _ in range(sum(self.depths)))
        self._costs: dict[tuple[int, int], tuple] = {}

    @property
    def options(self) -> dict[str, Any]:
        return {"stem_width": self.stem_width, "widths": self.widths, "depths": self.depths,
                "resolution": self.resolution}

    @property
    def choices(self) -> tuple[tuple[str, ...], ...]:
        return self._choices

    # -- strings ---------------------------------------------------------------------------------------------
    def parse(self, text: str) -> Arch:
        if not isinstance(text, str):
            raise ArchTypeError(f"bottleneck architecture must be a string of {len(self._choices)} digits 0-3, "
                                f"got {type(text).__name__}: {text!r}")
        s = text.strip().replace(" ", "")
        if len(s) != len(self._choices):
            raise ValueError(f"bottleneck arch {text!r} must have {len(self._choices)} digits (one per block, "
                             f"depths {list(self.depths)}), got {len(s)}")
        for i, ch in enumerate(s):
            if ch not in "0123":
                raise ValueError(f"bottleneck arch {text!r}: block {i} is {ch!r}, expected a digit 0-3 "
                                 f"({', '.join(f'{j} = {n}' for j, n in enumerate(self._choices[0]))})")
        return s

    def decode(self, arch: Arch) -> tuple[int, ...]:
        return tuple(int(ch) for ch in self.parse(arch))

    def encode(self, choice: Sequence[int]) -> Arch:
        return "".join(str(c) for c in self._check_choice(choice))

    def sample(self, rng: Rng = None) -> Arch:
        return self.encode(as_rng(rng).integers(0, np.asarray(self.sizes)).tolist())

    # -- the network -----------------------------------------------------------------------------------------
    def blocks(self) -> tuple[tuple[int, int, int, int], ...]:
        """(c_in, planes, stride, input size) of every block."""
        out, c, size = [], self.stem_width, self.resolution
        for s, (depth, planes) in enumerate(zip(self.depths, self.widths)):
            for j in range(depth):
                stride = 2 if s > 0 and j == 0 else 1
                out.append((c, planes, stride, size))
                c, size = planes * EXPANSION, out_size(size, stride)
        return tuple(out)

    def _table(self, num_classes: int, in_channels: int) -> tuple[int, int, list]:
        key = (num_classes, in_channels)
        if key not in self._costs:
            params, macs = conv_bn_cost(in_channels, self.stem_width, 3, 1, self.resolution)
            per_block = []
            for c_in, planes, stride, size in self.blocks():
                p, m = shortcut_cost(c_in, planes * EXPANSION, stride, size)
                params, macs = params + p, macs + m
                per_block.append([branch_cost(c_in, planes, stride, size, *cand) for cand in CANDIDATES])
            feat = self.widths[-1] * EXPANSION
            params += feat * num_classes + num_classes
            macs += feat * num_classes
            self._costs[key] = (params, macs, per_block)
        return self._costs[key]

    def num_params(self, arch: Arch, num_classes: int = 10, in_channels: int = 3) -> int:
        """Exact parameter count of the stand-alone network (affine BN, convs without bias except the
        attention MLP's, the classifier's bias)."""
        fixed, _, per_block = self._table(positive_int("num_classes", num_classes), positive_int("in_channels", in_channels))
        return fixed + sum(per_block[d][c][0] for d, c in enumerate(self.decode(arch)))

    def flops(self, arch: Arch, num_classes: int = 10, in_channels: int = 3) -> int:
        """Multiply-accumulates of one image's forward pass (convs, attention MLP, classifier weights)."""
        _, fixed, per_block = self._table(positive_int("num_classes", num_classes), positive_int("in_channels", in_channels))
        return fixed + sum(per_block[d][c][1] for d, c in enumerate(self.decode(arch)))
