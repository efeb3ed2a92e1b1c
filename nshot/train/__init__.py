"""Supernet training: trainer loop, samplers, learning-rate policies, optimizers, checkpoints."""
from .lr import ConstantLR, CosineLR, build_lr_policy
from .sampler import UniformSampler, build_sampler
from .standalone import StandaloneConfig, train_standalone
from .trainer import Trainer, build_model, load_data

__all__ = ["ConstantLR", "CosineLR", "StandaloneConfig", "Trainer", "UniformSampler", "build_lr_policy",
           "build_model", "build_sampler", "load_data", "train_standalone"]
