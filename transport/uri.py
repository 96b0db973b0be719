"""Aeron channel URIs: a builder and a parser that validate as they go.

A channel is ``aeron:ipc`` or ``aeron:udp``, then optionally ``?`` and
``key=value`` pairs separated by ``|``::

    aeron:udp?endpoint=127.0.0.1:40123|mtu=1408|term-length=65536
    aeron:udp?control=127.0.0.1:40124|control-mode=dynamic
    aeron:ipc?term-length=1m

``ChannelUri.ipc()`` / ``ChannelUri.udp()`` build one; ``ChannelUri.parse(s)``
reads one; ``str(uri)`` gives the string the driver takes.  Every value is
checked where it is set and a ``ChannelError`` names the key, the value and
what was expected.  Keys this module doesn't know are refused unless
``strict=False`` (a newer driver may know more).
"""

from __future__ import annotations

import random
import re
import socket
from dataclasses import dataclass, field
from typing import Callable, Mapping

__all__ = ["ChannelError", "ChannelUri", "IPC", "parse_size", "parse_duration_ns", "free_ports"]

IPC = "aeron:ipc"

_PREFIX = "aeron:"
_MEDIA = ("ipc", "udp")
_MIN_TERM_LENGTH = 64 * 1024
_MAX_TERM_LENGTH = 1024 * 1024 * 1024
_FRAME_ALIGNMENT = 32
_HEADER_LENGTH = 32
_MAX_UDP_PAYLOAD = 65504


class ChannelError(ValueError):
    """A channel URI is malformed or has an invalid value (the caller's input)."""


def _fail(uri: str | None, key: str, value: object, expected: str) -> ChannelError:
    where = f" channel={uri!r}" if uri else ""
    return ChannelError(f"invalid channel parameter: key={key} value={value!r} expected={expected}{where}")


_SIZE_RE = re.compile(r"^(\d+)([kKmMgG]?)$")


def parse_size(text: str) -> int:
    """``"65536"``, ``"64k"``, ``"16m"``, ``"1g"`` -> bytes (binary multiples, as Aeron reads them)."""
    m = _SIZE_RE.match(text.strip())
    if not m:
        raise ValueError(f"not a size: value={text!r} expected=digits with optional k|m|g suffix")
    scale = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[m.group(2).lower()]
    return int(m.group(1)) * scale


_DURATION_RE = re.compile(r"^(\d+)(ns|us|ms|s)?$")


def parse_duration_ns(text: str) -> int:
    """``"500"`` (ns), ``"10us"``, ``"5ms"``, ``"2s"`` -> nanoseconds."""
    m = _DURATION_RE.match(text.strip())
    if not m:
        raise ValueError(f"not a duration: value={text!r} expected=digits with optional ns|us|ms|s suffix")
    scale = {None: 1, "ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}[m.group(2)]
    return int(m.group(1)) * scale


def _check_bool(v: str) -> str:
    if v not in ("true", "false"):
        raise ValueError("true|false")
    return v


def _check_term_length(v: str) -> str:
    n = parse_size(v)
    if n < _MIN_TERM_LENGTH or n > _MAX_TERM_LENGTH or n & (n - 1):
        raise ValueError("a power of two from 64k to 1g")
    return v


def _check_mtu(v: str) -> str:
    n = parse_size(v)
    if n <= _HEADER_LENGTH or n > _MAX_UDP_PAYLOAD + _HEADER_LENGTH or n % _FRAME_ALIGNMENT:
        raise ValueError(f"a multiple of {_FRAME_ALIGNMENT} from 64 to {_MAX_UDP_PAYLOAD + _HEADER_LENGTH}")
    return v


def _check_int32(v: str) -> str:
    if v.startswith("tag:"):
        return v
    if not re.match(r"^-?\d+$", v) or not -(2**31) <= int(v) < 2**31:
        raise ValueError("a 32-bit signed integer")
    return v


def _check_non_negative_int(v: str) -> str:
    if not v.isdigit():
        raise ValueError("a non-negative integer")
    return v


def _check_ttl(v: str) -> str:
    if not v.isdigit() or int(v) > 255:
        raise ValueError("an integer 0..255")
    return v


_HOST_PORT_RE = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(\d+)$")


def _check_endpoint(v: str) -> str:
    m = _HOST_PORT_RE.match(v)
    if not m or int(m.group(2)) > 65535:
        raise ValueError("host:port with port 0..65535 (IPv6 in brackets)")
    return v


def _check_interface(v: str) -> str:
    host = v.split("/", 1)[0]
    if not re.match(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+)(:\d+)?$", host):
        raise ValueError("host[:port][/prefix]")
    return v


def _check_duration(v: str) -> str:
    parse_duration_ns(v)
    return v


def _check_size(v: str) -> str:
    parse_size(v)
    return v


def _one_of(*values: str) -> Callable[[str], str]:
    def check(v: str) -> str:
        if v not in values:
            raise ValueError("|".join(values))
        return v

    return check


def _any(v: str) -> str:
    if not v or any(c in v for c in "|?"):
        raise ValueError("a non-empty value without '|' or '?'")
    return v


# key -> (validator, media it applies to)
_PARAMS: dict[str, tuple[Callable[[str], str], tuple[str, ...]]] = {
    "endpoint": (_check_endpoint, ("udp",)),
    "control": (_check_endpoint, ("udp",)),
    "control-mode": (_one_of("manual", "dynamic", "response"), ("udp",)),
    "interface": (_check_interface, ("udp",)),
    "ttl": (_check_ttl, ("udp",)),
    "mtu": (_check_mtu, ("udp", "ipc")),
    "term-length": (_check_term_length, ("udp", "ipc")),
    "init-term-id": (_check_int32, ("udp", "ipc")),
    "term-id": (_check_int32, ("udp", "ipc")),
    "term-offset": (_check_non_negative_int, ("udp", "ipc")),
    "session-id": (_check_int32, ("udp", "ipc")),
    "linger": (_check_duration, ("udp", "ipc")),
    "reliable": (_check_bool, ("udp",)),
    "sparse": (_check_bool, ("udp", "ipc")),
    "tether": (_check_bool, ("udp", "ipc")),
    "rejoin": (_check_bool, ("udp", "ipc")),
    "group": (_check_bool, ("udp",)),
    "eos": (_check_bool, ("udp", "ipc")),
    "ssc": (_check_bool, ("udp", "ipc")),
    "spies-simulate-connection": (_check_bool, ("udp", "ipc")),
    "tags": (_any, ("udp", "ipc")),
    "alias": (_any, ("udp", "ipc")),
    "cc": (_any, ("udp",)),
    "fc": (_any, ("udp",)),
    "gtag": (_any, ("udp",)),
    "so-sndbuf": (_check_size, ("udp",)),
    "so-rcvbuf": (_check_size, ("udp",)),
    "rcv-wnd": (_check_size, ("udp",)),
    "max-resend": (_check_non_negative_int, ("udp",)),
    "untethered-window-limit-timeout": (_check_duration, ("udp", "ipc")),
    "untethered-resting-timeout": (_check_duration, ("udp", "ipc")),
    "pub-wnd": (_check_size, ("udp", "ipc")),
}

# Python keyword (builder argument) -> URI key
_KWARG_KEYS = {k.replace("-", "_"): k for k in _PARAMS}


@dataclass
class ChannelUri:
    """An Aeron channel: ``media`` (``ipc`` or ``udp``) and its parameters in order."""

    media: str
    params: dict[str, str] = field(default_factory=dict)
    strict: bool = True

    def __post_init__(self) -> None:
        if self.media not in _MEDIA:
            raise ChannelError(f"unknown channel media: media={self.media!r} expected=ipc|udp")
        checked: dict[str, str] = {}
        for k, v in self.params.items():
            checked[k] = self._check(k, v)
        self.params = checked

    # -- building ---------------------------------------------------------
    @classmethod
    def ipc(cls, **params: object) -> "ChannelUri":
        """``ChannelUri.ipc(term_length="1m")`` -> ``aeron:ipc?term-length=1m``."""
        return cls("ipc", _kwargs_to_params(params))

    @classmethod
    def udp(cls, endpoint: str | None = None, **params: object) -> "ChannelUri":
        """``ChannelUri.udp("127.0.0.1:40123", mtu=1408)``; MDC: ``udp(control=..., control_mode="dynamic")``."""
        p: dict[str, object] = {"endpoint": endpoint} if endpoint is not None else {}
        p.update(params)
        uri = cls("udp", _kwargs_to_params(p))
        uri.validate()
        return uri

    def set(self, key: str, value: object) -> "ChannelUri":
        """Set one parameter by its URI key (``"term-length"``); returns self for chaining."""
        self.params[key] = self._check(key, _to_text(value))
        return self

    def _check(self, key: str, value: str) -> str:
        spec = _PARAMS.get(key)
        check: Callable[[str], str]
        media: tuple[str, ...]
        if spec is None:
            if self.strict:
                raise ChannelError(
                    f"unknown channel parameter: key={key!r} media={self.media} "
                    f"(known: {', '.join(sorted(_PARAMS))}; pass strict=False for keys a newer driver knows)"
                )
            check, media = _any, _MEDIA
        else:
            check, media = spec
        if self.media not in media:
            raise ChannelError(f"channel parameter not valid for this media: key={key} media={self.media}")
        try:
            return check(value)
        except ValueError as e:
            raise _fail(None, key, value, str(e).split("expected=")[-1]) from None

    def validate(self) -> "ChannelUri":
        """Whole-URI rules: a UDP channel needs an endpoint, a control address or manual control mode."""
        if self.media == "udp":
            mode = self.params.get("control-mode")
            if mode == "dynamic" and "control" not in self.params:
                raise ChannelError(f"control-mode=dynamic needs control=host:port: channel={str(self)!r}")
            if "endpoint" not in self.params and "control" not in self.params and mode not in ("manual", "response"):
                raise ChannelError(
                    f"udp channel needs endpoint=, control= or control-mode=manual: channel={str(self)!r}"
                )
        return self

    # -- reading ----------------------------------------------------------
    @classmethod
    def parse(cls, text: str, strict: bool = True) -> "ChannelUri":
        """Parse and validate a channel string; ``ChannelError`` says what is wrong and where."""
        if not isinstance(text, str):
            raise ChannelError(f"channel must be a str: type={type(text).__name__}")
        if not text.startswith(_PREFIX):
            raise ChannelError(f"channel must start with 'aeron:': channel={text!r}")
        body = text[len(_PREFIX):]
        if body.startswith("[") or "?" not in body and "|" in body:
            raise ChannelError(f"malformed channel: channel={text!r}")
        media, _, query = body.partition("?")
        if media not in _MEDIA:
            raise ChannelError(f"unknown channel media: media={media!r} expected=ipc|udp channel={text!r}")
        params: dict[str, str] = {}
        if query:
            for i, part in enumerate(query.split("|")):
                key, eq, value = part.partition("=")
                if not eq or not key:
                    raise ChannelError(f"malformed channel parameter: position={i} text={part!r} expected=key=value channel={text!r}")
                if key in params:
                    raise ChannelError(f"duplicate channel parameter: key={key} channel={text!r}")
                params[key] = value
        elif body.endswith("?"):
            raise ChannelError(f"malformed channel: empty parameter list after '?': channel={text!r}")
        try:
            uri = cls(media, params, strict=strict)
            uri.validate()
        except ChannelError as e:
            msg = str(e)
            if "channel=" not in msg:
                msg += f" channel={text!r}"
            raise ChannelError(msg) from None
        return uri

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.params.get(key, default)

    def __str__(self) -> str:
        if not self.params:
            return _PREFIX + self.media
        return _PREFIX + self.media + "?" + "|".join(f"{k}={v}" for k, v in self.params.items())


def _to_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _kwargs_to_params(kwargs: Mapping[str, object]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in kwargs.items():
        if value is None:
            continue
        key = _KWARG_KEYS.get(name, name)
        out[key] = _to_text(value)
    return out


def channel_str(channel: "str | ChannelUri") -> str:
    """The validated string form of a channel given as text or a ``ChannelUri``."""
    if isinstance(channel, ChannelUri):
        return str(channel.validate())
    return str(ChannelUri.parse(channel))


_EPHEMERAL_RANGE = "/proc/sys/net/ipv4/ip_local_port_range"
_LOWEST_PICKED_PORT = 10000
_PICK_ATTEMPTS = 256


def _ephemeral_low() -> int:
    try:
        with open(_EPHEMERAL_RANGE) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_ports(n: int = 1, host: str = "127.0.0.1", kind: str = "udp") -> list[int]:
    """``n`` distinct ports on ``host`` that were free a moment ago, for endpoints fixed before they are bound.

    They are drawn at random from below the kernel's ephemeral range, so a
    socket that asks the kernel for any port (an Aeron publication's send
    endpoint, a TCP connect) cannot be handed one between this call and the
    bind that uses it; a port from ``bind(0)`` could be, and a member that
    started second then failed with "Address already in use".  Each port is
    checked by binding it, all ``n`` at once.  ``kind`` is ``"udp"`` or ``"tcp"``.
    """
    if kind not in ("udp", "tcp"):
        raise ValueError(f"free_ports: kind={kind!r} expected='udp' or 'tcp'")
    if n < 1:
        raise ValueError(f"free_ports: n={n} expected=at least 1")
    sock_type = socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM
    high = _ephemeral_low()
    rng = random.SystemRandom()  # not the caller's seeded generator: two runs must not draw the same ports
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, sock_type)
            socks.append(s)
            for _ in range(_PICK_ATTEMPTS if high > _LOWEST_PICKED_PORT else 0):
                try:
                    s.bind((host, rng.randrange(_LOWEST_PICKED_PORT, high)))
                    break
                except OSError:
                    continue
            else:  # no room below the ephemeral range, or all of it taken: let the kernel choose
                s.bind((host, 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()
