"""The benchmark package's shared parts: a benchmark run directory continues an interrupted training and refuses
foreign runs (``benchmarks.suite``), the job runner reuses only runs made with the same settings
(``benchmarks.jobs``), summaries merge, the ABBA timing order (``benchmarks.timing``), and helpers of single
benchmarks."""
from __future__ import annotations

import json

import pytest
import torch

from benchmarks.suite import BENCH_ARGS, train_supernet
from nshot.config import load_config
from nshot.train import Trainer
from nshot.train.fewshot import FewShotRun

OVERRIDES = ["device=cpu", "threads=1", "data.name=digits", "data.crop_padding=1", "model.C=4", "model.N=1",
             "train.epochs=2", "train.batch_size=128", "run.progress=none"]


def _interrupted(path, record: bool):
    """The run of OVERRIDES stopped after 5 steps, as a killed benchmark leaves it (with or without the record
    that runs from before records were kept lack)."""
    path.mkdir()
    if record:
        (path / BENCH_ARGS).write_text(json.dumps({"config": None, "overrides": OVERRIDES}))
    Trainer.create(load_config(None, OVERRIDES), path).fit(max_steps=5)
    assert not Trainer.resume(path).done
    return path


@pytest.mark.parametrize("record", [True, False], ids=["recorded", "from-before-records"])
def test_an_interrupted_run_continues_and_equals_an_uninterrupted_one(tmp_path, record):
    final, seconds = train_supernet(None, OVERRIDES, tmp_path / "full")
    want = Trainer.resume(tmp_path / "full")
    part = _interrupted(tmp_path / "part", record)
    got_final, got_seconds = train_supernet(None, OVERRIDES, part)
    events = [(e["event"], e["step"]) for e in json.loads((part / "env.json").read_text())]
    assert events[:2] == [("start", 0), ("resume", 5)]          # continued, not started over
    got = Trainer.resume(part)
    assert got.done and got.step == want.step
    sd, wd = got.model.state_dict(), want.model.state_dict()
    assert all(torch.equal(sd[k], wd[k]) for k in wd)
    assert got_final["loss"] == final["loss"] and seconds > 0 and got_seconds > 0
    assert json.loads((part / BENCH_ARGS).read_text())["overrides"] == OVERRIDES
    # a finished run is not trained again
    assert train_supernet(None, OVERRIDES, part)[0] == got_final and Trainer.resume(part).step == got.step


def test_a_directory_of_another_run_is_refused(tmp_path):
    train_supernet(None, OVERRIDES, tmp_path / "run")
    with pytest.raises(SystemExit, match="other arguments.*train.epochs=3"):
        train_supernet(None, [*OVERRIDES, "train.epochs=3"], tmp_path / "run")
    (tmp_path / "run" / BENCH_ARGS).unlink()              # no record: the config decides
    with pytest.raises(SystemExit, match="holds another run"):
        train_supernet(None, [*OVERRIDES, "train.epochs=3"], tmp_path / "run")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit, match="holds another run"):
        train_supernet(None, OVERRIDES, tmp_path / "other")
    (tmp_path / "torn").mkdir()                           # killed while writing the record: nothing trained yet
    (tmp_path / "torn" / BENCH_ARGS).write_text('{"config": nu')
    assert train_supernet(None, OVERRIDES, tmp_path / "torn")[1] > 0


def test_a_few_shot_run_returns_every_leaf_and_its_compute_time(tmp_path):
    ov = [*OVERRIDES, "fewshot.method=exhaustive", "fewshot.split_epochs=[1]"]
    final, seconds = train_supernet(None, ov, tmp_path / "fs")
    run = FewShotRun.resume(tmp_path / "fs")
    assert run.done and sorted(final) == sorted(str(n.id) for n in run.tree.leaves()) and len(final) == 5
    assert seconds == pytest.approx(run.train_seconds()) and seconds > 0


def test_fewshot_leaf_breakdown_routes_each_ranked_cell_to_its_sub_supernet(tmp_path):
    from benchmarks.fewshot_cifar10 import leaf_breakdown
    from nshot import spaces
    from nshot.train.partition import PartitionTree
    sp = spaces.get("nb201")
    tree = PartitionTree(sp)
    tree.split(0, 0, [[0, 1], [2, 3, 4]])                  # edge 0: {none, skip} | {convs, pool}
    (tmp_path / "fewshot.json").write_text(json.dumps({"tree": tree.to_dict()}))
    rows = [([0, 3, 3, 3, 3, 3], 1.0, 50.0), ([1, 3, 3, 3, 3, 3], 2.0, 60.0), ([1, 0, 0, 0, 0, 0], 3.0, 40.0),
            ([3, 3, 3, 3, 3, 3], 9.0, 90.0), ([4, 3, 3, 3, 3, 3], 8.0, 80.0)]
    lines = ["arch,score,truth,params,score_rank,truth_rank"]
    lines += [f"{sp.encode(c)},{s},{t},{100 * (i + 1)},0,0" for i, (c, s, t) in enumerate(rows)]
    (tmp_path / "rank-kendall_subset_327.csv").write_text("\n".join(lines) + "\n")
    first, second = leaf_breakdown(tmp_path)
    assert (first["leaf"], first["n"], second["leaf"], second["n"]) == (1, 3, 2, 2)
    assert first["score_mean"] == pytest.approx(2.0) and second["truth_mean"] == pytest.approx(85.0)
    assert first["tau_within"] == pytest.approx(-1 / 3)    # scores 1,2,3 vs truth 50,60,40: 1 C, 2 D
    assert second["tau_within"] == pytest.approx(1.0)
    rows[3] = ([3, 3, 3, 3, 3, 3], 8.0, 90.0)                # leaf 2 scores constant: tau undefined
    lines[4] = f"{sp.encode(rows[3][0])},8.0,90.0,400,0,0"
    (tmp_path / "rank-kendall_subset_327.csv").write_text("\n".join(lines) + "\n")
    assert leaf_breakdown(tmp_path)[1]["tau_within"] is None


def test_rank_sample_scores_with_the_protocol_the_run_was_ranked_with(tmp_path):
    from benchmarks.rank_sample import scoring_args
    assert scoring_args(tmp_path, None) == ["--bn", "batch"]                   # no record: CLI defaults
    proto = {"bn_mode": "recal", "recal_batches": 10, "eval_images": 1000, "probe": "knn", "probe_images": 1000}
    (tmp_path / "bench_rank.json").write_text(json.dumps({"protocol": proto}))
    assert scoring_args(tmp_path, None) == ["--bn", "recal", "--recal-batches", "10", "--eval-images", "1000",
                                            "--probe", "knn", "--probe-images", "1000"]
    assert scoring_args(tmp_path, 500)[4:6] == ["--eval-images", "500"]


def test_rank_sample_diagnostics_come_from_a_real_rank_report():
    from benchmarks.rank_sample import run_diagnostics
    from nshot.score.ranking import rank_report
    n = 20                                   # scores favour small archs: inverse to size, truth follows size
    archs, size = [f"a{i}" for i in range(n)], list(range(n))
    report = json.loads(json.dumps(rank_report(archs, [-x for x in size], [float(x) for x in size], size)))
    d = run_diagnostics(report)
    assert d["tau_scores_params"] == pytest.approx(-1.0)
    assert d["top1_truth"] == 0.0 and d["precision_at_10pct"] == 0.0
    small, large = d["rank_error_smallest_largest"]
    assert small > 0 > large                 # smallest ranked too high, largest too low
    assert run_diagnostics(json.loads(json.dumps(rank_report(archs, size, size, None))))[
        "rank_error_smallest_largest"] is None


def test_write_summary_keeps_the_variants_of_earlier_invocations(tmp_path):
    from benchmarks.suite import write_summary
    path, proto = tmp_path / "summary.json", {"epochs": 15}
    write_summary(path, {"command": "a", "protocol": proto, "seconds": 1, "results": {"spos": 0.1, "fsnas": -0.1}},
                  ("results",))
    merged = write_summary(path, {"command": "b", "protocol": proto, "seconds": 2,
                                  "results": {"fsnas": 0.2, "gm": 0.3}}, ("results",))
    assert merged == json.loads(path.read_text())
    assert merged["results"] == {"spos": 0.1, "fsnas": 0.2, "gm": 0.3}       # the newer run of fsnas wins
    assert (merged["seconds"], merged["commands"]) == (2, ["a", "b"])
    again = write_summary(path, {"command": "b", "protocol": proto, "results": {}}, ("results",))
    assert again["commands"] == ["a", "b"] and again["results"] == merged["results"]   # a repeated command once
    other = write_summary(path, {"command": "c", "protocol": {"epochs": 6}, "results": {"x": 1}}, ("results",))
    assert other["results"] == {"x": 1} and other["commands"] == ["c"]        # other settings: not merged


def test_write_summary_reads_the_old_single_command_format_and_survives_a_broken_file(tmp_path, capsys):
    from benchmarks.suite import write_summary
    path = tmp_path / "summary.json"
    path.write_text(json.dumps({"command": "old", "recipes": {"spos": {"tau_mean": 0.1}}}))
    merged = write_summary(path, {"command": "new", "recipes": {"fairnas": {"tau_mean": 0.2}}}, ("recipes",))
    assert merged["commands"] == ["old", "new"] and set(merged["recipes"]) == {"spos", "fairnas"}
    path.write_text('{"command": "cut off')
    fresh = write_summary(path, {"command": "x", "recipes": {"a": 1}}, ("recipes",))
    assert fresh == {"command": "x", "recipes": {"a": 1}, "commands": ["x"]}
    assert "unreadable" in capsys.readouterr().err


def test_shared_settings_leave_out_which_runs_and_how():
    import argparse
    from benchmarks.suite import shared_settings
    args = argparse.Namespace(epochs=15, C=8, seeds=[0], recipes=["spos"], jobs=2, threads=1, data_root="/d",
                              out="o", families=["fsnas"])
    assert shared_settings(args) == {"C": 8, "epochs": 15, "families": ["fsnas"]}
    assert shared_settings(args, ("families",)) == {"C": 8, "epochs": 15}


def test_gm_cost_linear_fit():
    from benchmarks.gm_cost import linear_fit
    a, b, r2 = linear_fit([1, 2, 4, 8], [0.5 + 2 * x for x in (1, 2, 4, 8)])
    assert (a, b, r2) == pytest.approx((2.0, 0.5, 1.0))
    assert linear_fit([1, 2, 3], [1, 3, 2])[2] == pytest.approx(0.25)   # r = 0.5


def test_gm_cost_power_exponents():
    from benchmarks.gm_cost import power_exponents
    configs = [(r, e) for r in (1, 2, 4) for e in (1, 3)]
    p, q = power_exponents(configs, [0.7 * r * e ** 0.5 for r, e in configs])
    assert (p, q) == pytest.approx((1.0, 0.5))


@pytest.mark.parametrize("spelling", ["python -m benchmarks.rank_cifar10", "python benchmarks/rank_cifar10.py"],
                         ids=["module", "script (runs made before benchmarks became a package)"])
def test_a_finished_run_is_reused_only_with_the_same_settings(tmp_path, spelling):
    from benchmarks.common import REPO
    from benchmarks.jobs import check_same_settings
    cfg = str(REPO / "configs/nb201/spos.yaml")
    recorded = f"{spelling} --epochs 15 --C 8 --eval-images 1000 --threads 2 --out {tmp_path}"
    same = ["--config", cfg, "--seed", "0", "--epochs", "15", "--C", "8", "--train-images", "25000",
            "--eval-images", "1000", "--threads", "1", "--data-root", "/elsewhere", "--out", str(tmp_path / "x")]
    check_same_settings(tmp_path, recorded, same)    # defaults spelled out, threads/data/out differ: the same run
    with pytest.raises(SystemExit, match="epochs: 15 then, 6 now"):
        check_same_settings(tmp_path, recorded, [*same, "--epochs", "6"])
    with pytest.raises(SystemExit, match="train_images: 25000 then, 10000 now"):
        check_same_settings(tmp_path, recorded, [*same, "--train-images", "10000"])
    with pytest.raises(SystemExit, match="config"):
        check_same_settings(tmp_path, recorded, [*same, "--config", str(REPO / "configs/nb201/fairnas.yaml")])


def test_abba_alternates_the_order_every_round_after_one_warm_up_call_each():
    from benchmarks.timing import abba, abba_order
    assert abba_order("ab", 0) == ["a", "b"] and abba_order("ab", 1) == ["b", "a"]
    assert abba_order("abc", 3) == ["c", "b", "a"]
    calls = []
    times = abba({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=3, reps=2)
    assert calls == ["a", "b"] + ["a", "a", "b", "b"] + ["b", "b", "a", "a"] + ["a", "a", "b", "b"]
    assert [len(v) for v in times.values()] == [3, 3] and all(t >= 0 for v in times.values() for t in v)
    calls.clear()
    abba({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=2, reps=1, warmup=False)
    assert calls == ["a", "b", "b", "a"]


def test_a_job_runs_once_as_a_module_and_is_then_read_back(tmp_path):
    from benchmarks.jobs import Job, in_parallel, run_job
    # a real child: the benchmark that writes its JSON with --out (numbers of a tiny, seeded count)
    job = Job("dead_edge_work", ["--samples", "50", "--C", "4", "--N", "1", "--out", str(tmp_path / "r.json")],
              tmp_path / "r.json", tmp_path / "logs" / "r.log")
    first = run_job(job)
    assert first["command"].startswith("python -m benchmarks.dead_edge_work --samples 50")
    assert first["cell_conv_macs_ratio"] >= 1 and "xautodl / nshot" in job.log.read_text()
    seen = []
    assert run_job(job, check=seen.append) == first and seen == [first]   # finished: read, not run again
    assert job.log.read_text().count("xautodl / nshot") == 3                # three ratios, printed once
    assert in_parallel(lambda x: x * x, [1, 2, 3], jobs=2) == [1, 4, 9]
