"""benchmarks/differentiable_nb201.py: the equal-budget overrides per method, the parameter-free edge count and
the refusal to reuse a finished run made with other settings (no training here)."""
from __future__ import annotations

import json

import pytest

from benchmarks import differentiable_nb201 as bench


def _args(tmp_path, *extra: str):
    return bench.parser().parse_args(["--out", str(tmp_path), "--epochs", "6", "--train-images", "768",
                                      "--valid-images", "768", "--split-epoch", "3", *extra])


def test_every_method_gets_the_same_budget_and_only_its_own_extras(tmp_path):
    args = _args(tmp_path)
    shared = None
    for method in bench.METHODS:
        ov = bench.overrides(method, 1, args)
        common = [o for o in ov if not o.startswith(("fewshot.", "arch."))]
        assert shared is None or common == shared       # epochs, images, shape, batch, seed: equal for all
        shared = common
        assert ("fewshot.split_epochs=[3]" in ov) == method.startswith("gm_")
        assert any(o.startswith("arch.table=") for o in ov) == (method not in ("rsps", "gm_rsps"))
    assert {"train.epochs=6", "data.train_subset=768", "data.eval_subset=768", "model.C=8", "model.N=1",
            "seed=1", "threads=1"} <= set(shared)


def test_parameter_free_edges():
    assert bench.parameter_free_edges("|none~0|+|skip_connect~0|avg_pool_3x3~1|+|nor_conv_1x1~0|"
                                      "nor_conv_3x3~1|skip_connect~2|") == 4
    assert bench.parameter_free_edges("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|nor_conv_3x3~0|"
                                      "nor_conv_3x3~1|nor_conv_3x3~2|") == 0


def test_a_finished_run_with_other_settings_is_not_reused(tmp_path):
    run = tmp_path / "darts-s0"
    run.mkdir()
    other = {**bench._settings(_args(tmp_path)), "epochs": 4}
    (run / "bench.json").write_text(json.dumps({"settings": other, "truth": 90.0}))
    with pytest.raises(SystemExit, match="made with other settings"):
        bench.run_one("darts", 0, _args(tmp_path))
    same = {"settings": bench._settings(_args(tmp_path)), "truth": 90.0}
    (run / "bench.json").write_text(json.dumps(same))
    assert bench.run_one("darts", 0, _args(tmp_path)) == same
