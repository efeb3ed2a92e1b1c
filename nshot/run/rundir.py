"""One owner for a run directory: every file name in it, the kind of run it holds, the one checkpoint check.

A run directory (``RUN/``) holds::

    config.yaml            the resolved config (written last at creation: a folder with it is a run)
    env.json               versions, git commit, device, one entry per start or resume
    metrics.jsonl          one record per epoch
    checkpoints/           last.pt (+ prev.pt), checksummed, written atomically
    scores.csv             the scorer's cache; rank.json/csv and rank-<tag>.json/csv: rankings
    search.json            a search's result; result.json: a differentiable search's or train-arch's result
    fewshot.json           a few-shot run's partition tree (its nodes in nodes/<id>/, each a run directory)
    gm.json                a GM-NAS + DARTS/SNAS run's tree and rounds (nodes in nodes/<id>/)
    probes/                shared probe heads; report.html (+ report/, its PNGs): the report
    quickstart.json        the offline demo's summary (``nshot quickstart``)
    tensorboard/           TensorBoard scalars (``run.tensorboard``)
"""
from __future__ import annotations

import enum
from pathlib import Path
from typing import Any, Optional, Union

from ..config import Config, ConfigError, apply_overrides, from_dict, load_config, to_dict
from ..errors import RunDirError

SUPERNET_FORMAT = 1   # format of a supernet checkpoint (``kind: supernet``)


class RunKind(str, enum.Enum):
    """What a run directory holds."""
    ONE_SHOT = "one-shot"                     # one supernet (nshot.train.Trainer)
    FEW_SHOT = "few-shot"                     # a partition tree of supernets (nshot.train.fewshot)
    DIFFERENTIABLE = "differentiable"         # DARTS / SNAS (nshot.train.differentiable)
    GM_DIFFERENTIABLE = "gm-differentiable"   # GM-NAS + DARTS / SNAS (nshot.train.gm_search)


class RunDir:
    """The paths of one run directory and what can be told from them without loading the run."""

    CONFIG = "config.yaml"
    ENV = "env.json"
    METRICS = "metrics.jsonl"
    CHECKPOINTS = "checkpoints"
    LAST = "last.pt"
    PREV = "prev.pt"
    SCORES = "scores.csv"
    SEARCH = "search.json"
    RESULT = "result.json"
    FEWSHOT = "fewshot.json"
    GM = "gm.json"
    NODES = "nodes"
    PROBES = "probes"
    REPORT = "report.html"
    QUICKSTART = "quickstart.json"
    TENSORBOARD = "tensorboard"

    def __init__(self, path: Union[str, Path, "RunDir"]):
        self.path = path.path if isinstance(path, RunDir) else Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __str__(self) -> str:
        return str(self.path)

    # -- file names -------------------------------------------------------------------------------------------
    @property
    def config(self) -> Path:
        return self.path / self.CONFIG

    @property
    def env(self) -> Path:
        return self.path / self.ENV

    @property
    def metrics(self) -> Path:
        return self.path / self.METRICS

    @property
    def checkpoints(self) -> Path:
        return self.path / self.CHECKPOINTS

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / self.LAST

    @property
    def prev_checkpoint(self) -> Path:
        return self.checkpoints / self.PREV

    @property
    def scores(self) -> Path:
        return self.path / self.SCORES

    @property
    def search(self) -> Path:
        return self.path / self.SEARCH

    @property
    def result(self) -> Path:
        return self.path / self.RESULT

    @property
    def fewshot(self) -> Path:
        return self.path / self.FEWSHOT

    @property
    def gm(self) -> Path:
        return self.path / self.GM

    @property
    def probes(self) -> Path:
        return self.path / self.PROBES

    @property
    def report(self) -> Path:
        return self.path / self.REPORT

    @property
    def quickstart(self) -> Path:
        return self.path / self.QUICKSTART

    @property
    def tensorboard(self) -> Path:
        return self.path / self.TENSORBOARD

    @staticmethod
    def rank_name(ext: str = "json", tag: Optional[str] = None) -> str:
        """``rank.json``/``rank.csv``, or ``rank-<tag>.<ext>`` for a subset or a non-default protocol."""
        return f"rank-{tag}.{ext}" if tag else f"rank.{ext}"

    def rank(self, ext: str = "json", tag: Optional[str] = None) -> Path:
        """The path of :meth:`rank_name`."""
        return self.path / self.rank_name(ext, tag)

    def node(self, node_id: int) -> "RunDir":
        """The run directory of a tree node (few-shot, GM-NAS)."""
        return RunDir(self.path / self.NODES / str(node_id))

    # -- what it holds ----------------------------------------------------------------------------------------
    def is_run(self) -> bool:
        return self.config.is_file()

    def require_run(self) -> None:
        """RunDirError unless this is a run directory."""
        if not self.is_run():
            raise RunDirError(f"{self.path} is not a run directory (no {self.CONFIG})")

    def has_checkpoint(self) -> bool:
        return self.last_checkpoint.exists() or self.prev_checkpoint.exists()

    def is_taken(self) -> bool:
        """Whether a new run may not start here (it already holds one, or one's checkpoints)."""
        return self.checkpoints.exists() or self.config.exists()

    def is_node(self) -> bool:
        """Whether this directory is a node of a tree run (``.../nodes/<id>``)."""
        return self.path.parent.name == self.NODES

    def top(self) -> "RunDir":
        """The run a user resumes or scores: the tree run for a node directory, else this one."""
        return RunDir(self.path.parent.parent) if self.is_node() else self

    def load_config(self, overrides: Optional[list[str]] = None) -> Config:
        self.require_run()
        return load_config(self.config, overrides)

    def kind(self) -> RunKind:
        """What the directory holds, from its files and config (RunDirError if it is not a run)."""
        if self.fewshot.is_file():
            return RunKind.FEW_SHOT
        if self.gm.is_file():
            return RunKind.GM_DIFFERENTIABLE
        cfg = self.load_config()
        if cfg.arch.method != "none":
            return RunKind.GM_DIFFERENTIABLE if cfg.fewshot.method == "gm" else RunKind.DIFFERENTIABLE
        return RunKind.FEW_SHOT if cfg.fewshot.method != "none" else RunKind.ONE_SHOT


def check_supernet_state(state: dict[str, Any], source: Union[str, Path],
                         overrides: Optional[list[str]] = None) -> Config:
    """The one check of a supernet checkpoint read from ``source``: its format and kind, its config (valid for
    this nshot; ``overrides`` applied), its space. Returns the config; RunDirError naming ``source`` otherwise."""
    if state.get("format") != SUPERNET_FORMAT or state.get("kind") != "supernet":
        raise RunDirError(f"{source}: checkpoint format {state.get('format')!r} / kind {state.get('kind')!r} is not a "
                          f"supernet checkpoint of format {SUPERNET_FORMAT}; this nshot cannot continue or score it "
                          "(was it written by another nshot version?)")
    try:
        cfg = from_dict(Config, state.get("config")).validate()
    except ConfigError as exc:
        raise RunDirError(f"{source}: its config is not valid for this nshot ({exc})") from None
    if state.get("space") != cfg.space.name:
        raise RunDirError(f"{source}: checkpoint is for space {state.get('space')!r}, its config says "
                          f"{cfg.space.name!r}")
    if overrides:
        cfg = from_dict(Config, apply_overrides(to_dict(cfg), overrides)).validate()
    return cfg
