"""Pi-NAS (ICCV 2021; METHODS decision 12): label-free supernet training by cross-path learning with a mean
teacher and negative samples.

One step, with the two paths A, B of :class:`~nshot.train.sampler.PairSampler` (different at every decision)
and four views v0..v3 of the batch (:func:`nshot.data.views.contrastive_view`)::

    qA = n(head(f(v0; A)))              student, path A   (the modules it runs are recorded)
    EMA teacher <- student on exactly those modules (path A's ops, shared stem/reductions/head)
    kA = n(head_t(f_t(v1; A)))          teacher, no gradient
    qB, kB likewise with v2, v3 and path B
    L = InfoNCE(qA, kB, queue) * s_A + InfoNCE(qB, kA, queue) * s_B      (s = CaLR loss scales, decision 4)
    enqueue (kA + kB) / 2  (not re-normalised)

n() is L2 normalisation; InfoNCE(q, k, Q) = -log softmax([q.k, q.Q^T] / tau)[0]. With ``pinas.bn_groups`` = G > 1
(shuffle-BN emulated on one device), the student's forwards run on G contiguous groups of each slice and the
teacher's on G groups of a seeded shuffle of it (then put back in order), so that a query and its key are
normalised with the statistics of different images, as across G devices in the reference code. Shared modules therefore get
two EMA updates per step (once per path), as in the reference code. The queue starts as random unit vectors
(seeded) and is a FIFO ring of ``pinas.queue_size`` keys. The "correct" count is contrastive top-1: the
positive key scores above every negative.

With momentum separation the step's optimizer group is path A's (decision recorded in docs/methods.md): the
two paths differ on the MS edge by construction, and one update can step one group.

Few-shot composition: a sub-supernet's pair sampler draws both paths inside its mask (a decision with one
allowed choice is shared), a child that inherits takes the parent's head, teacher (restricted to its own
modules), queue and pointer (:meth:`PiNASObjective.inherit_state`), and gradient matching matches the
gradients of the InfoNCE loss (:class:`InfoNCEGM`).
"""
from __future__ import annotations

import contextlib
import copy
from typing import Any, Optional, Sequence

import numpy as np

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config
from ..data.views import ViewConfig, contrastive_view
from ..run import rng
from .distributed import all_gather_cat, shard_slice
from .slices import mean_over_parts, resolve_parts


class ProjectionHead(nn.Module):
    """MoCo-v2 neck on pooled features: Linear -> ReLU -> Linear."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x)))


def info_nce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean InfoNCE loss of queries ``q`` (B, d) with positives ``k`` (B, d) against negatives ``queue`` (K, d),
    and the number of queries whose positive scores above all negatives (a device tensor)."""
    pos = (q * k).sum(1, keepdim=True)
    neg = q @ queue.t()
    logits = torch.cat([pos, neg], 1) / temperature
    target = torch.zeros(len(q), dtype=torch.long, device=q.device)
    return F.cross_entropy(logits, target), (logits.detach().argmax(1) == 0).sum()


def default_queue_size(train_images: int) -> int:
    """The queue length used when ``pinas.queue_size`` is null: an eighth of the training images, >= 256."""
    return max(256, train_images // 8)


class _ModuleRecorder:
    """Records which modules run a forward while active (a global forward hook: works for any space)."""

    def __init__(self):
        self.ids: set[int] = set()
        self._handle = None

    def __enter__(self) -> "_ModuleRecorder":
        self.ids = set()
        self._handle = torch.nn.modules.module.register_module_forward_hook(self._hook)
        return self

    def _hook(self, module: nn.Module, inputs: Any, output: Any) -> None:
        self.ids.add(id(module))

    def __exit__(self, *exc: Any) -> None:
        self._handle.remove()


class PiNASObjective:
    """Cross-path contrastive objective with a path-wise EMA teacher and a FIFO queue of negatives."""

    name = "pinas"

    def __init__(self, model: nn.Module, cfg: Config, mean: Sequence[float], std: Sequence[float],
                 train_images: int, device: torch.device):
        if not hasattr(model, "features") or not hasattr(model, "feature_dim"):
            raise ValueError(f"{type(model).__name__} has no features()/feature_dim: Pi-NAS needs pooled features")
        p = cfg.pinas
        self.model, self.cfg, self.mean, self.std = model, cfg, tuple(mean), tuple(std)
        self.temperature, self.ema = float(p.temperature), float(p.ema)
        self.bn_groups = int(p.bn_groups)
        self._step = 0       # the step of the last inputs(): seeds the teacher's shuffle-BN order
        self.view = ViewConfig(size=cfg.data.image_size, scale=(p.crop_scale_min, 1.0), hue=p.hue,
                               p_blur=p.p_blur).validate()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(rng.torch_seed(cfg.seed, rng.PINAS, 0))
            self.head = ProjectionHead(model.feature_dim, p.hidden_dim or model.feature_dim, p.dim).to(device)
        self.teacher = copy.deepcopy(model).requires_grad_(False)
        self.teacher_head = copy.deepcopy(self.head).requires_grad_(False)
        size = p.queue_size or default_queue_size(train_images)
        g = torch.Generator().manual_seed(rng.torch_seed(cfg.seed, rng.PINAS, 1))
        self.queue = F.normalize(torch.randn(size, p.dim, generator=g), dim=1).to(device)
        self.ptr = 0
        self.dist = None    # a DistInfo under torchrun: keys of all ranks join the queue
        self.autocast = contextlib.nullcontext   # the trainer sets bf16 autocast for the forward passes
        # student module -> (its own parameters, the teacher's matching parameters), for the path-wise EMA
        self._pairs: dict[int, tuple[list[torch.Tensor], list[torch.Tensor]]] = {}
        for student, teacher in ((model, self.teacher), (self.head, self.teacher_head)):
            for ms, mt in zip(student.modules(), teacher.modules()):
                ps = list(ms.parameters(recurse=False))
                if ps:
                    self._pairs[id(ms)] = (ps, list(mt.parameters(recurse=False)))

    # -- pieces --------------------------------------------------------------------------------------------
    def parameters(self) -> list[nn.Parameter]:
        """Trainable parameters beyond the supernet's: the student projection head."""
        return list(self.head.parameters())

    def _bn_grouped(self, net: nn.Module, head: nn.Module, x: torch.Tensor, arch: str,
                    order: Optional[torch.Tensor] = None) -> torch.Tensor:
        """head(net.features(x)) with batch statistics over ``bn_groups`` groups of ``x`` (contiguous, or of
        ``x[order]``; rows returned in the order of ``x``). Fewer groups when a group would hold < 2 images."""
        groups = min(self.bn_groups, len(x) // 2)
        if groups <= 1:
            return head(net.features(x, arch))
        xs = x if order is None else x[order]
        z = torch.cat([head(net.features(c, arch)) for c in xs.tensor_split(groups)])
        return z if order is None else z[torch.argsort(order)]

    def shuffle_order(self, start: int, size: int, device: torch.device) -> Optional[torch.Tensor]:
        """The teacher's shuffle-BN order of the slice at global ``start`` of the current step (None if off):
        a function of (seed, step, start), so ranks and micro-batches agree."""
        if self.bn_groups <= 1:
            return None
        g = torch.Generator().manual_seed(rng.torch_seed(self.cfg.seed, rng.PINAS, self._step, 2 + start))
        return torch.randperm(size, generator=g).to(device)

    def student(self, x: torch.Tensor, arch: str) -> tuple[torch.Tensor, set[int]]:
        """Normalised student embedding and the ids of the modules the forward ran."""
        with _ModuleRecorder() as rec, self.autocast():
            z = self._bn_grouped(self.model, self.head, x, arch)
        return F.normalize(z.float(), dim=1), rec.ids

    @torch.no_grad()
    def update_teacher(self, module_ids: set[int]) -> None:
        """theta_t <- ema * theta_t + (1 - ema) * theta_s on the parameters of the given student modules."""
        ts, ss = [], []
        for mid in module_ids:
            pair = self._pairs.get(mid)
            if pair is not None:
                ss.extend(pair[0])
                ts.extend(pair[1])
        if ts:
            torch._foreach_lerp_(ts, [s.detach() for s in ss], 1.0 - self.ema)

    @torch.no_grad()
    def key(self, x: torch.Tensor, arch: str, order: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Normalised teacher embedding (train-mode BN, like the student; BN groups over ``x[order]``)."""
        self.teacher.train(self.model.training)
        self.teacher_head.train(self.model.training)
        with self.autocast():
            z = self._bn_grouped(self.teacher, self.teacher_head, x, arch, order)
        return F.normalize(z.float(), dim=1)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """FIFO: overwrite the oldest entries with ``keys`` (the last ``queue_size`` of them if more)."""
        size = len(self.queue)
        keys = keys[-size:]
        idx = (self.ptr + torch.arange(len(keys), device=self.queue.device)) % size
        self.queue[idx] = keys.to(self.queue.dtype)
        self.ptr = (self.ptr + len(keys)) % size

    # -- one step -------------------------------------------------------------------------------------------
    def inputs(self, x_uint8: torch.Tensor, t: int) -> list[torch.Tensor]:
        """The four views (q0, k0, q1, k1) of step ``t``'s whole batch (``t`` also seeds the next run()'s
        shuffle-BN order)."""
        self._step = int(t)
        return [contrastive_view(x_uint8, self.mean, self.std, rng.torch_seed(self.cfg.seed, rng.AUGMENT, t, v),
                                 self.view) for v in range(4)]

    def run(self, inputs: Sequence[torch.Tensor], y: torch.Tensor, archs: Sequence[str], scales: Sequence[float],
            parts: Optional[Sequence[slice]] = None, n: Optional[int] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One step on the slices ``parts`` of the four views (default: the whole batch), then the queue update.

        Order (the reference order for one slice): student A on the first slice, teacher EMA on A's modules,
        teacher keys A of every slice; student B on the first slice, EMA on B's modules, keys B of every slice;
        then the cross-path loss of every slice times its share size / ``n`` of the global batch, backward; the
        slices' mean keys of all ranks (``dist``) are enqueued last. ``y`` is not used."""
        if len(archs) != 2:
            raise ValueError(f"Pi-NAS trains two paths per step, got {len(archs)} (use train.sampler = pair)")
        parts, n = resolve_parts(parts, n, len(inputs[0]))
        v = inputs
        orders = [self.shuffle_order(p.start, p.stop - p.start, v[0].device) for p in parts]   # shared by A and B
        first_q, keys = [], []   # per path (A, B): student query of the first slice, teacher keys of every slice
        for path, qv, kv in ((archs[0], 0, 1), (archs[1], 2, 3)):
            q, used = self.student(v[qv][parts[0]], path)
            self.update_teacher(used)
            first_q.append(q)
            keys.append([self.key(v[kv][p], path, order) for p, order in zip(parts, orders)])
        means, correct = [], torch.zeros((), dtype=torch.long, device=v[0].device)
        for j, p in enumerate(parts):
            q_a = first_q[0] if j == 0 else self.student(v[0][p], archs[0])[0]
            q_b = first_q[1] if j == 0 else self.student(v[2][p], archs[1])[0]
            loss_a, ok_a = info_nce(q_a, keys[1][j], self.queue, self.temperature)
            loss_b, ok_b = info_nce(q_b, keys[0][j], self.queue, self.temperature)
            weight = (p.stop - p.start) / n
            total = loss_a * scales[0] + loss_b * scales[1]
            (total * weight if weight != 1.0 else total).backward()
            means.append(torch.stack([loss_a.detach(), loss_b.detach()]))
            correct += ok_a + ok_b
        new = torch.cat([(ka + kb) / 2 for ka, kb in zip(keys[0], keys[1])])
        if self.dist is not None and self.dist.enabled:   # every rank's slice of the global batch, in rank order
            w = self.dist.world
            sizes = [shard.stop - shard.start for shard in (shard_slice(n, r, w) for r in range(w))]
            new = all_gather_cat(new, self.dist, sizes)
        self.enqueue(new)     # after every backward: the step's negatives are the queue before its own keys
        return mean_over_parts(means, parts), correct

    # -- state ------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"head": self.head.state_dict(), "teacher": self.teacher.state_dict(),
                "teacher_head": self.teacher_head.state_dict(), "queue": self.queue.clone(), "ptr": self.ptr}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if tuple(state["queue"].shape) != tuple(self.queue.shape):
            raise ValueError(f"checkpoint queue has shape {tuple(state['queue'].shape)}, this run "
                             f"{tuple(self.queue.shape)}")
        self.head.load_state_dict(state["head"])
        self.teacher.load_state_dict(state["teacher"])
        self.teacher_head.load_state_dict(state["teacher_head"])
        self.queue.copy_(state["queue"])
        self.ptr = int(state["ptr"])

    def snapshot(self) -> Any:
        """Teacher, queue and pointer before a step (restored if the step is skipped as non-finite)."""
        return ([t.clone() for t in self._teacher_tensors()], self.queue.clone(), self.ptr)

    def restore(self, snap: Any) -> None:
        tensors, queue, ptr = snap
        with torch.no_grad():
            for t, s in zip(self._teacher_tensors(), tensors):
                t.copy_(s)
        self.queue.copy_(queue)
        self.ptr = ptr

    @torch.no_grad()
    def inherit_state(self, parent: dict[str, Any]) -> None:
        """A few-shot child's start from its parent's objective state (what :meth:`state_dict` gave, read from
        the parent's checkpoint): the projection heads, queue and pointer, and the teacher on the child's
        modules (matched by name; the child holds a subset of the parent's ops)."""
        tsd = parent["teacher"]
        self.teacher.load_state_dict({k: tsd[k] for k in self.teacher.state_dict()})
        self.head.load_state_dict(parent["head"])
        self.teacher_head.load_state_dict(parent["teacher_head"])
        self.queue.copy_(parent["queue"])
        self.ptr = int(parent["ptr"])

    def _teacher_tensors(self) -> list[torch.Tensor]:
        return [*self.teacher.state_dict().values(), *self.teacher_head.state_dict().values()]


class InfoNCEGM:
    """The gradient-matching loss of a Pi-NAS (sub-)supernet (decision recorded in docs/methods.md).

    A batch is two views (query, key) of the same images. Per batch and base path A (drawn inside the mask by
    gradient matching), a partner path B is drawn inside the mask that differs from A at every decision with
    two or more allowed choices (as the pair sampler does) and the teacher's key of B on the key view is
    computed once; the loss of A with op o on the candidate decision is then
    ``InfoNCE(n(head(f(query; A_o))), key_B, queue)`` — the training step's cross-path term — against the
    current queue. Only gradients are taken: the teacher, the queue and the pointer do not change. The
    projection head is shared by every path and joins the shared weights whose gradients are compared.
    """

    def __init__(self, objective: PiNASObjective, space, mask):
        self.objective, self.space, self.mask = objective, space, [list(m) for m in mask]

    def extra_parameters(self) -> list[nn.Parameter]:
        return self.objective.parameters()

    def prepare(self, model: nn.Module, batch: Sequence[torch.Tensor], base: Sequence[int],
                rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        query, key_view = batch
        partner = []
        for d, allowed in enumerate(self.mask):
            others = [c for c in allowed if c != base[d]]
            partner.append(int(others[int(rng.integers(len(others)))]) if others else int(base[d]))
        return query, self.objective.key(key_view, self.space.encode(partner))

    def loss(self, model: nn.Module, prepared: tuple[torch.Tensor, torch.Tensor], arch: str) -> torch.Tensor:
        query, key = prepared
        obj = self.objective
        with obj.autocast():
            z = obj._bn_grouped(model, obj.head, query, arch)
        return info_nce(F.normalize(z.float(), dim=1), key, obj.queue, obj.temperature)[0]
