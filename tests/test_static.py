"""The static step (``train.executor: static``) against the eager step: same forward, same gradients on the
path, exact zeros off it, the same masked update and optimizer state; resumable; no host sync by design."""
import numpy as np
import pytest
import torch

from nshot import spaces
from nshot.config import ConfigError, load_config
from nshot.data import epoch_batches
from nshot.nn import build_supernet, nb201_supernet
from nshot.score import ScoreProtocol, Scorer
from nshot.train import Trainer
from tests.helpers import assert_same_tensors, tiny_overrides

MACRO = ["space.name=macro", "model.stem_width=4", "model.widths=[4,8,8]", "model.head_width=8"]
RECIPES = {
    "spos": [],
    "spos_calr_ms": ["train.lr_policy=calr", "train.optimizer=ms_sgd"],
    "fairnas": ["train.sampler=fair", "train.grad_clip=null", "train.lr_policy=constant"],
    "fairnas_calr_ms": ["train.sampler=fair", "train.lr_policy=calr", "train.optimizer=ms_sgd"],
    "update_unused": ["optim.update_unused=true"],
    "macro_spos_calr_ms": [*MACRO, "train.lr_policy=calr", "train.optimizer=ms_sgd"],
}


# -- the weighted forward ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,kw", [("nb201", dict(C=4, N=1)),
                                     ("macro", dict(stem_width=8, widths=(8, 16, 16), head_width=32)),
                                     ("proxyless", dict(stem="cifar", widths=(8, 8, 16, 16, 16, 16),
                                                        depths=(1, 1, 1, 1, 1, 1), head_width=16))])
def test_weighted_forward_equals_the_path_forward(name, kw):
    sp = spaces.get(name) if name != "proxyless" else spaces.get(name)
    torch.manual_seed(0)
    net = build_supernet(name, **kw)
    x = torch.randn(6, 3, 16, 16)
    rng = np.random.default_rng(0)
    archs = [sp.sample(rng) for _ in range(12)] if name != "proxyless" else None
    if archs is None:
        archs = [net.space.sample(rng) for _ in range(12)]
    if name == "nb201":   # dead edges, a disconnected cell and the all-none cell
        archs += ["|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|none~0|none~1|none~2|",
                  "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
                  "|nor_conv_3x3~0|+|avg_pool_3x3~0|none~1|+|none~0|none~1|skip_connect~2|"]
    for a in archs:   # one path: identical values (a term times 1 is itself, a term times 0 adds an exact 0)
        assert torch.equal(net.forward_weighted(x, torch.tensor([net.path_weights(a)])), net(x, a)), a
    w = torch.tensor([net.path_weights(a) for a in archs[:3]])
    y = net.forward_weighted(torch.cat([x] * 3), w)        # three paths in one forward, BN statistics per path
    # a batch of 18 and one of 6 may take different conv kernels: rounding only. Measured on proxyless with 1 thread
    # (what an earlier test may leave set): 4.3e-6 at most; with 2 threads 0. So fp32's default atol, 1e-5.
    for p, a in enumerate(archs[:3]):
        torch.testing.assert_close(y[6 * p:6 * (p + 1)], net(x, a), rtol=1e-5, atol=1e-5)


def test_weighted_forward_gives_exact_zero_gradients_off_the_path():
    torch.manual_seed(0)
    net = nb201_supernet(C=4, N=1)
    arch = "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|nor_conv_1x1~1|nor_conv_1x1~2|"
    x = torch.randn(6, 3, 8, 8)
    net.forward_weighted(x, torch.tensor([net.path_weights(arch)])).square().sum().backward()
    weighted = {n: p.grad.clone() for n, p in net.named_parameters()}
    net.zero_grad(set_to_none=True)
    net(x, arch).square().sum().backward()
    for n, p in net.named_parameters():
        if p.grad is None:                          # off the path eagerly: exactly zero in the weighted forward
            assert not weighted[n].any(), n
        else:
            torch.testing.assert_close(weighted[n], p.grad, rtol=1e-5, atol=1e-7)


def test_choice_params_name_every_op_parameter():
    net = nb201_supernet(C=4, N=1)
    choice = net.choice_params()
    assert choice["cells.0.edges.2.nor_conv_3x3.1.weight"] == (2, 3)
    assert choice["cells.4.edges.5.nor_conv_1x1.1.weight"] == (5, 2)
    assert not any(n.startswith(("stem", "classifier")) or ".conv_a." in n for n in choice)


# -- the static step against the eager step ---------------------------------------------------------------------
def _pair(tmp_path, tiny_data, overrides):
    trs = {}
    for ex in ("eager", "static"):
        cfg = load_config(None, tiny_overrides("seed=3", "train.epochs=8", f"train.executor={ex}", *overrides))
        trs[ex] = Trainer.create(cfg, tmp_path / ex, data=tiny_data)
    assert trs["static"].static is not None and trs["eager"].static is None
    return trs["eager"], trs["static"]


def _close(a, b, where, atol=1e-6):
    """Equal up to float32 rounding (``atol`` for values of order 1: momentum buffers sum several gradients)."""
    if torch.is_tensor(a):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=atol, msg=lambda m: f"{where}: {m}")
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), (where, sorted(a), sorted(b))
        for k in a:
            _close(a[k], b[k], f"{where}/{k}", atol)
    else:
        assert a == b, (where, a, b)


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_static_step_equals_eager_step_for_20_steps(tmp_path, tiny_data, recipe):
    """Lockstep: before every step the static trainer takes the eager trainer's state, both take the same
    batch; loss, the gradients (on the path equal, off the path exactly zero), the parameters and the
    optimizer state (which buffers exist, per momentum group, and their values) must agree."""
    eager, static = _pair(tmp_path, tiny_data, RECIPES[recipe])
    data = tiny_data[0]
    batches = [b for e in range(8) for b in epoch_batches(len(data), 32, 3, e)]
    for t, idx in enumerate(batches[:20]):
        static.load_state(eager.state_dict())
        assert static.step == eager.step == t
        oe = eager.train_step(data.x[idx], data.y[idx])
        os_ = static.train_step(data.x[idx], data.y[idx])
        torch.testing.assert_close(os_["path_losses"], oe["path_losses"], rtol=1e-6, atol=0)
        assert int(os_["correct"]) == int(oe["correct"]) and os_["lr"] == oe["lr"]
        for (n, pe), ps in zip(eager.model.named_parameters(), static.model.parameters()):
            if pe.grad is None:
                assert not ps.grad.any(), (t, n)
            else:
                torch.testing.assert_close(ps.grad, pe.grad, rtol=1e-5, atol=1e-6, msg=lambda m: f"{t} {n}: {m}")
        if oe["cos"] is not None:
            assert abs(float(os_["cos"]) - float(oe["cos"])) < 1e-5
        _close(eager.state_dict()["model"], static.state_dict()["model"], f"step {t} model")
        _close(eager.state_dict()["optimizer"], static.state_dict()["optimizer"], f"step {t} optimizer", 1e-5)


@pytest.mark.parametrize("recipe", ["spos", "spos_calr_ms"])
def test_static_run_follows_the_eager_run(tmp_path, tiny_data, recipe):
    """Free running, 20 steps (no state copied): the trajectories stay together to float rounding."""
    eager, static = _pair(tmp_path, tiny_data, RECIPES[recipe])
    re_, rs = eager.fit(max_steps=20), static.fit(max_steps=20)
    for a, b in zip(re_, rs):
        assert abs(a["loss"] - b["loss"]) < 1e-5 and a["acc"] == b["acc"] and a["lr"] == b["lr"]
    _close(eager.state_dict()["model"], static.state_dict()["model"], "model")
    _close(eager.state_dict()["optimizer"], static.state_dict()["optimizer"], "optimizer", 1e-5)


@pytest.mark.parametrize("recipe", ["spos_calr_ms", "fairnas"])
def test_resumed_static_run_equals_uninterrupted(tmp_path, tiny_data, recipe):
    cfg = load_config(None, tiny_overrides("seed=5", "train.executor=static", *RECIPES[recipe]))
    full = Trainer.create(cfg, tmp_path / "full", data=tiny_data)
    full.fit()
    part = Trainer.create(cfg, tmp_path / "part", data=tiny_data)
    part.fit(max_steps=4)                       # mid-epoch (3 steps an epoch): a checkpoint at step 4
    part.save()
    resumed = Trainer.resume(tmp_path / "part", data=tiny_data)
    assert resumed.static is not None and resumed.step == 4
    resumed.fit()
    assert_same_tensors(full.state_dict()["model"], resumed.state_dict()["model"], "model")
    assert_same_tensors(full.state_dict()["optimizer"], resumed.state_dict()["optimizer"], "optimizer")


def test_checkpoints_move_between_executors(tmp_path, tiny_data):
    """An eager run's checkpoint continues under the static step and gives the eager continuation."""
    overrides = tiny_overrides("seed=2", "train.lr_policy=calr", "train.optimizer=ms_sgd")
    cfg = load_config(None, overrides)
    tr = Trainer.create(cfg, tmp_path / "r", data=tiny_data)
    tr.fit(max_steps=5)
    tr.save()
    cont_eager = Trainer.resume(tmp_path / "r", data=tiny_data)
    cont_static = Trainer.resume(tmp_path / "r", data=tiny_data, overrides=["train.executor=static"])
    assert cont_eager.static is None and cont_static.static is not None and cont_static.step == 5
    cont_eager.fit(max_steps=3)
    cont_static.fit(max_steps=3)
    _close(cont_eager.state_dict()["model"], cont_static.state_dict()["model"], "model")
    _close(cont_eager.state_dict()["optimizer"], cont_static.state_dict()["optimizer"], "optimizer", 1e-5)


def test_static_skip_drops_a_bad_step_on_the_device(tmp_path, tiny_data, monkeypatch):
    cfg = load_config(None, tiny_overrides("train.executor=static", "train.nonfinite=skip", "train.epochs=2"))
    tr = Trainer.create(cfg, tmp_path / "r", data=tiny_data)
    orig = tr.model.forward_weighted

    def forward_weighted(x, w, stats_batch=None):
        out = orig(x, w, stats_batch)
        return out * float("nan") if tr.step == 2 else out

    monkeypatch.setattr(tr.model, "forward_weighted", forward_weighted)
    tr.fit(max_steps=2)
    before = {k: v.clone() for k, v in tr.state_dict()["model"].items()}
    bufs, inited = tr.static.bufs.clone(), tr.static.inited.clone()
    data = tiny_data[0]
    idx = next(iter(epoch_batches(len(data), 32, 0, 0, start=2)))
    out = tr.train_step(data.x[idx], data.y[idx])
    assert bool(out["skipped"]) and tr.step == 3
    assert_same_tensors(before, tr.state_dict()["model"], "model")
    assert torch.equal(bufs, tr.static.bufs) and torch.equal(inited, tr.static.inited)
    fresh = Trainer.create(cfg, tmp_path / "f", data=tiny_data)   # through the loop: counted in its epoch record
    monkeypatch.setattr(fresh.model, "forward_weighted",
                        lambda x, w, sb=None: (orig(x, w, sb) * float("nan")) if fresh.step == 4 else orig(x, w, sb))
    assert [r["skipped_steps"] for r in fresh.fit()] == [0, 1]


def test_static_step_reads_nothing_back_from_the_device(tmp_path, tiny_data, monkeypatch):
    """No host sync by design: inside an epoch a static step never reads a tensor's value on the host."""
    cfg = load_config(None, tiny_overrides("train.executor=static", "train.lr_policy=calr", "train.optimizer=ms_sgd",
                                           "train.nonfinite=skip"))
    tr = Trainer.create(cfg, tmp_path / "r", data=tiny_data)
    data = tiny_data[0]
    batches = list(epoch_batches(len(data), 32, 0, 0))
    tr.train_step(data.x[batches[0]], data.y[batches[0]])     # the epoch's plan table is built here
    xs = [(data.x[i], data.y[i]) for i in batches[1:]]

    def refuse(*_a, **_k):
        raise AssertionError("host read of a tensor inside a static step")

    for name in ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "numpy"):
        monkeypatch.setattr(torch.Tensor, name, refuse)
    try:
        for x, y in xs:
            tr.train_step(x, y)
    finally:
        monkeypatch.undo()
    assert tr.step == 3


def test_executor_choice(tmp_path, tiny_data):
    auto = Trainer.create(load_config(None, tiny_overrides()), tmp_path / "a", data=tiny_data)
    assert auto.executor == "eager"                      # auto: eager on CPU, static on CUDA where supported
    with pytest.raises(ConfigError, match="train.executor=static: train.objective=pinas"):
        Trainer.create(load_config(None, tiny_overrides("train.executor=static", "train.objective=pinas",
                                                        "train.sampler=pair")), tmp_path / "p", data=tiny_data)
    with pytest.raises(ConfigError, match="running statistics"):
        Trainer.create(load_config(None, tiny_overrides("train.executor=static", "model.bn_track_running_stats=true")),
                       tmp_path / "b", data=tiny_data)


def test_arch_batched_scoring_gives_the_per_arch_scores(tmp_path, tiny_data):
    """Several architectures per forward (per-sample path weights, BN statistics per architecture and protocol
    batch, a short last batch included) score exactly as one architecture per forward."""
    tr = Trainer.create(load_config(None, tiny_overrides("train.epochs=4")), tmp_path / "r", data=tiny_data)
    tr.fit()
    sp = spaces.get("nb201")
    rng = np.random.default_rng(1)
    archs = [sp.sample(rng) for _ in range(40)] + ["|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"]
    evald = tiny_data[1].subset(60)                      # protocol batches of 16: 16, 16, 16, 12
    p = ScoreProtocol(eval_batch_size=16)
    one = Scorer(tr.model, evald, p, progress="none", batch_group=2).score_many(archs)
    many = Scorer(tr.model, evald, p, progress="none", batch_group=2, arch_batch=7).score_many(archs)
    assert one == many and len(set(one)) > 5
    with pytest.raises(ValueError, match="arch_batch > 1 needs bn mode 'batch'"):
        Scorer(tr.model, evald, ScoreProtocol(bn_mode="recal", recal_batches=1, eval_batch_size=16),
               train_data=tiny_data[0], progress="none", arch_batch=4)


def test_static_step_refuses_an_optimizer_whose_update_it_does_not_compute(tmp_path, tiny_data):
    from nshot.train.ms_sgd import GroupedMomentum
    from nshot.train.optim import OPTIMIZERS, OptimizerEntry

    class Adam(GroupedMomentum, torch.optim.Adam):
        pass

    OPTIMIZERS.register("test_adam")(OptimizerEntry(lambda ps, c, k: Adam(ps, lr=c.lr)))
    try:
        with pytest.raises(ConfigError, match="train.optimizer=test_adam is not an SGD-type optimizer"):
            Trainer.create(load_config(None, tiny_overrides("train.executor=static", "train.optimizer=test_adam")),
                           tmp_path / "s", data=tiny_data)
        auto = Trainer.create(load_config(None, tiny_overrides("train.optimizer=test_adam")), tmp_path / "a",
                              data=tiny_data)
        assert auto.executor == "eager" and isinstance(auto.optimizer, torch.optim.Adam)
    finally:
        OPTIMIZERS.pop("test_adam", None)
