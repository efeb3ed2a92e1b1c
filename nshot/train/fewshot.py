"""Few-shot supernet training: a partition tree whose every node is trained by its own :class:`Trainer`.

Phases are bounded by ``fewshot.split_epochs``. In each phase every current leaf trains (sequentially) up to
the phase's end; at a split epoch each leaf is split — exhaustively on one decision (Few-Shot NAS) or where
the ops' gradients disagree (GM-NAS) — and its children start from the parent's weights and optimizer state
(``fewshot.inherit``) or afresh. A child that starts afresh at a split gets its own LR schedule over the
remaining epochs. With GM-NAS, ``fewshot.restart_final`` re-initialises the children of the last split.

Run directory: ``RUN/config.yaml``, ``RUN/fewshot.json`` (the tree, the split decisions and their evidence),
``RUN/nodes/<id>/`` (each node's own metrics.jsonl and checkpoints). Resuming continues the node that was
training, or the split that was interrupted.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional, Union

import torch

from .. import spaces
from ..config import Config, dump_config
from ..data import ImageData, epoch_batches, num_batches, train_input
from ..run import RunDir, atomic_write_bytes, check_supernet_state
from ..run.build import build_model
from ..run import rng
from .checkpoint import CheckpointError, load_checkpoint, load_checkpoint_from
from .gradmatch import choose_split
from .grouping import resolve_edge
from . import distributed
from .env import resolve_device
from .metrics import MetricsLog
from .partition import PartitionTree
from .plan import SubSpace
from .trainer import RunDirError, Trainer, load_data, steps_per_epoch


class FewShotRun:
    """Trains a partition tree of sub-supernets as ``cfg.fewshot`` says."""

    def __init__(self, cfg: Config, run_dir: Union[str, Path], data: Optional[tuple[ImageData, ImageData]] = None):
        f = cfg.fewshot
        if f.method not in ("exhaustive", "gm"):
            raise ValueError(f"fewshot.method = {f.method!r}: FewShotRun needs exhaustive or gm")
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.files = RunDir(self.run_dir)
        self.space = spaces.for_config(cfg)
        self.data = data if data is not None else load_data(cfg)
        self.splits = sorted(f.split_epochs)
        if any(not 0 <= e < cfg.train.epochs for e in self.splits) or len(set(self.splits)) != len(self.splits):
            raise ValueError(f"fewshot.split_epochs = {f.split_epochs}: expected distinct epochs in [0, train.epochs)")
        if f.method == "exhaustive" and len(self.splits) != 1:
            raise ValueError("fewshot.method = exhaustive splits once: give exactly one split epoch (0 = from scratch)")
        if not 0 <= f.edge < self.space.num_decisions:
            raise ValueError(f"fewshot.edge = {f.edge} is out of range 0..{self.space.num_decisions - 1}")
        if f.method == "gm" and len(self.splits) > self.space.num_decisions - (cfg.train.optimizer == "ms_sgd"):
            raise ValueError(f"fewshot.split_epochs has {len(self.splits)} splits, but only "
                             f"{self.space.num_decisions} decisions (minus the MS edge) can be split")
        self.ways = list(f.gm_groups) or [2] * len(self.splits)   # GM: sub-supernets per split, in time order
        if f.method == "gm" and max(self.ways, default=2) > max(self.space.sizes):
            raise ValueError(f"fewshot.gm_groups = {f.gm_groups}: no decision of the {self.space.name} space has "
                             f"more than {max(self.space.sizes)} choices to split between")
        self.ms_edge = self._resolve_ms_edge()
        if self.ms_edge is not None:   # every node uses the same MS edge, so inherited buffers keep their meaning
            self.cfg = replace(cfg, ms=replace(cfg.ms, edge=str(self.ms_edge)))
        self.tree = PartitionTree(self.space)
        self.state: dict[str, Any] = {"done_splits": 0, "finished_nodes": []}

    def _resolve_ms_edge(self) -> Optional[int]:
        """The one momentum-separation edge of the whole run: never the exhaustive split edge, and never
        offered to gradient matching."""
        cfg = self.cfg
        if cfg.train.optimizer != "ms_sgd" or cfg.ms.grouping != "edge":
            return None
        exclude = [cfg.fewshot.edge] if cfg.fewshot.method == "exhaustive" else []
        if cfg.ms.edge != "random" and int(cfg.ms.edge) in exclude:
            raise ValueError(f"ms.edge = {cfg.ms.edge} is the edge fewshot.method=exhaustive splits; choose another")
        return resolve_edge(cfg.ms.edge, self.space, cfg.seed, exclude)

    # -- persistence -----------------------------------------------------------------------------------------
    @property
    def tree_path(self) -> Path:
        return self.files.fewshot

    def _save_tree(self) -> None:
        payload = {"tree": self.tree.to_dict(), **self.state}
        atomic_write_bytes(self.tree_path, (json.dumps(payload, indent=1) + "\n").encode())

    @classmethod
    def create(cls, cfg: Config, run_dir: Union[str, Path], data=None) -> "FewShotRun":
        files = RunDir(run_dir)
        if files.config.exists():
            raise RunDirError(f"{files} already holds a run; resume it with `nshot train --resume {files}`")
        run = cls(cfg, files.path, data)
        files.path.mkdir(parents=True, exist_ok=True)
        run._save_tree()                                 # first: a folder with fewshot.json is a few-shot run
        dump_config(run.cfg, files.config)
        return run

    @classmethod
    def resume(cls, run_dir: Union[str, Path], data=None) -> "FewShotRun":
        files = RunDir(run_dir)
        if not files.fewshot.is_file():
            raise RunDirError(f"{files} is not a few-shot run directory (no {files.FEWSHOT})")
        if not files.is_run():
            raise RunDirError(f"{files} was interrupted while being created (no {files.CONFIG}): nothing was "
                              "trained; remove it and start the run again")
        run = cls(files.load_config(), files.path, data)
        payload = json.loads(run.tree_path.read_text())
        run.tree = PartitionTree.from_dict(run.space, payload["tree"])
        run.state = {k: payload[k] for k in ("done_splits", "finished_nodes")}
        run.state["split_seconds"] = payload.get("split_seconds", {})
        return run

    def node_dir(self, node_id: int) -> Path:
        return self.files.node(node_id).path

    # -- nodes ----------------------------------------------------------------------------------------------
    def _trainer(self, node_id: int, start_step: int, fresh: bool) -> Trainer:
        """The node's trainer: resumed if it has a checkpoint, else created (inheriting from its parent's
        checkpoint unless it starts ``fresh``)."""
        d = self.node_dir(node_id)
        if RunDir(d).has_checkpoint():
            tr = Trainer.resume(d, data=self.data, fewshot_node=True)
            tr.resume_hint = self.run_dir
            return tr
        if d.exists():   # killed while the node was being created: nothing of it was trained, start it again
            shutil.rmtree(d)
        node = self.tree.nodes[node_id]
        exclude = sorted(self.tree.split_decisions(node_id)) if node.parent is not None else []
        parent = self._parent_state(node.parent) if node.parent is not None and not fresh else None
        # a child that inherits continues its parent's LR schedule; one that starts afresh begins its own
        sched = start_step if fresh else (SubSpace.from_state(parent).start if parent is not None else 0)
        tr = Trainer.create(self.cfg, d, data=self.data,
                            subspace=SubSpace.of(node.mask, start=sched, salt=node_id, exclude=exclude))
        tr.resume_hint = self.run_dir
        if parent is not None:
            inherit(parent, tr)
        tr.step = start_step
        tr.save()
        return tr

    def _parent_state(self, parent_id: int) -> dict[str, Any]:
        """The parent node's checkpoint state (``last.pt``, or ``prev.pt`` if that is damaged), through the one
        check of a supernet checkpoint."""
        state, source = load_checkpoint_from(self.files.node(parent_id).checkpoints)
        check_supernet_state(state, source)
        return state

    def _split(self, node_id: int, trainer: Trainer, level: int) -> None:
        f = self.cfg.fewshot
        node = self.tree.nodes[node_id]
        if f.method == "exhaustive":
            d = f.edge
            groups = [[c] for c in node.mask[d]]
            self.tree.split(node_id, d, groups, info={"method": "exhaustive"})
        else:
            done = self.tree.split_decisions(node_id)
            ways = self.ways[level]
            candidates = [d for d in range(self.space.num_decisions)
                          if d not in done and d != self.ms_edge and len(node.mask[d]) >= ways]
            t0 = time.perf_counter()
            loss = None
            if self.cfg.train.objective == "pinas":   # match the gradients of the InfoNCE loss (docs/methods.md)
                from .pinas import InfoNCEGM
                loss = InfoNCEGM(trainer.objective, self.space, node.mask)
            out = choose_split(trainer.model, self.space, node.mask, candidates,
                               self._gm_batch_fn(node_id, trainer.objective), f.gm_batches,
                               rng.step_rng(self.cfg.seed, rng.GRADMATCH, node_id), loss, groups=ways)
            # the time is state, not split evidence: the tree stays a pure function of the run's inputs
            self.state.setdefault("split_seconds", {})[str(node_id)] = time.perf_counter() - t0
            self.tree.split(node_id, out["decision"], out["groups"], info={
                "method": "gm", "level": level, "batches": f.gm_batches, "ways": ways,
                "candidates": {str(k): v for k, v in out["candidates"].items()}})

    def _gm_batch_fn(self, node_id: int, objective=None):
        """Batch ``i`` of a node's gradient-matching estimate: an augmented labelled batch, or for Pi-NAS two
        contrastive views (query, key) of it."""
        train = self.data[0]
        bs = self.cfg.train.batch_size
        idx = list(epoch_batches(len(train), bs, self.cfg.seed + 7919 * (node_id + 1), 0, drop_last=True))

        def batch(i: int):
            j = idx[i % len(idx)]
            x = train.x[j]
            if self.cfg.train.objective == "pinas":
                from ..data.views import contrastive_view
                x = x.to(self._device)
                return [contrastive_view(x, train.mean, train.std, rng.torch_seed(self.cfg.seed, rng.GRADMATCH, i, v),
                                         objective.view) for v in (0, 1)]
            d = self.cfg.data
            x = train_input(x, train.mean, train.std, rng.torch_seed(self.cfg.seed, rng.GRADMATCH, i), d.augment,
                            d.crop_padding, d.flip, d.image_size)
            return x.to(self._device), train.y[j].to(self._device)
        return batch

    # -- the schedule ----------------------------------------------------------------------------------------
    def fit(self) -> None:
        """Train every phase; split at the split epochs; resumable at any point."""
        cfg, f = self.cfg, self.cfg.fewshot
        spe = steps_per_epoch(cfg, len(self.data[0]))
        self._device = distributed.local_device(resolve_device(cfg.device))
        bounds = self.splits + [cfg.train.epochs]
        for level, end_epoch in enumerate(bounds):
            end = end_epoch * spe
            start = (self.splits[level - 1] * spe) if level > 0 else 0
            last = level == len(bounds) - 1
            for node in [n for n in self.tree.leaves() if len(self.tree.split_decisions(n.id)) == level]:
                if node.id in self.state["finished_nodes"]:
                    continue
                # GM-NAS children always inherit, except after the last split with restart_final (decision 11)
                if f.method == "gm":
                    fresh = f.restart_final and last
                else:
                    fresh = not f.inherit
                tr = self._trainer(node.id, start, fresh and node.parent is not None)
                if tr.step < end:
                    tr.fit(until=end)
                    if tr.step < end:   # stopped by a signal
                        return
                if not last:
                    self._split(node.id, tr, level)
                self.state["finished_nodes"].append(node.id)
                self._save_tree()
            self.state["done_splits"] = min(level + 1, len(self.splits))
            self._save_tree()

    def train_seconds(self) -> float:
        """Compute time spent so far, over every resume: every node's training steps plus the gradient-matching
        estimates that chose the splits."""
        steps = sum(r.get("seconds", 0.0) for n in self.tree.nodes
                    for r in MetricsLog(self.files.node(n.id).metrics).read())
        return steps + sum(self.state.get("split_seconds", {}).values())

    @property
    def done(self) -> bool:
        return all(n.id in self.state["finished_nodes"] for n in self.tree.leaves()) and \
            self.state["done_splits"] == len(self.splits)


def inherit(parent: dict[str, Any], child: Trainer) -> None:
    """Start ``child`` from its parent's checkpoint state ``parent`` (what :meth:`Trainer.state_dict` saved):
    the supernet weights and the optimizer state (momentum buffers) of every parameter the child holds, matched
    by name (the child holds a subset of the parent's ops), and the objective's own state (Pi-NAS: projection
    heads, teacher, queue). No parent trainer is built: only the parent network's parameter names, on the meta
    device, to read the optimizer state's order."""
    psd = parent["model"]
    child.model.load_state_dict({k: psd[k] for k in child.model.state_dict()})
    pstate, cstate = parent["optimizer"], child.optimizer.state_dict()
    if pstate.get("num_groups") != cstate.get("num_groups"):
        raise ValueError(f"parent and child optimizers differ (momentum groups: {pstate.get('num_groups')} vs "
                         f"{cstate.get('num_groups')})")
    n_own = len(child.objective.parameters())   # the objective's own parameters: the same in every node
    pnames = optimizer_param_names(_parameter_names(child, parent.get("mask")), n_own)
    cnames = optimizer_param_names([n for n, p in child.model.named_parameters() if p.requires_grad], n_own)
    index = {n: i for i, n in enumerate(pnames)}
    cstate["state"] = {ci: pstate["state"][index[n]] for ci, n in enumerate(cnames) if index[n] in pstate["state"]}
    child.optimizer.load_state_dict(cstate)
    if hasattr(child.objective, "inherit_state"):   # Pi-NAS: projection heads, teacher, queue
        child.objective.inherit_state(parent.get("objective") or {})


def optimizer_param_names(model_names: list[str], n_objective: int) -> list[str]:
    """Names of a trainer's optimizer parameters in its order: the supernet's trainable parameters, then the
    objective's own (``objective.<i>``)."""
    return list(model_names) + [f"objective.{i}" for i in range(n_objective)]


def _parameter_names(child: Trainer, mask: Optional[list]) -> list[str]:
    """Trainable parameter names, in order, of the supernet ``child``'s config builds over ``mask`` (a parent
    node's candidates), built on the meta device (no memory, no initialisation)."""
    data = child.train_data
    with torch.device("meta"):
        model = build_model(child.cfg, data.num_classes, data.x.shape[1], mask)
    return [n for n, p in model.named_parameters() if p.requires_grad]


class PartitionedSupernet(torch.nn.Module):
    """The leaves of a trained partition tree as one network: ``net(x, arch)`` runs the sub-supernet that
    contains ``arch``, so scoring, ranking and search work unchanged on a few-shot run."""

    def __init__(self, tree: PartitionTree, leaves: dict[int, torch.nn.Module]):
        super().__init__()
        self.tree = tree
        self.leaves = torch.nn.ModuleDict({str(k): m for k, m in leaves.items()})

    def forward(self, x: torch.Tensor, arch: str) -> torch.Tensor:
        return self.leaves[str(self.tree.route(arch).id)](x, arch)

    @property
    def feature_dim(self) -> int:
        """Width of the pooled features (the same in every sub-supernet)."""
        return int(next(iter(self.leaves.values())).feature_dim)

    def features(self, x: torch.Tensor, arch: str) -> torch.Tensor:
        """Pooled features of ``arch`` from its sub-supernet (what a probe reads)."""
        return self.leaves[str(self.tree.route(arch).id)].features(x, arch)


def load_partitioned(run_dir: Union[str, Path], data: tuple[ImageData, ImageData]) -> tuple[Config, PartitionedSupernet, int, int]:
    """(config, partitioned supernet, step, total steps) of a finished or partial few-shot run."""
    run = FewShotRun.resume(run_dir, data=data)
    train = data[0]
    leaves, steps = {}, []
    for node in run.tree.leaves():
        d = run.node_dir(node.id)
        try:
            state = load_checkpoint(RunDir(d).checkpoints)      # read only: scoring never writes into the run
        except CheckpointError:
            raise RunDirError(f"{run_dir}: sub-supernet {node.id} has no checkpoint yet; "
                              f"continue with `nshot train --resume {run_dir}`") from None
        model = build_model(run.cfg, train.num_classes, train.x.shape[1], state.get("mask"),
                            init_salt=state.get("node") or 0)
        model.load_state_dict(state["model"])
        leaves[node.id] = model
        steps.append(int(state["step"]))
    total = run.cfg.train.epochs * num_batches(len(train), run.cfg.train.batch_size, run.cfg.train.drop_last)
    return run.cfg, PartitionedSupernet(run.tree, leaves), min(steps), total
