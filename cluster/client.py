"""The cluster client, sans-IO: it decides what to send to which member and
when to retry; its owner moves the messages (Aeron ingress/egress streams in
production, the simulated network in tests).

Exactly-once across leader changes: every message keeps its correlation id
across retries, and the client tells the cluster its ``floor`` (lowest
unanswered correlation id), so the service container can recognise a retry
of something it already applied and answer from its cache instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from .protocol import EgressMessage, EventCode, IngressMessage, SessionConnect, SessionEvent

__all__ = ["ClusterClient", "Outstanding"]


@dataclass
class Outstanding:
    payload: bytes
    first_sent: int
    next_retry: int


class ClusterClient:
    """Not thread-safe.  ``members`` are the member ids to try, in order."""

    def __init__(self, client_id: int, session_id: int, members: tuple[int, ...], *, retry_timeout: int = 100) -> None:
        self.client_id = client_id
        self.session_id = session_id
        self.members = tuple(members)
        self.retry_timeout = retry_timeout
        self.leader_guess = self.members[0]
        self.connected = False
        self._connect_retry = 0
        self._next_correlation = 1
        self.outstanding: dict[int, Outstanding] = {}
        self._out: list[tuple[int, object]] = []
        self._stale = 0

    @property
    def floor(self) -> int:
        return min(self.outstanding) if self.outstanding else self._next_correlation

    def offer(self, payload: bytes, now: int) -> int:
        """Queue a message; returns its correlation id.  It is sent (and retried) by :meth:`poll`."""
        c = self._next_correlation
        self._next_correlation += 1
        self.outstanding[c] = Outstanding(bytes(payload), now, now)
        return c

    def poll(self, now: int) -> list[tuple[int, object]]:
        """Messages to send now, as (member id, message)."""
        if not self.connected:
            if now >= self._connect_retry:
                self._out.append((self.leader_guess, SessionConnect(self.client_id, self.session_id)))
                self._connect_retry = now + self.retry_timeout
                self._rotate_if_stale()
        else:
            for c, o in sorted(self.outstanding.items()):
                if now >= o.next_retry:
                    if o.next_retry > o.first_sent:
                        self._rotate_if_stale()
                    o.next_retry = now + self.retry_timeout
                    self._out.append((self.leader_guess, IngressMessage(self.client_id, self.session_id, c, self.floor, o.payload)))
        out, self._out = self._out, []
        return out

    def _rotate_if_stale(self) -> None:
        # no answer within the timeout: the guess may be dead or partitioned
        i = self.members.index(self.leader_guess)
        self._stale += 1
        if self._stale >= 2:
            self._stale = 0
            self.leader_guess = self.members[(i + 1) % len(self.members)]

    def on_egress(self, msg: object, now: int) -> list[tuple[int, bytes]]:
        """Handle egress; returns newly answered (correlation id, payload) pairs."""
        if isinstance(msg, EgressMessage):
            if msg.session_id != self.session_id:
                return []
            self._stale = 0
            o = self.outstanding.pop(msg.correlation_id, None)
            return [] if o is None else [(msg.correlation_id, msg.payload)]
        if isinstance(msg, SessionEvent) and msg.session_id == self.session_id:
            if msg.code is EventCode.OK and msg.detail != "closed":
                if not self.connected:
                    self.connected = True
                    for o in self.outstanding.values():
                        o.next_retry = now
                self._stale = 0
            elif msg.code is EventCode.REDIRECT:
                if msg.leader is not None and msg.leader in self.members:
                    self.leader_guess = msg.leader
                else:
                    i = self.members.index(self.leader_guess)
                    self.leader_guess = self.members[(i + 1) % len(self.members)]
                # retry promptly, but not in a tight loop while there is no leader
                if not self.connected:
                    self._connect_retry = min(self._connect_retry, now + self.retry_timeout // 4)
                elif msg.correlation_id in self.outstanding:
                    o = self.outstanding[msg.correlation_id]
                    o.next_retry = min(o.next_retry, now + self.retry_timeout // 4)
        return []
