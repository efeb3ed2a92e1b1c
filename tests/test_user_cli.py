"""A user's first hour (issue 22): the command line as a user runs it, in a subprocess, with exact outcomes."""
from __future__ import annotations

import hashlib
import io
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import digits_config, nshot

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("digits")
    run = tmp / "run"
    out = nshot("train", str(digits_config(tmp)), "--run-dir", str(run), "seed=3")   # an override after an option
    assert out.returncode == 0, out.stderr
    assert yaml.safe_load((run / "config.yaml").read_text())["seed"] == 3
    return run


# -- checkpoints hold plain data only --------------------------------------------------------------------------

class _WritesAFile:
    """A pickle payload that, when unpickled in full, creates a file (what a crafted checkpoint would do)."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (Path.write_text, (self.target, "pwned"))


def test_a_crafted_checkpoint_is_refused_and_runs_no_code(digits_run, tmp_path):
    import torch
    run = tmp_path / "shared-run"
    import shutil
    shutil.copytree(digits_run, run)
    target = tmp_path / "written-by-the-checkpoint"
    buf = io.BytesIO()
    torch.save({"format": 1, "payload": _WritesAFile(target)}, buf)
    payload = buf.getvalue()
    for name in ("last.pt", "prev.pt"):
        (run / "checkpoints" / name).write_bytes(b"NSHOT-CKPT 1 " + hashlib.sha256(payload).hexdigest().encode()
                                                 + b"\n" + payload)
    for argv in (["train", "--resume", str(run)], ["search", str(run), "--strategy", "random", "--budget", "3"],
                 ["report", str(run)]):
        out = nshot(*argv)
        if argv[0] == "report":   # the report reads no checkpoint: it must still work, and run nothing
            assert out.returncode == 0, out.stderr
        else:
            assert out.returncode == 1, (argv, out.stderr)
            assert "weights_only=True" in out.stderr and "refuses it without running any of its code" in out.stderr
            assert out.stderr.count("\n") == 1
        assert not target.exists()
    # pickle itself would have written the file: the test's payload is real
    pickle.loads(pickle.dumps(_WritesAFile(target)))
    assert target.read_text() == "pwned"


def test_checkpoints_refuse_non_plain_state_on_save(tmp_path):
    from nshot.train.checkpoint import load_checkpoint, save_checkpoint
    import numpy as np
    import torch
    with pytest.raises(TypeError, match=r"state\['bad'\]: a ndarray cannot be saved"):
        save_checkpoint(tmp_path, {"bad": np.zeros(3)})
    assert not (tmp_path / "last.pt").exists()
    save_checkpoint(tmp_path, {"w": torch.ones(2), "step": 3, "lr": 0.1, "names": ["a"], "cfg": {"x": None}})
    assert load_checkpoint(tmp_path)["step"] == 3


def _old_checkpoint(path: Path, state) -> None:
    """A checkpoint file as an nshot that pickled anything would have written it (header + checksum)."""
    import torch
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    path.write_bytes(b"NSHOT-CKPT 1 " + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)


def test_an_old_checkpoint_is_refused_then_converted_once(tmp_path):
    """An old checkpoint holding numpy values is refused with the converter's command; the converter (run as
    the message says) rewrites it as plain data, keeps the original, and the same numbers load weights-only."""
    import numpy as np
    import torch
    from nshot.errors import CheckpointError
    from nshot.train.checkpoint import load_checkpoint
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    _old_checkpoint(folder / "last.pt", {"step": np.int64(7), "w": torch.arange(3.0), "lr": np.float64(0.25),
                                         "rng": np.arange(4, dtype=np.uint32), "names": ("a", "b")})
    with pytest.raises(CheckpointError, match=r"python -m nshot.train.checkpoint --convert .*last.pt"):
        load_checkpoint(folder)
    out = subprocess.run([sys.executable, "-m", "nshot.train.checkpoint", "--convert", str(folder / "last.pt")],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0 and out.stdout.startswith("converted "), out.stderr
    assert (folder / "last.pt.unsafe").is_file()
    state = load_checkpoint(folder)
    assert state["step"] == 7 and state["lr"] == 0.25 and state["names"] == ("a", "b")
    assert torch.equal(state["w"], torch.arange(3.0)) and state["rng"].tolist() == [0, 1, 2, 3]
    # a state that stays non-plain after conversion is refused, and the file is left as it was
    _old_checkpoint(folder / "odd.pt", {"f": Path("x")})
    before = (folder / "odd.pt").read_bytes()
    out = subprocess.run([sys.executable, "-m", "nshot.train.checkpoint", "--convert", str(folder / "odd.pt")],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 1 and "cannot be saved in a weights-only checkpoint" in out.stderr
    assert (folder / "odd.pt").read_bytes() == before and not (folder / "odd.pt.unsafe").exists()


# -- exit codes ---------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_exit_codes_usage_failure_interrupted(digits_run, tmp_path):
    out = nshot("train", str(digits_config(tmp_path)), "train.epohcs=2")
    assert out.returncode == 2 and "unknown config key 'train.epohcs'" in out.stderr
    out = nshot("search", str(digits_run), "--budget", "0")
    assert out.returncode == 2 and "--budget" in out.stderr and "must be >= 1" in out.stderr
    broken = tmp_path / "broken"
    import shutil
    shutil.copytree(digits_run, broken)
    for name in ("last.pt", "prev.pt"):
        (broken / "checkpoints" / name).write_bytes(b"NSHOT-CKPT 1 00\nxx")
    out = nshot("train", "--resume", str(broken))
    assert out.returncode == 1 and "checksum mismatch" in out.stderr
    # SIGINT during training: checkpoint, "paused", status 130; the resume then finishes with 0
    import signal
    import time
    cfg = digits_config(tmp_path, epochs=200)
    run = tmp_path / "interrupted"
    e = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "nshot", "train", str(cfg), "--run-dir", str(run)], env=e,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run / "metrics.jsonl").is_file() or not (run / "metrics.jsonl").read_text():
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "paused" in stdout


def test_evolution_defaults_follow_population(digits_run):
    from nshot.cli import evolution_defaults
    assert evolution_defaults(50) == {"parents": 10, "mutants": 25, "crossovers": 25}   # SPOS's
    assert evolution_defaults(20) == {"parents": 4, "mutants": 10, "crossovers": 10}
    out = nshot("search", str(digits_run), "--population", "6", "--generations", "2", "--progress", "none")
    assert out.returncode == 0, out.stderr
    assert "wrote" in out.stdout
    out = nshot("search", str(digits_run), "--population", "6", "--mutants", "5")
    assert out.returncode == 2 and out.stderr == "error: --mutants 5 + --crossovers 3 must be at most --population 6\n"


def test_help_examples_run_as_written(tmp_path):
    """Every `nshot ...` example of a command's help gets past argument parsing and config validation; without
    CIFAR-10 here the first stops at the missing data, naming the config key that fetches it."""
    from nshot.cli import EPILOG_TRAIN
    (tmp_path / "configs").symlink_to(REPO / "configs")
    examples = [line.split("#")[0].split()[1:] for line in EPILOG_TRAIN.splitlines() if line.startswith("  nshot ")]
    assert len(examples) == 4
    for argv in examples:
        out = nshot(*argv, cwd=tmp_path)
        assert "usage:" not in out.stderr and "unrecognized" not in out.stderr, (argv, out.stderr)
        assert out.returncode == 2 and out.stderr.count("\n") == 1, (argv, out.stderr)
        if "--resume" in argv:
            assert "runs/spos-seed1 is not a run directory" in out.stderr
        else:
            assert "cifar10 not found" in out.stderr and "add data.download=true to fetch it" in out.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_ground_truth_follows_the_run(digits_run, tmp_path):
    from tests.helpers import write_table
    table = tmp_path / "nb201.csv"
    write_table(table, n=10)
    out = nshot("rank", str(digits_run), "--table", str(table), "--subset", "5")
    assert out.returncode == 2
    assert out.stderr == ("error: the run trained on 'digits', which has no ground truth in benchmark nb201 "
                          "(cifar10 -> cifar10/test, cifar100 -> cifar100/test, imagenet16-120 -> imagenet16/test); "
                          "to compare with one of its metrics anyway, pass it, e.g. --metric cifar10/test\n")
    out = nshot("rank", str(digits_run), "--table", str(table), "--subset", "5", "--metric", "cifar100/test",
                "--progress", "none")
    assert out.returncode == 0, out.stderr
    assert "metric cifar100/test" in out.stdout and (digits_run / "rank-n5-cifar100_test.json").is_file()
    from nshot import benchmarks
    nb = benchmarks.NB201Benchmark
    assert [benchmarks.metric_for(nb, d) for d in ("cifar10", "cifar100", "imagenet16-120")] == \
        ["cifar10/test", "cifar100/test", "imagenet16/test"]


def test_log_off_a_terminal_is_one_line_kind(tmp_path):
    import re
    cfg = digits_config(tmp_path, epochs=2, batch_size=64, log_every_steps=10)
    out = nshot("train", str(cfg), "--run-dir", str(tmp_path / "run"), "run.progress=log")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    steps = [line for line in lines if line.startswith("train ")]
    pattern = r"train \d+/30 epoch \d loss \d+\.\d{4} lr \d\.\d{3}e[+-]\d\d \d+\.\d it/s"
    assert steps and all(re.fullmatch(pattern, line) for line in steps), steps
    assert [int(line.split()[1].split("/")[0]) for line in steps] == [10, 20, 30]
    assert len(lines) == len(steps) + 2   # plus the start and "finished" lines; epochs are in metrics.jsonl
