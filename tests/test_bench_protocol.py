"""benchmarks/protocol_compare.py (issue 18 item 2) and the budget curve's points: the rows' schedules and path
updates, seed 0 first, runs shared with the curve, and every point a config nshot accepts (no training here)."""
from __future__ import annotations

import pytest

from benchmarks import budget_curve, protocol_compare as pc
from benchmarks.common import REPO
from nshot.config import load_config


def test_rows_state_their_schedules_and_path_updates():
    pts = {p.name: p for p in pc.points(60)}
    assert len(pts) == len(pc.points(60))                                    # names are unique
    assert pc.fsnas_paper(60) == 40 and pc.gmnas_paper(60) == (13, 27) and pc.gmnas_paper(90) == (20, 40)
    assert pts["spos-e60-s1"].updates == 60 and pts["spos_calr_ms-e60-s2"].updates == 60
    assert pts["fairnas-e12-s2"].updates == 60 and pts["fairnas-e60-s0"].updates == 300
    assert "fairnas-e60-s1" not in pts and "pinas-e60-s2" not in pts          # equal epochs: seed 0 only
    assert pts["pinas-e30-s1"].updates == 60 and pts["pinas-e60-s0"].updates == 120
    assert pts["fsnas-paper-e60-s0"].updates == 40 + 5 * 20                 # warm-up, then 5 sub-supernets
    assert "fewshot.split_epochs=[40]" in pts["fsnas-paper-e60-s0"].args
    assert "fewshot.inherit=true" in pts["fsnas_calr_ms-paper-e60-s2"].args
    assert pts["gmnas-paper-e60-s0"].updates == 13 + 2 * 14 + 4 * 33
    ablation = pts["gmnas-norestart-paper-e60-s0"]                           # the same schedule, no restart
    assert ablation.updates == pts["gmnas-paper-e60-s0"].updates and "gmnas-norestart-paper-e60-s2" in pts
    assert ablation.args == pts["gmnas-paper-e60-s0"].args + ("fewshot.restart_final=false",)
    assert pc.gmnas_equal(60) == (21, 5, 9) and pc.gm_updates(21, 5, 9) == 61   # the paper's proportions, ~E
    assert "fewshot.split_epochs=[5,9]" in pts["gmnas_calr_ms-equal-e21-s1"].args
    assert pts["gmnas_calr_ms-equal-e21-s1"].updates == 61
    for p in pts.values():                                                  # every equal-budget row spends E
        if p.name.startswith(("fairnas-e12", "pinas-e30", "fsnas-equal")):
            assert p.updates == 60, p.name
        if "gmnas" in p.name and "-equal" in p.name:
            assert abs(p.updates - 60) <= 2, p.name


def test_seed_zero_of_every_row_runs_first_and_curve_runs_are_shared():
    order = pc.points(60)
    seeds = [p.seed for p in order]
    assert seeds == sorted(seeds)
    assert sum(1 for s in seeds if s == 0) == len(pc.rows(60))
    curve = {p.name for p in budget_curve.POINTS}
    assert {"spos-e60-s0", "spos-e60-s1", "spos-e60-s2", "spos_calr_ms-e60-s1"} <= curve & {p.name for p in order}
    assert budget_curve.Point("spos", 60, 2).group == "spos-e60" and pc.points(60)[0].group == "spos-e60"


@pytest.mark.parametrize("epochs", [60, 120])
def test_every_point_is_a_valid_config(epochs):
    """The overrides rank_cifar10 would pass (recipe, epochs, shape, seed, --extra) validate: split epochs inside
    the run, inheritance where asked."""
    for p in pc.points(epochs):
        extra = list(p.args[p.args.index("--extra") + 1:]) if "--extra" in p.args else []
        cfg = load_config(REPO / f"configs/nb201/{p.recipe}.yaml",
                          [f"train.epochs={p.epochs}", f"model.C={p.C}", f"model.N={p.N}", f"seed={p.seed}", *extra])
        assert cfg.train.epochs == p.epochs
        if "-paper" in p.name:
            assert max(cfg.fewshot.split_epochs) < p.epochs and cfg.fewshot.inherit
            if p.recipe.startswith("gmnas"):                                # GM-NAS restarts its last children
                assert cfg.fewshot.restart_final == ("norestart" not in p.name)


def test_bad_budgets_and_names_are_refused(capsys):
    with pytest.raises(ValueError, match="must be a multiple of 10"):
        pc.rows(45)
    with pytest.raises(SystemExit, match="unknown point"):
        pc.main(["--epochs", "60", "--list", "--only", "spos-e61-s0"])
    with pytest.raises(SystemExit, match="multiple of 10"):
        pc.main(["--epochs", "45", "--list"])
    pc.main(["--epochs", "60", "--list", "--only", "gmnas-paper-e60-s0", "spos-e60-s0"])
    out = capsys.readouterr().out.splitlines()
    assert out[2].startswith("| gmnas-paper-e60-s0 | 60 | 173 | --extra fewshot.split_epochs=[13,27]")
    assert out[3] == "| spos-e60-s0 | 60 | 60 | – |"


def _fake_run(run, final, probe="classifier", tau=0.5):
    """A finished point's files as rank_cifar10 and rank_sample leave them (no training)."""
    import json
    run.mkdir(parents=True)
    (run / "bench_rank.json").write_text(json.dumps({
        "final_train_metrics": final, "train_seconds": 600, "rank_seconds": 60,
        "protocol": {"bn_mode": "batch", "probe": probe}}))
    knn = "-knn" if probe == "knn" else ""
    for tag, t in ((f"kendall_subset_327{knn}", tau), (f"n1000{knn}", tau - 0.1)):
        (run / f"rank-{tag}.json").write_text(json.dumps({"kendall_tau": t, "spearman_rho": t + 0.2, "top1_truth": 90 + t,
                                                         "fairness": [{"mean_error": 0.1}, {"mean_error": -0.1}]}))
        (run / f"rank-{tag}.csv").write_text("arch,score\na,1.0\nb,1.0\nc,2.0\n")


def test_summary_reads_few_shot_and_probe_runs(tmp_path, capsys):
    """A few-shot run's per-leaf training records are averaged, a kNN-probed run's rankings are found under
    their ``-knn`` names, and the comparison writes its own summary beside the curve's."""
    import json
    _fake_run(tmp_path / "spos-e60-s0", {"acc": 60.0, "loss": 1.0, "step": 100})
    _fake_run(tmp_path / "fsnas-equal-e12-s0", {"1": {"acc": 50.0, "loss": 1.2, "step": 10},
                                                "2": {"acc": 70.0, "loss": 0.8, "step": 12}}, tau=0.3)
    _fake_run(tmp_path / "pinas-e30-s0", {"acc": 40.0, "loss": 5.0, "step": 50}, probe="knn", tau=0.2)
    pc.main(["--epochs", "60", "--summary", "--out", str(tmp_path)])
    got = json.loads((tmp_path / "protocol-e60.json").read_text())
    assert not (tmp_path / "summary.json").exists()
    fs = got["points"]["fsnas-equal-e12-s0"]
    assert fs["train_acc_last"] == 60.0 and fs["steps"] == 12 and fs["tau_327"] == 0.3 and fs["path_updates"] == 60
    pin = got["points"]["pinas-e30-s0"]
    assert pin["tau_327"] == 0.2 and pin["tau_sample"] == pytest.approx(0.1) and pin["ties_327"] == 2
    assert got["points"]["gmnas-paper-e60-s0"] is None
    out = capsys.readouterr().out
    assert "| pinas-e30-s0 | 60 | 0.200 |" in out
    assert "| pinas-e30 | 1 | 0.200 ± – | 0.100 ± – | 90.20 | 40.0 | 10 |" in out   # the by-recipe row, top-1 mean
    assert got["groups"]["fsnas-equal-e12"]["top1_327_mean"] == pytest.approx(90.3)


def test_leaf_calibration_splits_a_few_shot_ranking_into_within_and_between_leaves(tmp_path):
    """benchmarks.leaf_calibration: cells routed to their leaf, within-leaf taus, their cell-weighted mean and
    the tau of the leaves' levels, exactly; a run that is not few-shot is refused."""
    import json

    from scipy.stats import kendalltau

    from benchmarks.leaf_calibration import leaf_calibration
    from nshot import spaces
    from nshot.run.rundir import RunDir
    from nshot.train.partition import PartitionTree

    sp = spaces.get("nb201")
    tree = PartitionTree(sp)
    tree.split(0, 0, [[0, 1], [2, 3, 4]])                          # leaves 1 (edge 0 in none/skip) and 2
    run = tmp_path / "fs"
    rd = RunDir(run)
    run.mkdir()
    rd.fewshot.write_text(json.dumps({"tree": tree.to_dict()}))
    cells = {"|none~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|nor_conv_3x3~2|": (50.0, 80.0),
             "|skip_connect~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|nor_conv_3x3~2|": (52.0, 79.0),
             "|skip_connect~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|nor_conv_3x3~2|": (54.0, 85.0),
             "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|nor_conv_3x3~2|": (40.0, 90.0),
             "|nor_conv_1x1~0|+|none~0|none~1|+|none~0|none~1|nor_conv_3x3~2|": (42.0, 88.0),
             "|avg_pool_3x3~0|+|none~0|none~1|+|none~0|none~1|nor_conv_3x3~2|": (41.0, 70.0)}
    rd.rank("csv", "t").write_text("arch,score,truth\n" + "".join(f"{a},{s},{t}\n" for a, (s, t) in cells.items()))
    rd.node(2).path.mkdir(parents=True)
    rd.node(2).metrics.write_text('{"step": 1, "loss": 2.0}\n{"epoch": 1, "acc": 40.5, "loss": 1.5}\n')
    got = leaf_calibration(run, "t")
    s, t = zip(*cells.values())
    assert got["cells"] == 6 and got["tau"] == pytest.approx(kendalltau(s, t)[0])
    one, two = got["leaves"]
    assert (one["leaf"], one["cells"], two["leaf"], two["cells"]) == (1, 3, 2, 3)
    assert one["tau"] == pytest.approx(kendalltau(s[:3], t[:3])[0]) and two["tau"] == pytest.approx(-1 / 3)
    assert got["within_leaf_tau"] == pytest.approx((3 * one["tau"] + 3 * two["tau"]) / 6)
    assert (one["mean_score"], two["mean_score"]) == (52.0, 41.0) and two["mean_truth"] == pytest.approx(248 / 3)
    assert got["leaf_level_tau"] == pytest.approx(-1.0)            # the better leaf scores lower
    assert one["train_acc"] is None and two["train_acc"] == 40.5
    with pytest.raises(SystemExit, match="not a few-shot run"):
        leaf_calibration(tmp_path, "t")


def test_calr_schedule_shares_match_the_policy_and_reduce_to_one_for_a_linear_schedule():
    """benchmarks.calr_schedule: every share (whole run, before and after the split, one op of the split edge)
    and the mean gamma equal CaLR's own per-call values averaged over the cells concerned; with gamma_max = 1
    (every path linear) the whole-run share of cosine is exactly 1; the per-op shares of a split edge (equal cell
    counts) average to the overall post-split share; bad input is refused."""
    import math
    from benchmarks.calr_schedule import calr_schedule
    from nshot import spaces
    from nshot.train.complexity import get_complexity
    from nshot.train.lr import CaLR
    r = calr_schedule(8, 1, split=40, epochs=60, points=3, by_edge=3)
    space = spaces.get("nb201")
    policy = CaLR(0.025, 0.0, get_complexity(space, "params", C=8, N=1), 4.0)
    archs = list(space.enumerate())
    T = 3_000_000

    def share(lo, hi, cells):
        ts = [lo + (hi - lo) * (i + 0.5) / 3 for i in range(3)]
        calr = sum(policy(round(t * T), T, a) for t in ts for a in cells) / (len(ts) * len(cells))
        return calr / (sum(0.025 * 0.5 * (1 + math.cos(math.pi * t)) for t in ts) / len(ts))

    assert r["mean_gamma"] == pytest.approx(sum(policy.gamma(a) for a in archs) / len(archs), rel=1e-12)
    assert r["share_run"] == pytest.approx(share(0, 1, archs), rel=1e-5)
    assert r["share_before_split"] == pytest.approx(share(0, 2 / 3, archs), rel=1e-5)
    assert r["share_after_split"] == pytest.approx(share(2 / 3, 1, archs), rel=1e-5)
    pooled = [a for a in archs if space.decode(a)[3] == space.ops.index("avg_pool_3x3")]   # edge 3 fixed to pool
    assert r["share_after_split_by_op"]["avg_pool_3x3"] == pytest.approx(share(2 / 3, 1, pooled), rel=1e-5)
    assert sum(r["share_after_split_by_op"].values()) / 5 == pytest.approx(r["share_after_split"], rel=1e-12)
    assert calr_schedule(8, 1, split=40, epochs=60, gamma_max=1.0, points=10)["share_run"] == pytest.approx(1, abs=1e-12)
    for bad, match in [(dict(split=60), "strictly inside"), (dict(points=0), "at least 1"),
                       (dict(gamma_max=float("nan")), "finite"), (dict(by_edge=6), "not an NB201 edge")]:
        with pytest.raises(ValueError, match=match):
            calr_schedule(8, 1, **{"split": 40, "epochs": 60, **bad})
