"""The shared-linear probe: one head trained once under uniform paths, cached in the run, scoring every path."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nshot import spaces
from nshot.config import load_config
from nshot.data import normalize
from nshot.score.bn import batch_stats_mode
from nshot.score.rank import make_scorer
from nshot.score.run import load_run
from nshot.score.scorer import ScoreCache
from nshot.score.shared_head import SHARED_HEAD, SharedHeadSpec
from nshot.train.trainer import Trainer

from tests.helpers import tiny_overrides

SP = spaces.get("nb201")


@pytest.fixture
def tiny_run(tmp_path, tiny_data):
    tr = Trainer.create(load_config(None, tiny_overrides("train.epochs=1")), tmp_path / "r", data=tiny_data)
    tr.fit()
    return tmp_path / "r"


def test_head_trains_under_uniform_paths_scores_by_hand_and_is_cached(tiny_run, tiny_data, monkeypatch):
    run = load_run(tiny_run, "cpu", data=tiny_data)
    before = {k: v.clone() for k, v in run.model.state_dict().items()}
    seen = []
    real = type(run.model).features
    monkeypatch.setattr(type(run.model), "features", lambda self, x, arch: seen.append(arch) or real(self, x, arch))
    s1 = make_scorer(run, probe="shared-linear", probe_images=64, probe_epochs=3, progress="none")
    monkeypatch.setattr(type(run.model), "features", real)
    # 3 epochs of one batch (64 images < batch 256), one uniform path per step from the head's own stream
    assert seen == [SP.sample(np.random.default_rng([0, SHARED_HEAD, t])) for t in range(3)]
    assert s1.head_record["trained_now"] and all(torch.equal(v, before[k]) for k, v in run.model.state_dict().items())
    files = list((tiny_run / "probes").glob("*.pt"))
    assert [f.name for f in files] == [SharedHeadSpec(64, 3, seed=0, step=run.step).file_name]
    archs = [SP.sample(i) for i in range(5)]
    scores = s1.score_many(archs)
    train, evald = tiny_data
    with torch.no_grad(), batch_stats_mode(run.model):   # by hand: the head on the path's frozen features
        run.model.eval()
        x = normalize(evald.x, evald.mean, evald.std)
        for arch, s in zip(archs, scores):
            pred = s1.head(run.model.features(x, arch)).argmax(1)
            assert s == pytest.approx(100.0 * float((pred == evald.y).double().mean()))
    assert np.mean(scores) > 40                          # 4 classes: the one head reads every path's features
    # a second scorer reads the head from RUN/probes/ and the scores from scores.csv
    s2 = make_scorer(load_run(tiny_run, "cpu", data=tiny_data), probe="shared-linear", probe_images=64,
                     probe_epochs=3, progress="none")
    assert not s2.head_record["trained_now"]
    assert all(torch.equal(a, b) for a, b in zip(s1.head.state_dict().values(), s2.head.state_dict().values()))
    assert s2.score_many(archs) == scores and s2.forward_passes == 0
    keys = {k[-1] for _, _, k, _ in ScoreCache(tiny_run / "scores.csv").rows()}
    assert keys == {"shared-linear:64:e3:lr1:b256"}
    # other settings are another head and another cache key
    s3 = make_scorer(s2_run := load_run(tiny_run, "cpu", data=tiny_data), probe="shared-linear", probe_images=64,
                     probe_epochs=4, progress="none")
    assert s3.head_record["trained_now"] and len(list((tiny_run / "probes").glob("*.pt"))) == 2
    assert s3.protocol.probe_key == "shared-linear:64:e4:lr1:b256" and s2_run.step == run.step
    with pytest.raises(ValueError, match="lr"):
        make_scorer(s2_run, probe="shared-linear", probe_images=64, probe_lr=0.0, progress="none")


def test_search_cli_takes_the_shared_head(tmp_path, capsys):
    from nshot.cli import main
    tiny_run = tmp_path / "digits"
    Trainer.create(load_config(None, tiny_overrides("train.epochs=1", "data.name=digits", "data.train_subset=128",
                                                    "data.eval_subset=100")), tiny_run).fit()
    args = ["--probe", "shared-linear", "--probe-images", "64", "--probe-epochs", "2", "--progress", "none"]
    assert main(["search", str(tiny_run), "--strategy", "tree", "--budget", "12", "--init-samples", "6",
                 "--tree-batch", "3", "--leaf-size", "2", *args]) == 0
    out = json.loads((tiny_run / "search.json").read_text())
    assert out["strategy"] == "tree" and out["evaluations"] == 12 and out["info"]["taken"] == 12
    p = out["protocol"]
    assert p["probe"] == "shared-linear" and p["probe_settings"] == "shared-linear:64:e2:lr1:b256"
    assert p["shared_head"]["trained_now"] and (tiny_run / "probes").is_dir()
    rows = ScoreCache(tiny_run / "scores.csv").rows()
    assert len(rows) == 12 and {r[2][-1] for r in rows} == {"shared-linear:64:e2:lr1:b256"}
    assert {r["arch"]: r["score"] for r in out["best"]} == {a: s for a, s, _, _ in rows if a in
                                                            {r["arch"] for r in out["best"]}}


def test_rank_takes_the_shared_head_and_keeps_its_ranking_apart(tiny_run, tiny_data, shared_data):
    from nshot.score.rank import rank_run
    table = shared_data / "nb201" / "nb201_200ep.csv"
    run = load_run(tiny_run, "cpu", data=tiny_data)
    rep = rank_run(tiny_run, "nb201", subset=12, table=str(table), probe="shared-linear", probe_images=64,
                   probe_epochs=2, progress="none", run=run)
    p = rep["protocol"]
    assert p["probe"] == "shared-linear" and p["probe_settings"] == "shared-linear:64:e2:lr1:b256"
    assert p["files"] == ["rank-n12-shared-linear.json", "rank-n12-shared-linear.csv"]
    assert (tiny_run / "rank-n12-shared-linear.json").is_file() and p["n"] == 12
    again = rank_run(tiny_run, "nb201", subset=12, table=str(table), probe="shared-linear", probe_images=64,
                     probe_epochs=2, progress="none", run=run)
    assert again["protocol"]["evaluated_now"] == 0 and not again["protocol"]["shared_head"]["trained_now"]
    assert again["kendall_tau"] == rep["kendall_tau"]
