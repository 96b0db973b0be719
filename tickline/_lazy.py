"""Lazily imported package exports.

A package lists ``name -> submodule`` and gets a module-level ``__getattr__``
that imports the submodule on first use, so ``import tickline.X`` stays cheap
and a command imports only what it runs.  Each package also imports the same
names under ``TYPE_CHECKING`` (and binds ``__getattr__`` only at run time), so
type checkers see the real types, never ``Any``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` exporting ``exports``."""
    names = sorted(exports)

    def getattr_(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(importlib.import_module(package), name, value)
        return value

    def dir_() -> list[str]:
        return names

    return getattr_, dir_
