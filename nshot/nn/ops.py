"""Building blocks shared by supernets and stand-alone networks."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional

import torch
import torch.nn.functional as F
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


class BoxAvgPool2d(nn.Module):
    """``nn.AvgPool2d(k, stride=1, padding=k // 2, count_include_pad=False)``; on CPU computed as a depthwise
    convolution with a ones kernel, divided by the number of in-image pixels under the window.

    Same values (up to float rounding in the order of the additions; float16/bfloat16 inputs are summed in
    float32 and rounded once, as torch's pool does, also under autocast) and no parameters or buffers, so
    state dicts are unchanged. On CPU a SPOS step of the NB201 supernet is 1.57x faster with it than with
    torch's NCHW average pool (``benchmarks/pool_speed.py``). Off the CPU it calls torch's pool: the
    convolution form has not been measured on a GPU.
    """

    def __init__(self, kernel_size: int = 3):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"BoxAvgPool2d needs an odd kernel size >= 1, got {kernel_size}")
        self.kernel_size = kernel_size
        # (C, H, W, dtype, device) -> (ones kernel, 1 / taps per position); a cache, not state: not in
        # state_dict, and dropped when the module is pickled or deep-copied
        self._consts: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def __getstate__(self) -> dict:
        return {**super().__getstate__(), "_consts": {}}

    def _constants(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c, h, w = x.shape[1:]
        key = (c, h, w, x.dtype, x.device)
        if key not in self._consts:
            with torch.inference_mode(False):   # constants made under inference mode could not be saved for backward
                self._consts[key] = self._make_constants(c, h, w, x.dtype, x.device)
        return self._consts[key]

    def _make_constants(self, c: int, h: int, w: int, dtype: torch.dtype,
                        device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        k, p = self.kernel_size, self.kernel_size // 2

        def count(n: int) -> torch.Tensor:   # in-range taps of the window centred at each position
            i = torch.arange(n, device=device)
            return (torch.clamp(i + p, max=n - 1) - torch.clamp(i - p, min=0) + 1).to(dtype)

        kernel = torch.ones(c, 1, k, k, dtype=dtype, device=device)
        return kernel, 1.0 / (count(h)[:, None] * count(w)[None, :])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.kernel_size // 2
        if not x.is_cpu:
            return F.avg_pool2d(x, self.kernel_size, 1, p, count_include_pad=False)
        unbatched = x.dim() == 3
        xb = x.unsqueeze(0) if unbatched else x
        work = torch.float32 if xb.dtype in (torch.float16, torch.bfloat16) else xb.dtype
        with torch.autocast("cpu", enabled=False):
            xw = xb.to(work)
            kernel, inv_count = self._constants(xw)
            y = (F.conv2d(xw, kernel, padding=p, groups=xw.shape[1]) * inv_count).to(xb.dtype)
        return y.squeeze(0) if unbatched else y

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}"


def make_nb201_op(name: str, channels: int, bn: BNConfig) -> nn.Module:
    """The module of one NB201 op inside a cell (C_in == C_out, stride 1). ``none`` has no module."""
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1, bn)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1, bn)
    if name == "avg_pool_3x3":
        return BoxAvgPool2d(3)
    raise ValueError(f"no module for NB201 op {name!r}")


def batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """Every BatchNorm module of ``model``, in module order."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@contextmanager
def grouped_batch_stats(model: nn.Module, stats_batch: int) -> Iterator[None]:
    """Inside the block a batch of ``g * stats_batch`` images is normalised by every BN as ``g`` separate
    batches of ``stats_batch`` (each with its own statistics), so one large forward pass gives what ``g``
    passes of ``stats_batch`` give. A batch of at most ``stats_batch`` images is normalised as usual.

    Use it with batch statistics (in scoring, inside :func:`nshot.score.bn.batch_stats_mode`; in training, a
    supernet without running statistics). The ``g`` groups are laid side by side as channels of one
    ``(stats_batch, g * C, H, W)`` tensor, so each group's statistics are reduced by the same BatchNorm
    kernel over the same elements as in a separate pass (bit-identical on CPU in the tests).
    """
    def grouped(bn: nn.modules.batchnorm._BatchNorm, original):
        def forward(x: torch.Tensor) -> torch.Tensor:
            n = x.shape[0]
            if x.dim() != 4 or n <= stats_batch or bn.running_mean is not None:
                return original(x)
            if n % stats_batch:
                raise ValueError(f"grouped BN got a batch of {n}, not a multiple of {stats_batch}")
            g, (c, h, w) = n // stats_batch, x.shape[1:]
            z = x.reshape(g, stats_batch, c, h, w).transpose(0, 1).reshape(stats_batch, g * c, h, w)
            weight = None if bn.weight is None else bn.weight.repeat(g)
            bias = None if bn.bias is None else bn.bias.repeat(g)
            out = F.batch_norm(z, None, None, weight, bias, True, 0.0, bn.eps)
            return out.reshape(stats_batch, g, c, h, w).transpose(0, 1).reshape(n, c, h, w)
        return forward

    patched = []
    for bn in batchnorms(model):
        if "forward" in bn.__dict__:
            raise RuntimeError("grouped_batch_stats: a BN forward is already patched (nested use?)")
        bn.forward = grouped(bn, bn.forward)
        patched.append(bn)
    try:
        yield
    finally:
        for bn in patched:
            del bn.forward
