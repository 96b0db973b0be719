"""Raft consensus as a pure state machine, in the shape of etcd-raft and the
vocabulary of Aeron Cluster.

Inputs: :meth:`Consensus.step` (a message from a peer), :meth:`Consensus.tick`
(the current time), :meth:`Consensus.propose` (a new entry, leader only) and
:meth:`Consensus.transfer_leadership`.  Output: :meth:`Consensus.ready`, a
:class:`~tickline.cluster.messages.Ready` batch the shell persists, applies and
sends (persist before you send), acknowledged by :meth:`Consensus.advance`.
No clock, socket, thread or hidden randomness inside: time is the ``now``
argument and randomness comes from the ``rng`` passed in.

Invariants (Raft §5; checked here where cheap, and by the simulator after every step):

I1  Election safety: at most one leader per term.  A member votes at most
    once per term (``voted_for`` is persisted before the vote is sent) and a
    leader needs a quorum of votes.
I2  Votes go only to candidates whose log is at least as up to date as the
    voter's (last term, then last position) (§5.4.1).
I3  Log matching: positions are byte offsets; two logs that hold an entry
    with the same start position and term are identical up to its end.  A
    follower accepts entries only after the entry ending at ``prev_position``
    has ``prev_term``; a conflicting tail is truncated, never a committed one.
I4  Commit: the leader's commit position is the largest position stored by a
    quorum (its own *persisted* position counts, not merely appended) and only
    when the entry ending there is of the leader's current term (§5.4.2).
I5  Commit and applied positions never decrease; applied <= commit <= log end.
I6  Pre-vote: a member campaigns (increments its term) only after a quorum
    said it would vote for it; a member that heard from a live leader within
    the minimum election timeout refuses pre-votes and votes (leader lease), so
    a partitioned member cannot disrupt a healthy leader when it returns.
I7  Check quorum: a leader that has not heard from a quorum within an
    election timeout steps down, so the lease above cannot outlive it.
I8  Snapshot transfer: a follower that needs entries the leader compacted
    away gets the leader's snapshot in chunks of ``snapshot_chunk_bytes``
    (:class:`InstallSnapshot`).  It assembles them in memory, in order, only
    for the snapshot named by (position, term, length, checksum); a chunk
    out of order is answered with where it stands (:class:`InstallSnapshotResponse`),
    and a transfer of the same snapshot resumes under a new leader.  Nothing
    reaches its log or Ready until every byte is there and the CRC-32 of the
    whole matches; then it is installed at once, as one Ready.snapshot.  The
    leader sends the next chunk only on an acknowledgement that moves forward
    (and resends the current one each heartbeat), so lost, duplicated and
    reordered chunks neither stall a transfer nor multiply.

Role transitions are all in :data:`TRANSITIONS`; nothing else assigns a role.
"""

from __future__ import annotations

import bisect
import enum
import operator
import random
import zlib

from .config import ConsensusConfig
from .errors import LocalProtocolError, NotLeaderError, RemoteProtocolError, SafetyViolation
from .messages import (
    AppendRequest,
    AppendResponse,
    Entry,
    EntryKind,
    HardState,
    InstallSnapshot,
    InstallSnapshotResponse,
    Message,
    Ready,
    RequestVote,
    Role,
    RoleChange,
    Snapshot,
    TimeoutNow,
    VoteResponse,
)

__all__ = ["Consensus", "Event", "TRANSITIONS", "LIMIT"]

_KINDS = frozenset(int(k) for k in EntryKind)


class Event(enum.Enum):
    ELECTION_TIMEOUT = "election_timeout"
    PRE_VOTE_WON = "pre_vote_won"
    PRE_VOTE_LOST = "pre_vote_lost"
    VOTE_WON = "vote_won"
    VOTE_LOST = "vote_lost"
    HIGHER_TERM = "higher_term"
    LEADER_SEEN = "leader_seen"
    QUORUM_LOST = "quorum_lost"
    TIMEOUT_NOW = "timeout_now"


#: terms and positions a peer may name: far beyond any real log, with room to count up within 64 bits
LIMIT = 2**62
_NUMBERS = {
    RequestVote: operator.attrgetter("term", "last_term", "last_position"),
    VoteResponse: operator.attrgetter("term", "term"),
    AppendRequest: operator.attrgetter("term", "prev_position", "prev_term", "commit_position"),
    AppendResponse: operator.attrgetter("term", "position", "rejected_prev"),
    InstallSnapshot: operator.attrgetter("term", "position", "snapshot_term", "length", "offset"),
    InstallSnapshotResponse: operator.attrgetter("term", "position", "offset"),
    TimeoutNow: operator.attrgetter("term", "term"),
}

F, P, C, L = Role.FOLLOWER, Role.PRE_CANDIDATE, Role.CANDIDATE, Role.LEADER

# (role, event) -> next role.  A pair missing here is a bug (SafetyViolation).
TRANSITIONS: dict[tuple[Role, Event], Role] = {
    (F, Event.ELECTION_TIMEOUT): P,
    (P, Event.ELECTION_TIMEOUT): P,
    (C, Event.ELECTION_TIMEOUT): P,
    (P, Event.PRE_VOTE_WON): C,
    (P, Event.PRE_VOTE_LOST): F,
    (C, Event.VOTE_WON): L,
    (C, Event.VOTE_LOST): F,
    (F, Event.HIGHER_TERM): F,
    (P, Event.HIGHER_TERM): F,
    (C, Event.HIGHER_TERM): F,
    (L, Event.HIGHER_TERM): F,
    (F, Event.LEADER_SEEN): F,
    (P, Event.LEADER_SEEN): F,
    (C, Event.LEADER_SEEN): F,
    (L, Event.QUORUM_LOST): F,
    (F, Event.TIMEOUT_NOW): C,
}


class _IncomingSnapshot:
    """A snapshot a follower is assembling: the name its chunks carry, the
    bytes so far (always a prefix), and the highest term it was sent in."""

    __slots__ = ("key", "data", "term")

    def __init__(self, key: tuple[int, int, int, int], term: int) -> None:
        self.key = key  # (position, snapshot_term, length, checksum)
        self.data = bytearray()
        self.term = term


class Consensus:
    """One member's consensus state.  Not thread-safe: drive it from one thread.

    ``hard_state``, ``snapshot`` and ``entries`` are what the member recovered
    from disk (``entries`` are those after the snapshot position, already
    durable).  ``rng`` supplies the randomized election timeouts.
    """

    def __init__(
        self,
        config: ConsensusConfig,
        rng: random.Random,
        *,
        hard_state: HardState | None = None,
        snapshot: Snapshot | None = None,
        entries: tuple[Entry, ...] | list[Entry] = (),
        now: int = 0,
        catch_up_to: int | None = None,
    ) -> None:
        self.config = config
        self.id = config.member_id
        self.peers = tuple(m for m in config.members if m != self.id)
        self._quorum_index = config.quorum - 1  # in positions sorted high to low, the one a quorum holds
        self._rng = rng
        hs = hard_state or HardState()
        self.term = hs.term
        self.voted_for = hs.voted_for
        self._snapshot = snapshot
        self._snapshot_crc = zlib.crc32(snapshot.data) if snapshot else 0
        self._incoming: _IncomingSnapshot | None = None  # follower: a snapshot being received (I8)
        self.snapshots_received = 0  # installed from a leader's transfer (counters for tests and the simulator)
        self.snapshot_checksum_failures = 0
        self._base_position = snapshot.position if snapshot else 0
        self._base_term = snapshot.term if snapshot else 0
        self._entries: list[Entry] = []
        self._starts: list[int] = []
        expected = self._base_position
        for e in entries:
            if e.end <= self._base_position:
                continue  # covered by the snapshot (a segment may start before it)
            if e.position != expected:
                raise LocalProtocolError("recovered log has a gap", expected_position=expected, entry_position=e.position)
            self._entries.append(e)
            self._starts.append(e.position)
            expected = e.end
        self.commit_position = max(self._base_position, min(hs.commit_position, self.last_position()))
        # I9: the position this member may have acknowledged and no longer holds (None: nothing lost)
        self.catch_up_to: int | None = catch_up_to if catch_up_to is not None and catch_up_to > self.last_position() else None
        self.votes_withheld = 0  # vote requests refused and elections not started because of catch_up_to
        self.followers_repaired = 0  # leader: a follower rejected below what it had matched (its log shrank)
        self.applied_position = self._base_position
        self._stable_end = self.last_position()
        self._unstable_index = len(self._entries)
        self._truncate_to: int | None = None
        self._hard_dirty = False
        self._pending_snapshot: Snapshot | None = None
        self._msgs: list[Message] = []
        self._replicate = False  # entries proposed since the last ready() still to be sent to peers
        self._ack_at: dict[int, int] = {}  # peer -> index in _msgs of a success AppendResponse to it (coalescing)
        self._role_change: RoleChange | None = None
        self._in_flight_ready: Ready | None = None

        self.role = F
        self.leader: int | None = None
        self.now = now
        self._leader_contact = -(10**18)
        self._election_deadline = now + self._random_timeout()
        self._votes: dict[int, bool] = {}
        # leader state
        self._next: dict[int, int] = {}
        self._match: dict[int, int] = {}
        self._active: set[int] = set()
        self._snap_acked: dict[int, tuple[int, int]] = {}  # peer -> (snapshot position, bytes it acknowledged)
        self._heartbeat_due = 0
        self._quorum_check_due = 0
        self._transfer_target: int | None = None
        self._transfer_deadline = 0
        self._role_change = RoleChange(self.role, self.term, None)

    # ------------------------------------------------------------------ log access

    def last_position(self) -> int:
        return self._entries[-1].end if self._entries else self._base_position

    def last_term(self) -> int:
        return self._entries[-1].term if self._entries else self._base_term

    def last_timestamp(self) -> int:
        return self._entries[-1].timestamp if self._entries else 0

    @property
    def base_position(self) -> int:
        return self._base_position

    def match_positions(self) -> dict[int, int]:
        """Leader: each follower's match position (how far its log is known to agree
        with this one); empty on any other member.  A copy, for operators' tools."""
        return dict(self._match) if self.role is L else {}

    def term_at(self, end_position: int) -> int | None:
        """Term of the entry ending at ``end_position``; None if no entry ends there here."""
        if end_position == self._base_position:
            return self._base_term
        if end_position < self._base_position or end_position > self.last_position():
            return None
        i = bisect.bisect_left(self._starts, end_position) - 1
        if i < 0 or self._entries[i].end != end_position:
            return None
        return self._entries[i].term

    def _entry_term_at(self, end_position: int) -> int:
        term = self.term_at(end_position)
        if term is None:
            raise SafetyViolation("no entry ends at a position that must be a boundary", member=self.id, position=end_position)
        return term

    def entries_between(self, start: int, end: int) -> list[Entry]:
        """Entries with ``start < entry.end <= end`` (start must be >= base)."""
        i = bisect.bisect_left(self._starts, start)
        out = []
        while i < len(self._entries) and self._entries[i].end <= end:
            out.append(self._entries[i])
            i += 1
        return out

    def _floor_boundary(self, position: int) -> int:
        """Largest entry boundary <= position (may be below base: needs a snapshot)."""
        if position <= self._base_position:
            return position
        i = bisect.bisect_right(self._starts, position) - 1
        if i < 0:
            return self._base_position
        e = self._entries[i]
        return e.end if e.end <= position else e.position

    def _append(self, entries: list[Entry] | tuple[Entry, ...]) -> None:
        for e in entries:
            if e.position != self.last_position():
                raise SafetyViolation("append out of order", member=self.id, expected=self.last_position(), position=e.position)
            self._entries.append(e)
            self._starts.append(e.position)

    def _truncate(self, position: int) -> None:
        if position < self.commit_position:
            raise SafetyViolation("truncating committed entries", member=self.id, position=position, commit=self.commit_position)
        i = bisect.bisect_left(self._starts, position)
        del self._entries[i:]
        del self._starts[i:]
        self._unstable_index = min(self._unstable_index, i)
        self._stable_end = min(self._stable_end, position)
        self._truncate_to = position if self._truncate_to is None else min(self._truncate_to, position)

    # ------------------------------------------------------------------ roles

    def _transition(self, event: Event) -> Role:
        try:
            new = TRANSITIONS[(self.role, event)]
        except KeyError:
            raise SafetyViolation("no such role transition", member=self.id, role=self.role.value, event=event.value) from None
        self.role = new
        self._role_change = RoleChange(new, self.term, self.leader)
        return new

    def _random_timeout(self) -> int:
        return self._rng.randint(self.config.election_timeout_min, self.config.election_timeout_max)

    def _reset_election_timer(self) -> None:
        self._election_deadline = self.now + self._random_timeout()

    def _set_term(self, term: int) -> None:
        if term < self.term:
            raise SafetyViolation("term went backwards", member=self.id, term=self.term, new_term=term)
        if term > self.term:
            self.term = term
            self.voted_for = None
            self._hard_dirty = True

    def _become_follower(self, event: Event, term: int, leader: int | None) -> None:
        self._set_term(term)
        self.leader = leader
        self._transfer_target = None
        self._transition(event)
        self._reset_election_timer()
        if leader is not None:
            self._leader_contact = self.now

    def _in_lease(self) -> bool:
        return self.leader is not None and self.now - self._leader_contact < self.config.election_timeout_min

    def _quorum(self) -> int:
        return self.config.quorum

    def _start_pre_vote(self) -> None:
        self._transition(Event.ELECTION_TIMEOUT)
        self.leader = None
        self._reset_election_timer()
        self._votes = {self.id: True}
        if self._count_votes():
            return
        for p in self.peers:
            self._send(RequestVote(self.id, p, self.term + 1, self.last_term(), self.last_position(), pre_vote=True))

    def _campaign(self, transfer: bool) -> None:
        self._set_term(self.term + 1)
        self.voted_for = self.id
        self._hard_dirty = True
        self.leader = None
        self._transition(Event.TIMEOUT_NOW if transfer else Event.PRE_VOTE_WON)
        self._reset_election_timer()
        self._votes = {self.id: True}
        if self._count_votes():
            return
        for p in self.peers:
            self._send(RequestVote(self.id, p, self.term, self.last_term(), self.last_position(), transfer=transfer))

    def _count_votes(self) -> bool:
        """Act on the votes so far; True if the role changed."""
        granted = sum(1 for v in self._votes.values() if v)
        rejected = len(self._votes) - granted
        if granted >= self._quorum():
            if self.role is P:
                self._campaign(transfer=False)
            else:
                self._become_leader()
            return True
        if rejected >= self._quorum():
            self._become_follower(Event.PRE_VOTE_LOST if self.role is P else Event.VOTE_LOST, self.term, None)
            return True
        return False

    def _become_leader(self) -> None:
        self.leader = self.id
        self._transition(Event.VOTE_WON)
        last = self.last_position()
        self._next = {p: last for p in self.peers}
        self._match = {p: 0 for p in self.peers}
        self._active = set()
        self._snap_acked = {}
        self._heartbeat_due = self.now
        self._quorum_check_due = self.now + self.config.election_timeout_min
        self._transfer_target = None
        # An entry of the new term lets everything before it commit (§5.4.2, §8).
        self._append_local(EntryKind.NOOP, b"")
        self._broadcast_append(heartbeat=True)

    # ------------------------------------------------------------------ inputs

    def tick(self, now: int) -> None:
        """Advance time to ``now`` (never backwards) and fire due timers."""
        if now < self.now:
            raise LocalProtocolError("time went backwards", member=self.id, now=now, previous=self.now)
        self.now = now
        if self.role is L:
            if self._transfer_target is not None and now >= self._transfer_deadline:
                self._transfer_target = None  # transfer timed out; keep leading
            if now >= self._quorum_check_due:
                active = len(self._active) + 1
                self._active = set()
                self._quorum_check_due = now + self.config.election_timeout_min
                if active < self._quorum():
                    self._become_follower(Event.QUORUM_LOST, self.term, None)
                    return
            if now >= self._heartbeat_due:
                self._broadcast_append(heartbeat=True)
        elif now >= self._election_deadline:
            if self.catch_up_to is not None:
                self.votes_withheld += 1  # I9: wait for a leader to bring us up to date
                self._reset_election_timer()
                return
            self._start_pre_vote()

    def step(self, m: Message) -> None:
        """Handle one message from a peer.  Raises :class:`RemoteProtocolError`
        (nothing changed) for a message that breaks the protocol (I10)."""
        if m.dst != self.id or m.src not in self.config.members or m.src == self.id:
            raise RemoteProtocolError("message not for this member", member=self.id, src=m.src, dst=m.dst, type=type(m).__name__)
        for v in _NUMBERS[type(m)](m):
            if not -1 <= v < LIMIT:
                # a term or position we could not count past (or send back: the wire has 64 bits)
                raise RemoteProtocolError("term or position out of range", member=self.id, src=m.src, type=type(m).__name__, value=v,
                                          limit=LIMIT)
        if m.term < 0:
            raise RemoteProtocolError("negative term", member=self.id, src=m.src, type=type(m).__name__, term=m.term)
        if m.term > self.term:
            if isinstance(m, RequestVote):
                if not m.transfer and self._in_lease():
                    return  # I6: a live leader exists; do not let this candidate disrupt it
                if not m.pre_vote:
                    self._become_follower(Event.HIGHER_TERM, m.term, None)
            elif isinstance(m, VoteResponse) and m.pre_vote and m.granted:
                pass  # a granted pre-vote carries the proposed term, not the voter's
            else:
                leader = m.src if isinstance(m, (AppendRequest, InstallSnapshot)) else None
                self._become_follower(Event.HIGHER_TERM, m.term, leader)
        elif m.term < self.term:
            # A stale sender; answer so it learns the current term.  It cannot
            # disrupt anyone: its pre-votes are refused while a leader is alive.
            if isinstance(m, (AppendRequest, InstallSnapshot)):
                self._send(AppendResponse(self.id, m.src, self.term, False, self.last_position(), -1))
            elif isinstance(m, RequestVote) and m.pre_vote:
                self._send(VoteResponse(self.id, m.src, self.term, False, pre_vote=True))
            return

        if self.role is L and isinstance(m, (AppendRequest, InstallSnapshot)):
            # I1 makes us the only leader of this term: the sender is lying or broken (I10)
            raise RemoteProtocolError("leader's message from another member in our term", member=self.id, src=m.src, term=m.term,
                                      type=type(m).__name__)
        if isinstance(m, AppendRequest):
            self._on_append(m)
        elif isinstance(m, AppendResponse):
            self._on_append_response(m)
        elif isinstance(m, RequestVote):
            self._on_request_vote(m)
        elif isinstance(m, VoteResponse):
            self._on_vote_response(m)
        elif isinstance(m, InstallSnapshot):
            self._on_install_snapshot(m)
        elif isinstance(m, InstallSnapshotResponse):
            self._on_install_snapshot_response(m)
        elif isinstance(m, TimeoutNow):
            if self.role is F and m.src == self.leader and self.catch_up_to is None:
                self._campaign(transfer=True)
        else:  # pragma: no cover - the Message union is closed
            raise RemoteProtocolError("unknown message type", member=self.id, type=type(m).__name__)

    def propose(self, kind: int, payload: bytes) -> Entry:
        """Append an entry (leader only) stamped with the leader's cluster time.

        Raises :class:`NotLeaderError` (with a leader hint) on other members and
        while a leadership transfer is under way."""
        if self.role is not L:
            raise NotLeaderError("not the leader", leader=self.leader, member=self.id, role=self.role.value)
        if self._transfer_target is not None:
            raise NotLeaderError("leadership transfer in progress", leader=self._transfer_target, member=self.id)
        entry = self._append_local(kind, payload)
        # Replication is deferred to ready(): every entry proposed before it
        # goes to each peer in one AppendRequest (batching, as Aeron Cluster
        # streams its log), instead of one request per entry.
        self._replicate = True
        return entry

    def transfer_leadership(self, target: int | None = None) -> int | None:
        """Hand leadership to ``target`` (default: the most up-to-date peer).

        Used on clean shutdown.  Proposals are refused until the transfer
        completes or times out (one minimum election timeout).  Returns the target."""
        if self.role is not L or not self.peers:
            return None
        if target is None:
            target = max(self.peers, key=lambda p: (self._match[p], -p))
        if target not in self.peers:
            raise LocalProtocolError("transfer target is not a peer", member=self.id, target=target)
        self._transfer_target = target
        self._transfer_deadline = self.now + self.config.election_timeout_min
        if self._match[target] == self.last_position():
            self._send(TimeoutNow(self.id, target, self.term))
        else:
            self._send_append(target)
        return target

    def compact(self, snapshot: Snapshot) -> None:
        """Drop entries up to ``snapshot.position`` (<= applied) from memory; the
        snapshot is what a lagging follower will be sent instead."""
        if snapshot.position > self.applied_position:
            raise LocalProtocolError("snapshot beyond applied position", member=self.id, position=snapshot.position, applied=self.applied_position)
        if snapshot.position <= self._base_position:
            return
        term = self.term_at(snapshot.position)
        if term != snapshot.term:
            raise LocalProtocolError("snapshot term does not match log", member=self.id, position=snapshot.position, term=snapshot.term, log_term=term)
        i = bisect.bisect_left(self._starts, snapshot.position)
        del self._entries[:i]
        del self._starts[:i]
        self._unstable_index -= i
        self._base_position = snapshot.position
        self._base_term = snapshot.term
        self._snapshot = snapshot
        self._snapshot_crc = zlib.crc32(snapshot.data)

    # ------------------------------------------------------------------ handlers

    def _on_request_vote(self, m: RequestVote) -> None:
        if self.catch_up_to is not None:
            self.votes_withheld += 1  # I9: our log is missing entries we may have acknowledged
            self._send(VoteResponse(self.id, m.src, self.term, False, pre_vote=m.pre_vote))
            return
        up_to_date = (m.last_term, m.last_position) >= (self.last_term(), self.last_position())  # I2
        can_vote = (
            self.voted_for == m.src
            or (self.voted_for is None and self.leader is None)
            or (m.pre_vote and m.term > self.term)
        )
        granted = can_vote and up_to_date
        if granted and not m.pre_vote:
            self.voted_for = m.src
            self._hard_dirty = True
            self._reset_election_timer()
        # A granted pre-vote answers in the proposed term; a refusal in ours.
        term = m.term if (granted and m.pre_vote) else self.term
        self._send(VoteResponse(self.id, m.src, term, granted, pre_vote=m.pre_vote))

    def _on_vote_response(self, m: VoteResponse) -> None:
        if self.role is P and m.pre_vote and (m.term == self.term + 1 or not m.granted):
            self._votes[m.src] = m.granted
            self._count_votes()
        elif self.role is C and not m.pre_vote and m.term == self.term:
            self._votes[m.src] = m.granted
            self._count_votes()

    def _check_append(self, m: AppendRequest) -> None:
        """I10: the entries must follow ``prev_position`` end to end, in terms that
        never decrease and never exceed the request's; checked before any state changes."""
        expected, term = m.prev_position, m.prev_term
        if expected < 0 or term < 0 or m.commit_position < 0:
            raise RemoteProtocolError("append request with a negative position or term", member=self.id, leader=m.src,
                                      prev_position=expected, prev_term=term, commit=m.commit_position)
        for e in m.entries:
            if e.position != expected or e.term < term or e.term > m.term:
                raise RemoteProtocolError("append request entries out of order", member=self.id, leader=m.src, expected=expected,
                                          position=e.position, entry_term=e.term, previous_term=term, term=m.term)
            if e.kind not in _KINDS:
                raise RemoteProtocolError("append request entry of an unknown kind", member=self.id, leader=m.src, position=e.position,
                                          kind=e.kind)
            expected, term = e.end, e.term

    def _on_append(self, m: AppendRequest) -> None:
        self._check_append(m)
        if self.role is not F:
            self._become_follower(Event.LEADER_SEEN, self.term, m.src)
        if self.leader is None:
            self.leader = m.src
            self._role_change = RoleChange(self.role, self.term, m.src)
        self._leader_contact = self.now
        self._reset_election_timer()

        prev, prev_term, entries = m.prev_position, m.prev_term, list(m.entries)
        if prev < self.commit_position:
            # Everything up to our commit position matches any current leader's
            # log (leader completeness), so skip what we already have.
            entries = [e for e in entries if e.end > self.commit_position]
            if entries and entries[0].position != self.commit_position:
                raise RemoteProtocolError("entry boundary mismatch below commit", member=self.id, leader=m.src, position=entries[0].position, commit=self.commit_position)
            prev = self.commit_position
            prev_term = self._base_term if prev == self._base_position else self._entry_term_at(prev)
        if prev > self.last_position():
            self._send(AppendResponse(self.id, m.src, self.term, False, self.last_position(), m.prev_position))
            return
        local_term = self.term_at(prev)
        if local_term != prev_term:
            self._send(AppendResponse(self.id, m.src, self.term, False, self._conflict_hint(prev), m.prev_position))
            return
        for k, e in enumerate(entries):
            i = bisect.bisect_left(self._starts, e.position)
            if i < len(self._entries) and self._entries[i].position == e.position:
                if self._entries[i].term == e.term:
                    continue
                self._truncate(e.position)  # I3: divergent uncommitted tail
            self._append(entries[k:])
            break
        verified = entries[-1].end if entries else prev
        if self.catch_up_to is not None and (not m.entries or verified >= self.catch_up_to):
            # I9: an empty request is sent only from the leader's last position, so
            # our log now holds all of the leader's; or we hold again what we had lost.
            self.catch_up_to = None
        new_commit = min(m.commit_position, verified)
        if new_commit > self.commit_position:
            self.commit_position = new_commit
            self._hard_dirty = True
            if self._incoming is not None and self._incoming.key[0] <= new_commit:
                self._incoming = None  # caught up by appends: that snapshot is no longer needed
        self._send(AppendResponse(self.id, m.src, self.term, True, verified, m.prev_position))

    def _conflict_hint(self, prev: int) -> int:
        """Where the leader should retry: the start of our conflicting term's first entry."""
        i = bisect.bisect_left(self._starts, prev) - 1
        if i < 0:
            return max(self.commit_position, self._base_position)
        conflict_term = self._entries[i].term
        while i > 0 and self._entries[i - 1].term == conflict_term:
            i -= 1
        return max(self.commit_position, self._entries[i].position)

    def _on_append_response(self, m: AppendResponse) -> None:
        if self.role is not L:
            return
        p = m.src
        last = self.last_position()
        if m.success:
            if m.position > last or (m.position >= self._base_position and self.term_at(m.position) is None):
                # I10: a follower cannot hold what we never sent it
                raise RemoteProtocolError("append response position is not an entry end in our log", member=self.id, follower=p,
                                          position=m.position, log_end=last)
        elif not 0 <= m.position <= last:
            raise RemoteProtocolError("append rejection hint outside our log", member=self.id, follower=p, position=m.position, log_end=last)
        self._active.add(p)
        if m.success:
            if m.position > self._match[p]:
                self._match[p] = m.position
            if self._next[p] < m.position:
                self._next[p] = m.position
            self._maybe_commit()
            if self._transfer_target == p and self._match[p] == self.last_position():
                self._send(TimeoutNow(self.id, p, self.term))
            elif self._next[p] < self.last_position():
                self._send_append(p)
        else:
            if m.rejected_prev < self._match[p]:
                return  # stale rejection of a request below what already matched
            # Back off to the follower's hint even below what it matched before: a
            # follower whose log lost entries (damage found at a restart, I9) no
            # longer holds them, and resending from the old match would be
            # rejected for ever.  Its match comes down with it: what it holds now
            # is what counts towards commit.  The hint is below the rejected
            # prev_position, so each rejection makes progress.
            nxt = self._floor_boundary(m.position)
            self._next[p] = nxt
            if self._match[p] > nxt:
                self._match[p] = max(nxt, 0)
                self.followers_repaired += 1
            self._send_append(p)

    def _on_install_snapshot(self, m: InstallSnapshot) -> None:
        if self.role is not F:
            self._become_follower(Event.LEADER_SEEN, self.term, m.src)
        self.leader = m.src
        self._leader_contact = self.now
        self._reset_election_timer()
        if m.offset < 0 or m.length < 0 or m.offset + len(m.data) > m.length:
            raise RemoteProtocolError("snapshot chunk outside the snapshot", member=self.id, leader=m.src, position=m.position,
                                      offset=m.offset, chunk=len(m.data), length=m.length)
        position = m.position
        if position <= self.commit_position:
            self._incoming = None
            self._send(AppendResponse(self.id, m.src, self.term, True, self.commit_position, -1))
            return
        if self.term_at(position) == m.snapshot_term:
            # We hold the entries up to it (log matching, I3): commit moves up
            # and they apply normally; no transfer needed.
            self._incoming = None
            self.commit_position = position
            self._hard_dirty = True
            self._send(AppendResponse(self.id, m.src, self.term, True, position, -1))
            return
        key = (position, m.snapshot_term, m.length, m.checksum)
        inc = self._incoming
        if inc is None or inc.key != key:
            # Another snapshot.  Within one term a leader's snapshots only move
            # forward, so a chunk of an older one from the same term is a
            # reordered leftover: ignore it rather than lose progress.
            if inc is not None and m.term == inc.term and position < inc.key[0]:
                return
            if m.offset != 0:
                self._incoming = None
                self._send(InstallSnapshotResponse(self.id, m.src, self.term, position, 0))
                return
            inc = self._incoming = _IncomingSnapshot(key, m.term)
        inc.term = max(inc.term, m.term)
        have = len(inc.data)
        if m.offset != have:
            # duplicate (below) or after a lost chunk (above): say where we stand
            self._send(InstallSnapshotResponse(self.id, m.src, self.term, position, have))
            return
        inc.data += m.data
        if len(inc.data) < m.length:
            self._send(InstallSnapshotResponse(self.id, m.src, self.term, position, len(inc.data)))
            return
        self._incoming = None
        if zlib.crc32(inc.data) != m.checksum:
            # Never install what does not verify; start the transfer again.
            self.snapshot_checksum_failures += 1
            self._send(InstallSnapshotResponse(self.id, m.src, self.term, position, 0))
            return
        s = Snapshot(position, m.snapshot_term, bytes(inc.data))
        # Our log diverges or is too short: replace everything with the snapshot.
        self._entries.clear()
        self._starts.clear()
        self._unstable_index = 0
        self._stable_end = s.position
        self._truncate_to = None
        self._base_position = s.position
        self._base_term = s.term
        self._snapshot = s
        self._snapshot_crc = m.checksum
        self._pending_snapshot = s
        self.commit_position = s.position
        self.applied_position = s.position
        self._hard_dirty = True
        self.snapshots_received += 1
        if self.catch_up_to is not None and s.position >= self.catch_up_to:
            self.catch_up_to = None
        self._send(AppendResponse(self.id, m.src, self.term, True, s.position, -1))

    def _on_install_snapshot_response(self, m: InstallSnapshotResponse) -> None:
        if self.role is not L:
            return
        p = m.src
        self._active.add(p)
        s = self._snapshot
        if s is None or m.position != s.position or self._next[p] >= self._base_position:
            return  # about a snapshot we no longer send, or the transfer is over
        acked = self._snap_acked.get(p)
        have = acked[1] if acked is not None and acked[0] == s.position else 0
        offset = min(m.offset, len(s.data))
        self._snap_acked[p] = (s.position, offset)
        # Only progress sends: a duplicate or reordered acknowledgement must not
        # add a chunk in flight.  A lower offset (the follower restarted or
        # rejected the checksum) is resent from there on the next heartbeat.
        if offset > have:
            self._send_snapshot_chunk(p)

    # ------------------------------------------------------------------ leader internals

    def _append_local(self, kind: int, payload: bytes) -> Entry:
        # Cluster time never goes backwards across leaders: service code relies on it.
        entries = self._entries
        if entries:
            last = entries[-1]
            position, timestamp = last.end, max(self.now, last.timestamp)
        else:
            position, timestamp = self._base_position, self.now
        # appended at the log's end by construction: no order check needed (cf. _append)
        entry = Entry(position, self.term, timestamp, int(kind), payload)
        entries.append(entry)
        self._starts.append(position)
        return entry

    def _broadcast_append(self, heartbeat: bool) -> None:
        if heartbeat:
            self._heartbeat_due = self.now + self.config.heartbeat_interval
        base = self._base_position
        for p in self.peers:
            nxt = self._next[p]
            # A peer receiving a snapshot is driven by its acknowledgements and
            # the heartbeat (I8), not by every new batch of entries.
            if heartbeat or (base <= nxt < self.last_position()):
                self._send_append(p)

    def _send_append(self, p: int) -> None:
        nxt = self._next[p]
        if nxt < self._base_position:
            if self._snapshot is None:
                raise SafetyViolation("follower needs entries before base but no snapshot", member=self.id, follower=p, next=nxt, base=self._base_position)
            self._send_snapshot_chunk(p)
            return
        prev_term = self.term_at(nxt)
        if prev_term is None:
            raise SafetyViolation("next position is not an entry boundary", member=self.id, follower=p, next=nxt)
        i = bisect.bisect_left(self._starts, nxt)
        batch: list[Entry] = []
        size = 0
        while i < len(self._entries) and (not batch or size + self._entries[i].end - self._entries[i].position <= self.config.max_append_bytes):
            e = self._entries[i]
            batch.append(e)
            size += e.end - e.position
            i += 1
        if batch:
            self._next[p] = batch[-1].end  # optimistic: pipeline; a rejection resets it
        self._send(AppendRequest(self.id, p, self.term, nxt, prev_term, tuple(batch), self.commit_position))

    def _send_snapshot_chunk(self, p: int) -> None:
        """Send peer ``p`` the chunk of our snapshot after what it acknowledged
        (``_next[p]`` stays below base until it says the install is done)."""
        s = self._snapshot
        assert s is not None
        acked = self._snap_acked.get(p)
        if acked is None or acked[0] != s.position:
            acked = self._snap_acked[p] = (s.position, 0)
        offset = acked[1]
        n = self.config.snapshot_chunk_bytes
        self._send(InstallSnapshot(self.id, p, self.term, s.position, s.term, len(s.data), self._snapshot_crc, offset, s.data[offset: offset + n]))

    def _maybe_commit(self) -> None:
        # the highest position a quorum holds: _match has exactly the peers as keys
        positions = [self._stable_end, *self._match.values()]
        positions.sort(reverse=True)
        candidate = positions[self._quorum_index]
        if candidate > self.commit_position and self.term_at(candidate) == self.term:  # I4
            self.commit_position = candidate
            self._hard_dirty = True

    def _send(self, m: Message) -> None:
        msgs = self._msgs
        if type(m) is AppendResponse and m.success:
            # A follower stepping a batch of AppendRequests in one duty cycle
            # answers once: a success acknowledgement carries an append
            # position, and a later, higher one to the same leader in the same
            # term says everything an earlier one said.  Only the last queued
            # message may be replaced, so nothing else is reordered.
            i = self._ack_at.get(m.dst)
            if i is not None and i == len(msgs) - 1:
                prev = msgs[i]
                if isinstance(prev, AppendResponse) and prev.term == m.term:
                    if m.position >= prev.position:
                        msgs[i] = m
                    return
            self._ack_at[m.dst] = len(msgs)
        msgs.append(m)

    # ------------------------------------------------------------------ ready / advance

    def has_ready(self) -> bool:
        return bool(
            self._msgs or self._replicate or self._hard_dirty or self._unstable_index < len(self._entries)
            or self._truncate_to is not None or self._pending_snapshot is not None
            or self._role_change is not None or self.commit_position > self.applied_position
        )

    def ready(self) -> Ready:
        """Collect the work to do; call :meth:`advance` with it when done."""
        if self._in_flight_ready is not None:
            raise LocalProtocolError("ready() called again before advance()", member=self.id)
        if self._replicate:
            self._replicate = False
            if self.role is L:
                self._broadcast_append(heartbeat=False)
        entries = tuple(self._entries[self._unstable_index:])
        truncate_to = self._truncate_to
        if truncate_to is not None and entries:
            truncate_to = min(truncate_to, entries[0].position)
        committed = tuple(self.entries_between(self.applied_position, self.commit_position)) if self.commit_position > self.applied_position else ()
        rd = Ready(
            snapshot=self._pending_snapshot,
            truncate_to=truncate_to,
            entries=entries,
            hard_state=HardState(self.term, self.voted_for, self.commit_position) if self._hard_dirty else None,
            committed=committed,
            messages=tuple(self._msgs),
            role_change=self._role_change,
        )
        self._msgs = []
        self._ack_at.clear()
        self._in_flight_ready = rd
        return rd

    def advance(self, rd: Ready, *, durable: bool = True) -> None:
        """Acknowledge that ``rd`` was persisted, applied and sent.  ``durable=False``:
        its entries were written but are still being made durable (and its
        messages are held until they are); call :meth:`persisted` when they are."""
        if rd is not self._in_flight_ready:
            raise LocalProtocolError("advance() with a Ready that is not the outstanding one", member=self.id)
        self._in_flight_ready = None
        if rd.snapshot is self._pending_snapshot:
            self._pending_snapshot = None
        if rd.truncate_to is not None and self._truncate_to is not None and self._truncate_to >= rd.truncate_to:
            self._truncate_to = None
        if rd.entries:
            end = rd.entries[-1].end
            # entries may have been truncated by a step between ready() and advance()
            if self.term_at(end) == rd.entries[-1].term:
                if durable:
                    self._stable_end = max(self._stable_end, end)
                self._unstable_index = max(self._unstable_index, bisect.bisect_left(self._starts, end))
        hs = rd.hard_state
        if hs is not None and hs.commit_position == self.commit_position and hs.term == self.term and hs.voted_for == self.voted_for:
            self._hard_dirty = False  # nothing changed since ready(): what was persisted is current
        if rd.committed:
            self.applied_position = max(self.applied_position, rd.committed[-1].end)
        if rd.role_change is self._role_change:
            self._role_change = None
        if self.role is L:
            self._maybe_commit()

    def persisted(self, end: int, term: int) -> None:
        """The entries written up to ``end`` (the last of them of ``term``) are now
        durable: a leader counts its own copy towards commit from here (I4).
        Ignored if they were truncated meanwhile.  Like a step, it may come
        between ready() and advance()."""
        if end > self._stable_end and self.term_at(end) == term:
            self._stable_end = end
            if self.role is L:
                self._maybe_commit()

    # ------------------------------------------------------------------ introspection

    def status(self) -> dict[str, object]:
        return {
            "member": self.id, "role": self.role.value, "term": self.term, "leader": self.leader,
            "log_position": self.last_position(), "commit_position": self.commit_position,
            "applied_position": self.applied_position, "base_position": self._base_position,
            "catch_up_to": self.catch_up_to,
        }
