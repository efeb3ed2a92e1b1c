"""Same config and seed, same run: metrics (minus timing) and final weights bit for bit; env.json provenance."""
import json
import re

import pytest
import torch

import nshot
from nshot.config import load_config
from nshot.train import Trainer
from nshot.train.env import git_commit
from tests.helpers import TIMING, assert_same_tensors, tiny_overrides

RECIPES = {
    "spos_calr_ms": ["train.lr_policy=calr", "train.optimizer=ms_sgd"],
    "fairnas": ["train.sampler=fair", "train.epochs=2"],
}


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_same_seed_same_run(tmp_path, tiny_data, recipe):
    cfg = load_config(None, tiny_overrides("seed=3", *RECIPES[recipe]))
    runs = []
    for name in ("a", "b"):
        tr = Trainer.create(cfg, tmp_path / name, data=tiny_data)
        tr.fit()
        runs.append(tr)
    a, b = runs
    assert_same_tensors(a.model.state_dict(), b.model.state_dict(), "model")
    assert_same_tensors(a.optimizer.state_dict(), b.optimizer.state_dict(), "optimizer")
    ma = [{k: v for k, v in r.items() if k not in TIMING} for r in a.metrics.read()]
    mb = [{k: v for k, v in r.items() if k not in TIMING} for r in b.metrics.read()]
    assert ma == mb and len(ma) == cfg.train.epochs

    env = json.loads((tmp_path / "a" / "env.json").read_text())
    assert len(env) == 1 and env[0]["event"] == "start"
    e = env[0]
    assert e["nshot"] == nshot.__version__ and e["torch"] == torch.__version__
    assert e["device"] == "cpu" and e["seed"] == 3 and e["step"] == 0
    assert e["git_commit"] == git_commit()
    if e["git_commit"] is not None:                   # a checkout: the full commit hash
        assert re.fullmatch(r"[0-9a-f]{40}", e["git_commit"])


def test_another_seed_gives_another_run(tmp_path, tiny_data):
    finals = []
    for seed in (0, 1):
        tr = Trainer.create(load_config(None, tiny_overrides(f"seed={seed}", "train.epochs=1")), tmp_path / str(seed),
                            data=tiny_data)
        tr.fit()
        finals.append(tr.model.state_dict())
    assert any(not torch.equal(finals[0][k], finals[1][k]) for k in finals[0])
