"""NB201 supernet and stand-alone networks: path parity, dead-edge skipping, parameter counts."""
import numpy as np
import pytest
import torch

from nshot import spaces
from nshot.nn import BNConfig, build_supernet, export_subnet, nb201_standalone, nb201_supernet

SP = spaces.get("nb201")
ALL_CONV3 = SP.encode([3] * 6)
DISCONNECTED = SP.encode([3, 0, 3, 0, 0, 0])        # conv into node 1 and 2, nothing reaches node 3
DEAD_END = SP.encode([3, 1, 0, 0, 0, 3])            # 1<-0 conv feeds node 1, which reaches nothing
SOME = [SP.sample(np.random.default_rng(i)) for i in range(6)] + [ALL_CONV3, DISCONNECTED, DEAD_END]


@pytest.fixture(scope="module")
def supernet():
    torch.manual_seed(0)
    return nb201_supernet(C=4, N=2, num_classes=7)


@pytest.mark.parametrize("bn", [BNConfig(), BNConfig(affine=True, track_running_stats=True)])
def test_exported_standalone_matches_supernet_path(bn):
    torch.manual_seed(0)
    net = nb201_supernet(C=4, N=2, num_classes=7, bn=bn)
    # Move BN parameters/buffers off their init so the export has something to copy.
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x = torch.randn(6, 3, 12, 12)
    for arch in SOME:
        sa = export_subnet(net, nb201_standalone(arch, C=4, N=2, num_classes=7, bn=bn))
        net.train(), sa.train()
        torch.testing.assert_close(sa(x), net(x, arch), rtol=0, atol=0)
        if bn.track_running_stats:
            net.eval(), sa.eval()
            export_subnet(net, sa)  # running statistics changed during the train-mode forward
            torch.testing.assert_close(sa(x), net(x, arch), rtol=0, atol=0)


def test_dead_edges_are_skipped_without_changing_outputs(supernet):
    x = torch.randn(5, 3, 8, 8)
    for arch in SOME + [SP.encode(c) for c in [(0, 3, 0, 0, 3, 0), (4, 4, 4, 0, 0, 0), (0, 0, 0, 0, 0, 0)]]:
        torch.testing.assert_close(supernet(x, arch, prune=True), supernet(x, arch, prune=False), rtol=1e-5, atol=1e-5)


def test_dead_edge_parameters_get_no_gradient(supernet):
    supernet.zero_grad(set_to_none=True)
    x = torch.randn(4, 3, 8, 8)
    supernet(x, DEAD_END).sum().backward()
    cell = supernet.cells[0]
    assert cell.edges[0]["nor_conv_3x3"][1].weight.grad is None    # dead: node 1 reaches nothing
    live = spaces.nb201.live_edges(SP.decode(DEAD_END))
    assert live == (False, True, False, False, False, True)
    for e in range(6):
        for name, mod in cell.edges[e].items():
            for p in mod.parameters():
                used = live[e] and name == SP.ops[SP.decode(DEAD_END)[e]]
                assert (p.grad is not None) == used, (e, name)


def test_disconnected_cell_outputs_zero_features(supernet):
    x = torch.randn(3, 3, 8, 8)
    net = supernet
    h = net.stem(x)
    out = net.cells[0](h, SP.decode(DISCONNECTED))
    assert torch.count_nonzero(out) == 0
    assert out.shape == h.shape


@pytest.mark.parametrize("classes", [10, 100, 120])
def test_standalone_parameter_count_equals_space_count(classes):
    for arch in SOME + [SP.encode([0] * 6)]:
        net = nb201_standalone(arch, num_classes=classes)
        assert sum(p.numel() for p in net.parameters()) == SP.num_params(arch, num_classes=classes)
    assert sum(p.numel() for p in nb201_standalone(SP.encode([0] * 6)).parameters()) == 73306


def test_supernet_needs_an_architecture_it_holds():
    net = build_supernet("nb201", C=4, N=1, candidates=[[0, 1]] + [range(5)] * 5)
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(ValueError, match="needs an architecture"):
        net(x)
    with pytest.raises(ValueError, match="does not hold"):
        net(x, ALL_CONV3)
    with pytest.raises(ValueError, match="unknown op"):
        net(x, "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    with pytest.raises(ValueError, match="no supernet for space"):
        build_supernet("nasbench101")


def test_export_refuses_mismatched_networks():
    net = nb201_supernet(C=4, N=1)
    with pytest.raises(ValueError, match="same space, C, N and BN"):
        export_subnet(net, nb201_standalone(ALL_CONV3, C=8, N=1))


@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("shape", [(2, 3, 9, 7), (1, 2, 1, 1), (2, 4, 2, 3), (3, 5, 32, 32)])
def test_box_avg_pool_equals_torch_avg_pool_values_and_gradients(k, shape):
    from nshot.nn.ops import BoxAvgPool2d
    torch.manual_seed(0)
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    ref = torch.nn.AvgPool2d(k, stride=1, padding=k // 2, count_include_pad=False)
    g = torch.randn(*shape, dtype=torch.float64)
    y_ref, = torch.autograd.grad(ref(x), x, g)
    pool = BoxAvgPool2d(k)
    torch.testing.assert_close(pool(x), ref(x), rtol=0, atol=1e-12)
    y, = torch.autograd.grad(pool(x), x, g)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-12)


def test_box_avg_pool_has_no_state_and_works_after_inference_mode():
    from nshot.nn.ops import BoxAvgPool2d
    pool = BoxAvgPool2d(3)
    assert dict(pool.state_dict()) == {} and list(pool.parameters()) == []
    x = torch.randn(2, 3, 8, 8)
    with torch.inference_mode():
        pool(x)                                   # caches the constants for this shape
    x.requires_grad_(True)
    pool(x).sum().backward()                      # the cached constants must be usable by autograd
    assert x.grad is not None
    with pytest.raises(ValueError, match="odd kernel"):
        BoxAvgPool2d(2)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_box_avg_pool_low_precision_rounds_once_like_torch(dtype):
    """Half-precision inputs are summed in float32 and rounded once: every output is the exact average correctly
    rounded (within half an ulp), as torch's pool gives; summing in the low precision misses that on ~20 %."""
    from nshot.nn.ops import BoxAvgPool2d
    torch.manual_seed(0)
    x = torch.randn(4, 8, 16, 16).to(dtype)
    exact = torch.nn.functional.avg_pool2d(x.double(), 3, 1, 1, count_include_pad=False)
    y = BoxAvgPool2d(3)(x)
    assert y.dtype == dtype
    ulp = torch.finfo(dtype).eps * exact.abs().clamp(min=torch.finfo(dtype).tiny)
    assert ((y.double() - exact).abs() <= 0.5 * ulp * 1.001).all()
    with torch.autocast("cpu", dtype=torch.bfloat16):           # autocast does not lower a float32 pool
        z = BoxAvgPool2d(3)(x.float())
    assert z.dtype == torch.float32
    torch.testing.assert_close(z, torch.nn.functional.avg_pool2d(x.float(), 3, 1, 1, count_include_pad=False))


def test_box_avg_pool_unbatched_input_and_copies_drop_the_cache():
    import copy
    import pickle
    from nshot.nn.ops import BoxAvgPool2d
    pool = BoxAvgPool2d(3)
    x = torch.randn(3, 5, 6)
    torch.testing.assert_close(pool(x), torch.nn.AvgPool2d(3, 1, 1, count_include_pad=False)(x))
    assert pool._consts
    for twin in (copy.deepcopy(pool), pickle.loads(pickle.dumps(pool))):
        assert twin._consts == {} and twin.kernel_size == 3
        torch.testing.assert_close(twin(x), pool(x))


def test_supernet_state_dict_keys_unchanged_by_the_pool_op():
    """Checkpoints written before the pool became a convolution still load: no key names a pool."""
    net = nb201_supernet(C=4, N=1)
    assert not [k for k in net.state_dict() if "avg_pool" in k]
