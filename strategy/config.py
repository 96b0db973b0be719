"""A strategy's configuration: one TOML section, validated at start with the key and the reason.

    [strategy]                      # or any section, e.g. [strategies.mm1] in a topology file
    name = "mm1"                    # 1-32 of [A-Za-z0-9_-]
    account = "ACC1"                # 1-12 ASCII characters (orders.xml Account)
    symbols = ["ESZ6", "NQZ6"]      # what the strategy trades and receives market data for
    md_channel = "aeron:ipc"        # market data subscription
    md_stream = 1001
    cl_ord_id_prefix = "mm1"        # 1-8 of [A-Za-z0-9_]; default: the name's first 8 characters
    cl_ord_id_seed = 0              # optional: first ClOrdId counter (default: wall clock in microseconds)
    aeron_dir = "/dev/shm/aeron-x"  # optional: the media driver's directory (tickline strategy run)
    idle = "backoff"                # busy-spin | yielding | backoff | sleeping | noop
    fragment_limit = 64             # market-data fragments and reports per duty cycle, each
    max_pending_sends = 1024        # requests queued while the gateway pushes back; beyond: denied
    cancel_on_stop = true           # cancel open orders in on_close
    [strategy.gateway]              # how orders go out
    kind = "sequencer"              # sequencer | simulated | "module:callable"
    # ... the gateway's own keys, passed to it
    [strategy.params]               # the strategy class's own parameters (its ``Params`` dataclass)
    spread = 0.5

Every scalar key above can be overridden by ``TICKLINE_STRATEGY_<KEY>``
(``TICKLINE_STRATEGY_MD_STREAM=1002``; ``TICKLINE_STRATEGY_SYMBOLS=ESZ6,NQZ6``).
Errors are ``StrategyConfigError`` naming the file, the key and the reason, ``fault=user``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import typing
from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = ["StrategyConfig", "StrategyConfigError", "load_config", "validate_params"]

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_PREFIX = re.compile(r"^[A-Za-z0-9_]{1,8}$")
_IDLE = ("busy-spin", "yielding", "backoff", "sleeping", "noop")
ENV_PREFIX = "TICKLINE_STRATEGY_"


class StrategyConfigError(ValueError):
    """A strategy configuration refused at start: names the file, key and reason (the user's input)."""


@dataclass(frozen=True)
class StrategyConfig:
    name: str
    account: str
    symbols: tuple[str, ...]
    md_stream: int
    md_channel: str = "aeron:ipc"
    cl_ord_id_prefix: str = ""
    cl_ord_id_seed: int | None = None
    aeron_dir: str | None = None
    idle: str = "backoff"
    fragment_limit: int = 64
    max_pending_sends: int = 1024
    cancel_on_stop: bool = True
    gateway: Mapping[str, Any] = field(default_factory=lambda: {"kind": "sequencer"})
    params: Mapping[str, Any] = field(default_factory=dict)
    source: str = "<config>"  # file#section, for errors
    section: str = "strategy"

    @property
    def prefix(self) -> str:
        return self.cl_ord_id_prefix or re.sub(r"[^A-Za-z0-9_]", "_", self.name)[:8]

    def error(self, key: str, reason: str) -> StrategyConfigError:
        return _error(self.source, f"{self.section}.{key}", reason)


def _error(source: str, key: str, reason: str) -> StrategyConfigError:
    return StrategyConfigError(f"invalid strategy config: file={source} key={key} reason={reason} fault=user")


_SCALARS = {"name": str, "account": str, "md_stream": int, "md_channel": str, "cl_ord_id_prefix": str,
            "cl_ord_id_seed": int, "aeron_dir": str, "idle": str, "fragment_limit": int, "max_pending_sends": int,
            "cancel_on_stop": bool}
_REQUIRED = ("name", "account", "symbols", "md_stream")


def _from_env(key: str, text: str, typ: type, source: str) -> Any:
    var = ENV_PREFIX + key.upper()
    if typ is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise _error(source, var, f"not a boolean: value={text!r}")
    if typ is int:
        try:
            return int(text)
        except ValueError:
            raise _error(source, var, f"not an integer: value={text!r}") from None
    return text


def load_config(table: Mapping[str, Any], *, source: str = "<config>", section: str = "strategy",
                env: Mapping[str, str] | None = None) -> StrategyConfig:
    """Validate one strategy section (a dict, e.g. from ``tomllib``) with ``TICKLINE_STRATEGY_*`` overrides
    from ``env`` (default ``os.environ``; pass ``{}`` for none)."""
    env = os.environ if env is None else env
    if not isinstance(table, Mapping):
        raise _error(source, section, "must be a table")
    known = set(_SCALARS) | {"symbols", "gateway", "params"}
    for k in table:
        if k not in known:
            raise _error(source, f"{section}.{k}", f"unknown key (known: {', '.join(sorted(known))})")
    values: dict[str, Any] = dict(table)
    for k, typ in _SCALARS.items():
        text = env.get(ENV_PREFIX + k.upper())
        if text is not None:
            values[k] = _from_env(k, text, typ, source)
    sym_env = env.get(ENV_PREFIX + "SYMBOLS")
    if sym_env is not None:
        values["symbols"] = [s.strip() for s in sym_env.split(",") if s.strip()]
    for k in _REQUIRED:
        if k not in values:
            raise _error(source, f"{section}.{k}", "missing (required)")
    for k, typ in _SCALARS.items():
        if k in values:
            v = values[k]
            if typ is int and (isinstance(v, bool) or not isinstance(v, int)):
                raise _error(source, f"{section}.{k}", f"must be an integer: value={v!r}")
            if typ is not int and not isinstance(v, typ):
                raise _error(source, f"{section}.{k}", f"must be a {typ.__name__}: value={v!r}")

    def bad(key: str, reason: str) -> StrategyConfigError:
        return _error(source, f"{section}.{key}", reason)

    if not _NAME.match(values["name"]):
        raise bad("name", f"must be 1-32 characters of [A-Za-z0-9_-]: value={values['name']!r}")
    acct = values["account"]
    if not (acct.isascii() and 0 < len(acct) <= 12):
        raise bad("account", f"must be 1-12 ASCII characters: value={acct!r}")
    symbols = values["symbols"]
    if not isinstance(symbols, list) or not symbols:
        raise bad("symbols", f"must be a non-empty list of symbols: value={symbols!r}")
    for s in symbols:
        if not isinstance(s, str) or not s.isascii() or not 0 < len(s) <= 16 or "\0" in s:
            raise bad("symbols", f"each symbol must be 1-16 ASCII characters: symbol={s!r}")
    if len(set(symbols)) != len(symbols):
        raise bad("symbols", f"listed twice: symbols={symbols!r}")
    if not -(2**31) <= values["md_stream"] < 2**31:
        raise bad("md_stream", f"must be a 32-bit stream id: value={values['md_stream']}")
    from tickline.transport.uri import ChannelError, ChannelUri

    try:
        ChannelUri.parse(values.get("md_channel", "aeron:ipc"), strict=False)
    except (ChannelError, ValueError) as e:
        raise bad("md_channel", f"not an Aeron channel: {e}") from None
    prefix = values.get("cl_ord_id_prefix", "")
    if prefix and not _PREFIX.match(prefix):
        raise bad("cl_ord_id_prefix", f"must be 1-8 characters of [A-Za-z0-9_]: value={prefix!r}")
    if values.get("cl_ord_id_seed", 0) < 0:
        raise bad("cl_ord_id_seed", f"must be >= 0: value={values['cl_ord_id_seed']}")
    if values.get("idle", "backoff") not in _IDLE:
        raise bad("idle", f"unknown idle strategy: value={values['idle']!r} known={'|'.join(_IDLE)}")
    if not 1 <= values.get("fragment_limit", 64) <= 65536:
        raise bad("fragment_limit", f"must be 1..65536: value={values['fragment_limit']}")
    if not 0 <= values.get("max_pending_sends", 1024) <= 1_000_000:
        raise bad("max_pending_sends", f"must be 0..1000000: value={values['max_pending_sends']}")
    gateway = values.get("gateway", {"kind": "sequencer"})
    if not isinstance(gateway, Mapping):
        raise bad("gateway", "must be a table")
    kind = gateway.get("kind")
    if not isinstance(kind, str) or not (kind in ("sequencer", "simulated") or re.match(r"^[\w.]+:[\w.]+$", kind)):
        raise bad("gateway.kind", f"must be sequencer | simulated | module:callable: value={kind!r}")
    params = values.get("params", {})
    if not isinstance(params, Mapping):
        raise bad("params", "must be a table")
    values["symbols"] = tuple(symbols)
    values["gateway"] = dict(gateway)
    values["params"] = dict(params)
    return StrategyConfig(**values, source=source, section=section)


def load_toml(path: str, section: str = "strategy", env: Mapping[str, str] | None = None) -> StrategyConfig:
    """Read ``path`` and validate its ``section`` (dotted: ``strategies.mm1``)."""
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as e:
        raise _error(path, section, f"cannot read the file: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise _error(path, section, f"not valid TOML: {e}") from None
    table: Any = doc
    for part in section.split("."):
        if not isinstance(table, Mapping) or part not in table:
            raise _error(path, section, "missing section")
        table = table[part]
    return load_config(table, source=path, section=section, env=env)


def validate_params(cls: Any, config: StrategyConfig) -> Any:
    """Build ``cls.Params`` (a dataclass on the strategy class) from ``config.params``: unknown keys,
    missing required ones and wrong types name the key; ``Params.validate()`` (if any) may raise
    ValueError with a reason, reported against the section."""
    params_cls = getattr(cls, "Params", None)
    if params_cls is None:
        if config.params:
            raise config.error(f"params.{next(iter(config.params))}", f"{cls.__name__} takes no params")
        return None
    if not dataclasses.is_dataclass(params_cls):
        raise TypeError(f"{cls.__name__}.Params must be a dataclass: fault=ours")
    hints = typing.get_type_hints(params_cls)
    fields = {f.name: f for f in dataclasses.fields(params_cls)}
    for k in config.params:
        if k not in fields:
            raise config.error(f"params.{k}", f"unknown parameter of {cls.__name__} (known: {', '.join(fields)})")
    kwargs = {}
    for name, f in fields.items():
        if name not in config.params:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise config.error(f"params.{name}", "missing (required)")
            continue
        v = config.params[name]
        want = hints.get(name, Any)
        if not _type_ok(v, want):
            raise config.error(f"params.{name}", f"must be {getattr(want, '__name__', want)}: value={v!r}")
        kwargs[name] = float(v) if want is float else (tuple(v) if isinstance(v, list) else v)
    p = params_cls(**kwargs)
    check = getattr(p, "validate", None)
    if check is not None:
        try:
            check()
        except ValueError as e:
            raise config.error("params", str(e)) from None
    return p


def _type_ok(v: Any, want: Any) -> bool:
    if want is Any:
        return True
    if want is float:
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if want is int:
        return isinstance(v, int) and not isinstance(v, bool)
    if want in (str, bool):
        return isinstance(v, want)
    origin = typing.get_origin(want)
    if origin in (tuple, list):
        args = [a for a in typing.get_args(want) if a is not Ellipsis]
        return isinstance(v, (list, tuple)) and all(_type_ok(x, args[0] if args else Any) for x in v)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return any(_type_ok(v, a) for a in typing.get_args(want) if a is not type(None)) or v is None
    return isinstance(v, want) if isinstance(want, type) else True
