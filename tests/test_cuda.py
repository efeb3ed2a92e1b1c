"""CUDA-only checks of the static step and the multi-architecture scorer (skipped without a GPU; run on one by
``benchmarks/gpu_suite.py``): the captured graph replays what the uncaptured step computes, the static step
follows the eager one on the GPU, no host sync per step, bf16 steps stay finite, the scorer's architecture
batching gives the per-architecture scores."""
import numpy as np
import pytest
import torch

from nshot import spaces
from nshot.config import load_config
from nshot.data import ImageData, epoch_batches
from nshot.score import ScoreProtocol, Scorer
from nshot.train import Trainer
from tests.helpers import tiny_overrides

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

RECIPES = {"spos": [], "spos_calr_ms": ["train.lr_policy=calr", "train.optimizer=ms_sgd"],
           "fairnas": ["train.sampler=fair", "train.lr_policy=constant", "train.grad_clip=null"]}


def _data(tiny_data):
    return tuple(ImageData(d.x.cuda(), d.y.cuda(), d.num_classes, d.mean, d.std, d.name) for d in tiny_data)


def _cfg(*extra):
    return load_config(None, [o for o in tiny_overrides(*extra) if o != "device=cpu"] + ["device=cuda"])


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_graph_replay_equals_uncaptured_static_step(tmp_path, tiny_data, recipe):
    data = _data(tiny_data)
    trs = []
    for name, capture in (("graph", True), ("plain", False)):
        tr = Trainer.create(_cfg("seed=4", "train.executor=static", "train.precision=fp32", *RECIPES[recipe]),
                            tmp_path / name, data=data)
        tr.static.capture = capture
        tr.fit(max_steps=20)
        trs.append(tr)
    a, b = (t.state_dict() for t in trs)
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=1e-5, atol=1e-6)
    assert trs[0].static.graphs and not trs[1].static.graphs


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_static_step_follows_eager_on_cuda(tmp_path, tiny_data, recipe):
    """Lockstep on the GPU (fp32): the static trainer takes the eager state before each step."""
    data = _data(tiny_data)
    eager = Trainer.create(_cfg("seed=3", "train.executor=eager", "train.precision=fp32", *RECIPES[recipe]),
                           tmp_path / "e", data=data)
    static = Trainer.create(_cfg("seed=3", "train.executor=static", "train.precision=fp32", *RECIPES[recipe]),
                            tmp_path / "s", data=data)
    train = data[0]
    for t, idx in enumerate([b for e in range(8) for b in epoch_batches(len(train), 32, 3, e)][:20]):
        static.load_state(eager.state_dict())
        idx = idx.cuda()
        oe = eager.train_step(train.x[idx], train.y[idx])
        os_ = static.train_step(train.x[idx], train.y[idx])
        torch.testing.assert_close(os_["path_losses"], oe["path_losses"], rtol=1e-4, atol=1e-5)
        se, ss = eager.state_dict()["model"], static.state_dict()["model"]
        for k in se:
            torch.testing.assert_close(ss[k], se[k], rtol=1e-4, atol=1e-5, msg=lambda m: f"step {t} {k}: {m}")


def test_static_steps_do_not_sync(tmp_path, tiny_data):
    data = _data(tiny_data)
    tr = Trainer.create(_cfg("train.executor=static", "train.lr_policy=calr", "train.optimizer=ms_sgd",
                             "train.nonfinite=skip", "train.epochs=1", "train.batch_size=8"), tmp_path / "r", data=data)
    train = data[0]
    batches = [i.cuda() for i in epoch_batches(len(train), 8, 0, 0)]
    tr.train_step(train.x[batches[0]], train.y[batches[0]])   # plan table and graph capture happen here
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for idx in batches[1:]:
            tr.train_step(train.x[idx], train.y[idx])
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert tr.step == len(batches)


def test_bf16_static_run_is_finite_and_learns(tmp_path, tiny_data):
    data = _data(tiny_data)
    tr = Trainer.create(_cfg("train.executor=static", "train.precision=bf16", "train.epochs=6"), tmp_path / "r",
                        data=data)
    records = tr.fit()
    assert all(np.isfinite(r["loss"]) for r in records) and records[-1]["loss"] < records[0]["loss"]


def test_arch_batched_scores_equal_per_arch_scores_on_cuda(tmp_path, tiny_data):
    data = _data(tiny_data)
    tr = Trainer.create(_cfg("train.epochs=2"), tmp_path / "r", data=data)
    tr.fit()
    sp = spaces.get("nb201")
    rng = np.random.default_rng(0)
    archs = [sp.sample(rng) for _ in range(40)]
    p = ScoreProtocol(eval_batch_size=16, precision="fp32")
    one = Scorer(tr.model, data[1], p, progress="none", batch_group=2).score_many(archs)
    many = Scorer(tr.model, data[1], p, progress="none", batch_group=2, arch_batch=8).score_many(archs)
    assert one == many
