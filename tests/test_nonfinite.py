"""train.nonfinite: `stop` never checkpoints a bad step; `skip` drops bad steps and goes on."""
import json

import pytest
import torch
import yaml

from nshot.config import load_config
from nshot.train import Trainer
from nshot.train.checkpoint import load_checkpoint, read_checkpoint_file
from tests.helpers import assert_same_tensors, tiny_overrides


def poison(monkeypatch, tr: Trainer, bad_steps: set, where: str = "loss") -> None:
    """Make iterations ``bad_steps`` non-finite: their loss (NaN logits), only their gradient, or their input
    (NaN through every layer, BN running statistics included)."""
    orig = tr.model.forward

    def forward(x, arch=None, prune=True):
        if tr.step in bad_steps and where == "input":
            x = x * float("nan")
        out = orig(x, arch, prune)
        if tr.step in bad_steps:
            if where == "loss":
                return out * float("nan")
            if where == "grad":
                out.register_hook(lambda g: g * float("nan"))  # finite loss, NaN gradient
        return out

    monkeypatch.setattr(tr.model, "forward", forward)


def all_finite(state: dict) -> bool:
    return all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


@pytest.mark.parametrize("where", ["loss", "grad"])
def test_stop_never_checkpoints_a_bad_step(tmp_path, tiny_data, monkeypatch, where):
    cfg = load_config(None, tiny_overrides("train.checkpoint_every_steps=1"))
    tr = Trainer.create(cfg, tmp_path / "r", data=tiny_data)
    poison(monkeypatch, tr, {4}, where)
    with pytest.raises(FloatingPointError, match="lower lr") as info:
        tr.fit()
    msg = str(info.value)
    assert ("non-finite loss at step 5 (iteration 4)" in msg) if where == "loss" else ("non-finite weights" in msg)
    ck = tmp_path / "r" / "checkpoints"
    last, prev = read_checkpoint_file(ck / "last.pt"), read_checkpoint_file(ck / "prev.pt")
    assert (last["step"], prev["step"]) == (4, 3)                 # the last good step; nothing after it
    assert all_finite(last["model"]) and all_finite(prev["model"])
    assert [r["step"] for r in tr.metrics.read()] == [3]


def test_stop_between_sparse_checkpoints_keeps_the_epoch_checkpoint(tmp_path, tiny_data, monkeypatch):
    cfg = load_config(None, tiny_overrides())                     # checkpoints at epoch ends only (3 steps)
    tr = Trainer.create(cfg, tmp_path / "r", data=tiny_data)
    poison(monkeypatch, tr, {4})                                  # mid epoch 2; detected at its end
    with pytest.raises(FloatingPointError, match=r"step 5 \(iteration 4\)"):
        tr.fit()
    assert load_checkpoint(tmp_path / "r" / "checkpoints")["step"] == 3


def test_resume_after_a_stop_with_a_lower_lr(tmp_path, tiny_data, monkeypatch):
    cfg = load_config(None, tiny_overrides())
    tr = Trainer.create(cfg, tmp_path / "r", data=tiny_data)
    poison(monkeypatch, tr, {4, 5, 6, 7, 8})
    with pytest.raises(FloatingPointError) as info:
        tr.fit()
    assert "optim.lr=0.0125" in str(info.value)                   # the advice names the command ...
    again = Trainer.resume(tmp_path / "r", data=tiny_data, overrides=["optim.lr=0.0125"])   # ... and it works
    assert again.step == 3 and again.cfg.optim.lr == 0.0125
    again.fit()
    assert again.done and all_finite(again.model.state_dict())
    assert yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())["optim"]["lr"] == 0.0125
    env = json.loads((tmp_path / "r" / "env.json").read_text())
    assert env[-1]["event"] == "resume" and env[-1]["overrides"] == ["optim.lr=0.0125"]


@pytest.mark.parametrize("extra", [[], ["model.bn_track_running_stats=true", "train.grad_clip=null"]])
@pytest.mark.parametrize("where", ["loss", "grad", "input"])
def test_skip_drops_the_bad_step_exactly(tmp_path, tiny_data, monkeypatch, where, extra):
    cfg = load_config(None, tiny_overrides("train.nonfinite=skip", *extra))
    tr = Trainer.create(cfg, tmp_path / "r", data=tiny_data)
    tr.fit(max_steps=2)
    before = {k: v.clone() for k, v in tr.model.state_dict().items()}
    momentum_before = {k: {n: v.clone() for n, v in st.items()} for k, st in tr.optimizer.state_dict()["state"].items()}
    poison(monkeypatch, tr, {2, 4}, where)
    tr.fit(max_steps=1)                                           # iteration 2: skipped
    assert tr.step == 3
    assert_same_tensors(tr.model.state_dict(), before, "model")   # weights and BN buffers untouched
    assert_same_tensors(tr.optimizer.state_dict()["state"], momentum_before, "optimizer")   # no step taken
    assert all(p.grad is None for p in tr.params)                 # its gradients were dropped
    tr.fit()
    assert tr.done and all_finite(tr.model.state_dict())
    recs = tr.metrics.read()
    assert [r["skipped_steps"] for r in recs] == [1, 1, 0]
    assert all(isinstance(r["loss"], float) and r["loss"] == r["loss"] for r in recs)   # finite means
    assert load_checkpoint(tmp_path / "r" / "checkpoints")["step"] == 9


def test_nonfinite_is_validated():
    assert load_config(None, []).train.nonfinite == "stop"
    with pytest.raises(ValueError, match="expected one of stop, skip"):
        load_config(None, ["train.nonfinite=continue"])
