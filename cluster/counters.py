"""A cluster member's Aeron counters, shown by ``tickline stat --dir <the member's aeron_dir>``
(and ``--prometheus``), as Aeron Cluster's consensus module publishes its own.

Per member: commit, append (end of log) and applied positions, term, role (0 follower,
1 candidate or pre-candidate, 2 leader, as Aeron Cluster's role counter), elections seen
since start (term increments) and snapshots taken or installed since start.  The node
keeps these in plain ints; ``ClusterCounters.maybe_update``, called from the member's
duty cycle, copies them every 50 ms (one clock read per cycle, nothing per entry).
Closed in the member's ``on_close``, before its Aeron client.
"""

from __future__ import annotations

import logging
from typing import Any

from tickline.transport import counter_types as ct
from tickline.transport.counter_group import CounterGroup

from .messages import Role

__all__ = ["ClusterCounters", "ROLE_CODES"]

log = logging.getLogger("tickline.cluster")

ROLE_CODES = {Role.FOLLOWER: 0, Role.PRE_CANDIDATE: 1, Role.CANDIDATE: 1, Role.LEADER: 2}


class ClusterCounters:
    def __init__(self, node: Any, member: int, aeron: Any, interval: float = 0.05) -> None:
        self.node = node
        self.member = member
        self.group = CounterGroup(aeron, "cluster", interval)
        self._first_term = node.core.term
        self.update()  # registers them all now

    @classmethod
    def start(cls, node: Any, member: int, aeron: Any) -> "ClusterCounters | None":
        try:
            return cls(node, member, aeron)
        except Exception as e:  # noqa: BLE001 - the member runs on without its counters
            log.warning("cluster counters not published: member=%d fault=ours error=%s", member, e)
            return None

    def maybe_update(self) -> None:
        if self.group.due():
            self.update()

    def update(self) -> None:
        g, c, m = self.group, self.node.core, self.member
        g.set(ct.CLUSTER_COMMIT_POSITION, "commit position", c.commit_position, member=m)
        g.set(ct.CLUSTER_APPEND_POSITION, "append position", c.last_position(), member=m)
        g.set(ct.CLUSTER_APPLIED_POSITION, "applied position", c.applied_position, member=m)
        g.set(ct.CLUSTER_TERM, "term", c.term, member=m)
        g.set(ct.CLUSTER_ROLE, "role", ROLE_CODES.get(c.role, -1), member=m)
        g.set(ct.CLUSTER_ELECTIONS, "elections", c.term - self._first_term, member=m)
        g.set(ct.CLUSTER_SNAPSHOTS, "snapshots", self.node.snapshots.saved, member=m)

    def close(self) -> None:
        self.group.close()
