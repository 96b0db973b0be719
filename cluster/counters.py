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

from typing import Any

from tickline.transport import counter_types as ct
from tickline.transport.counter_group import ComponentCounters

from .messages import Role

__all__ = ["ClusterCounters", "ROLE_CODES"]

ROLE_CODES = {Role.FOLLOWER: 0, Role.PRE_CANDIDATE: 1, Role.CANDIDATE: 1, Role.LEADER: 2}


class ClusterCounters(ComponentCounters):
    """``owner``: the member's ``NodeAgent`` (its ``node`` and ``member``)."""

    component = "cluster"
    interval = 0.05

    def __init__(self, agent: Any, aeron: Any) -> None:
        self._first_term = agent.node.core.term
        super().__init__(agent, aeron)

    def update(self) -> None:
        g, node, m = self.group, self.owner.node, self.owner.member
        c = node.core
        g.set(ct.CLUSTER_COMMIT_POSITION, "commit position", c.commit_position, member=m)
        g.set(ct.CLUSTER_APPEND_POSITION, "append position", c.last_position(), member=m)
        g.set(ct.CLUSTER_APPLIED_POSITION, "applied position", c.applied_position, member=m)
        g.set(ct.CLUSTER_TERM, "term", c.term, member=m)
        g.set(ct.CLUSTER_ROLE, "role", ROLE_CODES.get(c.role, -1), member=m)
        g.set(ct.CLUSTER_ELECTIONS, "elections", c.term - self._first_term, member=m)
        g.set(ct.CLUSTER_SNAPSHOTS, "snapshots", node.snapshots.saved, member=m)
