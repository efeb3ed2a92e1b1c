"""MobileNet-style spaces: one decision per layer, each choice an MBConv block or an identity (pure Python).

A *layer-wise* space describes its network as a :class:`NetSpec` (stem and head costs, and per searchable
layer its input/output width, stride and input size); the parameter and multiply-accumulate (MAC) count of
an architecture is then the fixed part plus one table entry per layer. The torch modules built from the same
spec (``nshot.nn.mbconv``) are tested to have exactly these counts.

Choice names: ``kKeE`` is a MobileNetV2 inverted residual with kernel K and expansion E (hidden width
E x input width); ``id`` is the identity, which becomes conv1x1 + BN where it must change stride or width.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from .base import Arch, Rng, SearchSpace, as_rng

IDENTITY = "id"
_MB = re.compile(r"k(\d+)e(\d+)")


def mbconv_kind(name: str) -> Optional[tuple[int, int]]:
    """(kernel, expand) of an MBConv choice name like ``k5e6``; None for ``id``."""
    if name == IDENTITY:
        return None
    m = _MB.fullmatch(name)
    if not m:
        raise ValueError(f"unknown layer choice {name!r}: expected 'id' or 'k<kernel>e<expand>'")
    return int(m.group(1)), int(m.group(2))


def out_size(size: int, stride: int) -> int:
    """Spatial size after a conv with odd kernel k, padding k//2 and ``stride`` (= ceil(size / stride))."""
    return -(-size // stride)


def bn_params(c: int) -> int:
    """An affine BatchNorm: weight and bias."""
    return 2 * c


def conv_bn_cost(c_in: int, c_out: int, kernel: int, stride: int, size: int, groups: int = 1) -> tuple[int, int]:
    """(params, MACs) of Conv(kernel, stride, no bias) + BN on a ``size`` x ``size`` input."""
    w = kernel * kernel * (c_in // groups) * c_out
    return w + bn_params(c_out), w * out_size(size, stride) ** 2


def mbconv_cost(c_in: int, c_out: int, kernel: int, expand: int, stride: int, size: int) -> tuple[int, int]:
    """(params, MACs) of an inverted residual: [1x1 expand + BN] (absent when expand = 1), depthwise
    kernel x kernel with ``stride`` + BN, 1x1 project + BN. The expand conv runs at the input size."""
    mid = c_in * expand
    params = macs = 0
    if expand != 1:
        p, m = conv_bn_cost(c_in, mid, 1, 1, size)
        params, macs = params + p, macs + m
    p, m = conv_bn_cost(mid, mid, kernel, stride, size, groups=mid)
    params, macs = params + p, macs + m
    p, m = conv_bn_cost(mid, c_out, 1, 1, out_size(size, stride))
    return params + p, macs + m


def skip_cost(c_in: int, c_out: int, stride: int, size: int) -> tuple[int, int]:
    """(params, MACs) of an identity choice: nothing, or conv1x1(stride) + BN where stride or width change."""
    if stride == 1 and c_in == c_out:
        return 0, 0
    return conv_bn_cost(c_in, c_out, 1, stride, size)


def choice_cost(name: str, c_in: int, c_out: int, stride: int, size: int) -> tuple[int, int]:
    """(params, MACs) of one layer choice."""
    kind = mbconv_kind(name)
    if kind is None:
        return skip_cost(c_in, c_out, stride, size)
    return mbconv_cost(c_in, c_out, kind[0], kind[1], stride, size)


@dataclass(frozen=True)
class LayerSpec:
    """One searchable layer: input and output width, stride, input spatial size."""
    c_in: int
    c_out: int
    stride: int
    size: int


@dataclass(frozen=True)
class NetSpec:
    """A layer-wise network: the fixed parts' (params, MACs) and the searchable layers."""
    layers: tuple[LayerSpec, ...]
    fixed_params: int
    fixed_macs: int


def positive_int(name: str, value: Any) -> int:
    """``value`` as an int >= 1, else ValueError naming ``name``."""
    if isinstance(value, bool) or not hasattr(value, "__index__") or value.__index__() < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value.__index__()


def int_list(name: str, values: Any, length: Optional[int] = None,
             allowed: Optional[Sequence[int]] = None) -> tuple[int, ...]:
    """A non-empty tuple of positive ints (of ``length`` entries, each in ``allowed`` when given)."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ValueError(f"{name} must be a list of integers, got {values!r}")
    out = tuple(positive_int(f"{name}[{i}]", v) for i, v in enumerate(values))
    if not out:
        raise ValueError(f"{name} must not be empty")
    if length is not None and len(out) != length:
        raise ValueError(f"{name} must have {length} entries, got {len(out)}: {list(out)}")
    if allowed is not None:
        bad = [v for v in out if v not in allowed]
        if bad:
            raise ValueError(f"{name} entries must be one of {list(allowed)}, got {list(out)}")
    return out


class LayerwiseSpace(SearchSpace):
    """A space with one decision per layer whose choices are named MBConv / identity blocks.

    Subclasses give ``choices`` and :meth:`net_spec` (the network for the shape keyword arguments); this class
    gives exact parameter and MAC counts from them, cached per shape.
    """

    def net_spec(self, **shape: Any) -> NetSpec:  # pragma: no cover - abstract
        raise NotImplementedError

    def _table(self, shape: dict[str, Any]) -> tuple[int, int, tuple[tuple[tuple[int, int], ...], ...]]:
        key = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in shape.items()))
        cache = self.__dict__.setdefault("_tables", {})
        table = cache.get(key)
        if table is None:
            spec = self.net_spec(**shape)
            per_layer = tuple(tuple(choice_cost(name, l.c_in, l.c_out, l.stride, l.size) for name in names)
                              for l, names in zip(spec.layers, self.choices))
            table = cache[key] = (spec.fixed_params, spec.fixed_macs, per_layer)
        return table

    def num_params(self, arch: Arch, **shape: Any) -> int:
        """Exact trainable parameter count of the stand-alone network (affine BN, no conv biases, the
        classifier's bias counted)."""
        fixed, _, per_layer = self._table(shape)
        return fixed + sum(per_layer[d][c][0] for d, c in enumerate(self.decode(arch)))

    def flops(self, arch: Arch, **shape: Any) -> int:
        """Multiply-accumulates of one image's forward pass: every conv ``k*k*c_in/groups*c_out*H_out*W_out``
        and the classifier's ``in*out``; BN, activations, residual additions, pooling and biases not counted."""
        _, fixed, per_layer = self._table(shape)
        return fixed + sum(per_layer[d][c][1] for d, c in enumerate(self.decode(arch)))

    def sample(self, rng: Rng = None) -> Arch:
        """One architecture drawn uniformly (all decisions in one vectorised draw: large spaces sample fast)."""
        return self.encode(as_rng(rng).integers(0, np.asarray(self.sizes)).tolist())

    def layer_names(self, arch: Arch) -> tuple[str, ...]:
        """The choice name of every layer of ``arch``."""
        return tuple(self.choices[d][c] for d, c in enumerate(self.decode(arch)))
