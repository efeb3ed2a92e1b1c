"""Registries: name -> plug-in (samplers, LR policies, optimizers, objectives), and the config choices read from
them. Pure Python (no torch): ``nshot.config`` uses :class:`RegistryChoices` without importing the plug-ins
until a value is checked.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, Iterator, Sequence, TypeVar

T = TypeVar("T")


class Registry(dict):
    """A named mapping of plug-ins: ``@REGISTRY.register("name")`` on a class or builder, ``REGISTRY.get(name)``
    with an error naming what is available."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self[name] = obj
            return obj
        return add

    def get(self, name: str) -> Any:  # type: ignore[override]
        try:
            return self[name]
        except KeyError:
            raise ValueError(f"unknown {self.kind} {name!r}; available: {', '.join(self)}") from None


class RegistryChoices(Sequence[str]):
    """The names in a registry as a lazy sequence (the module is imported on first use): a config field's
    allowed values, derived from the plug-ins instead of typed again."""

    def __init__(self, module: str, attr: str):
        self.module, self.attr = module, attr

    def _names(self) -> list[str]:
        reg = getattr(importlib.import_module(self.module), self.attr)
        return list(reg() if callable(reg) and not isinstance(reg, dict) else reg)

    def __getitem__(self, i):  # type: ignore[override]
        return self._names()[i]

    def __len__(self) -> int:
        return len(self._names())

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __repr__(self) -> str:
        return f"RegistryChoices({self.module}.{self.attr})"
