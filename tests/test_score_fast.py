"""Scoring at scale: exact and isomorphism dedup, grouped batches, precision key, sharding and merging."""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from nshot import spaces
from nshot.nn import nb201_supernet
from nshot.score import (ScoreCache, ScoreProtocol, Scorer, count_functions, dist_env, evaluate_arch,
                         exact_representative, shard)
from nshot.score.bn import batch_stats_mode, grouped_batch_stats
from nshot.spaces import nb201 as nb

SP = spaces.get("nb201")
ROOT = Path(__file__).resolve().parents[1]

# Cells that differ only on non-live edges, each with its exact representative (non-live edges -> none):
# edge 0 dead because node 1 reaches nothing; edge 5 dead because node 2 is never computed; disconnected cells.
DEAD_PAIRS = [
    ("|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|",
     "|none~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"),
    ("|avg_pool_3x3~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|nor_conv_1x1~2|",
     "|none~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|"),
    ("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|none~1|none~2|",
     "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"),
]


@pytest.fixture
def net():
    torch.manual_seed(0)
    return nb201_supernet(C=4, N=1, num_classes=4)


def archs_seen(model: torch.nn.Module) -> list[str]:
    """Record the architecture of every forward call of ``model`` (a list that fills as it runs)."""
    seen: list[str] = []
    model.register_forward_pre_hook(lambda m, args: seen.append(args[1]))
    return seen


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------------------------------ exact dedup
def test_exact_representative_keeps_live_edges_and_their_ops_for_every_cell():
    for arch in SP.enumerate():
        rep = exact_representative(arch)
        ops, rops = SP.decode(arch), SP.decode(rep)
        live = SP.live_edges(arch)
        assert SP.live_edges(rep) == live
        assert all(rops[e] == (ops[e] if live[e] else 0) for e in range(6))
    for a, rep in DEAD_PAIRS:
        assert exact_representative(a) == rep and exact_representative(rep) == rep


def test_dead_edge_equivalent_cells_get_bit_identical_outputs_and_scores(net, tiny_data):
    train, evald = tiny_data
    x = (evald.x[:32].float() / 255 - 0.5) / 0.25
    with torch.no_grad(), batch_stats_mode(net):
        for a, b in DEAD_PAIRS:
            assert torch.equal(net(x, a), net(x, b))
    archs = [c for pair in DEAD_PAIRS for c in pair]
    for proto in (ScoreProtocol(eval_batch_size=32, dedup="none"),
                  ScoreProtocol(bn_mode="recal", recal_batches=2, recal_batch_size=32, eval_batch_size=32,
                                dedup="none")):
        s = Scorer(net, evald, proto, train_data=train, progress="none").score_many(archs)
        assert s[0::2] == s[1::2]


def test_exact_dedup_evaluates_each_function_once_and_records_the_mapping(tmp_path, net, tiny_data):
    _, evald = tiny_data
    archs = [c for pair in DEAD_PAIRS for c in pair] + [SP.sample(i) for i in range(4)]
    reps = list(dict.fromkeys(exact_representative(a) for a in archs))
    plain = Scorer(net, evald, ScoreProtocol(eval_batch_size=32, dedup="none"), progress="none").score_many(archs)
    seen = archs_seen(net)
    cache = tmp_path / "scores.csv"
    fast = Scorer(net, evald, ScoreProtocol(eval_batch_size=32), cache_path=cache, progress="none")
    assert fast.evaluations_needed(archs) == len(reps) < len(archs)
    assert fast.score_many(archs) == plain
    batches = 2    # 64 images / 32
    assert fast.forward_passes == len(reps) and sorted(seen) == sorted(reps * batches)
    rows = read_rows(cache)
    assert sorted(r["arch"] for r in rows) == sorted(archs) and all(r["equivalence"] == "exact" for r in rows)
    assert all(r["representative"] == exact_representative(r["arch"]) for r in rows)
    # an equivalent cell never scored before is served from the cache without a forward pass
    other = "|skip_connect~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"
    again = Scorer(net, evald, ScoreProtocol(eval_batch_size=32), cache_path=cache, progress="none")
    assert again.score(other) == plain[0] and again.forward_passes == 0


def test_exact_dedup_never_shares_across_few_shot_sub_supernets(tiny_data):
    from nshot.score import Deduper
    from nshot.train.fewshot import PartitionedSupernet
    from nshot.train.partition import PartitionTree
    _, evald = tiny_data
    tree = PartitionTree(SP)
    tree.split(0, 0, [[0], [1, 2, 3, 4]])                      # edge 1<-0: none | the rest
    torch.manual_seed(0)
    leaves = {n.id: nb201_supernet(C=4, N=1, num_classes=4, candidates=n.mask) for n in tree.leaves()}
    net = PartitionedSupernet(tree, leaves)
    dead0 = [f"|{op}~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"
             for op in ("none", "skip_connect", "nor_conv_3x3", "avg_pool_3x3")]   # edge 1<-0 is dead in all
    d = Deduper("exact", net)
    assert [d.measured(a) for a in dead0] == [dead0[0]] + [dead0[1]] * 3   # the leaf's smallest op, not none
    plain = Scorer(net, evald, ScoreProtocol(eval_batch_size=32, dedup="none"), progress="none").score_many(dead0)
    fast = Scorer(net, evald, ScoreProtocol(eval_batch_size=32), progress="none")
    assert fast.score_many(dead0) == plain and fast.forward_passes == 2
    assert plain[1:] == [plain[1]] * 3


# -------------------------------------------------------------------------------------------- iso dedup
def test_iso_mode_scores_one_canonical_member_per_class_and_is_keyed_apart(tmp_path, net, tiny_data):
    _, evald = tiny_data
    # conv3x3(x) on the edge 3<-0 (the canonical member) and through node 1 (+ skip): isomorphic, other weights
    iso_pair = ["|none~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|",
                "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|"]
    assert SP.canonical(iso_pair[1]) == iso_pair[0]
    archs = list(dict.fromkeys(iso_pair + [c for pair in DEAD_PAIRS for c in pair] + [SP.sample(i) for i in range(3)]))
    classes = list(dict.fromkeys(SP.canonical(a) for a in archs))
    cache = tmp_path / "scores.csv"
    seen = archs_seen(net)
    iso = Scorer(net, evald, ScoreProtocol(eval_batch_size=32, dedup="iso"), cache_path=cache, progress="none")
    scores = iso.score_many(archs)
    assert iso.forward_passes == len(classes) and set(seen) == set(classes)
    plain = Scorer(net, evald, ScoreProtocol(eval_batch_size=32, dedup="none"), progress="none")
    assert scores == plain.score_many([SP.canonical(a) for a in archs])
    rows = read_rows(cache)
    iso_rows = [r for r in rows if r["equivalence"] == "iso"]
    assert sorted(r["arch"] for r in iso_rows) == sorted(archs)
    assert all(r["representative"] == SP.canonical(r["arch"]) for r in iso_rows)
    # the representatives' own measurements are stored as exact rows; nothing else is
    assert sorted(r["arch"] for r in rows if r["equivalence"] == "exact") == sorted(classes)
    # an exact scorer on the same cache reuses those measurements but never an approximated score
    seen.clear()
    exact = Scorer(net, evald, ScoreProtocol(eval_batch_size=32), cache_path=cache, progress="none")
    assert exact.score_many(iso_pair) == plain.score_many(iso_pair)
    assert exact.forward_passes == 1 and set(seen) == {iso_pair[1]}


def test_cache_keys_differ_by_dedup_mode_and_precision_only_where_numbers_differ():
    base = ScoreProtocol()
    assert ScoreProtocol(dedup="none").key() == base.key()           # same numbers, shared rows
    assert ScoreProtocol(dedup="iso").key() != base.key()
    assert ScoreProtocol(dedup="iso").measurement_key() == base.key()
    assert ScoreProtocol(precision="bf16").key() != base.key()
    with pytest.raises(ValueError, match="dedup mode 'x'"):
        Scorer(nb201_supernet(C=2, N=1), _tiny_eval(), ScoreProtocol(dedup="x"))


def _tiny_eval():
    from nshot.data import ImageData
    return ImageData(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), torch.zeros(4, dtype=torch.long), 10,
                     (0.5,) * 3, (0.25,) * 3, "t")


# ------------------------------------------------------------------------------------------ batching
def test_grouped_batches_give_the_scores_of_the_current_scorer(net, tiny_data):
    train, evald = tiny_data
    archs = [SP.sample(i) for i in range(5)] + [DEAD_PAIRS[0][0]]
    # 64 images in batches of 24: two full batches and a short one; the two full ones go as one forward pass
    ref = [evaluate_arch(net, evald, a, batch_size=24) for a in archs]
    fast = Scorer(net, evald, ScoreProtocol(eval_batch_size=24), batch_group=2, sync_every=4, progress="none")
    assert [len(y) for _, y in fast._batches] == [48, 16]
    assert fast.score_many(archs) == ref
    x = (evald.x[:48].float() / 255 - 0.5) / 0.25
    with torch.no_grad(), batch_stats_mode(net):
        per_batch = torch.cat([net(x[:24], archs[0]), net(x[24:], archs[0])])
        with grouped_batch_stats(net, 24):
            assert torch.equal(net(x, archs[0]), per_batch)
    assert all("forward" not in m.__dict__ for m in net.modules())      # unpatched afterwards
    # recal mode: running statistics make images independent, grouped batches change nothing
    proto = ScoreProtocol(bn_mode="recal", recal_batches=2, recal_batch_size=32, eval_batch_size=24)
    one = Scorer(net, evald, proto, train_data=train, progress="none").score_many(archs)
    grouped = Scorer(net, evald, proto, train_data=train, batch_group=3, sync_every=3, progress="none")
    assert grouped.score_many(archs) == one
    # channels_last (the default) scores as NCHW does and leaves the weights in the default layout
    cl = Scorer(net, evald, ScoreProtocol(eval_batch_size=24), progress="none")
    nchw = Scorer(net, evald, ScoreProtocol(eval_batch_size=24), channels_last=False, progress="none")
    assert cl.channels_last and not nchw.channels_last
    assert cl.score_many(archs[:2]) == nchw.score_many(archs[:2]) == ref[:2]
    assert all(p.is_contiguous() for p in net.parameters())


def test_bf16_is_opt_in_on_cpu_and_keyed_apart(tmp_path, net, tiny_data):
    _, evald = tiny_data
    cache = tmp_path / "scores.csv"
    auto = Scorer(net, evald, ScoreProtocol(eval_batch_size=32, precision="auto"), cache_path=cache, progress="none")
    assert auto.protocol.precision == "fp32"
    bf = Scorer(net, evald, ScoreProtocol(eval_batch_size=32, precision="bf16"), cache_path=cache, progress="none")
    s = bf.score(SP.sample(0))
    assert 0 <= s <= 100 and read_rows(cache)[0]["precision"] == "bf16"
    fp = Scorer(net, evald, ScoreProtocol(eval_batch_size=32), cache_path=cache, progress="none")
    fp.score(SP.sample(0))
    assert fp.forward_passes == 1


def test_cache_of_the_old_layout_is_read_and_migrated(tmp_path, net, tiny_data):
    _, evald = tiny_data
    a, b = SP.sample(0), SP.sample(1)
    cache = tmp_path / "scores.csv"
    cache.write_text("arch,score,bn_mode,recal_batches,eval_images,step,seed\n"
                     f"{a},12.5,batch,0,64,0,0\n{b},99.0,batch,0,64,7,0\n{SP.sample(2)},3")   # torn last line
    s = Scorer(net, evald, ScoreProtocol(eval_batch_size=32), cache_path=cache, progress="none")
    assert s.score(a) == 12.5 and s.forward_passes == 0
    s.score(SP.sample(3))
    rows = read_rows(cache)
    assert [r["arch"] for r in rows] == [a, b, SP.sample(3)] and rows[1]["step"] == "7"
    assert rows[0]["equivalence"] == "exact" and rows[0]["precision"] == "fp32" and rows[0]["representative"] == a


# ------------------------------------------------------------------------------------------ sharding
def test_shard_covers_every_item_once_and_is_balanced():
    rng = np.random.default_rng(0)
    for n in (0, 1, 2, 7, 64, 327, 1000):
        items = [f"a{i}" for i in range(n)]
        for world in (1, 2, 3, 4, 8, 13):
            for cost in (None, list(rng.uniform(1, 10, n))):
                parts = [shard(items, r, world, cost) for r in range(world)]
                flat = [a for p in parts for a in p]
                assert sorted(flat) == sorted(items) and len(flat) == n
                assert max(map(len, parts)) - min(map(len, parts)) <= 1
                assert all(p == sorted(p, key=items.index) for p in parts)       # original order
                assert parts == [shard(items, r, world, cost) for r in range(world)]
                if cost is not None and n >= 8 * world:
                    totals = [sum(cost[items.index(a)] for a in p) for p in parts]
                    assert max(totals) - min(totals) <= max(cost)
    for bad in ((0, 0), (2, 2), (-1, 2), (0, True)):
        with pytest.raises(ValueError):
            shard(["a"], *bad)


def test_dist_env():
    assert dist_env({}) == (0, 1)
    assert dist_env({"RANK": "1", "WORLD_SIZE": "2"}) == (1, 2)
    for env in ({"RANK": "2", "WORLD_SIZE": "2"}, {"RANK": "x", "WORLD_SIZE": "2"}):
        with pytest.raises(ValueError, match="RANK"):
            dist_env(env)


def test_merged_shards_equal_single_process_scores(tmp_path, net, tiny_data):
    _, evald = tiny_data
    archs = [SP.sample(i) for i in range(12)] + [c for pair in DEAD_PAIRS for c in pair]
    proto = ScoreProtocol(eval_batch_size=32)
    single_cache = tmp_path / "single" / "scores.csv"
    single_cache.parent.mkdir()
    single = Scorer(net, evald, proto, cache_path=single_cache, progress="none")
    expected = single.score_many(archs)
    cache = tmp_path / "scores.csv"
    ranks = [Scorer(net, evald, proto, cache_path=cache, progress="none", rank=r, world=2) for r in range(2)]
    shares = [s.my_share(archs) for s in ranks]
    assert sorted(shares[0] + shares[1]) == sorted(archs)
    assert sum(s.score_shard(archs) for s in ranks) == single.forward_passes
    assert not cache.exists() and len(ScoreCache(cache).parts()) == 2
    ranks[0].gather()
    assert ScoreCache(cache).parts() == [] and ranks[0].score_many(archs) == expected
    key = lambda r: tuple(sorted(r.items()))                                          # noqa: E731
    assert sorted(map(key, read_rows(cache))) == sorted(map(key, read_rows(single_cache)))


# ---------------------------------------------------------------------------------- counts and torchrun
def test_function_counts_over_the_whole_space():
    every = list(SP.enumerate())
    assert count_functions(every, "none") == 15625
    assert count_functions(every, "exact") == 9445
    assert count_functions(every, "iso") == 4930


def test_function_counts_of_the_327_subset(shared_data):
    text = (shared_data / "nb201" / "kendall_subset_327.txt").read_text()
    sub = [SP.parse(line.strip()) for line in text.splitlines() if line.strip()]
    assert (len(sub), count_functions(sub, "exact"), count_functions(sub, "iso")) == (327, 231, 180)


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_torchrun_two_ranks_write_what_one_process_writes(tmp_path):
    """`torchrun --nproc_per_node=2 -m nshot rank RUN`: ranks share the work, rank 0 merges and writes."""
    from nshot.cli import main
    rows = ["nb201_index,arch_str,c10_val_200ep,c10_test_200ep,c100_val_200ep,c100_test_200ep,in16_val_200ep,"
            "in16_test_200ep,params_c10,params_c100,params_in16"]
    rs = np.random.default_rng(0)
    for i in sorted(rs.choice(15625, 300, replace=False)):
        arch = nb.from_choice_index(int(i))
        acc = 40 + 8 * SP.decode(arch).count(3) + rs.normal()
        rows.append(",".join([str(i), arch] + [f"{acc:.3f}"] * 6 + ["100000"] * 3))
    table = tmp_path / "table.csv"
    table.write_text("\n".join(rows) + "\n")
    cfg = tmp_path / "digits.yaml"
    cfg.write_text(yaml.safe_dump({"device": "cpu", "threads": 1, "data": {"name": "digits", "crop_padding": 1,
                                   "flip": False}, "model": {"C": 4, "N": 1}, "train": {"epochs": 1, "batch_size": 128},
                                   "run": {"progress": "none"}}))
    one, two = tmp_path / "one", tmp_path / "two"
    from nshot.config import load_config
    from nshot.train import Trainer
    Trainer.create(load_config(cfg), one).save()        # a step-0 checkpoint: random weights score as well
    shutil.copytree(one, two)
    rank = ["rank", "--table", str(table), "--metric", "cifar10/test", "--subset", "40", "--progress", "none"]
    assert main([rank[0], str(one), *rank[1:]]) == 0          # (a digits run: the metric is named, issue 22)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "-m", "nshot", rank[0], str(two), *rank[1:]], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "rank 1/2: evaluated" in out.stdout and "wrote" in out.stdout
    assert (one / "rank.csv").read_text() == (two / "rank.csv").read_text()
    ra, rb = (yaml.safe_load((r / "rank.json").read_text()) for r in (one, two))
    ra["protocol"].pop("run_dir")
    rb["protocol"].pop("run_dir")
    assert ra == rb
    lines = [sorted((r / "scores.csv").read_text().splitlines()) for r in (one, two)]
    assert lines[0] == lines[1]
    assert not list(two.glob("scores.part-*"))
