"""Data-parallel training: a 2-process gloo run equals the 1-process run with the same global batch in 2
micro-batches (SPOS and Pi-NAS); rank 0 alone writes the run directory."""
from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from nshot.config import load_config
from nshot.train.distributed import DistInfo, from_env, shard_slice
from nshot.train.trainer import Trainer

from tests.helpers import tiny_overrides


@pytest.mark.parametrize("n, world", [(n, w) for n in (0, 1, 5, 32, 33, 97) for w in (1, 2, 3, 8)])
def test_shard_slices_cover_the_batch_once_balanced_in_rank_order(n, world):
    parts = [shard_slice(n, r, world) for r in range(world)]
    assert [i for p in parts for i in range(p.start, p.stop)] == list(range(n))
    sizes = [p.stop - p.start for p in parts]
    assert max(sizes) - min(sizes) <= 1
    assert sizes == [len(t) for t in torch.arange(n).tensor_split(world)]


def test_env_parsing(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    assert from_env() == DistInfo(0, 1)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    assert from_env() == DistInfo(3, 4) and not from_env().is_main
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ValueError, match="RANK"):
        from_env()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, overrides: list, data, run_dir: str, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    tr = Trainer.create(load_config(None, overrides), run_dir, data=data)
    tr.fit()
    torch.save({"model": tr.model.state_dict(), "objective": tr.objective.state_dict(),
                "optimizer": tr.optimizer.state_dict()}, f"{out}.{rank}")
    torch.distributed.barrier()    # both ranks done before either tears the group down (a rank leaving early
    torch.distributed.destroy_process_group()   # aborted the other once, on a loaded machine)


@pytest.mark.parametrize("extra", [("train.optimizer=ms_sgd", "train.lr_policy=calr"),
                                   ("train.sampler=pair", "train.objective=pinas", "pinas.queue_size=40",
                                    "pinas.dim=8", "pinas.hidden_dim=8"),
                                   ("train.sampler=pair", "train.objective=pinas", "pinas.queue_size=40",
                                    "pinas.dim=8", "pinas.hidden_dim=8", "pinas.bn_groups=2")],
                         ids=["calr-ms", "pinas", "pinas-shuffle-bn"])
@pytest.mark.slow
def test_two_processes_equal_one_process_with_two_micro_batches(tmp_path, tiny_data, extra):
    overrides = tiny_overrides("threads=1", "train.log_every_steps=2", *extra)
    port = _free_port()
    mp.spawn(_worker, args=(2, port, overrides, tiny_data, str(tmp_path / "ddp"), str(tmp_path / "state")),
             nprocs=2, join=True)
    single = Trainer.create(load_config(None, overrides + ["train.micro_batches=2"]), tmp_path / "one", data=tiny_data)
    single.fit()
    ranks = [torch.load(tmp_path / f"state.{r}", weights_only=False) for r in range(2)]
    for k, v in single.model.state_dict().items():
        for r in ranks:
            torch.testing.assert_close(r["model"][k], v, rtol=1e-5, atol=1e-6, msg=k)
    if "pinas" in " ".join(extra):
        for r in ranks:
            torch.testing.assert_close(r["objective"]["queue"], single.objective.queue, rtol=1e-5, atol=1e-6)
            assert r["objective"]["ptr"] == single.objective.ptr
    # rank 0 alone wrote the run: one config, one metrics line per epoch, a checkpoint equal to the single run
    ddp_metrics = Trainer.resume(tmp_path / "ddp", data=tiny_data).metrics.read()
    assert len(ddp_metrics) == 3
    strip = lambda rs: [{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()
                         if k not in ("seconds", "images_per_s", "loss_by_quintile", "grad_momentum_cos")} for r in rs]
    assert strip(ddp_metrics) == strip(single.metrics.read())


def test_micro_batches_of_one_slice_are_the_plain_step(tmp_path, tiny_data):
    a = Trainer.create(load_config(None, tiny_overrides()), tmp_path / "a", data=tiny_data)
    a.fit()
    b = Trainer.create(load_config(None, tiny_overrides("train.micro_batches=1")), tmp_path / "b", data=tiny_data)
    b.fit()
    for (k, x), y in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(x, y), k


def test_a_last_batch_smaller_than_the_world_is_refused_with_a_fix():
    from nshot.train.distributed import check_batches
    check_batches(33, 32, False, DistInfo(0, 1))               # one process: anything goes
    check_batches(34, 32, False, DistInfo(1, 2))               # last batch of 2 for 2 ranks
    check_batches(33, 32, True, DistInfo(1, 2))                # dropped
    with pytest.raises(ValueError, match="last batch of an epoch has 1.*drop_last"):
        check_batches(33, 32, False, DistInfo(0, 2))
    with pytest.raises(ValueError, match="batch size has 2"):
        check_batches(64, 2, False, DistInfo(0, 4))


def _stop_worker(rank: int, world: int, port: int, overrides: list, data, run_dir: str, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    tr = Trainer.create(load_config(None, overrides), run_dir, data=data)
    real = tr.train_step

    def step(x, y):
        if rank == 1 and tr.step == 2:      # Ctrl-C reaches one rank only
            tr.request_stop()
        return real(x, y)
    tr.train_step = step
    tr.fit()
    torch.save({"step": tr.step}, f"{out}.{rank}")
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_a_stop_request_on_one_rank_stops_every_rank_at_the_same_step_with_a_checkpoint(tmp_path, tiny_data):
    overrides = tiny_overrides("threads=1")
    mp.spawn(_stop_worker, args=(2, _free_port(), overrides, tiny_data, str(tmp_path / "ddp"), str(tmp_path / "s")),
             nprocs=2, join=True)
    steps = [torch.load(tmp_path / f"s.{r}")["step"] for r in range(2)]
    assert steps[0] == steps[1] and 3 <= steps[0] < 9            # stopped early, together
    resumed = Trainer.resume(tmp_path / "ddp", data=tiny_data)
    assert resumed.step == steps[0]                                # rank 0 saved the state at that step
