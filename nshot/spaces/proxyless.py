"""ProxylessNAS-style space: stages of MBConv layers, kernel {3,5,7} x expand {3,6}, identity where it fits.

Architecture string: one token per searchable layer, in order, joined by ``-``: ``kKeE`` (MBConv kernel K,
expand E: ``k3e3 k3e6 k5e3 k5e6 k7e3 k7e6``) or ``id`` (skip the layer). ``id`` is offered only in layers that
keep stride 1 and width, i.e. every layer but the first of a stage, so those decisions have 7 choices and
first layers 6 (choice index: the MBConv tokens in the order above, then ``id``).

The network (the space instance holds it: every option below is a ``model.*`` config key):

* ``stem``: ``imagenet`` = conv3x3 stride 2 to ``stem_width`` + BN + ReLU6, then a fixed MBConv expand 1
  kernel 3 to ``first_width``; ``cifar`` = conv3x3 stride 1 to ``stem_width`` + BN + ReLU6.
* stages: ``depths[s]`` layers of width ``widths[s]``, the first with stride ``strides[s]``;
* head: conv1x1 to ``head_width`` + BN + ReLU6, global average pool, Linear(head_width, num_classes).

Defaults: the ProxylessNAS ImageNet space as in the CaLR authors' few-shot code (METHODS 2.8): stem 32,
first 16, widths 32 40 80 96 192 320, depths 4 4 4 4 4 1, strides 2 2 2 1 2 1, head 1280 (21 searchable
layers), resolution 224 (32 with the CIFAR stem). ``resolution`` only changes FLOPs.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

from .base import Arch, ArchTypeError, register
from .mobile import (IDENTITY, LayerSpec, LayerwiseSpace, NetSpec, conv_bn_cost, int_list, mbconv_cost, out_size,
                     positive_int)

MBCONV: tuple[str, ...] = ("k3e3", "k3e6", "k5e3", "k5e6", "k7e3", "k7e6")
STEMS = ("imagenet", "cifar")
DEFAULTS: dict[str, Any] = {"stem": "imagenet", "stem_width": 32, "first_width": 16,
                            "widths": (32, 40, 80, 96, 192, 320), "depths": (4, 4, 4, 4, 4, 1),
                            "strides": (2, 2, 2, 1, 2, 1), "head_width": 1280, "resolution": None}
_OPTIONS = tuple(DEFAULTS)


@register("proxyless")
class ProxylessSpace(LayerwiseSpace):
    """A ProxylessNAS-style space; see the module docstring for the network and the string format."""

    space_options = _OPTIONS

    def __init__(self, stem: str = DEFAULTS["stem"], stem_width: int = DEFAULTS["stem_width"],
                 first_width: int = DEFAULTS["first_width"], widths: Sequence[int] = DEFAULTS["widths"],
                 depths: Sequence[int] = DEFAULTS["depths"], strides: Sequence[int] = DEFAULTS["strides"],
                 head_width: int = DEFAULTS["head_width"], resolution: Optional[int] = None):
        if stem not in STEMS:
            raise ValueError(f"stem = {stem!r} is invalid: expected one of {', '.join(STEMS)}")
        self.stem = stem
        self.stem_width = positive_int("stem_width", stem_width)
        self.first_width = positive_int("first_width", first_width)
        self.depths = int_list("depths", depths)
        self.widths = int_list("widths (one per stage of depths)", widths, length=len(self.depths))
        self.strides = int_list("strides (one per stage of depths)", strides, length=len(self.depths), allowed=(1, 2))
        self.head_width = positive_int("head_width", head_width)
        self.resolution = positive_int("resolution", resolution if resolution is not None
                                       else (224 if stem == "imagenet" else 32))
        self._choices = tuple(MBCONV + (IDENTITY,) if j > 0 else MBCONV for d in self.depths for j in range(d))
        # (stage, index in stage) of every layer, for error messages
        self._where = tuple((s, j) for s, d in enumerate(self.depths) for j in range(d))

    @property
    def options(self) -> dict[str, Any]:
        return {"stem": self.stem, "stem_width": self.stem_width, "first_width": self.first_width,
                "widths": self.widths, "depths": self.depths, "strides": self.strides,
                "head_width": self.head_width, "resolution": self.resolution}

    @property
    def choices(self) -> tuple[tuple[str, ...], ...]:
        return self._choices

    # -- strings ---------------------------------------------------------------------------------------------
    def _tokens(self, text: str) -> list[str]:
        if not isinstance(text, str):
            raise ArchTypeError(f"proxyless architecture must be a string like 'k3e6-id-k5e3-...', "
                                f"got {type(text).__name__}: {text!r}")
        tokens = [t.strip() for t in text.strip().split("-")]
        if len(tokens) != len(self._choices):
            raise ValueError(f"proxyless arch {text!r} must have {len(self._choices)} layers (depths "
                             f"{list(self.depths)}) separated by '-', got {len(tokens)}")
        for i, (tok, allowed) in enumerate(zip(tokens, self._choices)):
            if tok not in allowed:
                s, j = self._where[i]
                where = f"layer {i} (stage {s}, layer {j} of the stage)"
                if tok == IDENTITY:
                    raise ValueError(f"proxyless arch {text!r}: {where} is the first of its stage (it changes "
                                     f"stride or width), so 'id' is not allowed there; use one of {', '.join(MBCONV)}")
                raise ValueError(f"proxyless arch {text!r}: {where} is {tok!r}, expected one of {', '.join(allowed)}")
        return tokens

    def parse(self, text: str) -> Arch:
        return "-".join(self._tokens(text))

    def decode(self, arch: Arch) -> tuple[int, ...]:
        return tuple(allowed.index(t) for t, allowed in zip(self._tokens(arch), self._choices))

    def encode(self, choice: Sequence[int]) -> Arch:
        return "-".join(allowed[c] for c, allowed in zip(self._check_choice(choice), self._choices))

    # -- the network -----------------------------------------------------------------------------------------
    def stem_out(self) -> tuple[int, int]:
        """(width, spatial size) entering the first searchable layer."""
        if self.stem == "imagenet":
            return self.first_width, out_size(self.resolution, 2)
        return self.stem_width, self.resolution

    def layers(self) -> tuple[LayerSpec, ...]:
        """(c_in, c_out, stride, input size) of every searchable layer."""
        out, (c, size) = [], self.stem_out()
        for depth, width, stride in zip(self.depths, self.widths, self.strides):
            for j in range(depth):
                s = stride if j == 0 else 1
                out.append(LayerSpec(c, width, s, size))
                c, size = width, out_size(size, s)
        return tuple(out)

    def default_classes(self) -> int:
        """1000 with the ImageNet stem, 10 with the CIFAR stem."""
        return 1000 if self.stem == "imagenet" else 10

    def net_spec(self, num_classes: Optional[int] = None, in_channels: int = 3) -> NetSpec:
        num_classes = positive_int("num_classes", num_classes if num_classes is not None else self.default_classes())
        in_channels = positive_int("in_channels", in_channels)
        stride = 2 if self.stem == "imagenet" else 1
        params, macs = conv_bn_cost(in_channels, self.stem_width, 3, stride, self.resolution)
        if self.stem == "imagenet":
            p, m = mbconv_cost(self.stem_width, self.first_width, 3, 1, 1, out_size(self.resolution, 2))
            params, macs = params + p, macs + m
        layers = self.layers()
        final = out_size(layers[-1].size, layers[-1].stride)
        p, m = conv_bn_cost(self.widths[-1], self.head_width, 1, 1, final)
        params += p + self.head_width * num_classes + num_classes
        macs += m + self.head_width * num_classes
        return NetSpec(layers, params, macs)

    def num_params(self, arch: Arch, num_classes: Optional[int] = None, in_channels: int = 3) -> int:
        """Exact parameter count of the stand-alone network (``num_classes`` default: 1000 with the ImageNet
        stem, 10 with the CIFAR stem)."""
        return super().num_params(arch, num_classes=num_classes, in_channels=in_channels)

    def flops(self, arch: Arch, num_classes: Optional[int] = None, in_channels: int = 3) -> int:
        """MACs of one forward pass at ``resolution`` (see :meth:`LayerwiseSpace.flops`)."""
        return super().flops(arch, num_classes=num_classes, in_channels=in_channels)
