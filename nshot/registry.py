"""Registries: name -> plug-in (samplers, LR policies, optimizers, objectives, search strategies, probes, networks), and the config choices read from
them. Pure Python (no torch): ``nshot.config`` uses :class:`RegistryChoices` without importing the plug-ins
until a value is checked.
"""
from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

T = TypeVar("T")


class Registry(dict):
    """A named mapping of plug-ins: ``@REGISTRY.register("name")`` on a class or builder, ``REGISTRY.get(name)``
    with an error naming what is available."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator adding its argument under ``name``; a name registered twice raises ValueError."""
        def add(obj: T) -> T:
            if name in self:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self[name] = obj
            return obj
        return add

    def get(self, name: str) -> Any:  # type: ignore[override]
        """The plug-in registered as ``name``; ValueError naming the registered ones if there is none."""
        try:
            return self[name]
        except KeyError:
            raise ValueError(f"unknown {self.kind} {name!r}; available: {', '.join(self)}") from None


class _LazyNames(Sequence[str]):
    """A sequence of names computed each time it is read (``_names``), so that it follows a live registry."""

    def _names(self) -> list[str]:
        raise NotImplementedError

    def __getitem__(self, i):  # type: ignore[override]
        return self._names()[i]

    def __len__(self) -> int:
        return len(self._names())

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __contains__(self, name: object) -> bool:
        return name in self._names()


class RegistryChoices(_LazyNames):
    """The names in a registry as a lazy sequence: a config field's allowed values, derived from the plug-ins
    instead of typed again. Once the plug-ins' module is imported, its live registry answers (names registered
    at run time included); before that, the ``ATTR.register("name")`` lines of its source file do, so that
    checking a config never imports torch (``nshot.preflight`` checks arguments before torch is loaded;
    a registry not filled by ``register`` calls, e.g. the spaces', is imported; ``tests/test_registry_choices.py``
    holds the two readings equal)."""

    def __init__(self, module: str, attr: str, package: bool = False):
        self.module, self.attr, self.package = module, attr, package

    def live_names(self) -> list[str]:
        """The names of the imported registry (imports the plug-ins' module)."""
        reg = getattr(importlib.import_module(self.module), self.attr)
        names = list(reg() if callable(reg) and not isinstance(reg, dict) else reg)
        return sorted(names) if self.package else names

    def source_names(self) -> list[str]:
        """The names registered in the module's source (``ATTR.register("name")``), without importing it. With
        ``package``, the plug-ins are files of the package ``module`` (each registers itself in its own file,
        the package's ``__init__`` imports them): every ``.py`` file of its folder is read, names sorted."""
        root, *parts = self.module.split(".")
        base = Path(importlib.import_module(root).__file__).parent
        path = base.joinpath(*parts).with_suffix(".py")
        if not path.is_file():
            path = base.joinpath(*parts, "__init__.py")
        pattern = r"\b" + re.escape(self.attr) + r"""\.register\(\s*["']([^"']+)["']"""
        if self.package:   # registration lines only (not a docstring's example)
            pattern = r"^[ \t]*@?" + pattern[2:]
            return sorted(n for f in sorted(path.parent.glob("*.py"))
                          for n in re.findall(pattern, f.read_text(), re.MULTILINE))
        return re.findall(pattern, path.read_text())

    def _names(self) -> list[str]:
        if self.module not in sys.modules:
            names = self.source_names()
            if names:   # a registry filled by decorator calls; one built otherwise (spaces) is imported
                return names
        return self.live_names()

    def __repr__(self) -> str:
        return f"RegistryChoices({self.module}.{self.attr})"


class ChainChoices(_LazyNames):
    """Fixed names around registered ones, read lazily (e.g. the ``--probe`` choices: ``classifier``, the
    registered bank probes, ``shared-linear``)."""

    def __init__(self, *parts: Sequence[str]):
        self.parts = parts

    def _names(self) -> list[str]:
        return [n for part in self.parts for n in part]

    def __repr__(self) -> str:
        return f"ChainChoices{self.parts!r}"
