"""Every recipe on the MobileNet-style spaces: tiny runs, resume, fair sampling with unequal decision sizes, MS
groups, few-shot splits, and `nshot rank` / `nshot search` on macro and proxyless runs."""
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from nshot import spaces
from nshot.cli import main
from nshot.config import load_config
from nshot.score import Scorer, load_run
from nshot.train import Trainer
from nshot.train.fewshot import FewShotRun
from nshot.train.partition import mask_contains
from nshot.train.sampler import FairSampler
from tests.helpers import optim_equal, states_equal

REPO = Path(__file__).resolve().parents[1]
RECIPES = ["spos", "spos_calr_ms", "fairnas", "fairnas_calr_ms", "fsnas", "gmnas", "pinas"]
COMMON = ["device=cpu", "train.batch_size=32", "data.crop_padding=1", "run.progress=none", "train.epochs=2",
          "train.checkpoint_every_steps=2"]
SPACE_OPTS = {
    "macro": ["model.stem_width=4", "model.widths=[4,8,8]", "model.head_width=16"],
    "proxyless": ["space.name=proxyless", "model.stem=cifar", "model.stem_width=4", "model.widths=[4,8]",
                  "model.depths=[2,2]", "model.strides=[1,2]", "model.head_width=16", "model.resolution=8"],
}
RECIPE_OPTS = {"fsnas": ["train.epochs=1"], "gmnas": ["fewshot.split_epochs=[1]", "fewshot.gm_batches=2"],
               "pinas": ["pinas.queue_size=64", "pinas.dim=8"]}


def _cfg(space: str, recipe: str, *extra: str):
    # configs/macro/<recipe>.yaml hold only method settings, so the proxyless runs reuse them with its options
    return load_config(REPO / f"configs/macro/{recipe}.yaml",
                       COMMON + SPACE_OPTS[space] + RECIPE_OPTS.get(recipe, []) + list(extra))


@pytest.mark.parametrize("space", ["macro", "proxyless"])
@pytest.mark.parametrize("recipe", RECIPES)
def test_every_recipe_trains_and_scores(tmp_path, tiny_data, space, recipe):
    cfg = _cfg(space, recipe)
    sp = spaces.for_config(cfg)
    if cfg.fewshot.method != "none":
        run = FewShotRun.create(cfg, tmp_path / "r", data=tiny_data)
        run.fit()
        assert run.done
        leaves = run.tree.leaves()
        if recipe == "fsnas":                                 # one sub-supernet per choice of layer 0
            assert sorted(l.mask[0] for l in leaves) == [(c,) for c in range(sp.sizes[0])]
        else:                                                 # one 2-way gradient-matching split
            node = run.tree.nodes[0]
            assert len(leaves) == 2 and sorted(len(l.mask[node.split_decision]) for l in leaves) == \
                [sp.sizes[node.split_decision] // 2, (sp.sizes[node.split_decision] + 1) // 2]
        for leaf in leaves:
            tr = Trainer.resume(run.node_dir(leaf.id), data=tiny_data, fewshot_node=True)
            assert tr.done and all(mask_contains(leaf.mask, sp.decode(a)) for t in range(4) for a in tr.step_plan(t)[0])
    else:
        tr = Trainer.create(cfg, tmp_path / "r", data=tiny_data)
        tr.fit()
        assert tr.done and all(np.isfinite(r["loss"]) for r in tr.metrics.read())
        archs, group = tr.step_plan(0)
        assert len(archs) == {"fair": max(sp.sizes), "pair": 2}.get(cfg.train.sampler, 1)
        if cfg.train.sampler == "pair":                       # Pi-NAS: the two paths differ at every layer
            assert all(x != y for x, y in zip(*(sp.decode(a) for a in archs)))
        if cfg.train.optimizer == "ms_sgd":
            assert tr.grouping.num_groups == sp.sizes[tr.grouping.edge] == tr.optimizer.num_groups
            assert {sp.decode(a)[tr.grouping.edge] for a in archs} == {group}
    loaded = load_run(tmp_path / "r", data=tiny_data)
    archs = [sp.sample(i) for i in range(3)]
    scores = Scorer(loaded.model, tiny_data[1], progress="none").score_many(archs)
    assert all(0 <= s <= 100 for s in scores)


@pytest.mark.parametrize("space, recipe", [("macro", "spos_calr_ms"), ("proxyless", "fairnas_calr_ms")])
def test_resume_equals_uninterrupted(tmp_path, tiny_data, space, recipe):
    cfg = _cfg(space, recipe)
    full = Trainer.create(cfg, tmp_path / "full", data=tiny_data)
    full.fit()
    part = Trainer.create(cfg, tmp_path / "part", data=tiny_data)
    part.fit(max_steps=4)                    # 3 steps per epoch: stops in epoch 2, after its step-4 checkpoint
    resumed = Trainer.resume(tmp_path / "part", data=tiny_data)
    assert resumed.step == 4
    resumed.fit()
    states_equal(full.model.state_dict(), resumed.model.state_dict())
    optim_equal(full.optimizer.state_dict(), resumed.optimizer.state_dict())
    strip = lambda recs: [{k: v for k, v in r.items() if k not in ("seconds", "images_per_s")} for r in recs]
    assert strip(full.metrics.read()) == strip(resumed.metrics.read())


def test_fair_sampler_with_unequal_decision_sizes():
    sp = spaces.get("proxyless", stem="cifar", widths=[4, 8], depths=[2, 3], strides=[1, 2])   # sizes 6 7 6 7 7
    rule = lambda counts, n, m: set(counts.values()) <= {m // n, -(-m // n)} and len(counts) == n
    fair = FairSampler(sp)
    for t in range(20):
        paths = fair.paths(np.random.default_rng(t))
        assert fair.m == len(paths) == 7
        cols = list(zip(*(sp.decode(a) for a in paths)))
        for d, col in enumerate(cols):
            counts = Counter(col)
            assert rule(counts, sp.sizes[d], 7), (d, counts)                 # every choice, as evenly as possible
            if sp.sizes[d] == 7:
                assert sorted(col) == list(range(7))                         # exactly once
    mask = [(0,), (1, 6), (0, 2, 4), tuple(range(7)), (3, 5)]              # a few-shot sub-supernet
    masked = FairSampler(sp, mask=mask)
    for t in range(10):
        cols = list(zip(*(sp.decode(a) for a in masked.paths(np.random.default_rng(t), forced={3: 2}))))
        assert set(cols[3]) == {2}                                           # forced (MS layer) for all paths
        for d in (0, 1, 2, 4):
            counts = Counter(cols[d])
            assert set(counts) == set(mask[d]) and rule(counts, len(mask[d]), 7), (d, counts)


def test_gradient_matching_leaves_out_the_candidate_layer(tiny_data):
    from nshot.nn import build_supernet
    from nshot.train.gradmatch import decision_param_names, gm_distances
    from nshot.train.partition import full_mask
    torch.manual_seed(0)
    sp = spaces.get("macro")
    net = build_supernet("macro", stem_width=4, widths=[4, 8, 8], head_width=16, num_classes=4)
    names = decision_param_names(net, 2)
    assert names and all(n.startswith("layers.2.") for n in names)
    x = tiny_data[0].x[:16].float() / 255
    d = gm_distances(net, sp, full_mask(sp), 2, [(x, tiny_data[0].y[:16])], np.random.default_rng(0))
    assert d.shape == (3, 3) and np.allclose(d, d.T) and np.all(np.diag(d) == 0)
    assert np.all(d[~np.eye(3, dtype=bool)] > 0)                          # the three blocks' gradients differ


def _digits_run(tmp_path, space_opts: dict) -> Path:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"device": "cpu", "data": {"name": "digits", "crop_padding": 1, "flip": False,
                                                             "train_subset": 256, "eval_subset": 128},
                                   "train": {"epochs": 1, "batch_size": 128}, "run": {"progress": "none"},
                                   **space_opts}))
    run = tmp_path / "run"
    assert main(["train", str(cfg), "--run-dir", str(run)]) == 0
    return run


def test_rank_a_macro_run_against_the_macro_table_by_default(tmp_path, capsys):
    run = _digits_run(tmp_path, {"space": {"name": "macro"},
                                 "model": {"stem_width": 4, "widths": [4, 8, 8], "head_width": 16}})
    sp = spaces.get("macro")
    rng = np.random.default_rng(0)
    archs = sorted({sp.sample(rng) for _ in range(40)})
    table = {a: {"test_acc": [60.0 + i % 30] * 3, "mean_acc": 60.0 + i % 30, "std": 0.0, "params": sp.num_params(a),
                 "flops": sp.flops(a)} for i, a in enumerate(archs)}
    (tmp_path / "macro.json").write_text(json.dumps(table))
    assert main(["rank", str(run), "--table", str(tmp_path / "macro.json"), "--metric", "mean_acc", "--eval-images", "64",
                 "--progress", "none"]) == 0
    out = capsys.readouterr().out
    assert "benchmark macro metric mean_acc" in out
    report = json.loads((run / "rank.json").read_text())
    assert report["protocol"]["benchmark"] == "macro" and report["protocol"]["n"] == len(archs)
    rows = (run / "rank.csv").read_text().splitlines()[1:]
    assert {r.split(",")[0] for r in rows} == set(archs)
    assert all(int(r.split(",")[3]) == sp.num_params(r.split(",")[0]) for r in rows)   # benchmark-network params
    assert main(["rank", str(run), "--benchmark", "nb201", "--table", str(tmp_path / "nope.csv")]) == 2


@pytest.mark.parametrize("space", ["macro", "proxyless"])
def test_search_evolution_under_a_constraint(tmp_path, capsys, space):
    opts = ({"space": {"name": "macro"}, "model": {"stem_width": 4, "widths": [4, 8, 8], "head_width": 16}}
            if space == "macro" else
            {"space": {"name": "proxyless"}, "model": {"stem": "cifar", "stem_width": 4, "widths": [4, 8],
                                                       "depths": [2, 2], "strides": [1, 2], "head_width": 16}})
    run = _digits_run(tmp_path, opts)
    sp = spaces.for_config(load_config(run / "config.yaml"))
    values = sorted(sp.num_params(sp.sample(i)) for i in range(200))
    limit = values[len(values) // 3]                          # a limit a third of the space satisfies
    flag = "--max-params" if space == "macro" else "--max-flops"
    if space == "proxyless":
        limit = sorted(sp.flops(sp.sample(i)) for i in range(200))[len(values) // 3]
    assert main(["search", str(run), "--strategy", "evolution", "--population", "8", "--generations", "2",
                 "--parents", "3", "--mutants", "4", "--crossovers", "4", "--top-k", "5", flag, str(limit),
                 "--eval-images", "32", "--progress", "none"]) == 0
    out = json.loads((run / "search.json").read_text())
    assert out["best"] and out["protocol"]["constraint"]
    for row in out["best"]:
        sp.parse(row["arch"])
        assert (row["params"] if space == "macro" else row["flops"]) <= limit
    if space == "proxyless":                                  # no ground-truth table for this space
        capsys.readouterr()
        assert main(["rank", str(run)]) == 2 and "has no ground-truth benchmark" in capsys.readouterr().err
    # the searched architecture trains stand-alone as the run's own network (issue 22: not the benchmark's size)
    assert main(["train-arch", str(run), "--epochs", "1", "--run-dir", str(tmp_path / "arch")]) == 0
    result = json.loads((tmp_path / "arch" / "result.json").read_text())
    assert result["arch"] == out["best"][0]["arch"] and 0 <= result["accuracy"] <= 100
    shape = spaces.shape_from_config(load_config(run / "config.yaml"))
    assert result["model"] == json.loads(json.dumps(shape)) and "C" not in result["protocol"]   # (JSON: lists)
    assert result["params"] == sp.num_params(result["arch"], **shape, num_classes=10, in_channels=1)  # digits: grey
    assert out["best"][0]["params"] == result["params"]       # search reports the same size


def test_proxylessnas_gm_two_then_three_way_splits(tmp_path, tiny_data):
    """ProxylessNAS-GM's schedule on the proxyless space: a 2-way split, then each child 3 ways on another layer
    (balanced groups of its choices); 6 leaves covering the space exactly."""
    cfg = _cfg("proxyless", "gmnas", "fewshot.split_epochs=[1,2]", "fewshot.gm_groups=[2,3]", "train.epochs=3",
               "fewshot.gm_batches=1")
    sp = spaces.for_config(cfg)
    run = FewShotRun.create(cfg, tmp_path / "r", data=tiny_data)
    run.fit()
    root = run.tree.nodes[0]
    assert run.done and len(run.tree.leaves()) == 6
    def balanced(n: int, k: int) -> list[int]:
        return sorted([n // k + 1] * (n % k) + [n // k] * (k - n % k))
    d = root.split_decision
    assert sorted(len(run.tree.nodes[c].mask[d]) for c in root.children) == balanced(sp.sizes[d], 2)
    for c in root.children:
        child = run.tree.nodes[c]
        e = child.split_decision
        assert e != d and child.info["ways"] == 3 and sp.sizes[e] >= 3
        assert sorted(len(run.tree.nodes[g].mask[e]) for g in child.children) == balanced(sp.sizes[e], 3)
        # only layers with at least 3 allowed choices were candidates; the children are the chosen one's groups
        assert all(len(child.mask[int(x)]) >= 3 for x in child.info["candidates"])
        assert sorted(list(run.tree.nodes[g].mask[e]) for g in child.children) == \
            sorted(sorted(x) for x in child.info["candidates"][str(e)]["groups"])
    rs = np.random.default_rng(0)
    for _ in range(200):
        arch = sp.sample(rs)
        assert sum(mask_contains(leaf.mask, sp.decode(arch)) for leaf in run.tree.leaves()) == 1
