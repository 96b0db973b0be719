"""A peer's message never makes a real member exit (issue 13, item 4): forged
datagrams sent to the members' consensus endpoints over Aeron UDP, through the
real fragment handler and NodeAgent, while a client keeps sending orders."""

import time

from test_cluster_processes import WAIT, Cluster, Load, aeron_dir, cluster, load, transport  # noqa: F401 (fixtures)
from tickline.cluster import wire
from tickline.cluster.aeron_io import CONSENSUS_STREAM, query_status, udp_channel
from tickline.cluster.auth import MemberAuth, load_member_key
from tickline.cluster.messages import AppendResponse, RequestVote
from tickline.sequencer.basic import Status


def forge(cluster, member, message):
    """Offer ``message`` to ``member``'s consensus stream from a publication of the test's own,
    sealed with the cluster key: an insider's forgery (a member with a bug, or a stolen key), so
    that it passes the HMAC check and reaches the member's I/O shell and node."""
    sealed = MemberAuth(load_member_key(cluster.secrets.key_file)).seal(wire.encode(message))
    host, port = cluster.topo.members[member]
    pub = cluster.link.stack.aeron.add_exclusive_publication(udp_channel(host, port), CONSENSUS_STREAM)
    try:
        deadline = time.monotonic() + WAIT
        while pub.offer(sealed) < 0:
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
    # a RequestVote to itself is refused by the I/O shell (after the tag check), the AppendResponse
    # past the log by the node: both counted and logged as the peer's fault, neither stops a member
    assert "reason=not_from_a_member_to_this_one" in logs
    assert "append response position is not an entry end in our log" in logs
    seqs = sorted(a.sequence for a in load.acks.values() if a.status is Status.ACCEPTED)
    assert seqs == list(range(1, len(seqs) + 1))


def log_end(directory):
    """Where the log in ``directory`` ends: the frames of its last segment, walked up to the zeros it was grown by."""
    import struct
    names = sorted(p for p in directory.glob("log-*.seg"))
    last = names[-1]
    data = last.read_bytes()
    at = 0
    while at + 28 <= len(data):
        length, _, term, _, _ = struct.unpack_from("<IIqqI", data, at)
        if term == 0 or at + 28 + length > len(data):
            break
        at += 28 + length
    return int(last.name[4:-4]) + at


def test_mid_log_damage_on_restart_loses_no_acknowledged_order(cluster, load):
    # The reproduction with real processes: C down while A and B commit
    # acknowledged orders; A and B killed; a byte flipped in A's first entry that
    # C lacks; A and C start (before: A cut its log there, A and C elected a
    # leader, and B's copies were overwritten when it came back).
    load.pump(lambda: len(load.acks) >= 20, cluster, what="first acks")
    load.pump(lambda: cluster.leader() is not None, cluster, offer=False, what="a leader")
    c = next(m for m in cluster.procs if m != cluster.leader())
    a, b = (m for m in cluster.procs if m != c)
    cluster.procs[c].kill()
    cluster.procs[c].wait()
    data = cluster.tmp / "data"
    c_end = log_end(data / f"member-{c}")
    before = len(load.acks)
    load.pump(lambda: len(load.acks) >= before + 150, cluster, what="acks while C is down")
    acked_before = dict(load.acks)
    for m in (a, b):
        cluster.procs[m].kill()
        cluster.procs[m].wait()
    a_dir = data / f"member-{a}"
    seg = max(p for p in a_dir.glob("log-*.seg") if int(p.name[4:-4]) <= c_end)
    with open(seg, "r+b") as f:
        f.seek(c_end - int(seg.name[4:-4]) + 28)  # the payload of A's first entry that C lacks
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0x40]))
    cluster.start(a)
    cluster.start(c)
    deadline = time.monotonic() + 5.0  # ten election timeouts: A must not vote, so C cannot win
    while time.monotonic() < deadline:
        assert cluster.leader() is None
        load.client.poll()
        time.sleep(0.05)
    out = (cluster.tmp / f"member-{a}.log").read_text()
    assert "log damaged below what this member may have acknowledged" in out
    assert f"file={seg.name}" in out and f"position={c_end}" in out
    assert list(a_dir.glob("damaged-*"))  # the damaged bytes are kept
    cluster.start(b)
    load.pump(lambda: cluster.leader() is not None, cluster, offer=False, what="a leader once B is back")
    assert cluster.leader() == b
    before = len(load.acks)
    load.pump(lambda: len(load.acks) >= before + 30, cluster, what="acks after the repair")
    load.pump(lambda: not load.client.client.outstanding, cluster, offer=False, what="every request answered")

    def caught_up():
        st = cluster.statuses()
        return len(st) == 3 and all(s is not None for s in st.values()) and len({s.applied_position for s in st.values()} |
                                                                                   {s.commit_position for s in st.values()}) == 1

    load.pump(caught_up, cluster, offer=False, what="A and C to catch up")
    for corr, ack in acked_before.items():
        assert load.acks[corr] == ack
    # no sequence number given twice: acknowledged orders were neither lost nor their numbers reassigned
    seqs = sorted(x.sequence for x in load.acks.values() if x.status is Status.ACCEPTED)
    assert seqs == list(range(1, len(seqs) + 1))
