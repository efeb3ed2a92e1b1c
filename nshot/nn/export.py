"""Copy one path's weights out of a supernet into a stand-alone network."""
from __future__ import annotations

import torch
from torch import nn


def export_subnet(supernet: nn.Module, standalone: nn.Module, strict: bool = True) -> nn.Module:
    """Load into ``standalone`` the supernet tensors with the same names (parameters and buffers).

    Both networks must come from the same builder, so every tensor of the stand-alone network exists in the
    supernet with the same name and shape. Returns ``standalone``.
    """
    source = supernet.state_dict()
    target = standalone.state_dict()
    picked: dict[str, torch.Tensor] = {}
    missing = []
    for name, tensor in target.items():
        if name in source and source[name].shape == tensor.shape:
            picked[name] = source[name]
        else:
            missing.append(name)
    if missing and strict:
        raise ValueError(f"supernet has no tensor matching {len(missing)} stand-alone tensors, e.g. {missing[:3]}; "
                         "were both built with the same space, C, N and BN settings?")
    standalone.load_state_dict(picked, strict=strict)
    return standalone
