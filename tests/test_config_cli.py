"""Config loading/validation and the `nshot` command line."""
import subprocess
import sys

import pytest
import yaml

from nshot.cli import main
from nshot.config import Config, ConfigError, dump_config, load_config

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


def test_spos_recipe_is_the_paper_protocol():
    c = load_config(REPO / "configs/nb201/spos.yaml")
    assert (c.space.name, c.model.C, c.model.N) == ("nb201", 16, 5)
    assert (c.data.name, c.data.split, c.train.batch_size, c.train.epochs) == ("cifar10", "nb201", 64, 250)
    assert (c.optim.lr, c.optim.weight_decay, c.optim.momentum, c.optim.nesterov) == (0.025, 5e-4, 0.9, True)
    assert (c.train.lr_policy, c.train.sampler, c.train.grad_clip) == ("cosine", "uniform", 5.0)
    assert not c.model.bn_affine and not c.model.bn_track_running_stats and not c.optim.update_unused


def test_yaml_round_trip(tmp_path):
    c = load_config(None, ["train.epochs=7", "optim.lr=0.1", "data.split_file=/x/split.json", "seed=3"])
    dump_config(c, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == c


@pytest.mark.parametrize("override, message", [
    ("train.epochz=3", "unknown config key 'train.epochz'; allowed keys under train: epochs"),
    ("trian.epochs=3", "unknown config key 'trian'; allowed keys: seed, device"),
    ("train.sampler=foo", r"train.sampler = 'foo' is invalid: expected one of uniform"),
    ("model.C=abc", "model.C = 'abc' is invalid: expected an integer"),
    ("optim.lr=-1", "optim.lr = -1.0 is invalid: expected a positive number"),
    ("optim.nesterov=maybe", "optim.nesterov = 'maybe' is invalid: expected true or false"),
    ("train.epochs=0", "train.epochs = 0 is invalid"),
    ("device=tpu", "device = 'tpu' is invalid"),
    ("train", "must look like key.sub=value"),
    ("train.epochs=null", "train.epochs must not be null"),
])
def test_bad_config_values_are_named(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(None, [override])


def test_bad_config_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping at the top level"):
        load_config(tmp_path / "list.yaml")
    (tmp_path / "bad.yaml").write_text("train: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")


def test_every_command_has_help():
    for argv in (["--help"], *([c, "--help"] for c in ("train", "rank", "search", "train-arch", "report", "quickstart"))):
        out = subprocess.run([sys.executable, "-m", "nshot", *argv], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and "usage: nshot" in out.stdout


def test_cli_reports_missing_data_clearly(tmp_path, capsys):
    rc = main(["train", str(REPO / "configs/nb201/spos.yaml"), f"data.root={tmp_path}", "--run-dir",
               str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc == 2
    assert str(tmp_path) in err and "cifar-10-batches-py" in err
    assert not (tmp_path / "run").exists()  # nothing written for a run that could not start


def test_cli_reports_bad_key(tmp_path, capsys):
    rc = main(["train", str(REPO / "configs/nb201/spos.yaml"), "train.epohcs=2", "--run-dir", str(tmp_path / "r")])
    assert rc == 2 and "unknown config key 'train.epohcs'" in capsys.readouterr().err


def test_cli_train_pause_and_resume_on_digits(tmp_path, capsys):
    cfg = tmp_path / "digits.yaml"
    cfg.write_text(yaml.safe_dump({"device": "cpu", "data": {"name": "digits", "crop_padding": 1, "flip": False},
                                   "model": {"C": 4, "N": 1}, "train": {"epochs": 2, "batch_size": 128},
                                   "run": {"progress": "none"}}))
    run = tmp_path / "run"
    assert main(["train", str(cfg), "--run-dir", str(run), "--max-steps", "3"]) == 0
    assert "paused" in capsys.readouterr().out
    assert main(["train", "--resume", str(run)]) == 0
    out = capsys.readouterr().out
    assert "resuming" in out and "finished" in out
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
    assert main(["train", str(cfg), "--run-dir", str(run)]) == 2
    assert "already holds a run" in capsys.readouterr().err


@pytest.mark.slow
def test_quickstart_smoke(tmp_path, capsys):
    from nshot.quickstart import NEXT_COMMAND, run_quickstart
    s = run_quickstart(str(tmp_path / "qs"), num_archs=3, supernet_epochs=1, standalone_epochs=1, progress="none",
                       truth_seeds=2)
    out = capsys.readouterr().out
    assert "Kendall tau" in out and "95 % bootstrap interval" in out and "DEMO scale" in out
    assert len(s["supernet_acc"]) == len(s["standalone_acc"]) == 3 and -1 <= s["kendall_tau"] <= 1
    assert [len(r) for r in s["standalone_runs"]] == [2, 2, 2] and s["truth_seeds"] == 2
    assert all(abs(t - sum(r) / 2) < 1e-9 for t, r in zip(s["standalone_acc"], s["standalone_runs"]))
    assert s["bands"] == ["1/10", "5/10", "10/10"]               # the weakest and the strongest band included
    for name in ("quickstart.json", "rank.json", "rank.csv", "report.html"):
        assert (tmp_path / "qs" / name).is_file()
    html = (tmp_path / "qs" / "report.html").read_text()
    assert "stand-alone training (quickstart)" in html and "supernet score against benchmark truth" in html
    assert out.rstrip().endswith(NEXT_COMMAND) and NEXT_COMMAND in (REPO / "README.md").read_text()
    refused = subprocess.run([sys.executable, "-m", "nshot", "quickstart", "--archs", "2"], capture_output=True,
                             text=True, timeout=120)
    assert refused.returncode == 2 and "--archs: must be >= 3, got 2" in refused.stderr


def test_every_config_key_is_documented_in_readme():
    import dataclasses

    readme = (REPO / "README.md").read_text()

    def keys(cls, prefix=""):
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(f.default_factory if f.default_factory is not dataclasses.MISSING else None):
                yield from keys(f.default_factory, prefix + f.name + ".")
            else:
                yield prefix + f.name

    missing = [k for k in keys(Config) if f"`{k}`" not in readme]
    assert not missing, f"README.md config table lacks {missing}"


def test_quickstart_workers_one_per_core(monkeypatch):
    """The truth trains in one worker per core (capped), none on a single core."""
    from nshot import quickstart
    for cores, jobs, want in ((1, 30, 0), (2, 30, 2), (16, 30, quickstart.MAX_WORKERS), (16, 3, 3)):
        monkeypatch.setattr(quickstart.os, "sched_getaffinity", lambda _pid, c=cores: set(range(c)), raising=False)
        assert quickstart._workers(jobs) == want


@pytest.mark.slow
def test_quickstart_truth_is_the_same_in_a_worker_and_in_this_process():
    """Stand-alone truth jobs give the same accuracies in a spawned worker as in the calling process, whatever
    ran before in that process (two quickstart seeds, so two data splits, in opposite orders), so the number of
    workers cannot change a quickstart's figures."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import torch

    from nshot.config import load_config, to_dict
    from nshot.quickstart import QUICKSTART_OVERRIDES, _standalone_job, pick_architectures
    cfgs = [to_dict(load_config(None, QUICKSTART_OVERRIDES + ["device=cpu", f"seed={s}"])) for s in (0, 1)]
    arch = pick_architectures(3, 0)[2][1]
    threads = torch.get_num_threads()
    try:
        here = [_standalone_job(c, arch, 1, 5) for c in cfgs]
    finally:
        torch.set_num_threads(threads)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        there = [pool.submit(_standalone_job, c, arch, 1, 5).result() for c in cfgs[::-1]][::-1]
    assert here == there and all(0 < x <= 100 for x in here)
