"""The config's allowed plug-in names: read from the plug-ins' source before they are imported (so checking a
config never imports torch) and from the live registry after; the two readings must agree."""
from __future__ import annotations

import dataclasses
import subprocess
import sys

from nshot import config as C
from nshot.registry import RegistryChoices
from tests.helpers import REPO


def _registered_fields() -> list[tuple[str, RegistryChoices]]:
    out = []
    for section in dataclasses.fields(C.Config):
        cls = getattr(C, type(getattr(C.Config(), section.name)).__name__, None)
        if cls is None or not dataclasses.is_dataclass(cls):
            continue
        for f in dataclasses.fields(cls):
            choices = f.metadata.get("choices")
            if isinstance(choices, RegistryChoices):
                out.append((f"{section.name}.{f.name}", choices))
    return out


def test_source_names_equal_the_live_registry():
    fields = _registered_fields()
    assert {name for name, _ in fields} >= {"train.sampler", "train.lr_policy", "train.optimizer", "train.objective"}
    for name, choices in fields:
        if name.startswith("train."):   # the plug-ins that register by decorator (and import torch)
            assert choices.source_names() == choices.live_names(), name


def test_checking_a_config_with_every_plugin_name_imports_no_torch():
    snippet = (
        "import sys\n"
        "from nshot.config import load_config\n"
        "load_config(None, ['train.sampler=fair', 'train.lr_policy=calr', 'train.optimizer=ms_sgd', 'ms.edge=0'])\n"
        "try:\n"
        "    load_config(None, ['train.sampler=fiar'])\n"
        "except Exception as exc:\n"
        "    print(exc)\n"
        "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[-1] == "False"
    assert "fiar" in lines[0] and "uniform" in lines[0] and "fair" in lines[0] and "pair" in lines[0]
