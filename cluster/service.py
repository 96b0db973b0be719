"""The service container: runs a user's :class:`ClusteredService` on the
committed log, identically on every member.

Determinism rules for service code: the only clock is ``cluster.time`` (the
timestamp the leader wrote into the entry being applied); timers are
requested with ``cluster.schedule_timer`` and fire as TIMER entries in the log,
so every member fires them at the same log position; no other source of time,
randomness or I/O.  Egress written with ``session.offer`` is sent to clients
only by the leader; followers compute and discard it (and cache it for
duplicates, so a new leader can answer a retry).

Exactly-once: each client message carries (session id, correlation id).  The
container remembers the correlation ids at or above the session's floor (the
client's lowest unanswered id) with the egress they produced; a repeat is not
given to the service, its cached egress is re-sent instead.
"""

from __future__ import annotations

import bisect
import json
import struct
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from .errors import LogCorruptionError
from .messages import KIND_ACTION, KIND_MESSAGE, KIND_NOOP, KIND_SESSION_CLOSE, KIND_SESSION_OPEN, KIND_TIMER, Entry, Role
from .protocol import EgressMessage, EventCode, SessionEvent

__all__ = ["ClusteredService", "ClientSession", "ServiceContainer", "encode_ingress", "entry_problem", "OPEN", "CLOSE", "MESSAGE_HEADER", "TIMER",
           "ACTION", "ACTION_SUSPEND", "ACTION_RESUME", "ACTION_SHUTDOWN"]

OPEN = struct.Struct("<qq")  # session id, client id
CLOSE = struct.Struct("<q")  # session id
MESSAGE_HEADER = struct.Struct("<qqq")  # session id, correlation id, floor
TIMER = struct.Struct("<q")  # timer correlation id
ACTION = struct.Struct("<Bqq")  # cluster action (wire.ClusterAction), the asking client's id, its request id
#: the cluster actions that go through the log (their values are wire.ClusterAction's)
ACTION_SUSPEND, ACTION_RESUME, ACTION_SHUTDOWN = 3, 4, 5


# the payload sizes the container can apply, by entry kind: (exact, or None for "at least")
_PAYLOAD_SIZES = {KIND_NOOP: (0, None), KIND_SESSION_OPEN: (OPEN.size, OPEN.size), KIND_SESSION_CLOSE: (CLOSE.size, CLOSE.size),
                  KIND_MESSAGE: (MESSAGE_HEADER.size, None), KIND_TIMER: (TIMER.size, TIMER.size),
                  KIND_ACTION: (ACTION.size, ACTION.size)}


def entry_problem(entry: Entry) -> str | None:
    """Why the container could not apply ``entry`` (unknown kind, payload of the
    wrong size), or None.  A member checks a leader's entries with it before
    storing them: a malformed one would stop every member that applied it."""
    sizes = _PAYLOAD_SIZES.get(entry.kind)
    if sizes is None:
        return f"unknown_kind_{entry.kind}"
    low, high = sizes
    n = len(entry.payload)
    if n < low or (high is not None and n > high):
        return f"payload_length_{n}_for_kind_{entry.kind}"
    if entry.kind == KIND_ACTION and entry.payload[0] not in (ACTION_SUSPEND, ACTION_RESUME, ACTION_SHUTDOWN):
        return f"unknown_action_{entry.payload[0]}"
    return None


def encode_ingress(session_id: int, correlation_id: int, floor: int, payload: bytes) -> bytes:
    return MESSAGE_HEADER.pack(session_id, correlation_id, floor) + payload


class ClusteredService(Protocol):
    """What a replicated service implements.  All calls happen on the node's
    thread, in log order; ``timestamp`` is cluster time from the log."""

    def on_start(self, cluster: "ServiceContainer") -> None: ...
    def on_session_open(self, session: "ClientSession", timestamp: int) -> None: ...
    def on_session_close(self, session: "ClientSession", timestamp: int) -> None: ...
    def on_message(self, session: "ClientSession", timestamp: int, payload: bytes) -> None: ...
    def on_timer(self, correlation_id: int, timestamp: int) -> None: ...
    def on_take_snapshot(self) -> bytes: ...
    def on_load_snapshot(self, data: bytes) -> None: ...
    def on_role_change(self, role: Role) -> None: ...


@dataclass
class _SessionState:
    client_id: int
    floor: int = 0
    # correlation id -> egress payloads it produced, kept while >= floor
    answered: dict[int, list[bytes]] = field(default_factory=dict)
    # The keys of ``answered``, ascending: a rising floor drops them from the
    # front, O(dropped), instead of scanning every cached answer (a client that
    # raises its floor once per message would otherwise cost O(window) each).
    ids: deque[int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.ids = deque(sorted(self.answered))

    def remember(self, correlation_id: int) -> list[bytes]:
        """Start the cache entry of a newly applied id; returns its (empty) payload list."""
        payloads: list[bytes] = []
        self.answered[correlation_id] = payloads
        ids = self.ids
        if not ids or correlation_id > ids[-1]:
            ids.append(correlation_id)
        else:  # applied after a higher id (a retry that overtook it): rare; keep ids ascending
            bisect.insort(ids, correlation_id)
        return payloads

    def raise_floor(self, floor: int) -> None:
        """Forget every answer below ``floor``."""
        self.floor = floor
        ids, answered = self.ids, self.answered
        while ids and ids[0] < floor:
            del answered[ids.popleft()]


class ClientSession:
    """Handle a service uses to answer a client; valid only during the callback."""

    __slots__ = ("id", "_container", "_correlation_id")

    def __init__(self, session_id: int, container: "ServiceContainer", correlation_id: int) -> None:
        self.id = session_id
        self._container = container
        self._correlation_id = correlation_id

    @property
    def correlation_id(self) -> int:
        return self._correlation_id

    def offer(self, payload: bytes) -> None:
        self._container._offer(self.id, self._correlation_id, payload if type(payload) is bytes else bytes(payload))


class ServiceContainer:
    def __init__(self, service: ClusteredService) -> None:
        self.service = service
        self.sessions: dict[int, _SessionState] = {}
        self.timers: dict[int, int] = {}  # timer correlation id -> deadline (cluster time)
        # never above the earliest deadline in ``timers`` (None only when there is none): the leader
        # asks for due timers every duty cycle, and a cycle with nothing due costs one comparison
        self.earliest_deadline: int | None = None
        self.time = 0
        self.log_position = 0
        self.role = Role.FOLLOWER
        self.duplicates = 0
        # Replicated by the log (ACTION entries) and kept in snapshots: while true, client
        # messages are not given to the service; each is answered ERROR "suspended" (the
        # client retries it) and is not remembered, so its retry after a resume is applied.
        self.suspended = False
        self.refused_suspended = 0
        self._out: list[tuple[int, object]] = []
        self._current: list[bytes] | None = None
        # One handle reused for every message: it is valid only during the
        # callback (see ClientSession), so no allocation per applied message.
        self._session = ClientSession(0, self, 0)
        service.on_start(self)

    # ---------------------------------------------------------------- service API

    def schedule_timer(self, correlation_id: int, deadline: int) -> None:
        """Ask for ``on_timer(correlation_id)`` once cluster time reaches ``deadline``
        (replaces an earlier timer with the same id)."""
        self.timers[correlation_id] = deadline
        e = self.earliest_deadline
        if e is None or deadline < e:
            self.earliest_deadline = deadline

    def cancel_timer(self, correlation_id: int) -> bool:
        return self.timers.pop(correlation_id, None) is not None

    def due_timers(self, now: int) -> list[int]:
        """The correlation ids of the timers whose deadline is ``now`` or earlier, in order."""
        e = self.earliest_deadline
        if e is None or now < e:
            return []
        timers = self.timers
        # a cancelled or fired timer may have left the bound low: it is tightened here
        self.earliest_deadline = min(timers.values()) if timers else None
        return sorted(c for c, d in timers.items() if d <= now)

    def answer(self, session_id: int, correlation_id: int, payload: bytes) -> bool:
        """Answer a message applied earlier (a long poll the service held back):
        the payload is cached under that message's correlation id, as if given
        during its callback, so a client's retry to a new leader gets it too.
        False (nothing sent) when the session is gone or the client has since
        moved its floor past the id (it no longer waits for the answer)."""
        s = self.sessions.get(session_id)
        if s is None:
            return False
        cached = s.answered.get(correlation_id)
        if cached is None:
            return False
        cached.append(payload)
        self._out.append((s.client_id, EgressMessage(session_id, correlation_id, payload)))
        return True

    def _offer(self, session_id: int, correlation_id: int, payload: bytes) -> None:
        s = self.sessions.get(session_id)
        if s is None:
            return
        if self._current is not None:
            self._current.append(payload)
        self._out.append((s.client_id, EgressMessage(session_id, correlation_id, payload)))

    # ---------------------------------------------------------------- log application

    def apply(self, entry: Entry) -> list[tuple[int, object]]:
        """Apply one committed entry; returns egress as (client id, message)."""
        self._out = []
        self.time = entry.timestamp
        self.log_position = entry.end
        kind = entry.kind
        if kind == KIND_MESSAGE:
            self._apply_message(entry)
        elif kind == KIND_SESSION_OPEN:
            session_id, client_id = OPEN.unpack(entry.payload)
            if session_id not in self.sessions:
                self.sessions[session_id] = _SessionState(client_id)
                self.service.on_session_open(ClientSession(session_id, self, 0), entry.timestamp)
            self._out.append((client_id, SessionEvent(session_id, 0, EventCode.OK)))
        elif kind == KIND_SESSION_CLOSE:
            (session_id,) = CLOSE.unpack(entry.payload)
            s = self.sessions.get(session_id)
            if s is not None:
                self.service.on_session_close(ClientSession(session_id, self, 0), entry.timestamp)
                del self.sessions[session_id]
                self._out.append((s.client_id, SessionEvent(session_id, 0, EventCode.OK, detail="closed")))
        elif kind == KIND_TIMER:
            (correlation_id,) = TIMER.unpack(entry.payload)
            deadline = self.timers.get(correlation_id)
            # a TIMER entry for a cancelled or already fired timer is a no-op on every member
            if deadline is not None and deadline <= entry.timestamp:
                del self.timers[correlation_id]
                self.service.on_timer(correlation_id, entry.timestamp)
        elif kind == KIND_ACTION:
            action = entry.payload[0]
            if action == ACTION_SUSPEND:
                self.suspended = True
            elif action == ACTION_RESUME:
                self.suspended = False
            # ACTION_SHUTDOWN changes no replicated state: the node acts on it (ClusterNode)
        elif kind != KIND_NOOP:
            raise LogCorruptionError("unknown entry kind in committed log", position=entry.position, kind=kind)
        out, self._out = self._out, []
        return out

    def _apply_message(self, entry: Entry) -> None:
        session_id, correlation_id, floor = MESSAGE_HEADER.unpack_from(entry.payload)
        s = self.sessions.get(session_id)
        if s is None:
            self._out.append((-1, SessionEvent(session_id, correlation_id, EventCode.ERROR, detail="unknown_session")))
            return
        if floor > s.floor:
            s.raise_floor(floor)
        if self.suspended and correlation_id not in s.answered and correlation_id >= s.floor:
            self.refused_suspended += 1
            self._out.append((s.client_id, SessionEvent(session_id, correlation_id, EventCode.ERROR, detail="suspended")))
            return
        if correlation_id < s.floor or correlation_id in s.answered:
            self.duplicates += 1
            for payload in s.answered.get(correlation_id, ()):
                self._out.append((s.client_id, EgressMessage(session_id, correlation_id, payload)))
            return
        self._current = s.remember(correlation_id)
        session = self._session
        session.id = session_id
        session._correlation_id = correlation_id
        try:
            self.service.on_message(session, entry.timestamp, entry.payload[MESSAGE_HEADER.size:])
        finally:
            self._current = None

    def set_role(self, role: Role) -> None:
        if role is not self.role:
            self.role = role
            self.service.on_role_change(role)

    # ---------------------------------------------------------------- snapshots

    def take_snapshot(self) -> bytes:
        state = {
            "time": self.time,
            "position": self.log_position,
            "timers": sorted(self.timers.items()),
            "suspended": self.suspended,
            "sessions": [
                [sid, s.client_id, s.floor, [[c, [p.hex() for p in ps]] for c, ps in sorted(s.answered.items())]]
                for sid, s in sorted(self.sessions.items())
            ],
        }
        head = json.dumps(state, separators=(",", ":"), sort_keys=True).encode()
        return struct.pack("<I", len(head)) + head + self.service.on_take_snapshot()

    def load_snapshot(self, data: bytes) -> None:
        (n,) = struct.unpack_from("<I", data)
        state = json.loads(data[4: 4 + n])
        self.time = state["time"]
        self.log_position = state["position"]
        self.timers = {c: d for c, d in state["timers"]}
        self.earliest_deadline = min(self.timers.values()) if self.timers else None
        self.suspended = bool(state.get("suspended", False))  # absent from snapshots taken before it existed
        self.sessions = {
            sid: _SessionState(client, floor, {c: [bytes.fromhex(p) for p in ps] for c, ps in answered})
            for sid, client, floor, answered in state["sessions"]
        }
        self.service.on_load_snapshot(bytes(data[4 + n:]))
