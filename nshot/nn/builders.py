"""The network registries, by space name: ``SUPERNETS`` (``builder(candidates=..., **model_options)``) and
``STANDALONE`` (``builder(arch, **model_options)``). Each network's module registers its builders with
``@SUPERNETS.register("space")`` / ``@STANDALONE.register("space")``; ``nshot/nn/__init__.py`` imports it."""
from __future__ import annotations

from ..registry import Registry

SUPERNETS = Registry("supernet")
STANDALONE = Registry("stand-alone network")
