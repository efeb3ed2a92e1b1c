"""The training/evaluation input of every loop: CIFAR-style pad-crop vs image-folder random-resized-crop, and a
supernet trained end to end (supervised and Pi-NAS) on an image folder made in the real layout."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nshot.config import load_config
from nshot.data import augment_batch, center_crop, eval_input, normalize, random_resized_crop, train_input
from nshot.train.trainer import Trainer

M, S = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def test_train_input_picks_the_transform_from_the_stored_size():
    x = torch.randint(0, 256, (4, 3, 10, 10), dtype=torch.uint8)
    torch.testing.assert_close(train_input(x, M, S, 5, True, 2, True, None), augment_batch(x, M, S, seed=5, pad=2))
    torch.testing.assert_close(train_input(x, M, S, 5, True, 2, True, 10), augment_batch(x, M, S, seed=5, pad=2))
    torch.testing.assert_close(train_input(x, M, S, 5, False, 2, True, None), normalize(x, M, S))
    torch.testing.assert_close(train_input(x, M, S, 5, True, 2, True, 8), random_resized_crop(x, M, S, 8, seed=5))
    torch.testing.assert_close(train_input(x, M, S, 5, False, 2, True, 8), normalize(center_crop(x, 8), M, S))
    torch.testing.assert_close(eval_input(x, M, S, 8), normalize(center_crop(x, 8), M, S))
    torch.testing.assert_close(eval_input(x, M, S, None), normalize(x, M, S))


@pytest.fixture
def folder(tmp_path):
    from PIL import Image
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("val", 4)):
        for k, cls in enumerate(("cat", "dog", "emu")):
            d = tmp_path / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                a = np.clip(rng.normal(60 + 70 * k, 30, (14, 12, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(a).save(d / f"{i}.png")
    return tmp_path


@pytest.mark.parametrize("objective", ["supervised", "pinas"])
def test_a_supernet_trains_on_an_image_folder_at_image_size(folder, tmp_path, objective, monkeypatch):
    extra = ["train.sampler=pair", "train.objective=pinas", "pinas.queue_size=32"] if objective == "pinas" else []
    cfg = load_config(None, ["device=cpu", "data.name=folder", f"data.root={folder}", "data.split=full",
                             "data.image_size=8", "model.C=4", "model.N=1", "train.epochs=1", "train.batch_size=12",
                             "run.progress=none", *extra])
    tr = Trainer.create(cfg, tmp_path / "run")
    assert tuple(tr.train_data.x.shape[-2:]) == (9, 9) and tuple(tr.eval_data.x.shape[-2:]) == (8, 8)
    seen = []
    real = tr.model.forward
    monkeypatch.setattr(tr.model, "features", lambda x, arch=None, prune=True, f=tr.model.features: (
        seen.append(tuple(x.shape[-2:])), f(x, arch, prune))[1])
    monkeypatch.setattr(tr.model, "forward", lambda x, arch=None, prune=True: (seen.append(tuple(x.shape[-2:])),
                                                                            real(x, arch, prune))[1])
    recs = tr.fit()
    assert len(recs) == 1 and np.isfinite(recs[0]["loss"])
    assert seen and set(seen) == {(8, 8)}                   # every training input was cropped to image_size


def test_channels_last_equals_the_default_layout_and_bf16_stays_close(tmp_path, tiny_data):
    from tests.helpers import tiny_overrides
    base = Trainer.create(load_config(None, tiny_overrides("train.epochs=1")), tmp_path / "a", data=tiny_data)
    assert base.precision == "fp32" and not base.channels_last            # auto on CPU
    base.fit()
    with pytest.warns(RuntimeWarning, match="corrupts the heap"):   # opt-in on CPU warns (torch bug)
        cl = Trainer.create(load_config(None, tiny_overrides("train.epochs=1", "train.channels_last=true")),
                            tmp_path / "b", data=tiny_data)
    assert cl.model.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    cl.fit()
    for (k, a), b in zip(base.model.state_dict().items(), cl.model.state_dict().values()):
        torch.testing.assert_close(a, b.contiguous(), rtol=1e-4, atol=1e-5, msg=k)
    bf = Trainer.create(load_config(None, tiny_overrides("train.epochs=1", "train.precision=bf16")), tmp_path / "c",
                        data=tiny_data)
    seen = []
    real = bf.model.forward
    bf.model.forward = lambda x, arch=None, prune=True: (seen.append(torch.is_autocast_enabled("cpu")),
                                                         real(x, arch, prune))[1]
    recs = bf.fit()
    assert seen and all(seen)                                             # every forward ran under autocast
    assert all(p.dtype == torch.float32 for p in bf.model.parameters())  # weights stay fp32
    assert abs(recs[0]["loss"] - base.metrics.read()[0]["loss"]) < 0.05
