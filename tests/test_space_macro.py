"""NAS-Bench-Macro space and benchmark: strings, exact params/FLOPs against the table, the JSON adapter."""
import json

import numpy as np
import pytest

from nshot import benchmarks, spaces
from nshot.benchmarks import BenchmarkError, BenchmarkNotFound
from nshot.spaces import ArchTypeError

SP = spaces.get("macro")


@pytest.fixture(scope="module")
def macro_json(shared_data):
    path = shared_data / "nas_bench_macro" / "nas-bench-macro_cifar10.json"
    if not path.is_file():
        pytest.skip(f"NAS-Bench-Macro table not found at {path}")
    return path


def test_space_shape_and_enumeration():
    assert SP.sizes == (3,) * 8 and len(SP) == 6561
    assert SP.choices[0] == ("id", "k3e3", "k5e6")
    archs = list(SP.enumerate())
    assert len(set(archs)) == 6561 and archs[0] == "00000000" and archs[-1] == "22222222"
    assert archs[5] == "00000012"                                  # decision 0 most significant


def test_parse_format_round_trip_and_choice_vectors():
    rng = np.random.default_rng(0)
    for _ in range(50):
        a = SP.sample(rng)
        assert SP.parse(a) == SP.format(a) == a
        assert SP.encode(SP.decode(a)) == a
    assert SP.decode("01201201") == (0, 1, 2, 0, 1, 2, 0, 1)
    assert SP.layer_names("20000001") == ("k5e6",) + ("id",) * 6 + ("k3e3",)


@pytest.mark.parametrize("text, message", [
    ("0120120", "must have 8 characters .* got 7"),
    ("012012012", "must have 8 characters .* got 9"),
    ("01a01201", "character 'a' at position 2 \\(layer 2\\)"),
    ("0120120 ", "character ' ' at position 7"),
    ("01201203", "character '3' at position 7"),
])
def test_parse_errors_name_the_position(text, message):
    with pytest.raises(ValueError, match=message):
        SP.parse(text)


def test_non_strings_and_bad_choice_vectors_are_refused():
    with pytest.raises(ArchTypeError, match="must be a string"):
        SP.parse(12012012)
    with pytest.raises(ValueError, match="choice 3 at decision 1 is out of range 0..2"):
        SP.encode([0, 3, 0, 0, 0, 0, 0, 0])
    with pytest.raises(ValueError, match="expected 8 choices"):
        SP.encode([0] * 7)


def test_known_extremes_without_the_table():
    # The README of the benchmark: params 387,882 to 2,932,586, FLOPs 7.71M to 105.66M.
    assert SP.num_params("00000000") == 387_882 and SP.num_params("22222222") == 2_932_586
    assert SP.flops("00000000") == 7_713_280 and SP.flops("22222222") == 105_660_928
    # all-identity by hand: stem conv+BN, three conv1x1/s2+BN on identity first layers, head conv+BN, classifier
    stem, skips = 27 * 32 + 64, (32 * 64 + 128) + (64 * 128 + 256) + (128 * 256 + 512)
    assert SP.num_params("00000000") == stem + skips + 256 * 1280 + 2560 + 1280 * 10 + 10
    # the last layer's k3e3 at 4x4: expand 256->768, depthwise 3x3, project 768->256 (+ BN)
    assert SP.num_params("00000001") - SP.num_params("00000000") == 2 * 256 * 768 + 9 * 768 + 4 * 768 + 512
    assert SP.flops("00000001") - SP.flops("00000000") == (2 * 256 * 768 + 9 * 768) * 16


def test_shape_options_scale_the_network_and_are_validated():
    small = dict(stem_width=4, widths=[8, 16, 32], head_width=64, num_classes=4, in_channels=1, resolution=8)
    assert SP.num_params("00000000", **small) == (9 * 4 + 8) + (4 * 8 + 16) + (8 * 16 + 32) + (16 * 32 + 64) + \
        (32 * 64 + 128) + (64 * 4 + 4)
    assert SP.flops("00000000", **small) < SP.flops("00000000")
    assert SP.num_params("11111111", resolution=64) == SP.num_params("11111111")   # resolution: FLOPs only
    with pytest.raises(ValueError, match="widths must have 3 entries"):
        SP.num_params("00000000", widths=[8, 16])
    with pytest.raises(ValueError, match="stem_width must be a positive integer"):
        SP.flops("00000000", stem_width=0)


def test_params_and_flops_equal_the_table_for_all_archs(macro_json):
    table = json.loads(macro_json.read_text())
    assert len(table) == 6561 and set(table) == set(SP.enumerate())
    wrong = [a for a, row in table.items() if SP.num_params(a) != row["params"] or SP.flops(a) != row["flops"]]
    assert not wrong, f"{len(wrong)} archs differ, e.g. {wrong[:3]}"


def test_benchmark_adapter_on_the_real_table(macro_json, monkeypatch):
    b = benchmarks.get("macro", macro_json)
    assert len(b) == 6561 and b.space == "macro" and b.default_metric == "mean_acc"
    assert set(b.metrics) >= {"mean_acc", "std", "params", "flops", "test_acc/0"}
    acc = b.column("mean_acc")
    best, worst = b.archs()[int(np.argmax(acc))], b.archs()[int(np.argmin(acc))]
    assert (best, round(acc.max(), 2)) == ("22212220", 93.13)
    assert (worst, round(acc.min(), 2)) == ("00000000", 45.36)
    assert b.query("22222222", "params") == SP.num_params("22222222")
    strat = b.subset(30, seed=0, stratify="mean_acc")
    sub = b.query_many(strat, "mean_acc")   # one arch per 1/30 of the accuracy distribution
    assert len(strat) == 30 and sub.min() <= np.quantile(acc, 1 / 30) and sub.max() >= np.quantile(acc, 29 / 30)
    monkeypatch.setenv("NSHOT_MACRO_JSON", str(macro_json))
    assert len(benchmarks.get("macro")) == 6561


def _write(tmp_path, data, name="t.json"):
    p = tmp_path / name
    p.write_text(json.dumps(data))
    return p


def _row(acc=90.0):
    return {"test_acc": [acc, acc, acc], "mean_acc": acc, "std": 0.0, "params": 100, "flops": 1000}


def test_benchmark_adapter_validates_the_json(tmp_path, monkeypatch):
    good = benchmarks.get("macro", _write(tmp_path, {"00000000": _row(50), "22222222": _row(90)}))
    assert good.archs() == ["00000000", "22222222"] and good.query("22222222", "test_acc/1") == 90
    with pytest.raises(BenchmarkError, match="not in the macro table"):
        good.query("11111111", "mean_acc")
    with pytest.raises(BenchmarkError, match="unknown metric 'cifar10/test'.*mean_acc"):
        good.query("00000000", "cifar10/test")
    cases = [({"0000000": _row()}, "bad key: .*must have 8 characters"),
             ({"00000000": {**_row(), "params": 1.5}}, "params = 1.5 is not a positive integer"),
             ({"00000000": {k: v for k, v in _row().items() if k != "flops"}}, "lacks flops"),
             ({"00000000": {**_row(), "mean_acc": 120}}, "mean_acc = 120.0 is outside 0..100"),
             ({"00000000": {**_row(), "test_acc": [1, 2]}}, "test_acc must be a list of 3"),
             ([1, 2], "expected a non-empty JSON object")]
    for i, (data, message) in enumerate(cases):
        with pytest.raises(BenchmarkError, match=message):
            benchmarks.get("macro", _write(tmp_path, data, f"c{i}.json"))
    (tmp_path / "broken.json").write_text('{"00000000": ')
    with pytest.raises(BenchmarkError, match="cannot read"):
        benchmarks.get("macro", tmp_path / "broken.json")
    with pytest.raises(BenchmarkNotFound, match="not found"):
        benchmarks.get("macro", tmp_path / "nope.json")
    monkeypatch.delenv("NSHOT_MACRO_JSON", raising=False)
    with pytest.raises(BenchmarkNotFound, match="NSHOT_MACRO_JSON"):
        benchmarks.get("macro")


def test_default_benchmark_per_space():
    assert benchmarks.default_for_space("nb201") == "nb201" and benchmarks.default_for_space("macro") == "macro"
    with pytest.raises(BenchmarkError, match="no ground-truth benchmark"):
        benchmarks.default_for_space("proxyless")
