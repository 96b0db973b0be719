"""The archive daemon: an agent that records streams and replays them.

``Archive(config, aeron)`` is an Agent (``on_start``/``do_work``/``on_close``):
run it on an ``AgentRunner`` thread, or call ``do_work()`` from your own loop.
It is the thin shell around the sans-IO ``ControlProtocol``: it polls the
control stream, carries out the actions, drives the native recorders (one per
recorded image, whole blocks per call) and replayers (whole-block offers to a
replay's exclusive publication), keeps the catalog, and answers each request.

On start it takes ``archive.lock`` in its directory (a second archive on the
same directory is refused), loads the catalog, and recovers every recording a
crash left in state RECORDING: its stop position is found by scanning the
last segment for the last whole frame, and it is marked STOPPED.  Nothing on
disk is deleted or rewritten by recovery, except what an interrupted
migration's journal names (see ``_Migration``).
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import logging
import os
import time
from collections import deque
from pathlib import Path
from typing import Callable

from .. import _aeron
from ..transport import counter_types
from ..transport.uri import ChannelUri
from . import control, wire
from .catalog import Catalog, fsync_dir, segment_dir, segment_files, segment_name, write_durably
from .config import ArchiveConfig
from .control import ControlProtocol, Dropped, Execute, OpenSession, CloseSession
from .errors import ArchiveDamageError, ArchiveError, ConfigError, ErrorCode, RequestError
from .wire import RecordingDescriptor, RecordingState

__all__ = ["Archive", "recover_recording", "replay_channel"]

log = logging.getLogger("tickline.archive")

MAX_OUTBOX = 4096  # responses queued for one slow client before its session is closed
LIST_LIMIT = 1000  # descriptors per list request (a client pages with from_recording_id)
MAX_RECORDING_SUBSCRIPTIONS = 1024
MIGRATION_JOURNAL = "migrate-{}.json"
MIGRATING_SUFFIX = ".migrating"

# Aeron counter type ids of the archive's counters (tickline stat shows them with their labels).
RECORDING_POSITION_TYPE_ID = counter_types.ARCHIVE_RECORDING_POSITION  # 100
ARCHIVE_TOTAL_TYPE_ID = counter_types.ARCHIVE_TOTAL  # 101
TOTALS = ("bytes_recorded", "bytes_replayed", "replay_sessions", "recordings_active", "errors")
FRAME_ALIGNMENT = 32


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _strip(channel: str) -> str:
    """The channel without the parameters that differ between runs (Aeron's "stripped channel")."""
    try:
        uri = ChannelUri.parse(channel, strict=False)
    except ValueError:
        return channel
    keep = {k: v for k, v in uri.params.items() if k in ("endpoint", "control", "interface", "tags", "alias")}
    return str(ChannelUri(uri.media, keep, strict=False))


def _term_base(position: int, term_length: int) -> int:
    return position - (position & (term_length - 1))


def replay_channel(channel: str, d: RecordingDescriptor, position: int) -> str:
    """``channel`` with the parameters that make a publication start at ``position`` of recording ``d``."""
    uri = ChannelUri.parse(channel, strict=False)
    term = d.term_buffer_length
    term_id = (d.initial_term_id + position // term) & 0xFFFFFFFF
    if term_id >= 2**31:
        term_id -= 2**32
    for key, value in (("init-term-id", d.initial_term_id), ("term-id", term_id), ("term-offset", position & (term - 1)),
                       ("term-length", term), ("mtu", d.mtu_length)):
        uri.params[key] = str(value)
    return str(uri)


def _zero_tail(path: Path, offset: int, length: int) -> None:
    """Zero ``path`` from ``offset`` to ``length``, so frames past a recording's stop can never be
    taken for recorded ones (by a recovery scan after the recording is extended or cut)."""
    with open(path, "r+b") as f:
        f.seek(offset)
        left = length - offset
        zeros = bytes(min(max(left, 0), 1 << 20))
        while left > 0:
            left -= f.write(zeros[:left])
        f.flush()
        os.fsync(f.fileno())


def scan(dir: Path, d: RecordingDescriptor, from_position: int, limit: int = -1) -> tuple[int, str | None]:
    """The native frame walk over ``d``'s segments (in ``dir``, the archive's directory, unless
    ``d`` was migrated), checksums included: (end of the last whole frame, damage or None)."""
    pos, damage = _aeron.archive_scan(str(segment_dir(dir, d)), d.recording_id, d.start_position, d.term_buffer_length,
                                      d.segment_file_length, d.initial_term_id, d.session_id, d.mtu_length,
                                      from_position, limit, d.checksum)
    return int(pos), damage


def recover_recording(dir: Path, d: RecordingDescriptor, now_ms: int) -> tuple[RecordingDescriptor, str | None]:
    """``d`` (left RECORDING by a crash) with its stop position recovered from the
    last segment and marked STOPPED; the damage the scan met, if any."""
    segments = segment_files(segment_dir(dir, d), d.recording_id)
    if not segments:
        stop, damage = d.start_position, None
    else:
        start = max(d.start_position, segments[-1][0])
        stop, damage = scan(dir, d, start)
    return dataclasses.replace(d, stop_position=stop, stop_timestamp=now_ms, state=RecordingState.STOPPED), damage


class _Migration:
    """Moving one stopped recording's segments to another directory, a step per duty cycle.

    Crash safety, in this order: (1) a journal ``migrate-<id>.json`` in the
    archive directory names the source and the destination (fsynced); (2)
    every segment is copied to ``<name>.migrating`` in the destination,
    fsynced, renamed to its name, and the destination directory fsynced;
    (3) the catalog is saved with the recording's new ``segment_dir``; (4)
    the source files are deleted; (5) the journal is deleted.  A restart that
    finds a journal finishes or undoes the move by what the catalog says:
    pointing at the destination, the source's files are deleted; otherwise
    the destination's copies are.  Either way one whole copy is left."""

    def __init__(self, d: RecordingDescriptor, source: Path, destination: Path, requester: tuple[int, int],
                 journal: Path) -> None:
        self.descriptor = d
        self.source = source
        self.destination = destination
        self.requester = requester
        self.journal = journal
        self.files = segment_files(source, d.recording_id)
        self.index = 0
        self.offset = 0
        self.src_fd = -1
        self.dst_fd = -1
        self.copied: list[Path] = []

    def _tmp(self) -> Path:
        return self.destination / (self.files[self.index][1].name + MIGRATING_SUFFIX)

    def step(self, budget: int) -> bool:
        """Copy up to ``budget`` bytes; True when every file is copied, fsynced and in place."""
        while budget > 0 and self.index < len(self.files):
            if self.src_fd < 0:
                self.src_fd = os.open(self.files[self.index][1], os.O_RDONLY | os.O_CLOEXEC)
                self.dst_fd = os.open(self._tmp(), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
                self.offset = 0
            chunk = os.pread(self.src_fd, min(budget, 1 << 20), self.offset)
            if chunk:
                view = memoryview(chunk)
                while view:
                    view = view[os.pwrite(self.dst_fd, view, self.offset + len(chunk) - len(view)):]
                self.offset += len(chunk)
                budget -= len(chunk)
                continue
            os.fsync(self.dst_fd)
            self._close_fds()
            final = self.destination / self.files[self.index][1].name
            os.replace(self._tmp(), final)
            self.copied.append(final)
            self.index += 1
        if self.index < len(self.files):
            return False
        fsync_dir(self.destination)
        return True

    def _close_fds(self) -> None:
        for fd in (self.src_fd, self.dst_fd):
            if fd >= 0:
                os.close(fd)
        self.src_fd = self.dst_fd = -1

    def undo(self) -> None:
        """The copies made so far are removed (the recording stays where it was)."""
        in_progress = self._tmp() if self.src_fd >= 0 else None
        self._close_fds()
        for path in [*self.copied, *([in_progress] if in_progress else [])]:
            try:
                path.unlink()
            except OSError:
                pass


def finish_migration(archive_dir: Path, journal: Path, catalog: Catalog) -> str:
    """A migration journal found at start: delete the copy the catalog does not point at."""
    try:
        j = json.loads(journal.read_text())
        rid, source, destination = int(j["recording_id"]), Path(j["source"]), Path(j["destination"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"journal unreadable, left in place: file={journal} error={exc}"
    d = catalog.get(rid)
    if not (source.is_absolute() and destination.is_absolute()):
        return f"journal names a relative directory, left in place: file={journal} fault=storage"
    if d is None:
        where = "neither (recording gone)"
        stale = None
    elif segment_dir(archive_dir, d) == destination:
        where, stale = "destination", source
    elif segment_dir(archive_dir, d) == source:
        where, stale = "source", destination
    else:  # not this catalog's migration: nothing is deleted on its word
        return (f"journal does not match the catalog, left in place: file={journal} recording_id={rid} "
                f"segment_dir={segment_dir(archive_dir, d)} fault=storage")
    if stale is not None and stale.is_dir():
        for _base, path in segment_files(stale, rid):
            path.unlink(missing_ok=True)
        for entry in os.scandir(stale):
            if entry.name.startswith(f"{rid}-") and entry.name.endswith(".rec" + MIGRATING_SUFFIX):
                os.unlink(entry.path)
        fsync_dir(stale)
    journal.unlink()
    fsync_dir(archive_dir)
    return f"recording_id={rid} kept={where} source={source} destination={destination}"


class _Session:
    def __init__(self, session_id: int, publication: _aeron.Publication, now: float) -> None:
        self.id = session_id
        self.publication = publication
        self.outbox: deque[bytes] = deque()
        self.last_connected = now  # the client's response subscription was there (or the session began)


class _Recording:
    def __init__(self, descriptor: RecordingDescriptor, recorder: _aeron.Recorder, subscription_id: int,
                 counter: _aeron.AeronCounter | None = None) -> None:
        self.descriptor = descriptor
        self.recorder = recorder
        self.subscription_id = subscription_id
        self.counter = counter  # the recording's position, for tickline stat
        self.last_sync_ms = _now_ms()
        self.last_progress_position = recorder.position


class _RecordingSubscription:
    def __init__(self, subscription: _aeron.Subscription, channel: str, stream_id: int) -> None:
        self.subscription = subscription
        self.channel = channel
        self.stream_id = stream_id
        self.new_images: list[int] = []
        # An extension: the recording it continues, and who asked (errors about its image go there).
        self.extend_recording_id: int | None = None
        self.requester: tuple[int, int] = (0, 0)


class _Replay:
    def __init__(self, replay_id: int, session_id: int, correlation_id: int, recording_id: int,
                 publication: _aeron.Publication, replayer: _aeron.Replayer, end: int | None, deadline: float) -> None:
        self.id = replay_id
        self.session_id = session_id
        self.correlation_id = correlation_id
        self.recording_id = recording_id
        self.publication = publication
        self.replayer = replayer
        self.end = end
        self.connect_deadline = deadline
        self.connected = False


class Archive:
    """The archive agent.  ``clock`` (monotonic seconds) is injectable for tests.
    Thread safety: one thread runs it; clients talk to it only through Aeron."""

    def __init__(self, config: ArchiveConfig, aeron: object, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.aeron = aeron
        self.clock = clock
        self.dir = Path(config.dir)
        self.protocol = ControlProtocol(config.max_sessions)
        self.sessions: dict[int, _Session] = {}
        self.recording_subs: dict[int, _RecordingSubscription] = {}
        self.recordings: dict[int, _Recording] = {}
        self.replays: dict[int, _Replay] = {}
        self.migrations: dict[int, _Migration] = {}
        self._next_replay = 1
        self._lock_fd: int | None = None
        self.catalog: Catalog | None = None
        self._control_sub: _aeron.Subscription | None = None
        self._assembler: _aeron.FragmentAssembler | None = None
        self._events: _aeron.Publication | None = None
        self._inbox: list[bytes] = []
        self.counters = {"dropped_requests": 0, "closed_slow_sessions": 0, "events_dropped": 0, "replay_errors": 0,
                         "recording_errors": 0, "catalog_errors": 0, "timed_out_sessions": 0, "bytes_recorded": 0, "bytes_replayed": 0}
        self._totals: dict[str, _aeron.AeronCounter] = {}
        self.started = False

    # -- lifecycle ------------------------------------------------------------
    def role_name(self) -> str:
        return f"archive[{self.dir}]"

    def on_start(self) -> None:
        if self.started:
            return
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        mode = self.dir.stat().st_mode & 0o777
        if mode & 0o077:
            log.warning("archive directory readable by others: dir=%s mode=%o (files in it are 0600; 0700 advised) fault=user",
                        self.dir, mode)
        self._take_lock()
        self.catalog = Catalog(self.dir)
        self._recover()
        aeron = self.aeron
        self._assembler = _aeron.FragmentAssembler(self._on_control_fragment)
        self._control_sub = aeron.add_subscription(self.config.control_channel, self.config.control_stream_id)  # type: ignore[attr-defined]
        if self.config.events_channel:
            self._events = aeron.add_publication(self.config.events_channel, self.config.events_stream_id)  # type: ignore[attr-defined]
        for name in TOTALS:
            self._totals[name] = self._counter(ARCHIVE_TOTAL_TYPE_ID, f"archive {name.replace('_', ' ')}: dir={self.dir}")
        self.started = True
        log.info("archive started: dir=%s recordings=%d control_channel=%s control_stream_id=%d", self.dir,
                 len(self.catalog.recordings), self.config.control_channel, self.config.control_stream_id)

    def _counter(self, type_id: int, label: str) -> _aeron.AeronCounter:
        return self.aeron.add_counter(type_id, label[:300])  # type: ignore[attr-defined, no-any-return]

    def _update_totals(self) -> None:
        c = self.counters
        values = {"bytes_recorded": c["bytes_recorded"], "bytes_replayed": c["bytes_replayed"],
                  "replay_sessions": len(self.replays), "recordings_active": len(self.recordings),
                  "errors": c["recording_errors"] + c["replay_errors"] + c["catalog_errors"] + c["dropped_requests"]}
        for name, value in values.items():
            self._totals[name].set(value)

    def _take_lock(self) -> None:
        path = self.dir / "archive.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise ConfigError("archive directory in use by another archive", dir=self.dir, holder_pid=holder or "?") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd

    def _recover(self) -> None:
        assert self.catalog is not None
        for journal in sorted(self.dir.glob(MIGRATION_JOURNAL.format("*"))):
            log.warning("interrupted migration settled: %s", finish_migration(self.dir, journal, self.catalog))
        changed = False
        for d in self.catalog.active():
            recovered, damage = recover_recording(self.dir, d, _now_ms())
            self.catalog.update(recovered)
            changed = True
            if damage:
                log.warning("recording recovered up to damage: recording_id=%d stop_position=%d damage=%s",
                            d.recording_id, recovered.stop_position, damage)
            else:
                log.info("recording recovered: recording_id=%d stop_position=%d", d.recording_id, recovered.stop_position)
        if changed:
            self.catalog.save()

    def on_close(self) -> None:
        if not self.started:
            self._release_lock()
            return
        self.started = False
        for rec in list(self.recordings.values()):
            try:
                self._drain(rec)
            except OSError:
                pass
            self._stop_recording(rec, None)
        for rs in self.recording_subs.values():
            rs.subscription.close()
        self.recording_subs.clear()
        for rp in list(self.replays.values()):
            self._end_replay(rp)
        for m in list(self.migrations.values()):  # not finished: undone now (the journal would do it at the next start)
            self._migration_failed(m, "the archive is closing")
        for s in self.sessions.values():
            s.publication.close()
        self.sessions.clear()
        if self._control_sub is not None:
            self._control_sub.close()
        if self._events is not None:
            self._events.close()
        for counter in self._totals.values():
            counter.close()
        self._totals.clear()
        self._release_lock()

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def close(self) -> None:
        self.on_close()

    # -- duty cycle -----------------------------------------------------------
    def do_work(self) -> int:
        work = 0
        assert self._control_sub is not None
        assert self._assembler is not None
        work += self._control_sub.poll(self._assembler, 16)
        inbox, self._inbox = self._inbox, []
        for data in inbox:
            for action in self.protocol.on_message(data):
                self._act(action)
        work += len(inbox)
        for rs in list(self.recording_subs.values()):
            rs.subscription.dispatch_image_events()
            new, rs.new_images = rs.new_images, []
            for session_id in new:
                if rs.extend_recording_id is None:
                    self._start_recording(rs, session_id)
                else:
                    self._start_extension(rs, session_id)
                work += 1
        for rec in list(self.recordings.values()):
            work += self._record(rec)
        for rp in list(self.replays.values()):
            work += self._replay(rp)
        for m in list(self.migrations.values()):
            work += self._migrate_step(m)
        now = self.clock()
        for s in list(self.sessions.values()):
            work += self._flush(s)
            if s.publication.is_connected:
                s.last_connected = now
            elif now - s.last_connected > self.config.session_timeout_s:
                # A client that died without closing: its session (a slot of max_sessions) is freed.
                log.warning("control session closed: its response stream has had no subscriber: control_session_id=%d "
                            "timeout_s=%s fault=peer", s.id, self.config.session_timeout_s)
                self.counters["timed_out_sessions"] += 1
                self.sessions.pop(s.id, None)
                self.protocol.close_session(s.id)
                s.publication.close()
                work += 1
        if work:
            self._update_totals()
        return work

    def _on_control_fragment(self, buffer: memoryview, _header: object) -> None:
        self._inbox.append(bytes(buffer))

    # -- control --------------------------------------------------------------
    def _act(self, action: control.Action) -> None:
        if isinstance(action, Dropped):
            self.counters["dropped_requests"] += 1
            log.warning("control message dropped: reason=%s %s fault=peer", action.reason, action.detail)
        elif isinstance(action, OpenSession):
            self._open_session(action)
        elif isinstance(action, CloseSession):
            s = self.sessions.pop(action.session_id, None)
            if s is not None:
                s.publication.close()
        elif isinstance(action, Execute):
            s = self.sessions.get(action.session_id)
            if s is None:
                return
            req = action.request
            try:
                self._execute(s, req)
            except RequestError as exc:
                self._send(s, control.error(s.id, req.correlation_id, exc.code, str(exc)))  # type: ignore[union-attr]
            except ArchiveDamageError as exc:
                self._send(s, control.error(s.id, req.correlation_id, ErrorCode.STORAGE, str(exc)))  # type: ignore[union-attr]
            except (ArchiveError, _aeron.AeronError, ValueError, OSError) as exc:
                code = ErrorCode.BAD_REQUEST if isinstance(exc, (_aeron.RegistrationError, ValueError)) else ErrorCode.GENERIC
                self._send(s, control.error(s.id, req.correlation_id, code, f"{type(exc).__name__}: {exc}"))  # type: ignore[union-attr]

    def _open_session(self, a: OpenSession) -> None:
        try:
            pub = self.aeron.add_exclusive_publication(a.channel, a.stream_id)  # type: ignore[attr-defined]
        except (_aeron.AeronError, ValueError) as exc:
            log.warning("control session refused: response channel unusable: channel=%s stream_id=%d error=%s fault=peer",
                        a.channel, a.stream_id, exc)
            self.protocol.close_session(a.session_id)
            return
        s = _Session(a.session_id, pub, self.clock())
        if a.session_id < 0:
            self._send(s, control.error(-1, a.correlation_id, ErrorCode.GENERIC,
                                        f"too many control sessions: max_sessions={self.config.max_sessions}"))
            self._flush(s)
            pub.close()
            return
        self.sessions[s.id] = s
        self._send(s, control.ok(s.id, a.correlation_id, s.id))

    def _send(self, s: _Session, data: bytes) -> None:
        if len(s.outbox) >= MAX_OUTBOX:
            self.counters["closed_slow_sessions"] += 1
            log.warning("control session closed: client not reading its responses: control_session_id=%d queued=%d fault=peer",
                        s.id, len(s.outbox))
            self.sessions.pop(s.id, None)
            self.protocol.close_session(s.id)
            s.publication.close()
            return
        s.outbox.append(data)

    def _flush(self, s: _Session) -> int:
        n = 0
        while s.outbox:
            r = s.publication.offer(s.outbox[0])
            if r < 0:
                break
            s.outbox.popleft()
            n += 1
        return n

    def _execute(self, s: _Session, req: wire.Message) -> None:
        assert self.catalog is not None
        if isinstance(req, wire.StartRecordingRequest):
            sub_id = self._add_recording_subscription(req.channel, req.stream_id)
            self._send(s, control.ok(s.id, req.correlation_id, sub_id))
        elif isinstance(req, wire.ExtendRecordingRequest):
            d = self.catalog.get(req.recording_id)
            control.check_stopped(d, req.recording_id, "extend", False)
            self._check_not_migrating(req.recording_id, "extend")
            if any(rs.extend_recording_id == req.recording_id for rs in self.recording_subs.values()):
                raise RequestError("recording already being extended", recording_id=req.recording_id,
                                   code=ErrorCode.RECORDING_ACTIVE)
            sub_id = self._add_recording_subscription(req.channel, req.stream_id)
            extension = self.recording_subs[sub_id]
            extension.extend_recording_id = req.recording_id
            extension.requester = (s.id, req.correlation_id)
            self._send(s, control.ok(s.id, req.correlation_id, sub_id))
        elif isinstance(req, wire.StopRecordingRequest):
            rs = self.recording_subs.pop(req.subscription_id, None)
            if rs is None:
                raise RequestError("unknown recording subscription", subscription_id=req.subscription_id,
                                   code=ErrorCode.UNKNOWN_SUBSCRIPTION)
            for rec in [r for r in self.recordings.values() if r.subscription_id == req.subscription_id]:
                self._drain(rec)
                self._stop_recording(rec, None)
            rs.subscription.close()
            self._send(s, control.ok(s.id, req.correlation_id, req.subscription_id))
        elif isinstance(req, wire.ListRecordingsRequest):
            stream = None if req.stream_id == wire.NULL_STREAM else req.stream_id
            count = min(max(0, req.record_count), LIST_LIMIT)
            found = self.catalog.find(req.from_recording_id, count, stream, req.channel_fragment)
            for d in found:
                self._send(s, wire.encode(dataclasses.replace(self._live(d), control_session_id=s.id,
                                                              correlation_id=req.correlation_id)))
            self._send(s, control.ok(s.id, req.correlation_id, len(found)))
        elif isinstance(req, wire.ReplayRequest):
            rid = self._start_replay(s, req)
            self._send(s, control.ok(s.id, req.correlation_id, rid))
        elif isinstance(req, wire.StopReplayRequest):
            rp = self.replays.get(req.replay_session_id)
            if rp is None:
                raise RequestError("unknown replay session", replay_session_id=req.replay_session_id,
                                   code=ErrorCode.UNKNOWN_REPLAY)
            self._end_replay(rp)
            self._send(s, control.ok(s.id, req.correlation_id, req.replay_session_id))
        elif isinstance(req, wire.TruncateRecordingRequest):
            self._truncate(req.recording_id, req.position)
            self._send(s, control.ok(s.id, req.correlation_id, req.recording_id))
        elif isinstance(req, wire.PurgeRecordingRequest):
            self._purge(req.recording_id)
            self._send(s, control.ok(s.id, req.correlation_id, req.recording_id))
        elif isinstance(req, wire.MigrateRecordingRequest):
            self._start_migration(s, req)  # answered when the files are moved (or the move failed)

    def _live(self, d: RecordingDescriptor) -> RecordingDescriptor:
        """``d`` as a client should see it: an active recording's stop position is its live position."""
        rec = self.recordings.get(d.recording_id)
        return dataclasses.replace(d, stop_position=rec.recorder.position) if rec is not None else d

    # -- management -----------------------------------------------------------
    def _replaying(self, recording_id: int) -> bool:
        return any(rp.recording_id == recording_id for rp in self.replays.values())

    def _check_not_migrating(self, recording_id: int, what: str) -> None:
        if recording_id in self.migrations:
            raise RequestError(f"cannot {what} a recording being migrated", recording_id=recording_id,
                               destination=self.migrations[recording_id].destination, code=ErrorCode.RECORDING_ACTIVE)

    def _start_migration(self, s: _Session, req: wire.MigrateRecordingRequest) -> None:
        assert self.catalog is not None
        rid = req.recording_id
        d = control.check_stopped(self.catalog.get(rid), rid, "migrate", self._replaying(rid))
        self._check_not_migrating(rid, "migrate")
        if any(rs.extend_recording_id == rid for rs in self.recording_subs.values()):
            raise RequestError("cannot migrate a recording being extended", recording_id=rid, code=ErrorCode.RECORDING_ACTIVE)
        text = req.destination_dir
        if not text or not os.path.isabs(text) or "\0" in text:
            raise RequestError("migration destination must be an absolute path", recording_id=rid, destination=text,
                               code=ErrorCode.BAD_REQUEST, fault="user")
        destination = Path(os.path.normpath(text))
        source = segment_dir(self.dir, d)
        if not destination.is_dir():
            raise RequestError("migration destination is not a directory", recording_id=rid, destination=destination,
                               code=ErrorCode.BAD_REQUEST, fault="user")
        if destination.resolve() == source.resolve():
            raise RequestError("recording already in the migration destination", recording_id=rid, destination=destination,
                               code=ErrorCode.BAD_REQUEST, fault="user")
        probe = destination / f".tickline-migrate-probe-{os.getpid()}"
        try:
            os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
            probe.unlink()
        except OSError as exc:
            raise RequestError("migration destination not writable", recording_id=rid, destination=destination,
                               error=exc.strerror, code=ErrorCode.STORAGE, fault="user") from None
        journal = self.dir / MIGRATION_JOURNAL.format(rid)
        write_durably(journal, json.dumps({"recording_id": rid, "source": str(source),
                                                 "destination": str(destination)}).encode())
        self.migrations[rid] = _Migration(d, source, destination, (s.id, req.correlation_id), journal)
        log.info("migration started: recording_id=%d source=%s destination=%s files=%d", rid, source, destination,
                 len(self.migrations[rid].files))

    def _migrate_step(self, m: _Migration) -> int:
        assert self.catalog is not None
        rid = m.descriptor.recording_id
        try:
            if not m.step(self.config.migrate_block_bytes):  # bounded: recordings and replays go on between steps
                return 1
        except OSError as exc:
            self._migration_failed(m, f"copy failed: file={exc.filename or m.destination} error={exc.strerror} "
                                      f"errno={errno.errorcode.get(exc.errno or 0, exc.errno)}")
            return 1
        d = self.catalog.get(rid)
        assert d is not None
        moved = dataclasses.replace(d, segment_dir="" if m.destination.resolve() == self.dir.resolve() else str(m.destination))
        self.catalog.update(moved)
        if not self._save_catalog(f"recording_id={rid} (migrate)"):
            self.catalog.update(d)
            self._migration_failed(m, "catalog save failed")
            return 1
        # The catalog points at the copies now: the old files go (a crash from here on: the journal finishes it).
        del self.migrations[rid]
        try:
            for _base, path in m.files:
                path.unlink(missing_ok=True)
            fsync_dir(m.source)
            m.journal.unlink()
            fsync_dir(self.dir)
        except OSError as exc:  # the move is done (the catalog says so); the journal has the rest done at the next start
            log.error("migrated, but the old files were not all deleted: recording_id=%d source=%s error=%s "
                      "(the next start deletes them) fault=storage", rid, m.source, exc)
        log.info("recording migrated: recording_id=%d source=%s destination=%s files=%d", rid, m.source, m.destination,
                 len(m.files))
        sess = self.sessions.get(m.requester[0])
        if sess is not None:
            self._send(sess, control.ok(sess.id, m.requester[1], rid))
        return 1

    def _migration_failed(self, m: _Migration, why: str) -> None:
        rid = m.descriptor.recording_id
        self.migrations.pop(rid, None)
        m.undo()
        try:
            m.journal.unlink()
            fsync_dir(self.dir)
        except OSError:
            pass
        message = (f"migration failed, recording left where it was: recording_id={rid} source={m.source} "
                   f"destination={m.destination} {why}")
        log.error("%s fault=storage", message)
        self.counters["recording_errors"] += 1
        sess = self.sessions.get(m.requester[0])
        if sess is not None:
            self._send(sess, control.error(sess.id, m.requester[1], ErrorCode.STORAGE, message + " fault=storage", rid))

    def _truncate(self, recording_id: int, position: int) -> None:
        """Cut at ``position``: the catalog first (saved), then the files, so a crash in
        between leaves bytes past the stop position that nothing reads (recovery scans
        only recordings left RECORDING)."""
        assert self.catalog is not None
        d = control.check_stopped(self.catalog.get(recording_id), recording_id, "truncate", self._replaying(recording_id))
        self._check_not_migrating(recording_id, "truncate")
        if not d.start_position <= position <= d.stop_position or position % FRAME_ALIGNMENT:
            raise RequestError("truncate position outside the recording or not frame aligned", recording_id=recording_id,
                               position=position, start_position=d.start_position, stop_position=d.stop_position,
                               code=ErrorCode.BAD_POSITION)
        self._check_frame_boundary(d, position, "truncate position")
        self.catalog.update(dataclasses.replace(d, stop_position=position))
        if not self._save_catalog(f"recording_id={recording_id} (truncate)"):
            self.catalog.update(d)
            raise RequestError("catalog save failed", recording_id=recording_id, code=ErrorCode.STORAGE, fault="storage")
        first = _term_base(d.start_position, d.term_buffer_length)
        keep = first + max(0, position - first - 1) // d.segment_file_length * d.segment_file_length
        for base, path in segment_files(segment_dir(self.dir, d), recording_id):
            if base > keep:
                path.unlink()
            elif base == keep:
                _zero_tail(path, position - base, d.segment_file_length)
        log.info("recording truncated: recording_id=%d position=%d (was %d)", recording_id, position, d.stop_position)

    def _purge(self, recording_id: int) -> None:
        assert self.catalog is not None
        control.check_stopped(self.catalog.get(recording_id), recording_id, "purge", self._replaying(recording_id))
        self._check_not_migrating(recording_id, "purge")
        d = self.catalog.recordings.pop(recording_id)
        if not self._save_catalog(f"recording_id={recording_id} (purge)"):
            self.catalog.recordings[recording_id] = d
            raise RequestError("catalog save failed", recording_id=recording_id, code=ErrorCode.STORAGE, fault="storage")
        for _base, path in segment_files(segment_dir(self.dir, d), recording_id):
            path.unlink()
        log.info("recording purged: recording_id=%d", recording_id)

    # -- recording ------------------------------------------------------------
    def add_recording_subscription(self, channel: str, stream_id: int) -> int:
        """Record every image of ``channel``/``stream_id`` from now on (as a client's start_recording does)."""
        return self._add_recording_subscription(channel, stream_id)

    def _add_recording_subscription(self, channel: str, stream_id: int) -> int:
        if len(self.recording_subs) >= MAX_RECORDING_SUBSCRIPTIONS:
            raise RequestError("too many recording subscriptions", max=MAX_RECORDING_SUBSCRIPTIONS, code=ErrorCode.GENERIC)
        holder: list[_RecordingSubscription] = []

        def on_image(info: _aeron.ImageInfo) -> None:
            holder[0].new_images.append(info.session_id)

        sub = self.aeron.add_subscription(channel, stream_id, on_image)  # type: ignore[attr-defined]
        rs = _RecordingSubscription(sub, channel, stream_id)
        holder.append(rs)
        self.recording_subs[sub.registration_id] = rs
        return int(sub.registration_id)

    def _start_recording(self, rs: _RecordingSubscription, session_id: int) -> None:
        assert self.catalog is not None
        if rs.subscription.is_closed:
            return
        sub_id = rs.subscription.registration_id
        if any(r.subscription_id == sub_id and r.descriptor.session_id == session_id for r in self.recordings.values()):
            return  # already recording this image (one recorder per image: two would each move its position)
        # The recording id is taken before the recorder exists; a failure below leaves a gap, never a reuse.
        rid = self.catalog.next_recording_id
        try:
            status = rs.subscription.image_status(session_id)
            if status is None:
                return
            recorder = _aeron.Recorder(rs.subscription, session_id, str(self.dir), rid, self.config.segment_length,
                                       self.config.fsync == "segment", checksum=self.config.checksum_type())
        except (LookupError, ValueError, _aeron.AeronError) as exc:
            self.counters["recording_errors"] += 1
            log.warning("recording not started: channel=%s stream_id=%d session_id=%d error=%s", rs.channel, rs.stream_id,
                        session_id, exc)
            return
        d = self.catalog.add(RecordingDescriptor(
            0, 0, rid, time.time_ns() // 1_000_000, -1, recorder.start_position, -1,
            recorder.segment_length, recorder.initial_term_id, recorder.term_length, recorder.mtu,
            recorder.session_id, rs.stream_id, RecordingState.RECORDING, _strip(rs.channel), rs.channel,
            recorder.source_identity[: wire.MAX_STRING], recorder.checksum))
        assert d.recording_id == rid
        if not self._save_catalog(f"recording_id={rid} (start)"):  # persisted before the first byte of it is written
            del self.catalog.recordings[rid]
            recorder.close()
            return
        self.recordings[rid] = _Recording(d, recorder, rs.subscription.registration_id, self._position_counter(d))
        self._event(wire.RecordingStarted(rid, d.start_position, d.session_id, d.stream_id, d.original_channel,
                                          d.source_identity))
        log.info("recording started: recording_id=%d channel=%s stream_id=%d session_id=%d start_position=%d", rid,
                 rs.channel, rs.stream_id, d.session_id, d.start_position)

    def _start_extension(self, rs: _RecordingSubscription, session_id: int) -> None:
        """The image continues recording ``rs.extend_recording_id`` only if it is the same stream
        at the same place: session id, initial term id, term length, mtu, joining at the stop."""
        assert self.catalog is not None and rs.extend_recording_id is not None
        rid = rs.extend_recording_id
        d = self.catalog.get(rid)
        if d is None or d.state != RecordingState.STOPPED or rid in self.recordings:
            self._refuse_extension(rs, rid, f"session_id={session_id}: the recording is not stopped (another image extends it)")
            return
        try:
            recorder = _aeron.Recorder(rs.subscription, session_id, str(segment_dir(self.dir, d)), rid, d.segment_file_length,
                                       self.config.fsync == "segment", d.start_position, d.checksum)
        except (LookupError, ValueError, _aeron.AeronError) as exc:
            self._refuse_extension(rs, rid, f"{exc}")
            return
        mismatch = [f"{name}={got}(recording {want})" for name, got, want in (
            ("session_id", recorder.session_id, d.session_id), ("initial_term_id", recorder.initial_term_id, d.initial_term_id),
            ("term_length", recorder.term_length, d.term_buffer_length), ("mtu", recorder.mtu, d.mtu_length),
            ("join_position", recorder.position, d.stop_position), ("segment_length", recorder.segment_length,
                                                                   d.segment_file_length)) if got != want]
        if mismatch:
            recorder.close()
            self._refuse_extension(rs, rid, "image does not continue the recording: " + " ".join(mismatch))
            return
        segments = segment_files(segment_dir(self.dir, d), rid)
        if segments and segments[-1][0] <= d.stop_position:
            base, path = segments[-1]
            _zero_tail(path, d.stop_position - base, d.segment_file_length)
        e = dataclasses.replace(d, state=RecordingState.RECORDING, stop_position=-1, stop_timestamp=-1)
        self.catalog.update(e)
        if not self._save_catalog(f"recording_id={rid} (extend)"):
            self.catalog.update(d)
            recorder.close()
            return
        self.recordings[rid] = _Recording(e, recorder, rs.subscription.registration_id, self._position_counter(e))
        self._event(wire.RecordingStarted(rid, e.start_position, e.session_id, e.stream_id, rs.channel,
                                          recorder.source_identity[: wire.MAX_STRING]))
        log.info("recording extended: recording_id=%d from_position=%d channel=%s", rid, d.stop_position, rs.channel)

    def _position_counter(self, d: RecordingDescriptor) -> _aeron.AeronCounter | None:
        try:
            c = self._counter(RECORDING_POSITION_TYPE_ID, f"rec-pos: recording_id={d.recording_id} stream_id={d.stream_id} "
                                                          f"session_id={d.session_id} channel={d.original_channel}")
        except _aeron.AeronError as exc:  # the recording goes on without its counter
            log.warning("recording position counter not made: recording_id=%d error=%s", d.recording_id, exc)
            return None
        return c

    def _refuse_extension(self, rs: _RecordingSubscription, recording_id: int, why: str) -> None:
        self.counters["recording_errors"] += 1
        message = f"extension refused: recording_id={recording_id} channel={rs.channel} stream_id={rs.stream_id} {why}"
        log.warning("%s fault=user", message)
        s = self.sessions.get(rs.requester[0])
        if s is not None:
            self._send(s, control.error(s.id, rs.requester[1], ErrorCode.BAD_POSITION, message, recording_id))

    def _record(self, rec: _Recording) -> int:
        work = 0
        budget = 16
        try:
            while budget > 0:
                budget -= 1
                n = rec.recorder.record(self.config.record_block_bytes)
                if n < 0:
                    self._stop_recording(rec, None)
                    return work + 1
                if n == 0:
                    break
                work += 1
                self.counters["bytes_recorded"] += n
        except OSError as exc:
            self.counters["recording_errors"] += 1
            self._stop_recording(rec, str(exc))
            return work + 1
        now = _now_ms()
        interval = self.config.fsync_interval_ms()
        if interval is not None and now - rec.last_sync_ms >= interval:
            rec.recorder.sync()
            rec.last_sync_ms = now
        if rec.recorder.position != rec.last_progress_position and work:
            rec.last_progress_position = rec.recorder.position
            if rec.counter is not None:
                rec.counter.set(rec.recorder.position)
            self._event(wire.RecordingProgress(rec.descriptor.recording_id, rec.descriptor.start_position,
                                               rec.recorder.position))
        return work

    def _drain(self, rec: _Recording) -> None:
        """Record what the image holds now (bounded: one term's worth of blocks)."""
        for _ in range(64):
            if rec.recorder.record(self.config.record_block_bytes) <= 0:
                break

    def _stop_recording(self, rec: _Recording, error: str | None) -> None:
        assert self.catalog is not None
        rid = rec.descriptor.recording_id
        self.recordings.pop(rid, None)
        if self.config.fsync != "none":
            try:
                rec.recorder.sync()
            except OSError as exc:
                error = error or str(exc)
        stop = rec.recorder.position
        rec.recorder.close()
        if rec.counter is not None:
            rec.counter.close()
        d = dataclasses.replace(rec.descriptor, stop_position=stop, stop_timestamp=_now_ms(), state=RecordingState.STOPPED)
        self.catalog.update(d)
        self._save_catalog(f"recording_id={rid} (stop; a restart recovers it from the segments)")
        self._event(wire.RecordingStopped(rid, d.start_position, stop))
        if error:
            log.error("recording stopped by an error: recording_id=%d stop_position=%d error=%s", rid, stop, error)
            # Nobody reads that image any more: left open, its subscription would hold the
            # publisher back for good.  Close it once none of its recordings is left.
            if not any(r.subscription_id == rec.subscription_id for r in self.recordings.values()):
                rs = self.recording_subs.pop(rec.subscription_id, None)
                if rs is not None:
                    rs.subscription.close()
                    log.error("recording subscription closed after the error: subscription_id=%d channel=%s stream_id=%d",
                              rec.subscription_id, rs.channel, rs.stream_id)
        else:
            log.info("recording stopped: recording_id=%d stop_position=%d", rid, stop)

    def _save_catalog(self, what: str) -> bool:
        assert self.catalog is not None
        try:
            self.catalog.save()
            return True
        except OSError as exc:
            self.counters["catalog_errors"] += 1
            log.error("catalog save failed: %s file=%s error=%s fault=storage", what, self.catalog.path, exc)
            return False

    def _event(self, m: wire.Message) -> None:
        if self._events is not None and self._events.offer(wire.encode(m)) < 0:
            self.counters["events_dropped"] += 1

    # -- replay ---------------------------------------------------------------
    def _start_replay(self, s: _Session, req: wire.ReplayRequest) -> int:
        assert self.catalog is not None
        if len(self.replays) >= self.config.max_replays:
            raise RequestError("too many replays", max_replays=self.config.max_replays, code=ErrorCode.GENERIC, fault="ours")
        d = self.catalog.get(req.recording_id)
        rec = self.recordings.get(req.recording_id)
        self._check_not_migrating(req.recording_id, "replay")
        plan = control.plan_replay(d, req.recording_id, req.position, req.length,
                                   rec.recorder.position if rec is not None else None)
        assert d is not None
        available = rec.recorder.position if rec is not None else d.stop_position
        if plan.position < available:
            base = _term_base(d.start_position, d.term_buffer_length)
            base += (plan.position - base) // d.segment_file_length * d.segment_file_length
            path = segment_dir(self.dir, d) / segment_name(d.recording_id, base)
            if not path.exists():
                raise RequestError("segment file missing", recording_id=d.recording_id, position=plan.position,
                                   file=path, code=ErrorCode.STORAGE, fault="storage")
        self._check_frame_boundary(d, plan.position, "position")
        if plan.end is not None and plan.end < available:
            self._check_frame_boundary(d, plan.end, "end")
        channel = replay_channel(req.replay_channel, d, plan.position)
        pub = self.aeron.add_exclusive_publication(channel, req.replay_stream_id)  # type: ignore[attr-defined]
        try:
            replayer = _aeron.Replayer(pub, str(segment_dir(self.dir, d)), d.recording_id, d.start_position,
                                       d.term_buffer_length, d.segment_file_length, d.initial_term_id, d.session_id,
                                       d.mtu_length, plan.position, d.checksum)
        except BaseException:
            pub.close()
            raise
        rid = int((self._next_replay << 32) | (pub.session_id & 0xFFFFFFFF))
        self._next_replay += 1
        self.replays[rid] = _Replay(rid, s.id, req.correlation_id, d.recording_id, pub, replayer, plan.end,
                                    self.clock() + self.config.replay_connect_timeout_s)
        log.info("replay started: replay_session_id=%d recording_id=%d position=%d end=%s channel=%s stream_id=%d", rid,
                 d.recording_id, plan.position, plan.end, channel, req.replay_stream_id)
        return rid

    def _check_frame_boundary(self, d: RecordingDescriptor, position: int, what: str) -> None:
        """A frame starts at ``position``: walk from its term's start (or the recording's) up to it
        (at most one term read).  A walk that cannot get there for damage is a storage error."""
        if position == d.start_position:
            return
        begin = max(d.start_position, _term_base(position, d.term_buffer_length))
        end, damage = scan(self.dir, d, begin, position)
        if end == position and damage is None:
            return
        if damage is None or damage.startswith("frame crosses the scan limit"):
            raise RequestError(f"replay {what} not on a frame boundary", recording_id=d.recording_id, position=position,
                               nearest_frame=end, code=ErrorCode.BAD_POSITION)
        raise RequestError("recording damaged before the replay position", recording_id=d.recording_id,
                           position=position, valid_to=end, damage=damage, code=ErrorCode.STORAGE, fault="storage")

    def _replay(self, rp: _Replay) -> int:
        assert self.catalog is not None
        if not rp.connected:
            if rp.publication.is_connected:
                rp.connected = True
            elif self.clock() > rp.connect_deadline:
                self._replay_failed(rp, ErrorCode.GENERIC, "replay subscriber never connected: replay_session_id="
                                    f"{rp.id} timeout_s={self.config.replay_connect_timeout_s}")
                return 1
            else:
                return 0
        elif not rp.publication.is_connected:
            # Its subscriber went away: nobody will read the rest (and the session would hold a max_replays slot).
            log.info("replay ended: its subscriber left: replay_session_id=%d position=%d", rp.id, rp.replayer.position)
            self._end_replay(rp)
            return 1
        rec = self.recordings.get(rp.recording_id)
        d = self.catalog.get(rp.recording_id)
        assert d is not None
        available = rec.recorder.position if rec is not None else d.stop_position
        if rec is None and (rp.end is None or rp.end > d.stop_position):
            rp.end = d.stop_position  # the recording stopped short of (or without) the end: the replay ends at its stop
        end = rp.end
        limit = available if end is None else min(end, available)
        work = 0
        try:
            for _ in range(16):
                n = rp.replayer.replay(limit, self.config.replay_block_bytes)
                if n < 0:
                    self._end_replay(rp)
                    return work + 1
                if n == 0:
                    break
                work += 1
                self.counters["bytes_replayed"] += n
        except ArchiveDamageError as exc:
            self._replay_failed(rp, ErrorCode.STORAGE, str(exc))
            return work + 1
        except (OSError, _aeron.AeronError) as exc:
            self._replay_failed(rp, ErrorCode.GENERIC, f"{type(exc).__name__}: {exc}")
            return work + 1
        if end is not None and rp.replayer.position >= end:
            self._end_replay(rp)
            work += 1
        return work

    def _replay_failed(self, rp: _Replay, code: ErrorCode, message: str) -> None:
        self.counters["replay_errors"] += 1
        log.error("replay failed: replay_session_id=%d recording_id=%d position=%d error=%s", rp.id, rp.recording_id,
                  rp.replayer.position, message)
        s = self.sessions.get(rp.session_id)
        if s is not None:
            self._send(s, control.error(s.id, rp.correlation_id, code, message, rp.id))
        self._end_replay(rp)

    def _end_replay(self, rp: _Replay) -> None:
        self.replays.pop(rp.id, None)
        rp.replayer.close()
        rp.publication.close()
