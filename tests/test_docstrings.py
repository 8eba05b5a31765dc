"""Every public function and class of `core` says why it is there (issue 11: docstrings on `core`).

A class counts as documented only with a docstring of its own: dataclasses and NamedTuples get a
generated one ("Ladder(start, levels, ...)") that says nothing. Public methods and properties of
core's classes are checked too.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType
from typing import Any

import pytest

import core

MODULES = [importlib.import_module(f"core.{info.name}") for info in pkgutil.iter_modules(core.__path__)]


def _generated(cls: type) -> bool:
    """The docstring dataclass or NamedTuple writes for a class without one: its signature."""
    return (cls.__doc__ or "").startswith(f"{cls.__name__}(")


def _own_function(member: Any) -> Any:
    """The function behind a class member (property getter, static or class method), or None."""
    if isinstance(member, property):
        return member.fget
    if isinstance(member, staticmethod | classmethod):
        return member.__func__
    return member if inspect.isfunction(member) else None


def undocumented(module: ModuleType) -> list[str]:
    """Public functions, classes and class members defined in `module` with no docstring of their own."""
    missing: list[str] = []
    for name, obj in vars(module).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isfunction(obj):
            if not obj.__doc__:
                missing.append(name)
        elif inspect.isclass(obj):
            if not obj.__doc__ or _generated(obj):
                missing.append(name)
            for attr, member in vars(obj).items():
                function = _own_function(member)
                if not attr.startswith("_") and function is not None and not function.__doc__:
                    missing.append(f"{name}.{attr}")
    return missing


@pytest.mark.parametrize("module", MODULES, ids=lambda module: module.__name__)
def test_every_public_definition_of_core_has_a_docstring(module: ModuleType) -> None:
    assert undocumented(module) == []


def test_the_check_finds_a_missing_docstring() -> None:
    """The check can fail: a module with an undocumented function, class, method and dataclass."""
    from dataclasses import dataclass

    sample = ModuleType("sample")

    def bare() -> None:
        pass

    class Plain:
        def method(self) -> None:
            pass

    @dataclass
    class Data:
        x: int

    for obj in (bare, Plain, Data):
        obj.__module__ = "sample"
        setattr(sample, obj.__name__, obj)
    assert undocumented(sample) == ["bare", "Plain", "Plain.method", "Data"]


def test_core_has_modules_to_check() -> None:
    assert {"core.romiplostim", "core.framework", "core.models", "core.registry"} <= {m.__name__ for m in MODULES}
