"""DARTS CNN space: genotype text, decisions, derivation rule, exact counts of the evaluation network."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nshot import spaces
from nshot.nn import build_standalone, build_supernet
from nshot.spaces import darts

# DARTS_V1 / DARTS_V2 as in DARTS's cnn/genotypes.py (quark0/darts; DARTS_V1 is its "first order" cell).
DARTS_V1 = ("Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), ('sep_conv_3x3', 1), "
            "('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2)], "
            "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
            "('max_pool_3x3', 0), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
            "('avg_pool_3x3', 0)], reduce_concat=[2, 3, 4, 5])")
DARTS_V2 = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
            "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
            "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
            "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
            "('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])")
# P-DARTS's CIFAR cell as its genotypes.py writes it (range form, irregular spacing).
PDARTS = ("Genotype(normal=[('skip_connect', 0), ('dil_conv_3x3', 1), ('skip_connect', 0),('sep_conv_3x3', 1), "
          "('sep_conv_3x3', 1), ('sep_conv_3x3', 3), ('sep_conv_3x3',0), ('dil_conv_5x5', 4)], "
          "normal_concat=range(2, 6), reduce=[('avg_pool_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_3x3', 0), "
          "('dil_conv_5x5', 2), ('max_pool_3x3', 0), ('dil_conv_3x3', 1), ('dil_conv_3x3', 1), "
          "('dil_conv_5x5', 3)], reduce_concat=range(2, 6))")

SPACE = spaces.get("darts")


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_round_trip_is_identical_and_decisions_invert():
    for text in (DARTS_V1, DARTS_V2):
        assert SPACE.parse(text) == text                      # written back character for character
        assert SPACE.encode(SPACE.decode(text)) == text
    canon = SPACE.parse(PDARTS)
    assert "normal_concat=[2, 3, 4, 5]" in canon and "('sep_conv_3x3', 1), ('sep_conv_3x3', 1)" in canon
    assert SPACE.parse(canon) == canon
    g = darts.parse_genotype(PDARTS)
    assert g.normal[7] == ("dil_conv_5x5", 4) and g.reduce[0] == ("avg_pool_3x3", 0)
    assert SPACE.num_decisions == 16 and SPACE.sizes[:8] == (14, 14, 21, 21, 28, 28, 35, 35)
    rng = np.random.default_rng(0)
    for _ in range(50):
        a = SPACE.sample(rng)
        assert SPACE.parse(a) == a and SPACE.encode(SPACE.decode(a)) == a


@pytest.mark.parametrize("bad, msg", [
    (DARTS_V2.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 5)"), "reads node 5"),
    (DARTS_V2.replace("dil_conv_3x3", "conv_7x1_1x7"), "conv_7x1_1x7"),
    (DARTS_V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=[2, 3, 4, 5, 6]"), "normal_concat"),
    (DARTS_V2.replace(", ('dil_conv_3x3', 2)]", "]"), "needs 8"),
    (DARTS_V2.replace("('none", "('none").replace("('skip_connect', 0), ('skip_connect', 0)",
                                                   "('none', 0), ('skip_connect', 0)"), "'none'"),
    ("Genotype(normal=[])", "malformed"),
])
def test_bad_genotypes_are_refused_by_name(bad, msg):
    with pytest.raises(ValueError, match=msg):
        SPACE.parse(bad)
    with pytest.raises(TypeError):
        SPACE.parse(3)


def test_derivation_rule_on_hand_made_weights():
    w = np.full((14, 8), 0.01)
    w[:, 0] = 0.9                                  # `none` is strongest everywhere: it must never be kept
    e = darts.edge_index
    # node 2: both inputs kept; node 3: edges from 2 (sep5) and 0 (max) beat 1; node 4: edges 3, 1;
    # node 5: edges 4 (skip) and 0 (dil5) beat 1, 2, 3
    w[e(2, 0), 4], w[e(2, 1), 6] = 0.5, 0.4
    w[e(3, 0), 1], w[e(3, 1), 2], w[e(3, 2), 5] = 0.3, 0.2, 0.6
    w[e(4, 1), 7], w[e(4, 3), 3], w[e(4, 0), 4] = 0.35, 0.5, 0.1
    w[e(5, 4), 3], w[e(5, 0), 7], w[e(5, 1), 1], w[e(5, 3), 2] = 0.7, 0.6, 0.2, 0.3
    arch = darts.derive(w, w)
    g = darts.parse_genotype(arch)
    assert g.normal == (("sep_conv_3x3", 0), ("dil_conv_3x3", 1), ("max_pool_3x3", 0), ("sep_conv_5x5", 2),
                        ("dil_conv_5x5", 1), ("skip_connect", 3), ("dil_conv_5x5", 0), ("skip_connect", 4))
    assert g.reduce == g.normal
    with pytest.raises(ValueError, match="14, 8"):
        darts.derive(w[:6], w)


def _module_params(net: torch.nn.Module, aux: bool) -> int:
    return sum(p.numel() for n, p in net.named_parameters() if aux or not n.startswith("auxiliary"))


def test_published_parameter_counts():
    # DARTS (second order) cell: 3,349,342 -- DARTS's train log "param size = 3.349342MB" (its count leaves the
    # auxiliary head out; the paper's Table 1 rounds it to 3.3M). P-DARTS: 3,433,798 without / 3,910,224 with
    # the auxiliary head, as counted in chenxin061/pdarts issue #7 (paper: 3.4M).
    assert SPACE.num_params(DARTS_V2) == 3_349_342
    assert SPACE.num_params(PDARTS) == 3_433_798
    assert SPACE.num_params(PDARTS, auxiliary=True) == 3_910_224
    assert round(SPACE.num_params(DARTS_V1) / 1e6, 1) == 3.2    # the released first-order cell (paper: 3.3M)
    for arch in (DARTS_V2, PDARTS):
        net = build_standalone("darts", SPACE.parse(arch))
        assert _module_params(net, False) == SPACE.num_params(arch)
        assert _module_params(net, True) == SPACE.num_params(arch, auxiliary=True)


def _hook_macs(net: torch.nn.Module, x: torch.Tensor) -> int:
    total = 0

    def conv(m, inp, out):
        nonlocal total
        total += out.numel() // out.shape[0] * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def lin(m, inp, out):
        nonlocal total
        total += m.in_features * m.out_features

    hooks = [m.register_forward_hook(conv if isinstance(m, torch.nn.Conv2d) else lin)
             for n, m in net.named_modules()
             if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and not n.startswith("auxiliary")]
    net.eval()
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    return total


def test_flops_and_small_shapes_match_the_module():
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    for arch in [DARTS_V2, SPACE.sample(rng), SPACE.sample(rng)]:
        net = build_standalone("darts", arch, C=8, N=1, num_classes=7)
        assert _module_params(net, True) == SPACE.num_params(arch, C=8, N=1, num_classes=7, auxiliary=True)
        assert _hook_macs(net, torch.randn(1, 3, 32, 32)) == SPACE.flops(arch, C=8, N=1, num_classes=7)
    assert SPACE.flops(DARTS_V2) == 528_359_040      # C 36, 20 cells, 32x32 (convs + classifier)


def test_supernet_path_and_mixed_forward_agree_on_one_hot_weights():
    torch.manual_seed(0)
    net = build_supernet("darts", C=4, N=1)
    x = torch.randn(2, 3, 8, 8)
    arch = SPACE.parse(DARTS_V1)
    g = darts.parse_genotype(arch)
    w = torch.zeros(28, 8)
    for lo, pairs in ((0, g.normal), (14, g.reduce)):
        for k, (op, src) in enumerate(pairs):
            w[lo + darts.edge_index(2 + k // 2, src), darts.OPS.index(op)] = 1.0
    torch.testing.assert_close(net.forward_mixed(x, w), net(x, arch), rtol=1e-5, atol=1e-5)
    names = net.edge_param_names()
    assert set(names) == {n for n, _ in net.named_parameters() if ".edges." in n}
    assert {e for e, _ in names.values()} == set(range(28))


def test_single_path_training_with_ms_runs_on_the_darts_space(tmp_path):
    """SPOS + MS (grouped by one slot's choice) trains the DARTS supernet path by path; the params of ops that a
    step's genotype does not use get no gradient and stay unchanged."""
    from nshot.config import Config, from_dict
    from nshot.train.trainer import Trainer

    cfg = from_dict(Config, {"space": {"name": "darts"}, "model": {"C": 2, "N": 1}, "threads": 1, "device": "cpu",
                             "data": {"name": "digits", "train_subset": 32, "eval_subset": 32},
                             "train": {"epochs": 1, "batch_size": 16, "optimizer": "ms_sgd"},
                             "diagnostics": {"loss_by_quintile": False}}).validate()
    tr = Trainer.create(cfg, tmp_path / "run")
    before = {n: p.detach().clone() for n, p in tr.model.named_parameters()}
    arch = tr.plan(0).archs[0]
    tr.fit(max_steps=1)
    g = darts.parse_genotype(arch)
    used = {(0, darts.edge_index(2 + k // 2, src), op) for k, (op, src) in enumerate(g.normal)}
    used |= {(1, darts.edge_index(2 + k // 2, src), op) for k, (op, src) in enumerate(g.reduce)}
    changed_used = 0
    for name, p in tr.model.named_parameters():
        parts = name.split(".")
        if parts[0] == "cells" and parts[2] == "edges":
            key = (int(tr.model.cells[int(parts[1])].reduction), int(parts[3]), parts[4])
            changed = not torch.equal(p.detach(), before[name])
            if key not in used:
                assert not changed, name
            changed_used += changed
    assert tr.step == 1 and changed_used > 0


def test_calr_single_path_on_the_darts_space_uses_the_genotype_network_params(tmp_path):
    """SPOS + CaLR on the DARTS space: C(a) is the exact parameter count of the sampled genotype's stand-alone
    network (DARTS's 20 cells of 36 channels, whatever the search network's C, N), smaller genotypes get the larger
    gamma, and a step trains with the LR CaLR gives its path."""
    from nshot.config import Config, from_dict
    from nshot.train.trainer import Trainer

    cfg = from_dict(Config, {"space": {"name": "darts"}, "model": {"C": 2, "N": 1}, "threads": 1, "device": "cpu",
                             "data": {"name": "digits", "train_subset": 32, "eval_subset": 32},
                             "train": {"epochs": 2, "batch_size": 16, "lr_policy": "calr"},
                             "diagnostics": {"loss_by_quintile": False}}).validate()
    tr = Trainer.create(cfg, tmp_path / "run")
    small = "Genotype(normal=[" + ", ".join(f"('max_pool_3x3', {j})" for j in (0, 1, 0, 1, 0, 1, 0, 1)) + \
        "], normal_concat=[2, 3, 4, 5], reduce=[" + ", ".join(f"('max_pool_3x3', {j})" for j in (0, 1, 0, 1, 0, 1, 0, 1)) + \
        "], reduce_concat=[2, 3, 4, 5])"
    for arch in (small, DARTS_V2):
        assert tr.complexity(arch) == SPACE.num_params(arch, C=36, N=6, num_classes=10, in_channels=1)
    assert tr.complexity(DARTS_V2) != SPACE.num_params(DARTS_V2, C=2, N=1, num_classes=10, in_channels=1)
    assert tr.complexity(small) < tr.complexity(DARTS_V2)
    assert tr.lr_policy.gamma(small) > tr.lr_policy.gamma(DARTS_V2)
    plan = tr.plan(1)
    arch = plan.archs[0]
    assert plan.lr == tr.lr_policy(1, tr.total_steps, arch) < cfg.optim.lr
    assert plan.lr != tr.lr_policy(1, tr.total_steps, small if arch != small else DARTS_V2)   # its own schedule
    tr.fit(max_steps=2)
    assert tr.step == 2 and tr.optimizer.param_groups[0]["lr"] == plan.lr
