"""A peer's message never makes a real member exit (issue 13, item 4): forged
datagrams sent to the members' consensus endpoints over Aeron UDP, through the
real fragment handler and NodeAgent, while a client keeps sending orders."""

import time

from test_cluster_processes import WAIT, Cluster, Load, aeron_dir, cluster, load, transport  # noqa: F401 (fixtures)
from tickline.cluster import wire
from tickline.cluster.aeron_io import CONSENSUS_STREAM, query_status, udp_channel
from tickline.cluster.messages import AppendResponse, RequestVote
from tickline.cluster.sequencer import Status


def forge(cluster, member, message):
    """Offer ``message`` to ``member``'s consensus stream from a publication of the test's own."""
    host, port = cluster.topo.members[member]
    pub = cluster.link.stack.aeron.add_exclusive_publication(udp_channel(host, port), CONSENSUS_STREAM)
    try:
        deadline = time.monotonic() + WAIT
        while pub.offer(wire.encode(message)) < 0:
            assert time.monotonic() < deadline, "the member's consensus endpoint never connected"
            cluster.link.poll_egress()
            time.sleep(0.001)
        for _ in range(50):  # let it leave before the publication goes
            cluster.link.poll_egress()
            time.sleep(0.002)
    finally:
        pub.close()


def test_forged_request_votes_to_self_and_an_append_response_past_the_log_kill_no_member(cluster, load):
    # Before: a RequestVote with source == destination made each member exit
    # (code 2, "message not for this member"), and an AppendResponse claiming a
    # position past the leader's log made the leader exit with SafetyViolation.
    load.pump(lambda: len(load.acks) >= 20, cluster, what="first acks")
    load.pump(lambda: cluster.leader() is not None, cluster, offer=False, what="a leader")
    leader = cluster.leader()
    st = query_status(cluster.link, leader)
    for m in cluster.topo.members:
        forge(cluster, m, RequestVote(m, m, st.term + 1, st.term, st.log_position + 10**6))
    follower = next(m for m in cluster.topo.members if m != leader)
    forge(cluster, leader, AppendResponse(follower, leader, st.term, True, st.log_position + 10**6))
    before = len(load.acks)
    # Load.pump fails if any member exits; every member must keep serving
    load.pump(lambda: len(load.acks) >= before + 30, cluster, what="acks after the forged messages")
    load.pump(lambda: not load.client.client.outstanding, cluster, offer=False, what="every request answered")
    assert all(p.poll() is None for p in cluster.procs.values())
    logs = cluster.logs()
    assert "message not for this member" in logs and "append response position is not an entry end in our log" in logs
    seqs = sorted(a.sequence for a in load.acks.values() if a.status is Status.ACCEPTED)
    assert seqs == list(range(1, len(seqs) + 1))
