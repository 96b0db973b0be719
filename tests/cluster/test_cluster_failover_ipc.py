"""Failover on one host over IPC with one shared media driver (issue 13, item 9):
a member killed with -9 leaves its subscriptions in the driver until the
driver's client liveness timeout; they must not hold back the streams into the
member restarted in its place.

The shared driver here keeps a dead client for 60 s (not the recommended 10 s),
so a stall caused by the dead member's subscriptions cannot end by itself within
the test's bound on "no progress"; a bound, not a timing assertion."""

import signal
import time

import pytest

from test_cluster_processes import Cluster, Load, aeron_dir  # noqa: F401  (fixture)

from tickline.cluster.aeron_io import CLIENT_TERM_LENGTH, SHARED_DRIVER_OPTIONS, query_status

LIVENESS_S = 60
NO_PROGRESS_S = 20  # well under LIVENESS_S, well over the < 1 s target


def pump_until(load, cluster, n_acks, what):
    """Offer orders until ``n_acks`` are answered; fail if none arrives for NO_PROGRESS_S.
    Returns the longest time without a new ack (printed, never asserted)."""
    last, n, gap = time.monotonic(), len(load.acks), 0.0
    while len(load.acks) < n_acks:
        load.pump(lambda: len(load.acks) != n or time.monotonic() - last > NO_PROGRESS_S, cluster, what=what, window=32)
        if len(load.acks) != n:
            now = time.monotonic()
            gap = max(gap, now - last)
            last, n = now, len(load.acks)
        elif time.monotonic() - last > NO_PROGRESS_S:
            raise AssertionError(f"no acks for {NO_PROGRESS_S} s while waiting for {what}: acks={len(load.acks)} "
                                 f"client_back_pressured={load.client.link.stats.back_pressured}\n{cluster.logs()}")
    return gap


def make_leader(load, cluster, target):
    """Step leaders down until ``target`` leads.  A transfer goes to the follower with the
    longest log, the lowest id among equals (Consensus.transfer_leadership), so with no orders
    in flight and every log level, member 1 wins it; a member whose inbound streams are held
    back never gets level, and the wait for that fails."""
    for _ in range(6):
        load.pump(lambda: cluster.leader() is not None, cluster, offer=False, what="a leader")
        leader = cluster.leader()
        if leader == target:
            return

        def level(leader=leader):
            lead = query_status(cluster.link, leader)
            rest = [query_status(cluster.link, m) for m in cluster.topo.members if m != leader]
            return lead is not None and all(r is not None and r.log_position == lead.log_position for r in rest)
        load.pump(level, cluster, offer=False, what=f"every log level with the leader's before a transfer (target {target})")
        st = query_status(cluster.link, leader, action=2, timeout=10)
        assert st is not None and not st.refused
        load.pump(lambda: cluster.leader() not in (None, leader), cluster, offer=False, what="the transfer")
    pytest.fail(f"member {target} never became leader")


def test_a_member_killed_and_restarted_at_once_does_not_stall_the_streams_into_it(tmp_path, aeron_dir):
    options = dict(SHARED_DRIVER_OPTIONS, **{"aeron.client.liveness.timeout": str(LIVENESS_S * 10**9),
                                             "aeron.publication.unblock.timeout": str((LIVENESS_S + 10) * 10**9)})
    cluster = Cluster(tmp_path, aeron_dir, "ipc", driver_options=options)
    load = Load(cluster)
    try:
        pump_until(load, cluster, 100, "first acks")
        # Member 1 leads, is killed and restarted at once (the dead process's subscriptions are
        # still in the driver), then is made the leader again, so the client's orders go into
        # the stream the dead process still subscribes to.
        make_leader(load, cluster, 1)
        old = 1
        cluster.procs[old].send_signal(signal.SIGKILL)
        cluster.procs[old].wait()
        cluster.start(old)
        make_leader(load, cluster, old)
        # More than a publication window (half a term) of orders through that stream:
        # with a tethered dead subscriber the client's publication blocks once the
        # window is full, until the driver drops the dead client.
        before = len(load.acks)
        per_order = 100  # bytes of ingress per order, at least
        gap = pump_until(load, cluster, before + 3 * (CLIENT_TERM_LENGTH // 2) // per_order, "acks through the restarted leader")
        assert cluster.leader() == old
        print(f"longest time without an ack through the restarted leader: {gap:.2f} s "
              f"(client back-pressured offers: {load.client.link.stats.back_pressured})")
    finally:
        load.client.close()
        cluster.stop()
