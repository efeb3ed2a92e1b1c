"""The supernet training loop: each step's plan (sampler x lr policy x momentum grouping, :mod:`.plan`) run by
an executor, writing a resumable run directory (:class:`nshot.run.RunDir`)::

    RUN/config.yaml        the resolved config
    RUN/env.json           versions, git commit, device (one entry per start or resume)
    RUN/metrics.jsonl      one line per epoch: loss, acc, lr, seconds, images/s
    RUN/checkpoints/       last.pt (+ prev.pt), checksummed and written atomically

Every random draw is a function of (seed, step) (see :mod:`nshot.train.rng`), so resuming from a
checkpoint continues exactly as an uninterrupted run would.
"""
from __future__ import annotations

import contextlib
import json
import signal
import time
import warnings
from pathlib import Path
from typing import Any, Optional, Union

import torch

from .. import spaces
from ..config import Config, ConfigError, dump_config, to_dict
from ..data import ImageData, epoch_batches, num_batches
from ..run import RunDir, RunKind, atomic_write_bytes, check_supernet_state
from ..run.build import build_model, load_data, space_shape
from ..run.rundir import SUPERNET_FORMAT
from . import distributed
from .checkpoint import load_checkpoint_from, save_checkpoint
from .env import environment, resolve_device
from .lr import build_lr_policy
from .metrics import MetricsLog
from .objectives import build_objective
from .optim import build_momentum, fill_unused_grads, grad_momentum_cosine
from .plan import StepPlan, StepPlanner, SubSpace, apply_plan
from .progress import Progress
from .complexity import get_complexity
from .sampler import build_sampler
from .static import StaticStep, resolve_executor, static_unsupported

FORMAT_VERSION = SUPERNET_FORMAT   # re-exported: the supernet checkpoint format (nshot.run.rundir)

# Keys a resume may change (`nshot train --resume RUN optim.lr=...`): they do not change what the checkpoint
# holds (shapes, data, random streams, optimizer buffers), only how training goes on from it.
RESUME_OVERRIDABLE = ("optim.lr", "optim.lr_min", "train.grad_clip", "train.nonfinite",
                      "train.checkpoint_every_steps", "train.log_every_steps", "run.progress", "run.tensorboard",
                      "threads", "train.executor")


from ..errors import RunDirError  # noqa: E402  (re-exported: nshot.train.trainer.RunDirError)

# build_model, load_data, space_shape live in nshot.run.build (shared with scoring); re-exported here
__all__ = ["FORMAT_VERSION", "RESUME_OVERRIDABLE", "RunDirError", "Trainer", "build_model", "load_data",
           "space_shape", "steps_per_epoch"]


def steps_per_epoch(cfg: Config, train_images: int) -> int:
    """Optimizer steps in one epoch over ``train_images`` images; ValueError if not even one batch."""
    spe = num_batches(train_images, cfg.train.batch_size, cfg.train.drop_last)
    if spe < 1:
        raise ValueError(f"training split has {train_images} images, fewer than one batch of "
                         f"{cfg.train.batch_size} with drop_last")
    return spe


def resolve_train_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> ``bf16`` autocast on a CUDA device that supports it, else ``fp32``."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    return precision


CPU_CHANNELS_LAST_WARNING = (
    "train.channels_last=true on CPU: faster (1.3-1.5x per step), but torch 2.13.0's CPU backward of 1x1 stride-2 "
    "convolutions with 2-6 input channels in channels_last corrupts the heap (crash or silent damage); nshot's "
    "CPU default is off for that reason (docs/results.md, 'channels_last on CPU')")

class Trainer:
    """Trains a supernet as ``cfg`` says, in ``run_dir``. Use :meth:`create` or :meth:`resume`."""

    def __init__(self, cfg: Config, run_dir: Union[str, Path], data: Optional[tuple[ImageData, ImageData]] = None,
                 subspace: Optional[SubSpace] = None):
        """``subspace`` (mask, schedule start, salt, MS exclusions) makes this the trainer of one few-shot
        sub-supernet (see :mod:`nshot.train.fewshot`)."""
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.files = RunDir(self.run_dir)
        self.subspace = subspace if subspace is not None else SubSpace()
        self.resume_hint = self.run_dir   # the directory a user resumes (a few-shot run's top directory)
        self.device = distributed.local_device(resolve_device(cfg.device))
        self.dist = distributed.init(self.device)   # torchrun: join the group (every rank, before anything is written)
        self._paths_checked = not self.dist.enabled
        self._stop_flags: Optional[torch.Tensor] = None   # any rank's stop request, from the last step's all-reduce
        if cfg.threads is not None:
            torch.set_num_threads(cfg.threads)
        self.space = spaces.for_config(cfg)
        self.train_data, self.eval_data = data if data is not None else load_data(cfg)
        self.train_data = self.train_data.to(self.device)
        in_channels = self.train_data.x.shape[1]
        self.model = build_model(cfg, self.train_data.num_classes, in_channels, self.subspace.mask,
                                 init_salt=self.subspace.salt or 0).to(self.device)
        self.precision = resolve_train_precision(cfg.train.precision, self.device)
        self.channels_last = (cfg.train.channels_last if cfg.train.channels_last is not None
                              else self.device.type == "cuda")
        if self.channels_last:
            if self.device.type == "cpu":
                warnings.warn(CPU_CHANNELS_LAST_WARNING, RuntimeWarning, stacklevel=2)
            self.model.to(memory_format=torch.channels_last)
        self.objective = build_objective(cfg, self.model, self.train_data, self.device)
        self.objective.dist = self.dist
        self.objective.autocast = self._autocast
        self.params = [p for p in self.model.parameters() if p.requires_grad] + self.objective.parameters()
        self.sampler = build_sampler(cfg.train.sampler, self.space, cfg.sampler.connected_only,
                                     mask=self.subspace.mask)
        self.complexity = get_complexity(self.space, cfg.calr.complexity, **self.space.complexity_shape(
            space_shape(cfg, self.train_data.num_classes, in_channels)))
        self.lr_policy = build_lr_policy(cfg, self.complexity)
        self.optimizer, self.grouping = build_momentum(cfg, self.params, self.space, self.complexity,
                                                       self.subspace.grouping_exclusions())
        distributed.check_batches(len(self.train_data), cfg.train.batch_size, cfg.train.drop_last, self.dist)
        self.steps_per_epoch = steps_per_epoch(cfg, len(self.train_data))
        self.total_steps = cfg.train.epochs * self.steps_per_epoch
        self.planner = StepPlanner(cfg.seed, self.sampler, self.lr_policy, self.grouping, self.total_steps,
                                   self.subspace, cfg.train.micro_batches)
        self.step = 0
        self._acc = self._fresh_accumulators()
        self.metrics = MetricsLog(self.files.metrics, tensorboard=cfg.run.tensorboard)
        self._stop_requested = False
        self._keep_previous = True   # False right after resuming from prev.pt: never rotate a damaged last.pt over it
        self._buffers = list(self.model.buffers())
        # the executor of a step's plan: eager (only the path's ops run) or static (one fixed graph; CUDA default)
        self.executor = resolve_executor(cfg.train.executor, self.device, static_unsupported(self))
        self.static: Optional[StaticStep] = StaticStep(self) if self.executor == "static" else None

    # -- construction ------------------------------------------------------------------------------------
    @classmethod
    def create(cls, cfg: Config, run_dir: Union[str, Path], data=None,
               subspace: Optional[SubSpace] = None) -> "Trainer":
        """Start a new run in ``run_dir`` (which must not already hold a run)."""
        run_dir = Path(run_dir)
        dev = distributed.local_device(resolve_device(cfg.device))
        info = distributed.init(dev)   # torchrun: every rank joins before rank 0 can write anything
        taken = RunDir(run_dir).is_taken()
        if distributed.any_rank(taken and info.is_main, info, dev):   # rank 0 decides for all
            raise RunDirError(f"{run_dir} already holds a run; resume it with `nshot train --resume {run_dir}` "
                              "or choose another run.dir")
        trainer = cls(cfg, run_dir, data, subspace)  # loads data and builds the model before anything is written
        if trainer.dist.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            trainer._record_env("start")
            dump_config(cfg, trainer.files.config)   # last: a folder with config.yaml is a run that can be resumed
        distributed.barrier(trainer.dist)
        return trainer

    @classmethod
    def resume(cls, run_dir: Union[str, Path], data=None, overrides: Optional[list[str]] = None,
               fewshot_node: bool = False) -> "Trainer":
        """Continue the run in ``run_dir`` from its last checkpoint.

        A run stopped before its first checkpoint (``config.yaml`` written, no ``last.pt``/``prev.pt``) starts
        again from step 0 with its own config: nothing it trained was kept. ``overrides`` (``key=value``) may
        change the keys of :data:`RESUME_OVERRIDABLE` (e.g. a lower ``optim.lr`` after a non-finite loss); the
        run then no longer equals an uninterrupted one, and ``config.yaml``/``env.json`` record the change.
        """
        overrides = list(overrides or [])
        for item in overrides:
            key = item.split("=", 1)[0].strip()
            if key not in RESUME_OVERRIDABLE:
                raise ConfigError(f"override {item!r}: a resume may only change {', '.join(RESUME_OVERRIDABLE)}")
        files = RunDir(run_dir)
        run_dir, cfg_path = files.path, files.config
        files.require_run()
        if not fewshot_node and files.kind() is not RunKind.ONE_SHOT:
            raise RunDirError(f"{run_dir} belongs to a {files.kind().value} run: resume the whole run with "
                              f"`nshot train --resume {files.top()}`")
        if not files.has_checkpoint():
            cfg = files.load_config(overrides)
            trainer = cls(cfg, run_dir, data)
            if trainer.dist.is_main:
                trainer.metrics.truncate_after(0)
            if overrides and trainer.dist.is_main:
                dump_config(cfg, cfg_path)
            trainer._record_env("restart (no checkpoint yet)", overrides)
            return trainer
        state, source = load_checkpoint_from(files.checkpoints)
        cfg = check_supernet_state(state, source, overrides)
        trainer = cls(cfg, run_dir, data, SubSpace.from_state(state))
        trainer.load_state(state)
        trainer._keep_previous = source.name != RunDir.PREV
        if trainer.dist.is_main:
            trainer.metrics.truncate_after(trainer.step)
        if overrides and trainer.dist.is_main:
            dump_config(cfg, cfg_path)
        trainer._record_env("resume", overrides)
        return trainer

    def _record_env(self, event: str, overrides: Optional[list[str]] = None) -> None:
        if not self.dist.is_main:
            return
        path = self.files.env
        try:
            entries = json.loads(path.read_text()) if path.exists() else []
        except ValueError:   # not expected (written atomically); never let it block a resume
            entries = []
        if not isinstance(entries, list):
            entries = []
        entry = {"event": event, "step": self.step, "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                 "seed": self.cfg.seed, **environment(self.device)}
        if overrides:
            entry["overrides"] = list(overrides)
        entries.append(entry)
        atomic_write_bytes(path, json.dumps(entries, indent=1).encode())

    # -- state ---------------------------------------------------------------------------------------------
    def _fresh_accumulators(self) -> dict[str, Any]:
        return {"loss": 0.0, "correct": 0, "seen": 0, "lr_sum": 0.0, "steps": 0, "seconds": 0.0,
                "path_seen": 0, "cos_sum": 0.0, "cos_n": 0, "q_loss": [0.0] * 5, "q_n": [0] * 5, "skipped": 0}

    def state_dict(self) -> dict[str, Any]:
        """Everything a checkpoint holds: format, config, step, model, optimizer, epoch accumulators, sub-space and
        objective state."""
        if self.static is not None and self.static.stepped:
            self.static.export_state()   # the static step's momentum buffers, in torch's optimizer format
        return {"format": SUPERNET_FORMAT, "kind": "supernet", "space": self.cfg.space.name,
                "config": to_dict(self.cfg), "step": self.step, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "epoch_accumulators": dict(self._acc),
                **self.subspace.state(), "objective": self.objective.state_dict()}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (a checkpoint of this run's space) into this trainer."""
        if state.get("space") != self.cfg.space.name:
            raise RunDirError(f"checkpoint is for space {state.get('space')!r}, config says {self.cfg.space.name!r}")
        self.model.load_state_dict(state["model"])
        self.objective.load_state_dict(state.get("objective") or {})
        self.optimizer.load_state_dict(state["optimizer"])
        if self.static is not None:
            self.static.import_state()
        self.step = int(state["step"])
        self._acc = dict(state["epoch_accumulators"])

    def save(self) -> None:
        """Checkpoint the current state; refuses (FloatingPointError) to save non-finite weights."""
        finite = torch.stack([torch.isfinite(p).all() for p in self.params]).all()
        if not bool(finite):
            raise FloatingPointError(
                f"non-finite weights at step {self.step} (a non-finite gradient?); not saved: the last good "
                f"checkpoint is in {self.files.checkpoints}; resume with a lower lr, e.g. "
                f"`nshot train --resume {self.resume_hint} optim.lr={self.cfg.optim.lr / 2:g}`")
        if not self.dist.is_main:   # one writer: rank 0 (all ranks hold the same state)
            return
        try:
            save_checkpoint(self.files.checkpoints, self.state_dict(), keep_previous=self._keep_previous)
        except OSError as exc:
            raise OSError(exc.errno, f"checkpoint at step {self.step} not saved: {exc.strerror or exc}; the "
                          f"previous checkpoints in {self.files.checkpoints} are intact: free space (or fix "
                          f"the cause) and continue with `nshot train --resume {self.resume_hint}`") from None
        self._keep_previous = True

    # -- training ------------------------------------------------------------------------------------------
    @property
    def schedule_start(self) -> int:
        """The step this (sub-)supernet's LR schedule starts at."""
        return self.subspace.start

    def step_plan(self, t: int) -> tuple[list[str], Optional[int]]:
        """The architectures trained at iteration ``t`` and their momentum group (None with one group)."""
        return self.planner.paths(t)

    def plan(self, t: int) -> StepPlan:
        """Everything step ``t`` needs from the plug-ins (:class:`~nshot.train.plan.StepPlanner`): paths,
        momentum group, optimizer lr, loss scales, micro-batches. A pure function of ``t``: every executor runs
        the same plan."""
        return self.planner(t)

    def train_step(self, x_uint8: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
        """One optimizer step at iteration ``self.step``.

        Returns device tensors (mean loss over paths, correct count, per-path losses, grad-momentum cosine or
        None) plus the lr and the paths' complexity quintiles, so the loop syncs with the device only when it logs.

        With ``train.nonfinite: skip`` a step whose loss or gradient norm is not finite makes no update (its
        gradients are dropped and BN buffers restored) and is returned with ``skipped: True``; that check costs
        one host-device sync per step.
        """
        if self.static is not None:
            return self.static.step(x_uint8, y)
        cfg, t = self.cfg, self.step
        skip_bad = cfg.train.nonfinite == "skip"
        plan = self.plan(t)
        archs = plan.archs
        apply_plan(self.optimizer, plan)
        self.optimizer.zero_grad(set_to_none=True)
        self.model.train()
        saved_buffers = [b.clone() for b in self._buffers] if skip_bad else []
        saved_objective = self.objective.snapshot() if skip_bad else None
        path_losses, correct = self._forward_backward(x_uint8, y, plan, t)
        if cfg.optim.update_unused:
            fill_unused_grads(self.params)
        grads = [p for p in self.params if p.grad is not None]
        grad_norm = None
        if cfg.train.grad_clip is not None:
            grad_norm = torch.nn.utils.clip_grad_norm_(grads, cfg.train.grad_clip)
        elif skip_bad and grads:
            grad_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in grads]))
        quintiles = [self.complexity.quintile(a) for a in archs] if cfg.diagnostics.loss_by_quintile else []
        out = {"loss": path_losses.mean(), "path_losses": path_losses, "correct": correct, "lr": plan.logged_lr,
               "quintiles": quintiles, "cos": None, "paths": len(archs), "batch": len(y), "t": t, "skipped": False}
        if skip_bad:
            ok = torch.isfinite(path_losses).all()
            if grad_norm is not None:
                ok = ok & torch.isfinite(grad_norm)
            if not bool(ok):                      # host sync, only in skip mode
                self.optimizer.zero_grad(set_to_none=True)
                for b, saved in zip(self._buffers, saved_buffers):
                    b.copy_(saved)
                self.objective.restore(saved_objective)
                self.step += 1
                out["skipped"] = True
                return out
        every = cfg.diagnostics.grad_momentum_cos_every
        out["cos"] = grad_momentum_cosine(self.optimizer) if every and t % every == 0 else None
        self.optimizer.step()
        self.step += 1
        return out

    def _forward_backward(self, x_uint8: torch.Tensor, y: torch.Tensor, plan: StepPlan,
                          t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The objective over the global batch: this rank's slice (torchrun), in the plan's micro-batches,
        each loss weighted by its share of the global batch; gradients summed over ranks. Returns the global
        batch's per-path mean losses and correct count (identical on every rank)."""
        n, info, archs = len(y), self.dist, plan.archs
        if not self._paths_checked:
            distributed.check_same(archs, info)
            self._paths_checked = True
        inputs = self.objective.inputs(x_uint8, t)
        if self.channels_last:
            inputs = [v.contiguous(memory_format=torch.channels_last) for v in inputs]
        mine = distributed.shard_slice(n, info.rank, info.world)
        local = mine.stop - mine.start
        micro = min(plan.micro_batches, max(local, 1))
        parts = [distributed.shard_slice(local, j, micro) for j in range(micro)]
        parts = [slice(mine.start + p.start, mine.start + p.stop) for p in parts]
        losses, correct = self.objective.run(inputs, y, archs, plan.scales, parts, n)
        if info.enabled:
            distributed.allreduce_grads(self.params, info)
            stop = torch.tensor([1.0 if self._stop_requested else 0.0], device=losses.device, dtype=torch.float64)
            stats = torch.cat([losses.double() * local, correct.double().view(1), stop])
            stats = distributed.all_reduce_sum(stats, info)
            losses, correct = (stats[:-2] / n).float(), stats[-2].round().long()
            self._stop_flags = stats[-1]   # read at the next step boundary where the loop looks (no sync here)
        return losses, correct

    def _autocast(self):
        """The forward passes' autocast context (bf16) or a no-op (fp32)."""
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _any_rank_stopping(self) -> bool:
        """Whether any rank had been asked to stop when this step began (carried by the step's all-reduce, so
        every rank sees the same answer at the same step)."""
        stop = self._stop_flags is not None and bool(self._stop_flags > 0)   # one host read
        self._stop_requested = self._stop_requested or stop
        return stop

    def _end_epoch(self, epoch: int) -> dict[str, Any]:
        a = self._acc
        record = {"epoch": epoch + 1, "step": self.step, "loss": a["loss"] / max(a["steps"], 1),
                  "acc": 100.0 * a["correct"] / max(a["path_seen"], 1), "lr": a["lr_sum"] / max(a["steps"], 1),
                  "seconds": a["seconds"], "images_per_s": a["seen"] / max(a["seconds"], 1e-9)}
        if a["cos_n"]:
            record["grad_momentum_cos"] = a["cos_sum"] / a["cos_n"]
        if self.cfg.diagnostics.loss_by_quintile:
            record["loss_by_quintile"] = [s / n if n else None for s, n in zip(a["q_loss"], a["q_n"])]
        if self.cfg.train.nonfinite == "skip":
            record["skipped_steps"] = a.get("skipped", 0)
        self._acc = self._fresh_accumulators()
        return record

    def _accumulate(self, outs: list[dict[str, Any]], seconds: float, seen: int) -> None:
        """Fold a batch of step outputs into the epoch accumulators (one device sync for all of them).

        ``train.nonfinite: stop``: a non-finite loss among them raises FloatingPointError here, before the
        caller can save a checkpoint, so the bad steps (whose updates are in the weights in memory) are
        never saved; the run's last checkpoint is the last good state.
        """
        a = self._acc
        a["seen"] += seen
        a["seconds"] += seconds
        flags = [bool(o["skipped"]) for o in outs]   # static step: device flags, read here (a log boundary)
        a["skipped"] = a.get("skipped", 0) + sum(flags)
        outs = [o for o, bad in zip(outs, flags) if not bad]
        if not outs:
            return
        losses = torch.stack([o["loss"] for o in outs])
        finite = torch.isfinite(losses)
        if not finite.all():
            first = outs[int((~finite).nonzero()[0, 0])]["t"]
            raise FloatingPointError(
                f"non-finite loss at step {first + 1} (iteration {first}); the last good checkpoint is in "
                f"{self.files.checkpoints} (steps after it are never saved); resume with a lower lr, e.g. "
                f"`nshot train --resume {self.resume_hint} optim.lr={self.cfg.optim.lr / 2:g}`, or set "
                "train.nonfinite=skip to skip such steps")
        for value in losses.tolist():  # one by one: the same sum however flushes fall
            a["loss"] += value
        a["correct"] += int(torch.stack([o["correct"] for o in outs]).sum())
        a["steps"] += len(outs)
        for o in outs:
            a["lr_sum"] += o["lr"]
            a["path_seen"] += o["batch"] * o["paths"]
            if o["cos"] is not None:
                cos = float(o["cos"])
                if cos == cos:   # NaN: no parameter had both a gradient and a buffer (the static step's "None")
                    a["cos_sum"] += cos
                    a["cos_n"] += 1
            if o["quintiles"]:
                for q, v in zip(o["quintiles"], o["path_losses"].tolist()):
                    a["q_loss"][q] += v
                    a["q_n"][q] += 1

    def _epoch_indices(self, epoch: int, start: int) -> list[torch.Tensor]:
        """The index batches of ``epoch`` from batch ``start`` on, moved to the device in one copy (one per
        step would make the host wait for the device every step on CUDA)."""
        cfg = self.cfg
        batches = list(epoch_batches(len(self.train_data), cfg.train.batch_size, cfg.seed, epoch, shuffle=True,
                                     drop_last=cfg.train.drop_last, start=start))
        if not batches:
            return []
        return list(torch.cat(batches).to(self.device).split([len(b) for b in batches]))

    def request_stop(self, *_: Any) -> None:
        """Ask the loop to checkpoint and return at the next step boundary (SIGINT/SIGTERM handler)."""
        self._stop_requested = True

    def fit(self, max_steps: Optional[int] = None, until: Optional[int] = None) -> list[dict[str, Any]]:
        """Train until the configured epochs are done (or ``max_steps`` more steps); returns epoch records."""
        cfg = self.cfg
        spe = self.steps_per_epoch
        stop_at = self.total_steps if max_steps is None else min(self.total_steps, self.step + max_steps)
        if until is not None:
            stop_at = min(stop_at, until)
        records: list[dict[str, Any]] = []
        progress = Progress(self.total_steps, self.step, cfg.run.progress if self.dist.is_main else "none",
                            desc="train", log_every=cfg.train.log_every_steps)
        handlers = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                handlers[sig] = signal.signal(sig, self.request_stop)
            except ValueError:  # not in the main thread
                pass
        if self.static is not None and not self.static.stepped:
            self.static.import_state()   # optimizer state set since this executor was built (few-shot inheritance)
        try:
            stopped = False
            while self.step < stop_at and not stopped:
                epoch, start = divmod(self.step, spe)
                t_epoch = time.perf_counter()
                pending, pending_seen = [], 0
                for idx in self._epoch_indices(epoch, start):
                    pending.append(self.train_step(self.train_data.x[idx], self.train_data.y[idx]))
                    pending_seen += len(idx)
                    boundary = self.step % spe == 0
                    log_now = self.step % cfg.train.log_every_steps == 0
                    ckpt_now = cfg.train.checkpoint_every_steps and self.step % cfg.train.checkpoint_every_steps == 0
                    stop_now = self._stop_requested
                    if self.dist.enabled:   # ranks stop together: the flag travelled with the step's all-reduce
                        # read every step on CPU (gloo is synchronous anyway); on CUDA where the loop syncs
                        look = self.device.type != "cuda" or bool(boundary or log_now or ckpt_now)
                        stop_now = look and self._any_rank_stopping()
                    stopping = self.step >= stop_at or stop_now
                    stopped = stop_now
                    if boundary or log_now or ckpt_now or stopping:
                        now = time.perf_counter()
                        self._accumulate(pending, now - t_epoch, pending_seen)
                        t_epoch = now
                        a = self._acc
                        progress.update(len(pending), {"epoch": epoch + 1,
                                                       "loss": f"{a['loss'] / max(a['steps'], 1):.4f}",
                                                       "lr": f"{pending[-1]['lr']:.3e}"})
                        pending, pending_seen = [], 0
                    if boundary:
                        record = self._end_epoch(epoch)
                        if self.dist.is_main:
                            self.metrics.write(record)
                        records.append(record)
                        if progress.mode == "bar":   # off a terminal: the step lines only (metrics.jsonl has epochs)
                            progress.write(f"epoch {record['epoch']}/{cfg.train.epochs} loss {record['loss']:.4f} "
                                           f"acc {record['acc']:.2f} lr {record['lr']:.3e} "
                                           f"{record['images_per_s']:.0f} img/s")
                    if boundary or ckpt_now or stopping:
                        self.save()
                    if stopping:
                        break
        finally:
            progress.close()
            for sig, h in handlers.items():
                signal.signal(sig, h)
        distributed.barrier(self.dist)   # rank 0's checkpoint is on disk before any rank returns
        if self._stop_requested and self.step < self.total_steps:
            progress.write(f"stopped at step {self.step}/{self.total_steps}; checkpoint saved. "
                           f"Continue with: nshot train --resume {self.resume_hint}")
        return records

    @property
    def done(self) -> bool:
        return self.step >= self.total_steps

    @property
    def interrupted(self) -> bool:
        """Whether a signal (Ctrl-C, SIGTERM, or another rank's) stopped the last :meth:`fit` early."""
        return bool(self._stop_requested)
