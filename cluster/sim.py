"""Deterministic simulation of a whole cluster in one process.

One seed drives everything: message delays, reordering, drops, duplicates,
partitions (symmetric and one-way), crashes (some in the middle of a write,
leaving a torn tail on the simulated disk), damage in the middle of a
member's log (a flipped bit in entries it synced and may have acknowledged,
found when it restarts: its log shrinks under a live leader, which must
repair it, and it must not vote until repaired), clean leader shutdowns with
leadership transfer, restarts, snapshots and the clients' traffic.  Damage
hits one member at a time (Raft cannot outlive the loss of a quorum's
copies), and only what that member's ``acked`` record says was synced: damage
to the last batch before the record caught up is the one case recovery cannot
tell from a torn tail (see log.py).  After
every event the invariants are checked:

- at most one leader per term;
- a committed entry never changes (every member commits the same entry at a position);
- every member applies the same sequence and produces the same egress;
- no client message reaches the service twice; nothing acknowledged is lost
  (at the end, after healing, every acknowledged order is in the log of every
  member, and every outstanding order gets its answer);
- the clients' history is linearizable against the single-copy sequencer.

A failure raises :class:`SimFailure` whose message holds the seed and the
command that replays it::

    python -m tickline.cluster.sim --seed 1234
"""

from __future__ import annotations

import argparse
import functools
import heapq
import random
import sys
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, NoReturn

from .client import ClusterClient
from .config import ConsensusConfig
from .disk import SimDisk
from .errors import ClusterError, NotLeaderError
from .linearizability import Operation, check_linearizable
from .log import FsyncPolicy, load_acked
from .messages import Entry, EntryKind, InstallSnapshot, Role
from .node import ClusterNode, NodeConfig
from .protocol import EgressMessage
import importlib
from .service import ACTION_RESUME, ACTION_SUSPEND, MESSAGE_HEADER

__all__ = ["SimOptions", "Simulation", "SimFailure", "run_seed", "main"]


class SimFailure(AssertionError):
    pass


class _Crash(Exception):
    """Raised by the faulty disk to simulate kill -9 in the middle of a write."""


class _CrashingDisk(SimDisk):
    """``on_sync_begin(ticket)``: called for each background sync, to schedule its completion."""

    def __init__(self, background: bool = False, on_sync_begin: Callable[[int], None] | None = None) -> None:
        super().__init__(background=background)
        self.crash_on_fsync = False
        self.tripped = False
        self.on_sync_begin = on_sync_begin

    def _trip(self) -> None:
        if self.crash_on_fsync:
            self.crash_on_fsync = False
            self.tripped = True
            raise _Crash()

    def fsync(self, name: str) -> None:
        self._trip()
        super().fsync(name)

    def sync_begin(self, names: list[str]) -> int:
        self._trip()
        ticket = super().sync_begin(names)
        if self.background and self.on_sync_begin is not None:
            self.on_sync_begin(ticket)
        return ticket


@dataclass(frozen=True)
class SimOptions:
    seed: int
    members: int | None = None  # None: 3 or 5, chosen by the seed
    fault_time: int = 1200  # ms of traffic under faults
    heal_time: int = 1500  # ms of healed network afterwards (liveness and catch-up)
    clients: int = 2
    tick_interval: int = 10
    drop: float | None = None  # None: chosen by the seed
    duplicate: float | None = None
    crashes: bool = True
    partitions: bool = True
    snapshot_interval: int = 1500
    segment_size: int = 700
    # the most ms a log sync takes in the background while the member goes on
    # (0: syncs block, as with a disk without a sync thread); None: chosen by the seed
    sync_delay: int | None = None
    limits: object = None  # None: the workload's SIM_LIMITS
    # The service the simulator drives and checks, a module named by the caller: an
    # application's (the framework imports none, ARCHITECTURE.md); it provides OrderSequencer,
    # NewOrder, Side, SIM_LIMITS, codec(name), SequencerState, sequencer_model, sequencer_key.
    workload: str = "tickline.sequencer.basic"
    codec: str = "struct"  # or "sbe": orders as SBE messages of schemas/orders.xml
    # Operators' cluster actions under the faults: the leader of the moment suspends the
    # cluster for a while, then resumes it (both through the log); clients' messages
    # refused meanwhile must be applied once after.  Off by default: it changes every
    # seed's schedule (its events come from a generator of their own).
    actions: bool = False


class _Network:
    def __init__(self, rng: random.Random, drop: float, dup: float, max_delay: int) -> None:
        self.rng = rng
        self.drop = drop
        self.dup = dup
        self.max_delay = max_delay
        self.blocked: set[tuple[int, int]] = set()  # (src, dst) pairs cut, one-way

    def delays(self, src: int, dst: int) -> list[int]:
        if (src, dst) in self.blocked:
            return []
        r = self.rng
        if r.random() < self.drop:
            return []
        d = [r.randint(1, self.max_delay) + (r.randint(0, 40) if r.random() < 0.05 else 0)]
        if r.random() < self.dup:
            d.append(r.randint(1, self.max_delay * 3))
        return d


class _NodeIO:
    def __init__(self, sim: "Simulation", member: int) -> None:
        self.sim = sim
        self.member = member

    def send(self, member: int, message) -> None:
        if isinstance(message, InstallSnapshot):
            self.sim.stats["snapshot_chunks"] += 1
        self.sim._send(self.member, member, ("peer", message))

    def send_egress(self, client_id: int, message) -> None:
        self.sim._send(self.member, client_id, ("egress", message))


class Simulation:
    def __init__(self, opts: SimOptions) -> None:
        self.opts = opts
        self.rng = random.Random(opts.seed)
        r = self.rng
        self.member_ids = tuple(range(1, (opts.members or r.choice([3, 3, 3, 5])) + 1))
        self.net = _Network(
            random.Random(r.getrandbits(64)),
            opts.drop if opts.drop is not None else r.choice([0.0, 0.02, 0.1]),
            opts.duplicate if opts.duplicate is not None else r.choice([0.0, 0.02, 0.05]),
            r.choice([2, 5, 12]),
        )
        self.fault_rng = random.Random(r.getrandbits(64))
        # small batches make followers hold divergent tails past what one append verifies
        self.max_append_bytes = r.choice([120, 400, 64 * 1024])
        # the sequencer's snapshots are a few hundred bytes (1-2 KB with the
        # SBE codec): small chunks make most transfers tens of chunks long,
        # under loss, duplication, reordering, crashes and leader changes; the
        # largest sends each in one.  One chunk is in flight at a time, so a
        # transfer takes a round trip per chunk: a hundred or more would not
        # end inside heal_time, and the liveness check would fail for that.
        small = (64, 256) if opts.codec == "sbe" else (16, 64)
        self.snapshot_chunk_bytes = r.choice([*small, 256 * 1024])
        # batching: members step messages as they arrive but persist/send only on
        # their tick, as the daemon's duty cycle does (one fsync per batch)
        self.batching = r.random() < 0.3
        # From a generator of its own, so that seeds drawing 0 replay as they did before syncs could run in the background.
        sync_rng = random.Random(f"sync:{opts.seed}")
        self.sync_delay = opts.sync_delay if opts.sync_delay is not None else sync_rng.choice([0, 0, 1, 4, 12])
        self.disks = {m: _CrashingDisk(self.sync_delay > 0, functools.partial(self._sync_begun, m)) for m in self.member_ids}
        self._sync_rng = sync_rng
        self.nodes: dict[int, ClusterNode | None] = {}
        self.now = 0
        self._q: list = []
        self._seq = 0
        self.trace: deque = deque(maxlen=60)
        # checker state
        self.leaders: dict[int, int] = {}
        self._announced: dict[int, int] = {}
        self.committed: dict[int, tuple[int, int, bytes]] = {}  # end -> (position, term, payload)
        self.applied: dict[int, tuple] = {}  # end -> (term, kind, payload, egress)
        self.fresh: dict[tuple[int, int], int] = {}  # (session, correlation) -> position applied
        self._commit_seen: dict[int, int] = {}
        self._dups: dict[int, int] = {}
        self._refused: dict[int, int] = {}
        self.w = importlib.import_module(opts.workload)
        self.limits = opts.limits if opts.limits is not None else self.w.SIM_LIMITS
        self.codec = self.w.codec(opts.codec)
        self.clients: dict[int, ClusterClient] = {}
        self.history: dict[tuple[int, int], Operation] = {}
        self.acked: dict[tuple[int, int], bytes] = {}
        self.stats = {"crashes": 0, "torn": 0, "tails_truncated": 0, "recovered_from_snapshot": 0, "transfers": 0,
                      "snapshots_installed": 0, "snapshot_chunks": 0, "duplicates_suppressed": 0, "messages": 0,
                      "rotted": 0, "damaged_restarts": 0, "followers_repaired": 0, "votes_withheld": 0}
        self._damaged: set[int] = set()  # members whose log was damaged and are not yet repaired
        self._installs_seen: dict[int, int] = {}
        for m in self.member_ids:
            self._start_node(m)
        for i in range(opts.clients):
            cid = 100 + i
            self.clients[cid] = ClusterClient(cid, 1000 + i, self.member_ids, retry_timeout=60)
            self._schedule(r.randint(0, 20), ("client", cid))
        for m in self.member_ids:
            self._schedule(r.randint(0, opts.tick_interval), ("tick", m))
        self._schedule_faults()
        self._want_suspended = False
        if opts.actions:
            self._schedule_actions()

    # ---------------------------------------------------------------- plumbing

    def _schedule(self, delay: int, event: tuple) -> None:
        self._seq += 1
        heapq.heappush(self._q, (self.now + delay, self._seq, event))

    def _sync_begun(self, m: int, ticket: int) -> None:
        self._schedule(self._sync_rng.randint(0, self.sync_delay), ("synced", m, ticket))

    def _send(self, src: int, dst: int, payload: tuple) -> None:
        self.stats["messages"] += 1
        for d in self.net.delays(src, dst):
            self._schedule(d, ("deliver", src, dst, payload))

    def _config(self, m: int) -> NodeConfig:
        return NodeConfig(
            ConsensusConfig(m, self.member_ids, election_timeout_min=40, election_timeout_max=80, heartbeat_interval=10,
                            max_append_bytes=self.max_append_bytes, snapshot_chunk_bytes=self.snapshot_chunk_bytes),
            segment_size=self.opts.segment_size,
            fsync=FsyncPolicy.ALWAYS,
            snapshot_interval=self.opts.snapshot_interval,
        )

    def _start_node(self, m: int) -> None:
        node = ClusterNode(self._config(m), self.disks[m], self.w.OrderSequencer(self.limits, self.codec), _NodeIO(self, m),
                           random.Random(self.rng.getrandbits(64)), now=self.now)
        node.on_apply = self._on_apply
        if node.recovery.damaged:
            self.stats["damaged_restarts"] += 1
        if node.recovery.truncated_at is not None:
            self.stats["tails_truncated"] += 1
        if node.core.base_position:
            self.stats["recovered_from_snapshot"] += 1
        self.nodes[m] = node
        self._commit_seen[m] = node.core.commit_position
        self._installs_seen[m] = 0
        self._dups[m] = node.container.duplicates
        self._refused[m] = node.container.refused_suspended
        if node.core.base_position:
            self._check_snapshot_base(node)

    def _crash(self, m: int, torn: bool) -> None:
        node = self.nodes[m]
        if node is not None:
            self.stats["followers_repaired"] += node.core.followers_repaired
            self.stats["votes_withheld"] += node.core.votes_withheld
        self.nodes[m] = None
        self.stats["crashes"] += 1
        self.stats["torn"] += torn
        self.disks[m].crash_on_fsync = False
        # torn: killed inside a write, before its fsync.  Either way, half the
        # time it is a kill -9 (the page cache keeps every write, durable or not)
        # and half the time the power goes (only a torn prefix of unsynced bytes stays).
        power_loss = self.fault_rng.random() < 0.5
        self.disks[m].crash(self.fault_rng, power_loss=power_loss)
        self.trace.append((self.now, "crash", m, "torn" if torn else "power" if power_loss else "kill"))

    # ---------------------------------------------------------------- faults

    def _schedule_faults(self) -> None:
        r = self.fault_rng
        # a profile per seed: calm stretches find different bugs than storms
        self.profile = r.choice(["mixed", "mixed", "crashy", "stormy"])
        crash_gap = {"mixed": (150, 500), "crashy": (30, 120), "stormy": (80, 250)}[self.profile]
        part_gap = {"mixed": (100, 400), "crashy": (200, 600), "stormy": (20, 80)}[self.profile]
        self.restart_delay = {"mixed": (10, 300), "crashy": (1, 40), "stormy": (10, 100)}[self.profile]
        t = 0
        while self.opts.partitions:
            t += r.randint(*part_gap)
            if t >= self.opts.fault_time:
                break
            self._schedule(t, ("partition",))
        t = 0
        while self.opts.crashes:
            t += r.randint(*crash_gap)
            if t >= self.opts.fault_time:
                break
            self._schedule(t, (r.choice(["crash", "crash", "torn", "transfer", "rot"]),))
        self._schedule(self.opts.fault_time, ("heal",))

    def _schedule_actions(self) -> None:
        ar = random.Random(f"actions:{self.opts.seed}")
        self.stats.update(suspends=0, refused_suspended=0)
        t = 0
        while True:
            t += ar.randint(100, 400)
            if t >= self.opts.fault_time:
                break
            self._schedule(t, ("suspend", ar.randint(20, 200)))
        self._schedule(0, ("action_watch",))

    def _leader_node(self) -> ClusterNode | None:
        leaders = [n for n in self.nodes.values() if n is not None and n.core.role is Role.LEADER]
        return leaders[0] if len(leaders) == 1 else None

    def _propose_action(self, action: int) -> None:
        node = self._leader_node()
        if node is None:
            return
        try:
            node.propose_action(action, -1, self.now)
        except NotLeaderError:
            return
        self._check_node(node.id)

    def _partition(self) -> None:
        r = self.fault_rng
        ids = list(self.member_ids) + list(self.clients)
        self.net.blocked = set()
        kind = r.choice(["none", "isolate", "split", "oneway", "oneway"])
        if kind == "isolate":
            m = r.choice(self.member_ids)
            for o in ids:
                if o != m:
                    self.net.blocked |= {(m, o), (o, m)}
        elif kind == "split":
            side = set(r.sample(self.member_ids, len(self.member_ids) // 2))
            for a in ids:
                for b in ids:
                    if (a in side) != (b in side) and a in self.member_ids and b in self.member_ids:
                        self.net.blocked.add((a, b))
        elif kind == "oneway":
            a, b = r.sample(self.member_ids, 2)
            self.net.blocked.add((a, b))
        self.trace.append((self.now, "partition", kind, sorted(self.net.blocked)))

    def _fault(self, kind: str) -> None:
        r = self.fault_rng
        alive = [m for m in self.member_ids if self.nodes[m] is not None]
        if kind == "transfer":
            for m in alive:
                node = self.nodes[m]
                if node is not None and node.core.role is Role.LEADER:
                    if node.shutdown() is not None:
                        self.stats["transfers"] += 1
                        self.trace.append((self.now, "transfer", m))
                        self._schedule(r.randint(20, 100), ("stop", m))
            return
        if not alive:
            return
        if kind == "rot":
            self._rot(alive)
            return
        m = r.choice(alive)
        if kind == "torn":
            self.disks[m].crash_on_fsync = True  # dies inside its next write
            self._schedule(r.randint(*self.restart_delay) + 20, ("restart", m))
        else:
            self._crash(m, False)
            self._schedule(r.randint(*self.restart_delay), ("restart", m))

    def _rot(self, alive: list[int]) -> None:
        """Kill a member, then flip a bit in entries its ``acked`` record says were
        synced: at its restart the damage is found mid-log.  A follower when there is a leader, so its log
        shrinks under a live leader."""
        r = self.fault_rng
        self._damaged = {m for m in self._damaged if self.nodes[m] is None or self.nodes[m].core.catch_up_to is not None}
        if self._damaged:
            return  # one damaged member at a time
        followers = [m for m in alive if self.nodes[m] is not None and self.nodes[m].core.role is not Role.LEADER]
        m = r.choice(followers or alive)
        disk = self.disks[m]
        self._crash(m, False)
        self._schedule(r.randint(*self.restart_delay), ("restart", m))
        acked = load_acked(disk)  # as the crash left it (a record not yet synced may be gone)
        if acked is None:
            return
        synced = acked[1]
        segments = [(int(n[4:-4]), n) for n in disk.list() if n.startswith("log-") and n.endswith(".seg") and int(n[4:-4]) < synced]
        if not segments:
            return
        base, name = r.choice(segments)
        size = min(len(disk.durable[name]), len(disk.files[name]), synced - base)
        if size <= 0:
            return
        offset = r.randrange(size)
        bit = 1 << r.randrange(8)
        disk.files[name][offset] ^= bit
        durable = bytearray(disk.durable[name])
        if offset < len(durable):
            durable[offset] ^= bit
            disk.durable[name] = bytes(durable)
        self._damaged.add(m)
        self.stats["rotted"] += 1
        self.trace.append((self.now, "rot", m, name, offset))

    # ---------------------------------------------------------------- run

    @property
    def terms(self) -> int:
        return len(self.leaders)

    def run(self) -> "Simulation":
        end = self.opts.fault_time + self.opts.heal_time
        while self._q:
            t, _, ev = heapq.heappop(self._q)
            if t > end:
                break
            self.now = t
            try:
                self._handle(ev)
            except _Crash:
                for m, disk in self.disks.items():
                    if disk.tripped:
                        disk.tripped = False
                        self._crash(m, True)
            except ClusterError as exc:
                self._fail(f"cluster error: {exc}")
        if self.opts.actions:
            self.stats["refused_suspended"] = sum(c.refusals for c in self.clients.values())
        self._final_checks()
        return self

    def _handle(self, ev: tuple) -> None:
        kind = ev[0]
        if kind == "tick":
            m = ev[1]
            self._schedule(self.opts.tick_interval, ev)
            node = self.nodes[m]
            if node is not None:
                node.tick(self.now)
                self._check_node(m)
        elif kind == "deliver":
            _, src, dst, (channel, msg) = ev
            if (src, dst) in self.net.blocked:
                return  # cut while in flight
            if channel == "peer":
                node = self.nodes[dst]
                if node is not None:
                    node.on_member_message(msg, defer=self.batching)
                    self._check_node(dst)
            elif channel == "egress":
                self._on_egress(dst, msg)
            else:
                node = self.nodes[dst]
                if node is not None:
                    node.on_ingress(msg, defer=self.batching)
                    self._check_node(dst)
        elif kind == "synced":
            m = ev[1]
            self.disks[m].complete_syncs(ev[2])  # no-op for a sync the member's crash lost
            node = self.nodes[m]
            if node is not None:
                node.process()
                self._check_node(m)
        elif kind == "client":
            self._client_step(ev[1])
        elif kind == "partition":
            self._partition()
        elif kind in ("crash", "torn", "transfer", "rot"):
            self._fault(kind)
        elif kind == "stop":
            if self.nodes[ev[1]] is not None:
                self._crash(ev[1], False)
                self._schedule(self.fault_rng.randint(10, 200), ("restart", ev[1]))
        elif kind == "restart":
            m = ev[1]
            if self.nodes[m] is None:
                self.trace.append((self.now, "restart", m))
                self._start_node(m)
                self._check_node(m)
        elif kind == "suspend":
            self._want_suspended = True
            self.stats["suspends"] += 1
            self.trace.append((self.now, "suspend", ev[1]))
            self._propose_action(ACTION_SUSPEND)
            self._schedule(ev[1], ("unsuspend",))
        elif kind == "unsuspend":
            self._want_suspended = False
        elif kind == "action_watch":
            # whatever was lost to crashes and elections, the cluster ends up resumed once wanted:
            # the leader of the moment is told again while its applied state says suspended
            self._schedule(20, ev)
            node = self._leader_node()
            if not self._want_suspended and node is not None and node.container.suspended:
                self._propose_action(ACTION_RESUME)
        elif kind == "heal":
            self._want_suspended = False
            self.net.blocked = set()
            self.net.drop = 0.0
            self.net.dup = 0.0
            for m in self.member_ids:
                self.disks[m].crash_on_fsync = False
                if self.nodes[m] is None:
                    self._schedule(0, ("restart", m))

    def _client_step(self, cid: int) -> None:
        c = self.clients[cid]
        r = self.rng
        if self.now < self.opts.fault_time and c.connected and len(c.outstanding) < 2 and r.random() < 0.6:
            NewOrder, Side = self.w.NewOrder, self.w.Side
            order = NewOrder(r.choice([1, 2]), r.choice([Side.BUY, Side.SELL]), r.randint(1, 300), 100, r.getrandbits(31))
            if self.opts.codec == "sbe":
                order = NewOrder(f"ACC{order.account}", order.side, order.quantity, order.price, f"C{order.client_order_id}")
            corr = c.offer(self.codec.encode_order(order), self.now)
            self.history[(c.session_id, corr)] = Operation(cid, self.now, None, order, None)
        for member, msg in c.poll(self.now):
            self._send(cid, member, ("ingress", msg))
        self._schedule(r.randint(5, 25), ("client", cid))

    def _on_egress(self, cid: int, msg) -> None:
        c = self.clients.get(cid)
        if c is None:
            return
        for corr, payload in c.on_egress(msg, self.now):
            key = (c.session_id, corr)
            self.acked[key] = payload
            op = self.history[key]
            self.history[key] = Operation(op.client, op.call, self.now, op.input, self.codec.decode_ack(payload))

    # ---------------------------------------------------------------- checks

    def _fail(self, what: str) -> NoReturn:
        extra = "".join(f" --{k} {v}" for k, v in (("members", self.opts.members), ("codec", self.opts.codec if self.opts.codec != "struct" else None)) if v)
        lines = [f"{what}", f"seed={self.opts.seed} now={self.now}",
                 f"rerun: python -m tickline.cluster.sim --seed {self.opts.seed}{extra}", "recent events:"]
        lines += [f"  {e}" for e in self.trace]
        raise SimFailure("\n".join(lines))

    def _check_node(self, m: int) -> None:
        node = self.nodes[m]
        if node is None:
            return
        core = node.core
        if node.peer_faults:
            # members here are honest: a message refused as the peer's fault is a bug
            self._fail(f"member refused a peer's message: member={m} {node.last_peer_fault}")
        if core.snapshots_received != self._installs_seen[m]:
            self.stats["snapshots_installed"] += core.snapshots_received - self._installs_seen[m]
            self._installs_seen[m] = core.snapshots_received
        if core.snapshot_checksum_failures:
            # the simulated network loses, repeats and reorders but never corrupts: a
            # mismatch here means chunks were assembled wrongly
            self._fail(f"assembled snapshot failed its checksum: member={m} failures={core.snapshot_checksum_failures}")
        if core.role is Role.LEADER:
            prev = self.leaders.setdefault(core.term, m)
            if prev != m:
                self._fail(f"two leaders in one term: term={core.term} leaders={prev},{m}")
            if prev == m and self._announced.get(core.term) != m:
                self._announced[core.term] = m
                self.trace.append((self.now, "leader", m, core.term))
        last = self._commit_seen[m]
        if core.commit_position < last:
            self._fail(f"commit position went backwards: member={m} from={last} to={core.commit_position}")
        if core.commit_position > last:
            for e in core.entries_between(max(last, core.base_position), core.commit_position):
                rec = (e.position, e.term, e.payload)
                was = self.committed.setdefault(e.end, rec)
                if was != rec:
                    self._fail(f"committed entry changed: member={m} end={e.end} was={was[:2]} now={rec[:2]}")
            self._commit_seen[m] = core.commit_position

    def _check_snapshot_base(self, node: ClusterNode) -> None:
        pos = node.core.base_position
        rec = self.committed.get(pos)
        if rec is not None and rec[1] != node.core.term_at(pos):
            self._fail(f"snapshot term disagrees with committed log: member={node.id} position={pos}")

    def _on_apply(self, node: ClusterNode, e: Entry, egress: list) -> None:
        payloads = tuple(msg.payload for _, msg in egress if isinstance(msg, EgressMessage))
        rec = (e.term, e.kind, e.payload, payloads)
        prev = self.applied.setdefault(e.end, rec)
        if prev != rec:
            self._fail(f"members applied different entries or produced different egress: member={node.id} end={e.end} "
                       f"recorded_term={prev[0]} term={e.term} recorded_egress={prev[3]} egress={payloads}")
        dups = node.container.duplicates
        fresh = dups == self._dups.get(node.id, dups)
        if not fresh:
            self.stats["duplicates_suppressed"] += 1
        self._dups[node.id] = dups
        # a message refused because the cluster was suspended was not applied: its retry will be
        refused = node.container.refused_suspended
        if refused != self._refused.get(node.id, refused):
            fresh = False
        self._refused[node.id] = refused
        if e.kind == EntryKind.MESSAGE and fresh:
            sid, corr, _ = MESSAGE_HEADER.unpack_from(e.payload)
            if sid in node.container.sessions:
                where = self.fresh.setdefault((sid, corr), e.end)
                if where != e.end:
                    self._fail(f"client message applied twice: session={sid} correlation={corr} first_end={where} again_end={e.end}")

    def _final_checks(self) -> None:
        alive = [n for n in (self.nodes[m] for m in self.member_ids) if n is not None]
        if len(alive) != len(self.member_ids):
            self._fail("not every member is running after healing")
        leaders = [n for n in alive if n.core.role is Role.LEADER]
        if len(leaders) != 1:
            self._fail(f"no single leader after healing: leaders={[n.id for n in leaders]}")
        commit = leaders[0].core.commit_position
        for n in alive:
            if n.core.applied_position != commit:
                self._fail(f"member did not catch up after healing: member={n.id} applied={n.core.applied_position} leader_commit={commit}")
        for key, payload in self.acked.items():
            where = self.fresh.get(key)
            if where is None:
                self._fail(f"acknowledged message lost: session={key[0]} correlation={key[1]}")
            if payload not in self.applied[where][3]:
                self._fail(f"acknowledged answer differs from the applied one: session={key[0]} correlation={key[1]}")
        for c in self.clients.values():
            if c.outstanding:
                self._fail(f"client request never answered after healing: client={c.client_id} correlations={sorted(c.outstanding)}")
        ops = list(self.history.values())
        result = check_linearizable(ops, (self.w.SequencerState(), 0), self.w.sequencer_model(self.limits), self.w.sequencer_key)
        if not result.ok:
            self._fail(f"history not linearizable: {result.reason}")


def run_seed(seed: int, **overrides) -> Simulation:
    return Simulation(SimOptions(seed=seed, **overrides)).run()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tickline.cluster.sim", description="run the deterministic cluster simulator")
    p.add_argument("--seed", type=int, help="run one seed (print its stats)")
    p.add_argument("--seeds", type=int, default=100, help="run seeds [start, start+N)")
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--codec", choices=["struct", "sbe"], default="struct")
    p.add_argument("--members", type=int, default=None, help="default: chosen by the seed (3 or 5)")
    p.add_argument("--sync-delay", type=int, default=None, help="most ms a background log sync takes (0: syncs block); default: chosen by the seed")
    p.add_argument("--actions", action="store_true", help="operators suspend and resume the cluster (through the log) under the faults")
    args = p.parse_args(argv)
    seeds = [args.seed] if args.seed is not None else range(args.start, args.start + args.seeds)
    t0 = time.perf_counter()
    failures = 0
    totals: dict[str, int] = {}
    for s in seeds:
        try:
            overrides = {k: v for k, v in (("members", args.members), ("sync_delay", args.sync_delay)) if v is not None}
            if args.actions:
                overrides["actions"] = True
            sim = run_seed(s, codec=args.codec, **overrides)
            for k, v in sim.stats.items():
                totals[k] = totals.get(k, 0) + v
            totals["leader_terms"] = totals.get("leader_terms", 0) + sim.terms
            totals["acked"] = totals.get("acked", 0) + len(sim.acked)
            if args.seed is not None:
                print(f"seed={s} ok stats={sim.stats} commit={max(n.core.commit_position for n in sim.nodes.values() if n)} acked={len(sim.acked)}")
        except SimFailure as exc:
            failures += 1
            print(exc, file=sys.stderr)
    n = len(seeds)
    print(f"seeds={n} failures={failures} seconds={time.perf_counter() - t0:.1f} totals={totals}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
