"""Crash safety: SIGKILL `nshot train` / `nshot rank` at random points and resume; the result must equal an
uninterrupted run bit for bit (weights, optimizer state, metrics minus timing).

Killed commands run as subprocesses (`python -m nshot ...`, or a wrapper script that slows a chosen write so
the kill lands inside it); references and the final resumes run in-process through `nshot.cli.main`, which
is the same code on the same CPU with one thread. docs/reliability.md counts what this file does.
"""
from __future__ import annotations

import copy
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from nshot.cli import main
from nshot.train.checkpoint import load_checkpoint, read_checkpoint_file
from tests.helpers import TIMING, assert_same_tensors, write_table

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow   # every test here kills and resumes subprocesses: minutes

BASE = {"device": "cpu", "threads": 1, "seed": 0,
        "data": {"name": "digits", "crop_padding": 1, "flip": False, "train_subset": 448},   # 7 steps / epoch
        "model": {"C": 4, "N": 1},
        "train": {"epochs": 4, "batch_size": 64, "checkpoint_every_steps": 3},          # ckpts at 3, 6, 7, 9, ...
        "run": {"progress": "none"}}
RECIPES = {
    "spos": {},
    "spos_calr_ms": {"lr_policy": "calr", "optimizer": "ms_sgd"},
    "fairnas": {"sampler": "fair", "epochs": 2},       # 5 paths a step: fewer steps
}


# -- helpers ----------------------------------------------------------------------------------------------

def write_config(folder: Path, recipe: str) -> Path:
    cfg = copy.deepcopy(BASE)
    cfg["train"].update(RECIPES[recipe])
    path = folder / f"{recipe}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def spawn(args: list[str], log: Path, script: Path | None = None, env: dict | None = None) -> subprocess.Popen:
    cmd = [sys.executable, str(script)] if script else [sys.executable, "-m", "nshot"]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.Popen(cmd + args, cwd=REPO, env=full_env, stdout=open(log, "w"), stderr=subprocess.STDOUT)


def wait_until(cond, proc: subprocess.Popen, timeout: float = 300.0) -> bool:
    """Poll ``cond`` every 2 ms until it holds (True) or ``proc`` exits (False); a hang guard, generous because a
    loaded 2-core machine runs a few-shot phase several times slower than a quiet one."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        if proc.poll() is not None:
            return cond()
        time.sleep(0.002)
    raise AssertionError("timed out waiting for the subprocess")


def kill(proc: subprocess.Popen) -> bool:
    """SIGKILL ``proc``; True when it was still running, False when it had already exited."""
    running = proc.poll() is None
    if running:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    return running and proc.returncode == -signal.SIGKILL


def saved_step(run: Path) -> int:
    """Step of the run's checkpoint (0 when it has none yet)."""
    folder = run / "checkpoints"
    if not (folder / "last.pt").exists() and not (folder / "prev.pt").exists():
        return 0
    return load_checkpoint(folder)["step"]


def ckpt_id(run: Path):
    try:
        st = (run / "checkpoints" / "last.pt").stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def wait_checkpoints(run: Path, proc: subprocess.Popen, n: int) -> None:
    """Poll until ``run`` has had ``n`` new checkpoints written (or ``proc`` exits)."""
    seen = ckpt_id(run)
    for _ in range(n):
        before = seen
        if not wait_until(lambda: ckpt_id(run) not in (None, before), proc):
            return
        seen = ckpt_id(run)


def metrics(run: Path) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]


def assert_runs_equal(run: Path, ref: Path) -> None:
    a, b = load_checkpoint(run / "checkpoints"), load_checkpoint(ref / "checkpoints")
    assert a["step"] == b["step"]
    assert_same_tensors(a["model"], b["model"], "model")
    assert_same_tensors(a["optimizer"], b["optimizer"], "optimizer")
    acc_a = {k: v for k, v in a["epoch_accumulators"].items() if k != "seconds"}
    acc_b = {k: v for k, v in b["epoch_accumulators"].items() if k != "seconds"}
    assert acc_a == acc_b
    assert metrics(run) == metrics(ref)


@pytest.fixture(scope="module")
def refs(tmp_path_factory):
    """Uninterrupted in-process reference runs, made on first use: recipe -> (config, run dir, training seconds)."""
    folder = tmp_path_factory.mktemp("refs")
    made: dict[str, tuple[Path, Path, float]] = {}

    def get(recipe: str):
        if recipe not in made:
            cfg = write_config(folder, recipe)
            run = folder / recipe
            assert main(["train", str(cfg), "--run-dir", str(run)]) == 0
            seconds = sum(json.loads(line)["seconds"] for line in (run / "metrics.jsonl").read_text().splitlines())
            made[recipe] = (cfg, run, seconds)
        return made[recipe]

    return get


# -- kill / resume during training ------------------------------------------------------------------------

@pytest.mark.parametrize("recipe, kills", [("spos", 3), ("spos_calr_ms", 2), ("fairnas", 2)])
def test_sigkill_and_resume_is_bit_identical(recipe, kills, refs, tmp_path, capsys):
    cfg, ref, seconds = refs(recipe)
    capsys.readouterr()
    rng = np.random.default_rng(sorted(RECIPES).index(recipe))
    run = tmp_path / "run"
    # kill 1: a seeded random delay after the run directory appears (may land before the first checkpoint:
    # the resume then starts again from step 0)
    total = load_checkpoint(ref / "checkpoints")["step"]
    proc = spawn(["train", str(cfg), "--run-dir", str(run)], tmp_path / "log1.txt")
    assert wait_until(lambda: (run / "config.yaml").exists(), proc), (tmp_path / "log1.txt").read_text()
    time.sleep(rng.uniform(0.0, 0.5) * seconds)
    crashes = [kill(proc) and saved_step(run) < total]
    at = [saved_step(run)]
    # kill 2: right after the resumed run writes its k-th new checkpoint (k seeded, 1..3)
    proc = spawn(["train", "--resume", str(run)], tmp_path / "log2.txt")
    wait_checkpoints(run, proc, int(rng.integers(1, 4)))
    crashes.append(kill(proc) and saved_step(run) < total)
    at.append(saved_step(run))
    if kills == 3:  # kill 3: a seeded random delay after the next resume's first new checkpoint
        proc = spawn(["train", "--resume", str(run)], tmp_path / "log3.txt")
        wait_checkpoints(run, proc, 1)
        time.sleep(rng.uniform(0.0, 0.3) * seconds)
        crashes.append(kill(proc) and saved_step(run) < total)
        at.append(saved_step(run))
    assert sum(crashes) >= 2, (crashes, at)    # at least two kills hit a run before its end
    assert main(["train", "--resume", str(run)]) == 0
    assert "finished" in capsys.readouterr().out
    assert_runs_equal(run, ref)
    events = [e["event"] for e in json.loads((run / "env.json").read_text())]
    assert events[0] == "start" and len(events) == kills + 1


SLOW_WRITE = '''
import os, sys, time
from pathlib import Path
import nshot.train.checkpoint as ck

marker, at, mode = Path(os.environ["CRASH_MARKER"]), int(os.environ["CRASH_AT_SAVE"]), os.environ["CRASH_MODE"]
original, calls = ck.atomic_write_bytes, [0]


def slow_write(path, data, keep_previous=None):
    path = Path(path)
    if path.name == "last.pt":
        calls[0] += 1
        if calls[0] == at:
            if mode == "torn":          # killed while the temporary file is half written
                path.with_name(path.name + ".tmp").write_bytes(data[: len(data) // 2])
            else:                       # killed with the temporary file complete, before the rename
                ck._write_temp(path, data)
            marker.touch()
            time.sleep(120)
    return original(path, data, keep_previous=keep_previous)


ck.atomic_write_bytes = slow_write
from nshot.cli import main
sys.exit(main(sys.argv[1:]))
'''


@pytest.mark.parametrize("mode, at_save", [("torn", 4), ("complete", 2)])
def test_sigkill_while_writing_a_checkpoint(mode, at_save, refs, tmp_path, capsys):
    cfg, ref, _ = refs("spos")
    capsys.readouterr()
    script, marker, run = tmp_path / "slow_write.py", tmp_path / "in_write", tmp_path / "run"
    script.write_text(SLOW_WRITE)
    proc = spawn(["train", str(cfg), "--run-dir", str(run)], tmp_path / "log.txt", script=script,
                 env={"CRASH_MARKER": str(marker), "CRASH_AT_SAVE": str(at_save), "CRASH_MODE": mode})
    assert wait_until(marker.exists, proc), (tmp_path / "log.txt").read_text()
    assert kill(proc)
    folder = run / "checkpoints"
    assert (folder / "last.pt.tmp").exists()
    steps = [read_checkpoint_file(folder / n)["step"] for n in ("last.pt", "prev.pt") if (folder / n).exists()]
    assert len(steps) == min(at_save - 1, 2) and steps == sorted(steps, reverse=True)   # both verify
    assert main(["train", "--resume", str(run)]) == 0
    assert f"at step {steps[0]}/" in capsys.readouterr().out                 # resumed from the intact last.pt
    assert_runs_equal(run, ref)


# -- kill / rerun during scoring --------------------------------------------------------------------------

SLOW_SCORE = '''
import sys, time
import nshot.score.scorer as sc

sc.FLUSH_SECONDS = 0.2                 # flush often, so that the kill finds some scores cached
original = sc.Scorer._evaluate


def slow_evaluate(self, arch):
    time.sleep(0.05)                   # and score slowly, so that it lands mid-scoring
    return original(self, arch)


sc.Scorer._evaluate = slow_evaluate
from nshot.cli import main
sys.exit(main(sys.argv[1:]))
'''

def score_rows(run: Path) -> list[dict]:
    path = run / "scores.csv"
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if r.get("seed") not in (None, "")]   # a torn last line is skipped


def test_sigkill_while_ranking_resumes_from_the_cache(refs, tmp_path, capsys):
    _, ref, _ = refs("spos")
    table = tmp_path / "table.csv"
    write_table(table)
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(ref, a)
    shutil.copytree(ref, b)
    rank = ["--table", str(table), "--metric", "cifar10/test", "--subset", "40", "--progress", "none"]
    assert main(["rank", str(a), *rank]) == 0                               # uninterrupted
    script = tmp_path / "slow_score.py"
    script.write_text(SLOW_SCORE)
    proc = spawn(["rank", str(b), *rank], tmp_path / "log.txt", script=script)
    assert wait_until(lambda: len(score_rows(b)) > 0, proc), (tmp_path / "log.txt").read_text()
    time.sleep(np.random.default_rng(7).uniform(0.0, 0.3))
    assert kill(proc)
    cached = len(score_rows(b))
    assert 0 < cached < 40 and not (b / "rank.json").exists()
    capsys.readouterr()
    assert main(["rank", str(b), *rank]) == 0                               # rerun: scores only the rest
    rows = score_rows(b)
    assert len(rows) == 40 and len({(r["arch"], r["bn_mode"], r["eval_images"], r["step"], r["seed"])
                                    for r in rows}) == 40
    ra, rb = (json.loads((r / "rank.json").read_text()) for r in (a, b))
    ra["protocol"].pop("run_dir")
    rb["protocol"].pop("run_dir")
    assert ra == rb
    assert (a / "rank.csv").read_text() == (b / "rank.csv").read_text()


# -- kill / resume a few-shot (GM-NAS) run, including mid-split ------------------------------------------

SLOW_SPLIT = '''
import os, sys, time
from pathlib import Path
import nshot.train.fewshot as fs

marker, original = Path(os.environ["CRASH_MARKER"]), fs.choose_split


def slow_split(*args, **kwargs):
    marker.touch()          # the parent finished its phase; the split estimate is under way
    time.sleep(120)
    return original(*args, **kwargs)


fs.choose_split = slow_split
from nshot.cli import main
sys.exit(main(sys.argv[1:]))
'''


PINAS = {"train": {"sampler": "pair", "objective": "pinas", "grad_clip": None},
         "pinas": {"queue_size": 64, "hidden_dim": 16, "dim": 8}}


@pytest.mark.parametrize("objective", ["supervised", "pinas"])
def test_sigkill_few_shot_mid_split_and_mid_phase_is_bit_identical(objective, tmp_path, capsys):
    cfg = copy.deepcopy(BASE)
    cfg["train"].update({"epochs": 3})
    cfg["fewshot"] = {"method": "gm", "split_epochs": [1, 2], "gm_batches": 2, "inherit": True}
    if objective == "pinas":   # contrastive GM estimate; teacher, queue and head resumed with the weights
        cfg["train"].update(PINAS["train"])
        cfg["pinas"] = dict(PINAS["pinas"])
        cfg["data"]["train_subset"] = 192   # 3 steps an epoch: a Pi-NAS step costs about 3 supervised ones
    path = tmp_path / "gm.yaml"
    path.write_text(yaml.safe_dump(cfg))
    ref, run = tmp_path / "ref", tmp_path / "run"
    assert main(["train", str(path), "--run-dir", str(ref)]) == 0
    capsys.readouterr()
    # kill 1: inside the first split estimate (the root has finished its phase)
    script, marker = tmp_path / "slow_split.py", tmp_path / "in_split"
    script.write_text(SLOW_SPLIT)
    proc = spawn(["train", str(path), "--run-dir", str(run)], tmp_path / "log1.txt", script=script,
                 env={"CRASH_MARKER": str(marker)})
    assert wait_until(marker.exists, proc), (tmp_path / "log1.txt").read_text()
    assert kill(proc)
    # kill 2: after a child sub-supernet has written a checkpoint (mid-phase of the second level)
    proc = spawn(["train", "--resume", str(run)], tmp_path / "log2.txt")
    child_ckpt = run / "nodes" / "1" / "checkpoints" / "last.pt"
    wait_until(child_ckpt.exists, proc)
    kill(proc)
    assert main(["train", "--resume", str(run)]) == 0
    assert "finished" in capsys.readouterr().out
    tree_ref = json.loads((ref / "fewshot.json").read_text())["tree"]
    tree_run = json.loads((run / "fewshot.json").read_text())["tree"]
    assert tree_ref == tree_run          # same splits, same evidence
    leaves = [n["id"] for n in tree_ref["nodes"] if not n["children"]]
    assert len(leaves) == 4
    for leaf in leaves:
        a = load_checkpoint(run / "nodes" / str(leaf) / "checkpoints")
        b = load_checkpoint(ref / "nodes" / str(leaf) / "checkpoints")
        assert a["step"] == b["step"]
        assert_same_tensors(a["model"], b["model"], f"leaf {leaf} model")
        assert_same_tensors(a["optimizer"]["state"], b["optimizer"]["state"], f"leaf {leaf} optimizer")
        assert_same_tensors(a.get("objective") or {}, b.get("objective") or {}, f"leaf {leaf} objective")
