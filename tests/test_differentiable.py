"""Differentiable search (DARTS first/second order, SNAS): gradients, samples, derivation, resume, refusals."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nshot import spaces
from nshot.config import ConfigError
from nshot.nn import build_supernet
from nshot.train import differentiable as diff
from tests.helpers import darts_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _alpha_fd_check(net, shape, entries, x, y):
    torch.manual_seed(1)
    alpha = (torch.randn(shape, dtype=torch.float64) * 0.5).requires_grad_(True)

    def loss_of(a):
        return F.cross_entropy(diff.mixed_logits(net, x, torch.softmax(a, -1)), y)

    grad = torch.autograd.grad(loss_of(alpha), alpha)[0]
    h = 1e-5
    with torch.no_grad():
        for e, o in entries:
            a = alpha.detach().clone()
            a[e, o] += h
            up = loss_of(a)
            a[e, o] -= 2 * h
            fd = (up - loss_of(a)) / (2 * h)
            assert abs(float(fd) - float(grad[e, o])) <= 1e-6 + 1e-4 * abs(float(fd)), (e, o, float(fd), float(grad[e, o]))
    assert float(grad.abs().max()) > 1e-4     # the check is not vacuous


def test_alpha_gradient_matches_finite_differences_nb201_and_darts():
    torch.manual_seed(0)
    x, y = torch.randn(4, 3, 8, 8, dtype=torch.float64), torch.tensor([0, 1, 2, 1])
    nb = build_supernet("nb201", C=2, N=1, num_classes=3).double()
    _alpha_fd_check(nb, (6, 5), [(e, o) for e in range(6) for o in range(5)], x, y)
    dn = build_supernet("darts", C=2, N=1, num_classes=3).double()
    _alpha_fd_check(dn, (28, 8), [(0, 0), (9, 7), (13, 3), (20, 5), (27, 6)], x, y)


def test_second_order_hypergradient_matches_direct_autograd():
    torch.manual_seed(0)
    xt, yt = torch.randn(16, 4, dtype=torch.float64), torch.randint(0, 3, (16,))
    xv, yv = torch.randn(16, 4, dtype=torch.float64), torch.randint(0, 3, (16,))
    W = torch.nn.Parameter(torch.randn(4, 3, dtype=torch.float64))
    alpha = torch.nn.Parameter(torch.tensor([0.3, -0.2], dtype=torch.float64))
    buf = torch.randn(4, 3, dtype=torch.float64)
    xi, wd, m = 0.5, 3e-3, 0.9

    def model(x, w, a):
        p = torch.softmax(a, 0)
        return p[0] * (x @ w) + p[1] * torch.tanh(x @ w) * 2.0

    def lt():
        return F.cross_entropy(model(xt, W, alpha), yt)

    def lv():
        return F.cross_entropy(model(xv, W, alpha), yv)

    w0 = W.detach().clone()
    fd, loss = diff.unrolled_alpha_grad(lt, lv, [W], alpha, xi, wd, m, [buf])
    assert torch.equal(W.detach(), w0)                          # weights restored exactly
    g = torch.autograd.grad(F.cross_entropy(model(xt, W, alpha), yt), W, create_graph=True)[0]
    w1 = W - xi * (g + wd * W + m * buf)
    direct = torch.autograd.grad(F.cross_entropy(model(xv, w1, alpha), yv), alpha)[0]
    first = torch.autograd.grad(F.cross_entropy(model(xv, w1.detach(), alpha), yv), alpha)[0]
    torch.testing.assert_close(fd, direct, rtol=1e-4, atol=1e-8)
    assert float((direct - first).abs().max()) > 1e-3           # the Hessian term matters here
    torch.testing.assert_close(loss, F.cross_entropy(model(xv, w1, alpha), yv).detach())


def test_snas_samples_one_hot_at_low_temperature_and_gumbel_max_frequencies():
    alpha = torch.tensor([1.0, 0.0, -1.0, 0.5]).expand(20000, 4)
    cold = diff.gumbel_softmax(alpha, 1e-4, torch.Generator().manual_seed(0))
    assert float((cold.max(1).values > 0.99).float().mean()) >= 0.99
    warm = diff.gumbel_softmax(alpha, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(warm.argmax(1), cold.argmax(1))          # same noise: the same winner at any temperature
    torch.testing.assert_close(warm.sum(1), torch.ones(20000))
    freq = torch.bincount(warm.argmax(1), minlength=4).float() / 20000
    assert float((freq - torch.softmax(alpha[0], 0)).abs().max()) < 0.015   # 4 sigma
    taus = [diff.temperature(e, 10, 1.0, 0.03) for e in range(10)]
    assert taus[0] == 1.0 and abs(taus[-1] - 0.03) < 1e-12 and all(a > b for a, b in zip(taus, taus[1:]))


def test_nb201_derivation_is_the_argmax_per_edge_none_included():
    w = torch.zeros(6, 5)
    for e, o in enumerate([0, 3, 1, 4, 2, 0]):
        w[e, o] = 1.0
    nb201 = spaces.get("nb201")
    assert nb201.derive_from_weights(w.numpy()) == \
        "|none~0|+|nor_conv_3x3~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|"
    w[2] = torch.tensor([0.2, 0.3, 0.3, 0.1, 0.1])            # a tie goes to the earlier op
    assert nb201.decode(nb201.derive_from_weights(w))[2] == 1
    with pytest.raises(ValueError, match="NB201 op weights must be 6 x 5"):
        nb201.derive_from_weights(w[:5])


@pytest.mark.parametrize("name", ["nb201", "darts"])
def test_derivation_inverts_the_one_hot_table_of_an_architecture(name):
    """An architecture derived from random op weights, written back as its one-hot table (DARTS: the kept
    edges' ops, the other edges 0), derives to itself."""
    from nshot.spaces import darts
    sp = spaces.get(name)
    rng = np.random.default_rng(0)
    for _ in range(20):
        arch = sp.derive_from_weights(rng.random(sp.alpha_shape()))
        w = np.zeros(sp.alpha_shape())
        if name == "nb201":
            w[np.arange(6), list(sp.decode(arch))] = 1.0
        else:
            g = darts.parse_genotype(arch)
            for lo, cell in ((0, g.normal), (darts.NUM_EDGES, g.reduce)):
                for k, (op, src) in enumerate(cell):
                    w[lo + darts.edge_index(2 + k // 2, src), darts.OPS.index(op)] = 1.0
            assert "none" not in arch
        assert sp.derive_from_weights(w) == arch


@pytest.mark.parametrize("over", [{"arch.order": 2}, {"arch.method": "snas"}])
def test_resume_is_bit_identical_on_cpu(tmp_path, over):
    cfg = darts_config(**over)
    full = diff.DifferentiableSearch.create(cfg, tmp_path / "full")
    full.fit()
    part = diff.DifferentiableSearch.create(cfg, tmp_path / "part")
    part.fit(max_steps=4)                                  # stops mid-epoch 2 with a checkpoint
    again = diff.DifferentiableSearch.resume(tmp_path / "part")
    assert again.step == 4
    again.fit()
    assert torch.equal(full.alpha, again.alpha)
    for (k, a), (_, b) in zip(full.model.state_dict().items(), again.model.state_dict().items()):
        assert torch.equal(a, b), k
    drop = ("seconds",)
    rows = [[{k: v for k, v in json.loads(line).items() if k not in drop} for line in
             (d / "metrics.jsonl").read_text().splitlines()] for d in (tmp_path / "full", tmp_path / "part")]
    assert rows[0] == rows[1] and len(rows[0]) == 2
    assert len(rows[0][0]["alphas"]) == 6 and abs(sum(rows[0][0]["alphas"][0]) - 1) < 1e-4
    if over.get("arch.method") == "snas":
        assert rows[0][0]["tau"] == 1.0 and abs(rows[0][1]["tau"] - 0.03) < 1e-12
    result = json.loads((tmp_path / "full" / "result.json").read_text())
    assert result["arch"] == rows[0][-1]["arch"] == full.derived()
    assert not torch.equal(full.alpha, diff.DifferentiableSearch(cfg, tmp_path / "fresh").alpha)  # alphas moved


def test_weights_follow_the_configured_lr_policy(tmp_path):
    """The supernet weights' lr comes from ``train.lr_policy`` (its registry), not a fixed cosine."""
    rows = {}
    for policy in ("constant", "cosine"):
        run = diff.DifferentiableSearch.create(darts_config(**{"train.lr_policy": policy}), tmp_path / policy)
        run.fit()
        rows[policy] = [json.loads(line)["lr"] for line in (tmp_path / policy / "metrics.jsonl").read_text().splitlines()]
    assert rows["constant"] == pytest.approx([0.05, 0.05], rel=1e-12)
    assert 0.001 < rows["cosine"][1] < rows["cosine"][0] < 0.05


@pytest.mark.parametrize("over, msg", [
    ({"train.lr_policy": "calr"}, "CaLR gives each sampled subnet its own"),
    ({"train.optimizer": "ms_sgd"}, "momentum separation"),
    ({"arch.method": "snas", "arch.order": 2}, "SNAS takes arch.order = 1"),
    ({"space.name": "macro", "model.N": 5, "model.C": 16}, "runs on the nb201 and darts spaces"),
    ({"arch.order": 3}, "arch.order"),
    ({"arch.projection_finetune_steps": 5}, "arch.projection_finetune_steps = 5 tunes the supernet between the "
                                            "decisions of a perturbation projection: set arch.projection"),
    ({"arch.projection_finetune_steps": -1, "arch.projection": "perturbation"},
     "arch.projection_finetune_steps = -1 is invalid: expected an integer >= 0"),
    ({"arch.projection_finetune_steps": 3, "arch.projection": "perturbation", "optim.lr_min": 0},
     r"would tune at lr 0 \(arch.projection_finetune_lr is null and optim.lr_min = 0\)"),
    ({"arch.projection_finetune_lr": -0.1}, "arch.projection_finetune_lr = -0.1 is invalid"),
])
def test_refused_combinations_name_the_reason(over, msg):
    with pytest.raises(ConfigError, match=msg):
        darts_config(**over)


@pytest.mark.slow
def test_darts_space_end_to_end_on_digits(tmp_path, capsys):
    """search (SNAS on the DARTS space) -> derived genotype -> stand-alone training -> report, through the CLI."""
    from nshot import spaces
    from nshot.cli import main

    cfg = tmp_path / "search.yaml"
    cfg.write_text("space: {name: darts}\nmodel: {C: 4, N: 1}\nthreads: 1\ndevice: cpu\n"
                   "data: {name: digits, train_subset: 64, eval_subset: 64}\n"
                   "train: {epochs: 2, batch_size: 32}\narch: {method: snas}\n")
    run = tmp_path / "search"
    assert main(["train", str(cfg), "--run-dir", str(run)]) == 0
    result = json.loads((run / "result.json").read_text())
    sp = spaces.get("darts")
    assert sp.parse(result["arch"]) == result["arch"] and result["params"] == sp.num_params(result["arch"], in_channels=1)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and len(rows[0]["alphas"]) == 28 and rows[-1]["arch"] == result["arch"]
    evald = tmp_path / "eval"
    assert main(["train-arch", str(run), "standalone.epochs=1", "standalone.C=4", "standalone.N=1",
                 "standalone.cutout=4", "standalone.drop_path=0.2", "standalone.grad_clip=5", "threads=1",
                 "--run-dir", str(evald)]) == 0
    trained = json.loads((evald / "result.json").read_text())
    assert trained["arch"] == result["arch"] and trained["params"] == sp.num_params(result["arch"], C=4, N=1, in_channels=1)
    assert trained["protocol"]["drop_path"] == 0.2 and trained["protocol"]["cutout"] == 4
    assert main(["report", str(run)]) == 0
    assert (run / "report" / "alphas.png").is_file() or b"alphas.png" in (run / "report.html").read_bytes()


def test_auxiliary_head_and_cutout():
    from nshot.data.cutout import cutout
    from nshot.nn import build_standalone
    from nshot.spaces import darts

    x = torch.ones(64, 3, 32, 32)
    holes = cutout(x, 16, seed=3)
    zeros = (holes[:, 0] == 0).sum(dim=(1, 2))
    assert int(zeros.max()) == 256 and int(zeros.min()) >= 64   # a 16x16 square, clipped at the border to >= 8x8
    assert torch.equal(holes[:, 0], holes[:, 2]) and torch.equal(cutout(x, 16, seed=3), holes)
    arch = darts.derive(torch.rand(14, 8).numpy(), torch.rand(14, 8).numpy())
    net = build_standalone("darts", arch, C=4, N=1, num_classes=5)
    net.train()
    logits, aux = net(torch.randn(2, 3, 32, 32))
    assert logits.shape == aux.shape == (2, 5)
    net.eval()
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 5)
    net.train()
    with pytest.raises(ValueError, match="auxiliary head needs feature maps of at least 5x5"):
        net(torch.randn(2, 3, 8, 8))


def test_stop_request_checkpoints_after_the_current_step(tmp_path, capsys):
    run = diff.DifferentiableSearch.create(darts_config(), tmp_path / "run")
    step = run.weight_step

    def stop_after_second(t, x, y):
        out = step(t, x, y)
        if t == 1:
            run.request_stop()          # what SIGINT / SIGTERM call
        return out

    run.weight_step = stop_after_second
    run.fit()
    assert run.step == 2 and not run.done and "nshot train --resume" in capsys.readouterr().out
    again = diff.DifferentiableSearch.resume(tmp_path / "run")
    assert again.step == 2 and torch.equal(again.alpha, run.alpha)
    again.fit()
    assert again.done and (tmp_path / "run" / "result.json").is_file()


def test_rank_and_search_refuse_a_differentiable_run_and_name_its_result(tmp_path, capsys):
    """`nshot rank` / `nshot search` on a DARTS run: exit 2, saying what the run yields (its derived cell) and
    how to train it (`nshot train-arch RUN`), before and after the run has finished; a GM + DARTS run too."""
    from nshot.cli import main

    run = tmp_path / "darts"
    unfinished = diff.DifferentiableSearch.create(darts_config(), run)
    unfinished.fit(max_steps=1)
    for command in (["rank", str(run), "--subset", "5"], ["search", str(run), "--strategy", "random", "--budget", "3"]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert "is a differentiable search (arch.method darts)" in err and "rank and search" in err
        assert f"nshot train --resume {run}" in err and f"nshot train-arch {run}" in err
        assert not (run / "rank.json").exists() and not (run / "search.json").exists()
    finished = diff.DifferentiableSearch.resume(run)
    finished.fit()
    arch = json.loads((run / "result.json").read_text())["arch"]
    for command in (["rank", str(run)], ["search", str(run), "--strategy", "random", "--budget", "3"]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert f"its result is the derived cell in {run / 'result.json'}: {arch}" in err
        assert f"nshot train-arch {run}" in err and "--resume" not in err
    gm = tmp_path / "gm"
    gm.mkdir()
    cfg = darts_config(**{"fewshot.method": "gm", "fewshot.split_epochs": "[1]"})
    from nshot.config import dump_config
    dump_config(cfg, gm / "config.yaml")
    assert main(["search", str(gm), "--strategy", "random", "--budget", "3"]) == 2
    assert "is a differentiable search (arch.method darts, GM-NAS splits)" in capsys.readouterr().err


def _small_cifar10(blob, root, per_batch: int = 20, test: int = 50) -> None:
    """The first 5 x ``per_batch`` training and ``test`` test images of the shared CIFAR-10 blob (JPEG-decoded)
    in the official ``cifar-10-batches-py`` layout, read back through nshot's normal loader."""
    import io
    import pickle

    import numpy as np
    from PIL import Image

    z = np.load(blob)
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)

    def dump(split: str, lo: int, hi: int, name: str) -> None:
        jpeg, off, y = z[f"{split}_jpeg"], z[f"{split}_offsets"], z[f"y_{split}"]
        x = np.stack([np.asarray(Image.open(io.BytesIO(jpeg[off[i]:off[i + 1]].tobytes())).convert("RGB"))
                      for i in range(lo, hi)])
        (d / name).write_bytes(pickle.dumps({b"batch_label": name.encode(), b"labels": [int(v) for v in y[lo:hi]],
                                             b"data": x.transpose(0, 3, 1, 2).reshape(len(x), -1)}))
    for b in range(5):
        dump("train", b * per_batch, (b + 1) * per_batch, f"data_batch_{b + 1}")
    dump("test", 0, test, "test_batch")
    (d / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"c%d" % i for i in range(10)]}))


def test_darts_space_end_to_end_on_a_cifar10_subset(tmp_path, shared_data, capsys):
    """search (DARTS first order on the DARTS space) -> genotype -> stand-alone training with the DARTS protocol
    (auxiliary head, cutout 16, drop-path) -> report, through the CLI, on 100 + 50 real CIFAR-10 images."""
    pytest.importorskip("PIL")
    from nshot import spaces
    from nshot.cli import main

    blob = shared_data / "cifar10" / "cifar10_jpeg.npz"
    if not blob.is_file():
        pytest.skip(f"{blob} not found")
    _small_cifar10(blob, tmp_path / "c10")
    run, evald = tmp_path / "search", tmp_path / "eval"
    assert main(["train", str(REPO / "configs/darts/search.yaml"), f"data.root={tmp_path / 'c10'}", "data.split_file=null",
                 "model.C=4", "model.N=1", "train.epochs=1", "train.batch_size=25", "threads=1", "device=cpu",
                 "run.progress=none", "--run-dir", str(run)]) == 0
    result = json.loads((run / "result.json").read_text())
    sp = spaces.get("darts")
    assert result["method"] == "darts" and sp.parse(result["arch"]) == result["arch"]
    assert result["params"] == sp.num_params(result["arch"])       # the C 36, 20-cell evaluation network
    assert main(["train-arch", str(run), "--config", str(REPO / "configs/darts/eval_cpu.yaml"), f"data.root={tmp_path / 'c10'}",
                 "data.train_subset=100", "data.eval_subset=50", "standalone.epochs=1", "standalone.C=4", "standalone.N=1",
                 "standalone.batch_size=25", "threads=1",
                 "device=cpu", "--run-dir", str(evald)]) == 0
    trained = json.loads((evald / "result.json").read_text())
    assert trained["arch"] == result["arch"] and trained["params"] == sp.num_params(result["arch"], C=4, N=1)
    assert trained["protocol"]["aux_weight"] == 0.4 and trained["protocol"]["cutout"] == 16
    assert 0.0 <= trained["accuracy"] <= 100.0 and "test" in trained["evaluated_on"]
    assert main(["report", str(run)]) == 0 and (run / "report.html").is_file()


def test_ground_truth_follows_the_space_and_the_dataset(shared_data, monkeypatch):
    """The derived cell's truth comes from the space's benchmark, in the metric of the run's dataset; a table
    given for a space or dataset without ground truth is refused, a missing default table is just absent."""
    csv = shared_data / "nb201" / "nb201_200ep.csv"
    if not csv.is_file():
        pytest.skip(f"NB201 table not found at {csv}")
    monkeypatch.delenv("NSHOT_NB201_CSV", raising=False)
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    for dataset, metric in (("cifar10", "cifar10/test"), ("cifar100", "cifar100/test")):
        table, got = diff.truth_table(darts_config(**{"data.name": dataset, "arch.table": str(csv)}))
        assert got == metric and 60 < table.query(arch, metric) < 100
    assert diff.truth_table(darts_config()) == (None, None)                      # digits, no table set
    assert diff.truth_table(darts_config(**{"data.name": "cifar10"})) == (None, None)
    monkeypatch.setenv("NSHOT_NB201_CSV", str(csv))                             # the benchmark's default location
    assert diff.truth_table(darts_config(**{"data.name": "cifar10"}))[1] == "cifar10/test"
    assert diff.truth_table(darts_config()) == (None, None)                      # digits: no ground truth
    with pytest.raises(ValueError, match=r"arch.table = .*: benchmark nb201 has no ground truth for data.name = "
                                         r"digits \(it has cifar10, cifar100, imagenet16-120\)"):
        diff.truth_table(darts_config(**{"arch.table": str(csv)}))
    with pytest.raises(ValueError, match="arch.table = .*search space 'darts' has no ground-truth benchmark"):
        diff.truth_table(darts_config(**{"space.name": "darts", "arch.table": str(csv)}))
    monkeypatch.setenv("NSHOT_NB201_CSV", str(csv.parent / "missing.csv"))       # named but missing: an error
    with pytest.raises(FileNotFoundError):
        diff.truth_table(darts_config(**{"data.name": "cifar10"}))


def test_gm_search_refuses_a_table_before_writing_anything(tmp_path, shared_data):
    from nshot.train.gm_search import GMSearch
    cfg = darts_config(**{"fewshot.method": "gm", "fewshot.split_epochs": "[1]", "arch.table": str(tmp_path / "t.csv")})
    with pytest.raises(ValueError, match="no ground truth for data.name = digits"):
        GMSearch.create(cfg, tmp_path / "gm")
    assert not (tmp_path / "gm").exists()
