"""GM-NAS with DARTS / SNAS (``fewshot.method: gm`` with ``arch.method: darts|snas``).

Every sub-supernet is a :class:`~nshot.train.differentiable.DifferentiableSearch` with a mask over the alpha table
(per edge, its allowed ops), in ``RUN/nodes/<id>/``. Phases end at ``fewshot.split_epochs``: every leaf trains
to the split epoch, then splits in two on the edge chosen by soft-weight gradient matching
(:mod:`nshot.train.gm_differentiable`, by the space's ``soft_split_rule``; NB201: 2/3 split with the largest
cross-group distance, DARTS space: the smallest within-group distance). Alphas stay fixed until the last split. Children of a non-final split inherit
the parent's weights, alphas and optimizer state (by parameter name); with ``fewshot.restart_final`` the
children of the last split start afresh with their own schedule over the remaining epochs. The last phase is
run as successive halving: the leaves train in rounds, and after each round the half with the lower held-out
accuracy (mixed op at the current softmax) stops. The survivor's architecture is derived by ``arch.projection``
(``argmax``, or ``perturbation``: DARTS-PT op selection, then topology selection in the space's
``topology_groups``, on held-out batches).

``RUN/gm.json`` holds the phase, the tree (``leaves``, ``next_id``), the split evidence (``splits``), ``done``,
and for the last phase: while it runs, ``halving_progress`` (every leaf's start step, written before the phase
trains; the epochs per round and the number of rounds; the finished rounds' scores and the survivors), at its
end ``halving`` (winner, epochs per round, per-round scores; ``halving_progress`` is then dropped).
``RUN/result.json`` holds the architecture. Resuming continues from the last finished phase (a node resumes from
its own checkpoint); in successive halving from the last finished round, every leaf training to the same
absolute step targets, so the scores, the winner and its weights equal an uninterrupted run's bit for bit.
"""
from __future__ import annotations

import itertools
import json
import math
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Optional, Union

import torch

from .. import spaces
from ..config import Config, dump_config, load_config
from ..data import epoch_batches
from ..run.rundir import RunDir
from . import rng
from .checkpoint import atomic_write_bytes, load_checkpoint_from
from .differentiable import DifferentiableSearch, truth_table
from .gm_differentiable import SPLIT_RULES, project_ops, project_topology, soft_gm_distances, successive_halving
from .trainer import RunDirError, load_data

GM_BATCHES = 26     # random stream of the GM estimate's batches
SCORE_BATCHES = 4   # held-out batches that score a leaf in successive halving and drive projection
PT_TUNE = 27        # random stream of DARTS-PT's tuning batches between projection decisions


class Paused(Exception):
    """A node was stopped by Ctrl-C / SIGTERM (its checkpoint is saved); the run resumes with --resume."""


def _train(node: DifferentiableSearch, until: Optional[int] = None) -> None:
    node.fit(until=until)
    if getattr(node, "_stop", False) and not node.done:
        raise Paused(str(node.run_dir))


class GMSearch:
    """A GM-NAS run with differentiable search in ``run_dir``; :meth:`create` or :meth:`resume`, then :meth:`fit`."""

    def __init__(self, cfg: Config, run_dir: Union[str, Path], data=None):
        if cfg.fewshot.method != "gm" or cfg.arch.method == "none":
            raise ValueError("GMSearch needs fewshot.method = gm and arch.method = darts or snas")
        self.truth = truth_table(cfg)          # loaded once for every node; a refused arch.table stops here
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.files = RunDir(self.run_dir)
        self.data = data if data is not None else load_data(cfg)
        self.splits = sorted(cfg.fewshot.split_epochs)
        if not self.splits or self.splits[0] < 1:
            raise ValueError(f"fewshot.split_epochs = {cfg.fewshot.split_epochs}: GM-NAS splits a warmed-up "
                             "supernet, so every split epoch must be >= 1")
        self.space = spaces.for_config(cfg)
        self.shape = self.space.alpha_shape()
        self.state: dict[str, Any] = {"phase": 0, "leaves": [{"id": 0, "mask": None, "parent": None}],
                                      "next_id": 1, "splits": [], "halving": None, "done": False}

    # -- persistence -------------------------------------------------------------------------------------
    @classmethod
    def create(cls, cfg: Config, run_dir: Union[str, Path], data=None) -> "GMSearch":
        files = RunDir(run_dir)
        run_dir = files.path
        if files.gm.exists() or files.config.exists():
            raise RunDirError(f"{run_dir} already holds a run; resume it with `nshot train --resume {run_dir}`")
        run = cls(cfg, run_dir, data)                    # refuses a bad arch.table before anything is written
        run_dir.mkdir(parents=True, exist_ok=True)
        run._save()                                      # first: a folder with gm.json is a GM-NAS run
        dump_config(cfg, files.config)
        return run

    @classmethod
    def resume(cls, run_dir: Union[str, Path], data=None) -> "GMSearch":
        files = RunDir(run_dir)
        run_dir = files.path
        if not files.gm.is_file():
            raise RunDirError(f"{run_dir} is not a GM-NAS differentiable run (no {files.GM})")
        run = cls(load_config(files.config), run_dir, data)
        run.state = json.loads(files.gm.read_text())
        return run

    def _save(self) -> None:
        atomic_write_bytes(self.files.gm, (json.dumps(self.state, indent=1) + "\n").encode())

    def node_dir(self, node: int) -> Path:
        return self.files.node(node).path

    # -- nodes -------------------------------------------------------------------------------------------
    def _node_cfg(self, leaf: dict) -> Config:
        epochs = leaf.get("epochs")
        cfg = replace(self.cfg, fewshot=replace(self.cfg.fewshot, method="none", split_epochs=[0]))
        return replace(cfg, train=replace(cfg.train, epochs=epochs)) if epochs else cfg

    def _open(self, leaf: dict) -> DifferentiableSearch:
        """The leaf's search: resumed from its checkpoint, else created (inheriting its parent's state if asked)."""
        folder = self.node_dir(leaf["id"])
        if RunDir(folder).has_checkpoint():
            return DifferentiableSearch.resume(folder, data=self.data, truth=self.truth)
        if folder.exists():
            shutil.rmtree(folder)
        node = DifferentiableSearch.create(self._node_cfg(leaf), folder, data=self.data, mask=leaf["mask"],
                                           alpha_frozen_until=leaf.get("frozen", 0), node=leaf["id"], truth=self.truth)
        if leaf.get("inherit_from") is not None:
            state, _ = load_checkpoint_from(self.files.node(leaf["inherit_from"]).checkpoints)
            _inherit(node, state)
            node.save()
        return node

    def _frozen_until(self, spe: int) -> int:
        return self.splits[-1] * spe

    # -- the run -----------------------------------------------------------------------------------------
    def fit(self) -> Optional[dict[str, Any]]:
        """Run to the end and return ``result.json``'s content; None when Ctrl-C / SIGTERM paused a node."""
        try:
            return self._fit()
        except Paused:
            return None

    def _fit(self) -> dict[str, Any]:
        st = self.state
        while st["phase"] < len(self.splits):
            k = st["phase"]
            end = self.splits[k]
            for leaf in st["leaves"]:
                if k == 0 and leaf["id"] == 0:
                    leaf.setdefault("frozen", self._frozen_until(self._spe()))
                node = self._open(leaf)
                _train(node, end * node.steps_per_epoch)
            self._split_all(k)
        if st["halving"] is None:
            self._halve()
        if not st["done"]:
            self._finish()
        return json.loads(self.files.result.read_text())

    def _spe(self) -> int:
        from ..data import num_batches
        return num_batches(len(self.data[0]), self.cfg.train.batch_size, self.cfg.train.drop_last)

    def _gm_batches(self, node: DifferentiableSearch, phase: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        cfg = self.cfg
        seed = rng.torch_seed(cfg.seed, GM_BATCHES, phase) % (2 ** 31)
        out = []
        for i, idx in enumerate(epoch_batches(len(node.train_data), cfg.train.batch_size, seed, 0)):
            if i >= cfg.fewshot.gm_batches:
                break
            out.append(node._inputs(node.train_data, idx.to(node.device), seed + i))
        return out

    def _split_all(self, k: int) -> None:
        st = self.state
        final = k == len(self.splits) - 1
        children = []
        for leaf in st["leaves"]:
            node = self._open(leaf)
            batches = self._gm_batches(node, k)
            mask = leaf["mask"] or [list(range(self.shape[1]))] * self.shape[0]
            probs = node.probs()
            dists = {e: (list(mask[e]), soft_gm_distances(node.model, probs, e, list(mask[e]), batches))
                     for e in range(self.shape[0]) if len(mask[e]) >= 2 and e not in leaf.get("split_edges", [])}
            choice = SPLIT_RULES[self.space.soft_split_rule](dists)
            e = choice["decision"]
            st["splits"].append({"phase": k, "node": leaf["id"], "edge": e, "groups": choice["groups"],
                                 "candidates": {str(c): {kk: v for kk, v in r.items() if kk != "distances"}
                                                for c, r in choice["candidates"].items()},
                                 "distances": choice["candidates"][e]["distances"]})
            for group in choice["groups"]:
                child_mask = [list(m) for m in mask]
                child_mask[e] = list(group)
                child = {"id": st["next_id"], "mask": child_mask, "parent": leaf["id"],
                         "split_edges": leaf.get("split_edges", []) + [e]}
                st["next_id"] += 1
                if final and self.cfg.fewshot.restart_final:
                    child["epochs"] = self.cfg.train.epochs - self.splits[k]   # a fresh schedule, alphas trained
                    child["frozen"] = 0
                else:
                    child["inherit_from"] = leaf["id"]
                    child["frozen"] = self._frozen_until(node.steps_per_epoch)
                children.append(child)
        st["leaves"] = children
        st["phase"] = k + 1
        self._save()

    def _score(self, node: DifferentiableSearch) -> float:
        """Held-out accuracy (%) of the leaf's mixed op at its current softmax, on fixed held-out batches."""
        batches = self._valid_batches(node)
        w = node.probs()
        correct = total = 0
        # BN running statistics (model.bn_track_running_stats) would move with these batches: put them back, so
        # that scoring leaves the node as its checkpoint has it and a resumed run trains on from the same state
        buffers = {name: b.detach().clone() for name, b in node.model.named_buffers()}
        with torch.no_grad():
            node.model.train()
            for x, y in batches:
                from .differentiable import mixed_logits
                correct += int((mixed_logits(node.model, x, w).argmax(1) == y).sum())
                total += len(y)
            for name, b in node.model.named_buffers():
                b.copy_(buffers[name])
        return 100.0 * correct / max(total, 1)

    def _valid_batches(self, node: DifferentiableSearch) -> list[tuple[torch.Tensor, torch.Tensor]]:
        from ..data import normalize
        out = []
        bs = self.cfg.train.eval_batch_size
        data = node.valid_data
        for i in range(min(SCORE_BATCHES, math.ceil(len(data) / bs))):
            x = normalize(data.x[i * bs:(i + 1) * bs], data.mean, data.std)
            out.append((x, data.y[i * bs:(i + 1) * bs]))
        return out

    def _halve(self) -> None:
        """Successive halving among the last phase's leaves, resumable at any point with the same result.

        ``state["halving_progress"]`` is written before the phase trains anything (every leaf's start step, the
        epochs per round, the number of rounds) and after every finished round (its scores, the survivors). A
        resume replays the finished rounds from their scores and re-enters the current one: each leaf trains to
        its absolute target ``start + rounds_done * chunk * steps_per_epoch`` (a leaf already there trains no
        further), and the round is scored at that boundary, as an uninterrupted run does."""
        st = self.state
        leaves = {str(leaf["id"]): leaf for leaf in st["leaves"]}
        nodes = {key: self._open(leaf) for key, leaf in leaves.items()}
        spe = nodes[next(iter(nodes))].steps_per_epoch
        progress = st.get("halving_progress")
        if progress is None:
            remaining = nodes[next(iter(nodes))].total_steps
            rounds = max(1, math.ceil(math.log2(len(nodes)))) if len(nodes) > 1 else 0
            start = {k: n.step for k, n in nodes.items()}
            left = (remaining - min(start.values())) // spe
            chunk = max(1, left // (rounds + 1)) if rounds else 0
            progress = {"start": start, "chunk": chunk, "rounds": rounds, "alive": list(nodes), "history": []}
            st["halving_progress"] = progress
            self._save()                                 # before any step of this phase: the targets are fixed
        start, chunk, history = progress["start"], progress["chunk"], progress["history"]
        if set(start) != set(nodes):
            raise RunDirError(f"{self.files.gm}: halving_progress names leaves {sorted(start)}, the tree has "
                              f"{sorted(nodes)}")
        done = {k: sum(k in scores for scores in history) for k in nodes}   # rounds each leaf has trained

        def train(key: str, epochs: int) -> None:   # absolute targets: a resumed node does not train twice
            done[key] += 1
            _train(nodes[key], start[key] + done[key] * epochs * spe)

        def finished(so_far: list, alive: list) -> None:   # a round is scored: persist it
            progress["history"], progress["alive"] = so_far, alive
            self._save()

        winner, history = successive_halving(list(nodes), train, lambda key: self._score(nodes[key]), chunk,
                                             progress["rounds"], history=history, on_round=finished)
        _train(nodes[winner])
        st["halving"] = {"winner": int(winner), "epochs_per_round": chunk, "rounds": history}
        st.pop("halving_progress", None)
        self._save()

    def _finish(self) -> None:
        st = self.state
        winner = st["halving"]["winner"]
        leaf = next(leaf for leaf in st["leaves"] if leaf["id"] == winner)
        node = self._open(leaf)
        probs = node.probs()
        log: Any = None
        if self.cfg.arch.projection == "perturbation":
            batches = self._valid_batches(node)
            tune = self._tuner(node)
            w, log = project_ops(node.model, probs, batches, exclude=self.space.projection_excluded_ops, tune=tune)
            groups = self.space.topology_groups()
            if groups:
                w, topo = project_topology(node.model, w, batches, groups, tune=tune)
                log = {"ops": log, "topology": topo}
            arch = node.derive(w)
        else:
            arch = node.derive(probs)
        result = {"method": f"gm+{self.cfg.arch.method}", "space": self.cfg.space.name, "arch": arch,
                  "projection": self.cfg.arch.projection, "node": winner, "mask": leaf["mask"],
                  **({"projection_finetune_steps": self.cfg.arch.projection_finetune_steps}
                     if self.cfg.arch.projection_finetune_steps else {}),
                  "params": node.space.num_params(arch, num_classes=node.train_data.num_classes,
                                                  in_channels=node.train_data.x.shape[1])}
        truth = node.truth(arch)
        if truth is not None:
            result["truth"] = {"metric": node.truth_metric, "value": truth}
        if log is not None:
            result["projection_log"] = log
        atomic_write_bytes(self.files.result, (json.dumps(result, indent=1) + "\n").encode())
        st["done"] = True
        self._save()

    def _tuner(self, node: DifferentiableSearch) -> Optional[Callable[[torch.Tensor], None]]:
        """DARTS-PT's tuning between projection decisions: ``arch.projection_finetune_steps`` weight steps with
        the table so far, decision k on its own batch stream (seed, PT_TUNE, k); None when the steps are 0."""
        steps = self.cfg.arch.projection_finetune_steps
        if not steps:
            return None
        decisions = itertools.count()

        def tune(table: torch.Tensor) -> None:
            node.tune_weights(table, steps, rng.torch_seed(self.cfg.seed, PT_TUNE, next(decisions)))
        return tune

    @property
    def done(self) -> bool:
        return bool(self.state["done"])


def _inherit(node: DifferentiableSearch, state: dict[str, Any]) -> None:
    """Load a parent's weights (by name: the child holds a subset of its modules), alphas, both optimizers'
    state (SGD momentum by parameter name) and step into a freshly built child."""
    parent_model = state["model"]
    own = node.model.state_dict()
    node.model.load_state_dict({k: parent_model[k] for k in own})
    with torch.no_grad():
        node.alpha.copy_(state["alpha"].to(node.device))
    node.a_opt.load_state_dict(state["a_opt"])
    names = [n for n, p in node.model.named_parameters() if p.requires_grad]
    parent_names = state["param_names"]
    sgd = state["w_opt"]
    mapped = {}
    for j, name in enumerate(names):
        i = parent_names.index(name)
        if i in sgd["state"]:
            mapped[j] = sgd["state"][i]
    groups = [{**sgd["param_groups"][0], "params": list(range(len(names)))}]
    node.w_opt.load_state_dict({"state": mapped, "param_groups": groups})
    node.step = int(state["step"])
