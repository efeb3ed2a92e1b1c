"""Pi-NAS with few-shot splits: pair paths inside a sub-supernet's mask, inherited teacher/queue/head,
gradient matching on InfoNCE gradients, resume across splits equal to an uninterrupted run."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nshot import spaces
from nshot.config import load_config
from nshot.score import Scorer, load_run
from nshot.score.scorer import ScoreProtocol
from nshot.train import Trainer
from nshot.train.fewshot import FewShotRun
from nshot.train.gradmatch import _base_path, decision_param_names, gm_distances, loss_gradients
from nshot.train.partition import mask_contains
from nshot.train.pinas import InfoNCEGM, info_nce

from tests.helpers import pinas_overrides

SP = spaces.get("nb201")
GM = ["fewshot.method=gm", "fewshot.split_epochs=[1,2]", "fewshot.gm_batches=1", "train.epochs=3",
      "fewshot.inherit=true", "train.checkpoint_every_steps=1", "train.batch_size=48"]


def overrides(*extra: str) -> list[str]:
    return pinas_overrides("threads=1", *extra)


def _clone(sd):
    return {k: _clone(v) if isinstance(v, dict) else (v.clone() if torch.is_tensor(v) else v) for k, v in sd.items()}


def test_exhaustive_pinas_pairs_inside_masks_and_children_inherit_the_objective(tmp_path, tiny_data, monkeypatch):
    cfg = load_config(None, overrides("fewshot.method=exhaustive", "fewshot.split_epochs=[1]",
                                      "fewshot.inherit=true", "train.epochs=2", "train.batch_size=48"))
    from nshot.train import fewshot
    real, seen = fewshot.inherit, []

    def spy(parent, child):   # parent: the parent node's checkpoint state
        real(parent, child)
        seen.append((_clone(parent["objective"]), _clone(child.objective.state_dict()),
                     _clone(child.model.state_dict())))
    monkeypatch.setattr(fewshot, "inherit", spy)
    run = FewShotRun.create(cfg, tmp_path / "fs", data=tiny_data)
    run.fit()
    assert run.done and len(run.tree.leaves()) == 5 and len(seen) == 5
    for p, c, model in seen:          # the whole objective state carries over; the teacher on the child's modules
        assert torch.equal(p["queue"], c["queue"]) and p["ptr"] == c["ptr"]
        for part in ("head", "teacher_head"):
            assert all(torch.equal(p[part][k], c[part][k]) for k in c[part])
        assert set(c["teacher"]) == set(model) and all(torch.equal(p["teacher"][k], c["teacher"][k]) for k in c["teacher"])
    for leaf in run.tree.leaves():
        tr = Trainer.resume(run.node_dir(leaf.id), data=tiny_data, fewshot_node=True)
        for t in range(5):
            a, b = (SP.decode(x) for x in tr.step_plan(t)[0])
            assert mask_contains(leaf.mask, a) and mask_contains(leaf.mask, b)
            assert a[0] == b[0] == leaf.mask[0][0] and all(x != y for x, y in zip(a[1:], b[1:]))
    loaded = load_run(tmp_path / "fs", data=tiny_data)     # a probe scores a partitioned Pi-NAS supernet
    arch = SP.sample(3)
    s = Scorer(loaded.model, tiny_data[1], ScoreProtocol(probe="knn", probe_images=64), train_data=tiny_data[0],
               progress="none").score(arch)
    leaf = Trainer.resume(run.node_dir(run.tree.route(arch).id), data=tiny_data, fewshot_node=True).model
    assert s == Scorer(leaf, tiny_data[1], ScoreProtocol(probe="knn", probe_images=64), train_data=tiny_data[0],
                       progress="none").score(arch)
    # one shared head serves every sub-supernet: a path's score is the head on its leaf's features
    from nshot.score.bn import batch_stats_mode
    from nshot.score.rank import make_scorer
    shared = make_scorer(loaded, probe="shared-linear", probe_images=64, probe_epochs=1, progress="none")
    got = shared.score(arch)
    with torch.no_grad(), batch_stats_mode(leaf):
        leaf.eval()
        from nshot.data import normalize
        x = normalize(tiny_data[1].x, tiny_data[1].mean, tiny_data[1].std)
        pred = shared.head(leaf.features(x, arch)).argmax(1)
    assert got == pytest.approx(100.0 * float((pred == tiny_data[1].y).double().mean()))


def test_gm_estimate_is_the_infonce_gradient_of_the_shared_weights(tmp_path, tiny_data):
    tr = Trainer.create(load_config(None, overrides("train.epochs=1")), tmp_path / "r", data=tiny_data)
    tr.fit(until=2)
    obj, model = tr.objective, tr.model
    mask = [tuple(range(5))] * 6
    mask[4] = (2,)                                         # a decision fixed by an earlier split: shared
    state = _clone(obj.state_dict()["teacher"]), obj.queue.clone(), obj.ptr
    x = tiny_data[0].x[:16]
    views = [obj.inputs(x, 0)[0], obj.inputs(x, 0)[1]]
    d = 1
    got = gm_distances(model, SP, mask, d, [views], np.random.default_rng(5), InfoNCEGM(obj, SP, mask))
    # by hand: the same base path and partner draws, the student's InfoNCE against the partner's teacher key
    g = np.random.default_rng(5)
    base = _base_path(SP, mask, d, g)
    partner = []
    for e, allowed in enumerate(mask):
        others = [c for c in allowed if c != base[e]]
        partner.append(int(others[int(g.integers(len(others)))]) if others else base[e])
    assert partner[4] == base[4] == 2 and all(p != b for e, (p, b) in enumerate(zip(partner, base)) if e != 4)
    key = obj.key(views[1], SP.encode(partner))
    excluded = decision_param_names(model, d)
    params = [p for n, p in model.named_parameters() if n not in excluded] + list(obj.head.parameters())
    grads = []
    for o in mask[d]:
        base[d] = o
        arch = SP.encode(base)
        grads.append(loss_gradients(model, lambda: info_nce(obj.student(views[0], arch)[0], key, obj.queue,
                                                            obj.temperature)[0], params))
    g = torch.stack(grads)
    cos = (g @ g.T) / (g.norm(dim=1)[:, None] * g.norm(dim=1)[None, :] + 1e-6)
    want = (1 - cos).double().numpy()
    np.fill_diagonal(want, 0.0)
    assert np.allclose(got, want, atol=1e-6) and got[np.triu_indices(5, 1)].max() > 0
    # only gradients were taken: the teacher, the queue and its pointer are untouched, no gradient is left
    assert all(torch.equal(v, state[0][k]) for k, v in obj.state_dict()["teacher"].items())
    assert torch.equal(obj.queue, state[1]) and obj.ptr == state[2]
    assert all(p.grad is None for p in params)


def _leaf_states(run):
    out = {}
    for leaf in run.tree.leaves():
        tr = Trainer.resume(run.node_dir(leaf.id), data=run.data, fewshot_node=True)
        out[leaf.id] = (tr.model.state_dict(), tr.optimizer.state_dict()["state"], tr.objective.state_dict(), tr.step)
    return out


@pytest.mark.slow
def test_pinas_gm_resume_across_splits_equals_uninterrupted(tmp_path, tiny_data, monkeypatch):
    cfg = load_config(None, overrides(*GM))
    full = FewShotRun.create(cfg, tmp_path / "full", data=tiny_data)
    full.fit()
    want = _leaf_states(full)
    info = full.tree.nodes[0].info
    assert info["method"] == "gm" and len(info["candidates"]) == 6 and len(want) == 4
    calls = {"n": 0}
    real_step = Trainer.train_step

    def crashing(self, x, y):
        calls["n"] += 1
        if calls["n"] in (2, 5):        # mid-phase of the root, then mid-phase of a child
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
    assert calls["n"] > 5
    part = FewShotRun.resume(tmp_path / "part", data=tiny_data)
    assert part.tree.to_dict() == full.tree.to_dict()        # the same splits from the same InfoNCE evidence
    got = _leaf_states(part)
    for k in want:
        (m1, o1, ob1, s1), (m2, o2, ob2, s2) = want[k], got[k]
        assert s1 == s2
        assert all(torch.equal(m1[n], m2[n]) for n in m1)
        assert all(torch.equal(o1[i][b], o2[i][b]) for i in o1 for b in o1[i])
        assert torch.equal(ob1["queue"], ob2["queue"]) and ob1["ptr"] == ob2["ptr"]
        assert all(torch.equal(ob1["teacher"][n], ob2["teacher"][n]) for n in ob1["teacher"])
