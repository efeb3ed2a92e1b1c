"""MBConv blocks and NAS-Bench-Macro networks: path parity with stand-alone networks, exact counts, gradients."""
import pytest
import torch
from torch import nn

from nshot import spaces
from nshot.nn import BNConfig, MBConv, build_standalone, build_supernet, export_subnet
from nshot.nn.macro import MACRO_STANDALONE_BN, macro_standalone, macro_supernet
from nshot.nn.mbconv import skip_module
from tests.helpers import count_macs

SP = spaces.get("macro")
TINY = dict(stem_width=4, widths=[8, 8, 16], head_width=12, num_classes=5)
# all-identity (three stride-changing identities), all-largest, stride-changing identity next to MBConvs, mixed
ARCHS = ["00000000", "22222222", "01201201", "20000002", "11111111", "02102100"]


def _perturbed(net: nn.Module) -> nn.Module:
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net


def test_mbconv_structure_and_residual():
    bn = BNConfig()
    same = MBConv(8, 8, 5, 6, 1, bn)
    assert same.residual and same.expand is not None and same.depthwise[0].groups == 48
    assert not MBConv(8, 8, 3, 3, 2, bn).residual and not MBConv(8, 16, 3, 3, 1, bn).residual
    assert MBConv(8, 4, 3, 1, 1, bn).expand is None                       # expand 1: no expand conv
    x = torch.randn(2, 8, 9, 9)
    assert MBConv(8, 16, 7, 3, 2, bn)(x).shape == (2, 16, 5, 5)          # ceil(9 / 2)
    torch.manual_seed(0)
    blk = MBConv(8, 8, 3, 3, 1, bn)
    torch.testing.assert_close(blk(x), x + blk.project(blk.depthwise(blk.expand(x))), rtol=0, atol=0)
    assert isinstance(skip_module(8, 8, 1, bn), nn.Identity)
    proj = skip_module(8, 16, 2, bn)
    assert proj[0].stride == (2, 2) and proj[0].kernel_size == (1, 1) and proj[0].bias is None


@pytest.mark.parametrize("bn", [BNConfig(), BNConfig(affine=True, track_running_stats=True)])
def test_exported_standalone_matches_supernet_path(bn):
    torch.manual_seed(0)
    net = _perturbed(macro_supernet(bn=bn, **TINY))
    x = torch.randn(6, 3, 16, 16)
    for arch in ARCHS:
        sa = export_subnet(net, macro_standalone(arch, bn=bn, **TINY))
        net.train(), sa.train()
        torch.testing.assert_close(sa(x), net(x, arch), rtol=0, atol=0)
        torch.testing.assert_close(sa.features(x), net.features(x, arch), rtol=0, atol=0)
        if bn.track_running_stats:
            net.eval(), sa.eval()
            export_subnet(net, sa)   # the train-mode forward moved the running statistics
            torch.testing.assert_close(sa(x), net(x, arch), rtol=0, atol=0)


def test_stand_alone_network_uses_the_benchmark_bn_and_its_own_arch():
    sa = build_standalone("macro", "01201201", **TINY)
    bns = [m for m in sa.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(m.affine and m.track_running_stats and m.momentum == 0.1 for m in bns)
    assert sa.fixed_arch == "01201201" and sa(torch.randn(2, 3, 8, 8)).shape == (2, 5)
    assert [set(layer) for layer in sa.layers] == [{n} for n in SP.layer_names("01201201")]
    sup = build_supernet("macro", **TINY)
    assert all(set(layer) == {"id", "k3e3", "k5e6"} for layer in sup.layers)
    assert not any(m.affine or m.track_running_stats for m in sup.modules() if isinstance(m, nn.BatchNorm2d))


def test_module_parameter_counts_equal_the_space_for_all_archs():
    # One affine supernet holds every candidate with the stand-alone shapes, so the stand-alone network of any
    # arch has the shared parameters plus its chosen candidates' (parameter names are identical): check all 6,561.
    net = macro_supernet(bn=MACRO_STANDALONE_BN)
    per = [{name: sum(p.numel() for p in mod.parameters()) for name, mod in layer.items()} for layer in net.layers]
    fixed = sum(p.numel() for n, p in net.named_parameters() if not n.startswith("layers."))
    for arch in SP.enumerate():
        assert fixed + sum(per[d][n] for d, n in enumerate(SP.layer_names(arch))) == SP.num_params(arch), arch
    for arch in ARCHS:                                   # and a few networks built for real
        assert sum(p.numel() for p in macro_standalone(arch).parameters()) == SP.num_params(arch)
        assert sum(p.numel() for p in macro_standalone(arch, **TINY).parameters()) == SP.num_params(arch, **TINY)


@pytest.mark.parametrize("arch", ["00000000", "22222222", "10201102"])
def test_flops_equal_hook_counted_macs(arch):
    torch.manual_seed(0)
    assert count_macs(macro_standalone(arch), torch.randn(1, 3, 32, 32)) == SP.flops(arch)
    small = dict(TINY, resolution=11)                   # odd sizes: ceil at every stride 2
    assert count_macs(macro_standalone(arch, **TINY), torch.randn(1, 3, 11, 11)) == SP.flops(arch, **small)


def test_only_the_path_gets_gradients_and_gradient_matching_names():
    torch.manual_seed(0)
    net = macro_supernet(**TINY)
    net(torch.randn(4, 3, 8, 8), "20000001").sum().backward()
    names = SP.layer_names("20000001")
    for d, layer in enumerate(net.layers):
        for choice, mod in layer.items():
            for p in mod.parameters():
                assert (p.grad is not None) == (choice == names[d]), (d, choice)
    own = net.decision_param_names(3)
    assert own and all(n.startswith("layers.3.") for n in own)
    assert {n for n, _ in net.layers[3].named_parameters(prefix="layers.3")} == own


def test_supernet_checks_archs_and_candidates():
    net = build_supernet("macro", candidates=[[0, 1]] + [range(3)] * 7, **TINY)
    assert set(net.layers[0]) == {"id", "k3e3"}
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(ValueError, match="needs an architecture"):
        net(x)
    with pytest.raises(ValueError, match="uses 'k5e6' at layer 0, which this network does not hold"):
        net(x, "20000000")
    with pytest.raises(ValueError, match="position 3"):
        net(x, "000x0000")
    with pytest.raises(ValueError, match="candidate choices must be a non-empty subset of 0..2"):
        build_supernet("macro", candidates=[[3]] + [range(3)] * 7)
    with pytest.raises(ValueError, match="widths must have 3 entries"):
        build_supernet("macro", widths=[8, 16])
    with pytest.raises(ValueError, match="same space"):
        export_subnet(macro_supernet(**TINY), macro_standalone("11111111", **dict(TINY, head_width=13)))

