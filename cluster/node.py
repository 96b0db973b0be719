"""One cluster member: the consensus core, the durable log and the service
container behind a small I/O boundary.

The node never opens sockets.  It talks through :class:`NodeIO` (send a
consensus message to member N; send egress to a client), and is fed by its
owner: :meth:`ClusterNode.on_member_message`, :meth:`ClusterNode.on_ingress`
and :meth:`ClusterNode.tick`.  The simulator implements ``NodeIO`` with a
simulated network; :class:`~tickline.cluster.aeron_io.AeronNodeIO` with Aeron
publications, and :class:`~tickline.cluster.daemon.NodeAgent` calls the
``on_*`` methods from its subscriptions' fragment handlers inside ``do_work``.  Not thread-safe: one agent drives it.
"""

from __future__ import annotations

import dataclasses
import random
import sys
from collections import deque
from dataclasses import dataclass
from typing import Callable, Protocol

from .config import ConsensusConfig
from .consensus import Consensus
from .disk import Disk
from .errors import LogCorruptionError, NotLeaderError, RemoteProtocolError
from .log import FsyncPolicy, MetaStore, RecoveryReport, SegmentLog, SnapshotStore
from .messages import KIND_ACTION, KIND_MESSAGE, KIND_TIMER, AppendRequest, Entry, EntryKind, Message, Ready, Role, Snapshot
from .protocol import EgressMessage, EventCode, IngressMessage, SessionClose, SessionConnect, SessionEvent
from .service import ACTION, ACTION_SHUTDOWN, CLOSE, MESSAGE_HEADER, OPEN, TIMER, ClusteredService, ServiceContainer, entry_problem

__all__ = ["NodeIO", "NodeConfig", "ClusterNode"]

_LEADER = Role.LEADER  # a global, not an Enum class attribute, on the per-order paths (see KIND_MESSAGE)


class NodeIO(Protocol):
    def send(self, member: int, message: Message) -> None: ...
    def send_egress(self, client_id: int, message: object) -> None: ...


@dataclass(frozen=True)
class NodeConfig:
    consensus: ConsensusConfig
    segment_size: int = 64 * 1024 * 1024
    fsync: FsyncPolicy = FsyncPolicy.ALWAYS
    # take a snapshot after this many bytes of log were applied since the last (0: only on request)
    snapshot_interval: int = 0


class _Held:
    """Messages waiting for a log sync (``ticket``) to complete, and the end and
    term of the entries that sync makes durable (end -1: none)."""

    __slots__ = ("ticket", "end", "term", "messages")

    def __init__(self, ticket: int, end: int, term: int, messages: list[Message]) -> None:
        self.ticket = ticket
        self.end = end
        self.term = term
        self.messages = messages


class ClusterNode:
    # how much the commit position may move before it is saved without a term/vote change (each save is
    # two fsyncs: file and directory); it only saves replay work at restart
    COMMIT_SAVE_BYTES = 1024 * 1024

    def __init__(self, config: NodeConfig, disk: Disk, service: ClusteredService, io: NodeIO, rng: random.Random, *, now: int = 0,
                 record_applied: bool = False) -> None:
        self.config = config
        self.id = config.consensus.member_id
        self.io = io
        self.disk = disk
        self.log = SegmentLog(disk, segment_size=config.segment_size, fsync=config.fsync)
        self.meta = MetaStore(disk, fsync=config.fsync)
        self.snapshots = SnapshotStore(disk)
        self.container = ServiceContainer(service)
        snapshot, self.skipped_snapshots = self.snapshots.load_latest()
        self.recovery: RecoveryReport = self.log.recover()
        entries = self.recovery.entries
        if snapshot is not None:
            if self.log.start_position > snapshot.position:
                raise LogCorruptionError("log starts after the newest valid snapshot", member=self.id, log_start=self.log.start_position,
                                         snapshot=snapshot.position, skipped_snapshots=",".join(self.skipped_snapshots) or "none")
            if self.log.end_position < snapshot.position:
                # the log (cut at a damaged entry) ends before the snapshot: all it holds is covered
                self.log.reset(snapshot.position)
                entries = ()
            self.container.load_snapshot(snapshot.data)
        elif self.log.start_position != 0:
            raise LogCorruptionError("log starts after 0 but no valid snapshot covers it", member=self.id, start=self.log.start_position, skipped_snapshots=",".join(self.skipped_snapshots) or "none")
        self._saved_hard_state = self.meta.load()
        # A log damaged below what this member may have acknowledged: it takes no
        # part in elections until a leader has brought it back (consensus I9).
        self.core = Consensus(config.consensus, rng, hard_state=self._saved_hard_state, snapshot=snapshot, entries=entries, now=now,
                              catch_up_to=self.recovery.catch_up_to)
        if self.core.catch_up_to is None:
            self.log.set_acked_floor(0)  # e.g. a snapshot already covers what was lost
        self._last_snapshot = snapshot.position if snapshot else 0
        self._prev_snapshot = self._last_snapshot
        self._timers_proposed: set[int] = set()
        # Leader only: (session, correlation) of client messages this member
        # appended in its current term and has not applied yet.  A retry of one
        # of them is dropped instead of appended again: while this member stays
        # leader in this term the entry commits and its answer goes out when
        # applied; if it loses leadership the set is cleared and the client
        # retries at the new leader (whose service container dedups on apply).
        self._in_log: dict[tuple[int, int], None] = {}
        self._in_log_term = -1
        self.duplicates_dropped = 0  # retries answered or dropped without a log append
        self.unknown_sessions = 0  # client messages refused before any append: their session is not open
        # A peer's invalid message is counted, logged and dropped: a peer's fault never stops this member.
        self.peer_faults = 0
        self.last_peer_fault: str | None = None
        self._peer_fault_kinds: set[str] = set()
        # (end position, kind) of every applied entry, for tests: off by default, a
        # long-running member would grow it by one tuple per entry forever
        self.applied: list[tuple[int, int]] = []
        self._record_applied = record_applied
        self.on_apply: Callable[[ClusterNode, Entry, list[tuple[int, object]]], None] | None = None  # hook for checkers
        # Cluster actions (ACTION entries) as they are applied: (node, action, client id, request id, entry end).
        self.on_action: Callable[[ClusterNode, int, int, int, int], None] | None = None
        # Shutdown (an ACTION_SHUTDOWN entry applied live, see _on_action): the end of that
        # entry, then the position of the snapshot taken once applied there.
        self.terminate_at: int | None = None
        self.terminated: int | None = None
        self.shutdown_requester: tuple[int, int] | None = None  # (client id, request id) of the shutdown
        # Leader only, not replicated: a shutdown is in the log, new client messages are refused.
        self.stopping = False
        # Log syncs in flight (a disk that syncs in the background), oldest first,
        # each with the messages that wait for it: see _process.
        self._held: deque[_Held] = deque()
        self._settle_due = now
        self._process()

    # ---------------------------------------------------------------- inputs

    def tick(self, now: int) -> None:
        self.core.tick(now)
        if now >= self._settle_due and not self._held:
            # idle for a heartbeat interval: let the log's ``acked`` record say its last sync completed
            self._settle_due = now + self.config.consensus.heartbeat_interval
            self.log.settle()
        e = self.container.earliest_deadline  # None: no timer (a cycle with none due costs one comparison)
        if e is not None and now >= e and self.core.role is _LEADER:
            for c in self.container.due_timers(now):
                if c not in self._timers_proposed:
                    self._propose(KIND_TIMER, TIMER.pack(c))
                    self._timers_proposed.add(c)
        self._process()

    def on_member_message(self, message: Message, *, defer: bool = False) -> None:
        """Step a peer's message.  ``defer``: leave persisting and sending to the
        next :meth:`process` call, so a duty cycle's whole batch shares one fsync.

        A message that breaks the protocol (``RemoteProtocolError``, fault=peer) is
        counted in ``peer_faults``, logged (the first and every 100th) and dropped."""
        try:
            if type(message) is AppendRequest:
                for e in message.entries:
                    problem = entry_problem(e)
                    if problem is not None:
                        raise RemoteProtocolError("entry the service cannot apply", member=self.id, leader=message.src, position=e.position,
                                                  reason=problem)
            self.core.step(message)
        except RemoteProtocolError as exc:
            self._peer_fault(exc)
        if not defer:
            self._process()

    def _peer_fault(self, exc: RemoteProtocolError) -> None:
        self.peer_faults += 1
        self.last_peer_fault = str(exc)
        # the first of each kind (a fixed set of texts: bounded), then every 100th
        if exc.what not in self._peer_fault_kinds or self.peer_faults % 100 == 1:
            self._peer_fault_kinds.add(exc.what)
            print(f"error: {exc} receiver={self.id} count={self.peer_faults} action=dropped", file=sys.stderr, flush=True)

    def process(self) -> None:
        """Persist, apply and send whatever the core has ready."""
        self._process()

    def on_ingress(self, msg: object, *, defer: bool = False) -> None:
        if self.core.role is not _LEADER:
            sid = getattr(msg, "session_id", 0)
            cid = getattr(msg, "correlation_id", 0)
            self.io.send_egress(msg.client_id, SessionEvent(sid, cid, EventCode.REDIRECT, leader=self.core.leader))  # type: ignore[attr-defined]
            return
        if type(msg) is IngressMessage and (self.container.suspended or self.stopping):
            # Not appended: the answer says why, and the client keeps the message and retries it
            # (applied once resumed, or by the cluster restarted after the shutdown).
            self.io.send_egress(msg.client_id, SessionEvent(msg.session_id, msg.correlation_id, EventCode.ERROR, leader=self.id,
                                                           detail="suspended" if self.container.suspended else "shutting_down"))
            return
        if type(msg) is IngressMessage:
            key = (msg.session_id, msg.correlation_id)
            if self._in_log_term != self.core.term:
                self._in_log.clear()
                self._in_log_term = self.core.term
            if key in self._in_log:
                self.duplicates_dropped += 1  # appended in this term, not yet applied: its answer is coming
                return
            s = self.container.sessions.get(msg.session_id)
            if s is None and not self._opening(msg.session_id):
                # Never appended: the service would only answer "unknown session" to
                # nobody, and every retry would be committed.  Answer the sender now.
                self._unknown_session(msg.client_id, msg.session_id, msg.correlation_id)
                return
            if s is not None and (msg.correlation_id < s.floor or msg.correlation_id in s.answered):
                # Applied already (so committed): answer from the cache without a log append.
                self.duplicates_dropped += 1
                for payload in s.answered.get(msg.correlation_id, ()):
                    self.io.send_egress(s.client_id, EgressMessage(msg.session_id, msg.correlation_id, payload))
                return
            ok = self._propose(KIND_MESSAGE, MESSAGE_HEADER.pack(msg.session_id, msg.correlation_id, msg.floor) + msg.payload)
            if ok:
                self._in_log[key] = None
        elif isinstance(msg, SessionConnect):
            ok = self._propose(EntryKind.SESSION_OPEN, OPEN.pack(msg.session_id, msg.client_id))
        elif isinstance(msg, SessionClose):
            if msg.session_id not in self.container.sessions and not self._opening(msg.session_id):
                self._unknown_session(msg.client_id, msg.session_id, 0)  # nothing to close: no entry for it
                return
            ok = self._propose(EntryKind.SESSION_CLOSE, CLOSE.pack(msg.session_id))
        else:
            return
        if not ok:
            self.io.send_egress(msg.client_id, SessionEvent(msg.session_id, getattr(msg, "correlation_id", 0), EventCode.REDIRECT, leader=self.core.leader))
        if not defer:
            self._process()

    def _unknown_session(self, client_id: int, session_id: int, correlation_id: int) -> None:
        self.unknown_sessions += 1
        self.io.send_egress(client_id, SessionEvent(session_id, correlation_id, EventCode.ERROR, leader=self.id, detail="unknown_session"))

    def _opening(self, session_id: int) -> bool:
        """A SESSION_OPEN for ``session_id`` is in the log and not applied yet (a
        client may send as soon as it hears OK from a member that applied it, while
        this leader has not yet).  Only for a session the container does not know:
        the unapplied tail is short, one commit round."""
        core = self.core
        for e in core.entries_between(max(core.applied_position, core.base_position), core.last_position()):
            if e.kind == EntryKind.SESSION_OPEN and OPEN.unpack_from(e.payload)[0] == session_id:
                return True
        return False

    @property
    def syncing(self) -> bool:
        """A log sync is in flight, with messages waiting for it."""
        return bool(self._held)

    def close(self) -> None:
        """Wait for the log syncs in flight, send what waited for them, close the disk."""
        self._drain()
        close = getattr(self.disk, "close", None)
        if close is not None:
            close()

    def take_snapshot(self) -> Snapshot:
        """Snapshot the service at the applied position, then drop older log segments."""
        self._drain()
        position = self.core.applied_position
        term = self.core.term_at(position)
        assert term is not None
        snapshot = Snapshot(position, term, self.container.take_snapshot())
        self.snapshots.save(snapshot)
        self.core.compact(snapshot)
        # Keep the log back to the previous snapshot, so that if this one is
        # found damaged at recovery the previous one plus the log still work.
        self.log.remove_before(self._last_snapshot)
        self._prev_snapshot, self._last_snapshot = self._last_snapshot, position
        return snapshot

    def propose_action(self, action: int, client_id: int, request_id: int) -> Entry:
        """Leader: append a cluster action (suspend, resume, shutdown: see :mod:`.service`).
        Raises NotLeaderError elsewhere.  After a shutdown this leader refuses new client
        messages (``stopping``)."""
        entry = self.core.propose(KIND_ACTION, ACTION.pack(action, client_id, request_id))
        if action == ACTION_SHUTDOWN:
            self.stopping = True
        self._process()
        return entry

    def _on_action(self, e: Entry) -> None:
        action, client_id, request_id = ACTION.unpack(e.payload)
        if action == ACTION_SHUTDOWN and self.terminate_at is None and e.term == self.core.term and e.end > self.recovery.end_position:
            # Live only: an entry this member read back from its own log at start-up, or one
            # from an earlier term (the cluster was restarted since, an election came between),
            # is history, not an instruction; a member that missed the shutdown and rejoins a
            # restarted cluster must not stop again.
            self.terminate_at = e.end
            self.shutdown_requester = (client_id, request_id)
        if self.on_action is not None:
            self.on_action(self, action, client_id, request_id, e.end)

    def shutdown(self) -> int | None:
        """Clean shutdown, step 1: hand leadership to the most up-to-date peer.
        Keep driving the node until ``core.role`` is no longer leader (or the
        transfer times out), then stop."""
        target = self.core.transfer_leadership()
        self._process()
        return target

    # ---------------------------------------------------------------- internals

    def _propose(self, kind: int, payload: bytes) -> bool:
        try:
            self.core.propose(kind, payload)
            return True
        except NotLeaderError:
            return False

    def _process(self) -> None:
        core = self.core
        held = self._held
        kick = getattr(self.io, "kick", None)  # a transport that sends only when turned (Aeron invoker mode)
        if held:
            self._release_synced()
        while core.has_ready():
            rd = core.ready()
            hs, saved = rd.hard_state, self._saved_hard_state
            vote_change = hs is not None and (hs.term, hs.voted_for) != (saved.term, saved.voted_for)
            # A snapshot, a cut or a new term or vote is rare: it waits for the
            # syncs in flight and is made durable before anything else goes on.
            barrier = rd.snapshot is not None or rd.truncate_to is not None or vote_change
            if barrier and held:
                self._drain()
            if rd.role_change is not None:
                if rd.role_change.role is not _LEADER:
                    self._timers_proposed.clear()
                self.container.set_role(rd.role_change.role)
            leader = core.role is _LEADER
            if not leader or (rd.role_change is not None and rd.role_change.term != core.term):
                self._in_log.clear()
            # Committed entries are durable on a quorum already, so applying them
            # (and answering clients) need not wait for this Ready's own writes,
            # which concern later entries (see Ready, rule 6).  Otherwise (a
            # follower, which answers no client, or a snapshot to load first)
            # they are applied last, after sending: a follower's append
            # position, which the leader's commit waits for, does not wait for
            # the service.
            apply_first = leader and rd.snapshot is None and bool(rd.committed)
            if apply_first:
                self._apply(rd.committed, leader)
            messages = rd.messages
            early = False
            if leader and not vote_change and messages:
                # Raft thesis §10.2.1: the leader may replicate while it writes
                # its own copy (see Ready, rule 7).  Saves one fsync of latency.
                for m in messages:
                    if type(m) is AppendRequest:
                        self.io.send(m.dst, m)
                        early = True
                if early:
                    messages = tuple(m for m in messages if type(m) is not AppendRequest)
            if kick is not None and (early or apply_first) and (rd.entries or hs is not None):
                kick()  # what was just offered leaves before the fsync below
            ticket = self._persist(rd, wait=barrier)
            # Persist before you send: messages wait for this Ready's sync, and
            # for any still in flight before it (they promise what those write).
            if ticket is not None:
                last = rd.entries[-1] if rd.entries else None
                held.append(_Held(ticket, last.end if last else -1, last.term if last else -1, list(messages)))
            elif held:
                held[-1].messages.extend(messages)
            else:
                for m in messages:
                    self.io.send(m.dst, m)
            if rd.committed and not apply_first:
                self._apply(rd.committed, leader)
            core.advance(rd, durable=ticket is None)
            if held:
                self._release_synced()
            if self.log.acked_floor and core.catch_up_to is None:
                # caught up (I9): ``acked`` may come down to the log's end, once what
                # is in flight is durable (it never says more than was synced)
                self._drain()
                self.log.set_acked_floor(0)
            if self.terminate_at is not None and self.terminated is None and core.applied_position >= self.terminate_at:
                self.terminated = self.take_snapshot().position  # the shutdown: every member snapshots, then stops
            interval = self.config.snapshot_interval
            if interval and core.applied_position - self._last_snapshot >= interval and core.applied_position > core.base_position:
                self.take_snapshot()

    def _release_synced(self) -> None:
        """Send what waited for the syncs that completed; a leader's own copy of
        their entries now counts towards commit."""
        held = self._held
        done = self.disk.synced()  # raises if a sync failed: the member stops, nothing unsynced was promised
        while held and held[0].ticket <= done:
            h = held.popleft()
            for m in h.messages:
                self.io.send(m.dst, m)
            if h.end >= 0:
                self.core.persisted(h.end, h.term)

    def _drain(self) -> None:
        """Wait for every sync in flight and send what waited for them."""
        if self._held:
            self.disk.sync_wait(self._held[-1].ticket)
            self._release_synced()

    def _apply(self, committed: tuple[Entry, ...], leader: bool) -> None:
        in_log = self._in_log
        container = self.container
        for e in committed:
            if in_log and e.kind == KIND_MESSAGE:
                sid, cid, _ = MESSAGE_HEADER.unpack_from(e.payload)
                in_log.pop((sid, cid), None)
            egress = container.apply(e)
            if self._record_applied:
                self.applied.append((e.end, e.kind))
            if self.on_apply is not None:
                self.on_apply(self, e, egress)
            if e.kind == KIND_TIMER:
                self._timers_proposed.discard(TIMER.unpack(e.payload)[0])
            elif e.kind == KIND_ACTION:
                self._on_action(e)
            if leader:
                for client_id, msg in egress:
                    if client_id >= 0:
                        if type(msg) is SessionEvent and msg.leader is None:
                            # the answer to a connect names who gave it: a client whose
                            # guess moved on while it waited learns the leader
                            msg = dataclasses.replace(msg, leader=self.id)
                        self.io.send_egress(client_id, msg)

    def _persist(self, rd: Ready, *, wait: bool) -> int | None:
        """Steps 1-5 of Ready.  Returns the ticket of the log sync still in
        flight, or None if what was written is durable (or needs no sync)."""
        if rd.snapshot is not None:
            self.snapshots.save(rd.snapshot)
            self.log.reset(rd.snapshot.position)
            self.container.load_snapshot(rd.snapshot.data)
            self._prev_snapshot = self._last_snapshot = rd.snapshot.position
        if rd.truncate_to is not None:
            self.log.truncate(rd.truncate_to)
        if rd.entries:
            self.log.append(rd.entries)
        ticket = self.log.sync_begin()
        if rd.entries:
            self._settle_due = self.core.now + self.config.consensus.heartbeat_interval
        if ticket is not None and (wait or self.disk.synced() >= ticket and not self._held):
            self.disk.sync_wait(ticket)
            ticket = None
        hs = rd.hard_state
        if hs is not None:
            # Term and vote must be durable before any message leaves; the commit
            # position only saves replay work at restart (any value once true
            # stays true), so it is written with them or every COMMIT_SAVE_BYTES.
            saved = self._saved_hard_state
            if (hs.term, hs.voted_for) != (saved.term, saved.voted_for) or hs.commit_position - saved.commit_position >= self.COMMIT_SAVE_BYTES:
                self.meta.save(hs)
                self._saved_hard_state = hs
        return ticket
