"""The cluster client, sans-IO: it decides what to send to which member and
when to retry; its owner moves the messages (Aeron ingress/egress streams in
production, the simulated network in tests).

Exactly-once across leader changes: every message keeps its correlation id
across retries, and the client tells the cluster its ``floor`` (lowest
unanswered correlation id), so the service container can recognise a retry
of something it already applied and answer from its cache instead.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass
from typing import Callable

from .protocol import Challenge, ChallengeResponse, EgressMessage, EventCode, IngressMessage, SessionConnect, SessionEvent

__all__ = ["ClusterClient", "Outstanding", "MAX_BACKOFF"]

#: a message resent again and again to one leader waits at most 2**MAX_BACKOFF timeouts between sends
MAX_BACKOFF = 3


@dataclass(slots=True)
class Outstanding:
    payload: bytes
    first_sent: int
    next_retry: int  # when it is resent unless answered (its entry in the retry heap)
    last_sent: int = 0
    sends: int = 0
    backoff: int = 0  # sends since the last leader change: the next timeout is the base one times 2**backoff (capped)


class ClusterClient:
    """Not thread-safe.  ``members`` are the member ids to try, in order.

    Retries, and why they are bounded: a message is sent once when offered and
    resent only (a) to a new leader, after a redirect or a reconnect, or (b)
    when it has gone unanswered for the retry timeout, which is
    ``max(retry_timeout, 4 x the smoothed latency of answers)`` (capped at
    ``8 x retry_timeout``), so a cluster that is merely behind is not flooded
    with copies of its own backlog; and each further resend of one message to
    the same leader waits twice as long as the one before (up to
    ``2**MAX_BACKOFF`` times the timeout; a leader change starts again from
    one), so an overloaded cluster gets a few copies of a message it is slow
    to answer, not one per timeout.  At most ``retry_window`` timed-out
    messages are resent per :meth:`poll` and at most ``send_window`` messages
    go out per :meth:`poll` in all (the rest wait for the next one).  A
    timeout rotates the leader guess at most once per poll.
    """

    def __init__(self, client_id: int, session_id: int, members: tuple[int, ...], *, retry_timeout: int = 100,
                 retry_window: int = 64, send_window: int = 1024, credentials: bytes = b"",
                 on_challenge: Callable[[bytes], bytes] | None = None) -> None:
        """``credentials``: what SessionConnect carries for the cluster's authenticator
        (the default one reads ``principal:secret``); ``on_challenge``: the answer to
        an authenticator's challenge (none: a challenge is answered with ``credentials``).
        A rejected client stops connecting: :attr:`rejected` holds the cluster's reason."""
        if retry_timeout <= 0 or retry_window <= 0 or send_window <= 0:
            raise ValueError(f"retry_timeout, retry_window and send_window must be > 0: retry_timeout={retry_timeout} "
                             f"retry_window={retry_window} send_window={send_window}")
        self.client_id = client_id
        self.session_id = session_id
        self.members = tuple(members)
        self.retry_timeout = retry_timeout
        self.retry_window = retry_window
        self.send_window = send_window
        self.leader_guess = self.members[0]
        self.credentials = bytes(credentials)
        self.on_challenge = on_challenge
        self.rejected: str | None = None
        self.connected = False
        self._connect_retry = 0
        self._next_correlation = 1
        self.outstanding: dict[int, Outstanding] = {}
        self._out: list[tuple[int, object]] = []
        self._stale = 0
        self._floor = 1
        self._to_send: deque[int] = deque()  # correlation ids to send on the next poll, in order
        # Retry timers: a heap of (due, tiebreak, correlation ids), one entry for
        # all the messages one poll sent (they share their due time), not one
        # per message: at tens of thousands of messages a second, a push and a
        # pop per message was the client's largest cost.  An id whose
        # Outstanding no longer has that due time (answered, or resent since)
        # is stale and skipped.
        self._timers: list[tuple[int, int, list[int]]] = []
        self._timer_seq = 0
        self.latency = 0.0  # smoothed ms from (only) send to answer, of messages sent once
        self.retries = 0  # messages resent after a timeout
        self._stale_check = 0
        self._hops = 0  # leader guess changes on redirects since the last answer
        # Messages the cluster refused for now (ERROR "suspended" or "shutting_down"): each stays
        # outstanding and is retried after the retry timeout; the last reason is kept here.
        self.refusals = 0
        self.last_refusal: str | None = None

    @property
    def floor(self) -> int:
        """The lowest unanswered correlation id (amortized O(1))."""
        f, out, end = self._floor, self.outstanding, self._next_correlation
        while f < end and f not in out:
            f += 1
        self._floor = f
        return f

    def retry_after(self) -> int:
        """The current retry timeout in ms."""
        return int(max(self.retry_timeout, min(4 * self.latency, 8 * self.retry_timeout)))

    def offer(self, payload: bytes, now: int) -> int:
        """Queue a message; returns its correlation id.  It is sent (and retried) by :meth:`poll`."""
        c = self._next_correlation
        self._next_correlation += 1
        self.outstanding[c] = Outstanding(bytes(payload), now, now)
        self._to_send.append(c)
        return c

    def poll(self, now: int) -> list[tuple[int, object]]:
        """Messages to send now, as (member id, message)."""
        if self.rejected is not None:
            pass  # the cluster refused our credentials: retrying them would only be refused again
        elif not self.connected:
            if now >= self._connect_retry:
                self._out.append((self.leader_guess, SessionConnect(self.client_id, self.session_id, self.credentials)))
                self._connect_retry = now + self.retry_timeout
                self._rotate_if_stale()
        else:
            out, timers, to_send = self.outstanding, self._timers, self._to_send
            if timers and timers[0][0] <= now:
                timed_out, window = 0, self.retry_window
                while timers and timers[0][0] <= now and timed_out < window:
                    due, seq, ids = heapq.heappop(timers)
                    for k, c in enumerate(ids):
                        o = out.get(c)
                        if o is not None and o.next_retry == due:
                            if timed_out == window:  # the rest wait for the next poll, still first in line
                                heapq.heappush(timers, (due, seq, ids[k:]))
                                break
                            to_send.append(c)
                            timed_out += 1
                if timed_out:
                    self.retries += timed_out
                    # No answer within the timeout: the guess may be dead or partitioned.  Counted
                    # at most every retry_timeout/4 however many messages timed out, and any
                    # answer resets the count, so a live leader that is only behind keeps its clients.
                    if now >= self._stale_check:
                        self._stale_check = now + max(1, self.retry_timeout // 4)
                        self._rotate_if_stale()
            if to_send:
                floor = self.floor
                base = self.retry_after()
                due = now + base
                leader, cid, sid = self.leader_guess, self.client_id, self.session_id
                send = self._out.append
                sent: list[int] = []
                backed_off: dict[int, list[int]] | None = None  # due -> resends that wait longer
                for _ in range(min(len(to_send), self.send_window)):
                    c = to_send.popleft()
                    o = out.get(c)
                    if o is None or o.next_retry > now and o.sends:
                        continue  # answered, or already resent since it was queued
                    k = o.backoff
                    o.backoff = k + 1
                    if k:
                        o.next_retry = d = now + (base << min(k, MAX_BACKOFF))
                        if backed_off is None:
                            backed_off = {}
                        backed_off.setdefault(d, []).append(c)
                    else:
                        o.next_retry = due
                        sent.append(c)
                    o.last_sent = now
                    o.sends += 1
                    send((leader, IngressMessage(cid, sid, c, floor, o.payload)))
                if sent:
                    self._push_timer(due, sent)
                if backed_off is not None:
                    for d, ids in backed_off.items():
                        self._push_timer(d, ids)
        out_msgs, self._out = self._out, []
        return out_msgs

    def _push_timer(self, due: int, ids: list[int]) -> None:
        self._timer_seq += 1
        heapq.heappush(self._timers, (due, self._timer_seq, ids))

    def _resend_all(self, now: int) -> None:
        """After a (re)connect: every unanswered message goes to the new leader, oldest first."""
        self._to_send = deque(self.outstanding)
        for o in self.outstanding.values():
            o.next_retry = now
            o.backoff = 0

    def _rotate_if_stale(self) -> None:
        i = self.members.index(self.leader_guess)
        self._stale += 1
        if self._stale >= 2:
            self._stale = 0
            self.leader_guess = self.members[(i + 1) % len(self.members)]

    def on_egress(self, msg: object, now: int) -> list[tuple[int, bytes]]:
        """Handle egress; returns newly answered (correlation id, payload) pairs."""
        if type(msg) is EgressMessage:
            if msg.session_id != self.session_id:
                return []
            self._stale = 0
            self._hops = 0
            o = self.outstanding.pop(msg.correlation_id, None)
            if o is None:
                return []
            if o.sends == 1:
                self.latency += (now - o.last_sent - self.latency) / 8
            return [(msg.correlation_id, msg.payload)]
        if isinstance(msg, Challenge) and msg.session_id == self.session_id and not self.connected and self.rejected is None:
            answer = self.on_challenge(msg.data) if self.on_challenge is not None else self.credentials
            self._out.append((self.leader_guess, ChallengeResponse(self.client_id, self.session_id, answer)))
            self._connect_retry = now + self.retry_timeout
            return []
        if isinstance(msg, SessionEvent) and msg.session_id == self.session_id:
            if msg.code is EventCode.AUTHENTICATION_REJECTED:
                if not self.connected:
                    self.rejected = msg.detail or "rejected"
                return []
            if msg.code is EventCode.OK and msg.detail != "closed":
                if msg.leader is not None and msg.leader in self.members:
                    self.leader_guess = msg.leader  # the leader answered: a connect sent earlier may outlive the guess
                if not self.connected:
                    self.connected = True
                    self._resend_all(now)
                self._stale = 0
                self._hops = 0
            elif msg.code is EventCode.ERROR and msg.detail in ("suspended", "shutting_down") and msg.correlation_id in self.outstanding:
                self.refusals += 1
                self.last_refusal = msg.detail
            elif msg.code is EventCode.ERROR and msg.detail == "unknown_session" and self.connected:
                # The leader does not know this session (closed, or never opened there):
                # open it again; everything unanswered is resent once it is.
                self.connected = False
                self._connect_retry = now
            elif msg.code is EventCode.REDIRECT:
                # A member naming the leader is fresh news: go there at once, and
                # do not count the redirect against it as a timeout would.  Every
                # message the old guess redirects goes at once, but the guess may
                # change at most len(members) times between answers, so members
                # with stale views cannot bounce messages in a tight loop; beyond
                # that, and when no leader is named, retry after a quarter of the
                # retry timeout.
                if msg.leader is not None and msg.leader in self.members:
                    if msg.leader != self.leader_guess:
                        self._hops += 1
                        self.leader_guess = msg.leader
                        self._stale = 0
                    prompt = self._hops <= len(self.members)
                else:
                    i = self.members.index(self.leader_guess)
                    self.leader_guess = self.members[(i + 1) % len(self.members)]
                    prompt = False
                delay = 0 if prompt else self.retry_timeout // 4
                if not self.connected:
                    self._connect_retry = min(self._connect_retry, now + delay)
                elif msg.correlation_id in self.outstanding:
                    o = self.outstanding[msg.correlation_id]
                    o.backoff = 0  # sent to the leader it names: its first timeout there
                    if o.next_retry > now + delay:
                        o.next_retry = now + delay
                        self._push_timer(o.next_retry, [msg.correlation_id])
        return []
