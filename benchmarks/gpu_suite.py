"""The GPU suite: one command, everything under one folder, resumable (issue 19).

Stages, in order, each recorded in ``OUT/suite.json`` as it finishes (a second call skips what is done and
continues the paper run where it stopped):

1. ``env``: torch, CUDA, GPU.
2. ``tests``: the CUDA-only tests (``pytest -m cuda``): graph replay = uncaptured static step, static = eager
   in lockstep on the GPU, no host sync per static step, bf16 finite, arch-batched scores = per-arch scores.
3. ``speed``: training steps/s, eager vs static, side by side (alternating rounds), NB201 C16 N5 batch 64:
   SPOS, SPOS + CaLR + MS, FairNAS in bf16, SPOS in fp32, and NAS-Bench-Macro SPOS in bf16.
4. ``paper``: the CVPR 2025 SPOS protocol -- NB201 C16 N5, 250 epochs, batch 64, CIFAR-10's 25k ``train``
   half -- with the step the speed stage found fastest, trained until ``--budget-seconds`` runs out (then
   checkpointed; the next call continues), then ranked on the 327-cell subset with 10,000 ``valid`` images.
5. ``scoring``: architectures/s of the scorer (one architecture per forward vs several), then all 15,625 cells
   on 10,000 ``valid`` images with the faster setting, if time allows, and their tau.

The paper run directory travels as ``OUT/paper_run.tar`` (the device tool returns at most 8 files).

    python -m benchmarks.gpu_suite --out runs/gpu --data .carry/data --budget-seconds 520
    python -m benchmarks.gpu_suite --smoke --out /tmp/gpu-smoke       # CPU, tiny: every stage's code path

``--data`` holds ``cifar10_jpeg.npz``, ``cifar10_valid_split.json``, ``nb201_200ep.csv``,
``kendall_subset_327.txt`` and ``cifar_blob_to_batches.py`` (default: ``../shared``'s data and tools).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import statistics
import traceback
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from benchmarks.common import REPO, command_line
from benchmarks.timing import abba

T0 = time.monotonic()


class Suite:
    """The output folder: ``suite.json`` (results per stage), ``suite.log`` (everything printed)."""

    def __init__(self, out: Path, budget: float, command: str):
        self.out, self.budget = out, budget
        out.mkdir(parents=True, exist_ok=True)
        self.path = out / "suite.json"
        self.state: dict[str, Any] = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.state.setdefault("stages", {})
        self.state.setdefault("calls", []).append({"started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                                   "command": command, "budget_seconds": budget})
        self.log_file = open(out / "suite.log", "a")

    def left(self) -> float:
        return self.budget - (time.monotonic() - T0)

    def log(self, msg: str) -> None:
        line = f"[{time.monotonic() - T0:7.1f}s] {msg}"
        print(line, flush=True)
        self.log_file.write(line + "\n")
        self.log_file.flush()

    def done(self, stage: str) -> bool:
        return self.state["stages"].get(stage, {}).get("status") == "done"

    def record(self, stage: str, result: dict) -> None:
        self.state["stages"][stage] = result
        self.save()

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=1, default=str))
        os.replace(tmp, self.path)

    def run_stage(self, stage: str, fn: Callable[[], dict], need: float = 0.0) -> None:
        if self.done(stage):
            self.log(f"{stage}: done in an earlier call, skipped")
            return
        if self.left() < need:
            self.log(f"{stage}: skipped, {self.left():.0f}s left < {need:.0f}s needed")
            return
        self.log(f"{stage}: start ({self.left():.0f}s left)")
        t = time.monotonic()
        try:
            result = fn()
        except Exception as exc:   # record and go on: a failed stage must not cost the others
            result = {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                      "traceback": traceback.format_exc()}
            self.log(result["traceback"])
        result.setdefault("status", "done")
        result["seconds"] = time.monotonic() - t
        old = self.state["stages"].get(stage, {})
        if old.get("status") == "partial" and "history" in old:
            result.setdefault("history", old["history"])
        self.record(stage, result)
        self.log(f"{stage}: {result['status']} in {result['seconds']:.1f}s")


# -- stages ----------------------------------------------------------------------------------------------------------
def stage_env() -> dict:
    d: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda, "python": sys.version.split()[0]}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        d.update(gpu=p.name, memory_gib=round(p.total_memory / 2**30, 1), sms=p.multi_processor_count,
                 bf16=torch.cuda.is_bf16_supported())
    else:
        d["gpu"] = None
    return d


def stage_tests(suite: Suite) -> dict:
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", str(REPO / "tests")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t = max(30.0, min(240.0, suite.left() - 60))
    try:
        p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=t)
    except subprocess.TimeoutExpired as exc:
        return {"status": "failed", "error": f"timed out after {t:.0f}s", "output": str(exc.stdout)[-4000:]}
    tail = (p.stdout + p.stderr)[-4000:]
    suite.log(tail)
    return {"status": "done" if p.returncode in (0, 5) else "failed", "returncode": p.returncode,
            "summary": (p.stdout.strip().splitlines() or [""])[-1], "output": tail}


def _synthetic(n: int, size: int, classes: int, device: torch.device):
    from nshot.data import ImageData
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    d = ImageData(x, y, classes, (0.49, 0.48, 0.45), (0.25, 0.24, 0.26), "synthetic")
    return d.to(device), d.to(device)


SPEED_CASES = [  # (name, overrides)
    ("spos-bf16", ["train.precision=bf16"]),
    ("spos_calr_ms-bf16", ["train.precision=bf16", "train.lr_policy=calr", "train.optimizer=ms_sgd"]),
    ("fairnas-bf16", ["train.precision=bf16", "train.sampler=fair", "train.lr_policy=constant",
                      "train.grad_clip=null"]),
    ("spos-fp32", ["train.precision=fp32"]),
    ("fairnas-fp32", ["train.precision=fp32", "train.sampler=fair", "train.lr_policy=constant",
                      "train.grad_clip=null"]),
    ("macro-spos-bf16", ["train.precision=bf16", "space.name=macro"]),
]


def _step_block(tr, steps: int) -> Callable[[], None]:
    """A block of ``steps`` calls of ``tr.train_step`` on successive batches of a fixed permutation, ended by a
    device sync (so a timer around the block measures the steps, not their launch)."""
    data = tr.train_data
    bs = tr.cfg.train.batch_size
    perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(1)).to(tr.device)
    sync = torch.cuda.synchronize if tr.device.type == "cuda" else (lambda: None)
    done = [0]

    def block() -> None:
        for i in range(done[0], done[0] + steps):
            j = i % (len(data) // bs)
            idx = perm[j * bs:(j + 1) * bs]
            tr.train_step(data.x[idx], data.y[idx])
        done[0] += steps
        sync()
    return block


SMOKE_MACRO = ["model.stem_width=8", "model.widths=[8,8,8]", "model.head_width=16"]   # a tiny macro network


def stage_speed(suite: Suite, smoke: bool, steps: Optional[int] = None,
                cases: Optional[list[str]] = None) -> dict:
    from nshot.config import load_config
    from nshot.train import Trainer
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    shape = (["model.C=4", "model.N=1", "train.batch_size=16"] if smoke
             else ["model.C=16", "model.N=5", "train.batch_size=64"])
    default_steps, rounds = (4, 1) if smoke else (200, 2)
    steps = steps or default_steps
    results: dict[str, Any] = {"shape": shape, "steps_per_round": steps, "rounds": rounds, "cases": {}}
    train, evald = _synthetic(2048 if not smoke else 128, 32, 10, dev)
    for name, ov in SPEED_CASES:
        if cases and name not in cases:
            continue
        if smoke and "space.name=macro" in ov:
            ov = [*ov, *SMOKE_MACRO]
        if suite.left() < 60 and not smoke:
            results["cases"][name] = "skipped: out of time"
            continue
        trainers = {}
        try:
            for ex in ("eager", "static"):
                cfg = load_config(None, [*shape, *ov, f"train.executor={ex}", "train.epochs=1000",
                                         f"device={dev.type}", "run.progress=none"])
                trainers[ex] = Trainer(cfg, Path(tempfile.mkdtemp()), data=(train, evald))
            # one warm-up block each (CUDA graph capture included), then rounds in ABBA order
            ms = abba({ex: _step_block(tr, steps) for ex, tr in trainers.items()}, rounds, 1)
            rates = {ex: [steps / (t / 1000) for t in v] for ex, v in ms.items()}
            med = {ex: statistics.median(v) for ex, v in rates.items()}
            results["cases"][name] = {"steps_per_s": med, "rounds": rates,
                                      "static_over_eager": med["static"] / med["eager"]}
            suite.log(f"speed {name}: eager {med['eager']:.1f} steps/s, static {med['static']:.1f} steps/s "
                      f"({med['static'] / med['eager']:.2f}x)")
        except Exception as exc:
            results["cases"][name] = f"failed: {type(exc).__name__}: {exc}"
            suite.log(traceback.format_exc())
        finally:
            del trainers
            if dev.type == "cuda":
                torch.cuda.empty_cache()
    ok = [c for c in results["cases"].values() if isinstance(c, dict)]
    results["static_faster"] = bool(ok) and all(c["static_over_eager"] > 1 for c in ok)
    return results


def _data_files(data: Path) -> dict[str, Path]:
    files = {"blob": data / "cifar10_jpeg.npz", "split": data / "cifar10_valid_split.json",
             "table": data / "nb201_200ep.csv", "subset": data / "kendall_subset_327.txt",
             "tool": data / "cifar_blob_to_batches.py"}
    shared = REPO.parent / "shared"
    defaults = {"blob": shared / "data/cifar10/cifar10_jpeg.npz", "split": shared / "data/nb201/cifar10_valid_split.json",
                "table": shared / "data/nb201/nb201_200ep.csv", "subset": shared / "data/nb201/kendall_subset_327.txt",
                "tool": shared / "tools/cifar_blob_to_batches.py"}
    return {k: (v if v.exists() else defaults[k]) for k, v in files.items()}


def _pack(run: Path, out: Path) -> None:
    """The run directory as one tar in OUT (the device tool returns few files)."""
    tmp = out / "paper_run.tar.tmp"
    with tarfile.open(tmp, "w") as tar:
        tar.add(run, arcname="paper")
    os.replace(tmp, out / "paper_run.tar")


def _unpack(out: Path) -> Optional[Path]:
    tar = out / "paper_run.tar"
    run = out / "paper"
    if tar.exists() and not run.exists():
        with tarfile.open(tar) as t:
            t.extractall(out, filter="data")
    return run if run.exists() else None


def stage_paper(suite: Suite, args, smoke: bool, executor: str) -> dict:
    from nshot.config import load_config
    from nshot.score.rank import rank_run
    from nshot.train import Trainer
    out = suite.out
    run = out / "paper"
    files = _data_files(Path(args.data))
    if smoke:
        overrides = ["data.name=digits", "model.C=4", "model.N=1", "train.epochs=2", "train.batch_size=32",
                     "data.crop_padding=1", "device=cpu"]
    else:
        root = Path(args.cifar_root)
        if not (root / "cifar-10-batches-py").is_dir():
            suite.log(f"converting CIFAR-10 into {root}")
            work = root / ".converting"
            subprocess.run([sys.executable, str(files["tool"]), str(files["blob"]), str(work)], check=True)
            os.replace(work / "cifar-10-batches-py", root / "cifar-10-batches-py")
        overrides = [f"data.root={root}", f"data.split_file={files['split']}", "data.name=cifar10"]
    overrides += [f"train.executor={executor}", "run.progress=log", "train.log_every_steps=2000"]
    cfg = load_config(REPO / "configs/nb201/spos.yaml", overrides)
    tr = Trainer.resume(run) if (run / "config.yaml").exists() else Trainer.create(cfg, run)
    reserve = 20 if smoke else 75        # ranking + packing after training
    suite.log(f"paper: executor {tr.executor}, precision {tr.precision}, step {tr.step}/{tr.total_steps}")
    t = time.monotonic()
    start = tr.step
    chunk = tr.steps_per_epoch * (1 if smoke else 5)
    while not tr.done and suite.left() > reserve:
        tr.fit(max_steps=chunk)
    tr.save()
    train_s = time.monotonic() - t
    result: dict[str, Any] = {"executor": tr.executor, "precision": tr.precision, "step": tr.step,
                              "total_steps": tr.total_steps, "steps_this_call": tr.step - start,
                              "train_seconds_this_call": train_s,
                              "steps_per_s_this_call": (tr.step - start) / max(train_s, 1e-9),
                              "last_epoch": (tr.metrics.read() or [None])[-1], "overrides": overrides}
    del tr
    if result["step"] < result["total_steps"]:
        result["status"] = "partial"
        _pack(run, out)
        return result
    if files["table"].exists():
        t = time.monotonic()
        subset = str(files["subset"])
        images = 10000 if not smoke else 256
        rep = rank_run(run, "nb201", "cifar10/test", subset, table=str(files["table"]), eval_images=images,
                       progress="log")
        result["rank_327"] = {k: rep.get(k) for k in ("kendall_tau", "kendall_tau_ci95", "spearman_rho",
                                                       "precision_at", "top1_truth", "complexity_tau", "n")}
        result["rank_327"]["seconds"] = time.monotonic() - t
        suite.log(f"paper: tau (327) {rep.get('kendall_tau')}")
    _pack(run, out)
    return result


def stage_scoring(suite: Suite, args, smoke: bool) -> dict:
    from nshot.score.rank import make_scorer, rank_run
    from nshot.score.run import load_run
    from nshot import spaces
    import numpy as np
    run = suite.out / "paper"
    if not (run / "config.yaml").exists():
        return {"status": "skipped", "reason": "no paper run to score"}
    files = _data_files(Path(args.data))
    images = 10000 if not smoke else 256
    loaded = load_run(run)
    sp = spaces.get("nb201")
    rng = np.random.default_rng(0)
    sample = [sp.sample(rng) for _ in range(32 if smoke else 512)]
    res: dict[str, Any] = {"sample": len(sample), "eval_images": images, "archs_per_s": {}}
    for ab in ([1, 4] if smoke else [1, 8, 32]):
        scorer = make_scorer(loaded, eval_images=images, progress="none", dedup="none", arch_batch=ab)
        scorer.cache.path = scorer.cache.write_path = None    # time the evaluations, cache nothing
        scorer.scores = {}
        scorer._measured = {}
        if loaded.device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        scorer.score_many(sample)
        if loaded.device.type == "cuda":
            torch.cuda.synchronize()
        res["archs_per_s"][str(ab)] = len(sample) / (time.perf_counter() - t)
        suite.log(f"scoring: arch_batch {ab}: {res['archs_per_s'][str(ab)]:.1f} archs/s")
    best = max(res["archs_per_s"], key=lambda k: res["archs_per_s"][k])
    res["best_arch_batch"] = int(best)
    est = 9445 / res["archs_per_s"][best]
    res["all_cells_estimate_seconds"] = est
    if files["table"].exists() and suite.left() > est + 30 and not smoke:
        t = time.monotonic()
        rep = rank_run(run, "nb201", "cifar10/test", "all", table=str(files["table"]), eval_images=images,
                       progress="log", run=loaded, arch_batch=int(best))
        res["all_cells"] = {k: rep.get(k) for k in ("kendall_tau", "kendall_tau_ci95", "spearman_rho",
                                                     "precision_at", "top1_truth", "complexity_tau", "n")}
        res["all_cells"]["seconds"] = time.monotonic() - t
        suite.log(f"scoring: all cells tau {rep.get('kendall_tau')} in {res['all_cells']['seconds']:.0f}s")
        _pack(run, suite.out)
    return res


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/gpu-suite", help="output folder (suite.json, suite.log, paper_run.tar)")
    ap.add_argument("--data", default=str(REPO / ".carry" / "data"), help="folder with the reference files")
    ap.add_argument("--cifar-root", default="/tmp/nshot-cifar", help="where CIFAR-10 is converted to")
    ap.add_argument("--budget-seconds", type=float, default=520, help="wall-clock budget of this call")
    ap.add_argument("--executor", choices=["auto", "eager", "static"], default="auto",
                    help="the paper run's step (auto: static if the speed stage found it faster, else eager)")
    ap.add_argument("--stages", nargs="*", default=["env", "tests", "speed", "paper", "scoring"])
    ap.add_argument("--smoke", action="store_true", help="CPU, tiny settings: every stage's code path in seconds")
    ap.add_argument("--speed-steps", type=int, help="timed steps per round and executor (default 200; smoke 4)")
    ap.add_argument("--speed-cases", nargs="*",
                    help=f"only these speed cases ({', '.join(n for n, _ in SPEED_CASES)})")
    args = ap.parse_args(argv)
    unknown = set(args.speed_cases or []) - {n for n, _ in SPEED_CASES}
    if unknown:
        ap.error(f"unknown speed case(s): {', '.join(sorted(unknown))}")
    if args.speed_steps is not None and args.speed_steps < 1:
        ap.error("--speed-steps must be >= 1")
    out = Path(args.out)
    suite = Suite(out, args.budget_seconds, command_line("gpu_suite", argv))
    _unpack(out)
    if "env" in args.stages:
        suite.run_stage("env", stage_env)
    if "tests" in args.stages and not args.smoke:
        suite.run_stage("tests", lambda: stage_tests(suite), need=60)
    if "speed" in args.stages:
        suite.run_stage("speed", lambda: stage_speed(suite, args.smoke, args.speed_steps, args.speed_cases), need=0 if args.smoke else 90)
    executor = args.executor
    if executor == "auto":
        speed = suite.state["stages"].get("speed", {})
        executor = "static" if speed.get("static_faster") else "eager"
    if "paper" in args.stages:
        suite.run_stage("paper", lambda: stage_paper(suite, args, args.smoke, executor),
                        need=0 if args.smoke else 100)
    if "scoring" in args.stages and suite.done("paper"):
        suite.run_stage("scoring", lambda: stage_scoring(suite, args, args.smoke), need=0 if args.smoke else 40)
    suite.state["calls"][-1]["seconds"] = time.monotonic() - T0
    suite.save()
    paper = out / "paper"
    if paper.exists() and (out / "paper_run.tar").exists() and not args.smoke:
        shutil.rmtree(paper)        # it travels as the tar
    status = ", ".join(f"{k} {v.get('status')}" for k, v in suite.state["stages"].items())
    suite.log(f"suite: {status}")
    return suite.state


if __name__ == "__main__":
    main()
