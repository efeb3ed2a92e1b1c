"""Few-shot training: exhaustive and gradient-matching splits, inheritance, routing, resume across splits."""
import json

import pytest
import torch

from nshot import spaces
from nshot.config import load_config
from nshot.score import Scorer, load_run
from nshot.train import Trainer
from nshot.train.fewshot import FewShotRun
from nshot.train.metrics import MetricsLog
from nshot.train.partition import mask_contains
from tests.helpers import tiny_overrides

SP = spaces.get("nb201")
GM = ["fewshot.method=gm", "fewshot.split_epochs=[1,2]", "fewshot.gm_batches=2", "train.epochs=4",
      "fewshot.inherit=true", "train.checkpoint_every_steps=1"]


def _leaf_states(run):
    out = {}
    for leaf in run.tree.leaves():
        tr = Trainer.resume(run.node_dir(leaf.id), data=run.data, fewshot_node=True)
        out[leaf.id] = (tr.model.state_dict(), tr.optimizer.state_dict()["state"], tr.step)
    return out


def test_exhaustive_split_routes_and_samples_inside_masks(tmp_path, tiny_data):
    cfg = load_config(None, tiny_overrides("fewshot.method=exhaustive", "fewshot.split_epochs=[0]",
                                           "train.optimizer=ms_sgd", "train.lr_policy=calr"))
    run = FewShotRun.create(cfg, tmp_path / "fs", data=tiny_data)
    run.fit()
    assert run.done and len(run.tree.leaves()) == 5
    assert sorted(l.mask[0] for l in run.tree.leaves()) == [(0,), (1,), (2,), (3,), (4,)]
    for leaf in run.tree.leaves():
        tr = Trainer.resume(run.node_dir(leaf.id), data=tiny_data, fewshot_node=True)
        assert tr.step == tr.total_steps and tr.schedule_start == 0    # from scratch: the full schedule
        assert tr.grouping.edge != 0                                   # MS never on the split edge
        for t in range(6):
            archs, _ = tr.step_plan(t)
            assert all(mask_contains(leaf.mask, SP.decode(a)) for a in archs)
        held = {name for name in tr.model.cells[0].edges[0]}
        assert held <= {SP.ops[o] for o in leaf.mask[0]}              # only the split edge's own op
    loaded = load_run(tmp_path / "fs", data=tiny_data)
    archs = [SP.sample(i) for i in range(8)]
    s = Scorer(loaded.model, tiny_data[1], progress="none").score_many(archs)
    for arch, score in zip(archs, s):
        leaf = run.tree.route(arch)
        direct = Scorer(Trainer.resume(run.node_dir(leaf.id), data=tiny_data, fewshot_node=True).model, tiny_data[1],
                        progress="none").score(arch)
        assert score == direct


def test_gm_children_inherit_the_parents_exact_weights(tmp_path, tiny_data, monkeypatch):
    cfg = load_config(None, tiny_overrides(*GM, "fewshot.restart_final=false"))
    captured = {}
    from nshot.train import fewshot
    real = fewshot.inherit

    def spy(parent, child):   # parent: the parent node's checkpoint state
        real(parent, child)
        clone = lambda sd: {k: v.clone() for k, v in sd.items()}
        captured.setdefault("pairs", []).append((clone(parent["model"]), clone(child.model.state_dict()),
                                                 parent["optimizer"], child.optimizer.state_dict()))
    monkeypatch.setattr(fewshot, "inherit", spy)
    run = FewShotRun.create(cfg, tmp_path / "gm", data=tiny_data)
    run.fit()
    assert len(run.tree.leaves()) == 4 and len(captured["pairs"]) == 6
    for psd, csd, popt, copt in captured["pairs"]:
        assert all(torch.equal(csd[k], psd[k]) for k in csd)
        assert len(copt["state"]) > 0
    # the split evidence is recorded: distance matrices of every candidate edge
    info = json.loads((tmp_path / "gm" / "fewshot.json").read_text())["tree"]["nodes"][0]["info"]
    assert info["method"] == "gm" and len(info["candidates"]) == 6
    assert all(len(c["distances"]) == 5 for c in info["candidates"].values())
    # the compute time counts every node's steps and the gradient-matching estimates
    steps = sum(r["seconds"] for n in run.tree.nodes for r in MetricsLog(run.node_dir(n.id) / "metrics.jsonl").read())
    split = sum(run.state["split_seconds"].values())
    assert len(run.state["split_seconds"]) == 3     # the root's split and its two children's
    assert split > 0 and run.train_seconds() == pytest.approx(steps + split)


def test_restart_final_reinitialises_the_last_children(tmp_path, tiny_data):
    cfg = load_config(None, tiny_overrides(*GM, "fewshot.restart_final=true"))
    run = FewShotRun.create(cfg, tmp_path / "gm", data=tiny_data)
    run.fit()
    spe = 3
    for leaf in run.tree.leaves():
        tr = Trainer.resume(run.node_dir(leaf.id), data=tiny_data, fewshot_node=True)
        assert tr.schedule_start == 2 * spe          # a fresh schedule over the remaining epochs
    mids = [n for n in run.tree.nodes if n.parent == 0]
    for n in mids:
        assert Trainer.resume(run.node_dir(n.id), data=tiny_data, fewshot_node=True).schedule_start == 0   # inherited


@pytest.mark.slow
def test_resume_across_splits_equals_uninterrupted(tmp_path, tiny_data, monkeypatch):
    cfg = load_config(None, tiny_overrides(*GM))
    full = FewShotRun.create(cfg, tmp_path / "full", data=tiny_data)
    full.fit()
    want = _leaf_states(full)

    calls = {"n": 0}
    real_step = Trainer.train_step

    def crashing(self, x, y):
        calls["n"] += 1
        if calls["n"] in (4, 11):        # mid-phase of the root, then mid-phase of a child
            raise KeyboardInterrupt
        return real_step(self, x, y)
    monkeypatch.setattr(Trainer, "train_step", crashing)
    FewShotRun.create(cfg, tmp_path / "part", data=tiny_data)
    for _ in range(3):
        try:
            FewShotRun.resume(tmp_path / "part", data=tiny_data).fit()
            break
        except KeyboardInterrupt:
            pass
    assert calls["n"] > 11                       # both interruptions happened
    got = _leaf_states(FewShotRun.resume(tmp_path / "part", data=tiny_data))
    assert want.keys() == got.keys()
    for k in want:
        (msd, ost, step), (msd2, ost2, step2) = want[k], got[k]
        assert step == step2
        assert all(torch.equal(msd[n], msd2[n]) for n in msd), k
        assert all(torch.equal(ost[i][b], ost2[i][b]) for i in ost for b in ost[i])


def test_bad_fewshot_configs(tmp_path, tiny_data):
    from nshot.config import ConfigError
    with pytest.raises(ConfigError, match="fewshot.split_epochs"):
        load_config(None, tiny_overrides("fewshot.method=gm", "fewshot.split_epochs=[5]"))
    with pytest.raises(ValueError, match="exactly one split epoch"):
        FewShotRun(load_config(None, tiny_overrides("fewshot.method=exhaustive", "fewshot.split_epochs=[0,1]")),
                   tmp_path / "x", data=tiny_data)


def test_one_ms_edge_for_the_whole_run_never_split(tmp_path, tiny_data, capsys):
    from nshot.train.trainer import RunDirError
    cfg = load_config(None, tiny_overrides(*GM, "train.optimizer=ms_sgd"))
    run = FewShotRun.create(cfg, tmp_path / "gm", data=tiny_data)
    run.fit()
    edges = {Trainer.resume(run.node_dir(n.id), data=tiny_data, fewshot_node=True).grouping.edge for n in run.tree.nodes}
    assert edges == {run.ms_edge}
    assert all(n.split_decision != run.ms_edge for n in run.tree.nodes if n.children)
    # a node directory is not resumed (or scored) on its own: the whole run is
    with pytest.raises(RunDirError, match="belongs to a few-shot run"):
        Trainer.resume(run.node_dir(1), data=tiny_data)
    with pytest.raises(ValueError, match="is the edge fewshot.method=exhaustive splits"):
        FewShotRun(load_config(None, tiny_overrides("fewshot.method=exhaustive", "train.optimizer=ms_sgd",
                                                    "ms.edge=0")), tmp_path / "x", data=tiny_data)
    with pytest.raises(ValueError, match="fewshot.edge = 9 is out of range"):
        FewShotRun(load_config(None, tiny_overrides("fewshot.method=exhaustive", "fewshot.edge=9")),
                   tmp_path / "y", data=tiny_data)


def test_gm_groups_that_cannot_be_met_are_refused(tmp_path, tiny_data):
    from nshot.config import ConfigError
    with pytest.raises(ConfigError, match=r"fewshot.gm_groups = \[3\] is invalid"):
        load_config(None, tiny_overrides(*GM, "fewshot.gm_groups=[3]"))   # one entry per split epoch
    with pytest.raises(ValueError, match="no decision of the nb201 space has more than 5 choices"):
        FewShotRun(load_config(None, tiny_overrides(*GM, "fewshot.gm_groups=[2,6]")), tmp_path / "x", tiny_data)
    with pytest.raises(ConfigError, match="splits 2 ways only"):
        load_config(None, tiny_overrides(*GM, "fewshot.gm_groups=[2,3]", "arch.method=darts"))
