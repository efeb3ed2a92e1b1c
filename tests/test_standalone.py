"""The stand-alone trainer's evaluation options: BN statistics calibrated on clean training images, drop_last."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from nshot.data import ImageData, normalize
from nshot.train.standalone import StandaloneConfig, calibrate_bn, train_standalone

ARCH = "|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|nor_conv_1x1~1|skip_connect~2|"


class _Net(nn.Module):
    """Conv -> BN -> mean, with a drop_path_prob attribute as the DARTS network has."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 3, padding=1)
        self.bn = nn.BatchNorm2d(5)
        self.drop_path_prob = 0.3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert self.drop_path_prob == 0.0 or not self.training, "calibration must run without drop-path"
        return self.bn(self.conv(x)).mean((2, 3))


def _data(n: int) -> ImageData:
    g = torch.Generator().manual_seed(5)
    x = torch.randint(0, 256, (n, 3, 8, 8), generator=g, dtype=torch.uint8)
    return ImageData(x, torch.arange(n) % 4, 4, (0.4, 0.5, 0.6), (0.2, 0.25, 0.3), "toy")


def test_calibrate_bn_is_the_mean_of_the_clean_batches_statistics():
    torch.manual_seed(0)
    net, data = _Net(), _data(10)
    net.bn.running_mean.fill_(7.0)
    net.bn.num_batches_tracked.fill_(99)
    params = {k: v.clone() for k, v in net.named_parameters()}
    net.eval()
    calibrate_bn(net, data, batch_size=4)
    # batches of 4: 0-3 and 4-7; the short batch 8-9 is left out
    with torch.no_grad():
        feats = [net.conv(normalize(data.x[i:i + 4], data.mean, data.std)) for i in (0, 4)]
    mean = torch.stack([f.mean((0, 2, 3)) for f in feats]).mean(0)
    var = torch.stack([f.transpose(0, 1).reshape(5, -1).var(1, unbiased=True) for f in feats]).mean(0)
    torch.testing.assert_close(net.bn.running_mean, mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(net.bn.running_var, var, rtol=1e-5, atol=1e-6)
    assert int(net.bn.num_batches_tracked) == 2
    assert net.bn.momentum == 0.1 and net.drop_path_prob == 0.3 and not net.training   # all restored
    for k, v in net.named_parameters():
        assert torch.equal(v, params[k])


def test_calibrate_bn_uses_a_short_batch_when_it_is_the_only_one():
    net, data = _Net(), _data(3)
    calibrate_bn(net, data, batch_size=8)
    with torch.no_grad():
        f = net.conv(normalize(data.x, data.mean, data.std))
    torch.testing.assert_close(net.bn.running_mean, f.mean((0, 2, 3)), rtol=1e-5, atol=1e-6)
    assert int(net.bn.num_batches_tracked) == 1


def test_bn_calibrate_changes_only_the_evaluation(tiny_data, monkeypatch):
    """Same seed, same training: ``bn_calibrate`` gives the accuracy of the plainly trained network after
    :func:`calibrate_bn` on the training images, and leaves every parameter as the plain training does."""
    import nshot.train.standalone as standalone

    train, evald = tiny_data
    base = dict(epochs=2, batch_size=32, lr=0.05, C=4, N=1, crop_padding=1, flip=False)
    nets = []
    evaluate = standalone.evaluate_arch
    monkeypatch.setattr(standalone, "evaluate_arch", lambda net, *a, **k: nets.append(net) or evaluate(net, *a, **k))
    plain = train_standalone("nb201", ARCH, train, evald, StandaloneConfig(**base), seed=3)
    calibrated = train_standalone("nb201", ARCH, train, evald, StandaloneConfig(**base, bn_calibrate=True), seed=3)
    by_hand, with_option = nets
    mine, theirs = by_hand.state_dict(), with_option.state_dict()
    stats = [k for k in mine if "running" in k or "num_batches" in k]
    assert all(torch.equal(mine[k], theirs[k]) for k in mine if k not in stats)    # the same training
    assert any(not torch.equal(mine[k], theirs[k]) for k in stats)                 # other BN statistics
    assert evaluate(by_hand, evald, batch_size=512) == plain
    calibrate_bn(by_hand, train, 32, evald.x.shape[-1])
    assert all(torch.equal(v, theirs[k]) for k, v in by_hand.state_dict().items())
    assert evaluate(by_hand, evald, batch_size=512) == calibrated


def test_drop_last_runs_whole_batches_only(tiny_data, monkeypatch):
    import nshot.train.standalone as standalone

    train, evald = tiny_data           # 96 training images
    sizes, lrs = [], []
    batches = standalone.epoch_batches
    monkeypatch.setattr(standalone, "epoch_batches",
                        lambda *a, **k: [sizes.append(len(i)) or i for i in batches(*a, **k)])
    for drop in (False, True):
        sa = StandaloneConfig(epochs=2, batch_size=40, lr=0.1, C=4, N=1, drop_last=drop)
        train_standalone("nb201", ARCH, train, evald, sa, seed=0, on_epoch=lambda e, lr: lrs.append(lr))
    assert sizes == [40, 40, 16] * 2 + [40, 40] * 2
    # the cosine's total counts the steps that run: half way after the first of two epochs either way
    assert lrs == pytest.approx([0.05, 0.0, 0.05, 0.0])
    with pytest.raises(ValueError, match="drop_last"):
        train_standalone("nb201", ARCH, train, evald, StandaloneConfig(epochs=1, batch_size=128, C=4, N=1,
                                                                         drop_last=True))
    with pytest.raises(ValueError, match="empty"):
        calibrate_bn(_Net(), _data(0), batch_size=4)


def test_train_arch_takes_the_options_from_a_flag_then_the_config():
    from nshot.cli import _parser as build_parser
    from nshot.config import load_config
    from nshot.train.train_arch import standalone_settings

    arch = "|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    plain = build_parser().parse_args(["train-arch", arch])
    flagged = build_parser().parse_args(["train-arch", arch, "--bn-calibrate", "--drop-last"])
    default = load_config(None, [])
    cfg = load_config(None, ["standalone.bn_calibrate=true", "standalone.drop_last=true"])
    got = standalone_settings(plain, default)
    assert (got["bn_calibrate"], got["drop_last"]) == (False, False)
    got = standalone_settings(plain, cfg)
    assert (got["bn_calibrate"], got["drop_last"]) == (True, True)
    got = standalone_settings(flagged, default)
    assert (got["bn_calibrate"], got["drop_last"]) == (True, True)


def test_quickstart_truth_agreement_formulas():
    """benchmarks.quickstart_truth: tau between seeds, a cell's std over seeds, std between cells, exactly."""
    import statistics

    from scipy.stats import kendalltau

    from benchmarks.quickstart_truth import _key, agreement

    archs = ["a", "b", "c", "d"]
    acc = {0: [90.0, 91.0, 95.0, 97.0], 1: [90.5, 92.0, 94.0, 98.0], 2: [91.0, 90.0, 96.0, 97.5]}
    res = {_key("r", 30, s, a): acc[s][i] for s in acc for i, a in enumerate(archs)}
    g = agreement(res, "r", 30, [0, 1, 2], [archs[:3], archs[1:]])
    t = {grp: [[acc[s][i] for i in grp] for s in (0, 1, 2)] for grp in ((0, 1, 2), (1, 2, 3))}
    taus = [kendalltau(v[i], v[j])[0] for v in t.values() for i, j in ((0, 1), (0, 2), (1, 2))]
    assert g["tau_between_seeds"] == pytest.approx(sum(taus) / 6)
    per_cell = [float(torch.tensor(v).std(0)[k]) for v in t.values() for k in range(3)]
    assert g["cell_std_over_seeds"] == pytest.approx(statistics.median(per_cell))
    between = [float(torch.tensor(v).mean(0).std()) for v in t.values()]
    assert g["std_between_cells"] == pytest.approx(sum(between) / 2)


def test_quickstart_digits_bands_keep_one_cell_per_function_sorted_in_near_equal_bands():
    """benchmarks.quickstart_cells.digits_bands: the first cell of each function class survives, bands follow
    the accuracy, sizes differ by at most one with the larger bands at the strong end."""
    from benchmarks.quickstart_cells import digits_bands

    cells = ["|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
             "|none~0|+|avg_pool_3x3~0|nor_conv_3x3~1|+|none~0|nor_conv_1x1~1|avg_pool_3x3~2|",
             "|avg_pool_3x3~0|+|none~0|none~1|+|none~0|avg_pool_3x3~1|avg_pool_3x3~2|",     # = the one above
             "|skip_connect~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|",
             "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|none~0|none~1|avg_pool_3x3~2|",
             "|nor_conv_1x1~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|nor_conv_1x1~0|nor_conv_1x1~1|nor_conv_1x1~2|",
             "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|none~0|none~1|nor_conv_3x3~2|"]
    acc = dict(zip(cells, [99.0, 94.0, 90.0, 97.0, 93.0, 98.0, 96.0]))
    got = digits_bands(cells, acc, bands=4)
    assert cells[2] not in [a for _, a in got]            # same function as cells[1], which comes first
    assert [a for _, a in got] == [cells[i] for i in (4, 1, 6, 3, 5, 0)]
    assert [b for b, _ in got] == ["1/4", "2/4", "3/4", "3/4", "4/4", "4/4"]
    with pytest.raises(ValueError, match="cannot fill 7 bands"):
        digits_bands(cells, acc, bands=7)


def test_quickstart_pool_holds_distinct_connected_cells_in_ten_bands():
    from nshot import spaces
    from nshot.quickstart import QUICKSTART_CELLS, pick_architectures

    sp = spaces.get("nb201")
    cells = [a for v in QUICKSTART_CELLS.values() for a in v]
    assert list(QUICKSTART_CELLS) == [f"{i}/10" for i in range(1, 11)]
    assert all(sp.is_connected(sp.parse(a)) for a in cells)
    assert len({sp.canonical(sp.parse(a)) for a in cells}) == len(cells)
    assert [b for b, _ in pick_architectures(10, 3)] == list(QUICKSTART_CELLS)   # one per band, weakest first
    for n in range(3, len(cells) + 1):                 # every advertised --archs: n distinct cells, bands even
        got = pick_architectures(n, n)
        counts = [sum(b == band for b, _ in got) for band in QUICKSTART_CELLS]
        assert len({a for _, a in got}) == n
        assert max(counts) - min(counts) <= 1 if n >= len(QUICKSTART_CELLS) else max(counts) == 1
        assert all(a in QUICKSTART_CELLS[b] for b, a in got)


def test_train_arch_refuses_drop_last_without_a_whole_batch_before_writing(tmp_path, capsys):
    from nshot.cli import main

    run = tmp_path / "arch"
    argv = ["train-arch", ARCH, "data.name=digits", "--drop-last", "--batch-size", "5000", "--epochs", "1",
            "--C", "4", "--N", "1", "--run-dir", str(run)]
    assert main(argv) == 2
    assert "drop_last with batch_size 5000" in capsys.readouterr().err and not run.exists()


def test_quickstart_default_cells_extend_the_ten_band_pick():
    """The default 16 cells are a seed's ten one-per-band cells plus six more (results.md reads the ten-cell
    protocol off the first ten), and every entry point agrees on the default."""
    import inspect

    from nshot.cli import _parser
    from nshot.quickstart import DEFAULT_ARCHS, pick_architectures, run_quickstart
    for s in range(20):
        assert pick_architectures(DEFAULT_ARCHS, s)[:10] == pick_architectures(10, s)
    assert [b for b, _ in pick_architectures(DEFAULT_ARCHS, 0)[10:]] == ["1/10", "3/10", "5/10", "6/10", "8/10",
                                                                       "10/10"]
    assert _parser().parse_args(["quickstart"]).archs == DEFAULT_ARCHS
    assert inspect.signature(run_quickstart).parameters["num_archs"].default == DEFAULT_ARCHS


def test_quickstart_truth_pool_runs_with_the_default_archs(tmp_path, monkeypatch):
    """`quickstart_truth --pool` (its documented command) is accepted with --archs left out, refused with it;
    without --pool the default cells are the quickstart's."""
    from benchmarks import quickstart_cells, quickstart_truth
    from nshot.quickstart import DEFAULT_ARCHS, pick_architectures
    seen = {}
    monkeypatch.setattr(quickstart_cells, "stratified_cells", lambda table: [("45-50", "A"), ("50-55", "B")])
    monkeypatch.setattr(quickstart_truth, "train_all", lambda out, recipes, archs, epochs, seeds:
                        seen.setdefault("archs", archs) and {})
    monkeypatch.setattr(quickstart_truth, "summarize", lambda *a: ["ok"])
    quickstart_truth.main(["--pool", "table.csv", "--seeds", "7", "1007", "--out", str(tmp_path / "p.json")])
    assert seen["archs"] == ["A", "B"]
    seen.clear()                                       # without --pool: a quickstart seed's default cells
    quickstart_truth.main(["--seeds", "7", "1007", "--out", str(tmp_path / "q.json")])
    assert seen["archs"] == [a for _, a in pick_architectures(DEFAULT_ARCHS, 0)]
    with pytest.raises(SystemExit):
        quickstart_truth.main(["--pool", "table.csv", "--archs", "10", "--seeds", "7", "1007", "--out",
                               str(tmp_path / "p.json")])
