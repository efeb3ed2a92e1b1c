"""Differentiable search: architecture parameters (alphas) trained jointly with the supernet's weights.

A step is planned as weights instead of a path: one (edges x ops) table of op weights, from the alphas by
softmax (DARTS) or by a Gumbel-softmax sample at the epoch's temperature (SNAS). The supernet runs it as a
mixed op in the same modules single-path training uses (NB201: ``forward_weighted``; DARTS space:
``forward_mixed``), so the derived architecture exports by key lookup as any other. Each step first updates the
alphas with Adam on a batch of the held-out half (``valid``), then the weights with SGD on a batch of the
training half:

* DARTS first order: the alpha gradient of the held-out loss at the current weights;
* DARTS second order: the gradient of ``L_val(w - xi * dL_train/dw, alpha)`` (``xi`` = the weights' lr; the
  unrolled step includes momentum and weight decay as DARTS does), its Hessian-vector product by central
  finite differences (:func:`unrolled_alpha_grad`);
* SNAS: the held-out loss of a Gumbel-softmax sample (temperature from ``arch.tau_max`` down to ``arch.tau_min``,
  geometric over the epochs).

Run directory: ``config.yaml``, ``env.json``, ``metrics.jsonl`` (per epoch: train and held-out loss/accuracy,
lr, temperature, the op weights per edge, the derived architecture and, with a ground-truth table (NB201), its
accuracy there), ``checkpoints/`` (weights, alphas, both optimizers) and ``result.json``. Every random draw
is a function of (seed, step), so a resumed run equals an uninterrupted one bit for bit on CPU.
"""
from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import torch
import torch.nn.functional as F

from .. import spaces
from ..config import Config, dump_config, load_config
from ..data import epoch_batches, num_batches, train_input
from ..run.rundir import RunDir
from . import rng
from .checkpoint import atomic_write_bytes, load_checkpoint_from, save_checkpoint
from .env import environment, resolve_device
from .lr import build_lr_policy
from .metrics import MetricsLog
from .trainer import RunDirError, build_model, load_data

KIND = "differentiable"
FORMAT_VERSION = 1
GUMBEL = 20       # random streams of this module (see nshot.train.rng)
VALID_BATCH = 21
VALID_AUGMENT = 22
ALPHA_INIT = 23


# -- architecture weights ---------------------------------------------------------------------------------------
def gumbel_softmax(alpha: torch.Tensor, tau: float, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """A relaxed one-hot sample per row: ``softmax((alpha + G) / tau)``, G standard Gumbel noise (drawn on the CPU
    from ``generator``, then moved to ``alpha``'s device). As tau -> 0 the rows become one-hot, at the argmax of
    ``alpha + G``, which is op k with probability softmax(alpha)_k."""
    u = torch.rand(alpha.shape, generator=generator, dtype=torch.float64).clamp_(1e-20, 1.0)
    g = (-torch.log(-torch.log(u))).to(device=alpha.device, dtype=alpha.dtype)
    return torch.softmax((alpha + g) / tau, dim=-1)


def temperature(epoch: int, epochs: int, tau_max: float, tau_min: float) -> float:
    """SNAS's annealed temperature: ``tau_max`` at epoch 0 to ``tau_min`` at the last epoch, geometrically."""
    if epochs <= 1:
        return tau_max
    return tau_max * (tau_min / tau_max) ** (min(epoch, epochs - 1) / (epochs - 1))


def op_weights(alpha: torch.Tensor, method: str, tau: float = 1.0, generator: Optional[torch.Generator] = None,
               allowed: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The op-weight table of one step: softmax (darts) or a Gumbel-softmax sample (snas); ops outside
    ``allowed`` (a boolean table: a few-shot sub-supernet's ops) get weight exactly 0."""
    if allowed is not None:
        alpha = alpha.masked_fill(~allowed, float("-inf"))
    if method == "darts":
        return torch.softmax(alpha, dim=-1)
    if method == "snas":
        return gumbel_softmax(alpha, tau, generator)
    raise ValueError(f"unknown differentiable method {method!r}; expected darts or snas")


def allowed_table(shape: tuple[int, int], mask: Optional[Sequence[Sequence[int]]]) -> Optional[torch.Tensor]:
    """Boolean (edges x ops) table of the ops a mask allows per edge (None: every op)."""
    if mask is None:
        return None
    table = torch.zeros(shape, dtype=torch.bool)
    for e, ops in enumerate(mask):
        table[e, list(ops)] = True
    return table


def mixed_logits(net: torch.nn.Module, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Logits of the mixed op with an (edges x ops) weight table."""
    if hasattr(net, "forward_mixed"):
        return net.forward_mixed(x, weights)
    return net.forward_weighted(x, weights.unsqueeze(0))


def unrolled_alpha_grad(train_loss: Callable[[], torch.Tensor], val_loss: Callable[[], torch.Tensor],
                        params: Sequence[torch.Tensor], alpha: torch.Tensor, xi: float, weight_decay: float = 0.0,
                        momentum: float = 0.0, buffers: Optional[Sequence[Optional[torch.Tensor]]] = None,
                        r: float = 0.01) -> tuple[torch.Tensor, torch.Tensor]:
    """DARTS's second-order alpha gradient and the held-out loss at the unrolled weights.

    ``train_loss()``/``val_loss()`` compute the losses with the current values of ``params`` (modified in place
    here and restored exactly) and ``alpha``. With ``w' = w - xi (m * buf + dL_train/dw + wd * w)``:
    ``grad = dL_val(w', alpha)/dalpha - xi * H v`` with ``v = dL_val(w')/dw'`` and
    ``H v = (dL_train(w + e v)/dalpha - dL_train(w - e v)/dalpha) / 2e``, ``e = r / |v|``.
    """
    params = list(params)
    saved = [p.detach().clone() for p in params]
    grads = torch.autograd.grad(train_loss(), params, allow_unused=True)
    with torch.no_grad():
        for i, (p, g) in enumerate(zip(params, grads)):
            step = (g if g is not None else torch.zeros_like(p)) + weight_decay * p
            if buffers is not None and buffers[i] is not None and momentum:
                step = step + momentum * buffers[i]
            p.sub_(xi * step)
    lv = val_loss()
    out = torch.autograd.grad(lv, [alpha] + params, allow_unused=True)
    d_alpha = out[0] if out[0] is not None else torch.zeros_like(alpha)
    v = [g if g is not None else torch.zeros_like(p) for g, p in zip(out[1:], params)]
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in v]))
    eps = r / float(norm) if float(norm) > 0 else 0.0

    def alpha_grad_at(sign: float) -> torch.Tensor:
        with torch.no_grad():
            for p, s, g in zip(params, saved, v):
                p.copy_(s).add_(g, alpha=sign * eps)
        g = torch.autograd.grad(train_loss(), [alpha], allow_unused=True)[0]
        return g if g is not None else torch.zeros_like(alpha)

    if eps > 0:
        hv = (alpha_grad_at(1.0) - alpha_grad_at(-1.0)) / (2 * eps)
    else:
        hv = torch.zeros_like(alpha)
    with torch.no_grad():
        for p, s in zip(params, saved):
            p.copy_(s)
    return d_alpha - xi * hv, lv.detach()


# -- the search run ---------------------------------------------------------------------------------------------
class DifferentiableSearch:
    """A DARTS / SNAS run in ``run_dir``; use :meth:`create` or :meth:`resume`, then :meth:`fit`."""

    def __init__(self, cfg: Config, run_dir: Union[str, Path], data=None,
                 mask: Optional[Sequence[Sequence[int]]] = None, alpha_frozen_until: int = 0, node: Optional[int] = None,
                 truth: Optional[tuple[Any, Optional[str]]] = None):
        """``mask`` (per edge of the alpha table, the allowed ops), ``alpha_frozen_until`` (no alpha update before
        this step: GM-NAS keeps alphas fixed until its last split) and ``node`` (its own weight initialisation)
        make this one sub-supernet of a few-shot run; ``truth``, the run's :func:`truth_table` when the caller
        already has it (a GM-NAS run's nodes share one), else it is loaded here."""
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.files = RunDir(self.run_dir)
        self.mask = tuple(tuple(int(o) for o in m) for m in mask) if mask is not None else None
        self.alpha_frozen_until, self.node = int(alpha_frozen_until), node
        self.method, self.space_name = cfg.arch.method, cfg.space.name
        if self.method == "none":
            raise ValueError("arch.method is none: this is a single-path run (nshot.train.Trainer)")
        self.device = resolve_device(cfg.device)
        if cfg.threads is not None:
            torch.set_num_threads(cfg.threads)
        self.space = spaces.for_config(cfg)
        train, valid = data if data is not None else load_data(cfg)
        self.train_data, self.valid_data = train.to(self.device), valid.to(self.device)
        in_channels = self.train_data.x.shape[1]
        self.model = build_model(cfg, self.train_data.num_classes, in_channels, self.mask,
                                 init_salt=node or 0).to(self.device)
        shape = self.space.alpha_shape()
        self.allowed = allowed_table(shape, self.mask)
        if self.allowed is not None:
            self.allowed = self.allowed.to(self.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(rng.torch_seed(cfg.seed, ALPHA_INIT, 0))
            alpha = torch.randn(shape, dtype=torch.float32) * cfg.arch.init_std
        self.alpha = torch.nn.Parameter(alpha.to(self.device))
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        o = cfg.optim
        self.w_opt = torch.optim.SGD(self.params, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov,
                                     weight_decay=o.weight_decay)
        self.a_opt = torch.optim.Adam([self.alpha], lr=cfg.arch.lr, betas=(cfg.arch.beta1, cfg.arch.beta2),
                                      weight_decay=cfg.arch.weight_decay)
        self.lr_policy = build_lr_policy(cfg)   # train.lr_policy (cosine by default; CaLR refused by the config)
        bs = cfg.train.batch_size
        self.steps_per_epoch = num_batches(len(self.train_data), bs, cfg.train.drop_last)
        if self.steps_per_epoch < 1 or len(self.valid_data) < 1:
            raise ValueError(f"differentiable search needs at least one batch of {bs} in each half "
                             f"(train {len(self.train_data)}, held-out {len(self.valid_data)} images)")
        self.total_steps = cfg.train.epochs * self.steps_per_epoch
        self.step = 0
        self.metrics = MetricsLog(self.files.metrics, tensorboard=cfg.run.tensorboard)
        self.table, self.truth_metric = truth if truth is not None else truth_table(cfg)
        self._acc = _fresh()

    # -- construction ------------------------------------------------------------------------------------
    @classmethod
    def create(cls, cfg: Config, run_dir: Union[str, Path], data=None, **node: Any) -> "DifferentiableSearch":
        files = RunDir(run_dir)
        run_dir = files.path
        if files.is_taken():
            raise RunDirError(f"{run_dir} already holds a run; resume it with `nshot train --resume {run_dir}` "
                              "or choose another run.dir")
        run = cls(cfg, run_dir, data, **node)
        run_dir.mkdir(parents=True, exist_ok=True)
        run._record_env("start")
        dump_config(cfg, files.config)
        return run

    @classmethod
    def resume(cls, run_dir: Union[str, Path], data=None,
               truth: Optional[tuple[Any, Optional[str]]] = None) -> "DifferentiableSearch":
        files = RunDir(run_dir)
        run_dir = files.path
        files.require_run()
        if not files.has_checkpoint():
            run = cls(load_config(files.config), run_dir, data, truth=truth)
            run.metrics.truncate_after(0)
            run._record_env("restart (no checkpoint yet)")
            return run
        state, source = load_checkpoint_from(files.checkpoints)
        if state.get("kind") != KIND or state.get("format") != FORMAT_VERSION:
            raise RunDirError(f"{source}: not a differentiable-search checkpoint of format {FORMAT_VERSION}")
        run = cls(load_config(files.config), run_dir, data, mask=state.get("mask"),
                  alpha_frozen_until=state.get("alpha_frozen_until", 0), node=state.get("node"), truth=truth)
        run.model.load_state_dict(state["model"])
        with torch.no_grad():
            run.alpha.copy_(state["alpha"].to(run.device))
        run.w_opt.load_state_dict(state["w_opt"])
        run.a_opt.load_state_dict(state["a_opt"])
        run.step = int(state["step"])
        run._acc = {**_fresh(), **state.get("epoch_acc", {})}   # the partial epoch's tallies
        run.metrics.truncate_after(run.step)
        run._record_env("resume")
        return run

    def _record_env(self, event: str) -> None:
        path = self.files.env
        entries = json.loads(path.read_text()) if path.is_file() else []
        entries.append({"event": event, "step": self.step, "seed": self.cfg.seed, **environment(self.device)})
        atomic_write_bytes(path, (json.dumps(entries, indent=1) + "\n").encode())

    def save(self) -> None:
        state = {"format": FORMAT_VERSION, "kind": KIND, "space": self.space_name, "config": _cfg_dict(self.cfg),
                 "step": self.step, "model": self.model.state_dict(), "alpha": self.alpha.detach().cpu(),
                 "w_opt": self.w_opt.state_dict(), "a_opt": self.a_opt.state_dict(), "epoch_acc": dict(self._acc),
                 "mask": self.mask, "alpha_frozen_until": self.alpha_frozen_until, "node": self.node,
                 "param_names": [n for n, p in self.model.named_parameters() if p.requires_grad]}
        save_checkpoint(self.files.checkpoints, state)

    # -- one step ----------------------------------------------------------------------------------------
    def _noise(self, t: int, which: int) -> torch.Generator:
        return torch.Generator().manual_seed(rng.torch_seed(self.cfg.seed, GUMBEL, t, which))

    def tau(self, epoch: int) -> float:
        a = self.cfg.arch
        return temperature(epoch, self.cfg.train.epochs, a.tau_max, a.tau_min) if self.method == "snas" else 1.0

    def weights(self, t: int, which: int) -> torch.Tensor:
        """The op-weight table of step ``t`` (``which``: 0 the alpha update, 1 the weight update)."""
        return op_weights(self.alpha, self.method, self.tau(t // self.steps_per_epoch), self._noise(t, which),
                          self.allowed)

    def probs(self) -> torch.Tensor:
        """The current softmax of the alphas (within the mask), detached."""
        with torch.no_grad():
            return op_weights(self.alpha, "darts", allowed=self.allowed).detach()

    def _inputs(self, data, idx: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        d = self.cfg.data
        x = train_input(data.x[idx], data.mean, data.std, seed, d.augment, d.crop_padding, d.flip, d.image_size)
        return x, data.y[idx]

    def _valid_indices(self, t: int) -> torch.Tensor:
        cfg = self.cfg
        n = len(self.valid_data)
        per_epoch = num_batches(n, cfg.train.batch_size)
        cycle, j = divmod(t, per_epoch)
        seed = rng.torch_seed(cfg.seed, VALID_BATCH, 0) % (2 ** 31)
        batch = next(iter(epoch_batches(n, cfg.train.batch_size, seed, cycle, start=j)))
        return batch.to(self.device)

    def arch_step(self, t: int, xt: torch.Tensor, yt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Update the alphas on a held-out batch; returns (held-out loss, correct count, batch size)."""
        xv, yv = self._inputs(self.valid_data, self._valid_indices(t),
                              rng.torch_seed(self.cfg.seed, VALID_AUGMENT, t))
        self.a_opt.zero_grad(set_to_none=True)
        self.model.train()
        if t < self.alpha_frozen_until:          # alphas fixed: only measure the held-out loss
            with torch.no_grad():
                logits = mixed_logits(self.model, xv, self.weights(t, 0))
            return F.cross_entropy(logits, yv), (logits.argmax(1) == yv).sum(), len(yv)
        if self.cfg.arch.order == 2:
            lr = self.lr_policy(t, self.total_steps)
            bufs = [self.w_opt.state.get(p, {}).get("momentum_buffer") for p in self.params]
            out = {}

            def val_loss() -> torch.Tensor:
                logits = mixed_logits(self.model, xv, self.weights(t, 0))
                out["logits"] = logits.detach()
                return F.cross_entropy(logits, yv)

            grad, loss = unrolled_alpha_grad(
                lambda: F.cross_entropy(mixed_logits(self.model, xt, self.weights(t, 0)), yt), val_loss,
                self.params, self.alpha, lr, self.cfg.optim.weight_decay, self.cfg.optim.momentum, bufs)
            logits = out["logits"]
        else:
            logits = mixed_logits(self.model, xv, self.weights(t, 0))
            loss = F.cross_entropy(logits, yv)
            grad = torch.autograd.grad(loss, [self.alpha])[0]
            loss = loss.detach()
        self.alpha.grad = grad
        self.a_opt.step()
        return loss, (logits.argmax(1) == yv).sum(), len(yv)

    def weight_step(self, t: int, xt: torch.Tensor, yt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
        """SGD on the supernet weights with the step's (fixed) op weights."""
        lr = self.lr_policy(t, self.total_steps)
        loss, correct = self._sgd_step(xt, yt, self.weights(t, 1).detach(), lr)
        return loss, correct, lr

    def _sgd_step(self, x: torch.Tensor, y: torch.Tensor, table: torch.Tensor,
                  lr: float) -> tuple[torch.Tensor, torch.Tensor]:
        for g in self.w_opt.param_groups:
            g["lr"] = lr
        self.w_opt.zero_grad(set_to_none=True)
        self.model.train()
        logits = mixed_logits(self.model, x, table)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        if self.cfg.train.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_([p for p in self.params if p.grad is not None], self.cfg.train.grad_clip)
        self.w_opt.step()
        return loss.detach(), (logits.detach().argmax(1) == y).sum()

    def tune_weights(self, table: torch.Tensor, steps: int, seed: int) -> None:
        """``steps`` SGD steps on the supernet weights with the op-weight ``table`` held fixed, at
        ``arch.projection_finetune_lr`` (null: ``optim.lr_min``, where the search's schedule ended), the
        optimizer's momentum carried on: DARTS-PT's tuning between projection decisions. Batches of the training
        half in the order of the seeded stream ``seed`` (augmented per step); nothing is checkpointed, so a
        projection that is cut off repeats identically."""
        cfg = self.cfg
        lr = cfg.projection_tune_lr()
        seed %= 2 ** 31
        table = table.detach().to(self.device)
        done, cycle = 0, 0
        while done < steps:
            for idx in epoch_batches(len(self.train_data), cfg.train.batch_size, seed, cycle, shuffle=True,
                                     drop_last=cfg.train.drop_last):
                if done >= steps:
                    break
                x, y = self._inputs(self.train_data, idx.to(self.device), rng.torch_seed(seed, rng.AUGMENT, done))
                self._sgd_step(x, y, table, lr)
                done += 1
            cycle += 1

    # -- the loop ----------------------------------------------------------------------------------------
    def fit(self, max_steps: Optional[int] = None, until: Optional[int] = None,
            on_epoch: Optional[Callable[[dict[str, Any]], None]] = None) -> list[dict[str, Any]]:
        """Train to the end (or ``max_steps`` more steps, or up to step ``until``); ``on_epoch`` gets each epoch's
        record as it is written; returns the epoch records."""
        self._on_epoch = on_epoch
        stop_at = self.total_steps if max_steps is None else min(self.total_steps, self.step + max_steps)
        if until is not None:
            stop_at = min(stop_at, until)
        records = []
        self._stop = False
        handlers = {}
        for sig in (signal.SIGINT, signal.SIGTERM):   # Ctrl-C / SIGTERM: checkpoint after the current step
            try:
                handlers[sig] = signal.signal(sig, self.request_stop)
            except ValueError:   # not in the main thread
                pass
        try:
            self._loop(stop_at, records)
        finally:
            for sig, h in handlers.items():
                signal.signal(sig, h)
        if self._stop and not self.done:
            print(f"stopped at step {self.step}/{self.total_steps}; checkpoint saved. Continue with: "
                  f"nshot train --resume {self.run_dir}")
        if self.done:
            self._write_result()
        return records

    def request_stop(self, *_: Any) -> None:
        """Ask the loop to checkpoint and return after the current step."""
        self._stop = True

    def _loop(self, stop_at: int, records: list) -> None:
        cfg = self.cfg
        spe = self.steps_per_epoch
        while self.step < stop_at and not self._stop:
            epoch, start = divmod(self.step, spe)
            t0 = time.perf_counter()
            for idx in epoch_batches(len(self.train_data), cfg.train.batch_size, cfg.seed, epoch, shuffle=True,
                                     drop_last=cfg.train.drop_last, start=start):
                t = self.step
                xt, yt = self._inputs(self.train_data, idx.to(self.device), rng.torch_seed(cfg.seed, rng.AUGMENT, t))
                vloss, vcorrect, nv = self.arch_step(t, xt, yt)
                loss, correct, lr = self.weight_step(t, xt, yt)
                a = self._acc
                a["loss"].append(float(loss)), a["vloss"].append(float(vloss))
                a["correct"] += int(correct)
                a["vcorrect"] += int(vcorrect)
                a["seen"] += len(yt)
                a["seen_valid"] += nv
                a["lr"] += lr
                self.step += 1
                if self.step % spe == 0:
                    a["seconds"] += time.perf_counter() - t0
                    records.append(self._end_epoch(epoch))
                    if self._on_epoch is not None:
                        self._on_epoch(records[-1])
                    self.save()
                    break
                if self.step >= stop_at or self._stop:
                    a["seconds"] += time.perf_counter() - t0
                    self.save()
                    break

    def _end_epoch(self, epoch: int) -> dict[str, Any]:
        """Write the epoch's record (metrics.jsonl) and return it."""
        a, n = self._acc, len(self._acc["loss"])
        probs = self.probs().cpu()
        arch = self.derive(probs)
        record = {"epoch": epoch + 1, "step": self.step, "loss": sum(a["loss"]) / max(n, 1),
                  "acc": 100.0 * a["correct"] / max(a["seen"], 1), "valid_loss": sum(a["vloss"]) / max(n, 1),
                  "valid_acc": 100.0 * a["vcorrect"] / max(a["seen_valid"], 1), "lr": a["lr"] / max(n, 1),
                  "seconds": a["seconds"], "arch": arch,
                  "alphas": [[round(float(v), 6) for v in row] for row in probs]}
        if self.method == "snas":
            record["tau"] = self.tau(epoch)
        truth = self.truth(arch)
        if truth is not None:
            record["truth"] = truth
        self.metrics.write(record)
        self._acc = _fresh()
        return record

    def truth(self, arch: str) -> Optional[float]:
        """The ground truth (%) of ``arch`` in the space's benchmark table for the run's dataset (NB201 on
        CIFAR-10: ``cifar10/test``), when a table is configured; else None."""
        return float(self.table.query(arch, self.truth_metric)) if self.table is not None else None

    def derive(self, weights: torch.Tensor) -> str:
        """The architecture an (edges x ops) op-weight table stands for, by the space's derivation rule
        (:meth:`~nshot.spaces.base.SearchSpace.derive_from_weights`; NB201: the strongest op per edge, ``none``
        included; DARTS space: two strongest non-``none`` inputs per node)."""
        return self.space.derive_from_weights(weights.detach().cpu().double().numpy())

    def derived(self) -> str:
        """The architecture of the current alphas (their softmax within the mask)."""
        return self.derive(self.probs())

    def _write_result(self) -> None:
        arch = self.derived()
        data = {"num_classes": self.train_data.num_classes, "in_channels": self.train_data.x.shape[1]}
        # the stand-alone network of the space's evaluation protocol (NB201: C 16, N 5; DARTS: C 36, 20 cells)
        result = {"method": self.method, "order": self.cfg.arch.order, "space": self.space_name, "arch": arch,
                  "params": self.space.num_params(arch, **data), "flops": self.space.flops(arch, **data),
                  "step": self.step}
        truth = self.truth(arch)
        if truth is not None:
            result["truth"] = {"metric": self.truth_metric, "value": truth}
        atomic_write_bytes(self.files.result, (json.dumps(result, indent=1) + "\n").encode())

    @property
    def done(self) -> bool:
        return self.step >= self.total_steps


def _fresh() -> dict[str, Any]:
    return {"loss": [], "vloss": [], "correct": 0, "vcorrect": 0, "seen": 0, "seen_valid": 0, "lr": 0.0,
            "seconds": 0.0}


def _cfg_dict(cfg: Config) -> dict[str, Any]:
    from ..config import to_dict
    return to_dict(cfg)


def truth_table(cfg: Config) -> tuple[Any, Optional[str]]:
    """(table, metric) of the run's ground truth: the space's benchmark (:func:`nshot.benchmarks.
    default_for_space`) read from ``arch.table`` or the benchmark's default location (NB201: ``NSHOT_NB201_CSV``),
    and its metric for ``data.name``. (None, None) when the space or the dataset has no ground truth or no table
    is named at all; an explicit ``arch.table`` that cannot apply, or a named table that is missing, is refused."""
    from .. import benchmarks
    path = cfg.arch.table
    try:
        bench_name = benchmarks.default_for_space(cfg.space.name)
    except benchmarks.BenchmarkError as e:
        if path:
            raise ValueError(f"arch.table = {path}: {e}") from None
        return None, None
    metric = benchmarks.base.dataset_metrics(bench_name).get(cfg.data.name)
    if metric is None:
        if path:
            raise ValueError(f"arch.table = {path}: benchmark {bench_name} has no ground truth for data.name = "
                             f"{cfg.data.name} (it has {', '.join(benchmarks.base.dataset_metrics(bench_name))})")
        return None, None
    try:
        return benchmarks.get(bench_name, path), metric
    except benchmarks.BenchmarkNotConfigured:      # no table named anywhere; one named but missing raises
        return None, None
