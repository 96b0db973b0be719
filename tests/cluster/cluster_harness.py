"""A tiny in-memory cluster of bare consensus cores for scenario tests.

Messages are queued, not delivered, until the test says so; links can be cut
one way; each core has a fake store (the entries, hard state and snapshot it
would have persisted) so a test can restart it exactly as a crash would.
"""

from __future__ import annotations

import random

from tickline.cluster.config import ConsensusConfig
from tickline.cluster.consensus import Consensus
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
