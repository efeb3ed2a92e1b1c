"""The static training step: the same fixed graph every step, the step's plan entering as tensors.

The eager step (``Trainer.train_step``) runs only the sampled path: Python walks the edges and launches the
kernels of the chosen ops, so on a GPU the step is bound by launches, not arithmetic. The static step runs
*every* candidate op of every decision, weighted by the path's one-hot table (``forward_weighted``, see
:mod:`nshot.nn.weighted`); paths, learning rate, loss scales and momentum group are device tensors copied into
fixed buffers, so the whole step -- forward, backward, clipping and the optimizer update -- is one graph that
CUDA captures once per batch size (``torch.cuda.CUDAGraph``) and replays.

Semantics equal the eager step where they are defined (tested on CPU, where no graph is captured):

* **off-path parameters** get exactly zero gradient (their outputs are multiplied by 0); the update is
  *masked*: a parameter off the step's paths (its op not chosen, or on a dead edge) is not updated at all --
  no weight decay, no momentum step, its momentum buffer untouched and not created (``optim.update_unused:
  false``, decision 1); with ``update_unused: true`` every parameter is updated, as eager's zero gradients do;
* **momentum buffers** are created on a parameter's first update (torch's ``buf = d``), one set per momentum
  group (MS, ``ms_sgd``): the group of the step selects the buffer;
* **CaLR**: the step's lr (single path) or loss scales (several paths, decision 4) come from the host plan;
* **clipping** scales by ``min(1, max_norm / (norm + 1e-6))`` over all gradients (off-path ones are zero);
* ``train.nonfinite: skip`` drops a bad step on the device (no update, no host sync); ``stop`` raises at the
  next log boundary as in eager mode;
* **several paths** (FairNAS) run as one forward of the batch repeated per path, each path's BN with its own
  batch statistics; their losses (times their scales) are summed: one backward, one update.

Parameters and gradients live in one flat buffer each (the modules' parameters become views of it), so the
update is a handful of kernels whatever the number of tensors. The optimizer object keeps torch's format:
the state is exported into it before a checkpoint and imported from it after a load, so checkpoints of the two
executors are interchangeable.

The plan is the one the eager step runs (:class:`~nshot.train.plan.StepPlan`, made by the trainer's planner),
so this executor knows no method either: it reads paths, lr, loss scales and the momentum group from the plan,
and the optimizer's momentum groups through its :class:`~nshot.train.ms_sgd.GroupedMomentum` interface.

Not supported (``train.executor: auto`` then uses the eager step): objectives without a static loss (only
``supervised`` has one: ``static_loss = True``), optimizers whose update is not SGD's (``OptimizerEntry.static``),
supernets without a weighted forward, BN with running statistics, ``torchrun`` and ``micro_batches > 1``.

Pi-NAS's pair is not batched (issue 19 item 2, open). Its two *student* forwards could run as one weighted
forward (the EMA changes only the teacher, so both read the same student weights), but its *teacher* keys
cannot without changing the method: key A is computed after the EMA on path A's modules and before the EMA on
path B's, and the shared stem, reductions and head get both updates (the reference order, decision 12), so
keys A and B read different teacher weights. A static Pi-NAS step would also need the EMA, the shuffle-BN
order and the queue inside the captured graph; with no GPU lent yet to measure what it would save, the
Pi-NAS step stays eager on every device.
"""
from __future__ import annotations

import contextlib
from typing import Any, Optional

import torch
import torch.nn.functional as F

from .optim import optimizer_entry
from .plan import StepPlan, apply_plan

__all__ = ["StaticStep", "StepPlan", "resolve_executor", "static_unsupported"]


def static_unsupported(trainer: Any) -> Optional[str]:
    """Why ``trainer``'s run cannot use the static step (None if it can)."""
    cfg = trainer.cfg
    if not getattr(trainer.objective, "static_loss", False):
        return f"train.objective={cfg.train.objective} has no static step (only supervised)"
    if not hasattr(trainer.model, "forward_weighted"):
        return f"space {cfg.space.name!r} has no weighted forward"
    if cfg.model.bn_track_running_stats:
        return ("model.bn_track_running_stats=true: BN running statistics of ops off the path would change "
                "in a static step")
    if not optimizer_entry(cfg.train.optimizer).static:
        return (f"train.optimizer={cfg.train.optimizer} is not an SGD-type optimizer (its OptimizerEntry has "
                "static=False): the static step computes only SGD's update")
    if trainer.dist.enabled:
        return "torchrun (several processes) is not supported by the static step"
    if cfg.train.micro_batches != 1:
        return "train.micro_batches > 1 is not supported by the static step"
    return None


def resolve_executor(setting: str, device: torch.device, reason: Optional[str]) -> str:
    """``auto`` -> ``static`` on CUDA when supported, else ``eager``; an explicit ``static`` that cannot run is
    refused with the reason."""
    if setting == "static":
        if reason is not None:
            from ..config import ConfigError
            raise ConfigError(f"train.executor=static: {reason}; use train.executor=eager (or auto)")
        return "static"
    if setting == "auto":
        return "static" if device.type == "cuda" and reason is None else "eager"
    return "eager"


class StaticStep:
    """Executes a :class:`~nshot.train.trainer.Trainer`'s step plans as one fixed graph (captured on CUDA)."""

    WARMUP = 3   # eager iterations on a side stream before a capture (cuDNN/cuBLAS set-up; state restored after)

    def __init__(self, trainer: Any, capture: Optional[bool] = None):
        self.tr = trainer
        model, dev = trainer.model, trainer.device
        self.model, self.device = model, dev
        self.capture = dev.type == "cuda" if capture is None else capture
        self.params: list[torch.nn.Parameter] = list(trainer.params)
        names = {id(p): n for n, p in model.named_parameters()}
        choice = model.choice_params()
        some_arch = trainer.plan(0).archs[0]
        self.decisions = len(model.path_weights(some_arch))
        self.choices = len(model.path_weights(some_arch)[0])
        self.paths = len(trainer.plan(trainer.step).archs)
        always = self.decisions * self.choices   # index of the always-on slot (shared parameters)
        seg = [choice[names[id(p)]][0] * self.choices + choice[names[id(p)]][1]
               if id(p) in names and names[id(p)] in choice else always for p in self.params]
        numels = [p.numel() for p in self.params]
        n = sum(numels)
        # one flat buffer for the parameters and one for their gradients; the modules' parameters become views
        self.flat = torch.empty(n, device=dev, dtype=torch.float32)
        self.grad = torch.zeros(n, device=dev, dtype=torch.float32)
        self.offsets = []
        off = 0
        for p, k in zip(self.params, numels):
            if p.dtype != torch.float32:
                raise TypeError(f"the static step needs float32 parameters, got {p.dtype}")
            view = self.flat.as_strided(p.shape, p.stride(), off)
            view.copy_(p.detach())
            p.data = view
            p.grad = self.grad.as_strided(p.shape, p.stride(), off)
            self.offsets.append(off)
            off += k
        self.numels = numels
        self.param_seg = torch.tensor(seg, device=dev, dtype=torch.long)
        self.elem_param = torch.repeat_interleave(torch.arange(len(self.params), device=dev),
                                                  torch.tensor(numels, device=dev))
        opt = trainer.optimizer
        pg = opt.param_groups[0]
        self.momentum, self.nesterov = float(pg["momentum"]), bool(pg["nesterov"])
        self.dampening, self.weight_decay = float(pg.get("dampening", 0.0)), float(pg["weight_decay"])
        self.groups = opt.num_groups
        self.bufs = torch.zeros(self.groups, n, device=dev, dtype=torch.float32)
        self.inited = torch.zeros(self.groups, len(self.params), device=dev, dtype=torch.bool)
        cfg = trainer.cfg
        self.clip = cfg.train.grad_clip
        self.skip_bad = cfg.train.nonfinite == "skip"
        self.update_unused = cfg.optim.update_unused
        self.cos_every = cfg.diagnostics.grad_momentum_cos_every
        # the step's plan, as fixed device buffers the graph reads
        self.w = torch.zeros(self.paths, self.decisions, self.choices, device=dev)
        self.lr = torch.zeros((), device=dev)
        self.scales = torch.ones(self.paths, device=dev)
        self.group = torch.zeros((), device=dev, dtype=torch.long)
        self.one = torch.ones(1, device=dev)
        self._table: Optional[dict[str, Any]] = None
        self.graphs: dict[int, tuple] = {}
        self.stepped = False   # True once this executor's state is newer than the optimizer object's

    # -- plans, per epoch ----------------------------------------------------------------------------------------
    def _plans(self, t: int) -> tuple[dict[str, Any], int]:
        """The plan table of the epoch holding step ``t`` (built on the host, copied to the device once) and
        ``t``'s row in it."""
        spe = self.tr.steps_per_epoch
        start = t // spe * spe
        tab = self._table
        if tab is None or not tab["start"] <= t < tab["stop"]:
            stop = min(start + spe, max(self.tr.total_steps, start + 1))
            plans = [self.tr.plan(s) for s in range(start, stop)]
            w = torch.tensor([[self.model.path_weights(a) for a in p.archs] for p in plans], dtype=torch.float32)
            tab = {"start": start, "stop": stop, "plans": plans,
                   "w": w.to(self.device),
                   "lr": torch.tensor([p.lr for p in plans], dtype=torch.float32).to(self.device),
                   "scales": torch.tensor([p.scales for p in plans], dtype=torch.float32).to(self.device),
                   "group": torch.tensor([p.group or 0 for p in plans], dtype=torch.long).to(self.device)}
            self._table = tab
        return tab, t - tab["start"]

    # -- the step ------------------------------------------------------------------------------------------------
    def _autocast(self):
        if self.tr.precision == "bf16":   # no weight-cast cache: it must not outlive a captured region
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, cache_enabled=False)
        return contextlib.nullcontext()

    def _body(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, Optional[torch.Tensor]]:
        """Forward, backward and masked update of the step whose plan sits in the buffers (capturable: no host
        sync, no data-dependent control flow)."""
        P, b = self.paths, y.shape[0]
        self.grad.zero_()
        xr = x if P == 1 else torch.cat([x] * P)
        with self._autocast():
            logits = self.model.forward_weighted(xr, self.w)
            losses = torch.stack([F.cross_entropy(logits[p * b:(p + 1) * b], y) for p in range(P)])
        (losses * self.scales).sum().backward()
        yr = y if P == 1 else torch.cat([y] * P)
        correct = (logits.detach().argmax(1) == yr).sum()
        g, p = self.grad, self.flat
        norm = None
        if self.clip is not None:
            norm = torch.linalg.vector_norm(g)
            g.mul_(torch.clamp(self.clip / (norm + 1e-6), max=1.0))
        elif self.skip_bad:
            norm = torch.linalg.vector_norm(g)
        if self.update_unused:
            act_p = torch.ones(len(self.params), device=self.device, dtype=torch.bool)
        else:   # a parameter is on the step when its (decision, choice) is taken by any of the step's paths
            slots = torch.cat([self.w.amax(0).flatten(), self.one])
            act_p = slots[self.param_seg] > 0
        skipped = None
        if self.skip_bad:
            ok = torch.isfinite(losses).all() & torch.isfinite(norm)
            act_p = act_p & ok
            skipped = ~ok
        act = act_p[self.elem_param]
        d = g.add(p, alpha=self.weight_decay) if self.weight_decay else g
        cos = None
        if self.momentum:
            g1 = self.group.view(1)   # a device index: indexing with a tensor scalar would read it on the host
            buf_old = self.bufs.index_select(0, g1).squeeze(0)
            init_p = self.inited.index_select(0, g1).squeeze(0)
            init_e = init_p[self.elem_param]
            if self.cos_every:   # eager: over parameters with a gradient and a buffer of the group, before the step
                m = (act & init_e).to(d.dtype)
                dm = d * m
                bm = buf_old * m
                cos = (dm * bm).sum() / (torch.linalg.vector_norm(dm) * torch.linalg.vector_norm(bm) + 1e-12)
                cos = torch.where(m.sum() > 0, cos, torch.full_like(cos, float("nan")))
            buf_new = torch.where(init_e, buf_old.mul(self.momentum).add(d, alpha=1.0 - self.dampening), d)
            upd = d.add(buf_new, alpha=self.momentum) if self.nesterov else buf_new
            self.bufs.index_copy_(0, g1, torch.where(act, buf_new, buf_old).unsqueeze(0))
            self.inited.index_copy_(0, g1, (init_p | act_p).unsqueeze(0))
        else:
            upd = d
        p.copy_(torch.where(act, torch.addcmul(p, upd, -self.lr), p))
        return {"losses": losses.detach(), "correct": correct, "cos": cos, "skipped": skipped}

    def _graph(self, x: torch.Tensor, y: torch.Tensor) -> tuple:
        """The captured graph for this batch size (captured on first use; the warm-up's updates are undone)."""
        b = y.shape[0]
        if b not in self.graphs:
            sx, sy = x.clone(), y.clone()
            snap = [t.clone() for t in (self.flat, self.bufs, self.inited)]
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                for _ in range(self.WARMUP):
                    self._body(sx, sy)
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            pool = next(iter(self.graphs.values()))[0].pool() if self.graphs else None
            with torch.cuda.graph(graph, pool=pool):
                out = self._body(sx, sy)
            for t, v in zip((self.flat, self.bufs, self.inited), snap):
                t.copy_(v)
            self.graphs[b] = (graph, sx, sy, out)
        return self.graphs[b]

    def step(self, x_uint8: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
        """One training step at the trainer's iteration; returns what ``Trainer.train_step`` returns."""
        tr = self.tr
        t = tr.step
        tab, i = self._plans(t)
        plan = tab["plans"][i]
        self.w.copy_(tab["w"][i])
        self.lr.copy_(tab["lr"][i])
        self.scales.copy_(tab["scales"][i])
        self.group.copy_(tab["group"][i])
        (x,) = tr.objective.inputs(x_uint8, t)
        if tr.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        tr.model.train()
        if self.capture:
            graph, sx, sy, out = self._graph(x, y)
            sx.copy_(x)
            sy.copy_(y)
            graph.replay()
            out = {k: (v.clone() if v is not None else None) for k, v in out.items()}
        else:
            out = self._body(x, y)
        apply_plan(tr.optimizer, plan)   # as the eager step leaves it (the checkpoint's record of lr and group)
        self.stepped = True
        tr.step += 1
        every = self.cos_every
        quintiles = ([tr.complexity.quintile(a) for a in plan.archs] if tr.cfg.diagnostics.loss_by_quintile else [])
        return {"loss": out["losses"].mean(), "path_losses": out["losses"], "correct": out["correct"],
                "lr": plan.logged_lr, "quintiles": quintiles,
                "cos": out["cos"] if (every and t % every == 0) else None, "paths": len(plan.archs),
                "batch": len(y), "t": t, "skipped": out["skipped"] if out["skipped"] is not None else False}

    # -- optimizer state in torch's format ---------------------------------------------------------------------
    def _buffer_view(self, k: int, i: int) -> torch.Tensor:
        """Group ``k``'s momentum buffer of parameter ``i``, shaped (and strided) as the parameter."""
        p, row = self.params[i], self.bufs[k]
        return row.as_strided(p.shape, p.stride(), row.storage_offset() + self.offsets[i])   # offsets are absolute

    def _key(self, k: int) -> str:
        return self.tr.optimizer.buffer_key(k)

    def export_state(self) -> None:
        """Write the momentum buffers into the optimizer object (torch's format), for its ``state_dict``."""
        opt = self.tr.optimizer
        inited = self.inited.cpu()
        for i, p in enumerate(self.params):
            st = {}
            for k in range(self.groups):
                if inited[k, i]:
                    st[self._key(k)] = self._buffer_view(k, i).clone()
            opt.state.pop(p, None)
            if st:
                opt.state[p] = st

    def import_state(self) -> None:
        """Read the momentum buffers from the optimizer object (after a checkpoint was loaded into it)."""
        opt = self.tr.optimizer
        self.bufs.zero_()
        self.inited.zero_()
        for i, p in enumerate(self.params):
            st = opt.state.get(p, {})
            for k in range(self.groups):
                buf = st.get(self._key(k))
                if buf is not None:
                    self._buffer_view(k, i).copy_(buf)
                    self.inited[k, i] = True
        self.stepped = False
