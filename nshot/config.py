"""Typed run configuration: dataclasses, YAML in and out, dotted overrides, validation.

Every field has a default; a YAML file only states what differs. Unknown keys and bad values raise
:class:`ConfigError` naming the key and what is allowed.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import yaml


class ConfigError(ValueError):
    """A config key or value is not valid."""


def _choice(default: str, *allowed: str):
    return field(default=default, metadata={"choices": allowed})


def _registered(default: str, module: str, registry: str):
    """A field whose allowed values are the names registered in ``module.registry`` (read when a value is checked:
    adding a plug-in to its registry adds it here)."""
    from .registry import RegistryChoices
    return field(default=default, metadata={"choices": RegistryChoices(module, registry)})


@dataclass
class SpaceConfig:
    """Which search space: ``nb201``, ``macro`` (NAS-Bench-Macro), ``proxyless`` (ProxylessNAS-style) or
    ``bottleneck`` (Pi-NAS's split-attention bottleneck blocks, CIFAR scale) or ``darts`` (the DARTS CNN cells)."""
    name: str = _registered("nb201", "nshot.spaces", "available")


@dataclass
class ModelConfig:
    """Supernet shape and BatchNorm mode (decision 8: affine=False, batch statistics).

    ``C``, ``N``: NB201. The other options shape the MobileNet-style spaces; null = the space's default
    (docs/spaces.md), and an option the chosen space does not take must stay null. ``macro``: ``stem_width``,
    ``widths`` (3 stages), ``head_width``, ``resolution`` (defaults: the NAS-Bench-Macro network).
    ``proxyless``: all of them (``stem``, ``first_width``, ``depths`` and ``strides`` are proxyless only).
    ``bottleneck``: ``stem_width``, ``widths`` (planes per stage), ``depths``, ``resolution``.
    """
    C: int = 16
    N: int = 5
    bn_affine: bool = False
    bn_track_running_stats: bool = False
    stem: Optional[str] = field(default=None, metadata={"choices": ("imagenet", "cifar")})
    stem_width: Optional[int] = None
    first_width: Optional[int] = None
    widths: Optional[list[int]] = None
    depths: Optional[list[int]] = None
    strides: Optional[list[int]] = None
    head_width: Optional[int] = None
    resolution: Optional[int] = None


@dataclass
class DataConfig:
    """Dataset, split and augmentation. ``split: nb201`` trains on NB201's cifar10-valid ``train`` half."""
    name: str = _choice("cifar10", "cifar10", "cifar100", "digits", "imagenet16-120", "imagenet16", "folder")
    root: str = "./data"
    split: str = _choice("nb201", "nb201", "full")
    split_file: Optional[str] = None
    download: bool = False
    augment: bool = True
    crop_padding: int = 4
    flip: bool = True
    train_subset: Optional[int] = None
    eval_subset: Optional[int] = None
    image_size: Optional[int] = None   # folder datasets: network input size (required); others: null
    workers: int = 0                   # folder datasets: processes decoding images once at load (0 = in-process)


@dataclass
class OptimConfig:
    """SGD settings. ``update_unused: false`` leaves off-path parameters untouched (decision 1)."""
    lr: float = 0.025
    lr_min: float = 0.0
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    update_unused: bool = False


@dataclass
class SamplerConfig:
    """Architecture sampling. NB201 includes disconnected cells unless ``connected_only`` (decision 7)."""
    connected_only: bool = False


@dataclass
class TrainConfig:
    """Supernet training loop."""
    epochs: int = 250
    batch_size: int = 64
    eval_batch_size: int = 256
    sampler: str = _registered("uniform", "nshot.train.sampler", "SAMPLERS")
    objective: str = _registered("supervised", "nshot.train.objectives", "OBJECTIVES")
    lr_policy: str = _registered("cosine", "nshot.train.lr", "LR_POLICIES")
    optimizer: str = _registered("sgd", "nshot.train.optim", "OPTIMIZERS")
    grad_clip: Optional[float] = 5.0
    drop_last: bool = False
    checkpoint_every_steps: int = 0
    micro_batches: int = 1
    precision: str = _choice("auto", "auto", "fp32", "bf16")
    channels_last: Optional[bool] = None
    log_every_steps: int = 50
    nonfinite: str = _choice("stop", "stop", "skip")
    executor: str = _choice("auto", "auto", "eager", "static")


@dataclass
class ArchConfig:
    """Architecture parameters (differentiable search, :mod:`nshot.train.differentiable`): ``method`` none (a
    single-path recipe), ``darts`` (softmax mixed op) or ``snas`` (Gumbel-softmax samples); alphas trained with
    Adam on the held-out half, weights with SGD on the training half, alternately."""
    method: str = _choice("none", "none", "darts", "snas")
    order: int = 1
    lr: float = 3e-4
    weight_decay: float = 1e-3
    beta1: float = 0.5
    beta2: float = 0.999
    init_std: float = 1e-3
    tau_max: float = 1.0
    tau_min: float = 0.03
    table: Optional[str] = None
    projection: str = _choice("argmax", "argmax", "perturbation")
    projection_finetune_steps: int = 0
    projection_finetune_lr: Optional[float] = None


@dataclass
class StandaloneSection:
    """``nshot train-arch`` settings a config may carry; a command-line flag wins, null = the built-in default
    (NB201 protocol; DARTS space: C 36, N 6)."""
    epochs: Optional[int] = None
    batch_size: Optional[int] = None
    lr: Optional[float] = None
    weight_decay: Optional[float] = None
    nesterov: Optional[bool] = None
    C: Optional[int] = None
    N: Optional[int] = None
    aux_weight: Optional[float] = None
    cutout: Optional[int] = None
    drop_path: Optional[float] = None
    grad_clip: Optional[float] = None
    drop_last: Optional[bool] = None
    bn_calibrate: Optional[bool] = None


@dataclass
class CaLRConfig:
    """Complexity-aware LR (decision 3): lr_t(a) = lr_min + (lr - lr_min) (1 - t/T)^gamma(a), gamma linear in
    log C(a) from gamma_max (least complex subnet) to 1/gamma_max (most complex)."""
    gamma_max: float = 4.0
    complexity: str = _choice("params", "params", "flops")


@dataclass
class MSConfig:
    """Momentum separation (decision 2): one momentum buffer per group of subnets. ``grouping: edge`` groups
    by the op on decision ``edge`` (an index, or ``random``: drawn once from the seed); ``complexity``: ``groups``
    equal-count bins of log complexity; ``kmeans``: ``groups`` k-means clusters of op-count features."""
    grouping: str = _choice("edge", "edge", "complexity", "kmeans")
    edge: str = "random"
    groups: int = 5


@dataclass
class FewShotConfig:
    """Few-shot supernets (decisions 10, 11). ``method``: ``none`` (one-shot), ``exhaustive`` (Few-Shot NAS: split
    decision ``edge`` into one sub-supernet per op at the single epoch in ``split_epochs``; 0 = from scratch) or
    ``gm`` (GM-NAS: at each epoch of ``split_epochs`` every sub-supernet splits into 2 where the ops' gradients
    disagree most, estimated on ``gm_batches`` batches; ``gm_groups`` gives each split, in time order, its own
    number of ways, e.g. ``[2, 3]`` for ProxylessNAS-GM). Children inherit weights and optimizer state
    (``inherit``) or start afresh; ``restart_final`` re-initialises the children of GM-NAS's last split."""
    method: str = _choice("none", "none", "exhaustive", "gm")
    split_epochs: list[int] = field(default_factory=lambda: [0])
    edge: int = 0
    inherit: bool = False
    restart_final: bool = True
    gm_batches: int = 100
    gm_groups: list[int] = field(default_factory=list)


@dataclass
class PiNASConfig:
    """Pi-NAS unsupervised training (decision 12, ``train.objective: pinas`` with ``train.sampler: pair``):
    projection head (``hidden_dim``: null = the backbone's feature width), InfoNCE at ``temperature`` against a
    FIFO queue of ``queue_size`` keys (null: the training images / 8, at least 256), EMA teacher with momentum
    ``ema``; views: crop area in [``crop_scale_min``, 1], colour jitter (hue ``hue``), grayscale, blur
    (``p_blur``), flip. ``bn_groups`` > 1 emulates MoCo's shuffle-BN across that many devices on one: the
    student normalises contiguous groups of the batch, the teacher groups of a seeded shuffle of it."""
    dim: int = 128
    hidden_dim: Optional[int] = None
    temperature: float = 0.2
    ema: float = 0.999
    queue_size: Optional[int] = None
    crop_scale_min: float = 0.2
    hue: float = 0.1
    p_blur: float = 0.5
    bn_groups: int = 1


@dataclass
class DiagnosticsConfig:
    """Training diagnostics logged per epoch: cosine between gradient and the momentum it joins (every K steps,
    0 = off), and training loss by complexity quintile."""
    grad_momentum_cos_every: int = 10
    loss_by_quintile: bool = True


@dataclass
class RunConfig:
    """Where the run writes and how it reports progress (``tensorboard``: also write the metrics as TensorBoard
    scalars in RUN/tensorboard/, needs the optional tensorboard package)."""
    dir: Optional[str] = None
    progress: str = _choice("auto", "auto", "bar", "log", "none")
    tensorboard: bool = False


@dataclass
class Config:
    """A complete, resolved run configuration."""
    seed: int = 0
    device: str = "auto"
    threads: Optional[int] = None
    space: SpaceConfig = field(default_factory=SpaceConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    calr: CaLRConfig = field(default_factory=CaLRConfig)
    arch: ArchConfig = field(default_factory=ArchConfig)
    standalone: StandaloneSection = field(default_factory=StandaloneSection)
    ms: MSConfig = field(default_factory=MSConfig)
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)
    pinas: PiNASConfig = field(default_factory=PiNASConfig)
    fewshot: FewShotConfig = field(default_factory=FewShotConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def validate(self) -> "Config":
        """Check value ranges that types alone do not express; return self."""
        checks = [
            ("seed", self.seed >= 0, "an integer >= 0"),
            ("train.epochs", self.train.epochs >= 1, "an integer >= 1"),
            ("train.batch_size", self.train.batch_size >= 1, "an integer >= 1"),
            ("train.eval_batch_size", self.train.eval_batch_size >= 1, "an integer >= 1"),
            ("train.checkpoint_every_steps", self.train.checkpoint_every_steps >= 0, "an integer >= 0 (0: at epoch ends)"),
            ("train.log_every_steps", self.train.log_every_steps >= 1, "an integer >= 1"),
            ("train.micro_batches", self.train.micro_batches >= 1, "an integer >= 1"),
            ("train.grad_clip", self.train.grad_clip is None or self.train.grad_clip > 0, "a positive number or null"),
            ("optim.lr", self.optim.lr > 0, "a positive number"),
            ("optim.lr_min", 0 <= self.optim.lr_min <= self.optim.lr, "a number in [0, optim.lr]"),
            ("optim.momentum", 0 <= self.optim.momentum < 1, "a number in [0, 1)"),
            ("optim.weight_decay", self.optim.weight_decay >= 0, "a number >= 0"),
            ("calr.gamma_max", self.calr.gamma_max >= 1, "a number >= 1 (1 = plain linear decay)"),
            ("ms.groups", self.ms.groups >= 1, "an integer >= 1"),
            ("fewshot.gm_batches", self.fewshot.gm_batches >= 1, "an integer >= 1"),
            ("fewshot.split_epochs", all(0 <= e < self.train.epochs for e in self.fewshot.split_epochs)
             and len(set(self.fewshot.split_epochs)) == len(self.fewshot.split_epochs),
             "distinct epochs in [0, train.epochs)"),
            ("fewshot.edge", self.fewshot.edge >= 0, "a decision index >= 0"),
            ("fewshot.gm_groups", not self.fewshot.gm_groups or (
                self.fewshot.method == "gm" and all(g >= 2 for g in self.fewshot.gm_groups)
                and len(self.fewshot.gm_groups) == len(self.fewshot.split_epochs)),
             "[] (2-way splits) or, with fewshot.method = gm, one integer >= 2 per split epoch"),
            ("ms.edge", self.ms.edge == "random" or self.ms.edge.isdigit(), "'random' or a decision index"),
            ("diagnostics.grad_momentum_cos_every", self.diagnostics.grad_momentum_cos_every >= 0, "an integer >= 0"),
            ("threads", self.threads is None or self.threads >= 1, "null or an integer >= 1"),
            ("model.C", self.model.C >= 1, "an integer >= 1"),
            ("model.N", self.model.N >= 1, "an integer >= 1"),
            *[(f"model.{k}", getattr(self.model, k) is None or getattr(self.model, k) >= 1, "null or an integer >= 1")
              for k in ("stem_width", "first_width", "head_width", "resolution")],
            *[(f"model.{k}", getattr(self.model, k) is None or (len(getattr(self.model, k)) > 0 and
                                                             all(v >= 1 for v in getattr(self.model, k))),
               "null or a non-empty list of integers >= 1") for k in ("widths", "depths")],
            ("model.strides", self.model.strides is None or (len(self.model.strides) > 0 and
                                                             all(v in (1, 2) for v in self.model.strides)),
             "null or a non-empty list of strides 1 or 2"),
            ("data.crop_padding", self.data.crop_padding >= 0, "an integer >= 0"),
            ("data.train_subset", self.data.train_subset is None or self.data.train_subset >= 1, "null or an integer >= 1"),
            ("data.eval_subset", self.data.eval_subset is None or self.data.eval_subset >= 1, "null or an integer >= 1"),
        ]
        for key, ok, expected in checks:
            if not ok:
                raise ConfigError(f"{key} = {_get(self, key)!r} is invalid: expected {expected}")
        pinas_checks = [
            ("pinas.dim", self.pinas.dim >= 1, "an integer >= 1"),
            ("pinas.hidden_dim", self.pinas.hidden_dim is None or self.pinas.hidden_dim >= 1, "null or an integer >= 1"),
            ("pinas.temperature", self.pinas.temperature > 0, "a positive number"),
            ("pinas.ema", 0 <= self.pinas.ema < 1, "a number in [0, 1)"),
            ("pinas.queue_size", self.pinas.queue_size is None or self.pinas.queue_size >= 1, "null or an integer >= 1"),
            ("pinas.crop_scale_min", 0 < self.pinas.crop_scale_min <= 1, "a number in (0, 1]"),
            ("pinas.hue", 0 <= self.pinas.hue <= 0.5, "a number in [0, 0.5]"),
            ("pinas.p_blur", 0 <= self.pinas.p_blur <= 1, "a probability in [0, 1]"),
            ("pinas.bn_groups", self.pinas.bn_groups >= 1, "an integer >= 1 (1 = no shuffle-BN)"),
        ]
        for key, ok, expected in pinas_checks:
            if not ok:
                raise ConfigError(f"{key} = {_get(self, key)!r} is invalid: expected {expected}")
        if self.train.objective == "pinas" and self.train.sampler != "pair":
            raise ConfigError(f"train.objective = pinas needs train.sampler = pair (two paths that differ at every "
                              f"decision), got {self.train.sampler!r}")
        self._check_arch()
        if self.optim.nesterov and self.optim.momentum == 0:
            raise ConfigError("optim.nesterov = true needs optim.momentum > 0")
        self._check_space_options()
        if not (self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda")):
            raise ConfigError(f"device = {self.device!r} is invalid: expected auto, cpu, cuda or cuda:N")
        return self

    def projection_tune_lr(self) -> float:
        """The lr of DARTS-PT's tuning between projection decisions: ``arch.projection_finetune_lr``, or
        ``optim.lr_min`` (where the search's schedule ended) when that is null."""
        a = self.arch
        return a.projection_finetune_lr if a.projection_finetune_lr is not None else self.optim.lr_min

    def _check_arch(self) -> None:
        """Differentiable search (``arch.method``): its values, and the recipes it cannot be combined with."""
        a = self.arch
        for key, ok, expected in [("arch.order", a.order in (1, 2), "1 (first order) or 2 (second order)"),
                                  ("arch.lr", a.lr > 0, "a positive number"),
                                  ("arch.weight_decay", a.weight_decay >= 0, "a number >= 0"),
                                  ("arch.beta1", 0 <= a.beta1 < 1, "a number in [0, 1)"),
                                  ("arch.beta2", 0 <= a.beta2 < 1, "a number in [0, 1)"),
                                  ("arch.init_std", a.init_std >= 0, "a number >= 0"),
                                  ("arch.projection_finetune_steps", a.projection_finetune_steps >= 0,
                                   "an integer >= 0"),
                                  ("arch.tau_min", 0 < a.tau_min <= a.tau_max, "a number in (0, arch.tau_max]")]:
            if not ok:
                raise ConfigError(f"{key} = {_get(self, key)!r} is invalid: expected {expected}")
        if a.projection_finetune_steps and a.projection != "perturbation":
            raise ConfigError(f"arch.projection_finetune_steps = {a.projection_finetune_steps} tunes the supernet "
                              "between the decisions of a perturbation projection: set arch.projection = "
                              "perturbation, or leave the steps at 0")
        if a.projection_finetune_lr is not None and a.projection_finetune_lr < 0:
            raise ConfigError(f"arch.projection_finetune_lr = {a.projection_finetune_lr!r} is invalid: expected a "
                              "number >= 0 (null: optim.lr_min)")
        if a.projection_finetune_steps and self.projection_tune_lr() == 0:
            raise ConfigError(f"arch.projection_finetune_steps = {a.projection_finetune_steps} would tune at lr 0 "
                              "(arch.projection_finetune_lr is null and optim.lr_min = 0): set "
                              "arch.projection_finetune_lr, e.g. 0.001")
        if a.method == "none":
            return
        if a.method == "snas" and a.order != 1:
            raise ConfigError("arch.order = 2 (the unrolled hypergradient) is DARTS's; SNAS takes arch.order = 1")
        if self.fewshot.method == "exhaustive":
            raise ConfigError(f"fewshot.method = exhaustive is not supported with arch.method = {a.method} "
                              "(GM-NAS splits, fewshot.method = gm, are)")
        if any(g != 2 for g in self.fewshot.gm_groups):
            raise ConfigError(f"fewshot.gm_groups = {self.fewshot.gm_groups}: GM-NAS with arch.method = {a.method} "
                              "splits 2 ways only")
        from . import spaces
        try:
            differentiable = spaces.space_class(self.space.name).supports_differentiable   # the space's hook
        except ValueError as exc:
            raise ConfigError(f"space.name = {self.space.name!r}: {exc}") from None
        if not differentiable:
            raise ConfigError(f"arch.method = {a.method} runs on the {_and(spaces.spaces_with('supports_differentiable'))} "
                              f"spaces, not {self.space.name!r} (its supernet has no mixed-op forward)")
        if self.train.lr_policy == "calr":
            raise ConfigError(f"train.lr_policy = calr cannot be used with arch.method = {a.method}: CaLR gives each "
                              "sampled subnet its own learning-rate schedule (CVPR 2025), which does not apply "
                              "when all subnets train jointly through architecture weights")
        if self.train.optimizer == "ms_sgd":
            raise ConfigError(f"train.optimizer = ms_sgd cannot be used with arch.method = {a.method}: momentum "
                              "separation groups the sampled subnets, and a mixed-op step trains all of them")
        for key, value, plain in (("train.objective", self.train.objective, "supervised"),
                                  ("train.executor", self.train.executor, "auto"),
                                  ("train.micro_batches", self.train.micro_batches, 1)):
            if value != plain:
                raise ConfigError(f"{key} = {value!r} is not supported with arch.method = {a.method} "
                                  f"(use {plain!r})")

    def _check_space_options(self) -> None:
        """The ``model.*`` options must be ones the space takes and fit together (e.g. proxyless ``widths``,
        ``depths`` and ``strides`` of equal length): build the space and count one architecture."""
        from . import spaces
        try:
            spaces.check_model_options(self.space.name, self.model)
            space = spaces.for_config(self)
            space.num_params(space.encode([0] * space.num_decisions), **spaces.shape_from_config(self))
        except ValueError as exc:
            raise ConfigError(f"model options for space {self.space.name!r}: {exc}") from None


# -- conversion -------------------------------------------------------------------------------------------

def _unwrap_optional(tp) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _coerce(key: str, value: Any, tp, f: dataclasses.Field) -> Any:
    base, optional = _unwrap_optional(tp)
    if value is None and optional:
        return None
    if typing.get_origin(base) is list:
        (item,) = typing.get_args(base)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, list):
            raise ConfigError(f"{key} = {value!r} is invalid: expected a list")
        return [_coerce(f"{key}[{i}]", v, item, f) for i, v in enumerate(value)]
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{key} must not be null")
    if base is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key} = {value!r} is invalid: expected true or false")
    if base is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{key} = {value!r} is invalid: expected an integer")
    if base is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an int too large for a float
                pass
        elif isinstance(value, str):  # YAML 1.1 reads "5e-4" as a string
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None or not math.isfinite(number):
            raise ConfigError(f"{key} = {value!r} is invalid: expected a finite number")
        return number
    if base is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{key} = {value!r} is invalid: expected a string")
        value = str(value)
        allowed = f.metadata.get("choices")
        if allowed and value not in allowed:
            raise ConfigError(f"{key} = {value!r} is invalid: expected one of {', '.join(allowed)}")
        return value
    raise ConfigError(f"{key}: unsupported field type {tp}")


def from_dict(cls, data: Any, prefix: str = ""):
    """Build dataclass ``cls`` from nested dicts, rejecting unknown keys."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise ConfigError(f"unknown config key '{prefix}{unknown[0]}'; allowed keys"
                          f"{' under ' + prefix.rstrip('.') if prefix else ''}: {', '.join(fields)}")
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = from_dict(tp, value, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(prefix + name, value, tp, fields[name])
    return cls(**kwargs)


def to_dict(cfg) -> dict:
    """Plain nested dict of a config (YAML-ready)."""
    return dataclasses.asdict(cfg)


def _and(names: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return " and ".join(filter(None, [", ".join(names[:-1]), *names[-1:]]))


def _get(cfg, dotted: str):
    obj = cfg
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``key.sub=value`` overrides to a nested dict; values are parsed as YAML scalars."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.sub=value")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"override {item!r} has an empty key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: value is not valid YAML ({exc})") from None
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
        node[parts[-1]] = value
    return data


def load_config(path: Optional[Union[str, Path]] = None, overrides: Optional[list[str]] = None) -> Config:
    """Load a YAML config (or the defaults when ``path`` is None), apply overrides, validate."""
    data: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {p} is not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {p} must hold a mapping at the top level")
    data = apply_overrides(data, list(overrides or []))
    return from_dict(Config, data).validate()


def dump_config(cfg: Config, path: Union[str, Path]) -> None:
    """Write the resolved config as YAML, atomically (a crash leaves the old file or the complete new one:
    a torn file could otherwise parse as a shorter config with defaults in place of the lost keys)."""
    from .run.io import atomic_write_bytes   # not at the top: nshot.run imports this module
    atomic_write_bytes(path, yaml.safe_dump(to_dict(cfg), sort_keys=False).encode())
