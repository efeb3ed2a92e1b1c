"""nshot.report: the HTML report of a run directory, built from a hand-written synthetic run."""
from __future__ import annotations

import base64
import io
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("matplotlib")

from nshot import spaces  # noqa: E402
from nshot.report import NotARunDirError, build_report, draw_arch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TAU = 0.61234
WEIRD = '<script>alert("x")</script>&amp;$x^2$'

CONFIG = """\
seed: 7
device: cpu
threads: null
space:
  name: nb201
model:
  C: 16
  N: 5
  bn_affine: false
  bn_track_running_stats: false
data:
  name: cifar10
  root: ./data
  split: nb201
  split_file: null
  augment: true
optim:
  lr: 0.025
  lr_min: 0.0
  momentum: 0.9
  nesterov: true
  weight_decay: 0.0005
  update_unused: false
sampler:
  connected_only: false
train:
  epochs: 12
  batch_size: 64
  sampler: uniform
  lr_policy: cosine
  optimizer: sgd
  grad_clip: 5.0
run:
  dir: null
  progress: none
"""


def write_config(run: Path, text: str = CONFIG) -> None:
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.yaml").write_text(text)


def write_metrics(run: Path, epochs: int = 12, quintiles: bool = True) -> None:
    lines = []
    for e in range(1, epochs + 1):
        rec = {"epoch": e, "step": e * 391, "loss": 2.3 * math.exp(-e / 6) + 0.4, "acc": 90 - 70 * math.exp(-e / 4),
               "lr": 0.025 * 0.5 * (1 + math.cos(math.pi * (e - 0.5) / epochs)), "seconds": 61.5,
               "images_per_s": 407.3}
        if quintiles:
            rec["loss_by_quintile"] = [rec["loss"] * (1.2 - 0.1 * q) for q in range(5)]
            rec["grad_momentum_cos"] = 0.02 * math.sin(e)
        lines.append(json.dumps(rec))
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")


def write_env(run: Path) -> None:
    entry = {"event": "start", "step": 0, "time": "2025-01-01T10:00:00", "seed": 7, "nshot": "0.1.0",
             "git_commit": "abc123", "python": "3.11.7", "torch": "2.13.0", "numpy": "2.0", "device": "cpu",
             "threads": 1}
    (run / "env.json").write_text(json.dumps([entry, {**entry, "event": "resume", "step": 1955}], indent=1))


def write_rank(run: Path, n: int = 120, weird: bool = False) -> list[str]:
    space = spaces.get("nb201")
    rng = np.random.default_rng(0)
    archs = sorted({space.sample(rng) for _ in range(n * 2)})[:n]
    params = np.array([space.num_params(a) for a in archs])
    truth = 85 + 8 * (params - params.min()) / (params.max() - params.min()) + rng.normal(0, 1, n)
    score = 40 + 0.8 * (truth - 85) + rng.normal(0, 2, n)
    if weird:
        archs[0] = WEIRD
    order_s = (-score).argsort().argsort() + 1
    order_t = (-truth).argsort().argsort() + 1
    rows = ["arch,score,truth,params,score_rank,truth_rank"]
    for a, s, t, p, rs, rt in zip(archs, score, truth, params, order_s, order_t):
        a_csv = '"' + a.replace('"', '""') + '"'
        rows.append(f"{a_csv},{float(s)!r},{float(t)!r},{int(p)},{int(rs)},{int(rt)}")
    (run / "rank.csv").write_text("\n".join(rows) + "\n")
    top = int(np.argmax(score))
    bounds = np.quantile(params, np.linspace(0, 1, 6))
    fairness = [{"bin": q, "complexity_min": float(bounds[q]), "complexity_max": float(bounds[q + 1]), "n": n // 5,
                 "kendall_tau": 0.1 * (q + 1), "mean_error": -0.5 + 0.25 * q} for q in range(5)]
    fairness[2]["kendall_tau"] = float("nan")
    fairness[3]["mean_error"] = None  # nshot rank writes non-finite values as null
    best = float(truth.max())
    report = {"n": n, "kendall_tau": TAU, "spearman_rho": 0.8012,
              "precision_at": {"0.01": 0.0, "0.05": 0.3333, "0.1": 0.5},
              "precision_k": {"0.01": 1, "0.05": 6, "0.1": 12},
              "top1": {"arch": archs[top], "score": float(score[top]), "truth": float(truth[top]),
                       "truth_rank": int(np.sum(truth > truth[top])) + 1, "best_truth": best,
                       "regret": best - float(truth[top])},
              "top1_truth": float(truth[top]), "complexity_tau": {"scores": 0.41, "truth": 0.55},
              "fairness": fairness, "pearson": float("nan"),
              "protocol": {"benchmark": "nb201", "metric": "cifar10/test", "subset": "random:120", "n": n,
                           "bn_mode": "batch", "eval_images": 5000, "checkpoint_step": 4692, "seed": 7}}
    (run / "rank.json").write_text(json.dumps(report, indent=1))  # NaN written as NaN, as json.dumps does
    return archs


def write_search(run: Path, archs: list[str]) -> None:
    best = [{"arch": a, "score": 70.0 - i, "truth": 93.1 - 0.2 * i if i != 1 else None,
             "params": spaces.get("nb201").num_params(a) if a != WEIRD else None, "flops": None}
            for i, a in enumerate(archs[:5])]
    history = [{"evaluations": 10 * (g + 1), "best": 60 + 10 * (1 - math.exp(-g / 3)), "generation": g}
               for g in range(15)]
    (run / "search.json").write_text(json.dumps({"strategy": "evolution", "evaluations": 150, "best": best,
                                                 "history": history, "info": {"population": 20, "stopped": "budget"},
                                                 "protocol": {"bn_mode": "batch", "eval_images": 5000,
                                                              "constraint": None}}))


def make_full_run(run: Path, weird: bool = False) -> Path:
    write_config(run)
    write_env(run)
    write_metrics(run)
    archs = write_rank(run, weird=weird)
    if weird:
        archs = [WEIRD] + [a for a in archs if a != WEIRD]
    write_search(run, archs)
    return run


def embedded_pngs(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)]


@pytest.fixture(scope="module")
def full_report(tmp_path_factory):
    run = make_full_run(tmp_path_factory.mktemp("runs") / "run1")
    path = build_report(run)
    return run, path, path.read_text()


def test_full_report_sections_numbers_and_images(full_report):
    run, path, html = full_report
    assert path == run / "report.html" and path.is_file()
    for heading in ("Inputs", "Configuration", "Environment", "Training", "Ranking against the benchmark", "Search"):
        assert f"<h2>{heading}</h2>" in html
    assert "0.6123" in html  # Kendall tau, 4 significant digits
    assert "0.8012" in html and "cifar10/test" in html and "evolution" in html
    assert "precision@top 5% (k = 6)" in html and "n/a" in html  # NaN tau of bin Q3 / NaN pearson
    assert "regret" in html and "tau of scores vs complexity" in html and "population" in html
    assert "abc123" in html and "2 entries" in html  # env: first entry, resume listed
    assert str(run.resolve()) in html and "generated" in html
    assert "<script" not in html and "http://" not in html and "https://" not in html  # no JS, no external
    pngs = embedded_pngs(html)
    # training curves, lr, loss by quintile, gradient-momentum cosine, scatter, fairness, search progress, 3 cells
    assert len(pngs) == 10
    for png in pngs:
        assert png.startswith(PNG_MAGIC) and len(png) > 1000
    files = sorted(p.name for p in (run / "report").glob("*.png"))
    assert files == sorted(["training_curves.png", "lr.png", "loss_by_quintile.png", "grad_momentum_cos.png",
                            "rank_scatter.png",
                            "fairness.png", "search_progress.png", "cell_1.png", "cell_2.png", "cell_3.png"])
    assert "Sections without their input are left out" not in html  # nothing missing
    assert "faded dotted: dead edge" in html  # the NB201 drawings' legend, from the drawer registry


def test_pngs_decode_as_images(full_report):
    from PIL import Image

    run, _, html = full_report
    for png in embedded_pngs(html):
        img = Image.open(io.BytesIO(png))
        img.load()
        assert img.format == "PNG" and img.size[0] > 100 and img.size[1] > 50


def test_minimal_run_says_what_is_missing(tmp_path):
    run = tmp_path / "mini"
    write_config(run)
    write_metrics(run, epochs=3, quintiles=False)
    out = build_report(run)
    html = out.read_text()
    assert "<h2>Training</h2>" in html and "<h2>Configuration</h2>" in html
    assert "<h2>Search</h2>" not in html and "<h2>Ranking" not in html and "<h2>Environment</h2>" not in html
    assert f"no rank.json: run <code>nshot rank {run}</code> first" in html
    assert "no rank.csv" in html and "no search.json" in html and "no env.json" in html
    assert len(embedded_pngs(html)) == 2  # training curves + lr, no quintile plot
    assert sorted(p.name for p in (run / "report").glob("*.png")) == ["lr.png", "training_curves.png"]


def test_config_only_and_custom_out(tmp_path):
    run = tmp_path / "bare"
    write_config(run)
    out = build_report(run, out=tmp_path / "elsewhere" / "r.html")
    html = out.read_text()
    assert out == tmp_path / "elsewhere" / "r.html"
    assert "no metrics.jsonl" in html and "<h2>Training</h2>" not in html
    assert "nb201" in html and "0.025" in html and "uniform" in html


def test_stale_plots_removed(tmp_path):
    run = make_full_run(tmp_path / "run")
    build_report(run)
    (run / "search.json").unlink()
    html = build_report(run).read_text()
    assert "no search.json" in html
    assert not (run / "report" / "search_progress.png").exists()
    assert not (run / "report" / "cell_1.png").exists()


def test_not_a_run_dir(tmp_path):
    with pytest.raises(NotARunDirError, match=r"not a run directory \(no config.yaml\)") as e:
        build_report(tmp_path)
    assert str(tmp_path) in str(e.value)
    assert isinstance(e.value, FileNotFoundError) and isinstance(e.value, ValueError)
    with pytest.raises(FileNotFoundError, match="no such directory"):
        build_report(tmp_path / "nope")


def test_unreadable_inputs_are_reported_not_fatal(tmp_path):
    run = tmp_path / "bad"
    write_config(run)
    write_metrics(run, epochs=4)
    with open(run / "metrics.jsonl", "a") as f:
        f.write("{truncated\n")
    (run / "rank.json").write_text("{not json")
    (run / "search.json").write_text("[]")
    html = build_report(run).read_text()
    assert "1 unreadable line skipped" in html
    assert "rank.json is unreadable" in html and "search.json is unreadable" in html
    assert "<h2>Training</h2>" in html


def test_weird_arch_is_escaped(tmp_path):
    run = make_full_run(tmp_path / "weird", weird=True)
    html = build_report(run).read_text()
    assert "<script" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;amp;" in html
    assert "cannot draw" in html  # the malformed NB201 string gets a note instead of a drawing
    assert len(embedded_pngs(html)) == 9   # one fewer cell drawing than the full report


def test_nan_metrics_and_strings(tmp_path):
    run = tmp_path / "nan"
    write_config(run)
    (run / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "step": 10, "loss": "nan", "acc": 10.0, "lr": 0.1,
                                                   "seconds": 1.0, "images_per_s": 5.0}) + "\n"
                                       + json.dumps({"epoch": 2, "step": 20, "loss": 2.0, "acc": 12.0, "lr": 0.05,
                                                     "seconds": 1.0, "images_per_s": 5.0}) + "\n")
    html = build_report(run).read_text()
    assert len(embedded_pngs(html)) == 2


def test_cell_drawers():
    space = spaces.get("nb201")
    png = draw_arch(space.parse("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|"),
                    "nb201")
    assert png.startswith(PNG_MAGIC)
    macro = draw_arch("02012100", "nasbench_macro")  # unknown space: a row of boxes
    assert macro.startswith(PNG_MAGIC)
    with pytest.raises(ValueError):
        draw_arch("|bogus~0|", "nb201")


def test_drawing_legend_comes_from_the_space_drawer_registry():
    from nshot.report.cell_drawing import _DRAWERS, _LEGENDS, drawing_legend, register_drawer
    nb = drawing_legend("nb201")
    for label in ("skip", "conv1x1", "conv3x3"):
        assert label in nb
    assert "dead edge" in nb and drawing_legend("nasbench_macro") is None and drawing_legend(None) is None
    try:
        register_drawer("toy_legend", legend=lambda: "toy marks")(lambda arch: PNG_MAGIC)
        assert drawing_legend("toy_legend") == "toy marks"
    finally:
        _DRAWERS.pop("toy_legend", None)
        _LEGENDS.pop("toy_legend", None)


def test_no_pyplot_and_no_global_matplotlib_state():
    # (reading rcParams['backend'] itself would resolve the backend through pyplot, so it is skipped)
    code = ("import sys, matplotlib as m; "
            "rc = lambda: {k: m.rcParams[k] for k in m.rcParams.keys() if k != 'backend'}; before = rc(); "
            "from nshot.report import draw_arch; draw_arch('01234', 'other'); "
            "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'; "
            "assert rc() == before, 'rcParams changed'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=120)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed (apt-get install chromium)")
def test_screenshot_renders(full_report, tmp_path):
    from PIL import Image

    run, _, _ = full_report
    out = tmp_path / "shot.png"
    subprocess.run([sys.executable, "-m", "benchmarks.report_screenshot", str(run), "--out", str(out),
                    "--no-build", "--height", "2400"], check=True, cwd=REPO, timeout=240)
    img = Image.open(out).convert("RGB")
    assert img.size == (1280, 2400)
    colors = img.getcolors(maxcolors=1 << 20)
    assert colors is not None and len(colors) > 50  # not a blank page


def test_fewshot_report_shows_the_tree_node_curves_and_gm_matrices(tmp_path, tiny_data):
    from nshot.config import load_config
    from nshot.report import build_report
    from nshot.train.fewshot import FewShotRun

    from tests.helpers import tiny_overrides

    cfg = load_config(None, tiny_overrides("fewshot.method=gm", "fewshot.split_epochs=[1]", "fewshot.gm_batches=2",
                                           "train.epochs=2"))
    run = FewShotRun.create(cfg, tmp_path / "gm", data=tiny_data)
    run.fit()
    out = build_report(tmp_path / "gm")
    html = out.read_text()
    assert "Few-shot tree" in html and "gradient-matching distances" in html
    assert (out.parent / "report" / "fewshot_curves.png").is_file() and (out.parent / "report" / "gm_node0.png").is_file()
    split = run.tree.nodes[0].split_decision
    assert f"decision {split} (gm)" in html and "nor_conv_3x3" in html      # op names on the matrices' table
    assert html.count("<tr>") >= 3                                          # a row per node at least


@pytest.mark.parametrize("data, space, hint", [
    ("cifar10", "nb201", "run <code>nshot rank {run}</code> first"),
    ("digits", "nb201", "the run trained on digits, which has no ground truth in nb201 (cifar10, cifar100, "
                        "imagenet16-120 have): <code>nshot rank {run} --metric cifar10/test</code>"),
    ("digits", "macro", "<code>nshot rank {run} --metric mean_acc</code>"),
    ("cifar10", "proxyless", "the space has no ground-truth benchmark in nshot: <code>nshot rank {run} "
                             "--benchmark NAME</code>"),
])
def test_the_rank_hint_fits_the_run(tmp_path, data, space, hint):
    """The missing-rank note names the command that works for this run: a run on a dataset without ground truth
    needs --metric, a space without a benchmark needs --benchmark (plain `nshot rank RUN` would be refused)."""
    run = tmp_path / "r"
    write_config(run, yaml.safe_dump({"space": {"name": space}, "data": {"name": data}}))
    html = build_report(run).read_text()
    assert hint.format(run=run) in html
