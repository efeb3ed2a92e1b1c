"""Training objectives: what one step computes from a batch and its sampled paths.

An objective runs the forward passes of a step's paths, calls ``backward`` on its (scaled) loss, and returns
the per-path losses and a count of correct predictions as device tensors (no host sync). The trainer owns
sampling, learning rates, clipping and the optimizer step, so every objective composes with every sampler,
LR policy (CaLR by loss scaling: ``scales``) and optimizer (MS).

- :class:`SupervisedObjective`: cross-entropy on labels, one forward/backward per path (SPOS, FairNAS).
- :class:`nshot.train.pinas.PiNASObjective`: label-free cross-path contrastive learning with a mean teacher.
"""
from __future__ import annotations

import contextlib
from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F

from ..config import Config
from ..data import train_input
from ..registry import Registry
from ..run import rng
from .pinas import PiNASObjective
from .slices import mean_over_parts, resolve_parts


class SupervisedObjective:
    """Cross-entropy of every path on the same augmented batch; gradients summed (decision 6)."""

    name = "supervised"
    static_loss = True   # the static executor computes this loss itself (nshot.train.static)

    def __init__(self, model: torch.nn.Module, cfg: Config, mean: Sequence[float], std: Sequence[float]):
        self.model, self.cfg, self.mean, self.std = model, cfg, tuple(mean), tuple(std)
        self.autocast = contextlib.nullcontext   # the trainer sets bf16 autocast for the forward passes
        self.dist = None

    def parameters(self) -> list[torch.nn.Parameter]:
        """Trainable parameters beyond the supernet's (none)."""
        return []

    def inputs(self, x_uint8: torch.Tensor, t: int) -> list[torch.Tensor]:
        """The network input of step ``t``'s whole batch: one augmented view."""
        cfg = self.cfg
        return [train_input(x_uint8, self.mean, self.std, rng.torch_seed(cfg.seed, rng.AUGMENT, t), cfg.data.augment,
                            cfg.data.crop_padding, cfg.data.flip, cfg.data.image_size)]

    def run(self, inputs: Sequence[torch.Tensor], y: torch.Tensor, archs: Sequence[str], scales: Sequence[float],
            parts: Optional[Sequence[slice]] = None, n: Optional[int] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward + backward of every path on each slice in ``parts`` (default: the whole batch), each loss times
        its scale and the slice's share size / ``n`` of the global batch; returns (per-path mean losses over the
        slices, correct predictions summed over slices and paths)."""
        parts, n = resolve_parts(parts, n, len(y))
        (x,) = inputs
        means, correct = [], torch.zeros((), device=x.device, dtype=torch.long)
        for part in parts:
            losses = []
            weight = (part.stop - part.start) / n
            for arch, scale in zip(archs, scales):
                with self.autocast():
                    logits = self.model(x[part], arch)
                    loss = F.cross_entropy(logits, y[part])
                factor = scale * weight
                (loss * factor if factor != 1.0 else loss).backward()
                losses.append(loss.detach())
                correct += (logits.detach().argmax(1) == y[part]).sum()
            means.append(torch.stack(losses))
        return mean_over_parts(means, parts), correct

    # stateless: nothing to checkpoint or restore
    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def snapshot(self) -> Any:
        return None

    def restore(self, snap: Any) -> None:
        pass


OBJECTIVES = Registry("objective")   # name -> builder(cfg, model, train_data, device); train.objective choices
OBJECTIVES.register("supervised")(
    lambda cfg, model, data, device: SupervisedObjective(model, cfg, data.mean, data.std))
OBJECTIVES.register("pinas")(
    lambda cfg, model, data, device: PiNASObjective(model, cfg, data.mean, data.std, len(data), device))


def build_objective(cfg: Config, model: torch.nn.Module, train_data, device: torch.device):
    """The objective named by ``cfg.train.objective`` for ``model`` trained on ``train_data``."""
    return OBJECTIVES.get(cfg.train.objective)(cfg, model, train_data, device)
