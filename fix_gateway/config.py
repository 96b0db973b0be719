"""Configuration helpers: one frozen dataclass per component, validated at
construction, every option also settable from the environment.

``from_env(SessionConfig, "TICKLINE_FIX_SESSION_", sender_comp_id="GW")`` builds a
config from keyword arguments with ``TICKLINE_FIX_SESSION_<FIELD>`` environment
variables taking precedence over the defaults (and explicit keywords over both).
"""

from __future__ import annotations

import dataclasses
import os
import typing
from typing import Any, Mapping, TypeVar

__all__ = ["ConfigError", "from_env", "parse_bool", "read_section"]

T = TypeVar("T")


class ConfigError(ValueError):
    """Invalid configuration (the user's input)."""


def read_section(path: str | os.PathLike[str], section: str) -> dict[str, Any]:
    """The ``[section]`` table of the TOML topology file at ``path``; ``ConfigError`` names the
    file when it can't be read or parsed, or has no such table."""
    import tomllib

    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"cannot read topology file: fault=config path={path} error={e}") from None
    table = doc.get(section)
    if not isinstance(table, dict):
        raise ConfigError(f"no [{section}] section: fault=config path={path}")
    return table


def parse_bool(key: str, value: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "y", "yes", "true", "on"):
        return True
    if v in ("0", "n", "no", "false", "off"):
        return False
    raise ConfigError(f"not a boolean: fault=config key={key} value={value!r}")


def _convert(key: str, value: str, typ: Any) -> Any:
    origin = typing.get_origin(typ)
    args = [a for a in typing.get_args(typ) if a is not type(None)]
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        if value == "":
            return None
        typ = args[0] if args else str
    if typ is bool:
        return parse_bool(key, value)
    if typ is int:
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"not an integer: fault=config key={key} value={value!r}") from None
    if typ is float:
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"not a number: fault=config key={key} value={value!r}") from None
    return value


def from_env(cls: type[T], prefix: str, env: Mapping[str, str] | None = None, **kwargs: Any) -> T:
    """Build ``cls`` from ``kwargs``, filling unset fields from ``prefix + FIELD.upper()``."""
    env = os.environ if env is None else env
    hints = typing.get_type_hints(cls)
    values = dict(kwargs)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in values:
            continue
        key = prefix + f.name.upper()
        if key in env:
            values[f.name] = _convert(key, env[key], hints[f.name])
    return cls(**values)
