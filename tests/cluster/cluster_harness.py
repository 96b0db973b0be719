"""A tiny in-memory cluster of bare consensus cores for scenario tests.

Messages are queued, not delivered, until the test says so; links can be cut
one way; each core has a fake store (the entries, hard state and snapshot it
would have persisted) so a test can restart it exactly as a crash would.
"""

from __future__ import annotations

import random

from tickline.cluster.config import ConsensusConfig
from tickline.cluster.consensus import Consensus
from tickline.cluster.disk import SimDisk
from tickline.cluster.messages import EntryKind, HardState, Role


class Store:
    def __init__(self) -> None:
        self.entries = []
        self.hard_state = HardState()
        self.snapshot = None
        self.applied = []

    def persist(self, rd) -> None:
        if rd.snapshot is not None:
            self.snapshot = rd.snapshot
            self.entries = []
        if rd.truncate_to is not None:
            self.entries = [e for e in self.entries if e.end <= rd.truncate_to]
        self.entries.extend(rd.entries)
        if rd.hard_state is not None:
            self.hard_state = rd.hard_state


class Net:
    def __init__(self, n: int = 3, seed: int = 0, **cfg) -> None:
        self.ids = tuple(range(1, n + 1))
        self.cfg = dict(election_timeout_min=10, election_timeout_max=20, heartbeat_interval=3)
        self.cfg.update(cfg)
        self.seed = seed
        self.stores = {i: Store() for i in self.ids}
        self.cores = {i: self._make(i, 0) for i in self.ids}
        self.queue = []
        self.cut = set()
        self.down = set()
        self.now = 0
        self.readies = {i: [] for i in self.ids}
        self.flush()

    def _make(self, i, now):
        s = self.stores[i]
        return Consensus(ConsensusConfig(i, self.ids, **self.cfg), random.Random(self.seed * 100 + i + now),
                         hard_state=s.hard_state, snapshot=s.snapshot, entries=s.entries, now=now)

    def flush(self) -> None:
        """Run every live core's Ready loop: persist, apply, queue messages, advance."""
        for i in self.ids:
            if i in self.down:
                continue
            c = self.cores[i]
            while c.has_ready():
                rd = c.ready()
                self.readies[i].append(rd)
                self.stores[i].persist(rd)
                self.stores[i].applied.extend(rd.committed)
                self.queue.extend(rd.messages)
                c.advance(rd)

    def deliver(self, rounds: int = 50, only=None) -> None:
        for _ in range(rounds):
            if not self.queue:
                return
            q, self.queue = self.queue, []
            for m in q:
                if (m.src, m.dst) in self.cut or m.dst in self.down or m.src in self.down:
                    continue
                if only is not None and not only(m):
                    self.queue.append(m)
                    continue
                self.cores[m.dst].step(m)
            self.flush()

    def advance_time(self, until: int, step: int = 1) -> None:
        while self.now < until:
            self.now += step
            for i in self.ids:
                if i not in self.down:
                    self.cores[i].tick(self.now)
            self.flush()
            self.deliver()

    def isolate(self, i) -> None:
        for o in self.ids:
            if o != i:
                self.cut |= {(i, o), (o, i)}

    def heal(self) -> None:
        self.cut = set()

    def leader(self):
        leaders = [i for i in self.ids if i not in self.down and self.cores[i].role is Role.LEADER]
        return leaders[0] if len(leaders) == 1 else None

    def elect(self, limit: int = 500):
        start = self.now
        while self.leader() is None and self.now < start + limit:
            self.advance_time(self.now + 1)
        assert self.leader() is not None, "no leader elected"
        return self.leader()

    def propose(self, i, payload: bytes):
        e = self.cores[i].propose(EntryKind.MESSAGE, payload)
        self.flush()
        return e

    def crash(self, i) -> None:
        self.down.add(i)
        self.queue = [m for m in self.queue if m.dst != i and m.src != i]

    def restart(self, i) -> None:
        self.down.discard(i)
        self.cores[i] = self._make(i, self.now)
        self.stores[i].applied = []
        self.flush()

    def payloads(self, i):
        return [e.payload for e in self.stores[i].applied if e.kind == EntryKind.MESSAGE]


class NodeNet:
    """Whole nodes (consensus + log + service container) with instant, ordered
    delivery, a 1 ms clock and disks that are either in memory or real folders."""

    def __init__(self, service_factory, n=3, *, disks=None, seed=0, snapshot_interval=0, segment_size=4096):
        from tickline.cluster.disk import SimDisk
        from tickline.cluster.node import NodeConfig
        self.ids = tuple(range(1, n + 1))
        self.service_factory = service_factory
        self.disks = disks or {i: SimDisk() for i in self.ids}
        self.configs = {i: NodeConfig(ConsensusConfig(i, self.ids, election_timeout_min=10, election_timeout_max=20, heartbeat_interval=3),
                                      segment_size=segment_size, snapshot_interval=snapshot_interval) for i in self.ids}
        self.seed = seed
        self.queue = []
        self.egress = {}  # client id -> list of messages
        self.now = 0
        self.nodes = {}
        self.services = {}
        for i in self.ids:
            self.start(i)

    def start(self, i):
        from tickline.cluster.node import ClusterNode
        net = self

        class IO:
            def send(self, member, message):
                net.queue.append(("peer", member, message))

            def send_egress(self, client_id, message):
                net.egress.setdefault(client_id, []).append(message)

        svc = self.service_factory()
        self.services[i] = svc
        self.nodes[i] = ClusterNode(self.configs[i], self.disks[i], svc, IO(), random.Random(self.seed * 10 + i + self.now), now=self.now,
                                     record_applied=True)
        return self.nodes[i]

    def stop(self, i):
        self.nodes[i] = None
        self.queue = [q for q in self.queue if q[1] != i]

    def deliver(self):
        while self.queue:
            _, dst, m = self.queue.pop(0)
            if self.nodes.get(dst) is not None and self.nodes.get(m.src) is not None:
                self.nodes[dst].on_member_message(m)

    def run(self, ms):
        end = self.now + ms
        while self.now < end:
            self.now += 1
            for i in self.ids:
                if self.nodes[i] is not None:
                    self.nodes[i].tick(self.now)
            self.deliver()

    def leader(self):
        ls = [i for i in self.ids if self.nodes[i] is not None and self.nodes[i].core.role is Role.LEADER]
        return ls[0] if len(ls) == 1 else None

    def elect(self):
        for _ in range(500):
            if self.leader() is not None:
                return self.leader()
            self.run(1)
        raise AssertionError("no leader")

    def ingress(self, i, msg):
        self.nodes[i].on_ingress(msg)
        self.deliver()


class Died(Exception):
    """A member killed inside a write (raised by :class:`DyingDisk`)."""


class DyingDisk(SimDisk):
    """A SimDisk that raises :class:`Died` inside its ``fail_at``-th fsync from
    now (0: the next one), before anything of it reaches the platter; ``None``: never."""

    fail_at: int | None = None

    def fsync(self, name: str) -> None:
        if self.fail_at is not None:
            self.fail_at -= 1
            if self.fail_at < 0:
                self.fail_at = None
                raise Died(name)
        super().fsync(name)


class KeepUnsynced:
    """A stand-in for the ``rng`` of ``SimDisk.crash``: a power cut that keeps
    every unsynced byte appended since the last fsync (``everything``) or none,
    and never flips a bit.  A file whose unsynced change was not an append (a
    truncation, a rewrite) goes back to its durable bytes either way."""

    def __init__(self, everything: bool) -> None:
        self.everything = everything

    def randint(self, a: int, b: int) -> int:
        return b if self.everything else a

    def random(self) -> float:
        return 1.0
