"""The FIX session layer as a pure state machine (sans-IO).

Inputs: ``connection_made(now)``, ``receive_data(bytes, now)``, ``tick(now)``,
``send(msg_type, fields, now)``, ``logout(now)``, ``connection_lost(now)``.
Outputs: ``data_to_send()`` (bytes for the socket), ``events()`` (what
happened, frozen dataclasses) and ``next_deadline()`` (when to call
``tick`` next).  ``now`` is seconds since the Unix epoch (UTC), passed in,
never read here.  The only side effect is on the injected message store.

Invariants (every handler keeps them; tests check them):

1. Persist before send: an outbound message is saved to the store and the
   next sender sequence number advanced before its bytes are queued for the
   socket.  A message sent while not logged on is stored only; the peer gets
   it by ResendRequest after the next Logon.
2. The expected target sequence number advances only past a message that was
   processed at exactly that number, or by a SequenceReset; garbled input
   never changes a sequence number.
3. Messages that arrive above the expected number are queued, one
   ResendRequest covers the gap, and the queue is drained in order once the
   gap is filled.
4. A ``Disconnect`` event is the last event of a connection: after it the
   state is DISCONNECTED, remaining input is ignored, and the I/O shell
   writes out ``data_to_send()`` (e.g. a Logout) and closes the socket.
5. Every state change goes through ``_set_state`` and must be listed in
   ``TRANSITIONS``; received messages are dispatched through ``RECEIVE``.

Thread safety: none; one agent owns a session.
"""

from __future__ import annotations

import calendar
import enum
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Union

from .codec import (
    MAX_SEQ_NUM, NATIVE, FixMessage, Framer, Garbled, GarbledMessage, Oversized, ascii_uint, encode, parse, FieldValue,
)
from .auth import Authenticator, LogonRequest, Peer, SessionAuth, check_password_hash, parse_networks, read_private_file
from .config import ConfigError
from .dictionary import SessionRejectReason as R, ValidationConfig, ValidationError, Validator, load_dictionary
from .store import MessageStore

__all__ = [
    "State", "SessionConfig", "Session", "ADMIN_MSG_TYPES", "TRANSITIONS",
    "LoggedOn", "LoggedOut", "ApplicationMessage", "RejectReceived", "RejectSent", "GarbledReceived",
    "GapDetected", "SequenceReset", "DuplicateIgnored", "ResendAnswered", "Disconnect", "Event",
    "utc_timestamp", "parse_utc_timestamp", "LocalProtocolError", "LogonRefused", "DEFAULT_MAX_MESSAGE_SIZE",
]

DEFAULT_MAX_MESSAGE_SIZE = 1 << 20

_log = logging.getLogger("tickline.fix_gateway")

ADMIN_MSG_TYPES = frozenset({"0", "1", "2", "3", "4", "5", "A"})
BEGIN_STRINGS = ("FIX.4.2", "FIX.4.4", "FIXT.1.1")


class LocalProtocolError(ValueError):
    """The caller asked for something the protocol forbids (our fault)."""


class State(enum.Enum):
    DISCONNECTED = "disconnected"
    AWAITING_LOGON = "awaiting_logon"  # acceptor: connected, no Logon yet
    LOGON_SENT = "logon_sent"  # initiator: Logon sent, no reply yet
    ACTIVE = "active"
    LOGOUT_SENT = "logout_sent"


# Allowed state changes.  DISCONNECTED is reachable from everywhere (socket loss).
TRANSITIONS: dict[State, frozenset[State]] = {
    State.DISCONNECTED: frozenset({State.AWAITING_LOGON, State.LOGON_SENT}),
    State.AWAITING_LOGON: frozenset({State.ACTIVE, State.DISCONNECTED}),
    State.LOGON_SENT: frozenset({State.ACTIVE, State.DISCONNECTED}),
    State.ACTIVE: frozenset({State.LOGOUT_SENT, State.DISCONNECTED}),
    State.LOGOUT_SENT: frozenset({State.DISCONNECTED}),
}

ANY = "*"
# (state, MsgType) -> handler method name; ANY is the fallback for other types.
RECEIVE: dict[State, dict[str, str]] = {
    State.AWAITING_LOGON: {"A": "_on_logon", ANY: "_on_first_not_logon"},
    State.LOGON_SENT: {"A": "_on_logon", "5": "_on_logout", ANY: "_on_first_not_logon"},
    State.ACTIVE: {
        "0": "_on_heartbeat", "1": "_on_test_request", "2": "_on_resend_request", "3": "_on_reject",
        "4": "_on_sequence_reset", "5": "_on_logout", "A": "_on_unexpected_logon", ANY: "_on_app",
    },
    State.LOGOUT_SENT: {
        "0": "_on_heartbeat", "1": "_on_test_request", "2": "_on_resend_request", "3": "_on_reject",
        "4": "_on_sequence_reset", "5": "_on_logout", "A": "_on_unexpected_logon", ANY: "_on_app",
    },
}

# Heartbeat supervision, as QuickFIX and the FIX spec's "reasonable transmission time"
TEST_REQUEST_FACTOR = 1.2  # no input for 1.2 x HeartBtInt -> TestRequest
TIMEOUT_FACTOR = 2.4  # no input for 2.4 x HeartBtInt -> disconnect
MAX_HEARTBEAT_INTERVAL_S = 86400  # a peer's HeartBtInt(108) above this is refused


# ---------------------------------------------------------------------------
# events


@dataclass(frozen=True)
class LoggedOn:
    heartbeat_interval_s: int
    reset_seq_num: bool


@dataclass(frozen=True)
class LogonRefused:
    """An acceptor refused a Logon (authentication); ``reason`` is for the log, never sent."""

    reason: str
    peer: Peer | None


@dataclass(frozen=True)
class LoggedOut:
    text: str
    initiated_by: str  # "local" or "remote"


@dataclass(frozen=True)
class ApplicationMessage:
    message: FixMessage
    poss_dup: bool


@dataclass(frozen=True)
class RejectReceived:
    message: FixMessage


@dataclass(frozen=True)
class RejectSent:
    ref_seq_num: int
    reason: int
    tag: int | None
    text: str


@dataclass(frozen=True)
class GarbledReceived:
    reason: str


@dataclass(frozen=True)
class GapDetected:
    expected: int
    received: int


@dataclass(frozen=True)
class SequenceReset:
    new_seq_num: int
    gap_fill: bool


@dataclass(frozen=True)
class DuplicateIgnored:
    seq_num: int


@dataclass(frozen=True)
class ResendAnswered:
    begin: int
    end: int
    resent: int


@dataclass(frozen=True)
class Disconnect:
    reason: str
    fault: str  # "local", "remote" or "none" (a clean logout)


Event = Union[LoggedOn, LogonRefused, LoggedOut, ApplicationMessage, RejectReceived, RejectSent, GarbledReceived,
              GapDetected, SequenceReset, DuplicateIgnored, ResendAnswered, Disconnect]


# ---------------------------------------------------------------------------
# time


# One-entry caches of the last whole second formatted / parsed: every message
# carries a SendingTime, and consecutive ones almost always share the second.
_fmt_second: tuple[int, str] = (-1, "")
_parsed_second: tuple[str, int] = ("", 0)


def _load_native_time() -> tuple[Any, Any]:
    if not NATIVE:  # TICKLINE_FIX_NATIVE=0, or no extension
        return None, None
    from tickline import _aeron

    return _aeron.fix_utc_timestamp, _aeron.fix_parse_utc_timestamp


# Native fast paths (cpp_ext/fixcodec.cpp): the same answers for ordinary times, None for
# anything else, which the Python functions below then decide (test_codec_native.py).
_native_utc_timestamp, _native_parse_utc_timestamp = _load_native_time()


def utc_timestamp(now: float) -> str:
    """UTCTimestamp with milliseconds: ``YYYYMMDD-HH:MM:SS.sss``."""
    if _native_utc_timestamp is not None:
        s: str | None = _native_utc_timestamp(now)
        if s is not None:
            return s
    return py_utc_timestamp(now)


def parse_utc_timestamp(s: str) -> float | None:
    """Seconds since the epoch for a UTCTimestamp, or None if malformed."""
    if _native_parse_utc_timestamp is not None:
        t: float | None = _native_parse_utc_timestamp(s)
        if t is not None:
            return t
    return py_parse_utc_timestamp(s)


def py_utc_timestamp(now: float) -> str:
    """The reference ``utc_timestamp``."""
    global _fmt_second
    secs = int(now)
    ms = int(round((now - secs) * 1000))
    if ms >= 1000:
        secs, ms = secs + 1, ms - 1000
    cached_secs, prefix = _fmt_second
    if cached_secs != secs:
        t = time.gmtime(secs)
        prefix = f"{t.tm_year:04d}{t.tm_mon:02d}{t.tm_mday:02d}-{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}."
        _fmt_second = (secs, prefix)
    return f"{prefix}{ms:03d}"


def py_parse_utc_timestamp(s: str) -> float | None:
    """The reference ``parse_utc_timestamp``."""
    global _parsed_second
    try:
        if len(s) < 17 or s[8] != "-" or s[11] != ":" or s[14] != ":":
            return None
        head = s[:17]
        cached_head, secs = _parsed_second
        if head != cached_head:
            secs = int(calendar.timegm((int(s[0:4]), int(s[4:6]), int(s[6:8]), int(s[9:11]), int(s[12:14]), int(s[15:17]), 0, 0, 0)))
            _parsed_second = (head, secs)
        frac = s[17:]
        if frac:
            if frac[0] != "." or not frac[1:].isdigit():
                return None
            return secs + int(frac[1:]) / 10 ** (len(frac) - 1)
        return float(secs)
    except ValueError:
        return None


# ---------------------------------------------------------------------------
# config


@dataclass(frozen=True)
class SessionConfig:
    """One FIX session.  Validated at construction (``ConfigError`` names the key).

    begin_string: FIX.4.2 | FIX.4.4 | FIXT.1.1.  role: initiator | acceptor.
    heartbeat_interval_s: HeartBtInt the initiator proposes (the acceptor
    takes the peer's).  reset_on_logon: initiator sends ResetSeqNumFlag=Y.
    check_latency / max_latency_s: SendingTime accuracy check.
    transport_dictionary / app_dictionary: dictionary names or paths
    (app defaults to transport; for FIXT.1.1 e.g. FIXT11 + FIX50SP2); empty
    disables validation.  default_appl_ver_id: 1137 on a FIXT Logon.
    username / password: sent on the initiator's Logon (553/554); the password is
    never written to the message store (password_file: read it from a 0600 file instead).  Acceptor authentication (``auth.py``):
    password_hash (with username: the one account), credentials_file,
    allowed_addresses, tls_client_cn.
    max_message_size: the largest message (bytes) taken from the peer; 0 = the
    acceptor's ``max_message_size``, or 1 MiB for a session without one.
    max_queued_messages / max_queued_bytes: bound on the messages held above a
    sequence gap; past it the session logs out ("Too many messages queued").
    """

    sender_comp_id: str
    target_comp_id: str
    begin_string: str = "FIX.4.4"
    role: str = "acceptor"
    heartbeat_interval_s: int = 30
    reset_on_logon: bool = False
    check_latency: bool = True
    max_latency_s: float = 120.0
    logon_timeout_s: float = 10.0
    logout_timeout_s: float = 2.0
    max_message_size: int = 0
    max_queued_messages: int = 10_000
    max_queued_bytes: int = 16 << 20
    transport_dictionary: str = ""
    app_dictionary: str = ""
    validate: bool = True
    check_required: bool = True
    check_types: bool = True
    check_values: bool = True
    allow_unknown_fields: bool = False
    default_appl_ver_id: str = "9"
    username: str = ""
    password: str = ""
    password_file: str = ""
    password_hash: str = ""
    credentials_file: str = ""
    allowed_addresses: tuple[str, ...] = ()
    tls_client_cn: str = ""

    def __post_init__(self) -> None:
        def bad(key: str, value: object, why: str) -> ConfigError:
            return ConfigError(f"invalid session config: fault=config key={key} value={value!r} {why}")

        if self.begin_string not in BEGIN_STRINGS:
            raise bad("begin_string", self.begin_string, "allowed=" + "|".join(BEGIN_STRINGS))
        if self.role not in ("initiator", "acceptor"):
            raise bad("role", self.role, "allowed=initiator|acceptor")
        for key in ("sender_comp_id", "target_comp_id"):
            v = getattr(self, key)
            if not v or "\x01" in v or "=" in v:
                raise bad(key, v, "must be non-empty, without SOH or '='")
        if not 0 <= self.heartbeat_interval_s <= 3600:
            raise bad("heartbeat_interval_s", self.heartbeat_interval_s, "range=0..3600")
        if self.max_latency_s <= 0:
            raise bad("max_latency_s", self.max_latency_s, "must be > 0")
        if self.logon_timeout_s <= 0 or self.logout_timeout_s <= 0:
            raise bad("logon_timeout_s/logout_timeout_s", (self.logon_timeout_s, self.logout_timeout_s), "must be > 0")
        if self.max_message_size != 0 and self.max_message_size < 64:
            raise bad("max_message_size", self.max_message_size, "min=64 (0 = the acceptor's)")
        if self.max_queued_messages < 1 or self.max_queued_bytes < 1:
            raise bad("max_queued_messages/max_queued_bytes", (self.max_queued_messages, self.max_queued_bytes),
                      "must be >= 1")
        for key in ("username", "password"):
            if "\x01" in getattr(self, key):
                raise bad(key, "...", "must not contain SOH")
        if self.password_file:
            if self.role != "initiator" or self.password:
                raise bad("password_file", self.password_file, "initiator sessions only, instead of password")
            pw = read_private_file(self.password_file, "password_file").rstrip("\r\n")
            if not pw or "\x01" in pw:
                raise bad("password_file", self.password_file, "must hold one password without SOH")
            object.__setattr__(self, "password", pw)
        if self.role == "acceptor" and self.password:
            raise bad("password", "...", "an acceptor checks password_hash (tickline fix-gateway --hash-password), "
                      "never a plain-text password")
        if self.role == "initiator" and (self.password_hash or self.credentials_file or self.allowed_addresses
                                         or self.tls_client_cn):
            raise bad("password_hash/credentials_file/allowed_addresses/tls_client_cn", "...", "acceptor sessions only")
        if self.password_hash and self.credentials_file:
            raise bad("password_hash/credentials_file", "...", "give one of them")
        if self.password_hash:
            check_password_hash(self.password_hash, "password_hash")
        if not isinstance(self.allowed_addresses, tuple):
            object.__setattr__(self, "allowed_addresses", tuple(self.allowed_addresses))
        parse_networks(self.allowed_addresses, "allowed_addresses")

    def __repr__(self) -> str:  # no secret in a log line or a traceback
        return f"SessionConfig(session_id={self.session_id!r}, role={self.role!r})"

    @property
    def session_id(self) -> str:
        return f"{self.begin_string}:{self.sender_comp_id}->{self.target_comp_id}"

    def make_validator(self) -> Validator | None:
        if not self.transport_dictionary or not self.validate:
            return None
        t = load_dictionary(self.transport_dictionary)
        a = load_dictionary(self.app_dictionary) if self.app_dictionary else t
        cfg = ValidationConfig(True, self.check_required, self.check_types, self.check_values, self.allow_unknown_fields)
        return Validator(t, a, cfg)


# ---------------------------------------------------------------------------
# the session


@dataclass
class _Timers:
    connected_at: float = 0.0
    last_sent: float = 0.0
    last_received: float = 0.0
    logout_sent_at: float = 0.0
    test_request_id: str | None = None
    test_request_count: int = 0


class Session:
    """One FIX session's protocol logic.  See the module doc for the contract.

    ``store`` is the session's message store (persist before send);
    ``authenticator(LogonRequest) -> None | reason`` vets an incoming Logon (acceptor),
    after the checks the config asks for (``auth.SessionAuth``).
    """

    def __init__(self, config: SessionConfig, store: MessageStore,
                 authenticator: Authenticator | None = None, validator: Validator | None = None) -> None:
        self.config = config
        self.store = store
        self.authenticator = authenticator
        self._auth = SessionAuth(config, authenticator) if config.role == "acceptor" else None
        self.validator = validator if validator is not None else config.make_validator()
        self.state = State.DISCONNECTED
        self.heartbeat_interval_s = config.heartbeat_interval_s
        self._framer = Framer(config.max_message_size or DEFAULT_MAX_MESSAGE_SIZE)
        self._out: list[bytes] = []
        self._events: list[Event] = []
        self._queue: dict[int, FixMessage] = {}
        self._queued_bytes = 0
        self.peer: Peer | None = None
        self._resend_until: int = 0  # highest seq covered by our outstanding ResendRequest; 0 = none
        self._t = _Timers()
        self._test_req_seq = 0
        self._sent_reset = False
        # totals since start, for the gateway's counters (fix_gateway/counters.py samples them)
        self.messages_in = 0   # well-formed messages received
        self.messages_out = 0  # messages written (resends and gap fills included)
        self.resent = 0        # messages resent and gap fills, answering ResendRequests
        self.rejects_sent = 0  # session-level Rejects (35=3)

    # -- outputs -----------------------------------------------------------

    def data_to_send(self) -> bytes:
        """Bytes to write to the socket, in order; drains the buffer."""
        if not self._out:
            return b""
        out = b"".join(self._out)
        self._out.clear()
        return out

    @property
    def has_events(self) -> bool:
        """Whether ``events()`` has anything (cheaper than asking it every duty cycle)."""
        return bool(self._events)

    def events(self) -> list[Event]:
        """Events since the last call, in order; drains the list."""
        ev, self._events = self._events, []
        return ev

    def next_deadline(self) -> float | None:
        """The time ``tick`` must next be called at (None: no timer pending)."""
        t, st = self._t, self.state
        if st in (State.AWAITING_LOGON, State.LOGON_SENT):
            return t.connected_at + self.config.logon_timeout_s
        if st == State.LOGOUT_SENT:
            return t.logout_sent_at + self.config.logout_timeout_s
        if st == State.ACTIVE and self.heartbeat_interval_s > 0:
            hb = self.heartbeat_interval_s
            if t.test_request_id is not None:
                recv = t.last_received + TIMEOUT_FACTOR * hb
            else:
                recv = t.last_received + TEST_REQUEST_FACTOR * hb
            return min(t.last_sent + hb, recv)
        return None

    @property
    def is_logged_on(self) -> bool:
        return self.state == State.ACTIVE

    # -- inputs ------------------------------------------------------------

    def connection_made(self, now: float, peer: Peer | None = None) -> None:
        """The transport is connected: the initiator sends its Logon.  ``peer``: where the
        connection comes from (the acceptor's authentication checks it)."""
        if self.state != State.DISCONNECTED:
            raise LocalProtocolError(f"connection_made while connected: fault=local session={self.config.session_id} state={self.state.value}")
        self.peer = peer
        self._framer.reset()
        self._queue.clear()
        self._queued_bytes = 0
        self._resend_until = 0
        self._t = _Timers(connected_at=now, last_sent=now, last_received=now)
        if self.config.role == "initiator":
            self._set_state(State.LOGON_SENT)
            self._sent_reset = self.config.reset_on_logon
            if self._sent_reset:
                self.store.reset(now)
            self._send_logon(now, reset=self._sent_reset)
        else:
            self._set_state(State.AWAITING_LOGON)

    def connection_lost(self, now: float, reason: str = "connection_lost") -> None:
        """The transport closed (either side; ``reason`` when the I/O shell closed it);
        no-op if already disconnected."""
        if self.state != State.DISCONNECTED:
            self._disconnect(reason, "remote")
        self._out.clear()

    def receive_data(self, data: bytes, now: float) -> None:
        """Bytes from the socket, in any chunking."""
        if self.state == State.DISCONNECTED:
            return
        try:
            self._receive(data, now)
        except Exception as e:  # noqa: BLE001 - one connection's bytes must never take the process down
            self._fail(now, e)

    def _fail(self, now: float, e: Exception) -> None:
        """An exception escaped the handling of the peer's input: end this connection (with a
        Logout when logged on), never the process.  The handler that raised is our bug, so the
        fault is ours; the traceback is logged."""
        _log.error("error handling input: fault=local session=%s state=%s error=%s: %s",
                   self.config.session_id, self.state.value, type(e).__name__, e, exc_info=e)
        if self.state == State.DISCONNECTED:
            return
        if self.state in (State.ACTIVE, State.LOGOUT_SENT):
            try:
                self._send_admin("5", [(58, "Internal error processing message")], now)
            except Exception:  # noqa: BLE001 - the store may be what failed: disconnect without the Logout
                pass
        self._disconnect(f"error_processing_input error={type(e).__name__}", "local")

    def _receive(self, data: bytes, now: float) -> None:
        framer = self._framer
        framer.feed(data)
        while self.state != State.DISCONNECTED:
            msg = framer.next_message()  # the well-formed case, framed and parsed in one native call
            if msg is None:
                item = framer.next()
                if item is None:
                    return
                if isinstance(item, Oversized):
                    self._logout_and_disconnect(
                        now, f"Message too large: size={item.declared_size} max={item.max_size}",
                        f"oversized_message size={item.declared_size} max={item.max_size}")
                    return
                if isinstance(item, Garbled):
                    self._events.append(GarbledReceived(item.reason))
                    continue
                try:
                    msg = parse(item.data)
                except GarbledMessage as e:
                    self._events.append(GarbledReceived(e.reason))
                    continue
            self.messages_in += 1
            self._t.last_received = now
            self._t.test_request_id = None  # any message from the peer answers our TestRequest
            self._on_message(msg, now)

    def tick(self, now: float) -> None:
        """Timers: logon/logout timeouts, heartbeats, TestRequest, heartbeat timeout."""
        t, st = self._t, self.state
        if st in (State.AWAITING_LOGON, State.LOGON_SENT):
            if now >= t.connected_at + self.config.logon_timeout_s:
                self._disconnect(f"logon_timeout timeout_s={self.config.logon_timeout_s}", "remote")
            return
        if st == State.LOGOUT_SENT:
            if now >= t.logout_sent_at + self.config.logout_timeout_s:
                self._disconnect(f"logout_timeout timeout_s={self.config.logout_timeout_s}", "remote")
            return
        if st != State.ACTIVE or self.heartbeat_interval_s <= 0:
            return
        hb = self.heartbeat_interval_s
        silent = now - t.last_received
        if t.test_request_id is not None and silent >= TIMEOUT_FACTOR * hb:
            self._disconnect(f"heartbeat_timeout silent_s={silent:.3f} heartbeat_interval_s={hb}", "remote")
            return
        if t.test_request_id is None and silent >= TEST_REQUEST_FACTOR * hb:
            self._test_req_seq += 1
            t.test_request_id = f"TEST-{self._test_req_seq}"
            self._send_admin("1", [(112, t.test_request_id)], now)
            return
        if now - t.last_sent >= hb:
            self._send_admin("0", [], now)

    def send(self, msg_type: str, fields: Iterable[tuple[int, FieldValue]], now: float, body: bytes = b"") -> int:
        """Send an application message; returns its MsgSeqNum.

        ``fields`` are the body (and optional extra header fields), without
        8, 9, 35, 49, 56, 34, 52, 10; ``body`` is more body fields already
        encoded (``codec.encode``), after ``fields``.  Stored before it is
        queued for the socket; when not logged on it is only stored (the peer
        recovers it by ResendRequest).  Raises ``LocalProtocolError`` for
        admin types.
        """
        if msg_type in ADMIN_MSG_TYPES:
            raise LocalProtocolError(f"send() is for application messages: fault=local msg_type={msg_type}")
        return self._send(msg_type, fields, now, self.state in (State.ACTIVE, State.LOGOUT_SENT), body)

    def send_reject(self, fields: Iterable[tuple[int, FieldValue]], now: float) -> int:
        """Send a session-level Reject (35=3) for a received message the application
        can't process (``fields``: 45, 371, 372, 373, 58).  Stored like any message."""
        return self._send("3", fields, now, emit=self.state in (State.ACTIVE, State.LOGOUT_SENT))

    def logout(self, now: float, text: str = "") -> None:
        """Start the Logout handshake (or drop the connection if not logged on)."""
        if self.state == State.ACTIVE:
            self._send_admin("5", [(58, text)] if text else [], now)
            self._t.logout_sent_at = now
            self._set_state(State.LOGOUT_SENT)
        elif self.state in (State.AWAITING_LOGON, State.LOGON_SENT):
            self._disconnect("logout_before_logon", "local")

    def reset_sequence_numbers(self, now: float) -> None:
        """Daily reset (schedule): both sequence numbers back to 1, stored messages gone."""
        if self.state != State.DISCONNECTED:
            raise LocalProtocolError(f"reset while connected: fault=local session={self.config.session_id} state={self.state.value}")
        self.store.reset(now)

    # -- internals: state and output -------------------------------------

    def _set_state(self, new: State) -> None:
        if new != State.DISCONNECTED and new not in TRANSITIONS[self.state]:
            raise AssertionError(f"illegal session transition: from={self.state.value} to={new.value}")
        self.state = new

    def _disconnect(self, reason: str, fault: str) -> None:
        self._set_state(State.DISCONNECTED)
        self._queue.clear()
        self._queued_bytes = 0
        self._resend_until = 0
        self._events.append(Disconnect(reason, fault))

    def _header(self, msg_type: str, seq: int, now: float) -> list[tuple[int, FieldValue]]:
        c = self.config
        return [(35, msg_type), (49, c.sender_comp_id), (56, c.target_comp_id), (34, seq), (52, utc_timestamp(now))]

    def _send(self, msg_type: str, fields: Iterable[tuple[int, FieldValue]], now: float, emit: bool = True,
              body: bytes = b"", stored: list[tuple[int, FieldValue]] | None = None) -> int:
        """``stored``: the fields to keep in the store when they differ from what is sent
        (the Logon without its Password)."""
        seq = self.store.next_sender_seq
        if seq > MAX_SEQ_NUM:
            raise LocalProtocolError(f"sequence numbers exhausted: fault=local session={self.config.session_id} "
                                     f"next_sender_seq={seq} max={MAX_SEQ_NUM} (reset the session)")
        msg = self._header(msg_type, seq, now)
        msg += fields  # the one copy of the caller's fields (any iterable), behind the header
        raw = encode(self.config.begin_string, msg, body)
        # persist before send (invariant 1)
        self.store.save(seq, raw if stored is None else encode(self.config.begin_string,
                                                               self._header(msg_type, seq, now) + stored))
        self.store.set_next_sender_seq(seq + 1)
        if emit:
            self._out.append(raw)
            self._t.last_sent = now
            self.messages_out += 1
        return seq

    def _send_admin(self, msg_type: str, fields: list[tuple[int, FieldValue]], now: float) -> int:
        return self._send(msg_type, fields, now)

    def _send_logon(self, now: float, reset: bool) -> None:
        c = self.config
        fields: list[tuple[int, FieldValue]] = [(98, 0), (108, self.heartbeat_interval_s)]
        if reset:
            fields.append((141, "Y"))
        if c.begin_string == "FIXT.1.1":
            fields.append((1137, c.default_appl_ver_id))
        if c.role == "initiator" and c.username:
            fields.append((553, c.username))
            if c.password:  # sent, never stored: the stored Logon only holds the sequence number's place
                self._send("A", fields + [(554, c.password)], now, stored=fields)
                return
        self._send_admin("A", fields, now)

    def _logout_and_disconnect(self, now: float, text: str, reason: str, fault: str = "remote") -> None:
        self._send_admin("5", [(58, text)], now)
        self._disconnect(reason, fault)

    def _reject(self, msg: FixMessage, reason: int, tag: int | None, text: str, now: float) -> None:
        seq = msg.seq_num or 0
        fields: list[tuple[int, FieldValue]] = [(45, seq)]
        if tag is not None:
            fields.append((371, tag))
        fields += [(372, msg.msg_type), (373, reason), (58, text)]
        self._send_admin("3", fields, now)
        self.rejects_sent += 1
        self._events.append(RejectSent(seq, reason, tag, text))

    def _incr_target(self) -> None:
        self.store.set_next_target_seq(self.store.next_target_seq + 1)

    # -- internals: receiving ---------------------------------------------

    def _on_message(self, msg: FixMessage, now: float) -> None:
        c = self.config
        if msg.get(8) != c.begin_string:
            if self.state == State.AWAITING_LOGON:
                self._disconnect(f"wrong_begin_string expected={c.begin_string} received={msg.get(8)}", "remote")
            else:
                self._logout_and_disconnect(now, f"Incorrect BeginString expected={c.begin_string} received={msg.get(8)}",
                                            f"wrong_begin_string expected={c.begin_string} received={msg.get(8)}")
            return
        table = RECEIVE[self.state]
        handler = table.get(msg.msg_type) or table[ANY]
        getattr(self, handler)(msg, now)
        if (self._queue or self._resend_until) and self.state in (State.ACTIVE, State.LOGOUT_SENT):
            self._drain_queue(now)  # (with neither, it has nothing to do)

    def _drain_queue(self, now: float) -> None:
        q = self._queue
        while q and self.state in (State.ACTIVE, State.LOGOUT_SENT):
            expected = self.store.next_target_seq
            for s in [s for s in q if s < expected]:
                self._unqueue(s)
            msg = self._unqueue(expected)
            if msg is None:
                break
            table = RECEIVE[self.state]
            getattr(self, table.get(msg.msg_type) or table[ANY])(msg, now)
        if self._resend_until and self.store.next_target_seq > self._resend_until:
            self._resend_until = 0

    def _unqueue(self, seq: int) -> FixMessage | None:
        msg = self._queue.pop(seq, None)
        if msg is not None and msg.raw is not None:
            self._queued_bytes -= len(msg.raw)
        return msg

    def _verify(self, msg: FixMessage, now: float, check_too_high: bool = True, check_too_low: bool = True) -> bool:
        """Header checks every message passes; False when the message must not be processed now."""
        c = self.config
        get = (msg._index or msg._idx()).get
        if get(49) != c.target_comp_id or get(56) != c.sender_comp_id:
            text = f"CompID problem expected_sender={c.target_comp_id} expected_target={c.sender_comp_id} received_sender={msg.get(49)} received_target={msg.get(56)}"
            self._reject(msg, R.COMPID_PROBLEM, 49 if msg.get(49) != c.target_comp_id else 56, "CompID problem", now)
            self._logout_and_disconnect(now, "CompID problem", "wrong_comp_id " + text)
            return False
        seq = msg.seq_num
        if seq is None:
            self._logout_and_disconnect(now, "MsgSeqNum(34) missing or invalid", "seq_num_missing")
            return False
        poss_dup = get(43) == "Y"
        sending = get(52)
        sending_t = parse_utc_timestamp(sending) if sending else None
        if c.check_latency:
            if sending_t is None or abs(now - sending_t) > c.max_latency_s:
                self._reject(msg, R.SENDING_TIME_ACCURACY_PROBLEM, 52, "SendingTime accuracy problem", now)
                self._logout_and_disconnect(now, "SendingTime accuracy problem",
                                            f"sending_time_accuracy sending_time={sending} max_latency_s={c.max_latency_s}")
                return False
        if poss_dup and msg.msg_type != "4":
            orig = msg.get(122)
            if orig is None:
                if seq == self.store.next_target_seq:
                    self._reject(msg, R.REQUIRED_TAG_MISSING, 122, "Required tag missing", now)
                    self._incr_target()
                return False
            orig_t = parse_utc_timestamp(orig)
            if orig_t is None or (sending_t is not None and orig_t > sending_t):
                self._reject(msg, R.SENDING_TIME_ACCURACY_PROBLEM, 122, "SendingTime accuracy problem", now)
                self._logout_and_disconnect(now, "SendingTime accuracy problem",
                                            f"orig_sending_time_after_sending_time orig={orig} sending={sending}")
                return False
        expected = self.store.next_target_seq
        if check_too_high and seq > expected:
            q = self._queue
            size = len(msg.raw) if msg.raw is not None else 0
            if seq not in q and (len(q) >= c.max_queued_messages or self._queued_bytes + size > c.max_queued_bytes):
                self._logout_and_disconnect(
                    now, f"Too many messages queued above a sequence gap: expected={expected} "
                         f"max_messages={c.max_queued_messages} max_bytes={c.max_queued_bytes}",
                    f"queue_full queued={len(q)} queued_bytes={self._queued_bytes} expected={expected} received={seq}")
                return False
            old = q.get(seq)
            if old is not None and old.raw is not None:
                self._queued_bytes -= len(old.raw)
            q[seq] = msg
            self._queued_bytes += size
            self._request_resend(expected, seq, now)
            return False
        if check_too_low and seq < expected:
            if poss_dup:
                self._events.append(DuplicateIgnored(seq))
            else:
                text = f"MsgSeqNum too low, expecting {expected} but received {seq}"
                self._logout_and_disconnect(now, text, f"seq_num_too_low expected={expected} received={seq}")
            return False
        return True

    def _request_resend(self, expected: int, received: int, now: float) -> None:
        self._events.append(GapDetected(expected, received))
        if self._resend_until:
            # our outstanding request runs to infinity (EndSeqNo=0): it covers this message too
            self._resend_until = max(self._resend_until, received)
            return
        self._resend_until = received
        self._send_admin("2", [(7, expected), (16, 0)], now)  # EndSeqNo 0 = infinity (FIX 4.2 and later)

    def _validate(self, msg: FixMessage, now: float) -> bool:
        if self.validator is None:
            return True
        try:
            self.validator.validate(msg)
        except ValidationError as e:
            self._reject(msg, e.reason, e.tag, e.text, now)
            self._incr_target()
            return False
        return True

    # -- handlers (dispatched through RECEIVE) ----------------------------

    def _on_first_not_logon(self, msg: FixMessage, now: float) -> None:
        self._disconnect(f"first_message_not_logon msg_type={msg.msg_type}", "remote")

    def _on_logon(self, msg: FixMessage, now: float) -> None:
        c = self.config
        acceptor = self.state == State.AWAITING_LOGON
        if msg.get(49) != c.target_comp_id or msg.get(56) != c.sender_comp_id:
            self._verify(msg, now)  # rejects and disconnects
            return
        hb_s = msg.get(108)
        hb = ascii_uint(hb_s)
        if hb is None or hb > MAX_HEARTBEAT_INTERVAL_S:
            self._logout_and_disconnect(now, "HeartBtInt(108) missing or invalid", f"bad_heartbeat_interval value={hb_s!r}")
            return
        reset = msg.get(141) == "Y"
        if acceptor and self._auth is not None and self._auth.checks_anything:
            refusal = self._auth(LogonRequest(c.session_id, msg, self.peer))
            if refusal is not None:
                self._refuse_logon(msg, refusal, now)
                return
        if acceptor and reset:
            self.store.reset(now)  # only once the Logon is accepted: a refused peer can't wipe the store
        if self.validator is not None:
            try:
                self.validator.validate(msg)
            except ValidationError as e:
                self._reject(msg, e.reason, e.tag, e.text, now)
                self._logout_and_disconnect(now, e.text, f"invalid_logon reason={e.reason} tag={e.tag}")
                return
        if not self._verify(msg, now, check_too_high=False):
            return
        if acceptor:
            self.heartbeat_interval_s = hb
            self._set_state(State.ACTIVE)
            self._send_logon(now, reset=reset)
        else:
            self._set_state(State.ACTIVE)
        self._t.last_received = now
        self._events.append(LoggedOn(self.heartbeat_interval_s, reset))
        seq, expected = msg.seq_num or 0, self.store.next_target_seq
        if seq > expected:
            self._request_resend(expected, seq, now)
        else:
            self._incr_target()

    def _refuse_logon(self, msg: FixMessage, reason: str, now: float) -> None:
        """A Logout that is sent, not stored, and moves no sequence number: a peer that has not
        authenticated changes nothing in the session's store (and can't grow it by retrying)."""
        seq = self.store.next_sender_seq
        self._out.append(encode(self.config.begin_string, self._header("5", seq, now) + [(58, "Logon refused")]))
        self._t.last_sent = now
        self._events.append(LogonRefused(reason, self.peer))
        self._disconnect(f"logon_refused reason={reason}", "remote")

    def _on_logout(self, msg: FixMessage, now: float) -> None:
        if self.state == State.LOGON_SENT:
            text = msg.get(58, "") or ""
            self._events.append(LoggedOut(text, "remote"))
            self._disconnect(f"logon_answered_with_logout text={text!r}", "remote")
            return
        if not self._verify(msg, now, check_too_high=False):
            return
        if msg.seq_num == self.store.next_target_seq:
            self._incr_target()
        text = msg.get(58, "") or ""
        if self.state == State.LOGOUT_SENT:
            self._events.append(LoggedOut(text, "local"))
            self._disconnect("logout_complete", "none")
        else:
            self._send_admin("5", [], now)
            self._events.append(LoggedOut(text, "remote"))
            self._disconnect("logout_by_peer", "none")

    def _on_unexpected_logon(self, msg: FixMessage, now: float) -> None:
        if self._verify(msg, now):
            self._incr_target()
            self._logout_and_disconnect(now, "Logon while logged on", "unexpected_logon")

    def _on_heartbeat(self, msg: FixMessage, now: float) -> None:
        if not self._verify(msg, now) or not self._validate(msg, now):
            return
        t = self._t
        if t.test_request_id is not None and msg.get(112) == t.test_request_id:
            t.test_request_id = None
        self._incr_target()

    def _on_test_request(self, msg: FixMessage, now: float) -> None:
        if not self._verify(msg, now) or not self._validate(msg, now):
            return
        req_id = msg.get(112)
        if not req_id:
            self._reject(msg, R.REQUIRED_TAG_MISSING, 112, "Required tag missing", now)
        else:
            self._send_admin("0", [(112, req_id)], now)
        self._incr_target()

    def _on_reject(self, msg: FixMessage, now: float) -> None:
        if not self._verify(msg, now):
            return
        self._events.append(RejectReceived(msg))
        self._incr_target()

    def _on_app(self, msg: FixMessage, now: float) -> None:
        if not self._verify(msg, now) or not self._validate(msg, now):
            return
        self._events.append(ApplicationMessage(msg, msg.get(43) == "Y"))
        self._incr_target()

    def _on_resend_request(self, msg: FixMessage, now: float) -> None:
        if not self._verify(msg, now, check_too_high=False):
            return
        if msg.seq_num == self.store.next_target_seq and not self._validate(msg, now):
            return
        b_s, e_s = msg.get(7), msg.get(16)
        seq = msg.seq_num or 0
        expected = self.store.next_target_seq
        begin, end = ascii_uint(b_s), ascii_uint(e_s)
        if begin is None or end is None or not 1 <= begin <= MAX_SEQ_NUM:
            self._reject(msg, R.VALUE_INCORRECT if b_s and e_s else R.REQUIRED_TAG_MISSING,
                         7 if begin is None or not 1 <= begin <= MAX_SEQ_NUM else 16, "Invalid ResendRequest range", now)
            if seq == expected:
                self._incr_target()
            return
        last_sent = self.store.next_sender_seq - 1
        if end == 0 or end == 999999 or end > last_sent:
            end = last_sent
        resent = 0
        if begin <= end:
            stored = dict(self.store.get(begin, end))
            gap_start: int | None = None
            for s in range(begin, end + 1):
                raw = stored.get(s)
                orig = None
                if raw is not None:
                    try:
                        orig = parse(raw)
                    except GarbledMessage:
                        orig = None
                if orig is None or orig.msg_type in ADMIN_MSG_TYPES:
                    if gap_start is None:
                        gap_start = s
                    continue
                if gap_start is not None:
                    self._send_gap_fill(gap_start, s, now)
                    gap_start = None
                self._resend(orig, now)
                resent += 1
            if gap_start is not None:
                self._send_gap_fill(gap_start, end + 1, now)
        self._events.append(ResendAnswered(begin, end, resent))
        if seq > expected:
            self._unqueue(seq)
            self._request_resend(expected, seq, now)
        elif seq == expected:
            self._incr_target()

    def _send_gap_fill(self, seq: int, new_seq: int, now: float) -> None:
        ts = utc_timestamp(now)
        c = self.config
        raw = encode(c.begin_string, [(35, "4"), (49, c.sender_comp_id), (56, c.target_comp_id), (34, seq),
                                      (43, "Y"), (52, ts), (122, ts), (123, "Y"), (36, new_seq)])
        self._out.append(raw)
        self._t.last_sent = now
        self.messages_out += 1
        self.resent += 1

    def _resend(self, orig: FixMessage, now: float) -> None:
        c = self.config
        fields: list[tuple[int, FieldValue]] = [(35, orig.msg_type), (49, c.sender_comp_id), (56, c.target_comp_id),
                                                (34, orig[34]), (43, "Y"), (52, utc_timestamp(now)),
                                                (122, orig.get(52, utc_timestamp(now)) or "")]
        skip = {8, 9, 10, 35, 49, 56, 34, 52, 43, 122, 97}
        fields += [(t, v) for t, v in orig.fields if t not in skip]
        self._out.append(encode(c.begin_string, fields))
        self._t.last_sent = now
        self.messages_out += 1
        self.resent += 1

    def _on_sequence_reset(self, msg: FixMessage, now: float) -> None:
        gap_fill = msg.get(123) == "Y"
        if gap_fill:
            if not self._verify(msg, now):
                return
        else:
            # Reset mode: MsgSeqNum is ignored, only the header checks apply
            if not self._verify(msg, now, check_too_high=False, check_too_low=False):
                return
        new_s = msg.get(36)
        expected = self.store.next_target_seq
        new = ascii_uint(new_s)
        if new is None and new_s and new_s.isascii() and new_s.isdigit():
            new = MAX_SEQ_NUM + 1  # more digits than any sequence number has: out of range, refused below
        if new is None:
            self._reject(msg, R.REQUIRED_TAG_MISSING if new_s is None else R.INCORRECT_DATA_FORMAT, 36,
                         "NewSeqNo(36) missing or invalid", now)
            if msg.seq_num == expected:
                self._incr_target()
            return
        if new > MAX_SEQ_NUM:
            self._reject(msg, R.VALUE_INCORRECT, 36, f"NewSeqNo(36) out of range max={MAX_SEQ_NUM}", now)
            if gap_fill and msg.seq_num == expected:
                self._incr_target()
            return
        if new > expected:
            self.store.set_next_target_seq(new)
            for s in [s for s in self._queue if s < new]:
                self._unqueue(s)
            self._events.append(SequenceReset(new, gap_fill))
        elif new < expected:
            self._reject(msg, R.VALUE_INCORRECT, 36,
                         f"Attempt to lower sequence number, invalid value NewSeqNo={new}", now)
            if gap_fill and msg.seq_num == expected:
                self._incr_target()
