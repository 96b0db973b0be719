"""``ArchiveClient``: talk to an archive over its control stream.

    with ArchiveClient.connect(aeron) as archive:
        sub_id = archive.start_recording("aeron:ipc", 10)
        ...
        for d in archive.list_recordings(stream_id=10):
            print(d.recording_id, d.start_position, d.stop_position)
        replay_sub = aeron.add_subscription("aeron:ipc", 20)      # subscribe first
        rs = archive.replay(d.recording_id, channel="aeron:ipc", stream_id=20)
        # the replay's image is the one whose session id is replay_image_session_id(rs)

Each call sends one request and waits (polling the response stream, at most
``timeout`` seconds) for its response, matched by correlation id; an ERROR
response raises ``RequestError`` carrying the archive's ``code`` and message;
no response in time raises ``TimeoutError``.  Messages for other control
sessions on a shared response stream are skipped.

Thread safety: one thread per client (it owns a subscription).
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Any, Callable

from .. import _aeron
from . import wire
from .config import DEFAULT_CONTROL_STREAM_ID, DEFAULT_EVENTS_STREAM_ID, DEFAULT_RESPONSE_STREAM_ID
from .control import PROTOCOL_VERSION
from .errors import ArchiveProtocolError, ErrorCode, RequestError
from .wire import RecordingDescriptor

__all__ = ["ArchiveClient", "RecordingEvents", "replay_image_session_id", "UNBOUNDED", "FROM_START"]

UNBOUNDED = -1  # replay length: to the stop, following a live recording
FROM_START = -1  # replay position: the recording's start


def _decoded(reader: ArchiveClient | RecordingEvents, buffer: memoryview) -> wire.Message | None:
    """The archive message in ``buffer``, or None (counted in ``reader.skipped``) when it is not one."""
    try:
        return wire.decode(buffer)
    except ArchiveProtocolError:
        reader.skipped += 1
        return None


def replay_image_session_id(replay_session_id: int) -> int:
    """The session id of a replay's image (the low 32 bits of its replay session id)."""
    low = replay_session_id & 0xFFFFFFFF
    return low - 2**32 if low >= 2**31 else low


class ArchiveClient:
    """A control session with an archive.  Use ``ArchiveClient.connect(aeron, ...)``."""

    def __init__(self, aeron: Any, control_channel: str = "aeron:ipc", control_stream_id: int = DEFAULT_CONTROL_STREAM_ID,
                 response_channel: str = "aeron:ipc", response_stream_id: int = DEFAULT_RESPONSE_STREAM_ID,
                 timeout: float = 10.0, idle: Callable[[], object] | None = None) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0: timeout={timeout}")
        self.aeron = aeron
        self.timeout = timeout
        self.response_channel = response_channel
        self.response_stream_id = response_stream_id
        self._idle = idle or (lambda: time.sleep(0.0005))
        self._ids = itertools.count(int.from_bytes(os.urandom(4), "little") << 16)
        self._inbox: list[wire.Message] = []
        self._errors: list[wire.ControlResponse] = []
        self.session_id = -1
        self._pub = aeron.add_publication(control_channel, control_stream_id)
        self._sub = aeron.add_subscription(response_channel, response_stream_id)
        self._assembler = _aeron.FragmentAssembler(self._on_fragment)
        self.skipped = 0  # undecodable or foreign messages seen on the response stream

    @classmethod
    def connect(cls, aeron: Any, **kwargs: Any) -> "ArchiveClient":
        """Open a control session (waits for the archive's answer)."""
        c = cls(aeron, **kwargs)
        try:
            corr = next(c._ids)
            c._send(wire.ConnectRequest(corr, c.response_stream_id, PROTOCOL_VERSION, c.response_channel), connecting=True)
            r = c._await_response(corr)
            c.session_id = r.relevant_id
        except BaseException:
            c._sub.close()
            c._pub.close()
            raise
        return c

    # -- requests -------------------------------------------------------------
    def start_recording(self, channel: str, stream_id: int) -> int:
        """Record every image of ``channel``/``stream_id``; returns the subscription id (for ``stop_recording``)."""
        corr = next(self._ids)
        self._send(wire.StartRecordingRequest(self.session_id, corr, stream_id, channel))
        return self._await_response(corr).relevant_id

    def stop_recording(self, subscription_id: int) -> None:
        """Stop the recordings of that subscription (what they hold so far is kept)."""
        corr = next(self._ids)
        self._send(wire.StopRecordingRequest(self.session_id, corr, subscription_id))
        self._await_response(corr)

    def list_recordings(self, from_recording_id: int = 0, count: int = 1000, stream_id: int | None = None,
                        channel_fragment: str = "") -> list[RecordingDescriptor]:
        """Descriptors from ``from_recording_id`` on (an active recording's ``stop_position`` is its live position).
        The archive sends at most 1000 per call: page with ``from_recording_id``."""
        corr = next(self._ids)
        self._send(wire.ListRecordingsRequest(self.session_id, corr, from_recording_id, count,
                                              wire.NULL_STREAM if stream_id is None else stream_id, channel_fragment))
        found: list[RecordingDescriptor] = []
        self._await_response(corr, found)
        return found

    def describe(self, recording_id: int) -> RecordingDescriptor | None:
        found = self.list_recordings(recording_id, 1)
        return found[0] if found and found[0].recording_id == recording_id else None

    def wait_for_recording(self, stream_id: int, session_id: int, timeout: float | None = None) -> RecordingDescriptor:
        """The recording of the publication with ``session_id`` on ``stream_id``, once the archive has started it."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            for d in self.list_recordings(stream_id=stream_id):
                if d.session_id == session_id:
                    return d
            if time.monotonic() > deadline:
                raise TimeoutError(f"no recording started: stream_id={stream_id} session_id={session_id}")
            time.sleep(0.005)

    def replay(self, recording_id: int, position: int = FROM_START, length: int = UNBOUNDED, channel: str = "aeron:ipc",
               stream_id: int = 10040) -> int:
        """Replay to ``channel``/``stream_id``; returns the replay session id.  Subscribe before (or
        soon after: the archive waits for a subscriber up to its connect timeout)."""
        corr = next(self._ids)
        self._send(wire.ReplayRequest(self.session_id, corr, recording_id, position, length, stream_id, channel))
        return self._await_response(corr).relevant_id

    def stop_replay(self, replay_session_id: int) -> None:
        corr = next(self._ids)
        self._send(wire.StopReplayRequest(self.session_id, corr, replay_session_id))
        self._await_response(corr)

    def extend_recording(self, recording_id: int, channel: str, stream_id: int) -> int:
        """Record into stopped recording ``recording_id`` the image of ``channel``/``stream_id`` that
        continues it: a publication made with the recording's session id, initial term id, term
        length and mtu, starting at its stop position (``daemon.replay_channel(channel, d,
        d.stop_position)`` plus ``session-id``).  Returns the subscription id (for ``stop_recording``).
        An image that does not continue it is refused with an error (see ``poll_errors``)."""
        corr = next(self._ids)
        self._send(wire.ExtendRecordingRequest(self.session_id, corr, recording_id, stream_id, channel))
        return self._await_response(corr).relevant_id

    def truncate_recording(self, recording_id: int, position: int) -> None:
        """Cut a stopped recording at ``position`` (a frame boundary); what followed is deleted."""
        corr = next(self._ids)
        self._send(wire.TruncateRecordingRequest(self.session_id, corr, recording_id, position))
        self._await_response(corr)

    def migrate_recording(self, recording_id: int, destination_dir: str, timeout: float | None = None) -> None:
        """Move a stopped recording's segment files to ``destination_dir`` (an existing directory,
        made absolute here).  The archive copies, fsyncs, saves the catalog, then deletes the old
        files; the answer comes when all that is done, so ``timeout`` (default: the client's)
        should allow for copying the recording."""
        corr = next(self._ids)
        self._send(wire.MigrateRecordingRequest(self.session_id, corr, recording_id, os.path.abspath(destination_dir)))
        self._await_response(corr, timeout=timeout)

    def purge_recording(self, recording_id: int) -> None:
        """Delete a stopped recording (its descriptor, then its files)."""
        corr = next(self._ids)
        self._send(wire.PurgeRecordingRequest(self.session_id, corr, recording_id))
        self._await_response(corr)

    def poll_errors(self) -> list[wire.ControlResponse]:
        """Error responses that arrived unasked (a replay that failed after it started)."""
        self._sub.poll(self._assembler, 64)
        inbox, self._inbox = self._inbox, []
        for m in inbox:
            if (isinstance(m, wire.ControlResponse) and m.code == wire.ResponseCode.ERROR
                    and m.control_session_id == self.session_id):
                self._errors.append(m)
        out, self._errors = self._errors, []
        return out

    def close(self) -> None:
        if self.session_id >= 0 and not self._pub.is_closed:
            try:
                self._pub.offer(wire.encode(wire.CloseSessionRequest(self.session_id)))
            except _aeron.AeronError:
                pass
        self._sub.close()
        self._pub.close()

    def __enter__(self) -> "ArchiveClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------
    def _send(self, m: wire.Message, connecting: bool = False) -> None:
        data = wire.encode(m)
        deadline = time.monotonic() + self.timeout
        while True:
            r = self._pub.offer(data)
            if r > 0:
                return
            if r == _aeron.PUBLICATION_CLOSED:
                raise _aeron.ClosedError("archive control publication closed")
            if time.monotonic() > deadline:
                raise TimeoutError(f"archive not reachable: request={type(m).__name__} result={r} "
                                   f"connected={self._pub.is_connected}")
            self._idle()

    def _on_fragment(self, buffer: memoryview, _header: object) -> None:
        m = _decoded(self, buffer)
        if m is not None:
            self._inbox.append(m)

    def _await_response(self, correlation_id: int, descriptors: list[RecordingDescriptor] | None = None,
                        timeout: float | None = None) -> wire.ControlResponse:
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            while self._inbox:
                m = self._inbox.pop(0)
                mine = self.session_id < 0 or getattr(m, "control_session_id", None) == self.session_id
                if not mine:
                    continue
                if getattr(m, "correlation_id", None) != correlation_id:
                    # Not this request's: an error for an earlier one (a replay that failed after it
                    # started) is kept for poll_errors(); anything else answered a request given up on.
                    if isinstance(m, wire.ControlResponse) and m.code == wire.ResponseCode.ERROR and len(self._errors) < 1000:
                        self._errors.append(m)
                    continue
                if isinstance(m, RecordingDescriptor):
                    if descriptors is not None:
                        descriptors.append(m)
                    continue
                if isinstance(m, wire.ControlResponse):
                    if m.code == wire.ResponseCode.ERROR:
                        raise RequestError("archive refused the request", code=m.error_code, fault="archive",
                                           error_code=ErrorCode(m.error_code).name, message=m.error_message)
                    return m
            if time.monotonic() > deadline:
                raise TimeoutError(f"no archive response: correlation_id={correlation_id} timeout_s={timeout}")
            if self._sub.poll(self._assembler, 64) == 0:
                self._idle()


RecordingEvent = wire.RecordingStarted | wire.RecordingProgress | wire.RecordingStopped


class RecordingEvents:
    """An archive's recording events (started, progress, stopped), from its events stream.
    ``poll(handler)`` calls ``handler(event)`` per event; bytes that are not an event are
    counted in ``skipped``.  One thread polls."""

    def __init__(self, aeron: Any, channel: str = "aeron:ipc", stream_id: int = DEFAULT_EVENTS_STREAM_ID) -> None:
        self._sub = aeron.add_subscription(channel, stream_id)
        self._handler: Callable[[RecordingEvent], object] = lambda e: None
        self._assembler = _aeron.FragmentAssembler(self._on_fragment)
        self.skipped = 0

    def _on_fragment(self, buffer: memoryview, _header: object) -> None:
        m = _decoded(self, buffer)
        if isinstance(m, (wire.RecordingStarted, wire.RecordingProgress, wire.RecordingStopped)):
            self._handler(m)
        elif m is not None:
            self.skipped += 1

    def poll(self, handler: Callable[[RecordingEvent], object], fragment_limit: int = 100) -> int:
        self._handler = handler
        return int(self._sub.poll(self._assembler, fragment_limit))

    def close(self) -> None:
        self._sub.close()
