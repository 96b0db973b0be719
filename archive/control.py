"""The archive's control protocol as a state machine: no I/O, no clock.

Rules (the invariants the code below keeps):

1. A client opens a control session with ``ConnectRequest``; the archive gives
   it an id and answers on the response channel the client named.  Every other
   request carries that id; a request naming an unknown session has nowhere to
   be answered: it is counted and dropped (``Dropped``), never an exception.
2. Every request that reaches a known session gets exactly one
   ``ControlResponse`` with its correlation id (``list`` first sends its
   descriptors, with the same correlation id), OK or ERROR with a code and a
   message.  A failure is never silent.
3. Bytes that do not decode are the peer's fault: counted, dropped, and the
   archive goes on.
4. Requests are checked against the catalog here (known recording, positions
   in range and frame aligned); checks that need the disk (a position on a
   frame boundary) are the shell's.

``ControlProtocol.on_message(bytes) -> list[Action]``: the shell executes the
actions (open a response publication, start a recording, ...) and sends the
responses built by ``ok()``/``error()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from . import wire
from .errors import ArchiveProtocolError, ErrorCode, RequestError
from .wire import RecordingDescriptor, RecordingState

__all__ = ["ControlProtocol", "OpenSession", "CloseSession", "Execute", "Dropped", "Action", "plan_replay", "ReplayPlan"]

PROTOCOL_VERSION = 1
FRAME_ALIGNMENT = 32


@dataclass(frozen=True)
class OpenSession:
    """Make a response publication to ``channel``/``stream_id`` for session ``session_id``,
    then answer ``correlation_id`` with OK (relevant id: the session id)."""

    session_id: int
    correlation_id: int
    channel: str
    stream_id: int


@dataclass(frozen=True)
class CloseSession:
    session_id: int


@dataclass(frozen=True)
class Execute:
    """A request of a known session, for the shell to carry out and answer."""

    session_id: int
    request: wire.Message


@dataclass(frozen=True)
class Dropped:
    """A message that cannot be answered: why, for the log and the counters."""

    reason: str
    detail: str


Action = Union[OpenSession, CloseSession, Execute, Dropped]

_REQUESTS = (wire.StartRecordingRequest, wire.StopRecordingRequest, wire.ListRecordingsRequest, wire.ReplayRequest,
             wire.StopReplayRequest, wire.TruncateRecordingRequest, wire.PurgeRecordingRequest, wire.ExtendRecordingRequest,
             wire.MigrateRecordingRequest)


class ControlProtocol:
    """Control sessions of one archive.  ``max_sessions`` bounds the table (a
    connect beyond it is answered with an error and not kept)."""

    def __init__(self, max_sessions: int = 256, first_session_id: int = 1) -> None:
        self.max_sessions = max_sessions
        self.sessions: dict[int, tuple[str, int]] = {}
        self._next_id = first_session_id
        self.dropped = 0

    def on_message(self, data: bytes | bytearray | memoryview) -> list[Action]:
        try:
            m = wire.decode(data)
        except ArchiveProtocolError as exc:
            self.dropped += 1
            return [Dropped("undecodable", str(exc))]
        if isinstance(m, wire.ConnectRequest):
            if len(self.sessions) >= self.max_sessions:
                # Answer on the channel it named: the shell opens it only to say no.
                return [OpenSession(-1, m.correlation_id, m.response_channel, m.response_stream_id)]
            sid = self._next_id
            self._next_id += 1
            self.sessions[sid] = (m.response_channel, m.response_stream_id)
            return [OpenSession(sid, m.correlation_id, m.response_channel, m.response_stream_id)]
        if isinstance(m, wire.CloseSessionRequest):
            if self.sessions.pop(m.control_session_id, None) is None:
                self.dropped += 1
                return [Dropped("unknown session", f"control_session_id={m.control_session_id} request=CloseSessionRequest")]
            return [CloseSession(m.control_session_id)]
        if isinstance(m, _REQUESTS):
            if m.control_session_id not in self.sessions:
                self.dropped += 1
                return [Dropped("unknown session", f"control_session_id={m.control_session_id} request={type(m).__name__}"
                                                   f" correlation_id={m.correlation_id}")]
            return [Execute(m.control_session_id, m)]
        self.dropped += 1
        return [Dropped("not a request", f"message={type(m).__name__}")]

    def close_session(self, session_id: int) -> None:
        """The shell lost the session's response publication (or timed it out)."""
        self.sessions.pop(session_id, None)


def ok(session_id: int, correlation_id: int, relevant_id: int = 0) -> bytes:
    return wire.encode(wire.ControlResponse(session_id, correlation_id, relevant_id, wire.ResponseCode.OK, ErrorCode.NONE, ""))


def error(session_id: int, correlation_id: int, code: ErrorCode, message: str, relevant_id: int = 0) -> bytes:
    text = message.encode()[: wire.MAX_STRING].decode(errors="ignore")
    return wire.encode(wire.ControlResponse(session_id, correlation_id, relevant_id, wire.ResponseCode.ERROR, code, text))


def check_stopped(d: RecordingDescriptor | None, recording_id: int, what: str, replaying: bool) -> RecordingDescriptor:
    """The recording ``what`` (truncate, purge) may change: known, stopped, not being replayed."""
    if d is None:
        raise RequestError("unknown recording", recording_id=recording_id, code=ErrorCode.UNKNOWN_RECORDING)
    if d.state == RecordingState.RECORDING:
        raise RequestError(f"cannot {what} a recording still recording", recording_id=recording_id,
                           code=ErrorCode.RECORDING_ACTIVE)
    if replaying:
        raise RequestError(f"cannot {what} a recording being replayed", recording_id=recording_id,
                           code=ErrorCode.RECORDING_ACTIVE)
    return d


@dataclass(frozen=True)
class ReplayPlan:
    """Where a replay starts, and where it ends (None: at the recording's stop,
    following it live until then)."""

    position: int
    end: int | None


def plan_replay(d: RecordingDescriptor | None, recording_id: int, position: int, length: int,
                live_position: int | None) -> ReplayPlan:
    """Check a replay request against the recording; ``live_position`` is the
    recorder's position when the recording is active.  Raises ``RequestError``
    with the protocol's error code."""
    if d is None:
        raise RequestError("unknown recording", recording_id=recording_id, code=ErrorCode.UNKNOWN_RECORDING)
    if d.state == RecordingState.INVALID:
        raise RequestError("recording is invalid", recording_id=recording_id, code=ErrorCode.STORAGE, fault="storage")
    active = d.state == RecordingState.RECORDING
    available = (live_position if live_position is not None else d.start_position) if active else d.stop_position
    start = d.start_position if position == -1 else position
    if start < d.start_position or start % FRAME_ALIGNMENT:
        raise RequestError("replay position before the start or not frame aligned", recording_id=recording_id,
                           position=start, start_position=d.start_position, code=ErrorCode.BAD_POSITION)
    if start > available:
        raise RequestError("replay position past the recorded position", recording_id=recording_id, position=start,
                           stop_position=available, code=ErrorCode.BAD_POSITION)
    if length == -1:
        return ReplayPlan(start, None if active else d.stop_position)
    if length < 0:
        raise RequestError("replay length must be >= 0 or -1 (unbounded)", recording_id=recording_id, length=length,
                           code=ErrorCode.BAD_REQUEST)
    end = start + length
    if not active and end > d.stop_position:
        raise RequestError("replay runs past the stop position", recording_id=recording_id, position=start,
                           length=length, stop_position=d.stop_position, code=ErrorCode.BAD_POSITION)
    if end % FRAME_ALIGNMENT:
        raise RequestError("replay end not frame aligned", recording_id=recording_id, position=start, length=length,
                           code=ErrorCode.BAD_POSITION)
    return ReplayPlan(start, end)
