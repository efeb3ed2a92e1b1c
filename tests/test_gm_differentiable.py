"""GM-NAS with differentiable search: soft GM distances, the DARTS-space partition, halving, projection."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nshot import spaces
from nshot.nn import build_supernet
from nshot.spaces import darts
from nshot.train import gm_differentiable as gm


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_darts_partition_reproduces_hand_computed_splits():
    d4 = np.array([[0, .2, .9, .8], [.2, 0, .7, .6], [.9, .7, 0, .1], [.8, .6, .1, 0]])
    # {0,1}|{2,3}: .2 + .1 = .3; {0,2}|{1,3}: .9 + .6 = 1.5; {0,3}|{1,2}: .8 + .7 = 1.5
    groups, intra = gm.darts_partition(d4)
    assert groups == [[0, 1], [2, 3]] and intra == pytest.approx(0.3)
    cluster = [0, 0, 0, 1, 1, 1, 1, 1]
    d8 = np.array([[0.0 if i == j else (0.1 if cluster[i] == cluster[j] else 1.0) for j in range(8)]
                   for i in range(8)])
    groups, intra = gm.darts_partition(d8)               # 3 + 10 within-cluster pairs at 0.1
    assert groups == [[0, 1, 2], [3, 4, 5, 6, 7]] and intra == pytest.approx(1.3)
    choice = gm.choose_soft_split({9: (list(range(8)), d8), 5: ([1, 3, 4, 6], d4)})
    assert choice["decision"] == 5 and choice["groups"] == [[1, 3], [4, 6]]   # the smallest within-group distance
    assert gm.darts_partition(np.array([[0, .5, .1], [.5, 0, .4], [.1, .4, 0]]))[0] == [[1], [0, 2]]


def test_balanced_split_rule_picks_the_edge_with_the_largest_cross_distance():
    """NB201's rule: each edge's balanced split ({0,1}|{2,3} for d4: cross .9+.8+.7+.6 = 3.0), then the edge
    whose split has the largest cross-group distance; the space names its rule."""
    d4 = np.array([[0, .2, .9, .8], [.2, 0, .7, .6], [.9, .7, 0, .1], [.8, .6, .1, 0]])
    flat = np.full((4, 4), 0.5) - 0.5 * np.eye(4)        # any balanced split: cross 4 x .5 = 2.0
    choice = gm.choose_balanced_split({1: ([0, 1, 2, 3], flat), 4: ([0, 2, 3, 4], d4)})
    assert choice["decision"] == 4 and choice["groups"] == [[0, 2], [3, 4]]
    assert choice["candidates"][4]["cross"] == pytest.approx(3.0) and choice["candidates"][1]["cross"] == pytest.approx(2.0)
    assert gm.choose_balanced_split({2: ([0, 1], flat[:2, :2]), 0: ([0, 1], flat[:2, :2])})["decision"] == 0
    assert gm.SPLIT_RULES[spaces.get("nb201").soft_split_rule] is gm.choose_balanced_split
    assert gm.SPLIT_RULES[spaces.get("darts").soft_split_rule] is gm.choose_soft_split
    with pytest.raises(ValueError, match="no edge has two or more allowed ops"):
        gm.choose_balanced_split({3: ([2], np.zeros((1, 1)))})


def test_soft_gm_distances_are_cosine_distances_of_shared_gradients():
    torch.manual_seed(0)
    net = build_supernet("darts", C=2, N=1, num_classes=3)
    probs = torch.softmax(torch.randn(28, 8), -1)
    batches = [(torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 0]))]
    d = gm.soft_gm_distances(net, probs, 16, [1, 1, 4, 5], batches)
    assert d.shape == (4, 4) and np.allclose(d, d.T, atol=1e-5) and np.all(np.diag(d) == 0)
    assert abs(d[0, 1]) < 1e-4                      # the same op twice: the same gradient (float32 rounding)
    assert d[2, 3] > 1e-4 and np.all((d >= -1e-4) & (d <= 2 + 1e-4))   # float32 rounding, as above
    own = gm.edge_param_names(net, 16)
    assert own and all(".edges.2." in n for n in own)  # reduce edge 16 = edge 2 of each reduction cell


def test_successive_halving_keeps_the_better_half_each_round():
    trained = []
    skill = {"a": 1.0, "b": 4.0, "c": 3.0, "d": 2.0, "e": 0.5}
    progress = {k: 0 for k in skill}

    def train(c, budget):
        trained.append(c)
        progress[c] += budget

    winner, history = gm.successive_halving(list(skill), train, lambda c: skill[c] * progress[c], budget=2)
    assert winner == "b"
    assert [sorted(h) for h in history] == [list("abcde"), ["b", "c"]]
    assert trained.count("a") == 1 and trained.count("b") == 2


def test_successive_halving_replays_finished_rounds_and_reports_each_new_one():
    skill = {"a": 1.0, "b": 4.0, "c": 3.0, "d": 2.0, "e": 0.5}
    progress = {k: 0 for k in skill}
    trained, reported = [], []

    def train(c, budget):
        trained.append(c)
        progress[c] += budget

    def score(c):
        return skill[c] * progress[c]

    full = gm.successive_halving(list(skill), train, score, budget=2,
                                 on_round=lambda h, alive: reported.append((h, alive)))
    assert [alive for _, alive in reported] == [["b", "c"], ["b"]] and reported[-1][0] == full[1]
    trained.clear()
    progress.update({k: 2 for k in skill})
    # resumed after round 1: round 1 is replayed from its scores, only round 2 trains and is scored
    resumed = gm.successive_halving(list(skill), train, score, budget=2, history=full[1][:1])
    assert resumed == full and sorted(trained) == ["b", "c"]
    assert gm.successive_halving(list(skill), train, score, budget=2, history=full[1]) == full
    with pytest.raises(ValueError, match="does not match"):
        gm.successive_halving(list("abc"), train, score, budget=2, history=full[1][:1])


class _Probe(torch.nn.Module):
    """A stand-in supernet whose accuracy depends on chosen op weights: class 1 wins iff ``signal(w) > 0``."""

    def __init__(self, signal):
        super().__init__()
        self.signal = signal

    def forward_mixed(self, x, w):
        s = self.signal(w)
        return torch.stack([torch.zeros(len(x)), torch.full((len(x),), float(s)) - 1e-9], 1)


def test_projection_keeps_the_op_and_edges_whose_removal_hurts_most():
    batches = [(torch.zeros(8, 1), torch.ones(8, dtype=torch.long))]
    # a product: removing any one of these four ops (or their edges) loses every prediction
    probe = _Probe(lambda w: w[3, 2] * w[17, 5] * w[darts.edge_index(4, 3), 7] * w[darts.edge_index(4, 0), 4])
    probs = torch.full((28, 8), 1 / 8)
    w, log = gm.project_ops(probe, probs, batches, exclude=(0,))
    assert int(w[3].argmax()) == 2 and int(w[17].argmax()) == 5 and float(w[3].sum()) == 1.0
    assert int(w[darts.edge_index(4, 3)].argmax()) == 7 and all(float(w[e, 0]) == 0 for e in range(28))
    edge_log = next(r for r in log if r["edge"] == 3)
    assert edge_log["accuracy_without"][2] == 0.0 and edge_log["kept"] == 2
    w, tlog = gm.project_topology(probe, w, batches, spaces.get("darts").topology_groups())
    g = darts.parse_genotype(spaces.get("darts").derive_from_weights(w.numpy()))
    assert tlog[2]["group"] == "normal node 4" and tlog[2]["kept"] == [darts.edge_index(4, 0), darts.edge_index(4, 3)]
    # node 4 keeps inputs 0 (sep_conv_3x3) and 3 (dil_conv_5x5): removing either loses the signal
    assert g.normal[4:6] == (("sep_conv_3x3", 0), ("dil_conv_5x5", 3))
    # node 2 of the normal cell has only two inputs: both kept; other edges kept their first op
    assert [src for _, src in g.normal[0:2]] == [0, 1]


def test_projection_calls_the_tuner_after_every_decision():
    """DARTS-PT tunes the supernet after each op decision and each topology group, with the table so far."""
    batches = [(torch.zeros(8, 1), torch.ones(8, dtype=torch.long))]
    probe = _Probe(lambda w: w[3, 2] * w[17, 5])
    seen = []
    w, log = gm.project_ops(probe, torch.full((28, 8), 1 / 8), batches, exclude=(0,), tune=lambda t: seen.append(t.clone()))
    assert len(seen) == len(log) == 28
    assert all(float(seen[k][log[k]["edge"]].max()) == 1.0 for k in range(28))   # the decided edge is one-hot
    assert float(seen[0][log[1]["edge"]].max()) < 1.0                              # the next one not yet
    groups = spaces.get("darts").topology_groups()
    seen.clear()
    w2, tlog = gm.project_topology(probe, w, batches, groups, tune=lambda t: seen.append(t.clone()))
    assert len(seen) == len(groups) == 8 and torch.equal(seen[-1], w2)
    e0, e1, e2 = (darts.edge_index(3, j) for j in range(3))
    w[e0] = 0.0                                     # input 0 of node 3 lost every op (a mask of only `none`)
    w3, _ = gm.project_topology(_Probe(lambda t: t[e0].sum() + t[e2].sum()), w, batches, groups[1:2])
    assert float(w3[e0].sum()) == 0 and float(w3[e1].sum()) == 1 and float(w3[e2].sum()) == 1   # never kept


def test_tune_weights_is_deterministic_and_leaves_the_alphas(tmp_path):
    """``tune_weights``: the given number of SGD steps at arch.projection_finetune_lr with the table fixed; the same seed gives
    bit-identical weights from the same state, another seed other weights; the alphas do not move."""
    from nshot.train.differentiable import DifferentiableSearch
    from tests.helpers import darts_config
    cfg = darts_config(**{"arch.projection": "perturbation", "arch.projection_finetune_lr": 0.02})
    runs = [DifferentiableSearch.create(cfg, tmp_path / f"r{i}") for i in range(3)]
    table = runs[0].probs()
    alpha = runs[0].alpha.detach().clone()
    steps = []
    for run, seed in zip(runs, (5, 5, 6)):
        count = [0]
        run.w_opt.register_step_post_hook(lambda *_: count.__setitem__(0, count[0] + 1))
        run.tune_weights(table, 4, seed)
        steps.append(count[0])
        assert {g["lr"] for g in run.w_opt.param_groups} == {0.02}
    assert steps == [4, 4, 4] and torch.equal(runs[0].alpha.detach(), alpha)
    a, b, c = (dict(r.model.state_dict()) for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


@pytest.mark.slow
def test_gm_search_on_nb201_end_to_end(tmp_path):
    """GM-NAS + DARTS on digits: two splits (4 leaves), alphas frozen before the last split, fresh children after
    it, successive halving, perturbation projection inside the winner's mask, and an idempotent resume."""
    import json

    from nshot.config import Config, from_dict
    from nshot.train.checkpoint import load_checkpoint
    from nshot.train.gm_search import GMSearch

    cfg = from_dict(Config, {
        "space": {"name": "nb201"}, "model": {"C": 2, "N": 1}, "threads": 1, "device": "cpu",
        "data": {"name": "digits", "train_subset": 64, "eval_subset": 64}, "train": {"epochs": 3, "batch_size": 32},
        "arch": {"method": "darts", "projection": "perturbation", "projection_finetune_steps": 1,
                 "projection_finetune_lr": 0.01},
        "fewshot": {"method": "gm", "split_epochs": [1, 2], "gm_batches": 1}}).validate()
    run = GMSearch.create(cfg, tmp_path / "gm")
    result = run.fit()
    state = json.loads((tmp_path / "gm" / "gm.json").read_text())
    assert [s["phase"] for s in state["splits"]] == [0, 1, 1] and len(state["leaves"]) == 4
    first = state["splits"][0]
    assert sorted(sum(first["groups"], [])) == [0, 1, 2, 3, 4] and len(first["candidates"]) == 6
    root = load_checkpoint(tmp_path / "gm" / "nodes" / "0" / "checkpoints")
    fresh = GMSearch(cfg, tmp_path / "other")._open({"id": 0, "mask": None, "parent": None})
    assert torch.equal(root["alpha"], fresh.alpha.detach())          # alphas fixed until the last split
    for leaf in state["leaves"]:                                     # the last split's children restarted
        ck = load_checkpoint(tmp_path / "gm" / "nodes" / str(leaf["id"]) / "checkpoints")
        assert leaf["epochs"] == 1 and ck["alpha_frozen_until"] == 0 and ck["mask"] is not None
        parent_split = next(s for s in state["splits"] if s["node"] == leaf["parent"])
        assert sorted(leaf["mask"][parent_split["edge"]]) in [sorted(g) for g in parent_split["groups"]]
    winner = next(leaf for leaf in state["leaves"] if leaf["id"] == result["node"])
    ops = [int(o) for o in __import__("nshot").spaces.get("nb201").decode(result["arch"])]
    assert all(o in winner["mask"][e] for e, o in enumerate(ops))
    assert len(state["halving"]["rounds"]) == 2 and result["projection_log"]
    assert result["projection_finetune_steps"] == 1
    assert GMSearch.resume(tmp_path / "gm").fit() == result
    again = GMSearch.resume(tmp_path / "gm")           # a projection cut off before result.json: done again
    again.state["done"] = False
    again._finish()
    assert json.loads((tmp_path / "gm" / "result.json").read_text()) == result


@pytest.mark.slow
def test_gm_search_resumes_bit_identically_mid_successive_halving(tmp_path, monkeypatch):
    """GM-NAS + DARTS on digits, 4 leaves and 2 halving rounds of 1 epoch (2 steps): run A uninterrupted; run B
    paused (the SIGTERM path: a node's stop flag) in the middle of round 1 and of round 2, killed while round 2
    is scored, and killed between the winner's last step and the projection, resumed each time. B trains exactly
    A's steps, rescoring no finished round, and ends with A's result.json, gm.json and bit-identical leaf
    checkpoints (BN running statistics on: scoring must not move them)."""
    import json

    from nshot.config import Config, from_dict
    from nshot.train.checkpoint import load_checkpoint
    from nshot.train.differentiable import DifferentiableSearch
    from nshot.train.gm_search import GMSearch
    from nshot.train.trainer import load_data

    cfg = from_dict(Config, {
        "space": {"name": "nb201"}, "model": {"C": 2, "N": 1, "bn_track_running_stats": True}, "threads": 1,
        "device": "cpu", "data": {"name": "digits", "train_subset": 64, "eval_subset": 64},
        "train": {"epochs": 5, "batch_size": 32}, "arch": {"method": "darts", "projection": "perturbation"},
        "fewshot": {"method": "gm", "split_epochs": [1, 2], "gm_batches": 1}}).validate()
    data = load_data(cfg)
    steps = {"n": 0, "stop_at": None}
    real_step = DifferentiableSearch.weight_step

    def counted(self, t, x, y):
        steps["n"] += 1
        if steps["stop_at"] == (self.node, t):          # the stop flag Ctrl-C / SIGTERM sets
            steps["stop_at"] = None
            self.request_stop()
        return real_step(self, t, x, y)
    monkeypatch.setattr(DifferentiableSearch, "weight_step", counted)
    scored = []
    real_score = GMSearch._score

    def score(self, node):
        scored.append(node.node)
        if len(scored) == kill_at_score:
            raise RuntimeError("killed while scoring")
        return real_score(self, node)
    monkeypatch.setattr(GMSearch, "_score", score)

    kill_at_score = None
    result = GMSearch.create(cfg, tmp_path / "a", data=data).fit()
    want_steps, state = steps["n"], json.loads((tmp_path / "a" / "gm.json").read_text())
    leaves = [str(leaf["id"]) for leaf in state["leaves"]]
    rounds = state["halving"]["rounds"]
    assert len(leaves) == 4 and list(rounds[0]) == leaves and len(rounds) == 2 and len(rounds[1]) == 2
    assert state["halving"]["epochs_per_round"] == 1 and "halving_progress" not in state
    assert len(scored) == 6

    # B, 1: paused after the first step of the second leaf in round 1 (the first leaf has finished its round)
    steps["n"], scored[:] = 0, []
    steps["stop_at"] = (int(leaves[1]), 0)
    assert GMSearch.create(cfg, tmp_path / "b", data=data).fit() is None
    progress = json.loads((tmp_path / "b" / "gm.json").read_text())["halving_progress"]
    assert progress["start"] == {k: 0 for k in leaves} and progress["history"] == [] and not scored
    assert load_checkpoint(tmp_path / "b" / "nodes" / leaves[0] / "checkpoints")["step"] == 2
    assert load_checkpoint(tmp_path / "b" / "nodes" / leaves[1] / "checkpoints")["step"] == 1
    # 2: resumed; round 1 ends (the first leaf trains no further) and is scored; paused again after the first
    # step of round 2's first survivor (the second survivor's checkpoint predates round 1's scoring)
    survivors = list(rounds[1])
    steps["stop_at"] = (int(survivors[0]), 2)
    assert GMSearch.resume(tmp_path / "b", data=data).fit() is None
    assert sorted(scored) == sorted(int(k) for k in leaves)
    progress = json.loads((tmp_path / "b" / "gm.json").read_text())["halving_progress"]
    assert progress["history"] == rounds[:1] and progress["alive"] == survivors
    assert [load_checkpoint(tmp_path / "b" / "nodes" / k / "checkpoints")["step"] for k in survivors] == [3, 2]
    # 3: resumed; round 1 is not rescored, round 2 ends; killed when it is scored
    scored[:], kill_at_score = [], 1
    with pytest.raises(RuntimeError, match="killed while scoring"):
        GMSearch.resume(tmp_path / "b", data=data).fit()
    assert [load_checkpoint(tmp_path / "b" / "nodes" / k / "checkpoints")["step"] for k in survivors] == [4, 4]
    # 4: resumed; round 2 is scored (its leaves train no further), the winner trains; killed before the projection
    scored[:], kill_at_score = [], None
    real_finish = GMSearch._finish

    def killed(self):
        raise RuntimeError("killed before the projection")
    monkeypatch.setattr(GMSearch, "_finish", killed)
    with pytest.raises(RuntimeError, match="killed before the projection"):
        GMSearch.resume(tmp_path / "b", data=data).fit()
    assert sorted(scored) == sorted(int(k) for k in rounds[1])
    assert json.loads((tmp_path / "b" / "gm.json").read_text())["halving"] == state["halving"]
    monkeypatch.setattr(GMSearch, "_finish", real_finish)
    # 5: resumed; only the projection is left
    scored[:] = []
    assert GMSearch.resume(tmp_path / "b", data=data).fit() == result and not scored
    assert steps["n"] == want_steps                     # no step trained twice, none skipped
    assert json.loads((tmp_path / "b" / "gm.json").read_text()) == state
    assert json.loads((tmp_path / "b" / "result.json").read_text()) == result
    for key in leaves:                                  # the winner and every loser, bit for bit
        a, b = (load_checkpoint(tmp_path / run / "nodes" / key / "checkpoints") for run in "ab")
        assert a["step"] == b["step"] and torch.equal(a["alpha"], b["alpha"]), key
        assert a["model"].keys() == b["model"].keys()
        assert all(torch.equal(a["model"][n], b["model"][n]) for n in a["model"]), key
        assert all(torch.equal(a["w_opt"]["state"][i]["momentum_buffer"], b["w_opt"]["state"][i]["momentum_buffer"])
                   for i in a["w_opt"]["state"]), key
    winner = str(result["node"])
    assert load_checkpoint(tmp_path / "b" / "nodes" / winner / "checkpoints")["step"] == 6


def test_gm_snas_on_the_darts_space_end_to_end(tmp_path):
    """GM-NAS + SNAS on the DARTS space (digits, one split): the split partitions one of the 14 x 2 cell edges'
    8 ops into 2 groups, each child's alphas and sampling stay inside its mask, the winner's genotype is a valid
    DARTS genotype inside the winning leaf's mask, and a resume returns the same result."""
    import json

    from nshot.config import Config, from_dict
    from nshot.train.gm_search import GMSearch

    cfg = from_dict(Config, {
        "space": {"name": "darts"}, "model": {"C": 2, "N": 1}, "threads": 1, "device": "cpu",
        "data": {"name": "digits", "train_subset": 64, "eval_subset": 64}, "train": {"epochs": 2, "batch_size": 32},
        "arch": {"method": "snas"},
        "fewshot": {"method": "gm", "split_epochs": [1], "gm_batches": 1}}).validate()
    run = GMSearch.create(cfg, tmp_path / "gm")
    result = run.fit()
    state = json.loads((tmp_path / "gm" / "gm.json").read_text())
    assert len(state["splits"]) == 1 and len(state["leaves"]) == 2
    split = state["splits"][0]
    assert sorted(sum(split["groups"], [])) == list(range(8)) and len(split["groups"]) == 2
    assert 0 <= split["edge"] < 28
    sp = __import__("nshot").spaces.get("darts")
    assert sp.parse(result["arch"]) == result["arch"]
    winner = next(leaf for leaf in state["leaves"] if leaf["id"] == result["node"])
    g = darts.parse_genotype(result["arch"])
    assert winner["mask"][split["edge"]] in [sorted(grp) for grp in split["groups"]] or \
        sorted(winner["mask"][split["edge"]]) in [sorted(grp) for grp in split["groups"]]
    assert g is not None
    assert GMSearch.resume(tmp_path / "gm").fit() == result
