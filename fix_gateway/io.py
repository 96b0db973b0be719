"""Acceptor and initiator: the thin I/O shell around ``Session``.

Both are agents (``role_name``, ``on_start``, ``do_work() -> int``,
``on_close``) with non-blocking sockets, run by
``tickline.transport.AgentRunner`` or driven from the caller's loop with
``AgentInvoker``.  Each duty cycle: accept/connect, read, feed sessions, run
timers and the schedule, hand events to the application, then sync the
stores and write (persist before send: ``store.sync()`` precedes every
socket write).

The application gets ``on_event(session_id, event)`` on the agent's thread.
``submit(session_id, msg_type, fields)`` may be called from any thread: it
queues the message for the agent's next duty cycle.
"""

from __future__ import annotations

import collections
import dataclasses
import errno
import logging
import math
import select
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

from tickline.logs import quote as _quote

from .auth import Authenticator, Peer
from .codec import FieldValue, FixMessage, Frame, Framer, Oversized, parse, GarbledMessage
from .config import ConfigError
from .schedule import SessionSchedule
from .msglog import MessageLog
from .session import (
    DEFAULT_MAX_MESSAGE_SIZE,
    ApplicationMessage,
    Disconnect,
    Event,
    GapDetected,
    GarbledReceived,
    LoggedOn,
    LoggedOut,
    LogonRefused,
    RejectReceived,
    RejectSent,
    ResendAnswered,
    SequenceReset,
    Session,
    SessionConfig,
    State,
)
from .store import MemoryStore, MessageStore

__all__ = ["AcceptorConfig", "InitiatorConfig", "FixAcceptor", "FixInitiator", "SessionEntry", "UnknownSession"]

EventHandler = Callable[[str, Event], None]
_RECV = 65536
# "try again later" on a non-blocking socket, plain or TLS
_AGAIN = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
# accept() failing for want of descriptors or memory: stop accepting for a moment (the listener
# stays readable, so retrying at once would spin) and keep serving the connected sessions
_ACCEPT_RESOURCE_ERRORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_ACCEPT_PAUSE_S = 0.1
_MAX_TRACKED_HOSTS = 10_000
DEFAULT_MAX_SEND_BUFFER = 64 << 20  # failed-logon history kept for at most this many addresses
_log = logging.getLogger("tickline.fix_gateway")


class _LogLimiter:
    """At most ``per_s`` lines per second from one place; the rest are counted and the count is
    reported with the next line that gets through (so a flood of bad peers can't flood the log)."""

    def __init__(self, per_s: int = 10) -> None:
        self.per_s = per_s
        self._second = -1
        self._lines = 0
        self.suppressed = 0

    def warning(self, now: float, fmt: str, *args: object) -> None:
        sec = int(now)
        if sec != self._second:
            self._second, self._lines = sec, 0
        if self._lines >= self.per_s:
            self.suppressed += 1
            return
        self._lines += 1
        if self.suppressed:
            fmt += " suppressed_since_last=%d"
            args = (*args, self.suppressed)
            self.suppressed = 0
        _log.warning(fmt, *args)


def _handshake(sock: socket.socket) -> bool | None:
    """Advance a TLS handshake: True done, False not yet, None failed."""
    try:
        sock.do_handshake()  # type: ignore[attr-defined]
        return True
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
        return False
    except (ssl.SSLError, OSError):
        return None


@dataclass(frozen=True)
class UnknownSession:
    """An inbound connection whose first message names no configured session (closed)."""

    peer: str
    begin_string: str | None
    sender_comp_id: str | None
    target_comp_id: str | None
    reason: str


@dataclass
class SessionEntry:
    """A session and its I/O state, owned by one agent."""

    session: Session
    schedule: SessionSchedule = field(default_factory=SessionSchedule.always)
    sock: socket.socket | None = None
    out: bytearray = field(default_factory=bytearray)
    connecting: bool = False
    handshaking: bool = False
    next_attempt: float = 0.0
    backoff_s: float = 0.0
    connect_started: float = 0.0
    peer: Peer | None = None
    msglog: MessageLog | None = None  # every message in and out (optional)

    def __post_init__(self) -> None:
        # schedules are frozen: whether this one is "always" is known once (checked every duty cycle)
        self.always_in_session = self.schedule.is_always
        # The session's next timer deadline as last computed, and the state it was computed in.
        # Traffic only moves a session's deadlines later and a state change is seen here, so until
        # this time (in this state) there is nothing to tick; ticking early would be harmless anyway.
        self.timer_check_at = 0.0
        self.timer_state: State | None = None

    @property
    def session_id(self) -> str:
        return self.session.config.session_id


def _peer(e: SessionEntry) -> str:
    return f"{e.peer.host}:{e.peer.port}" if e.peer is not None else "-"


def _log_event(e: SessionEntry, ev: Event) -> None:
    """One log line for a session event (application messages are not logged here; the
    message log has them).  A refused logon is logged by the acceptor (rate-limited)."""
    sid = e.session_id
    c = ev.__class__
    if c is LoggedOn:
        _log.info("logon session=%s peer=%s heartbeat_s=%s reset_seq_num=%s next_out=%s next_in=%s", sid, _peer(e),
                  ev.heartbeat_interval_s, ev.reset_seq_num, e.session.store.next_sender_seq,  # type: ignore[union-attr]
                  e.session.store.next_target_seq)
    elif c is LoggedOut:
        _log.info("logout session=%s peer=%s initiated_by=%s reason=%s", sid, _peer(e), ev.initiated_by,  # type: ignore[union-attr]
                  _quote(ev.text))  # type: ignore[union-attr]
    elif c is Disconnect:
        level = logging.INFO if ev.fault == "none" else logging.WARNING  # type: ignore[union-attr]
        _log.log(level, "disconnect session=%s peer=%s fault=%s reason=%s", sid, _peer(e), ev.fault,  # type: ignore[union-attr]
                 _quote(ev.reason))  # type: ignore[union-attr]
    elif c is SequenceReset:
        _log.info("sequence_reset session=%s new_seq_num=%s gap_fill=%s", sid, ev.new_seq_num, ev.gap_fill)  # type: ignore[union-attr]
    elif c is GapDetected:
        _log.info("resend_requested session=%s expected=%s received=%s", sid, ev.expected, ev.received)  # type: ignore[union-attr]
    elif c is ResendAnswered:
        _log.info("resend session=%s begin=%s end=%s resent=%s", sid, ev.begin, ev.end, ev.resent)  # type: ignore[union-attr]
    elif c is RejectSent:
        _log.warning("reject_sent session=%s fault=remote ref_seq_num=%s reason=%s tag=%s text=%s", sid,
                     ev.ref_seq_num, ev.reason, ev.tag, _quote(ev.text))  # type: ignore[union-attr]
    elif c is RejectReceived:
        m = ev.message  # type: ignore[union-attr]
        _log.warning("reject_received session=%s ref_seq_num=%s reason=%s text=%s", sid, m.get(45), m.get(373),
                     _quote(m.get(58) or ""))
    elif c is GarbledReceived:
        _log.warning("garbled_received session=%s fault=remote reason=%s", sid, _quote(ev.reason))  # type: ignore[union-attr]


_HAVE_EPOLL = hasattr(select, "epoll")
_NONE_READY: frozenset[int] = frozenset()


class _Readiness:
    """Which sockets have input, from one ``epoll_wait(0)`` per duty cycle.

    An idle duty cycle then costs one system call instead of an ``accept``
    and a ``recv`` per socket that each fail with EAGAIN (an exception in
    Python).  Level-triggered: input a cycle leaves unread is reported again.
    ``may_read(sock)`` is True for a socket with input, for one not watched
    yet (it is watched from then on), for a TLS socket (decrypted bytes can
    wait inside the SSL object where epoll cannot see them), and always
    where epoll does not exist.  A closed socket leaves the epoll set by
    itself; a new socket that gets its descriptor number is watched afresh
    (``_watched`` maps the number to the socket object).
    """

    def __init__(self) -> None:
        self._ep: select.epoll | None = None  # made on first use, again after close()
        self._watched: dict[int, socket.socket] = {}
        self._ready: set[int] | frozenset[int] = _NONE_READY

    def poll(self) -> None:
        if self._ep is not None:
            events = self._ep.poll(0)
            self._ready = {fd for fd, _ in events} if events else _NONE_READY

    def may_read(self, sock: socket.socket) -> bool:
        ep = self._ep
        if ep is None:
            if not _HAVE_EPOLL:
                return True
            ep = self._ep = select.epoll()
        if isinstance(sock, ssl.SSLSocket):
            return True
        fd = sock.fileno()
        if fd < 0:
            return True  # closed: let the caller find out
        if self._watched.get(fd) is not sock:
            try:
                ep.register(fd, select.EPOLLIN)
            except FileExistsError:
                ep.modify(fd, select.EPOLLIN)
            self._watched[fd] = sock
            return True
        return fd in self._ready

    def close(self) -> None:
        if self._ep is not None:
            self._ep.close()
            self._ep = None
        self._watched.clear()
        self._ready = _NONE_READY


def _close(sock: socket.socket | None) -> None:
    if sock is not None:
        try:
            sock.close()
        except OSError:
            pass


class _Endpoint:
    """What acceptor and initiator share: sessions, duty-cycle steps, flushing."""

    name = "fix-endpoint"

    def __init__(self, on_event: EventHandler | None, clock: Callable[[], float]) -> None:
        self.on_event = on_event or (lambda sid, ev: None)
        self.clock = clock
        self.entries: dict[str, SessionEntry] = {}
        self._submitted: collections.deque[tuple[str, str, list[tuple[int, FieldValue]]]] = collections.deque()
        self._commands: collections.deque[Callable[[], None]] = collections.deque()
        self._io = _Readiness()
        self.max_send_buffer = DEFAULT_MAX_SEND_BUFFER  # bytes queued for one socket before it is dropped

    def add_session(self, config: SessionConfig, store: MessageStore | None = None,
                    schedule: SessionSchedule | None = None, authenticator: Authenticator | None = None) -> Session:
        if config.session_id in self.entries:
            raise ConfigError(f"duplicate session: fault=config session={config.session_id}")
        s = Session(config, store or MemoryStore(self.clock()), authenticator)
        self.entries[config.session_id] = SessionEntry(s, schedule or SessionSchedule.always())
        return s

    def session(self, session_id: str) -> Session:
        return self.entries[session_id].session

    def submit(self, session_id: str, msg_type: str, fields: Iterable[tuple[int, FieldValue]]) -> None:
        """Queue an application message for ``session_id`` (any thread)."""
        if session_id not in self.entries:
            raise KeyError(f"unknown session: fault=caller session={session_id}")
        self._submitted.append((session_id, msg_type, list(fields)))

    def invoke_later(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the agent's thread at the start of its next duty cycle (any thread)."""
        self._commands.append(fn)

    def logout_all(self, text: str = "") -> None:
        """Start the Logout handshake on every logged-on session (agent thread only)."""
        now = self.clock()
        for e in self.entries.values():
            if e.session.state in (State.ACTIVE, State.AWAITING_LOGON, State.LOGON_SENT):
                e.session.logout(now, text)

    # -- duty-cycle steps --------------------------------------------------

    def _drain_submitted(self, now: float) -> int:
        work = 0
        while self._commands:
            self._commands.popleft()()
            work += 1
        while self._submitted:
            sid, mt, fields = self._submitted.popleft()
            self.entries[sid].session.send(mt, fields, now)
            work += 1
        return work

    def _read(self, e: SessionEntry, now: float) -> int:
        sock, work = e.sock, 0
        if sock is None or e.connecting or not self._io.may_read(sock):
            return 0
        for _ in range(8):
            try:
                data = sock.recv(_RECV)
            except _AGAIN:
                break
            except OSError:
                data = b""
            if not data:
                e.session.connection_lost(now)
                break
            if e.msglog is not None:
                e.msglog.incoming(data, now)
            e.session.receive_data(data, now)
            work += 1
            if e.session.state == State.DISCONNECTED or len(data) < _RECV:
                break
        return work

    def _timers(self, e: SessionEntry, now: float) -> int:
        s = e.session
        if now < e.timer_check_at and s.state is e.timer_state:
            d = None
        else:
            d = s.next_deadline()
            e.timer_state = s.state
            e.timer_check_at = math.inf if d is None else d
        if d is not None and now >= d:
            s.tick(now)
            e.timer_check_at = 0.0  # recompute next cycle
            return 1
        if e.sock is not None and not e.always_in_session and s.state == State.ACTIVE and not e.schedule.is_in_session(now):
            s.logout(now, "End of session")
            return 1
        return 0

    def _dispatch(self, e: SessionEntry) -> int:
        if not e.session.has_events:
            return 0
        evs = e.session.events()
        for ev in evs:
            if ev.__class__ is not ApplicationMessage:
                _log_event(e, ev)
            if isinstance(ev, LoggedOn):
                e.backoff_s = 0.0
            elif ev.__class__ is LogonRefused:
                self._logon_refused(e, ev)
            try:
                self.on_event(e.session_id, ev)
            except Exception as exc:  # noqa: BLE001 - one session's message must not stop the others
                _log.error("application handler raised: fault=local session=%s event=%s error=%s: %s",
                           e.session_id, type(ev).__name__, type(exc).__name__, exc, exc_info=exc)
                s = e.session
                if s.state == State.ACTIVE:
                    s.logout(self.clock(), "Internal error processing message")
                elif s.state != State.DISCONNECTED:
                    s.connection_lost(self.clock())
        return len(evs)

    def _logon_refused(self, e: SessionEntry, ev: LogonRefused) -> None:
        """Hook: an acceptor session refused a Logon (the acceptor logs and counts it)."""

    def _flush(self, e: SessionEntry, now: float) -> int:
        s = e.session
        data = s.data_to_send()
        if data and e.msglog is not None:
            e.msglog.outgoing(data, now)
        # persist before send; also makes this cycle's received-sequence updates durable
        # (a no-op when nothing was written)
        s.store.sync()
        if data and e.sock is not None:
            e.out += data
        work = 0
        if e.out and e.sock is not None:
            try:
                n = e.sock.send(e.out)
                del e.out[:n]
                work = 1
            except _AGAIN:
                pass
            except OSError:
                e.out.clear()
                s.connection_lost(now)
                self._dispatch(e)
            if len(e.out) > self.max_send_buffer:
                # a peer that asks (ResendRequest) but doesn't read would grow this without bound:
                # the connection is dropped, what it missed stays in the store for its next logon
                unsent = len(e.out)
                _log.warning("slow consumer disconnected: fault=remote session=%s unsent=%d max_send_buffer=%d",
                             e.session_id, unsent, self.max_send_buffer)
                e.out.clear()
                s.connection_lost(now, f"slow_consumer unsent={unsent} max_send_buffer={self.max_send_buffer}")
                self._dispatch(e)
        if s.state == State.DISCONNECTED and e.sock is not None and not e.connecting:
            self._closed(e, now)
        return work

    def _closed(self, e: SessionEntry, now: float) -> None:
        if e.out and e.sock is not None:
            try:  # best effort: a final Logout or Reject
                e.sock.send(e.out)
            except OSError:
                pass
        e.out.clear()
        _close(e.sock)
        e.sock = None
        if e.msglog is not None:
            e.msglog.connection_ended(now)

    def _daily_reset(self, e: SessionEntry, now: float) -> int:
        s = e.session
        if e.sock is None and s.state == State.DISCONNECTED and e.schedule.needs_reset(s.store.creation_time, now):
            s.reset_sequence_numbers(now)
            return 1
        return 0

    def _work_sessions(self, now: float) -> int:
        """One duty cycle over the sessions; the caller has run ``self._io.poll()``.

        Input is read, handed to the application and its answers written before timers and
        schedules are looked at: what they produce goes out on the next cycle, a few
        microseconds later, and a message's round trip doesn't wait for them."""
        work = self._drain_submitted(now)
        for e in self.entries.values():
            work += self._read(e, now)
            work += self._dispatch(e)
            if self._submitted or self._commands:  # what the application queued while handling the events
                work += self._drain_submitted(now)
            work += self._flush(e, now)
            work += self._timers(e, now)
            work += self._daily_reset(e, now)
        return work

    def _close_all(self) -> None:
        now = self.clock()
        for e in self.entries.values():
            if e.sock is not None:
                e.session.connection_lost(now)
                self._dispatch(e)
                self._closed(e, now)
            e.session.store.close()
        self._io.close()


@dataclass(frozen=True)
class AcceptorConfig:
    """host/port: where to listen (port 0 = any free port); backlog; pending_timeout_s:
    how long an unidentified connection may take to send its Logon; max_message_size."""

    host: str = "127.0.0.1"
    port: int = 0
    backlog: int = 64
    pending_timeout_s: float = 10.0
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE  # every message on this port, the Logon included
    max_connections: int = 1000  # open connections (identified or not); more are closed at once
    max_connections_per_address: int = 100  # the same, per source address
    max_failed_logons: int = 5  # an address with this many failed logons within
    failed_logon_window_s: float = 60.0  # this window is refused until the oldest ages out
    tls_cert_file: str = ""  # TLS when set (PEM certificate chain); tls_key_file: its private key
    tls_key_file: str = ""
    tls_client_cert: str = "none"  # none | optional | required: client certificates (mutual TLS)
    tls_client_ca_file: str = ""  # the CAs client certificates must chain to
    max_send_buffer: int = DEFAULT_MAX_SEND_BUFFER  # unsent bytes for one connection before it is dropped

    def __post_init__(self) -> None:
        if self.max_message_size < 64:
            raise ConfigError(f"bad max_message_size: fault=config key=max_message_size value={self.max_message_size} min=64")
        for key in ("max_connections", "max_connections_per_address", "max_failed_logons", "max_send_buffer"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                raise ConfigError(f"bad limit: fault=config key={key} value={getattr(self, key)!r} min=1")
        if self.failed_logon_window_s <= 0:
            raise ConfigError(f"bad window: fault=config key=failed_logon_window_s value={self.failed_logon_window_s}")
        if self.tls_client_cert not in ("none", "optional", "required"):
            raise ConfigError(f"bad tls_client_cert: fault=config key=tls_client_cert value={self.tls_client_cert!r} "
                              "allowed=none|optional|required")
        if self.tls_client_cert != "none" and not (self.tls_client_ca_file and self.tls_cert_file):
            raise ConfigError("client certificates need TLS and a CA file: fault=config "
                              "key=tls_client_cert/tls_client_ca_file/tls_cert_file")
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ConfigError(f"TLS needs both files: fault=config key=tls_cert_file/tls_key_file value={(self.tls_cert_file, self.tls_key_file)!r}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"bad port: fault=config key=port value={self.port}")
        if self.pending_timeout_s <= 0:
            raise ConfigError(f"bad timeout: fault=config key=pending_timeout_s value={self.pending_timeout_s}")


@dataclass
class _Pending:
    sock: socket.socket
    peer: str
    since: float
    framer: Framer
    data: bytearray = field(default_factory=bytearray)
    handshaking: bool = False
    host: str = ""
    port: int = 0


class FixAcceptor(_Endpoint):
    """Many sessions on one port; a connection is bound to the session its first
    message names (its TargetCompID/SenderCompID are our SenderCompID/TargetCompID).

    Not thread safe except ``submit``; run it as one agent.
    """

    name = "fix-acceptor"

    def __init__(self, config: AcceptorConfig = AcceptorConfig(), on_event: EventHandler | None = None,
                 clock: Callable[[], float] = time.time,
                 on_unknown: Callable[[UnknownSession], None] | None = None) -> None:
        super().__init__(on_event, clock)
        self.config = config
        self.on_unknown = on_unknown or (lambda u: None)
        self._listener: socket.socket | None = None
        self._pending: list[_Pending] = []
        self.port = config.port
        self._tls: ssl.SSLContext | None = None
        self._accept_paused_until = 0.0
        # host -> times of its recent failed logons (oldest first), for the per-address lockout
        self._failures: dict[str, collections.deque[float]] = {}
        self._logs = _LogLimiter()
        # what was refused, by reason (also in the gateway's status file)
        self.counters: collections.Counter[str] = collections.Counter()
        self.max_send_buffer = config.max_send_buffer
        if config.tls_cert_file:
            try:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.minimum_version = ssl.TLSVersion.TLSv1_2
                ctx.load_cert_chain(config.tls_cert_file, config.tls_key_file)
                if config.tls_client_cert != "none":
                    ctx.verify_mode = ssl.CERT_REQUIRED if config.tls_client_cert == "required" else ssl.CERT_OPTIONAL
                    ctx.load_verify_locations(cafile=config.tls_client_ca_file)
            except (OSError, ssl.SSLError) as e:
                raise ConfigError(f"cannot load TLS certificate: fault=config key=tls_cert_file/tls_client_ca_file "
                                  f"value={(config.tls_cert_file, config.tls_client_ca_file)!r} error={e}") from None
            self._tls = ctx

    def add_session(self, config: SessionConfig, store: MessageStore | None = None,
                    schedule: SessionSchedule | None = None, authenticator: Authenticator | None = None) -> Session:
        """An acceptor session; its ``max_message_size`` is the acceptor's unless it sets one no larger
        (one limit per connection: the first message is read under the acceptor's)."""
        if config.role != "acceptor":
            raise ConfigError(f"acceptor session needs role=acceptor: fault=config session={config.session_id} role={config.role}")
        if config.max_message_size == 0:
            config = dataclasses.replace(config, max_message_size=self.config.max_message_size)
        elif config.max_message_size > self.config.max_message_size:
            raise ConfigError(f"session max_message_size above the acceptor's: fault=config session={config.session_id} "
                              f"key=max_message_size value={config.max_message_size} "
                              f"acceptor_max_message_size={self.config.max_message_size}")
        return super().add_session(config, store, schedule, authenticator)

    def role_name(self) -> str:
        return f"{self.name}:{self.config.host}:{self.port}"

    def on_start(self) -> None:
        if self._listener is not None:
            return
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            ls.bind((self.config.host, self.config.port))
        except OSError as e:
            ls.close()
            raise OSError(e.errno, f"cannot listen: fault=local host={self.config.host} port={self.config.port} error={e.strerror}") from None
        ls.listen(self.config.backlog)
        ls.setblocking(False)
        self._listener = ls
        self.port = ls.getsockname()[1]

    def do_work(self) -> int:
        now = self.clock()
        self._io.poll()
        work = self._work_sessions(now)  # connected sessions first: new connections can wait a cycle
        work += self._accept(now)
        work += self._identify(now)
        return work

    def on_close(self) -> None:
        for p in self._pending:
            _close(p.sock)
        self._pending.clear()
        self._close_all()
        _close(self._listener)
        self._listener = None

    def _accept(self, now: float) -> int:
        work = 0
        ls = self._listener
        if ls is None or now < self._accept_paused_until or not self._io.may_read(ls):
            return 0
        c = self.config
        by_host: collections.Counter[str] | None = None  # open connections per address, counted on first use
        for _ in range(16):
            try:
                sock, addr = ls.accept()
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:
                if e.errno in _ACCEPT_RESOURCE_ERRORS:
                    self._accept_paused_until = now + _ACCEPT_PAUSE_S
                    self.counters["accept_failed"] += 1
                    self._logs.warning(now, "accept failed: fault=local error=%s paused_s=%s open=%d",
                                       errno.errorcode.get(e.errno or 0, e.errno), _ACCEPT_PAUSE_S, self.connections)
                    break
                continue  # ECONNABORTED and the like: that connection is gone, the next may be fine
            work += 1
            host, port = addr[0], addr[1]
            if by_host is None:
                by_host = collections.Counter(p.host for p in self._pending)
                by_host.update(e.peer.host for e in self.entries.values() if e.sock is not None and e.peer)
            why = None
            if self.connections >= c.max_connections:
                why = f"too_many_connections max_connections={c.max_connections}"
            elif by_host[host] >= c.max_connections_per_address:
                why = f"too_many_connections_from_address max_connections_per_address={c.max_connections_per_address}"
            elif self._locked_out(host, now):
                why = f"too_many_failed_logons max_failed_logons={c.max_failed_logons} window_s={c.failed_logon_window_s}"
            if why is not None:
                _close(sock)
                self.counters[why.partition(" ")[0]] += 1
                self._logs.warning(now, "connection refused: fault=remote peer=%s:%s reason=%s", host, port, why)
                continue
            by_host[host] += 1
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self._tls is not None:
                    sock = self._tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            except OSError:  # reset before we got to it
                _close(sock)
                continue
            self._pending.append(_Pending(sock, f"{host}:{port}", now, Framer(c.max_message_size),
                                          handshaking=self._tls is not None, host=host, port=port))
        return work

    @property
    def connections(self) -> int:
        """Open connections: unidentified ones and those bound to a session."""
        return len(self._pending) + sum(1 for e in self.entries.values() if e.sock is not None)

    def _locked_out(self, host: str, now: float) -> bool:
        times = self._failures.get(host)
        if times is None:
            return False
        window = self.config.failed_logon_window_s
        while times and now - times[0] >= window:
            times.popleft()
        if not times:
            del self._failures[host]
            return False
        return len(times) >= self.config.max_failed_logons

    def _failed_logon(self, host: str, port: int, session: str, reason: str, now: float) -> None:
        """Count a failed logon against its address and log it (rate-limited)."""
        self.counters["failed_logons"] += 1
        times = self._failures.get(host)
        if times is None:
            if len(self._failures) >= _MAX_TRACKED_HOSTS:
                self._failures.pop(next(iter(self._failures)))  # the address tracked longest
            times = self._failures[host] = collections.deque(maxlen=self.config.max_failed_logons)
        times.append(now)
        self._logs.warning(now, "logon failed: fault=remote peer=%s:%s session=%s reason=%s failures_in_window=%d",
                           host, port, _quote(session), _quote(reason), len(times))

    def _logon_refused(self, e: SessionEntry, ev: LogonRefused) -> None:
        p = ev.peer or e.peer
        self._failed_logon(p.host if p else "?", p.port if p else 0, e.session_id, ev.reason, self.clock())

    def _refuse(self, p: _Pending, reason: str, msg: FixMessage | None = None, now: float | None = None) -> None:
        self.counters[reason.partition(" ")[0]] += 1
        now = self.clock() if now is None else now
        if msg is not None:  # a logon attempt that named a session (or tried to)
            self._failed_logon(p.host, p.port, f"{msg.get(8)}:{msg.get(56)}->{msg.get(49)}", reason, now)
        else:
            self._logs.warning(now, "connection closed before logon: fault=remote peer=%s reason=%s", p.peer, reason)
        self.on_unknown(UnknownSession(p.peer, msg.get(8) if msg else None, msg.get(49) if msg else None,
                                       msg.get(56) if msg else None, reason))
        _close(p.sock)

    def _identify(self, now: float) -> int:
        work = 0
        keep: list[_Pending] = []
        for p in self._pending:
            try:
                work += self._identify_one(p, now, keep)
            except Exception as e:  # noqa: BLE001 - one connection's bytes must never take the process down
                _log.error("error identifying connection: fault=local peer=%s error=%s: %s", p.peer,
                           type(e).__name__, e, exc_info=e)
                if p in keep:
                    keep.remove(p)
                self._refuse(p, f"error_identifying error={type(e).__name__}")
                work += 1
        self._pending = keep
        return work

    def _identify_one(self, p: _Pending, now: float, keep: list[_Pending]) -> int:
        work = 0
        c = self.config
        if p.handshaking:
            done = _handshake(p.sock)
            if done is None:
                self._refuse(p, "tls_handshake_failed")
                return 1
            if not done:
                if now - p.since >= c.pending_timeout_s:
                    self._refuse(p, f"tls_handshake_timeout timeout_s={c.pending_timeout_s}")
                else:
                    keep.append(p)
                return 0
            p.handshaking = False
            work += 1
        try:
            chunk = p.sock.recv(_RECV) if self._io.may_read(p.sock) else None
        except _AGAIN:
            chunk = None
        except OSError:
            chunk = b""
        if chunk == b"":
            _close(p.sock)
            return work + 1
        if chunk:
            work += 1
            if len(p.data) + len(chunk) > c.max_message_size:
                # an unidentified peer gets to send one message's worth before its Logon
                # is complete, no more: junk or a slow oversized "Logon" ends here
                self._refuse(p, f"too_much_before_logon received={len(p.data) + len(chunk)} "
                                f"max_message_size={c.max_message_size}")
                return work
            p.data += chunk
            p.framer.feed(chunk)
        msg = None
        verdict = None
        while True:
            item = p.framer.next()
            if item is None:
                break
            if isinstance(item, Oversized):
                verdict = f"oversized_first_message size={item.declared_size} max={item.max_size}"
                break
            if isinstance(item, Frame):
                try:
                    msg = parse(item.data)
                    break
                except GarbledMessage:
                    continue
            # Garbled before the first message: ignored, as the spec says
        if verdict is not None:
            self._refuse(p, verdict)
            return work
        if msg is None:
            if now - p.since >= c.pending_timeout_s:
                self._refuse(p, f"no_logon_within timeout_s={c.pending_timeout_s}")
            else:
                keep.append(p)
            return work
        sid = f"{msg.get(8)}:{msg.get(56)}->{msg.get(49)}"
        e = self.entries.get(sid)
        if e is None:
            self._refuse(p, f"unknown_session session={sid}", msg, now)
            return work
        if e.sock is not None or e.session.state != State.DISCONNECTED:
            # a second logon for a connected session: refused here, the first never sees it
            self._refuse(p, f"session_already_connected session={sid}", msg, now)
            return work
        if not e.schedule.is_in_session(now):
            self._refuse(p, f"outside_session_schedule session={sid}", msg, now)
            return work
        if e.schedule.needs_reset(e.session.store.creation_time, now):
            e.session.reset_sequence_numbers(now)
        cert = p.sock.getpeercert() if isinstance(p.sock, ssl.SSLSocket) else None
        e.sock = p.sock
        e.peer = Peer(p.host, p.port, isinstance(p.sock, ssl.SSLSocket), cert or None)
        e.session.connection_made(now, e.peer)
        if e.msglog is not None:
            e.msglog.incoming(bytes(p.data), now)
        e.session.receive_data(bytes(p.data), now)
        return work + 1


@dataclass(frozen=True)
class InitiatorConfig:
    """reconnect_min_s/reconnect_max_s: backoff between connection attempts
    (doubles after each failure, back to the minimum after a Logon);
    connect_timeout_s: how long a TCP connect may take."""

    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    connect_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if not 0 < self.reconnect_min_s <= self.reconnect_max_s:
            raise ConfigError(f"bad reconnect backoff: fault=config key=reconnect_min_s/reconnect_max_s value={(self.reconnect_min_s, self.reconnect_max_s)}")
        if self.connect_timeout_s <= 0:
            raise ConfigError(f"bad timeout: fault=config key=connect_timeout_s value={self.connect_timeout_s}")


class FixInitiator(_Endpoint):
    """Connects each session to its counterparty and keeps it connected (reconnect with backoff).

    Not thread safe except ``submit``; run it as one agent.
    """

    name = "fix-initiator"

    def __init__(self, config: InitiatorConfig = InitiatorConfig(), on_event: EventHandler | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(on_event, clock)
        self.config = config
        self.addresses: dict[str, tuple[str, int]] = {}
        self.enabled: dict[str, bool] = {}
        self.connect_attempts: dict[str, int] = {}
        self.tls: dict[str, ssl.SSLContext | None] = {}

    def add_session(self, config: SessionConfig, store: MessageStore | None = None,
                    schedule: SessionSchedule | None = None, authenticator: Authenticator | None = None,
                    host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None) -> Session:
        """``tls``: a client context (e.g. ``ssl.create_default_context(cafile=...)``) to speak TLS to ``host``."""
        if config.role != "initiator":
            raise ConfigError(f"initiator session needs role=initiator: fault=config session={config.session_id} role={config.role}")
        s = super().add_session(config, store, schedule, authenticator)
        self.addresses[config.session_id] = (host, port)
        self.enabled[config.session_id] = True
        self.connect_attempts[config.session_id] = 0
        self.tls[config.session_id] = tls
        return s

    def set_enabled(self, session_id: str, enabled: bool) -> None:
        """Stop (False) or resume (True) connecting a session; a connected one is logged out."""
        self.enabled[session_id] = enabled
        e = self.entries[session_id]
        if not enabled and e.sock is not None:
            e.session.logout(self.clock(), "Session disabled")
        if enabled:
            e.next_attempt = 0.0
            e.backoff_s = 0.0

    def role_name(self) -> str:
        return self.name

    def on_start(self) -> None:
        pass

    def on_close(self) -> None:
        self._close_all()

    def do_work(self) -> int:
        now = self.clock()
        self._io.poll()
        work = 0
        for sid, e in self.entries.items():
            work += self._connect(sid, e, now)
        work += self._work_sessions(now)
        for sid, e in self.entries.items():
            if (e.sock is None and e.next_attempt <= now and e.session.state == State.DISCONNECTED
                    and self.enabled[sid] and e.schedule.is_in_session(now) and self.connect_attempts[sid]):
                self._schedule_retry(e, now)  # the connection ended: wait before the next attempt
        return work

    def _schedule_retry(self, e: SessionEntry, now: float) -> None:
        c = self.config
        e.backoff_s = c.reconnect_min_s if e.backoff_s == 0 else min(e.backoff_s * 2, c.reconnect_max_s)
        e.next_attempt = now + e.backoff_s

    def _connect(self, sid: str, e: SessionEntry, now: float) -> int:
        if e.sock is None:
            if not self.enabled[sid] or now < e.next_attempt or not e.schedule.is_in_session(now):
                return 0
            if e.schedule.needs_reset(e.session.store.creation_time, now):
                e.session.reset_sequence_numbers(now)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.connect_attempts[sid] += 1
            rc = sock.connect_ex(self.addresses[sid])
            if rc not in (0, errno.EINPROGRESS, errno.EAGAIN, errno.EWOULDBLOCK):
                _close(sock)
                self._schedule_retry(e, now)
                return 1
            e.sock, e.connecting, e.connect_started = sock, True, now
            return 1
        if e.handshaking:
            done = _handshake(e.sock)
            if done is None or (not done and now - e.connect_started >= self.config.connect_timeout_s):
                _close(e.sock)
                e.sock, e.connecting, e.handshaking = None, False, False
                self._schedule_retry(e, now)
                return 1
            if not done:
                return 0
            e.handshaking = e.connecting = False
            e.session.connection_made(now)
            return 1
        if not e.connecting:
            return 0
        err = e.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err == 0:
            try:
                e.sock.getpeername()
            except OSError:
                if now - e.connect_started >= self.config.connect_timeout_s:
                    err = errno.ETIMEDOUT
                else:
                    return 0
        if err:
            _close(e.sock)
            e.sock, e.connecting = None, False
            self._schedule_retry(e, now)
            return 1
        ctx = self.tls.get(sid)
        if ctx is not None:
            e.sock = ctx.wrap_socket(e.sock, server_hostname=self.addresses[sid][0], do_handshake_on_connect=False)
            e.handshaking = True  # still "connecting" for _read/_flush until the handshake is done
            return 1
        e.connecting = False
        e.session.connection_made(now)
        return 1
