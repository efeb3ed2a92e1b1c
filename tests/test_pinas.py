"""Pi-NAS: paired paths, views, path-wise EMA teacher, FIFO queue, InfoNCE, cross-path targets, resume."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nshot import spaces
from nshot.config import ConfigError, load_config
from nshot.data.views import ViewConfig, contrastive_view, gaussian_blur
from nshot.train import rng
from nshot.train.pinas import default_queue_size, info_nce
from nshot.train.sampler import PairSampler
from nshot.train.trainer import Trainer
from tests.helpers import pinas_overrides

SP = spaces.get("nb201")


# -- paired paths -----------------------------------------------------------------------------------------
def test_pair_sampler_paths_differ_at_every_decision():
    s = PairSampler(SP)
    counts = np.zeros((6, 5, 5), dtype=int)
    for t in range(400):
        a, b = s.paths(rng.step_rng(0, rng.SAMPLER, t))
        da, db = SP.decode(a), SP.decode(b)
        assert all(x != y for x, y in zip(da, db))
        for e, (x, y) in enumerate(zip(da, db)):
            counts[e, x, y] += 1
    # every ordered pair of distinct ops occurs on every edge (drawn without replacement, uniformly)
    off = ~np.eye(5, dtype=bool)
    assert (counts[:, off] > 0).all() and (counts[:, ~off] == 0).all()


def test_pair_sampler_respects_masks_and_shares_forced_or_single_choices():
    mask = [[0, 3], [1], [2, 3, 4], [0, 1, 2, 3, 4], [4], [1, 2]]
    s = PairSampler(SP, mask=mask)
    for t in range(100):
        a, b = s.paths(rng.step_rng(1, rng.SAMPLER, t), forced={3: 2})
        da, db = SP.decode(a), SP.decode(b)
        for e, m in enumerate(mask):
            assert da[e] in m and db[e] in m
        assert da[1] == db[1] == 1 and da[4] == db[4] == 4 and da[3] == db[3] == 2
        assert da[0] != db[0] and da[2] != db[2] and da[5] != db[5]


def test_config_requires_pair_sampler_and_composes_with_fewshot():
    with pytest.raises(ConfigError, match="needs train.sampler = pair"):
        load_config(None, ["train.objective=pinas"])
    for method in ("exhaustive", "gm"):   # tests/test_fewshot_pinas.py trains both
        assert load_config(None, ["train.objective=pinas", "train.sampler=pair",
                                  f"fewshot.method={method}"]).fewshot.method == method
    with pytest.raises(ConfigError, match="pinas.temperature"):
        load_config(None, ["train.objective=pinas", "train.sampler=pair", "pinas.temperature=0"])


# -- views ------------------------------------------------------------------------------------------------
def test_blur_with_zero_sigma_is_the_identity_and_preserves_the_mean():
    x = torch.rand(2, 3, 16, 16)
    out = gaussian_blur(x, torch.tensor([0.0, 1.5]))
    torch.testing.assert_close(out[0], x[0])
    assert not torch.allclose(out[1], x[1])
    assert abs(float(out[1].mean() - x[1].mean())) < 0.02          # a normalised kernel keeps brightness


def test_contrastive_view_is_seeded_and_differs_between_seeds():
    x = torch.randint(0, 256, (6, 3, 12, 12), dtype=torch.uint8)
    m, s = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    a, b = contrastive_view(x, m, s, 7), contrastive_view(x, m, s, 7)
    assert a.shape == (6, 3, 12, 12) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, contrastive_view(x, m, s, 8))
    gray = contrastive_view(x, m, s, 3, ViewConfig(p_gray=1.0, p_jitter=0.0, p_blur=0.0))
    torch.testing.assert_close(gray[:, 0], gray[:, 1])
    torch.testing.assert_close(gray[:, 1], gray[:, 2])
    one = contrastive_view(x[:, :1], (0.5,), (0.25,), 3)            # grayscale input: no colour ops, no error
    assert one.shape == (6, 1, 12, 12)
    with pytest.raises(ValueError, match="crop scale"):
        contrastive_view(x, m, s, 0, ViewConfig(scale=(0.0, 1.0)))


# -- loss and queue -----------------------------------------------------------------------------------------
def test_info_nce_equals_the_hand_computed_value():
    q = F.normalize(torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 1.0]]), dim=1)
    k = F.normalize(torch.tensor([[0.5, 2.0, 1.0], [1.0, 0.0, 1.0]]), dim=1)
    neg = F.normalize(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [-1.0, 1.0, 1.0]]), dim=1)
    tau = 0.2
    loss, correct = info_nce(q, k, neg, tau)
    expected = []
    for i in range(2):
        pos = math.exp(float(q[i] @ k[i]) / tau)
        negs = sum(math.exp(float(q[i] @ n) / tau) for n in neg)
        expected.append(-math.log(pos / (pos + negs)))
    assert loss.item() == pytest.approx(sum(expected) / 2, rel=1e-6)
    best_is_pos = [float(q[i] @ k[i]) > max(float(q[i] @ n) for n in neg) for i in range(2)]
    assert int(correct) == sum(best_is_pos)


def test_queue_is_fifo_with_the_right_size_and_content(tmp_path, tiny_data):
    tr = Trainer.create(load_config(None, pinas_overrides("pinas.queue_size=5")), tmp_path / "r", data=tiny_data)
    obj = tr.objective
    assert obj.queue.shape == (5, 8)
    keys = [torch.full((2, 8), float(i)) for i in range(1, 5)]           # batches of two keys: 1,1 2,2 3,3 4,4
    for k in keys:
        obj.enqueue(k)
    # 8 keys into 5 slots: slots 0..4 got 1 1 2 2 3, then 3 4 4 overwrite slots 0..2 (the three oldest)
    assert obj.queue[:, 0].tolist() == [3.0, 4.0, 4.0, 2.0, 3.0] and obj.ptr == 3
    newest_first = [obj.queue[(obj.ptr - 1 - i) % 5, 0].item() for i in range(5)]
    assert newest_first == [4.0, 4.0, 3.0, 3.0, 2.0]
    obj.enqueue(torch.arange(7.0).view(7, 1).expand(7, 8))            # more keys than slots: the last five stay
    assert sorted(obj.queue[:, 0].tolist()) == [2.0, 3.0, 4.0, 5.0, 6.0]
    assert default_queue_size(25_000) == 3125 and default_queue_size(100) == 256
    auto = Trainer.create(load_config(None, pinas_overrides("pinas.queue_size=null")), tmp_path / "a", data=tiny_data)
    assert len(auto.objective.queue) == default_queue_size(len(tiny_data[0]))


# -- teacher ------------------------------------------------------------------------------------------------
def _objective(tmp_path, tiny_data, *extra):
    tr = Trainer.create(load_config(None, pinas_overrides(*extra)), tmp_path / "r", data=tiny_data)
    return tr, tr.objective


def test_ema_touches_exactly_the_paths_and_shared_parameters(tmp_path, tiny_data):
    tr, obj = _objective(tmp_path, tiny_data, "pinas.ema=0.5")
    with torch.no_grad():                     # make student and teacher differ everywhere
        for p in [*tr.model.parameters(), *obj.head.parameters()]:
            p.add_(1.0)
    arch = "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|"
    x = torch.randn(8, 3, 8, 8)
    before = {n: p.clone() for n, p in [*obj.teacher.named_parameters(), *(("head." + n, p) for n, p in obj.teacher_head.named_parameters())]}
    z, used = obj.student(x, arch)
    obj.update_teacher(used)
    after = dict([*obj.teacher.named_parameters(), *(("head." + n, p) for n, p in obj.teacher_head.named_parameters())])
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    # exactly the parameters that the same path's student forward gives a gradient
    tr.model.zero_grad(set_to_none=True)
    obj.head.zero_grad(set_to_none=True)
    z.sum().backward()
    on_path = {n for n, p in tr.model.named_parameters() if p.grad is not None}
    on_path |= {"head." + n for n, p in obj.head.named_parameters() if p.grad is not None}
    assert changed == on_path
    assert any(n.startswith("stem") for n in changed) and not any(n.startswith("classifier") for n in changed)
    assert not any("nor_conv_1x1" in n and "edges.0." in n for n in changed)       # other ops of an on-path edge
    for n in changed:                         # theta_t <- 0.5 theta_t + 0.5 theta_s
        src = dict(tr.model.named_parameters()).get(n) if not n.startswith("head.") else dict(obj.head.named_parameters())[n[5:]]
        torch.testing.assert_close(after[n], 0.5 * before[n] + 0.5 * src.detach())


def test_no_gradient_reaches_the_teacher_and_targets_cross_paths(tmp_path, tiny_data):
    tr, obj = _objective(tmp_path, tiny_data, "pinas.ema=0.9", "train.lr_policy=constant")
    train, _ = tiny_data
    x, y = train.x[:16], train.y[:16]
    archs, _ = tr.step_plan(0)
    # an independent recomputation from the same starting state, written out step by step
    ref_tr, ref = _objective(tmp_path / "ref", tiny_data, "pinas.ema=0.9", "train.lr_policy=constant")
    queue0 = ref.queue.clone()
    v = ref.inputs(x, 0)
    qa, ua = ref.student(v[0], archs[0]); ref.update_teacher(ua); ka = ref.key(v[1], archs[0])
    qb, ub = ref.student(v[2], archs[1]); ref.update_teacher(ub); kb = ref.key(v[3], archs[1])
    losses, correct = obj.run(obj.inputs(x, 0), y, archs, [1.0, 1.0])
    torch.testing.assert_close(losses[0], info_nce(qa, kb, queue0, 0.2)[0])      # A's query, B's teacher key
    torch.testing.assert_close(losses[1], info_nce(qb, ka, queue0, 0.2)[0])
    torch.testing.assert_close(obj.queue[:16], (ka + kb) / 2)                     # the mean key, not re-normalised
    assert not torch.allclose(obj.queue[:16].norm(dim=1), torch.ones(16))
    torch.testing.assert_close(obj.queue[16:], queue0[16:])
    assert all(p.grad is None and not p.requires_grad for p in [*obj.teacher.parameters(), *obj.teacher_head.parameters()])
    assert any(p.grad is not None for p in tr.model.parameters()) and all(p.grad is not None for p in obj.head.parameters())


def test_labels_are_not_used(tmp_path, tiny_data):
    tr, obj = _objective(tmp_path, tiny_data)
    _, ref = _objective(tmp_path / "b", tiny_data)
    train, _ = tiny_data
    archs, _ = tr.step_plan(0)
    la, _ = obj.run(obj.inputs(train.x[:16], 0), train.y[:16], archs, [1.0, 1.0])
    lb, _ = ref.run(ref.inputs(train.x[:16], 0), torch.zeros(16, dtype=torch.long), archs, [1.0, 1.0])
    assert torch.equal(la, lb)


def test_shuffle_bn_normalises_queries_and_keys_over_different_groups(tmp_path, tiny_data):
    tr, obj = _objective(tmp_path, tiny_data, "pinas.bn_groups=2")
    train, _ = tiny_data
    views = obj.inputs(train.x[:16], 3)
    x, arch = views[1], "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    order = obj.shuffle_order(0, 16, x.device)
    assert sorted(order.tolist()) == list(range(16)) and not torch.equal(order, torch.arange(16))
    # teacher: every image normalised with the statistics of its group of the shuffled batch, rows back in order
    k = obj.key(x, arch, order)
    want = torch.empty_like(k)
    with torch.no_grad():
        for g in order.tensor_split(2):
            want[g] = F.normalize(obj.teacher_head(obj.teacher.features(x[g], arch)), dim=1)
    torch.testing.assert_close(k, want)
    # student: contiguous groups, so an image of the second half does not move the first half's queries
    q, _ = obj.student(views[0], arch)
    changed = views[0].clone()
    changed[12] += 1.0
    q2, _ = obj.student(changed, arch)
    assert torch.equal(q2[:8], q[:8]) and not torch.allclose(q2[8:], q[8:])
    assert not torch.allclose(q[0], q[1])     # (the queries are not constant)
    # a group would hold < 2 images: one group, the plain forward
    with torch.no_grad():
        plain = F.normalize(obj.teacher_head(obj.teacher.features(x[:3], arch)), dim=1)
    torch.testing.assert_close(obj.key(x[:3], arch, obj.shuffle_order(0, 3, x.device)), plain)
    # the order is a function of (seed, step, slice start): ranks and micro-batches agree on it
    _, other = _objective(tmp_path / "other", tiny_data, "pinas.bn_groups=2")
    other.inputs(train.x[:16], 3)
    assert torch.equal(other.shuffle_order(0, 16, x.device), order)
    assert not torch.equal(other.shuffle_order(16, 16, x.device), order)
    other.inputs(train.x[:16], 4)
    assert not torch.equal(other.shuffle_order(0, 16, x.device), order)
    assert _objective(tmp_path / "off", tiny_data)[1].shuffle_order(0, 16, x.device) is None


# -- composition and resume -------------------------------------------------------------------------------
@pytest.mark.parametrize("extra", [(), ("train.lr_policy=calr", "train.optimizer=ms_sgd", "ms.edge=1"),
                                   ("pinas.bn_groups=2",)])
def test_resume_equals_uninterrupted(tmp_path, tiny_data, extra):
    cfg = load_config(None, pinas_overrides(*extra))
    full = Trainer.create(cfg, tmp_path / "full", data=tiny_data)
    full.fit()
    part = Trainer.create(cfg, tmp_path / "part", data=tiny_data)
    part.fit(max_steps=4)
    resumed = Trainer.resume(tmp_path / "part", data=tiny_data)
    resumed.fit()
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k
    sa, sb = full.objective.state_dict(), resumed.objective.state_dict()
    for part_name in ("head", "teacher", "teacher_head"):
        for k in sa[part_name]:
            assert torch.equal(sa[part_name][k], sb[part_name][k]), (part_name, k)
    assert torch.equal(sa["queue"], sb["queue"]) and sa["ptr"] == sb["ptr"]
    oa, ob = full.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    assert oa.keys() == ob.keys() and all(torch.equal(oa[i][k], ob[i][k]) for i in oa for k in oa[i])
    recs = full.metrics.read()
    assert len(recs) == 3 and all(math.isfinite(r["loss"]) for r in recs)


def test_ms_group_is_path_as_op_on_the_ms_edge(tmp_path, tiny_data):
    tr, _ = _objective(tmp_path, tiny_data, "train.optimizer=ms_sgd", "ms.edge=3")
    for t in range(8):
        archs, k = tr.step_plan(t)
        assert len(archs) == 2 and SP.decode(archs[0])[3] == k != SP.decode(archs[1])[3]


def test_skipped_nonfinite_step_restores_teacher_and_queue(tmp_path, tiny_data):
    tr, obj = _objective(tmp_path, tiny_data, "train.nonfinite=skip")
    train, _ = tiny_data
    before = obj.snapshot()
    with torch.no_grad():
        tr.model.stem[0].weight[0, 0, 0, 0] = float("nan")
    out = tr.train_step(train.x[:16], train.y[:16])
    assert out["skipped"]
    assert torch.equal(obj.queue, before[1]) and obj.ptr == before[2]
    for a, b in zip(obj._teacher_tensors(), before[0]):
        assert torch.equal(a, b)
