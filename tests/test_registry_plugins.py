"""Search strategies, scoring probes and networks are registered by name: the ``nshot search --strategy`` and
``--probe`` choices come from the registries (read from source before the plug-ins are imported, so building
the parser imports no torch), a registered plug-in is picked up, and every space has its networks."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from nshot import spaces
from nshot.cli import PROBE_CHOICES, STRATEGY_CHOICES, _parser
from nshot.nn import STANDALONE, SUPERNETS
from nshot.score import PROBES
from nshot.score.probe import probe_predict
from nshot.score.scorer import PROBE_MODES
from nshot.search import STRATEGIES, CachedFitness, cli_options, get_strategy, needs_budget
from tests.helpers import REPO


def _choices(command: str, option: str) -> list[str]:
    parser = _parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    action = next(a for a in sub.choices[command]._actions if option in a.option_strings)
    return list(action.choices)


def test_cli_choices_are_the_registered_names():
    assert _choices("search", "--strategy") == sorted(STRATEGIES) == ["evolution", "exhaustive", "random", "tree"]
    assert _choices("search", "--probe") == _choices("rank", "--probe") == ["classifier", *PROBES, "shared-linear"]
    assert list(PROBES) == ["knn", "linear"] and list(PROBE_MODES) == _choices("rank", "--probe")
    for choices in (STRATEGY_CHOICES, PROBE_CHOICES.parts[1]):
        assert choices.source_names() == choices.live_names()


def test_building_the_parser_and_checking_a_choice_imports_no_torch():
    snippet = ("import sys\nfrom nshot.cli import _parser\n"
               "args = _parser().parse_args(['search', 'RUN', '--strategy', 'tree', '--probe', 'knn'])\n"
               "print(args.strategy, args.probe, 'torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["tree", "knn", "False"]


def test_a_registered_strategy_is_picked_up():
    @STRATEGIES.register("first")
    def first_search(space, fitness, budget, rng=None, top_k=10, constraint=None):
        return get_strategy("random")(space, fitness, budget, rng, top_k=top_k, constraint=constraint)
    try:
        assert "first" in _choices("search", "--strategy")
        args = _parser().parse_args(["search", "RUN", "--strategy", "first", "--budget", "3"])
        fn = get_strategy(args.strategy)
        assert fn is first_search and needs_budget(fn) and cli_options(fn, args) == {}
        space = spaces.get("nb201")
        res = fn(space, CachedFitness(lambda a: float(len(a))), 3, np.random.default_rng(0))
        assert res.evaluations == 3
    finally:
        del STRATEGIES["first"]
    assert "first" not in _choices("search", "--strategy")
    assert not needs_budget(get_strategy("evolution")) and needs_budget(get_strategy("tree"))


def test_a_registered_probe_is_picked_up():
    @PROBES.register("nearest-mean")
    def nearest_mean(bank, bank_labels, query, num_classes):
        means = torch.stack([bank[bank_labels == c].mean(0) for c in range(num_classes)])
        return torch.cdist(query, means).argmin(1)
    try:
        assert "nearest-mean" in _choices("rank", "--probe") and "nearest-mean" in PROBE_MODES
        bank = torch.tensor([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0]])
        pred = probe_predict("nearest-mean", bank, torch.tensor([0, 0, 1, 1]), torch.tensor([[4.0, 4.0]]), 2)
        assert pred.tolist() == [1]
    finally:
        del PROBES["nearest-mean"]
    assert "nearest-mean" not in PROBE_MODES
    with pytest.raises(ValueError, match="unknown probe 'nearest-mean'; available: knn, linear"):
        probe_predict("nearest-mean", bank, torch.tensor([0, 0, 1, 1]), bank, 2)


def test_every_space_has_its_networks():
    assert set(spaces.available()) == set(SUPERNETS) == set(STANDALONE)


# -- model options: each space checks its own ------------------------------------------------------------------
def test_every_shipped_config_loads():
    from nshot.config import load_config
    paths = sorted((REPO / "configs").rglob("*.yaml"))
    assert len(paths) >= 20
    for path in paths:
        load_config(path)


def test_a_space_checks_its_own_model_options(monkeypatch):
    from nshot.config import ConfigError, load_config
    with pytest.raises(ConfigError, match="space 'nb201'.*model.widths is not an option of search space 'nb201'"):
        load_config(None, ["model.widths=[8, 16]"])

    def no_wide_cells(cls, model):
        if model.C > 32:
            raise ValueError(f"model.C = {model.C} is too wide for this test")
    monkeypatch.setattr(spaces.NB201Space, "check_model_options", classmethod(no_wide_cells))
    load_config(None, ["model.C=32"])
    with pytest.raises(ConfigError, match="model options for space 'nb201': model.C = 64 is too wide"):
        load_config(None, ["model.C=64"])


# -- what training asks of a space: hooks with defaults on SearchSpace -------------------------------------------
def _register_toy(name: str, **hooks):
    from tests.helpers import ToySpace
    return spaces.register(name)(type("Toy", (ToySpace,), dict(hooks)))


def test_a_registered_space_gets_the_hooks_defaults():
    import argparse
    import dataclasses

    from nshot.config import ConfigError, load_config
    from nshot.report.alphas import differentiable_figures
    from nshot.train.standalone import StandaloneConfig, check_protocol
    from nshot.train.train_arch import standalone_settings

    toy = _register_toy("toy-hooks")
    try:
        sp = spaces.get("toy-hooks")
        assert spaces.space_class("toy-hooks") is toy
        assert not (sp.supports_auxiliary_head or sp.supports_drop_path or sp.supports_differentiable)
        assert dict(sp.standalone_defaults) == {} and sp.op_weight_labels() is None
        assert sp.topology_groups() == [] and sp.projection_excluded_ops == () and sp.soft_split_rule == "largest_cross"
        with pytest.raises(ValueError, match="space 'toy-hooks' has no architecture-weight table: differentiable "
                                             "search runs on nb201, darts"):
            sp.alpha_shape()
        with pytest.raises(ValueError, match="space 'toy-hooks' has no derivation rule"):
            sp.derive_from_weights([[1.0]])
        assert spaces.spaces_with("supports_differentiable") == ["nb201", "darts"]
        check_protocol(sp, StandaloneConfig())   # the NB201 protocol runs on any space
        with pytest.raises(ValueError, match=r"standalone.aux_weight = 0.4: the stand-alone network of space "
                                             r"'toy-hooks' has no auxiliary head \(leave aux_weight at 0; it applies "
                                             r"to: darts\)"):
            check_protocol(sp, StandaloneConfig(aux_weight=0.4))
        with pytest.raises(ValueError, match="standalone.drop_path = 0.2: .* space 'toy-hooks' has no drop-path"):
            check_protocol(sp, StandaloneConfig(drop_path=0.2))
        cfg = load_config(None, [])
        toy_cfg = dataclasses.replace(cfg, space=dataclasses.replace(cfg.space, name="toy-hooks"))
        assert standalone_settings(argparse.Namespace(), toy_cfg) == standalone_settings(argparse.Namespace(), cfg)
        # a differentiable run's report on a space without op/edge names: generic labels
        recs = [{"epoch": 1, "alphas": [[0.5, 0.5], [0.25, 0.75], [1.0, 0.0]]}]
        assert [f[0] for f in differentiable_figures(lambda *a: a, "toy-hooks", recs)] == ["alphas.png"]
    finally:
        del spaces.base._REGISTRY["toy-hooks"]

    # a space that declares the hooks is what the config, train-arch and the report ask
    toy = _register_toy("toy-diff", supports_differentiable=True, standalone_defaults={"C": 8, "epochs": 3},
                        op_weight_labels=lambda self: (("a", "b"), ("e0", "e1", "e2")))
    try:
        assert spaces.spaces_with("supports_differentiable") == ["nb201", "darts", "toy-diff"]
        with pytest.raises(ConfigError, match="arch.method = darts runs on the nb201, darts and toy-diff spaces, "
                                              "not 'macro'"):
            load_config(None, ["space.name=macro", "model.C=16", "model.N=5", "arch.method=darts"])
        toy_cfg = dataclasses.replace(cfg, space=dataclasses.replace(cfg.space, name="toy-diff"))
        got = standalone_settings(argparse.Namespace(epochs=None, N=2), toy_cfg)
        assert (got["C"], got["N"], got["epochs"], got["lr"]) == (8, 2, 3, 0.1)   # flag > space default > built-in
        from nshot.report.alphas import op_names
        assert op_names("toy-diff") == (("a", "b"), ("e0", "e1", "e2"))
        assert spaces.get("toy-diff").alpha_shape() == (3, 2)   # the search's table follows the labels
    finally:
        del spaces.base._REGISTRY["toy-diff"]


def test_the_builtin_spaces_hooks():
    import argparse

    from nshot.config import load_config
    from nshot.train.train_arch import standalone_settings

    darts, nb201 = spaces.get("darts"), spaces.get("nb201")
    assert darts.supports_auxiliary_head and darts.supports_drop_path and not nb201.supports_auxiliary_head
    assert nb201.alpha_shape() == (6, 5) and darts.alpha_shape() == (28, 8)
    assert darts.soft_split_rule == "smallest_within" and darts.projection_excluded_ops == (0,)
    assert nb201.soft_split_rule == "largest_cross" and nb201.topology_groups() == []
    groups = darts.topology_groups()             # 4 nodes per cell, each its 2..5 inputs, keep 2
    assert [len(rows) for _, rows, _ in groups] == [2, 3, 4, 5] * 2 and {k for *_, k in groups} == {2}
    assert sorted(r for _, rows, _ in groups for r in rows) == list(range(28)) and groups[4][0] == "reduce node 2"
    assert nb201.op_weight_labels()[1][:2] == ("1<-0", "2<-0")
    assert darts.op_weight_labels()[1][0] == "normal 0->2" and darts.op_weight_labels()[1][14] == "reduce 0->2"
    got = standalone_settings(argparse.Namespace(), load_config(None, ["space.name=darts", "model.C=4", "model.N=1"]))
    assert (got["C"], got["N"]) == (36, 6)
    got = standalone_settings(argparse.Namespace(), load_config(None, []))
    assert (got["C"], got["N"]) == (16, 5)


@pytest.mark.parametrize("name", sorted(spaces.available()))
def test_every_supernet_carries_its_space(name):
    """Scoring's dedup asks the network which architectures are one function (``space_of``): a supernet
    without its space would silently be scored without dedup."""
    from nshot.config import load_config
    from nshot.run.build import build_model
    from nshot.score import space_of
    model = build_model(load_config(None, [f"space.name={name}"]), 10, 3)
    assert isinstance(space_of(model), spaces.space_class(name))


def test_the_architecture_pages_lr_policy_example_trains(tmp_path, tiny_data):
    """docs/ARCHITECTURE.md's worked example: a registered class is a valid ``train.lr_policy`` and both
    executors' plan gives lr_t = lr_min + (lr_0 - lr_min)(1 - t/T)."""
    import json
    from typing import Optional

    from helpers import tiny_overrides
    from nshot.config import load_config
    from nshot.train.lr import LR_POLICIES, LRPolicy
    from nshot.train.trainer import Trainer

    @LR_POLICIES.register("linear")
    class LinearLR(LRPolicy):
        name = "linear"

        def __init__(self, lr: float, lr_min: float = 0.0):
            self.lr0, self.lr_min = lr, lr_min

        def __call__(self, t: int, T: int, arch: Optional[str] = None) -> float:
            return self.lr_min + (self.lr0 - self.lr_min) * (1.0 - min(t, T) / T)

    try:
        cfg = load_config(None, tiny_overrides("train.lr_policy=linear", "optim.lr=0.1", "optim.lr_min=0.01",
                                               "train.log_every_steps=1"))
        tr = Trainer.create(cfg, tmp_path / "r", data=tiny_data)
        T = tr.total_steps
        plans = [tr.plan(t).lr for t in range(T)]
        assert plans == pytest.approx([0.01 + 0.09 * (1 - t / T) for t in range(T)], rel=1e-12)
        tr.fit()
        logged = [r["lr"] for r in map(json.loads, (tmp_path / "r" / "metrics.jsonl").read_text().splitlines())
                  if "lr" in r]
        assert logged and all(0.01 <= x <= 0.1 for x in logged) and logged == sorted(logged, reverse=True)
    finally:
        LR_POLICIES.pop("linear", None)
