"""Supernet training: resume equals no interruption, the off-path rule, checkpoints, metrics."""
import json

import pytest
import torch

from nshot.config import load_config
from nshot.train import Trainer
from nshot.train.checkpoint import CheckpointError, load_checkpoint, read_checkpoint_file, save_checkpoint
from nshot.train.trainer import RunDirError
from tests.helpers import optim_equal, states_equal, tiny_overrides


@pytest.mark.parametrize("extra", [[], ["optim.update_unused=true", "sampler.connected_only=true"]])
def test_resume_mid_epoch_equals_uninterrupted(tmp_path, tiny_data, extra):
    cfg = load_config(None, tiny_overrides(*extra))
    full = Trainer.create(cfg, tmp_path / "full", data=tiny_data)
    full.fit()
    part = Trainer.create(cfg, tmp_path / "part", data=tiny_data)
    part.fit(max_steps=4)                       # 3 steps per epoch: stops mid-epoch 2
    assert part.step == 4 and not part.done
    resumed = Trainer.resume(tmp_path / "part", data=tiny_data)
    assert resumed.step == 4
    resumed.fit()
    assert resumed.done
    states_equal(full.model.state_dict(), resumed.model.state_dict())
    optim_equal(full.optimizer.state_dict(), resumed.optimizer.state_dict())
    a = [{k: v for k, v in r.items() if k not in ("seconds", "images_per_s")} for r in full.metrics.read()]
    b = [{k: v for k, v in r.items() if k not in ("seconds", "images_per_s")} for r in resumed.metrics.read()]
    assert a == b and len(a) == 3


def test_metrics_and_run_directory(tmp_path, tiny_data):
    cfg = load_config(None, tiny_overrides())
    tr = Trainer.create(cfg, tmp_path / "run", data=tiny_data)
    tr.fit()
    recs = tr.metrics.read()
    assert [r["epoch"] for r in recs] == [1, 2, 3]
    for r in recs:
        assert set(r) >= {"epoch", "step", "loss", "acc", "lr", "seconds", "images_per_s"}
    # per-iteration cosine: the mean lr of each epoch decreases
    assert recs[0]["lr"] > recs[1]["lr"] > recs[2]["lr"] > 0
    assert (tmp_path / "run" / "config.yaml").is_file()
    env = json.loads((tmp_path / "run" / "env.json").read_text())
    assert env[0]["torch"] == torch.__version__ and env[0]["seed"] == 0
    with pytest.raises(RunDirError, match="already holds a run"):
        Trainer.create(cfg, tmp_path / "run", data=tiny_data)


@pytest.mark.parametrize("update_unused", [False, True])
def test_off_path_parameters(tmp_path, tiny_data, update_unused):
    cfg = load_config(None, tiny_overrides(f"optim.update_unused={str(update_unused).lower()}"))
    tr = Trainer.create(cfg, tmp_path / "r", data=tiny_data)
    before = {n: p.detach().clone() for n, p in tr.model.named_parameters()}
    arch = tr.sampler.paths(__import__("nshot.train.rng", fromlist=["x"]).step_rng(cfg.seed, 1, 0))[0]
    tr.fit(max_steps=1)
    ops = tr.space.decode(arch)
    live = __import__("nshot.spaces.nb201", fromlist=["x"]).live_edges(ops)
    cell = tr.model.cells[0]
    for e in range(6):
        for name, mod in cell.edges[e].items():
            on_path = live[e] and name == tr.space.ops[ops[e]]
            for pn, p in mod.named_parameters():
                full = next(n for n, q in tr.model.named_parameters() if q is p)
                changed = not torch.equal(before[full], p.detach())
                assert changed == (on_path or update_unused), (e, name, pn)


def test_checkpoint_is_checksummed_and_falls_back(tmp_path):
    folder = tmp_path / "ck"
    save_checkpoint(folder, {"step": 1, "w": torch.arange(5)})
    save_checkpoint(folder, {"step": 2, "w": torch.arange(6)})
    assert load_checkpoint(folder)["step"] == 2
    raw = (folder / "last.pt").read_bytes()
    (folder / "last.pt").write_bytes(raw[: len(raw) // 2])  # a torn file
    with pytest.raises(CheckpointError, match="checksum"):
        read_checkpoint_file(folder / "last.pt")
    with pytest.warns(UserWarning, match="previous checkpoint"):
        assert load_checkpoint(folder)["step"] == 1
    (folder / "prev.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="not an nshot checkpoint"):
        load_checkpoint(folder)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "empty")


def test_resume_refuses_a_folder_without_a_run(tmp_path, tiny_data):
    with pytest.raises(RunDirError, match="not a run directory"):
        Trainer.resume(tmp_path, data=tiny_data)


def test_non_finite_loss_stops_with_advice(tmp_path, tiny_data, monkeypatch):
    cfg = load_config(None, tiny_overrides())
    tr = Trainer.create(cfg, tmp_path / "r", data=tiny_data)
    tr.fit(max_steps=3)  # one good epoch, checkpointed
    orig = tr.model.forward
    monkeypatch.setattr(tr.model, "forward", lambda x, arch=None, prune=True: orig(x, arch, prune) * float("nan"))
    with pytest.raises(FloatingPointError, match="lower lr"):
        tr.fit()
    assert load_checkpoint(tmp_path / "r" / "checkpoints")["step"] == 3


def test_same_seed_same_metrics(tmp_path, tiny_data):
    cfg = load_config(None, tiny_overrides("train.epochs=2"))
    runs = []
    for name in ("a", "b"):
        tr = Trainer.create(cfg, tmp_path / name, data=tiny_data)
        tr.fit()
        runs.append([(r["loss"], r["acc"]) for r in tr.metrics.read()])
    assert runs[0] == runs[1]
