"""benchmarks/suite.py: a benchmark run directory continues an interrupted training and refuses foreign runs."""
from __future__ import annotations

import json

import pytest
import torch

from benchmarks.suite import BENCH_ARGS, train_supernet
from nshot.config import load_config
from nshot.train import Trainer

OVERRIDES = ["device=cpu", "threads=1", "data.name=digits", "data.crop_padding=1", "model.C=4", "model.N=1",
             "train.epochs=2", "train.batch_size=128", "run.progress=none"]


def test_an_interrupted_run_continues_and_equals_an_uninterrupted_one(tmp_path):
    final, seconds = train_supernet(None, OVERRIDES, tmp_path / "full")
    want = Trainer.resume(tmp_path / "full")
    # the same run, stopped after 5 steps as a killed benchmark would leave it
    part = tmp_path / "part"
    part.mkdir()
    (part / BENCH_ARGS).write_text(json.dumps({"config": None, "overrides": OVERRIDES}))
    Trainer.create(load_config(None, OVERRIDES), part).fit(max_steps=5)
    assert not Trainer.resume(part).done
    got_final, got_seconds = train_supernet(None, OVERRIDES, part)
    got = Trainer.resume(part)
    assert got.done and got.step == want.step
    sd, wd = got.model.state_dict(), want.model.state_dict()
    assert all(torch.equal(sd[k], wd[k]) for k in wd)
    assert got_final["loss"] == final["loss"] and seconds > 0 and got_seconds > 0
    # a finished run is not trained again
    assert train_supernet(None, OVERRIDES, part)[0] == got_final and Trainer.resume(part).step == got.step


def test_a_directory_of_another_run_is_refused(tmp_path):
    train_supernet(None, OVERRIDES, tmp_path / "run")
    with pytest.raises(SystemExit, match="holds another run"):
        train_supernet(None, [*OVERRIDES, "train.epochs=3"], tmp_path / "run")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit, match="holds another run"):
        train_supernet(None, OVERRIDES, tmp_path / "other")
