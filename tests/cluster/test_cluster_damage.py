"""Hostile faults on whole nodes (consensus + log + service container on
simulated disks): mid-log damage found at a restart, a follower whose log
shrinks under a live leader, a peer's message that would break an invariant,
a client with an unknown session (issue 13, items 1, 2, 4 and 6)."""

from cluster_harness import NodeNet
from test_cluster_service import Recorder, open_session, session_net

from tickline.cluster import log as cluster_log
from tickline.cluster.messages import (ENTRY_HEADER_LENGTH, AppendRequest, AppendResponse, Entry, EntryKind, InstallSnapshot, RequestVote,
                                       Role, VoteResponse)
from tickline.cluster.protocol import EgressMessage, EventCode, IngressMessage, SessionClose, SessionConnect, SessionEvent


def segment_holding(disk, position):
    """(name, base) of the log segment of ``disk`` that holds ``position``."""
    bases = sorted(int(n[4:-4]) for n in disk.list() if n.startswith("log-") and n.endswith(".seg"))
    base = max(b for b in bases if b <= position)
    return f"log-{base:020d}.seg", base


def flip(disk, name, offset):
    """Damage one byte on the platter (what is durable and what is read)."""
    disk.files[name][offset] ^= 0x40
    durable = bytearray(disk.durable[name])
    durable[offset] ^= 0x40
    disk.durable[name] = bytes(durable)


def send(net, leader, first, count):
    for c in range(first, first + count):
        net.ingress(leader, IngressMessage(7, 70, c, c, f"order-{c}".encode()))
        net.run(2)


def messages(net, i):
    return [c for c in net.services[i].calls if c[0] == "message"]


def leader_and_follower(orders=3, segment_size=4096):
    """Three nodes, a session open and ``orders`` orders committed: (net, leader, a follower)."""
    net, leader = session_net(segment_size=segment_size)
    send(net, leader, 1, orders)
    return net, leader, next(i for i in net.ids if i != leader)


def test_mid_log_damage_of_acknowledged_entries_is_not_cut_away_as_a_torn_tail():
    # The reproduction: C down while A and B commit acknowledged orders;
    # A and B killed; a byte flipped in A's first entry that C lacks; A and C
    # start.  Before: A cut its log there as a torn tail, A and C elected a
    # leader of the short log, and B's copies were overwritten when it returned.
    net = NodeNet(Recorder, segment_size=1024)
    a, b, c = 1, 2, 3
    net.stop(c)
    leader = net.elect()
    open_session(net, leader)
    send(net, leader, 1, 5)
    net.start(c)
    net.run(30)  # C catches up on these
    net.stop(c)
    last_segment, last_base = segment_holding(net.disks[c], 10**9)
    c_end = last_base + net.disks[c].size(last_segment)
    send(net, leader, 6, 40)  # acknowledged by A and B, never seen by C
    acked = [m for m in net.egress[7] if isinstance(m, EgressMessage)]
    assert len(acked) == 45
    a_end = net.nodes[a].core.last_position()
    assert a_end > c_end
    net.stop(a)
    net.stop(b)
    name, base = segment_holding(net.disks[a], c_end)
    flip(net.disks[a], name, c_end - base + ENTRY_HEADER_LENGTH)  # in the payload of A's first entry that C lacks

    node_a = net.start(a)
    r = node_a.recovery
    assert r.damaged and r.damaged_file == name and r.truncated_at == c_end and r.reason == "crc_mismatch"
    assert r.catch_up_to == a_end and r.valid_after == a_end
    assert f"file={name}" in r.describe() and f"position={c_end}" in r.describe() and "fault=storage" in r.describe()
    assert node_a.core.catch_up_to == a_end
    kept = b"".join(net.disks[a].read(k) for k in r.kept)  # the damaged bytes are kept for the operator, not destroyed
    assert len(kept) == a_end - c_end and b"order-45" in kept
    net.start(c)
    net.run(400)
    # A refuses to vote and never campaigns: C alone cannot win, nothing is overwritten
    assert net.leader() is None
    assert net.nodes[a].core.votes_withheld > 0
    assert cluster_log.load_acked(net.disks[a])[0] == a_end  # a restart now would still know what was lost

    net.start(b)
    net.elect()
    assert net.leader() == b  # the only member holding every acknowledged order
    net.run(200)
    for i in (a, b, c):
        assert net.nodes[i].core.last_position() == net.nodes[b].core.last_position()
        assert messages(net, i)[-40:] == [("message", 70, n, f"order-{n}") for n in range(6, 46)]
    assert net.nodes[a].core.catch_up_to is None
    assert cluster_log.load_acked(net.disks[a])[0] == net.nodes[a].core.last_position()  # caught up: the record came down


def test_a_torn_tail_written_after_the_last_sync_is_cut_and_the_member_votes():
    net, leader, follower = leader_and_follower()
    end = net.nodes[follower].core.last_position()
    net.stop(follower)
    name, base = segment_holding(net.disks[follower], end)
    net.disks[follower].append(name, b"\x07" * 40)  # a write the crash tore: never synced, never acknowledged
    node = net.start(follower)
    assert node.recovery.truncated_at == end and not node.recovery.damaged
    assert node.core.catch_up_to is None
    assert cluster_log.load_acked(net.disks[follower]) == (end, end)


def test_a_leader_repairs_a_follower_whose_log_shrank_below_what_it_had_matched():
    # Before: on a rejection the leader set next = max(match, hint) and resent
    # from its stale match position for ever; the follower never caught up.
    net, leader, follower = leader_and_follower(30, segment_size=1024)
    matched = net.nodes[leader].core._match[follower]
    assert matched == net.nodes[leader].core.last_position()
    net.stop(follower)
    disk = net.disks[follower]
    middle = net.nodes[leader].core.entries_between(0, matched)[20].position
    name, base = segment_holding(disk, middle)
    flip(disk, name, middle - base + 5)
    net.start(follower)  # restarts with a shorter log while the leader lives on
    assert net.nodes[follower].core.last_position() == middle < matched
    net.run(100)
    assert net.leader() == leader  # no election: the leader repaired it
    assert net.nodes[leader].core.followers_repaired >= 1
    assert net.nodes[follower].core.last_position() == net.nodes[leader].core.last_position()
    assert net.nodes[follower].core.catch_up_to is None
    send(net, leader, 31, 2)
    assert messages(net, follower)[-32:] == messages(net, leader)[-32:]


def test_a_segment_lost_below_the_acknowledged_position_is_damage_too():
    net, leader, follower = leader_and_follower(30, segment_size=512)
    end = net.nodes[follower].core.last_position()
    net.stop(follower)
    disk = net.disks[follower]
    last, _ = segment_holding(disk, end)
    disk.delete(last)  # the newest segment vanished whole: no bad frame to see, only the record knows
    node = net.start(follower)
    assert node.recovery.damaged and node.core.catch_up_to == end
    net.run(100)
    assert net.nodes[follower].core.catch_up_to is None and net.nodes[follower].core.last_position() >= end


# ---------------------------------------------------------------- a peer's message never stops a member


def still_serving(net, leader, follower):
    """The same leader, and a new order reaches the follower's service."""
    net.run(50)
    assert net.leader() == leader
    send(net, leader, 4, 1)
    net.run(10)
    assert messages(net, follower)[-1] == ("message", 70, 4, "order-4")


def test_a_request_vote_from_this_member_to_itself_is_counted_and_dropped():
    net, leader, follower = leader_and_follower()
    for i in net.ids:  # three such messages used to take every member down
        core = net.nodes[i].core
        net.nodes[i].on_member_message(RequestVote(i, i, core.term + 1, core.last_term(), core.last_position()))
        assert net.nodes[i].peer_faults == 1 and "message not for this member" in net.nodes[i].last_peer_fault
        assert "fault=peer" in net.nodes[i].last_peer_fault
    still_serving(net, leader, follower)


def test_messages_not_for_this_member_are_dropped():
    net, leader, follower = leader_and_follower()
    node = net.nodes[follower]
    term = node.core.term
    node.on_member_message(AppendRequest(leader, 99, term, 0, 0, (), 0))  # another destination
    node.on_member_message(AppendRequest(42, follower, term + 5, 0, 0, (), 0))  # not a member
    node.on_member_message(VoteResponse(follower, follower, term, True))
    assert node.peer_faults == 3 and node.core.term == term


def test_a_forged_append_response_past_the_leaders_log_does_not_kill_the_leader():
    # Before: match/next went past the log and the next heartbeat raised
    # SafetyViolation(fault=ours), and the leader exited.
    net, leader, follower = leader_and_follower()
    node = net.nodes[leader]
    last = node.core.last_position()
    node.on_member_message(AppendResponse(follower, leader, node.core.term, True, last + 10_000))
    node.on_member_message(AppendResponse(follower, leader, node.core.term, True, last - 1))  # not an entry end
    node.on_member_message(AppendResponse(follower, leader, node.core.term, False, last + 10, last))  # a hint past our log
    assert node.peer_faults == 3 and "rejection hint outside our log" in node.last_peer_fault
    still_serving(net, leader, follower)  # heartbeats went out from the true positions
    assert node.core._match[follower] <= node.core.last_position()


def test_a_leader_message_in_the_leaders_own_term_and_entries_out_of_order_are_refused():
    net, leader, follower = leader_and_follower()
    node = net.nodes[leader]
    term = node.core.term
    last = node.core.last_position()
    node.on_member_message(AppendRequest(follower, leader, term, last, term, (), last))  # a second leader in our term
    node.on_member_message(InstallSnapshot(follower, leader, term, 10, 1, 0, 0, 0, b""))
    assert node.peer_faults == 2 and node.core.role is Role.LEADER
    f = net.nodes[follower]
    e = Entry(f.core.last_position() + 7, term, 0, EntryKind.NOOP)  # does not start where prev ends
    f.on_member_message(AppendRequest(leader, follower, term, f.core.last_position(), f.core.last_term(), (e,), 0))
    e2 = Entry(f.core.last_position(), term + 3, 0, EntryKind.NOOP)  # a term above the request's
    f.on_member_message(AppendRequest(leader, follower, term, f.core.last_position(), f.core.last_term(), (e2,), 0))
    assert f.peer_faults == 2 and "out of order" in f.last_peer_fault
    net.run(30)
    assert net.leader() == leader


# ---------------------------------------------------------------- unknown sessions


def test_an_unknown_session_is_answered_by_the_leader_and_never_appended():
    # Before: each send was appended and committed, and the service's error went to client -1.
    net = NodeNet(Recorder)
    leader = net.elect()
    net.run(10)
    node = net.nodes[leader]
    end = node.core.last_position()
    for c in range(1000):
        node.on_ingress(IngressMessage(7, 99, c, 0, b"order"))
    net.run(10)
    assert node.core.last_position() == end
    assert node.unknown_sessions == 1000
    errors = [m for m in net.egress[7] if isinstance(m, SessionEvent)]
    assert len(errors) == 1000
    assert errors[0] == SessionEvent(99, 0, EventCode.ERROR, leader=leader, detail="unknown_session")
    assert all(not messages(net, i) for i in net.ids)
    for sid in range(100):  # nor is closing one: there is nothing to close
        node.on_ingress(SessionClose(7, 1000 + sid))
    assert node.core.last_position() == end and node.unknown_sessions == 1100
    assert net.egress[7][-1] == SessionEvent(1099, 0, EventCode.ERROR, leader=leader, detail="unknown_session")


def test_a_session_opened_but_not_yet_applied_on_this_leader_is_not_refused():
    net = NodeNet(Recorder)
    leader = net.elect()
    net.run(10)
    node = net.nodes[leader]
    node.on_ingress(SessionConnect(7, 71), defer=True)  # appended, not committed
    node.on_ingress(IngressMessage(7, 71, 1, 0, b"early"), defer=True)
    assert node.unknown_sessions == 0
    net.deliver()
    net.run(10)
    assert ("message", 71, 1, "early") in messages(net, leader)


def test_a_client_told_its_session_is_unknown_opens_it_again_and_resends():
    from tickline.cluster.client import ClusterClient
    client = ClusterClient(7, 70, (1, 2, 3), retry_timeout=50)
    client.on_egress(SessionEvent(70, 0, EventCode.OK, leader=1), 0)
    corr = client.offer(b"x", 0)
    assert [type(m).__name__ for _, m in client.poll(0)] == ["IngressMessage"]
    client.on_egress(SessionEvent(70, corr, EventCode.ERROR, leader=1, detail="unknown_session"), 1)
    out = client.poll(1)
    assert not client.connected and [type(m).__name__ for _, m in out] == ["SessionConnect"]
    client.on_egress(SessionEvent(70, 0, EventCode.OK, leader=1), 2)
    assert [m.correlation_id for _, m in client.poll(2)] == [corr]



def test_a_term_the_member_could_not_count_past_is_refused():
    # Found by the fuzz test: a member that adopted term 2**63-1 from a peer
    # failed to encode its own next RequestVote (term + 1) and stopped.
    net, leader, follower = leader_and_follower()
    node = net.nodes[follower]
    term = node.core.term
    node.on_member_message(RequestVote(leader, follower, 2**63 - 1, 0, 0))
    node.on_member_message(AppendResponse(leader, follower, term, True, 2**62))
    assert node.peer_faults == 2 and "term or position out of range" in node.last_peer_fault
    assert node.core.term == term
    still_serving(net, leader, follower)

