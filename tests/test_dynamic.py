"""CaLR, momentum separation, FairNAS, and their composition in the trainer."""
import io
import math

import numpy as np
import pytest
import torch

from nshot import spaces
from nshot.config import load_config
from nshot.train import Trainer
from nshot.train.complexity import get_complexity
from nshot.train.grouping import ComplexityGrouping, EdgeGrouping, KMeansGrouping, resolve_edge
from nshot.train.lr import CaLR
from nshot.train.ms_sgd import MomentumSeparatedSGD
from nshot.train.sampler import FairSampler
from tests.helpers import tiny_overrides

SP = spaces.get("nb201")
NONE6, CONV6 = SP.encode([0] * 6), SP.encode([3] * 6)


@pytest.fixture(scope="module")
def cx():
    return get_complexity("nb201", "params", C=16, N=5, num_classes=10, in_channels=3)


# -- CaLR ----------------------------------------------------------------------------------------------------
def test_gamma_is_exact_at_both_ends(cx):
    for gmax in (4.0, 2.5, 7.0):
        p = CaLR(0.025, 0.0, cx, gmax)
        assert p.gamma(NONE6) == gmax and p.gamma(CONV6) == 1.0 / gmax
    assert cx.c_min == SP.num_params(NONE6) == 73306 and cx.c_max == SP.num_params(CONV6) == 1531546


def test_gamma_is_linear_in_log_complexity(cx):
    p = CaLR(0.025, 0.0, cx, 4.0)
    for arch in [SP.sample(i) for i in range(20)]:
        u = (math.log(SP.num_params(arch)) - math.log(73306)) / (math.log(1531546) - math.log(73306))
        assert p.gamma(arch) == pytest.approx(4.0 + u * (0.25 - 4.0), abs=1e-12)


def test_gamma_max_one_is_the_linear_schedule(cx):
    p = CaLR(0.1, 0.001, cx, 1.0)
    T = 1000
    for arch in (NONE6, CONV6, SP.sample(3)):
        for t in (0, 1, 250, 999, 1000):
            assert p(t, T, arch) == pytest.approx(0.001 + (0.1 - 0.001) * (1 - t / T), abs=1e-15)


@pytest.mark.parametrize("t, T, arch_digits", [(0, 100, [0] * 6), (25, 100, [0] * 6), (50, 100, [3] * 6),
                                               (75, 100, [3, 3, 0, 0, 0, 0]), (99, 100, [2] * 6)])
def test_lr_matches_the_formula(cx, t, T, arch_digits):
    arch = SP.encode(arch_digits)
    lr0, lr_min, gmax = 0.025, 0.001, 4.0
    c = SP.num_params(arch)
    g = gmax + (1 / gmax - gmax) * (math.log(c) - math.log(73306)) / (math.log(1531546) - math.log(73306))
    expected = lr_min + (lr0 - lr_min) * (1 - t / T) ** g
    assert CaLR(lr0, lr_min, cx, gmax)(t, T, arch) == pytest.approx(expected, rel=1e-12)


def test_calr_table_values_of_the_paper_notes(cx):
    # METHODS.md 2.2: all none/skip/pool -> gamma 4, factor 0.316 at 25 % of training; all conv3x3 -> 0.931
    p = CaLR(1.0, 0.0, cx, 4.0)
    assert p(250, 1000, NONE6) == pytest.approx(0.75 ** 4) and round(p(250, 1000, NONE6), 3) == 0.316
    assert round(p(250, 1000, CONV6), 3) == 0.931


# -- momentum separation ----------------------------------------------------------------------------------
def _params(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(4, 3, generator=g)), torch.nn.Parameter(torch.randn(5, generator=g)),
            torch.nn.Parameter(torch.randn(2, 2, generator=g))]


def _grads(step, params, skip=None):
    g = torch.Generator().manual_seed(100 + step)
    for i, p in enumerate(params):
        p.grad = None if i == skip else torch.randn(p.shape, generator=g)


def test_ms_with_one_group_is_torch_sgd_step_for_step():
    a, b = _params(), _params()
    ms = MomentumSeparatedSGD(a, lr=0.05, num_groups=1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    ref = torch.optim.SGD(b, lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    for step in range(12):
        skip = step % 3 if step % 2 else None     # off-path parameters: grad None -> no update at all
        _grads(step, a, skip), _grads(step, b, skip)
        for pg in ms.param_groups + ref.param_groups:
            pg["lr"] = 0.05 * (1 - step / 12)
        ms.select_group(0), ms.step(), ref.step()
        for x, y in zip(a, b):
            assert torch.equal(x, y)


def test_a_step_in_one_group_leaves_other_groups_bit_identical():
    ps = _params()
    opt = MomentumSeparatedSGD(ps, lr=0.1, num_groups=5, momentum=0.9, nesterov=True, weight_decay=5e-4)
    _grads(0, ps), opt.select_group(1), opt.step()
    _grads(1, ps), opt.select_group(3), opt.step()
    assert opt.momentum_buffer(ps[0], 0) is None          # lazily allocated: group 0 never stepped
    before = {k: opt.momentum_buffer(p, k).clone() for p in ps for k in (1,)}
    snapshot3 = [opt.momentum_buffer(p, 3).clone() for p in ps]
    for s in range(2, 6):
        _grads(s, ps), opt.select_group(1), opt.step()
    assert all(torch.equal(opt.momentum_buffer(p, 3), m) for p, m in zip(ps, snapshot3))
    assert not all(torch.equal(opt.momentum_buffer(p, 1), before[1]) for p in ps)


def test_ms_state_dict_round_trips():
    a, b = _params(), _params()
    oa = MomentumSeparatedSGD(a, lr=0.1, num_groups=3, momentum=0.9, nesterov=True, weight_decay=1e-4)
    for s in range(4):
        _grads(s, a), oa.select_group(s % 3), oa.step()
    with torch.no_grad():
        for x, y in zip(a, b):
            y.copy_(x)
    ob = MomentumSeparatedSGD(b, lr=0.1, num_groups=3, momentum=0.9, nesterov=True, weight_decay=1e-4)
    buf = io.BytesIO()
    torch.save(oa.state_dict(), buf)                      # as a checkpoint does
    ob.load_state_dict(torch.load(io.BytesIO(buf.getvalue())))
    for s in range(4, 9):
        _grads(s, a), _grads(s, b)
        oa.select_group(s % 3), oa.step(), ob.select_group(s % 3), ob.step()
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    with pytest.raises(ValueError, match="3 momentum groups"):
        MomentumSeparatedSGD(_params(), lr=0.1, num_groups=2, momentum=0.9).load_state_dict(oa.state_dict())
    with pytest.raises(ValueError, match="out of range"):
        oa.select_group(3)


# -- samplers and groupings ---------------------------------------------------------------------------------
def test_fairnas_uses_every_op_of_every_edge_once_per_step():
    s = FairSampler(SP)
    for seed in range(20):
        paths = s.paths(np.random.default_rng(seed))
        assert len(paths) == 5
        cols = np.array([SP.decode(a) for a in paths]).T
        assert all(sorted(c) == [0, 1, 2, 3, 4] for c in cols)
    forced = s.paths(np.random.default_rng(0), forced={2: 4})
    cols = np.array([SP.decode(a) for a in forced]).T
    assert list(cols[2]) == [4] * 5 and all(sorted(c) == [0, 1, 2, 3, 4] for i, c in enumerate(cols) if i != 2)


def test_groupings(cx):
    e = EdgeGrouping(SP, 4)
    assert e.num_groups == 5 and e(SP.encode([0, 0, 0, 0, 3, 0])) == 3
    assert resolve_edge("random", SP, seed=1) == resolve_edge("random", SP, seed=1)
    assert all(resolve_edge("random", SP, s, exclude=0) != 0 for s in range(30))
    small = get_complexity("nb201", "params", C=4, N=1, num_classes=10, in_channels=3)
    cg = ComplexityGrouping(SP, small, 5)
    counts = np.bincount([cg(a) for a in SP.enumerate()], minlength=5)
    assert len(counts) == 5 and counts.min() > 0
    assert cg(NONE6) == 0 and cg(CONV6) == 4
    km = KMeansGrouping(SP, 5, seed=0)
    assert km(CONV6) == KMeansGrouping(SP, 5, seed=0)(CONV6)
    assert len({km(a) for a in SP.enumerate()}) == 5


# -- composition in the trainer -----------------------------------------------------------------------------
COMBOS = [(s, l, o) for s in ("uniform", "fair") for l in ("cosine", "calr") for o in ("sgd", "ms_sgd")]


@pytest.mark.parametrize("sampler, policy, optimizer", COMBOS)
def test_resume_equals_uninterrupted_for_every_combination(tmp_path, tiny_data, sampler, policy, optimizer):
    cfg = load_config(None, tiny_overrides(f"train.sampler={sampler}", f"train.lr_policy={policy}",
                                           f"train.optimizer={optimizer}", "diagnostics.grad_momentum_cos_every=1"))
    full = Trainer.create(cfg, tmp_path / "full", data=tiny_data)
    full.fit()
    part = Trainer.create(cfg, tmp_path / "part", data=tiny_data)
    part.fit(max_steps=5)
    resumed = Trainer.resume(tmp_path / "part", data=tiny_data)
    resumed.fit()
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k
    sa, sb = full.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    assert sa.keys() == sb.keys() and all(torch.equal(sa[i][k], sb[i][k]) for i in sa for k in sa[i])
    strip = lambda rs: [{k: v for k, v in r.items() if k not in ("seconds", "images_per_s")} for r in rs]
    assert strip(full.metrics.read()) == strip(resumed.metrics.read())
    recs = full.metrics.read()
    cosines = [r["grad_momentum_cos"] for r in recs if "grad_momentum_cos" in r]  # absent until a buffer exists
    assert cosines and all(-1 <= c <= 1 for c in cosines)
    assert all(len(r["loss_by_quintile"]) == 5 for r in recs)


def test_multi_path_calr_scales_each_loss_at_the_base_lr(tmp_path, tiny_data, monkeypatch):
    cfg = load_config(None, tiny_overrides("train.sampler=fair", "train.lr_policy=calr", "train.grad_clip=null",
                                           "diagnostics.grad_momentum_cos_every=0"))
    tr = Trainer.create(cfg, tmp_path / "r", data=tiny_data)
    tr.fit(max_steps=2)                      # t = 2: factors differ between paths
    train, _ = tiny_data
    idx = next(iter(__import__("nshot.data", fromlist=["x"]).epoch_batches(len(train), 32, cfg.seed, 0, start=2)))
    archs, _ = tr.step_plan(tr.step)
    captured = {}
    monkeypatch.setattr(tr.optimizer, "step", lambda *a, **k: captured.update(
        lr=tr.optimizer.param_groups[0]["lr"], grads=[None if p.grad is None else p.grad.clone() for p in tr.params]))
    t = tr.step
    tr.train_step(train.x[idx], train.y[idx])
    assert captured["lr"] == cfg.optim.lr
    # expected gradient: sum over paths of (1 - t/T)^gamma(a) * grad of that path's loss, same augmented batch
    from nshot.data import augment_batch
    from nshot.train import rng
    x = augment_batch(train.x[idx], train.mean, train.std, seed=rng.torch_seed(cfg.seed, rng.AUGMENT, t), pad=1)
    tr.model.zero_grad(set_to_none=True)
    for a in archs:
        scale = tr.lr_policy.factor(t, tr.total_steps, a)
        (torch.nn.functional.cross_entropy(tr.model(x, a), train.y[idx]) * scale).backward()
    for p, g in zip(tr.params, captured["grads"]):
        assert (p.grad is None) == (g is None)
        if g is not None:
            torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-7)
    assert len({round(tr.lr_policy.factor(t, tr.total_steps, a), 9) for a in archs}) > 1


def test_fairnas_with_ms_shares_the_ms_edge_op(tmp_path, tiny_data):
    cfg = load_config(None, tiny_overrides("train.sampler=fair", "train.optimizer=ms_sgd", "ms.edge=2"))
    tr = Trainer.create(cfg, tmp_path / "r", data=tiny_data)
    for t in range(10):
        archs, k = tr.step_plan(t)
        assert {SP.decode(a)[2] for a in archs} == {k}
    with pytest.raises(ValueError, match="needs ms.grouping=edge"):
        Trainer.create(load_config(None, tiny_overrides("train.sampler=fair", "train.optimizer=ms_sgd",
                                                        "ms.grouping=complexity")), tmp_path / "x", data=tiny_data)


def test_ms_steps_only_the_sampled_group(tmp_path, tiny_data):
    cfg = load_config(None, tiny_overrides("train.optimizer=ms_sgd", "ms.edge=0"))
    tr = Trainer.create(cfg, tmp_path / "r", data=tiny_data)
    stem = tr.model.stem[0].weight         # on every path: stepped by every group that trains
    seen = set()
    for _ in range(6):
        archs, k = tr.step_plan(tr.step)
        before = {j: (None if tr.optimizer.momentum_buffer(stem, j) is None else tr.optimizer.momentum_buffer(stem, j).clone())
                  for j in range(5)}
        tr.fit(max_steps=1)
        seen.add(k)
        for j in range(5):
            after = tr.optimizer.momentum_buffer(stem, j)
            if j == k:
                assert after is not None and (before[j] is None or not torch.equal(after, before[j]))
            else:
                assert (after is None and before[j] is None) or torch.equal(after, before[j])
