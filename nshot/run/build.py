"""What training and scoring build alike from a config: the data splits and the supernet."""
from __future__ import annotations

from typing import Any

import torch

from .. import spaces
from ..config import Config
from ..data import ImageData, load_dataset
from ..nn import BNConfig, build_supernet
from . import rng


def space_shape(cfg: Config, num_classes: int, in_channels: int) -> dict[str, Any]:
    """Keyword arguments describing the network shape to the space (complexity of a subnet): the ``model.*``
    options the space declares as ``shape_options`` (NB201: C, N; unset ones keep the space's default), the
    number of classes and the input channels."""
    return {**spaces.shape_from_config(cfg), "num_classes": num_classes, "in_channels": in_channels}


def build_model(cfg: Config, num_classes: int, in_channels: int, candidates=None, init_salt: int = 0) -> torch.nn.Module:
    """The supernet described by ``cfg`` (weights initialised from the run's seed; ``init_salt`` gives a few-shot
    node its own initialisation), restricted to ``candidates`` per decision when given."""
    bn = BNConfig(affine=cfg.model.bn_affine, track_running_stats=cfg.model.bn_track_running_stats)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(rng.torch_seed(cfg.seed, rng.INIT, init_salt))
        options = {**spaces.for_config(cfg).options, **space_shape(cfg, num_classes, in_channels)}
        return build_supernet(cfg.space.name, **options, bn=bn, candidates=candidates)


def load_data(cfg: Config) -> tuple[ImageData, ImageData]:
    """(train, eval) splits as configured, subset if asked."""
    d = cfg.data
    train, evald = load_dataset(d.name, d.root, split=d.split, split_file=d.split_file, download=d.download,
                                seed=cfg.seed, image_size=d.image_size, workers=d.workers)
    if d.train_subset is not None:
        train = train.subset(min(d.train_subset, len(train)))
    if d.eval_subset is not None:
        evald = evald.subset(min(d.eval_subset, len(evald)))
    return train, evald
