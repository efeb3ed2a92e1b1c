"""TensorBoard scalars (``run.tensorboard: true``): read back with TensorBoard's own reader, they equal
metrics.jsonl for supernet training (through the CLI), few-shot nodes and differentiable search."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from nshot.config import load_config
from tests.helpers import tiny_overrides

pytest.importorskip("tensorboard", reason="the optional tensorboard package (pip install 'nshot[tensorboard]')")


def read_scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series of the event files in ``log_dir``, as TensorBoard shows it (purged steps hidden)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def assert_series(events: dict, recs: list[dict], tag: str, get) -> None:
    """The ``tag`` series equals ``get(record)`` at each record's step (float32 in the event file)."""
    expected = [(r["step"], get(r)) for r in recs]
    assert [s for s, _ in events[tag]] == [s for s, _ in expected], tag
    assert [v for _, v in events[tag]] == pytest.approx([v for _, v in expected], rel=1e-6), tag


def test_supernet_training_writes_the_metrics_as_scalars(tmp_path):
    from tests.helpers import digits_config, nshot
    cfg = digits_config(tmp_path, epochs=2, batch_size=64)
    run = tmp_path / "run"
    out = nshot("train", str(cfg), "--run-dir", str(run), "run.tensorboard=true",
                "diagnostics.grad_momentum_cos_every=1")
    assert out.returncode == 0, out.stderr
    recs = records(run)
    assert len(recs) == 2
    events = read_scalars(run / "tensorboard")
    quintiles = {f"loss_by_quintile/{q}" for q in range(5) if recs[0]["loss_by_quintile"][q] is not None}
    assert set(events) == {"epoch", "loss", "acc", "lr", "seconds", "images_per_s", "grad_momentum_cos"} | quintiles
    for key in ("epoch", "loss", "acc", "lr", "seconds", "images_per_s", "grad_momentum_cos"):
        assert_series(events, recs, key, lambda r, k=key: r[k])
    for tag in quintiles:
        assert_series(events, recs, tag, lambda r, q=int(tag[-1]): r["loss_by_quintile"][q])


def test_few_shot_nodes_each_write_their_own_scalars(tmp_path, tiny_data):
    from nshot.train.fewshot import FewShotRun
    cfg = load_config(None, tiny_overrides("fewshot.method=exhaustive", "fewshot.split_epochs=[1]",
                                           "train.epochs=2", "run.tensorboard=true", "threads=1",
                                           "diagnostics.grad_momentum_cos_every=1"))
    run = FewShotRun.create(cfg, tmp_path / "fs", data=tiny_data)
    run.fit()
    nodes = sorted((tmp_path / "fs" / "nodes").iterdir())
    assert len(nodes) == 6   # the root and one child per op of the split edge
    for node in nodes:
        recs = records(node)
        assert recs, node
        events = read_scalars(node / "tensorboard")
        for key in ("loss", "acc", "lr", "grad_momentum_cos"):
            assert_series(events, recs, key, lambda r, k=key: r[k])


def test_differentiable_search_writes_losses_and_op_weights(tmp_path):
    from nshot.train.differentiable import DifferentiableSearch
    from tests.helpers import darts_config as _cfg
    cfg = _cfg(**{"run.tensorboard": "true"})
    run = DifferentiableSearch.create(cfg, tmp_path / "darts")
    run.fit()
    recs = records(tmp_path / "darts")
    events = read_scalars(tmp_path / "darts" / "tensorboard")
    for key in ("loss", "acc", "valid_loss", "valid_acc", "lr"):
        assert_series(events, recs, key, lambda r, k=key: r[k])
    edges, ops = len(recs[0]["alphas"]), len(recs[0]["alphas"][0])
    assert (edges, ops) == (6, 5)   # NB201: an op weight per edge and op
    assert {t for t in events if t.startswith("alphas/")} == {f"alphas/{e}/{o}" for e in range(6) for o in range(5)}
    assert_series(events, recs, "alphas/3/2", lambda r: r["alphas"][3][2])
    assert "arch" not in events   # strings stay in metrics.jsonl


def test_a_resume_hides_the_steps_it_drops(tmp_path):
    """Records written after the last checkpoint are dropped from metrics.jsonl on resume; TensorBoard shows
    the rewritten step once, with its new value."""
    from nshot.train.metrics import MetricsLog
    log = MetricsLog(tmp_path / "metrics.jsonl", tensorboard=True)
    log.write({"epoch": 1, "step": 10, "loss": 2.0})
    log.write({"epoch": 2, "step": 20, "loss": 1.5})   # a crash before the checkpoint of step 20
    log.tensorboard.close()
    again = MetricsLog(tmp_path / "metrics.jsonl", tensorboard=True)
    again.truncate_after(10)
    again.write({"epoch": 2, "step": 20, "loss": 1.25})
    again.tensorboard.close()
    assert [r["loss"] for r in records(tmp_path)] == [2.0, 1.25]
    assert read_scalars(tmp_path / "tensorboard")["loss"] == [(10, 2.0), (20, 1.25)]


def test_scalar_names():
    from nshot.train.tensorboard import global_step, scalars
    rec = {"epoch": 3, "step": 30, "loss": 0.5, "arch": "x", "ok": True, "q": [1.0, None, 2],
           "alphas": [[0.1] * 2] * 11, "d": {"a": 1}, "none": None}
    s = scalars(rec)
    assert s["epoch"] == 3.0 and s["loss"] == 0.5 and s["q/0"] == 1.0 and s["q/2"] == 2.0 and s["d/a"] == 1.0
    assert "q/1" not in s and "arch" not in s and "ok" not in s and "step" not in s and "none" not in s
    assert "alphas/00/1" in s and "alphas/10/0" in s      # zero-padded so TensorBoard sorts edges in order
    assert global_step(rec) == 30 and global_step({"epoch": 4, "lr": 0.1}) == 4


def test_a_missing_package_is_named_before_the_run_starts(tmp_path, monkeypatch):
    from nshot import preflight
    from nshot.train.metrics import MetricsLog
    monkeypatch.setattr(preflight, "tensorboard_available", lambda: False)
    with pytest.raises(ValueError, match=r"run.tensorboard=true needs the tensorboard package: pip install "
                                         r"'nshot\[tensorboard\]'"):
        MetricsLog(tmp_path / "metrics.jsonl", tensorboard=True)


def test_tensorboard_turned_on_at_a_resume_writes_the_epochs_already_logged(tmp_path):
    """A run trained without TensorBoard, resumed with run.tensorboard=true: the event file holds every
    record of metrics.jsonl, the earlier epochs included, and config.yaml records the change."""
    from tests.helpers import digits_config, nshot
    cfg = digits_config(tmp_path, epochs=2, batch_size=64)
    run = tmp_path / "run"
    out = nshot("train", str(cfg), "--run-dir", str(run), "--max-steps", "15")   # the first of 2 epochs
    assert out.returncode == 0, out.stderr
    first = records(run)
    assert not (run / "tensorboard").exists()
    out = nshot("train", "--resume", str(run), "run.tensorboard=true")
    assert out.returncode == 0, out.stderr
    recs = records(run)
    assert len(first) == 1 and len(recs) == 2 and recs[:1] == first
    assert_series(read_scalars(run / "tensorboard"), recs, "loss", lambda r: r["loss"])
    assert "tensorboard: true" in (run / "config.yaml").read_text()
