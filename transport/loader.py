"""``module:attribute`` names, resolved at run time.

The framework packages never import the application packages (ARCHITECTURE.md,
"Framework and application"); where a framework component runs application
code (the cluster daemon's service, the gateway's in-process venue) it is
named by a string the deployment chooses, and loaded here.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["load_object", "LoadError"]


class LoadError(ValueError):
    """A ``module:attribute`` name that does not resolve (the user's configuration)."""


def load_object(name: str, *, key: str = "service") -> Any:
    """Import ``module`` and return its ``attribute`` (dotted attributes allowed).

    ``key`` names the setting the string came from, for the error."""
    if not isinstance(name, str) or name.count(":") != 1:
        raise LoadError(f"not a module:attribute name: fault=user key={key} value={name!r}")
    module_name, _, attr = name.partition(":")
    if not module_name or not attr:
        raise LoadError(f"not a module:attribute name: fault=user key={key} value={name!r}")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise LoadError(f"module not importable: fault=user key={key} value={name!r} error={exc}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise LoadError(f"no such attribute: fault=user key={key} value={name!r} missing={part}") from None
    return obj
