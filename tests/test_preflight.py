"""Every command checks its paths, run directory, options and config before torch is imported (issue 22):
each wrong invocation below fails with exit status 2 and one line in the CLI's words, and ``torch`` is not in
``sys.modules`` afterwards. All cases run in one fresh interpreter; a last, valid invocation does import torch,
so the check is seen to detect it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from nshot.config import dump_config, load_config
from tests.helpers import write_table

REPO = Path(__file__).resolve().parents[1]

# Runs nshot.cli.main on each argv of a JSON list, in order, in this fresh process; prints one JSON line per
# case: the exit status, whether torch got imported by then, and what went to stderr.
SNIPPET = r"""
import contextlib, io, json, sys
from nshot import preflight
preflight.tensorboard_available = lambda: False   # as on a machine without the optional package
from nshot.cli import main
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as exc:   # argparse's own errors
            rc = exc.code
    print(json.dumps({"rc": rc, "torch": "torch" in sys.modules, "err": err.getvalue()}), flush=True)
"""


def run_cases(cases: list[list[str]], cwd: Path) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("NSHOT_DEBUG", None)
    env.pop("NSHOT_NB201_CSV", None)
    env.pop("NSHOT_MACRO_JSON", None)
    out = subprocess.run([sys.executable, "-c", SNIPPET, json.dumps(cases)], capture_output=True, text=True,
                         timeout=300, cwd=cwd, env=env)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def fake_run(path: Path, checkpoint: bool = True, **over) -> Path:
    """A run directory as `nshot train` leaves it, as far as the checks look: config.yaml (digits) and, with
    ``checkpoint``, a (placeholder) checkpoints/last.pt."""
    path.mkdir(parents=True)
    overrides = ["data.name=digits", "model.C=4", "model.N=1"] + [f"{k}={v}" for k, v in over.items()]
    dump_config(load_config(None, overrides), path / "config.yaml")
    if checkpoint:
        (path / "checkpoints").mkdir()
        (path / "checkpoints" / "last.pt").write_bytes(b"placeholder")
    return path


def test_errors_before_torch_is_imported(tmp_path):
    run = fake_run(tmp_path / "run")
    untrained = fake_run(tmp_path / "untrained", checkpoint=False)
    darts = fake_run(tmp_path / "darts", **{"arch.method": "darts"})
    table = tmp_path / "nb201.csv"
    write_table(table, n=10)
    done = tmp_path / "done"
    done.mkdir()
    (done / "result.json").write_text("{}")
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    cfg = tmp_path / "digits.yaml"
    cfg.write_text(yaml.safe_dump({"data": {"name": "digits"}, "model": {"C": 4, "N": 1}}))
    arch = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|"
    missing = tmp_path / "missing"
    expected = [   # (argv, the one line on stderr)
        (["rank", str(missing)], f"error: {missing} is not a run directory (no such directory)"),
        (["rank", str(tmp_path)], f"error: {tmp_path} is not a run directory (no config.yaml)"),
        (["rank", str(untrained)], f"error: {untrained} has no checkpoint yet; train it first with "
                                   f"`nshot train --resume {untrained}`"),
        (["rank", str(run), "--table", str(table)],
         "error: the run trained on 'digits', which has no ground truth in benchmark nb201 (cifar10 -> cifar10/test, "
         "cifar100 -> cifar100/test, imagenet16-120 -> imagenet16/test); to compare with one of its metrics "
         "anyway, pass it, e.g. --metric cifar10/test"),
        (["rank", str(run), "--table", str(table), "--metric", "cifar10/tset"],
         "error: unknown metric 'cifar10/tset' for benchmark nb201; available: cifar10/valid, cifar10/test, "
         "cifar100/valid, cifar100/test, imagenet16/valid, imagenet16/test, params/cifar10, params/cifar100, "
         "params/imagenet16, index"),
        (["rank", str(run), "--benchmark", "macro"], None),
        (["rank", str(run), "--table", str(table), "--metric", "cifar10/test", "--subset", str(tmp_path / "s.txt")],
         None),
        (["rank", str(run), "--table", str(table), "--metric", "cifar10/test", "--device", "gpu"],
         "error: --device 'gpu': expected auto, cpu, cuda or cuda:N"),
        (["rank", str(run), "--table", str(missing)], None),
        (["search", str(run), "--strategy", "random"],
         "error: --strategy random needs --budget (the number of distinct architectures to evaluate)"),
        (["search", str(run), "--metric", "cifar10/test"],
         "error: --table and --metric name the ground truth of the best architectures: add --benchmark "
         "(macro, nb201)"),
        (["search", str(run), "--benchmark", "nb201", "--table", str(table)],
         "error: the run trained on 'digits', which has no ground truth in benchmark nb201 (cifar10 -> cifar10/test, "
         "cifar100 -> cifar100/test, imagenet16-120 -> imagenet16/test); to compare with one of its metrics "
         "anyway, pass it, e.g. --metric cifar10/test"),
        (["search", str(darts), "--budget", "3", "--strategy", "random"],
         f"error: {darts} is a differentiable search (arch.method darts): its supernet mixes every op on every "
         f"edge, so rank and search, which score single architectures with a single-path supernet, do not apply; "
         f"its result will be the derived cell in {darts / 'result.json'} when it finishes (continue it with "
         f"`nshot train --resume {darts}`); train that cell stand-alone with `nshot train-arch {darts}`"),
        (["search", str(run), "--ucb-c", "-1"], "nshot search: error: argument --ucb-c: must be >= 0, got -1"),
        (["search", str(run), "--population", "6", "--mutants", "5"],
         "error: --mutants 5 + --crossovers 3 must be at most --population 6"),
        (["train-arch", str(missing)], f"error: {missing} is neither a run directory (no such directory) nor a "
                                       f"nb201 architecture (malformed NB201 string {str(missing)!r}: expected 3 "
                                       "nodes separated by '+', got 1; format is |op~0|+|op~0|op~1|+|op~0|op~1|op~2|)"),
        (["train-arch", arch, "--config", str(tmp_path / "nope.yaml")],
         f"error: config file {tmp_path / 'nope.yaml'} does not exist"),
        (["train-arch", arch, "--config", str(cfg), "--epochs", "1", "standalone.epohcs=1"],
         "error: unknown config key 'standalone.epohcs'; allowed keys under standalone: epochs, batch_size, lr, "
         "weight_decay, nesterov, C, N, aux_weight, cutout, drop_path, grad_clip, drop_last, bn_calibrate"),
        (["train-arch", arch, "--config", str(cfg), "--run-dir", str(done)],
         f"error: {done} already holds a result; choose another --run-dir"),
        (["train-arch", arch, "--config", str(cfg), "--run-dir", str(a_file / "sub")],
         f"error: cannot create {a_file / 'sub'}: {a_file} is not a directory"),
        (["train-arch", arch, "--config", str(cfg), "run.tensorboard=true"],
         "error: run.tensorboard=true needs the tensorboard package: pip install 'nshot[tensorboard]' (or pip "
         "install tensorboard); or set run.tensorboard=false"),
        (["report", str(missing)], f"error: {missing}: not a run directory (no such directory)"),
        (["quickstart", "--run-dir", str(run)],
         f"error: {run} already holds a run; choose another --run-dir (the quickstart does not resume)"),
        (["quickstart", "--run-dir", str(a_file / "qs")], f"error: cannot create {a_file / 'qs'}: {a_file} is not "
                                                          "a directory"),
        (["train", str(cfg), "--run-dir", str(run)],
         f"error: {run} already holds a run; resume it with `nshot train --resume {run}` or choose another run.dir"),
        (["train", str(cfg), "run.tensorboard=true"],
         "error: run.tensorboard=true needs the tensorboard package: pip install 'nshot[tensorboard]' (or pip "
         "install tensorboard); or set run.tensorboard=false"),
    ]
    results = run_cases([argv for argv, _ in expected] + [["rank", str(run), "--table", str(table), "--metric",
                                                           "cifar10/test", "--subset", "3"]], cwd=tmp_path)
    assert len(results) == len(expected) + 1
    for (argv, line), got in zip(expected, results):
        assert (got["rc"], got["torch"]) == (2, False), (argv, got)
        if line is not None and line.startswith("nshot "):   # argparse: its usage, then the one error line
            assert got["err"].startswith("usage: nshot") and got["err"].endswith("\n" + line + "\n"), got["err"]
            continue
        assert got["err"].count("\n") == 1, (argv, got["err"])
        if line is not None:
            assert got["err"] == line + "\n", (argv, got["err"])
    assert results[5]["err"].startswith("error: no NAS-Bench-Macro table given")
    assert "s.txt" in results[6]["err"] and str(missing) in results[8]["err"]
    # the checks pass for a valid invocation: it goes on, imports torch, and fails on the placeholder checkpoint
    assert results[-1]["torch"] and results[-1]["rc"] == 1 and "checkpoint" in results[-1]["err"]
    assert not list(tmp_path.glob("**/sub")) and not (a_file.parent / "qs").exists()
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["checkpoints", "config.yaml"]
