"""train → rank → search → train-arch → report through the `nshot` command, on a seconds-long run."""
import json

import pytest
import yaml

from nshot.cli import main
from tests.helpers import write_table


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """A trained tiny run on digits and a synthetic benchmark table covering all 15,625 cells."""
    tmp = tmp_path_factory.mktemp("pipe")
    table = tmp / "table.csv"
    write_table(table, n=None)
    cfg = tmp / "digits.yaml"
    cfg.write_text(yaml.safe_dump({"device": "cpu", "threads": 1, "data": {"name": "digits", "crop_padding": 1,
                                   "flip": False}, "model": {"C": 4, "N": 1}, "train": {"epochs": 2, "batch_size": 128},
                                   "run": {"progress": "none"}}))
    run = tmp / "run"
    assert main(["train", str(cfg), "--run-dir", str(run)]) == 0
    return run, table


def test_rank_writes_protocol_and_metrics(pipeline, capsys):
    run, table = pipeline
    assert main(["rank", str(run), "--table", str(table), "--metric", "cifar10/test", "--subset", "12", "--progress", "none"]) == 0
    out = capsys.readouterr().out
    assert "Kendall tau-b" in out and "by complexity quintile" in out and "95% bootstrap CI" in out
    rep = json.loads((run / "rank.json").read_text())
    lo, hi = rep["kendall_tau_ci95"]
    assert lo <= rep["kendall_tau"] <= hi
    assert rep["protocol"]["n"] == 12 and rep["protocol"]["bn_mode"] == "batch"
    assert rep["protocol"]["metric"] == "cifar10/test" and rep["protocol"]["checkpoint_step"] > 0
    assert len(rep["fairness"]) == 5
    assert (run / "rank-n12-cifar10_test.json").is_file() and (run / "rank-n12-cifar10_test.csv").is_file()   # kept per subset and metric
    lines = (run / "rank.csv").read_text().splitlines()
    assert lines[0] == "arch,score,truth,params,score_rank,truth_rank" and len(lines) == 13
    cached = len((run / "scores.csv").read_text().splitlines())
    # ranking again scores nothing new; --threads overrides the run's (1)
    import torch
    before = torch.get_num_threads()
    try:
        assert main(["rank", str(run), "--table", str(table), "--metric", "cifar10/test", "--subset", "12", "--progress", "none",
                     "--threads", "2"]) == 0
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert len((run / "scores.csv").read_text().splitlines()) == cached


def test_rank_bad_inputs(pipeline, tmp_path, capsys):
    run, table = pipeline
    assert main(["rank", str(run), "--table", str(table), "--metric", "cifar10/tset"]) == 2
    assert "unknown metric 'cifar10/tset'" in capsys.readouterr().err
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    assert main(["rank", str(run), "--table", str(table), "--metric", "cifar10/test", "--subset", str(empty)]) == 2
    assert "empty" in capsys.readouterr().err.lower()
    assert main(["rank", str(tmp_path), "--table", str(table)]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_search_then_train_arch_then_report(pipeline, capsys):
    run, table = pipeline
    assert main(["search", str(run), "--strategy", "evolution", "--population", "8", "--generations", "3",
                 "--parents", "3", "--mutants", "3", "--crossovers", "3", "--benchmark", "nb201", "--metric", "cifar10/test", "--table",
                 str(table), "--max-params", "600000", "--progress", "none", "--top-k", "3"]) == 0
    res = json.loads((run / "search.json").read_text())
    assert len(res["best"]) == 3 and all(r["params"] <= 600000 and r["truth"] is not None for r in res["best"])
    assert res["evaluations"] <= 8 * 3 and res["protocol"]["strategy"] == "evolution"
    capsys.readouterr()
    arch_dir = run.parent / "arch"
    assert main(["train-arch", str(run), "--epochs", "1", "--C", "4", "--N", "1", "--batch-size", "128",
                 "--run-dir", str(arch_dir)]) == 0
    result = json.loads((arch_dir / "result.json").read_text())
    assert result["arch"] == res["best"][0]["arch"] and 0 <= result["accuracy"] <= 100
    assert main(["rank", str(run), "--table", str(table), "--metric", "cifar10/test", "--subset", "12", "--progress", "none"]) == 0  # (cached)
    assert main(["report", str(run)]) == 0
    html = (run / "report.html").read_text()
    assert "data:image/png;base64" in html and "Kendall" in html


def test_train_arch_rejects_a_bad_architecture(capsys):
    assert main(["train-arch", "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "--epochs", "1"]) == 2
    assert "unknown op 'conv'" in capsys.readouterr().err


def test_pinas_run_trains_without_labels_and_ranks_with_a_probe(pipeline, tmp_path, capsys):
    """Pi-NAS through the command line: train, then rank with the default probe (kNN) and with --probe linear."""
    _, table = pipeline
    cfg = tmp_path / "pinas.yaml"
    cfg.write_text(yaml.safe_dump({"device": "cpu", "threads": 1, "data": {"name": "digits"},
                                   "model": {"C": 4, "N": 1}, "train": {"epochs": 1, "batch_size": 128,
                                   "sampler": "pair", "objective": "pinas"}, "pinas": {"queue_size": 256},
                                   "run": {"progress": "none"}}))
    run = tmp_path / "run"
    assert main(["train", str(cfg), "--run-dir", str(run)]) == 0
    assert main(["rank", str(run), "--table", str(table), "--metric", "cifar10/test", "--subset", "6", "--probe-images", "300",
                 "--progress", "none"]) == 0
    rep = json.loads((run / "rank.json").read_text())
    assert rep["protocol"]["probe"] == "knn" and rep["protocol"]["probe_images"] == 300
    assert main(["rank", str(run), "--table", str(table), "--metric", "cifar10/test", "--subset", "6", "--probe", "linear",
                 "--probe-images", "300", "--progress", "none"]) == 0
    assert json.loads((run / "rank.json").read_text())["protocol"]["probe"] == "linear"
    # the two probes' rankings are kept side by side, neither overwrites the other
    assert json.loads((run / "rank-n6-knn-cifar10_test.json").read_text())["protocol"]["probe"] == "knn"
    assert json.loads((run / "rank-n6-linear-cifar10_test.json").read_text())["protocol"]["probe"] == "linear"
    assert not (run / "rank-n6-cifar10_test.json").exists()
    scores = [float(line.split(",")[1]) for line in (run / "rank.csv").read_text().splitlines()[1:]]
    assert len(scores) == 6 and all(0 <= s <= 100 for s in scores) and len(set(scores)) > 1
