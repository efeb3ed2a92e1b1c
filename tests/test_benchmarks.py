"""nshot.benchmarks: the NB201 table loader, queries, subsets, registry and the NATS-Bench exporter."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from nshot import spaces
from nshot.benchmarks import (Benchmark, BenchmarkError, BenchmarkNotFound, NB201Benchmark, available, get)
from nshot.benchmarks import export_nb201
from nshot.benchmarks.export_nb201 import export_nats
from nshot.benchmarks.nb201 import COLUMNS, METRICS, canonical_strings

SP = spaces.get("nb201")
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------- helpers
def table_rows(archs: list[str]) -> list[list[str]]:
    """Rows of a synthetic table: index 100+i, accuracies that encode (row, column), exact params."""
    rows = []
    for i, arch in enumerate(archs):
        acc = [f"{10 * (c + 1) + i / 100:.6f}" for c in range(6)]   # column c: 10(c+1) + i/100
        params = [str(SP.num_params(arch, num_classes=k)) for k in (10, 100, 120)]
        rows.append([str(100 + i), arch, *acc, *params])
    return rows


def write_csv(path: Path, rows: list[list[str]], header=COLUMNS, trailing_newline: bool = True) -> Path:
    text = "\n".join(",".join(r) for r in [list(header), *rows])
    path.write_text(text + ("\n" if trailing_newline else ""))
    return path


@pytest.fixture
def small_archs() -> list[str]:
    rng = np.random.default_rng(7)
    every = list(SP.enumerate())
    return [ALL_NONE] + [every[i] for i in rng.choice(np.arange(1, len(every)), size=19, replace=False)]


@pytest.fixture
def small(tmp_path, small_archs) -> NB201Benchmark:
    return NB201Benchmark.from_csv(write_csv(tmp_path / "small.csv", table_rows(small_archs)))


@pytest.fixture(scope="module")
def real_csv(shared_data) -> Path:
    path = shared_data / "nb201" / "nb201_200ep.csv"
    if not path.is_file():
        pytest.skip(f"NB201 table not found at {path}")
    return path


@pytest.fixture(scope="module")
def real(real_csv) -> NB201Benchmark:
    return NB201Benchmark.from_csv(real_csv)


@pytest.fixture(scope="module")
def kendall_file(shared_data) -> Path:
    path = shared_data / "nb201" / "kendall_subset_327.txt"
    if not path.is_file():
        pytest.skip(f"327-arch subset file not found at {path}")
    return path


# ---------------------------------------------------------------------------------------- the real table
def test_real_table_known_facts(real):
    assert len(real) == 15625 and len(set(real.archs())) == 15625
    assert real.metrics == METRICS
    assert round(real.column("cifar10/test").max(), 2) == 94.37
    assert round(real.column("cifar100/test").max(), 2) == 73.51
    assert round(real.column("imagenet16/test").max(), 2) == 47.31
    for metric, chance in (("cifar10/test", 10.0), ("cifar100/test", 1.0), ("imagenet16/test", 0.83)):
        assert real.query(ALL_NONE, metric) == pytest.approx(chance, abs=0.01)
    params = real.column("params/cifar10")
    assert (params.min(), params.max()) == (73306, 1531546)
    assert sorted(real.column("index").astype(int)) == list(range(15625))
    best = real.archs()[int(np.argmax(real.column("cifar10/test")))]
    assert real.query(best, "cifar10/test") == pytest.approx(94.37, abs=0.005)


def test_real_params_equal_space_count(real):
    archs = real.archs()
    for metric, classes in (("params/cifar10", 10), ("params/cifar100", 100), ("params/imagenet16", 120)):
        exact = np.array([SP.num_params(a, num_classes=classes) for a in archs], dtype=np.float64)
        np.testing.assert_array_equal(real.query_many(archs, metric), exact)


def test_real_table_load_memory(real_csv):
    """Cold load in a fresh interpreter adds < 100 MiB; prints time, RSS and the Python allocation peak (its
    time target, < 1 s, is measured by ``python -m benchmarks.table_load``: no wall clock in a test)."""
    from benchmarks.table_load import measure
    m = measure(real_csv)
    print(f"\nNB201 table load: {m['seconds']:.3f} s, RSS {m['rss_before_mb']:.1f} -> {m['rss_after_mb']:.1f} MiB "
          f"(+{m['rss_after_mb'] - m['rss_before_mb']:.1f}), Python allocation peak {m['alloc_peak_mb']:.1f} MiB")
    assert m["rows"] == 15625
    assert m["rss_after_mb"] - m["rss_before_mb"] < 100


def test_real_kendall327_subset(real, kendall_file, monkeypatch):
    archs = real.subset(kendall_file)
    assert len(archs) == 327 and len(set(archs)) == 327
    acc = real.query_many(archs, "cifar10/test")
    assert round(acc.min(), 2) == 10.00 and round(acc.max(), 2) == 94.37
    assert real.subset(str(kendall_file)) == archs
    monkeypatch.setenv("NSHOT_KENDALL327", str(kendall_file))
    assert real.subset("kendall327") == archs


def test_get_reads_env(real_csv, monkeypatch):
    monkeypatch.setenv("NSHOT_NB201_CSV", str(real_csv))
    b = get("nb201")
    assert isinstance(b, NB201Benchmark) and len(b) == 15625 and b.space == "nb201" and b.name == "nb201"


# --------------------------------------------------------------------------------------- synthetic tables
def test_canonical_strings_are_the_space():
    every = set(SP.enumerate())
    assert canonical_strings() == every
    assert all(SP.parse(a) == a for a in list(every)[:500])


def test_values_land_in_their_columns(small, small_archs):
    assert small.metrics == METRICS and small.archs() == small_archs and len(small) == 20
    for i, arch in enumerate(small_archs):
        for c, metric in enumerate(METRICS[:6]):
            assert small.query(arch, metric) == pytest.approx(10 * (c + 1) + i / 100)
        assert small.query(arch, "params/cifar100") == SP.num_params(arch, num_classes=100)
        assert small.query(arch, "index") == 100 + i
        assert small.index_of(arch) == 100 + i and small.arch_at(100 + i) == arch
    got = small.query_many(small_archs[::-1], "cifar10/valid")
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, [10 + i / 100 for i in range(19, -1, -1)])
    got[0] = -1  # a fresh array: the table is untouched
    assert small.query(small_archs[-1], "cifar10/valid") == pytest.approx(10.19)
    with pytest.raises(ValueError):
        small.column("cifar10/valid")[0] = 0  # columns are read-only


def test_query_accepts_any_spelling(small, small_archs):
    loose = "  " + small_archs[3] + "\n"
    assert small.query(loose, "cifar10/test") == small.query(small_archs[3], "cifar10/test")
    assert loose in small


def test_unknown_metric_lists_valid_ones(small):
    for call in (lambda: small.query(ALL_NONE, "cifar10/accuracy"), lambda: small.query_many([ALL_NONE], "acc"),
                 lambda: small.column("test")):
        with pytest.raises(BenchmarkError, match="unknown metric") as info:
            call()
        assert "cifar10/valid" in str(info.value) and "params/imagenet16" in str(info.value)


def test_arch_missing_from_table(small, small_archs):
    missing = next(a for a in SP.enumerate() if a not in set(small_archs))
    with pytest.raises(BenchmarkError, match="not in the nb201 table") as info:
        small.query(missing, "cifar10/test")
    assert missing in str(info.value) and "small.csv" in str(info.value)
    with pytest.raises(BenchmarkError, match="not in the nb201 table"):
        small.query_many([small_archs[0], missing], "cifar10/test")
    assert missing not in small and small_archs[0] in small
    assert "garbage" not in small and 3 not in small and None not in small
    with pytest.raises(ValueError, match="malformed NB201 string"):
        small.query("|none~0|", "cifar10/test")
    with pytest.raises(BenchmarkError, match="single string"):
        small.query_many(ALL_NONE, "cifar10/test")
    with pytest.raises(BenchmarkError, match="index 5"):
        small.arch_at(5)


def test_subset_all_and_counts(small, small_archs):
    assert small.subset("all") == small_archs
    a = small.subset(7, seed=3)
    assert a == small.subset(7, seed=3) == small.subset("7", seed=3)
    assert len(a) == 7 and len(set(a)) == 7 and set(a) <= set(small_archs)
    assert a == sorted(a, key=small_archs.index)  # returned in table order
    assert any(small.subset(7, seed=s) != a for s in range(4, 8))
    assert sorted(small.subset(20, seed=1)) == sorted(small_archs)
    assert small.subset(np.int64(2)) == small.subset(2)
    # stratified: one arch per equal-count stratum of the metric (values are increasing in table order here)
    strat = small.subset(4, seed=0, stratify="cifar10/test")
    rows = [small_archs.index(x) for x in strat]
    assert [r // 5 for r in rows] == [0, 1, 2, 3]
    for bad, msg in ((0, "at least 1"), (21, "exceeds"), (-3, "at least 1"), (True, "subset must be")):
        with pytest.raises(BenchmarkError, match=msg):
            small.subset(bad)
    with pytest.raises(BenchmarkError, match="unknown metric"):
        small.subset(3, stratify="nope")


def test_subset_file(small, small_archs, tmp_path):
    f = tmp_path / "sub.txt"
    f.write_text(f"# my subset\n\n{small_archs[4]}\n  {small_archs[1]}   # trailing comment\n{small_archs[9]}")
    assert small.subset(f) == [small_archs[4], small_archs[1], small_archs[9]]
    assert small.subset(str(f)) == small.subset(f)


@pytest.mark.parametrize("content, match", [
    ("", "lists no architectures"),
    ("# only a comment\n\n   \n", "lists no architectures"),
    ("{0}\n|none~0|+|bogus~0|none~1|+|none~0|none~1|none~2|\n", r"line 2: unknown op 'bogus'"),
    ("{0}\n\n|none~0|+|none~0|\n", r"line 3: malformed NB201 string"),
    ("{0}\n{missing}\n", r"line 2: arch .* is not in the nb201 table"),
    ("{0}\n{1}\n{0}\n", r"line 3: arch .* repeats line 1"),
])
def test_subset_file_errors(small, small_archs, tmp_path, content, match):
    missing = next(a for a in SP.enumerate() if a not in set(small_archs))
    f = tmp_path / "bad_subset.txt"
    f.write_text(content.format(*small_archs[:2], missing=missing))
    with pytest.raises(BenchmarkError, match=match) as info:
        small.subset(f)
    assert "bad_subset.txt" in str(info.value)


def test_subset_missing_file_and_keyword(small, tmp_path, monkeypatch):
    with pytest.raises(BenchmarkNotFound, match="not found") as info:
        small.subset(tmp_path / "nope.txt")
    assert isinstance(info.value, FileNotFoundError)
    monkeypatch.delenv("NSHOT_KENDALL327", raising=False)
    with pytest.raises(BenchmarkError, match="not shipped") as info:
        small.subset("kendall327")
    assert "NSHOT_KENDALL327" in str(info.value) and "--subset" in str(info.value)
    f = tmp_path / "three.txt"
    f.write_text("\n".join(small.archs()[:3]))
    monkeypatch.setenv("NSHOT_KENDALL327", str(f))
    with pytest.raises(BenchmarkError, match="has 3 archs, expected 327"):
        small.subset("kendall327")


def test_registry(tmp_path, small_archs, monkeypatch):
    assert "nb201" in available()
    with pytest.raises(BenchmarkError, match="unknown benchmark 'nb999'.*nb201"):
        get("nb999")
    path = write_csv(tmp_path / "t.csv", table_rows(small_archs))
    assert get("nb201", path).archs() == small_archs
    monkeypatch.delenv("NSHOT_NB201_CSV", raising=False)
    with pytest.raises(BenchmarkNotFound, match="NSHOT_NB201_CSV") as info:
        get("nb201")
    assert "export_nb201" in str(info.value) and "docs/benchmarks.md" in str(info.value)
    with pytest.raises(BenchmarkNotFound, match="not found"):
        get("nb201", tmp_path / "absent.csv")
    assert isinstance(get("nb201", path), Benchmark)


def test_extra_columns_and_column_order(tmp_path, small_archs):
    rows = table_rows(small_archs[:3])
    header = list(COLUMNS)[::-1] + ["note"]
    path = write_csv(tmp_path / "perm.csv", [r[::-1] + ["x"] for r in rows], header=header,
                     trailing_newline=False)
    b = NB201Benchmark.from_csv(path)
    assert b.archs() == small_archs[:3] and b.query(small_archs[2], "cifar100/test") == pytest.approx(40.02)


def _mutate(rows, i, col, value):
    rows[i][COLUMNS.index(col)] = value
    return rows


@pytest.mark.parametrize("case, line, match", [
    ("missing_column", 1, "missing column.*c100_test_200ep"),
    ("repeated_column", 1, "appear more than once"),
    ("non_numeric", 4, r"column c10_test_200ep: 'abc' is not a number"),
    ("empty_value", 3, r"column params_c10: '' is not a number"),
    ("nan_value", 5, r"column in16_val_200ep: 'nan' is not a finite number"),
    ("duplicate_arch", 6, r"duplicate arch .*already on line 2"),
    ("duplicate_spelling", 6, r"duplicate arch .*already on line 2"),
    ("truncated", 21, r"expected 11 fields .*got 5; the file looks truncated"),
    ("short_row", 3, r"expected 11 fields .*got 10$"),
    ("bad_arch", 7, r"column arch_str: unknown op 'conv'"),
    ("accuracy_range", 2, r"column c100_val_200ep: '101' is outside 0..100"),
    ("fractional_params", 9, r"column params_c100: '1000.5' is not a positive integer"),
    ("negative_index", 2, r"column nb201_index: '-1' is not a non-negative integer"),
    ("duplicate_index", 11, r"index 102 already on line 4"),
])
def test_bad_tables(tmp_path, small_archs, case, line, match):
    rows = table_rows(small_archs)
    header = list(COLUMNS)
    if case == "missing_column":
        header.remove("c100_test_200ep")
        rows = [r[:COLUMNS.index("c100_test_200ep")] + r[COLUMNS.index("c100_test_200ep") + 1:] for r in rows]
    elif case == "repeated_column":
        header.append("c10_test_200ep")
        rows = [r + ["1"] for r in rows]
    elif case == "non_numeric":
        _mutate(rows, 2, "c10_test_200ep", "abc")
    elif case == "empty_value":
        _mutate(rows, 1, "params_c10", "")
    elif case == "nan_value":
        _mutate(rows, 3, "in16_val_200ep", "nan")
    elif case == "duplicate_arch":
        _mutate(rows, 4, "arch_str", small_archs[0])
    elif case == "duplicate_spelling":
        _mutate(rows, 4, "arch_str", " " + small_archs[0] + " ")
    elif case == "truncated":
        rows[-1] = rows[-1][:5]
    elif case == "short_row":
        rows[1] = rows[1][:-1]
    elif case == "bad_arch":
        _mutate(rows, 5, "arch_str", "|conv" + small_archs[5][small_archs[5].index("~0|+"):])
    elif case == "accuracy_range":
        _mutate(rows, 0, "c100_val_200ep", "101")
    elif case == "fractional_params":
        _mutate(rows, 7, "params_c100", "1000.5")
    elif case == "negative_index":
        _mutate(rows, 0, "nb201_index", "-1")
    elif case == "duplicate_index":
        _mutate(rows, 9, "nb201_index", "102")
    path = write_csv(tmp_path / f"{case}.csv", rows, header=header, trailing_newline=case != "truncated")
    with pytest.raises(BenchmarkError, match=match) as info:
        NB201Benchmark.from_csv(path)
    assert f"{case}.csv, line {line}:" in str(info.value)


def test_empty_and_header_only_tables(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(BenchmarkError, match="empty.csv: empty file"):
        NB201Benchmark.from_csv(empty)
    with pytest.raises(BenchmarkError, match="header.csv: the table has a header but no data rows"):
        NB201Benchmark.from_csv(write_csv(tmp_path / "header.csv", []))


# ------------------------------------------------------------------------------------------- the exporter
class StubNATS:
    """A stand-in for the official NATS-Bench topology API (``nats_bench.create(path, "tss")``).

    The official benchmark files (NATS-tss-v1_0-3ffb9, gigabytes) are not available here, so this stub follows
    the API as documented in nats_bench/api_topology.py and api_utils.py: ``len(api)``, ``meta_archs`` /
    ``arch(i)``, ``get_more_info(index, dataset, iepoch=None, hp="12", is_random=True)`` returning
    ``valid-accuracy`` (x-valid; for ``cifar10-valid`` the held-out half of the training set) and
    ``test-accuracy`` (``ori-test`` for ``cifar10``/``cifar10-valid``, ``x-test`` otherwise), and
    ``get_cost_info(index, dataset)`` with ``params`` in millions. Every value encodes (index, dataset, key), so
    a value read from the wrong place shows up.
    """

    BASE = {("cifar10-valid", "valid-accuracy"): 80.0, ("cifar10-valid", "test-accuracy"): 1.0,
            ("cifar10", "test-accuracy"): 81.0, ("cifar100", "valid-accuracy"): 60.0,
            ("cifar100", "test-accuracy"): 61.0, ("ImageNet16-120", "valid-accuracy"): 30.0,
            ("ImageNet16-120", "test-accuracy"): 31.0}
    CLASSES = {"cifar10-valid": 10, "cifar10": 10, "cifar100": 100, "ImageNet16-120": 120}

    def __init__(self, archs: list[str], with_meta: bool = True):
        if with_meta:
            self.meta_archs = list(archs)
        self._archs = list(archs)
        self.calls: list[tuple] = []

    def __len__(self):
        return len(self._archs)

    def arch(self, index):
        return self._archs[index]

    def value(self, index, dataset, key):
        return self.BASE[(dataset, key)] + index / 1000 + 1 / 3

    def get_more_info(self, index, dataset, iepoch=None, hp="12", is_random=True):
        self.calls.append((index, dataset, hp, is_random))
        info = {"train-loss": 0.5, "train-accuracy": 99.0, "train-per-time": 1.0, "train-all-time": 200.0}
        for (d, key) in self.BASE:
            if d == dataset:
                info[key] = self.value(index, dataset, key)
                info[key.replace("accuracy", "loss")] = 0.1
        if dataset not in ("cifar10-valid", "cifar10"):
            info["valtest-accuracy"] = 2.0
        return info

    def get_cost_info(self, index, dataset, hp="12"):
        params = SP.num_params(self._archs[index], num_classes=self.CLASSES[dataset])
        return {"flops": 100.0, "params": params / 1e6, "latency": 0.01}


class OldNB201Stub(StubNATS):
    """NAS-Bench-201 v1.0's API: ``get_more_info(index, dataset, iepoch=None, use_12epochs_result=False, ...)``."""

    def get_more_info(self, index, dataset, iepoch=None, use_12epochs_result=False, is_random=True):
        assert use_12epochs_result is False
        return super().get_more_info(index, dataset, hp="200", is_random=is_random)


@pytest.fixture
def stub_archs() -> list[str]:
    every = list(SP.enumerate())
    return [every[i] for i in np.random.default_rng(3).permutation(len(every))[:25]]


@pytest.mark.parametrize("stub_cls, with_meta", [(StubNATS, True), (StubNATS, False), (OldNB201Stub, True)])
def test_export_nats_stub(tmp_path, stub_archs, stub_cls, with_meta):
    api = stub_cls(stub_archs, with_meta=with_meta)
    out = tmp_path / "sub" / "nb201.csv"
    seen = []
    assert export_nats(api, out, hp="200", progress=lambda d, t: seen.append((d, t))) == 25
    assert seen[-1] == (25, 25) and len(seen) == 25
    assert [p.name for p in out.parent.iterdir()] == ["nb201.csv"]  # no temporary file left behind
    assert out.read_text().splitlines()[0] == ",".join(COLUMNS)
    b = NB201Benchmark.from_csv(out)
    assert b.archs() == stub_archs
    expected = {"cifar10/valid": ("cifar10-valid", "valid-accuracy"), "cifar10/test": ("cifar10", "test-accuracy"),
                "cifar100/valid": ("cifar100", "valid-accuracy"), "cifar100/test": ("cifar100", "test-accuracy"),
                "imagenet16/valid": ("ImageNet16-120", "valid-accuracy"),
                "imagenet16/test": ("ImageNet16-120", "test-accuracy")}
    for i, arch in enumerate(stub_archs):
        assert b.index_of(arch) == i
        for metric, (dataset, key) in expected.items():
            assert b.query(arch, metric) == api.value(i, dataset, key)  # exact: written with full precision
        for metric, k in (("params/cifar10", 10), ("params/cifar100", 100), ("params/imagenet16", 120)):
            assert b.query(arch, metric) == SP.num_params(arch, num_classes=k)
    if stub_cls is StubNATS:
        assert {(hp, r) for _, _, hp, r in api.calls} == {("200", False)}
        assert {d for _, d, _, _ in api.calls} == set(StubNATS.CLASSES)


def test_export_errors(tmp_path, stub_archs):
    class WrongParams(StubNATS):
        def get_cost_info(self, index, dataset, hp="12"):
            return {"params": 0.5}

    out = tmp_path / "x.csv"
    with pytest.raises(BenchmarkError, match=r"API index 0 .*reports 0.500000M parameters"):
        export_nats(WrongParams(stub_archs), out)
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert export_nats(WrongParams(stub_archs), out, check_params=False) == 25

    class NoTest(StubNATS):
        def get_more_info(self, index, dataset, iepoch=None, hp="12", is_random=True):
            info = super().get_more_info(index, dataset, iepoch, hp, is_random)
            if index == 3 and dataset == "cifar100":
                del info["test-accuracy"]
            return info

    with pytest.raises(BenchmarkError, match=r"API index 3 .*'cifar100'.*no finite 'test-accuracy'"):
        export_nats(NoTest(stub_archs), tmp_path / "y.csv")
    assert not (tmp_path / "y.csv").exists()

    bad = StubNATS(["|none~0|+|none~0|"] + stub_archs)
    with pytest.raises(BenchmarkError, match="API index 0: malformed NB201 string"):
        export_nats(bad, tmp_path / "z.csv")


def test_export_without_nats_bench(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "nats_bench", None)  # import fails as if not installed
    with pytest.raises(BenchmarkError, match=r"pip install 'nshot\[nats\]'"):
        export_nb201.create_api(tmp_path)
    assert export_nb201.main([str(tmp_path), str(tmp_path / "o.csv")]) == 2
    assert "nats_bench" in capsys.readouterr().err
