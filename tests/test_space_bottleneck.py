"""Pi-NAS's bottleneck space: strings, exact parameter/MAC counts, supernet path == stand-alone network, and
Pi-NAS (and SPOS) training on it."""
from __future__ import annotations

import pytest
import torch

from nshot import spaces
from nshot.config import ConfigError, load_config
from nshot.nn import build_standalone, build_supernet, export_subnet
from nshot.nn.ops import BNConfig
from nshot.spaces.bottleneck import BottleneckSpace
from nshot.train.trainer import Trainer

from tests.helpers import tiny_overrides

SMALL = dict(stem_width=8, widths=(16, 32), depths=(2, 1), resolution=8)


def test_strings_and_sizes():
    sp = BottleneckSpace()
    assert sp.sizes == (4,) * 8 and len(sp) == 4 ** 8
    assert sp.choices[0] == ("r1c1w64", "r2c1w64", "r1c2w42", "r2c2w40")
    a = sp.sample(0)
    assert sp.encode(sp.decode(a)) == a and sp.parse(" 0123 0123 ") == "01230123"
    with pytest.raises(ValueError, match="8 digits"):
        sp.parse("0123")
    with pytest.raises(ValueError, match="block 2 is '7'"):
        sp.parse("01701230")
    with pytest.raises(ValueError, match="multiple of"):
        BottleneckSpace(widths=(8, 16, 32, 64))
    assert spaces.get("bottleneck", depths=[1, 1], widths=[16, 32]).num_decisions == 2


def _count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("arch", ["000", "123", "332", "210"])
def test_params_and_macs_are_exact(arch):
    sp = BottleneckSpace(**SMALL)
    net = build_standalone("bottleneck", arch, **SMALL)
    assert _count(net) == sp.num_params(arch)
    macs = []

    def hook(m, inp, out):
        if isinstance(m, torch.nn.Conv2d):
            macs.append(m.weight.numel() * out.shape[-1] * out.shape[-2])
        elif isinstance(m, torch.nn.Linear):
            macs.append(m.weight.numel())
    hs = [m.register_forward_hook(hook) for m in net.modules()]
    net.eval()(torch.zeros(1, 3, 8, 8))
    for h in hs:
        h.remove()
    assert sum(macs) == sp.flops(arch)
    assert len({sp.num_params(c * 3) for c in "0123"}) == 4          # the candidates differ in cost


def test_supernet_path_equals_the_exported_standalone_network():
    torch.manual_seed(0)
    bn = BNConfig()                                       # batch statistics in both, as in the other spaces' tests
    sup = build_supernet("bottleneck", bn=bn, **SMALL)
    x = torch.randn(4, 3, 8, 8)
    for arch in ("000", "123", "321", "222"):
        alone = build_standalone("bottleneck", arch, bn=bn, **SMALL)
        export_subnet(sup, alone, arch)
        assert torch.equal(sup(x, arch), alone(x))
    names = sup.decision_param_names(1)
    assert names and all(n.startswith("blocks.1.choices.") for n in names)
    assert not any("shortcut" in n for n in names)


def test_only_the_path_and_the_shared_shortcut_get_gradients():
    sup = build_supernet("bottleneck", **SMALL)
    sup(torch.randn(4, 3, 8, 8), "301").sum().backward()
    got = {n for n, p in sup.named_parameters() if p.grad is not None}
    assert any("blocks.0.choices.r2c2w40" in n for n in got) and not any("blocks.0.choices.r1c1w64" in n for n in got)
    assert any("blocks.0.shortcut" in n for n in got) and any("blocks.2.shortcut" in n for n in got)


@pytest.mark.parametrize("objective", ["supervised", "pinas"])
def test_training_runs_and_resumes_on_the_bottleneck_space(tmp_path, tiny_data, objective):
    extra = ["train.sampler=pair", "train.objective=pinas", "pinas.queue_size=32", "pinas.dim=8"] \
        if objective == "pinas" else ["train.optimizer=ms_sgd", "train.lr_policy=calr"]
    ov = tiny_overrides("space.name=bottleneck", "model.stem_width=8", "model.widths=[16,32]", "model.depths=[1,1]",
                        "model.resolution=8", "train.epochs=2", *extra)
    cfg = load_config(None, ov)
    full = Trainer.create(cfg, tmp_path / "full", data=tiny_data)
    full.fit()
    part = Trainer.create(cfg, tmp_path / "part", data=tiny_data)
    part.fit(max_steps=2)
    resumed = Trainer.resume(tmp_path / "part", data=tiny_data)
    resumed.fit()
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k
    with pytest.raises(ConfigError, match="bottleneck"):
        load_config(None, ["space.name=bottleneck", "model.head_width=64"])
