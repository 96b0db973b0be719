"""The archive's configuration: one validated object, every option also settable
from the environment (``TICKLINE_ARCHIVE_<OPTION>``, e.g.
``TICKLINE_ARCHIVE_SEGMENT_LENGTH=64m``), checked at start with errors that
name the option (and the variable, when it came from one)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Mapping

from ..transport.uri import ChannelError, ChannelUri, parse_size
from .errors import ConfigError

__all__ = ["ArchiveConfig", "read_archive_section", "record_streams", "DEFAULT_CONTROL_STREAM_ID", "DEFAULT_EVENTS_STREAM_ID", "DEFAULT_RESPONSE_STREAM_ID"]

DEFAULT_CONTROL_STREAM_ID = 10010
DEFAULT_RESPONSE_STREAM_ID = 10020
DEFAULT_EVENTS_STREAM_ID = 10030
FSYNC_POLICIES = ("none", "segment", "stop")
CHECKSUMS = ("none", "crc32c")


def _int(name: str, value: object) -> int:
    if isinstance(value, bool):
        raise ConfigError("archive option must be an integer", option=name, value=value)
    if isinstance(value, int):
        return value
    try:
        return int(str(value), 0)
    except ValueError:
        raise ConfigError("archive option must be an integer", option=name, value=value) from None


@dataclass(frozen=True)
class ArchiveConfig:
    """What an archive needs.

    ``dir``: where the catalog and segment files live (created 0700).
    ``control_channel``/``control_stream_id``: where clients send requests.
    ``events_channel``/``events_stream_id``: recording started/progress/stopped
    (``events_channel=""`` turns events off).
    ``segment_length``: bytes per segment file, a power of two >= 64 KiB (a
    recording whose term is longer uses one term per segment).
    ``fsync``: ``none``, ``segment`` (each full segment and at stop), ``stop``
    (at stop), or ``<N>ms`` (every N ms and at stop).
    ``checksum``: ``none`` or ``crc32c``: new recordings keep a CRC-32C of each
    data frame's payload in the frame's reserved value; verify and replay
    check it.  A recording keeps the checksum it started with (the catalog
    says which), whatever later configs say.
    ``record_block_bytes``/``replay_block_bytes``: the most one native call copies.
    ``migrate_block_bytes``: the most a migration copies per duty cycle.
    ``replay_connect_timeout_s``: how long a replay waits for its subscriber.
    ``session_timeout_s``: a control session whose response stream has no
    subscriber for this long is closed (a client that died without closing).
    ``max_sessions``/``max_replays``: bounds of those tables.
    """

    dir: str
    control_channel: str = "aeron:ipc"
    control_stream_id: int = DEFAULT_CONTROL_STREAM_ID
    events_channel: str = "aeron:ipc"
    events_stream_id: int = DEFAULT_EVENTS_STREAM_ID
    segment_length: int = 64 * 1024 * 1024
    fsync: str = "stop"
    checksum: str = "none"
    record_block_bytes: int = 1024 * 1024
    replay_block_bytes: int = 64 * 1024
    migrate_block_bytes: int = 4 * 1024 * 1024
    replay_connect_timeout_s: float = 5.0
    session_timeout_s: float = 10.0
    max_sessions: int = 256
    max_replays: int = 64

    def __post_init__(self) -> None:
        if not self.dir:
            raise ConfigError("archive dir is required", option="dir")
        for option in ("control_channel", "events_channel"):
            value = getattr(self, option)
            if option == "events_channel" and value == "":
                continue
            try:
                ChannelUri.parse(value, strict=False)
            except ChannelError as exc:
                raise ConfigError("archive channel invalid", option=option, error=str(exc)) from None
        for option in ("control_stream_id", "events_stream_id"):
            if not -(2**31) <= getattr(self, option) < 2**31:
                raise ConfigError("stream id must be a 32-bit integer", option=option, value=getattr(self, option))
        s = self.segment_length
        if s < 64 * 1024 or s > 2**40 or s & (s - 1):
            raise ConfigError("segment length must be a power of two in [64 KiB, 1 TiB]", option="segment_length", value=s)
        self.fsync_interval_ms()  # validates
        if self.checksum not in CHECKSUMS:
            raise ConfigError("checksum must be none or crc32c", option="checksum", value=self.checksum)
        if not 4096 <= self.record_block_bytes <= 2**30:
            raise ConfigError("record block bytes out of range [4096, 1 GiB]", option="record_block_bytes", value=self.record_block_bytes)
        if not 4096 <= self.migrate_block_bytes <= 2**30:
            raise ConfigError("migrate block bytes out of range [4096, 1 GiB]", option="migrate_block_bytes",
                              value=self.migrate_block_bytes)
        if not 4096 <= self.replay_block_bytes <= 2**24:
            raise ConfigError("replay block bytes out of range [4096, 16 MiB]", option="replay_block_bytes", value=self.replay_block_bytes)
        if not 0 < self.replay_connect_timeout_s <= 3600:
            raise ConfigError("replay connect timeout out of range (0, 3600] s", option="replay_connect_timeout_s",
                              value=self.replay_connect_timeout_s)
        if not 0 < self.session_timeout_s <= 86400:
            raise ConfigError("session timeout out of range (0, 86400] s", option="session_timeout_s", value=self.session_timeout_s)
        for option in ("max_sessions", "max_replays"):
            if not 1 <= getattr(self, option) <= 100_000:
                raise ConfigError("limit out of range [1, 100000]", option=option, value=getattr(self, option))

    def checksum_type(self) -> int:
        """The ``ChecksumType`` of ``checksum`` (what the catalog and the native code take)."""
        return CHECKSUMS.index(self.checksum)

    def fsync_interval_ms(self) -> int | None:
        """The period of an ``<N>ms`` fsync policy, else None."""
        if self.fsync in FSYNC_POLICIES:
            return None
        if self.fsync.endswith("ms") and self.fsync[:-2].isdigit() and 1 <= int(self.fsync[:-2]) <= 3_600_000:
            return int(self.fsync[:-2])
        raise ConfigError("fsync policy must be none, segment, stop or <N>ms (1..3600000)", option="fsync", value=self.fsync)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **options: object) -> "ArchiveConfig":
        """``options`` overridden by ``TICKLINE_ARCHIVE_*`` variables from ``env`` (default ``os.environ``)."""
        env = os.environ if env is None else env
        values: dict[str, object] = dict(options)
        for f in dataclasses.fields(cls):
            var = "TICKLINE_ARCHIVE_" + f.name.upper()
            if var in env:
                values[f.name] = env[var]
        typed: dict[str, object] = {}
        for f in dataclasses.fields(cls):
            if f.name not in values:
                continue
            v = values[f.name]
            var = "TICKLINE_ARCHIVE_" + f.name.upper()
            try:
                if f.name == "segment_length" or f.name.endswith("_bytes"):
                    typed[f.name] = v if isinstance(v, int) and not isinstance(v, bool) else parse_size(str(v))
                elif f.type in ("int",):
                    typed[f.name] = _int(f.name, v)
                elif f.type in ("float",):
                    typed[f.name] = float(v)  # type: ignore[arg-type]
                else:
                    typed[f.name] = str(v)
            except (ValueError, TypeError) as exc:
                where = {"variable": var} if var in env else {}
                raise ConfigError("archive option invalid", option=f.name, value=v, error=str(exc), **where) from None
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError("unknown archive option", option=",".join(sorted(unknown)))
        if "dir" not in typed:
            raise ConfigError("archive dir is required", option="dir", variable="TICKLINE_ARCHIVE_DIR")
        return cls(**typed)  # type: ignore[arg-type]


def read_archive_section(path: str | os.PathLike[str]) -> dict[str, object]:
    """The ``[archive]`` table of the TOML topology file at ``path``: ArchiveConfig's options by
    name, plus ``aeron_dir`` (the media driver the daemon uses) and ``record`` (:func:`record_streams`).  ``ConfigError`` names the file
    (and the key) when it can't be read, has no such table, or has a key nobody reads."""
    import tomllib

    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError("cannot read topology file", file=path, error=str(exc)) from None
    table = doc.get("archive")
    if not isinstance(table, dict):
        raise ConfigError("topology file has no [archive] section", file=path)
    known = {f.name for f in dataclasses.fields(ArchiveConfig)} | {"aeron_dir", "record"}
    for key in table:
        if key not in known:
            raise ConfigError("unknown key in [archive]", file=path, key=key, known=",".join(sorted(known)))
    return dict(table)


def record_streams(value: object) -> list[tuple[str, int]]:
    """``record = [{ channel = "aeron:ipc", stream = 1003 }, ...]``: the streams the daemon records from
    its start, as (channel, stream id); ``ConfigError`` names the entry and what is wrong."""
    if not isinstance(value, list):
        raise ConfigError("record must be a list of { channel, stream } tables", key="record", value=value)
    out: list[tuple[str, int]] = []
    for i, e in enumerate(value):
        if not isinstance(e, dict) or set(e) - {"channel", "stream"}:
            raise ConfigError("record entry must be a table with keys channel and stream", key=f"record[{i}]", value=e)
        channel, stream = e.get("channel", "aeron:ipc"), e.get("stream")
        if not isinstance(stream, int) or isinstance(stream, bool) or not -(2**31) <= stream < 2**31:
            raise ConfigError("record entry needs a 32-bit stream id", key=f"record[{i}].stream", value=stream)
        if not isinstance(channel, str):
            raise ConfigError("record entry channel must be text", key=f"record[{i}].channel", value=channel)
        try:
            ChannelUri.parse(channel, strict=False)
        except ChannelError as exc:
            raise ConfigError("record entry channel invalid", key=f"record[{i}].channel", error=str(exc)) from None
        if (channel, stream) in out:
            raise ConfigError("stream recorded twice", key=f"record[{i}]", channel=channel, stream=stream)
        out.append((channel, stream))
    return out
