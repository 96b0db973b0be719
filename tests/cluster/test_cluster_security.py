"""Hostile input against real member processes on loopback (issue 13):
a forged Aeron SETUP frame, forged consensus traffic, unauthenticated admin
requests and clients, client-named egress channels.

No timing assertions: deadlines only bound how long a test waits."""

import socket
import struct
import time

from test_cluster_processes import Cluster, aeron_dir, cluster, transport  # noqa: F401  (fixtures)

from tickline.cluster import wire
from tickline.cluster.aeron_io import (
    CONSENSUS_STREAM, INGRESS_STREAM, AeronClusterClient, AeronStack, ClusterLink, query_status, udp_channel,
)
from tickline.cluster.messages import AppendRequest, Entry, RequestVote
from tickline.sequencer.basic import NewOrder, Side, StructOrderCodec

# Aeron's SETUP frame (aeron_udp_protocol.h): frame length, version, flags, type (0x05),
# then term offset, session id, stream id, initial term id, active term id, term length, mtu, ttl.
SETUP = struct.Struct("<iBBhiiiiiiii")


def forged_setup(stream_id, initial_term_id=1000, active_term_id=5):
    """40 bytes, valid in every field the driver checks, but the active term precedes the initial one."""
    frame = SETUP.pack(SETUP.size, 0, 0, 0x05, 0, 0x5EED, stream_id, initial_term_id, active_term_id, 64 * 1024, 1408, 0)
    assert len(frame) == 40
    return frame


def test_a_setup_frame_whose_active_term_precedes_the_initial_one_does_not_kill_a_member(cluster):
    deadline = time.monotonic() + 60
    while cluster.leader() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cluster.leader() is not None
    host, port = cluster.topo.members[1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(3):
            s.sendto(forged_setup(CONSENSUS_STREAM), (host, port))
            time.sleep(0.1)
    # Unpatched, the driver makes an image at a negative position and the member's
    # next poll of it faults (seen within 1-3 s here); watch it for a while.
    watch_until = time.monotonic() + 6
    while time.monotonic() < watch_until:
        assert cluster.procs[1].poll() is None, f"member 1 died: exit={cluster.procs[1].returncode}\n{cluster.logs()}"
        time.sleep(0.2)
    st = query_status(cluster.link, 1, timeout=10)
    assert st is not None and st.member == 1


def wait_for(what, cond, cluster, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        cluster.link.poll_egress()
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}\n{cluster.logs()}")


def leader_status(cluster):
    m = wait_for("a leader", cluster.leader, cluster)
    return query_status(cluster.link, m, timeout=10)


def offer_all(stack, pub, messages, seconds=20):
    deadline = time.monotonic() + seconds
    while not pub.is_connected and time.monotonic() < deadline:
        stack.do_work()
        time.sleep(0.01)
    assert pub.is_connected
    for data in messages:
        while pub.offer(data) < 0 and time.monotonic() < deadline:
            stack.do_work()
            time.sleep(0.001)
    for _ in range(50):
        stack.do_work()
        time.sleep(0.002)


def test_forged_consensus_messages_from_a_non_member_are_dropped_and_counted(cluster, aeron_dir):
    before = leader_status(cluster)
    leader = before.member
    follower = next(m for m in cluster.topo.members if m != leader)
    host, port = cluster.topo.members[leader]
    # A higher term from a "follower" would make the leader step down, and entries
    # would overwrite its log; the forger has no key, so its messages carry no tag
    # (or a wrong one).
    forged = AppendRequest(follower, leader, before.term + 5, 0, 0, (Entry(0, before.term + 5, 0, 3, b"forged"),), 0)
    vote = RequestVote(follower, leader, before.term + 7, before.term + 7, 10**9, False, True)
    data = [wire.encode(forged), wire.encode(forged) + b"\0" * 32, wire.encode(vote), wire.encode(vote) + b"\x01" * 32]
    stack = AeronStack("forger", aeron_dir)
    try:
        consensus = stack.aeron.add_exclusive_publication(udp_channel(host, port), CONSENSUS_STREAM)
        ingress = stack.aeron.add_exclusive_publication(udp_channel(host, port), INGRESS_STREAM)
        offer_all(stack, consensus, data)
        offer_all(stack, ingress, data[::2])  # consensus messages on the client stream
    finally:
        stack.close()
    st = wait_for("the forged messages counted", lambda: (s := query_status(cluster.link, leader)) and s.unauthenticated >= 6 and s,
                  cluster)
    assert st.role == "leader" and st.term == before.term  # not stepped down, no new term
    assert cluster.procs[leader].poll() is None
    logs = cluster.logs()
    assert "consensus message dropped: reason=bad_or_missing_tag" in logs and "fault=peer" in logs


def test_a_status_request_without_the_admin_credential_changes_nothing(cluster, aeron_dir):
    before = leader_status(cluster)
    with ClusterLink(cluster.topo.members, aeron_base=aeron_dir, credentials=b"admin:wrong") as outsider:
        refused = query_status(outsider, before.member, action=2, timeout=10)
        assert refused is not None and refused.refused and refused.role == "leader"
        snap = query_status(outsider, before.member, action=1, timeout=10)
        assert snap is not None and snap.refused and snap.base_position == before.base_position
    with ClusterLink(cluster.topo.members, aeron_base=aeron_dir) as anonymous:
        st = query_status(anonymous, before.member, action=2, timeout=10)
        assert st is not None and st.refused
    after = query_status(cluster.link, before.member, timeout=10)
    assert after.role == "leader" and after.term == before.term
    # the admin credential does step it down
    st = query_status(cluster.link, before.member, action=2, timeout=10)
    assert st is not None and not st.refused
    wait_for("another leader", lambda: cluster.leader() not in (None, before.member), cluster)


def pump_client(client, cluster, until, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        answered = client.poll()
        if until(answered):
            return True
        cluster.link.poll_egress()
        time.sleep(0.002)
    return False


def test_a_client_with_bad_credentials_is_rejected_with_an_answer_and_a_good_one_is_served(cluster, aeron_dir):
    leader_status(cluster)
    codec = StructOrderCodec()
    order = codec.encode_order(NewOrder(7, Side.BUY, 1, 100, 1))
    for bad in (b"client:not-the-secret", b"nobody:x", b"", b"client"):
        client = AeronClusterClient(cluster.topo.members, aeron_base=aeron_dir, credentials=bad, retry_timeout=250)
        try:
            client.offer(order)
            assert pump_client(client, cluster, lambda _: client.rejected is not None), f"no answer for credentials={bad!r}"
            assert "unknown principal or wrong secret" in client.rejected or "not principal:secret" in client.rejected
            assert not client.client.connected
        finally:
            client.close()
    good = AeronClusterClient(cluster.topo.members, aeron_base=aeron_dir, credentials=cluster.secrets.client, retry_timeout=250)
    try:
        good.offer(order)
        got = []
        assert pump_client(good, cluster, lambda answered: got.extend(answered) or got)
        assert codec.decode_ack(got[0][1]) is not None and good.rejected is None
    finally:
        good.close()
    # an admin may connect as a client too; a principal without the client role may not (see test_cluster_auth)


def driver_log_bytes(cluster):
    """The largest log buffer file in the members' media driver directories."""
    import glob
    import os
    sizes = [os.path.getsize(f) for f in glob.glob(os.path.join(cluster.topo.aeron_dir, "tickline-cluster-m*", "publications", "*"))]
    return max(sizes, default=0)


def test_client_egress_channels_outside_the_topology_are_refused(tmp_path, aeron_dir):
    from tickline.cluster.protocol import EventCode, SessionEvent
    from tickline.transport import free_ports
    p_link, p_ok, p_unlisted = free_ports(3)
    c = Cluster(tmp_path, aeron_dir, extra=f'client_egress = ["127.0.0.1:{p_link}", "127.0.0.1:{p_ok}"]\n',
                link_channel=udp_channel("127.0.0.1", p_link))
    try:
        leader = leader_status(c).member
        # an allowed endpoint asking for a 1 GiB term: refused, and told why on that endpoint
        with ClusterLink(c.topo.members, aeron_base=aeron_dir, egress_channel=f"aeron:udp?endpoint=127.0.0.1:{p_ok}|term-length=1g") as big:
            assert query_status(big, leader, timeout=3) is None  # no egress publication was made for it

            def told():
                big.poll_egress()
                return next((m for m in big.inbox if isinstance(m, SessionEvent) and m.session_id == -1), None)
            ev = wait_for("the refusal", told, c)
            assert ev.code is EventCode.ERROR
            assert "egress channel refused: term length above client_term_length_max: term-length=1g max=1048576" in ev.detail
        assert driver_log_bytes(c) < 64 * 1024 * 1024  # nothing near 3 x 1 GiB was allocated
        # an endpoint the topology does not list: nothing is published to it
        with ClusterLink(c.topo.members, aeron_base=aeron_dir, egress_channel=udp_channel("127.0.0.1", p_unlisted)) as stray:
            assert query_status(stray, leader, timeout=3) is None
            stray.poll_egress()
            assert stray.inbox == []
        # a channel that carries a log line of its own (Aeron takes a newline in an alias): refused,
        # and logged as one line, the channel quoted with the newline escaped, nothing forged
        forged = "2026-01-01T00:00:00.000000Z INFO tickline.cluster forged member=9"
        with ClusterLink(c.topo.members, aeron_base=aeron_dir,
                         egress_channel=udp_channel("127.0.0.1", p_unlisted) + f"|alias=x\n{forged}") as hostile:
            assert query_status(hostile, leader, timeout=3) is None
        st = query_status(c.link, leader, timeout=10)
        assert st.bad_channels >= 3 and st.role == "leader"
        assert "egress channel refused: client=" in c.logs() and "endpoint not allowed by client_egress" in c.logs()
        assert f"alias=x\\n{forged}" in c.logs(), c.logs()
        assert not [ln for ln in c.logs().splitlines() if ln.startswith(forged)], c.logs()
    finally:
        c.stop()
