"""Training one architecture from scratch (the ground-truth side of a ranking experiment)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F

from .. import spaces
from ..data import ImageData, epoch_batches, eval_input, num_batches, train_input
from ..nn import build_standalone
from ..nn.ops import batchnorms
from ..run.evaluate import evaluate_arch
from ..score.bn import recalibrate
from . import rng
from ..data.cutout import cutout
from .lr import CosineLR

CUTOUT = 24      # random streams (nshot.train.rng) of the DARTS evaluation protocol
DROP_PATH = 25


@dataclass
class StandaloneConfig:
    """NB201 benchmark protocol by default: 200 epochs, lr 0.1 cosine, wd 5e-4, batch 256, Nesterov. DARTS's
    evaluation protocol adds ``aux_weight`` 0.4 (the auxiliary head's loss weight; 0: no head), ``cutout`` 16,
    ``drop_path`` 0.2 (raised linearly from 0 over the epochs) and ``grad_clip`` 5. ``drop_last`` drops each
    epoch's final short batch; ``bn_calibrate`` replaces the BN running statistics, before the evaluation, by
    their average over the un-augmented training images (:func:`calibrate_bn`). Both are off in the benchmark
    protocols; the quickstart's 8x8 digits need the calibration (docs/results.md, the quickstart's truth)."""
    epochs: int = 200
    batch_size: int = 256
    lr: float = 0.1
    lr_min: float = 0.0
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    augment: bool = True
    crop_padding: int = 4
    flip: bool = True
    C: int = 16
    N: int = 5
    aux_weight: float = 0.0
    cutout: int = 0
    drop_path: float = 0.0
    grad_clip: Optional[float] = None
    drop_last: bool = False
    bn_calibrate: bool = False


def check_protocol(space: spaces.SearchSpace, cfg: StandaloneConfig) -> None:
    """Refuse (ValueError naming the option and the space) protocol options the space's stand-alone network
    cannot use: an auxiliary-head loss (``supports_auxiliary_head``) or drop-path (``supports_drop_path``)."""
    for key, value, hook, what in (("aux_weight", cfg.aux_weight, "supports_auxiliary_head", "auxiliary head"),
                                   ("drop_path", cfg.drop_path, "supports_drop_path", "drop-path")):
        if value > 0 and not getattr(space, hook):
            where = ", ".join(spaces.spaces_with(hook)) or "no space"
            raise ValueError(f"standalone.{key} = {value:g}: the stand-alone network of space {space.name!r} has no "
                             f"{what} (leave {key} at 0; it applies to: {where})")


def check_batches(cfg: StandaloneConfig, n: int) -> None:
    """Refuse (ValueError) ``drop_last`` with fewer than ``batch_size`` training images: no step would run."""
    if cfg.drop_last and n < cfg.batch_size:
        raise ValueError(f"drop_last with batch_size {cfg.batch_size} > the {n} training images: no step would "
                         f"run (lower batch_size or leave drop_last off)")


def train_standalone(space: str, arch: str, train: ImageData, evald: ImageData, cfg: StandaloneConfig,
                     seed: int = 0, device: Optional[torch.device] = None,
                     on_epoch: Optional[Callable[[int, float], None]] = None,
                     options: Optional[dict[str, Any]] = None, shape: Optional[dict[str, Any]] = None) -> float:
    """Train ``arch`` from scratch on ``train``; return top-1 accuracy (%) on ``evald``. ``options``: the space's
    own options (``SearchSpace.options``, e.g. a proxyless network description). ``shape``: the network's shape
    options (e.g. a macro run's ``widths``); by default ``cfg.C``/``cfg.N`` for the spaces that take them (NB201)
    and the space's default (benchmark) network for the others."""
    device = device or torch.device("cpu")
    sp = spaces.get(space, **(options or {}))
    check_protocol(sp, cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(rng.torch_seed(seed, rng.INIT, 1))
        if shape is None:
            shape = {k: getattr(cfg, k) for k in ("C", "N") if k in sp.shape_options}
        extra = {"auxiliary": cfg.aux_weight > 0} if sp.supports_auxiliary_head else {}
        net = build_standalone(space, arch, **(options or {}), **shape, **extra, num_classes=train.num_classes,
                               in_channels=train.x.shape[1]).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                          weight_decay=cfg.weight_decay)
    policy = CosineLR(cfg.lr, cfg.lr_min)
    check_batches(cfg, len(train))
    train = train.to(device)
    spe = num_batches(len(train), cfg.batch_size, cfg.drop_last)
    total = cfg.epochs * spe
    step = 0
    for epoch in range(cfg.epochs):
        net.train()
        if cfg.drop_path > 0:
            net.drop_path_prob = cfg.drop_path * epoch / cfg.epochs   # DARTS: linear ramp from 0
        for idx in epoch_batches(len(train), cfg.batch_size, seed, epoch, drop_last=cfg.drop_last):
            idx = idx.to(device)
            xb = train.x[idx]
            # images stored larger than the evaluation images (image folders) get random-resized crops to that size
            x = train_input(xb, train.mean, train.std, rng.torch_seed(seed, rng.AUGMENT, step), cfg.augment,
                            cfg.crop_padding, cfg.flip, evald.x.shape[-1])
            if cfg.cutout:
                x = cutout(x, cfg.cutout, rng.torch_seed(seed, CUTOUT, step))
            if cfg.drop_path > 0:
                net.generator = torch.Generator().manual_seed(rng.torch_seed(seed, DROP_PATH, step))
            for g in opt.param_groups:
                g["lr"] = policy(step, total)
            opt.zero_grad(set_to_none=True)
            out = net(x)
            if isinstance(out, tuple):        # DARTS evaluation network in training: (logits, auxiliary logits)
                loss = F.cross_entropy(out[0], train.y[idx]) + cfg.aux_weight * F.cross_entropy(out[1], train.y[idx])
            else:
                loss = F.cross_entropy(out, train.y[idx])
            loss.backward()
            if cfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
            opt.step()
            step += 1
        if on_epoch is not None:
            on_epoch(epoch, policy(step, total))
    if cfg.bn_calibrate:
        calibrate_bn(net, train, cfg.batch_size, evald.x.shape[-1])
    return evaluate_arch(net, evald, batch_size=512, device=device)


@torch.no_grad()
def calibrate_bn(net: torch.nn.Module, data: ImageData, batch_size: int, size: Optional[int] = None) -> None:
    """Replace every BN's running statistics by their average over ``data``'s un-augmented images (train-mode
    forwards in batches of ``batch_size``, equal weight per batch; a final short batch is left out unless it is
    the only one): the statistics of inputs like the evaluation's, where the running averages a training leaves
    follow augmented batches of a moving network. Parameters are untouched; drop-path is off meanwhile."""
    if len(data) == 0:
        raise ValueError("calibrate_bn needs at least one image (got an empty dataset)")
    bns = batchnorms(net)
    momenta = [bn.momentum for bn in bns]
    drop = getattr(net, "drop_path_prob", None)
    n = len(data) if len(data) < batch_size else len(data) - len(data) % batch_size
    batches = (eval_input(data.x[i:i + batch_size], data.mean, data.std, size) for i in range(0, n, batch_size))
    try:
        for bn in bns:
            bn.momentum = None           # cumulative average over the batches
        if drop is not None:
            net.drop_path_prob = 0.0
        recalibrate(net, batches)
    finally:
        for bn, m in zip(bns, momenta):
            bn.momentum = m
        if drop is not None:
            net.drop_path_prob = drop
