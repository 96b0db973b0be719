"""The archive's messages as bytes: SBE messages of ``schemas/archive.xml``
(schema 103), packed by hand with ``struct`` (the tests hold every message to
the schema both ways through the on-the-fly codec).

``encode(message) -> bytes`` and ``decode(buffer) -> message``.  ``decode``
treats its input as hostile: a short buffer, another schema, an unknown
template, a var field running past the end, bad UTF-8 or an enum value out of
range raise ``ArchiveProtocolError`` (fault=peer) naming the message and the
offset.  A longer fixed block (a newer version's) is read and its extra bytes
skipped, as SBE's extension rules say; a version 0 ``RecordingDescriptor``
(a catalog written before checksums and migration) is read with its version 1
fields at their defaults (no checksum, segments in the archive's directory).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Union

from .errors import ArchiveProtocolError, ErrorCode

SCHEMA_ID = 103
SCHEMA_VERSION = 1
MAX_STRING = 4096  # channels, identities and error texts: longer is refused, both ways
NULL_STREAM = -(2**31)

_HEADER = struct.Struct("<HHHH")
_LEN = struct.Struct("<I")


class RecordingState:
    RECORDING = 0
    STOPPED = 1
    INVALID = 2
    NAMES = {0: "RECORDING", 1: "STOPPED", 2: "INVALID"}


class ChecksumType:
    NONE = 0
    CRC32C = 1
    NAMES = {0: "none", 1: "crc32c"}


class ResponseCode:
    OK = 0
    ERROR = 1


@dataclass(frozen=True)
class ConnectRequest:
    correlation_id: int
    response_stream_id: int
    version: int
    response_channel: str
    TEMPLATE: ClassVar[int] = 1
    BLOCK: ClassVar[str] = "qii"


@dataclass(frozen=True)
class CloseSessionRequest:
    control_session_id: int
    TEMPLATE: ClassVar[int] = 2
    BLOCK: ClassVar[str] = "q"


@dataclass(frozen=True)
class StartRecordingRequest:
    control_session_id: int
    correlation_id: int
    stream_id: int
    channel: str
    TEMPLATE: ClassVar[int] = 3
    BLOCK: ClassVar[str] = "qqi"


@dataclass(frozen=True)
class StopRecordingRequest:
    control_session_id: int
    correlation_id: int
    subscription_id: int
    TEMPLATE: ClassVar[int] = 4
    BLOCK: ClassVar[str] = "qqq"


@dataclass(frozen=True)
class ListRecordingsRequest:
    control_session_id: int
    correlation_id: int
    from_recording_id: int
    record_count: int
    stream_id: int  # NULL_STREAM: any
    channel_fragment: str
    TEMPLATE: ClassVar[int] = 5
    BLOCK: ClassVar[str] = "qqqii"


@dataclass(frozen=True)
class ReplayRequest:
    control_session_id: int
    correlation_id: int
    recording_id: int
    position: int
    length: int
    replay_stream_id: int
    replay_channel: str
    TEMPLATE: ClassVar[int] = 6
    BLOCK: ClassVar[str] = "qqqqqi"


@dataclass(frozen=True)
class StopReplayRequest:
    control_session_id: int
    correlation_id: int
    replay_session_id: int
    TEMPLATE: ClassVar[int] = 7
    BLOCK: ClassVar[str] = "qqq"


@dataclass(frozen=True)
class TruncateRecordingRequest:
    control_session_id: int
    correlation_id: int
    recording_id: int
    position: int
    TEMPLATE: ClassVar[int] = 8
    BLOCK: ClassVar[str] = "qqqq"


@dataclass(frozen=True)
class PurgeRecordingRequest:
    control_session_id: int
    correlation_id: int
    recording_id: int
    TEMPLATE: ClassVar[int] = 9
    BLOCK: ClassVar[str] = "qqq"


@dataclass(frozen=True)
class ExtendRecordingRequest:
    control_session_id: int
    correlation_id: int
    recording_id: int
    stream_id: int
    channel: str
    TEMPLATE: ClassVar[int] = 10
    BLOCK: ClassVar[str] = "qqqi"


@dataclass(frozen=True)
class MigrateRecordingRequest:
    control_session_id: int
    correlation_id: int
    recording_id: int
    destination_dir: str
    TEMPLATE: ClassVar[int] = 11
    BLOCK: ClassVar[str] = "qqq"


@dataclass(frozen=True)
class ControlResponse:
    control_session_id: int
    correlation_id: int
    relevant_id: int
    code: int  # ResponseCode
    error_code: ErrorCode
    error_message: str
    TEMPLATE: ClassVar[int] = 20
    BLOCK: ClassVar[str] = "qqqBH"


@dataclass(frozen=True)
class RecordingDescriptor:
    control_session_id: int
    correlation_id: int
    recording_id: int
    start_timestamp: int
    stop_timestamp: int
    start_position: int
    stop_position: int
    segment_file_length: int
    initial_term_id: int
    term_buffer_length: int
    mtu_length: int
    session_id: int
    stream_id: int
    state: int  # RecordingState
    stripped_channel: str
    original_channel: str
    source_identity: str
    checksum: int = 0  # ChecksumType (version 1)
    segment_dir: str = ""  # version 1: where the segments are when migrated ("" = the archive's directory)
    TEMPLATE: ClassVar[int] = 21
    BLOCK: ClassVar[str] = "qqqqqqqqiiiiiBB"
    # The wire order (fixed block, then var data) where it differs from the field order.
    ORDER: ClassVar[tuple[str, ...]] = (
        "control_session_id", "correlation_id", "recording_id", "start_timestamp", "stop_timestamp", "start_position",
        "stop_position", "segment_file_length", "initial_term_id", "term_buffer_length", "mtu_length", "session_id",
        "stream_id", "state", "checksum", "stripped_channel", "original_channel", "source_identity", "segment_dir")
    SINCE_V1: ClassVar[tuple[str, ...]] = ("checksum", "segment_dir")


@dataclass(frozen=True)
class RecordingStarted:
    recording_id: int
    start_position: int
    session_id: int
    stream_id: int
    channel: str
    source_identity: str
    TEMPLATE: ClassVar[int] = 30
    BLOCK: ClassVar[str] = "qqii"


@dataclass(frozen=True)
class RecordingProgress:
    recording_id: int
    start_position: int
    position: int
    TEMPLATE: ClassVar[int] = 31
    BLOCK: ClassVar[str] = "qqq"


@dataclass(frozen=True)
class RecordingStopped:
    recording_id: int
    start_position: int
    stop_position: int
    TEMPLATE: ClassVar[int] = 32
    BLOCK: ClassVar[str] = "qqq"


Message = Union[
    ConnectRequest, CloseSessionRequest, StartRecordingRequest, StopRecordingRequest, ListRecordingsRequest,
    ReplayRequest, StopReplayRequest, TruncateRecordingRequest, PurgeRecordingRequest, ExtendRecordingRequest,
    MigrateRecordingRequest, ControlResponse, RecordingDescriptor, RecordingStarted, RecordingProgress, RecordingStopped,
]

_TYPES: list[type] = [
    ConnectRequest, CloseSessionRequest, StartRecordingRequest, StopRecordingRequest, ListRecordingsRequest,
    ReplayRequest, StopReplayRequest, TruncateRecordingRequest, PurgeRecordingRequest, ExtendRecordingRequest,
    MigrateRecordingRequest, ControlResponse, RecordingDescriptor, RecordingStarted, RecordingProgress, RecordingStopped,
]


class _Layout:
    """One message type's layout: its fixed block and the names of its var strings, in order."""

    def __init__(self, cls: type) -> None:
        self.cls = cls
        self.block = struct.Struct("<" + cls.BLOCK)  # type: ignore[attr-defined]
        names = list(getattr(cls, "ORDER", None) or [f.name for f in fields(cls)])
        self.n_fixed = len(cls.BLOCK)  # type: ignore[attr-defined]
        self.fixed = names[: self.n_fixed]
        self.strings = names[self.n_fixed:]
        # Version 0's layout: without the fields added since (fixed ones end the block).
        since = set(getattr(cls, "SINCE_V1", ()))
        fixed_v0 = [n for n in self.fixed if n not in since]
        self.fixed_v0 = fixed_v0
        self.block_v0 = struct.Struct("<" + cls.BLOCK[: len(fixed_v0)])  # type: ignore[attr-defined]
        self.strings_v0 = [n for n in self.strings if n not in since]


_BY_TYPE = {cls: _Layout(cls) for cls in _TYPES}
_BY_TEMPLATE = {cls.TEMPLATE: layout for cls, layout in _BY_TYPE.items()}  # type: ignore[attr-defined]


def block_length(cls: type) -> int:
    return _BY_TYPE[cls].block.size


def encode(message: Message) -> bytes:
    """The SBE bytes of ``message`` (header included).  ValueError (fault=user) for a
    string longer than ``MAX_STRING`` bytes or a number out of its field's range."""
    layout = _BY_TYPE[type(message)]
    values = [getattr(message, n) for n in layout.fixed]
    try:
        out = [_HEADER.pack(layout.block.size, layout.cls.TEMPLATE, SCHEMA_ID, SCHEMA_VERSION),  # type: ignore[attr-defined]
               layout.block.pack(*values)]
    except struct.error as exc:
        raise ValueError(f"archive message field out of range: message={layout.cls.__name__} error={exc} fault=user") from None
    for name in layout.strings:
        b = getattr(message, name).encode()
        if len(b) > MAX_STRING:
            raise ValueError(f"archive message text too long: message={layout.cls.__name__} field={name} "
                             f"length={len(b)} max={MAX_STRING} fault=user")
        out.append(_LEN.pack(len(b)))
        out.append(b)
    return b"".join(out)


def template_of(buf: bytes | bytearray | memoryview) -> int | None:
    """The template id of an archive message in ``buf``, or None when it is not one."""
    if len(buf) < _HEADER.size:
        return None
    _bl, template, schema, _v = _HEADER.unpack_from(buf, 0)
    return template if schema == SCHEMA_ID else None


def decode(buf: bytes | bytearray | memoryview) -> Message:
    """The message in ``buf`` (exactly one; trailing bytes are refused)."""
    n = len(buf)
    if n < _HEADER.size:
        raise ArchiveProtocolError("archive message shorter than its header", length=n)
    bl, template, schema, version = _HEADER.unpack_from(buf, 0)
    if schema != SCHEMA_ID:
        raise ArchiveProtocolError("not an archive message", schema_id=schema, expected=SCHEMA_ID, template_id=template)
    layout = _BY_TEMPLATE.get(template)
    if layout is None:
        raise ArchiveProtocolError("unknown archive message template", template_id=template)
    name = layout.cls.__name__
    block, fixed, strings = layout.block, layout.fixed, layout.strings
    if version == 0:  # acting version 0: the fields added since are absent (their defaults)
        block, fixed, strings = layout.block_v0, layout.fixed_v0, layout.strings_v0
    if bl < block.size:
        raise ArchiveProtocolError("archive message block too short", message=name, block_length=bl, expected=block.size,
                                   version=version)
    if _HEADER.size + bl > n:
        raise ArchiveProtocolError("archive message truncated in its block", message=name, length=n, needed=_HEADER.size + bl)
    values: dict[str, Any] = dict(zip(fixed, block.unpack_from(buf, _HEADER.size)))
    pos = _HEADER.size + bl
    for field in strings:
        if pos + 4 > n:
            raise ArchiveProtocolError("archive message truncated at a length", message=name, field=field, offset=pos)
        (ln,) = _LEN.unpack_from(buf, pos)
        pos += 4
        if ln > MAX_STRING:
            raise ArchiveProtocolError("archive message text too long", message=name, field=field, offset=pos - 4,
                                       length=ln, max=MAX_STRING)
        if pos + ln > n:
            raise ArchiveProtocolError("archive message truncated in a text", message=name, field=field, offset=pos,
                                       length=ln, available=n - pos)
        try:
            values[field] = bytes(buf[pos:pos + ln]).decode()
        except UnicodeDecodeError as exc:
            raise ArchiveProtocolError("archive message text is not UTF-8", message=name, field=field,
                                       offset=pos + exc.start) from None
        pos += ln
    if pos != n:
        raise ArchiveProtocolError("archive message has trailing bytes", message=name, length=n, used=pos)
    if layout.cls is ControlResponse:
        if values["code"] not in (ResponseCode.OK, ResponseCode.ERROR):
            raise ArchiveProtocolError("control response code out of range", code=values["code"])
        try:
            values["error_code"] = ErrorCode(values["error_code"])
        except ValueError:
            raise ArchiveProtocolError("control response error code out of range", error_code=values["error_code"]) from None
    if layout.cls is RecordingDescriptor and values["state"] not in RecordingState.NAMES:
        raise ArchiveProtocolError("recording state out of range", recording_id=values["recording_id"], state=values["state"])
    if layout.cls is RecordingDescriptor and values.get("checksum", 0) not in ChecksumType.NAMES:
        raise ArchiveProtocolError("recording checksum type out of range", recording_id=values["recording_id"],
                                   checksum=values["checksum"])
    return layout.cls(**values)  # type: ignore[no-any-return]
