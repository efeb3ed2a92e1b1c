"""NAS-Bench-Macro: 8 searchable layers of a MobileNetV2-like CIFAR network, 3 choices each (6,561 archs).

Canonical architecture value = the benchmark's own string: 8 characters over ``0 1 2``, one per layer in
order, ``0`` = identity, ``1`` = MBConv kernel 3 expand 3, ``2`` = MBConv kernel 5 expand 6.

The network (``shape`` defaults = the benchmark's): stem conv3x3 (stride 1) to ``stem_width`` = 32 + BN +
ReLU; three stages of 2, 3 and 3 layers at ``widths`` = 64, 128, 256, the first layer of each with stride 2;
head conv1x1 to ``head_width`` = 1280 + BN + ReLU, global average pool, Linear(1280, num_classes). An MBConv's
hidden width is expand x its *input* width and its stride sits on the depthwise conv; an identity that must
change stride or width (the first layer of every stage) is conv1x1(stride 2) + BN. No conv has a bias.
With these conventions ``num_params`` and ``flops`` equal the benchmark table's ``params`` and ``flops`` for
all 6,561 architectures (tested), FLOPs being multiply-accumulates of convs and the classifier weights.
"""
from __future__ import annotations

from typing import Any, Sequence

from .base import Arch, ArchTypeError, register
from .mobile import LayerSpec, LayerwiseSpace, NetSpec, conv_bn_cost, int_list, out_size, positive_int

CHOICES: tuple[str, ...] = ("id", "k3e3", "k5e6")   # index = the digit in the benchmark string
STAGE_DEPTHS: tuple[int, ...] = (2, 3, 3)
NUM_LAYERS = sum(STAGE_DEPTHS)
STEM_WIDTH, WIDTHS, HEAD_WIDTH, RESOLUTION = 32, (64, 128, 256), 1280, 32
_DIGITS = "012"


def parse_macro(text: str) -> str:
    """Validate a NAS-Bench-Macro string; ValueError naming the position of the first bad character."""
    if not isinstance(text, str):
        raise ArchTypeError(f"NAS-Bench-Macro architecture must be a string of {NUM_LAYERS} digits 0/1/2, "
                            f"got {type(text).__name__}: {text!r}")
    if len(text) != NUM_LAYERS:
        raise ValueError(f"NAS-Bench-Macro arch {text!r} must have {NUM_LAYERS} characters (one per layer: "
                         f"0 = id, 1 = k3e3, 2 = k5e6), got {len(text)}")
    for i, ch in enumerate(text):
        if ch not in _DIGITS:
            raise ValueError(f"NAS-Bench-Macro arch {text!r}: character {ch!r} at position {i} (layer {i}) is not "
                             f"0 (id), 1 (k3e3) or 2 (k5e6)")
    return text


def macro_layers(stem_width: int, widths: Sequence[int], resolution: int) -> tuple[LayerSpec, ...]:
    """(c_in, c_out, stride, input size) of the 8 searchable layers."""
    layers, c, size = [], stem_width, resolution
    for depth, width in zip(STAGE_DEPTHS, widths):
        for j in range(depth):
            stride = 2 if j == 0 else 1
            layers.append(LayerSpec(c, width, stride, size))
            c, size = width, out_size(size, stride)
    return tuple(layers)


@register("macro")
class MacroSpace(LayerwiseSpace):
    """The NAS-Bench-Macro space; decision ``i`` is layer ``i``'s block, choice index = the string's digit."""

    shape_options = ("stem_width", "widths", "head_width", "resolution")

    @property
    def choices(self) -> tuple[tuple[str, ...], ...]:
        return (CHOICES,) * NUM_LAYERS

    def parse(self, text: str) -> Arch:
        return parse_macro(text)

    def decode(self, arch: Arch) -> tuple[int, ...]:
        return tuple(_DIGITS.index(ch) for ch in parse_macro(arch))

    def encode(self, choice: Sequence[int]) -> Arch:
        return "".join(_DIGITS[c] for c in self._check_choice(choice))

    def net_spec(self, stem_width: int = STEM_WIDTH, widths: Sequence[int] = WIDTHS, head_width: int = HEAD_WIDTH,
                 num_classes: int = 10, in_channels: int = 3, resolution: int = RESOLUTION) -> NetSpec:
        """The network description (see the module docstring); the defaults give the benchmark network."""
        stem_width, head_width = positive_int("stem_width", stem_width), positive_int("head_width", head_width)
        num_classes, in_channels = positive_int("num_classes", num_classes), positive_int("in_channels", in_channels)
        resolution = positive_int("resolution", resolution)
        widths = int_list("widths", widths, length=len(STAGE_DEPTHS))
        layers = macro_layers(stem_width, widths, resolution)
        stem = conv_bn_cost(in_channels, stem_width, 3, 1, resolution)
        final = out_size(layers[-1].size, layers[-1].stride)
        head = conv_bn_cost(widths[-1], head_width, 1, 1, final)
        classifier = (head_width * num_classes + num_classes, head_width * num_classes)
        return NetSpec(layers, stem[0] + head[0] + classifier[0], stem[1] + head[1] + classifier[1])

    def num_params(self, arch: Arch, **shape: Any) -> int:
        """Exact parameter count of the stand-alone network; with the default shape (the benchmark network,
        10 classes) it equals the benchmark's ``params``: 387,882 (``00000000``) to 2,932,586 (``22222222``).
        Shape keywords: ``stem_width``, ``widths``, ``head_width``, ``num_classes``, ``in_channels`` and
        ``resolution`` (accepted so params and FLOPs take the same shape; it does not change the count)."""
        return super().num_params(arch, **shape)

    def flops(self, arch: Arch, **shape: Any) -> int:
        """MACs of one forward pass (see :meth:`LayerwiseSpace.flops`); with the default shape they equal the
        benchmark's ``flops`` exactly: 7,713,280 (``00000000``) to 105,660,928 (``22222222``)."""
        return super().flops(arch, **shape)
