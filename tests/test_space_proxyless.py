"""ProxylessNAS-style space: layer structure, strings and errors, exact params/FLOPs, config options."""
import numpy as np
import pytest
import torch

from nshot import spaces
from nshot.config import ConfigError, load_config
from nshot.nn import build_supernet, export_subnet, proxyless_standalone, proxyless_supernet
from nshot.spaces import ProxylessSpace
from tests.helpers import count_macs

SP = spaces.get("proxyless")
TINY = dict(stem="cifar", stem_width=4, widths=[4, 8], depths=[2, 3], strides=[1, 2], head_width=12)
CONFIGS = [
    {},                                                                    # the ProxylessNAS ImageNet default
    TINY,
    dict(stem="imagenet", stem_width=8, first_width=8, widths=[8, 16, 16], depths=[1, 2, 2], strides=[1, 2, 1],
         head_width=32, resolution=45),                                    # residual stem block, odd resolution
    dict(stem="cifar", stem_width=6, widths=[6, 12], depths=[3, 1], strides=[2, 2], head_width=10, resolution=15),
]


def test_default_space_is_proxylessnas():
    assert SP.depths == (4, 4, 4, 4, 4, 1) and SP.num_decisions == 21 and SP.resolution == 224
    first = [0, 4, 8, 12, 16, 20]
    assert [d for d, n in enumerate(SP.sizes) if n == 6] == first          # no identity in first layers
    assert all(n == 7 for d, n in enumerate(SP.sizes) if d not in first)
    assert SP.choices[1] == ("k3e3", "k3e6", "k5e3", "k5e6", "k7e3", "k7e6", "id")
    assert len(SP) == 6 ** 6 * 7 ** 15
    assert ProxylessSpace(**SP.options).options == SP.options


def test_parse_format_round_trip():
    sp = ProxylessSpace(**TINY)
    assert sp.sizes == (6, 7, 6, 7, 7) and len(list(sp.enumerate())) == 6 * 7 * 6 * 7 * 7
    for i in range(30):
        a = SP.sample(np.random.default_rng(i))
        assert SP.parse(a) == SP.format(a) == a and SP.encode(SP.decode(a)) == a
    assert sp.encode([0, 6, 5, 6, 1]) == "k3e3-id-k7e6-id-k3e6"
    assert sp.parse(" k3e3 - id-k7e6-id -k3e6 ") == "k3e3-id-k7e6-id-k3e6"     # spaces around tokens dropped


@pytest.mark.parametrize("text, message", [
    ("k3e3-id-k7e6-id", "must have 5 layers \\(depths \\[2, 3\\]\\) separated by '-', got 4"),
    ("k3e3-k9e3-k7e6-id-id", "layer 1 \\(stage 0, layer 1 of the stage\\) is 'k9e3', expected one of k3e3, .*id"),
    ("k3e3-id-id-id-id", "layer 2 \\(stage 1, layer 0 of the stage\\) is the first of its stage .*'id' is not allowed"),
    ("id-id-k3e3-id-id", "layer 0 \\(stage 0, layer 0"),
    ("k3e3-id-k7e6-id-", "layer 4 .* is '', expected"),
])
def test_parse_errors_name_the_layer(text, message):
    with pytest.raises(ValueError, match=message):
        ProxylessSpace(**TINY).parse(text)


def test_bad_options_are_named():
    for kwargs, message in [(dict(widths=[8, 16]), "widths \\(one per stage of depths\\) must have 6 entries"),
                            (dict(strides=[2, 2, 3, 1, 2, 1]), "strides .* entries must be one of \\[1, 2\\]"),
                            (dict(depths=[]), "depths must not be empty"),
                            (dict(stem="mnist"), "stem = 'mnist' is invalid"),
                            (dict(head_width=0), "head_width must be a positive integer")]:
        with pytest.raises(ValueError, match=message):
            ProxylessSpace(**kwargs)


@pytest.mark.parametrize("options", CONFIGS)
def test_analytic_params_and_flops_equal_the_built_modules(options):
    sp = ProxylessSpace(**options)
    rng = np.random.default_rng(0)
    archs = [sp.encode([0] * sp.num_decisions), sp.encode([5] * sp.num_decisions)] + [sp.sample(rng) for _ in range(2)]
    x = torch.randn(1, 3, sp.resolution, sp.resolution)
    for k, arch in enumerate(archs):
        net = proxyless_standalone(arch, num_classes=7, **options)
        assert sum(p.numel() for p in net.parameters()) == sp.num_params(arch, num_classes=7), arch
        if k < (2 if not options else 4):          # the 224-pixel default: two MAC counts are enough
            assert count_macs(net, x) == sp.flops(arch, num_classes=7), arch
    assert sp.num_params(archs[0]) == sp.num_params(archs[0], num_classes=1000 if sp.stem == "imagenet" else 10)


def test_supernet_path_equals_exported_standalone_and_identity_skips():
    torch.manual_seed(0)
    sp = ProxylessSpace(**TINY)
    net = proxyless_supernet(num_classes=5, **TINY)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    assert set(net.layers[0]) == set(sp.choices[0]) and "id" in net.layers[1] and "id" not in net.layers[2]
    x = torch.randn(4, 3, 8, 8)
    for arch in ["k3e3-id-k3e3-id-id", "k7e6-k5e3-k3e6-k7e3-k5e6", sp.sample(3)]:
        sa = export_subnet(net, proxyless_standalone(arch, num_classes=5, bn=net.bn, **TINY))
        net.train(), sa.train()
        torch.testing.assert_close(sa(x), net(x, arch), rtol=0, atol=0)
    h = net.stem(x)
    torch.testing.assert_close(net.layers[1]["id"](h), h, rtol=0, atol=0)


def test_config_options_build_the_space_and_network():
    over = ["space.name=proxyless", "model.stem=cifar", "model.stem_width=4", "model.widths=[4,8]",
            "model.depths=[2,3]", "model.strides=[1,2]", "model.head_width=12"]
    cfg = load_config(None, over)
    sp = spaces.for_config(cfg)
    assert sp.sizes == (6, 7, 6, 7, 7) and sp.options == ProxylessSpace(**TINY).options
    from nshot.train.trainer import build_model, space_shape
    assert space_shape(cfg, 4, 3) == {"num_classes": 4, "in_channels": 3}
    net = build_model(cfg, 4, 3)
    assert net.space.options == sp.options and net(torch.randn(2, 3, 8, 8), sp.sample(0)).shape == (2, 4)
    for bad, message in [("model.widths=[4]", "widths .* must have 2 entries"),
                         ("model.strides=[1,3]", "model.strides = \\[1, 3\\] is invalid"),
                         ("model.stem=mnist", "model.stem = 'mnist' is invalid: expected one of imagenet, cifar")]:
        with pytest.raises(ConfigError, match=message):
            load_config(None, over + [bad])
    with pytest.raises(ConfigError, match="model.depths is not an option of search space 'macro'"):
        load_config(None, ["space.name=macro", "model.depths=[2,2]"])
    with pytest.raises(ConfigError, match="model.stem_width is not an option of search space 'nb201'"):
        load_config(None, ["model.stem_width=8"])


def test_calr_complexity_extremes_of_the_full_space():
    # 6^6 x 7^15 archs: extremes by per-layer probing (exact, as costs add up per layer), quintiles by sampling
    from nshot.train.complexity import get_complexity
    cx = get_complexity(SP, "params", num_classes=10, in_channels=3)
    cheapest = SP.encode([6 if n == 7 else 0 for n in SP.sizes])          # id where allowed, else k3e3
    assert cx.c_min == SP.num_params(cheapest, num_classes=10)
    assert cx.c_max == SP.num_params(SP.encode([5] * 21), num_classes=10)  # k7e6 everywhere
    assert cx.log_position(cheapest) == 0.0 and cx.quintile(SP.encode([5] * 21)) == 4
    flops = get_complexity(ProxylessSpace(**TINY), "flops", num_classes=4, in_channels=3)
    assert flops.c_max == ProxylessSpace(**TINY).flops("k7e6-k7e6-k7e6-k7e6-k7e6", num_classes=4)


def test_build_supernet_validates_like_the_space():
    with pytest.raises(ValueError, match="depths must not be empty"):
        build_supernet("proxyless", depths=[], widths=[], strides=[])
