"""Scenario tests of the consensus core on a hand-driven in-memory network."""

import random

import pytest

from cluster_harness import Net
from tickline.cluster.config import ConsensusConfig
from tickline.cluster.consensus import TRANSITIONS, Consensus, Event
from tickline.cluster.errors import LocalProtocolError, NotLeaderError, RemoteProtocolError
from tickline.cluster.messages import (
    AppendRequest, Entry, EntryKind, HardState, InstallSnapshot, InstallSnapshotResponse, RequestVote, Role, Snapshot,
    VoteResponse,
)


def test_three_members_elect_one_leader_and_commit_a_proposal_everywhere():
    net = Net(3)
    leader = net.elect()
    net.propose(leader, b"order-1")
    net.advance_time(net.now + 10)
    for i in net.ids:
        assert net.payloads(i) == [b"order-1"]
        assert net.cores[i].commit_position == net.cores[leader].last_position()
    terms = {net.cores[i].term for i in net.ids}
    assert len(terms) == 1


def test_positions_are_byte_offsets_of_header_plus_payload():
    net = Net(3)
    leader = net.elect()
    start = net.cores[leader].last_position()
    e = net.propose(leader, b"x" * 10)
    assert e.position == start
    assert e.end == start + 28 + 10
    assert net.cores[leader].last_position() == e.end


def test_single_member_cluster_elects_itself_and_commits_on_its_own_persistence():
    net = Net(1)
    leader = net.elect()
    assert leader == 1
    net.propose(1, b"a")
    assert net.payloads(1) == [b"a"]


def test_leader_proposal_is_not_committed_before_it_is_persisted():
    c = Consensus(ConsensusConfig(1, (1,), election_timeout_min=10, election_timeout_max=20, heartbeat_interval=3), random.Random(1))
    c.tick(25)
    rd = c.ready()
    assert c.role is Role.LEADER
    # the NOOP is in this Ready as an entry to persist, not yet as committed
    assert [e.kind for e in rd.entries] == [EntryKind.NOOP]
    assert rd.committed == ()
    c.advance(rd)
    rd2 = c.ready()
    assert [e.kind for e in rd2.committed] == [EntryKind.NOOP]


def test_a_vote_is_persisted_in_the_same_ready_that_sends_it():
    net = Net(3)
    net.advance_time(200)  # elect
    for i in net.ids:
        for rd in net.readies[i]:
            for m in rd.messages:
                if isinstance(m, VoteResponse) and m.granted and not m.pre_vote:
                    assert rd.hard_state is not None and rd.hard_state.voted_for == m.dst and rd.hard_state.term == m.term


def test_ready_twice_without_advance_is_the_callers_error():
    c = Consensus(ConsensusConfig(1, (1, 2, 3)), random.Random(0))
    c.ready()
    with pytest.raises(LocalProtocolError) as exc:
        c.ready()
    assert "ready() called again before advance()" in str(exc.value)
    assert "fault=user" in str(exc.value)


def test_proposal_on_a_follower_names_the_leader():
    net = Net(3)
    leader = net.elect()
    net.advance_time(net.now + 5)
    follower = next(i for i in net.ids if i != leader)
    with pytest.raises(NotLeaderError) as exc:
        net.cores[follower].propose(EntryKind.MESSAGE, b"x")
    assert exc.value.leader == leader
    assert f"leader={leader}" in str(exc.value)


def test_message_for_another_member_is_the_peers_fault():
    c = Consensus(ConsensusConfig(1, (1, 2, 3)), random.Random(0))
    with pytest.raises(RemoteProtocolError) as exc:
        c.step(RequestVote(2, 3, 1, 0, 0))
    assert "src=2 dst=3" in str(exc.value) and "fault=peer" in str(exc.value)


def test_time_going_backwards_is_rejected():
    c = Consensus(ConsensusConfig(1, (1, 2, 3)), random.Random(0))
    c.tick(10)
    with pytest.raises(LocalProtocolError, match="now=5 previous=10"):
        c.tick(5)


def test_pre_vote_keeps_a_partitioned_member_from_disrupting_a_healthy_leader():
    net = Net(3)
    leader = net.elect()
    term = net.cores[leader].term
    loner = next(i for i in net.ids if i != leader)
    net.isolate(loner)
    net.advance_time(net.now + 200)  # the loner times out again and again
    assert net.cores[loner].term == term  # pre-votes never reached a quorum: no term inflation
    assert net.cores[loner].role is Role.PRE_CANDIDATE
    net.heal()
    net.advance_time(net.now + 50)
    assert net.leader() == leader
    assert all(net.cores[i].term == term for i in net.ids)
    assert net.cores[loner].role is Role.FOLLOWER


def test_followers_refuse_pre_votes_while_they_hear_from_a_leader():
    net = Net(3)
    leader = net.elect()
    net.advance_time(net.now + 5)
    follower = next(i for i in net.ids if i != leader)
    other = next(i for i in net.ids if i not in (leader, follower))
    c = net.cores[follower]
    c.step(RequestVote(other, follower, c.term + 1, 99, 10**6, pre_vote=True))
    net.flush()
    assert not any(isinstance(m, VoteResponse) and m.granted for m in net.queue if m.src == follower)


def test_check_quorum_makes_an_isolated_leader_step_down():
    net = Net(3)
    leader = net.elect()
    term = net.cores[leader].term
    net.isolate(leader)
    net.advance_time(net.now + 40)
    assert net.cores[leader].role is not Role.LEADER  # stepped down, then may pre-vote in vain
    assert net.cores[leader].term == term
    assert any(rd.role_change and rd.role_change.role is Role.FOLLOWER and rd.role_change.term == term
               for rd in net.readies[leader])
    others = [i for i in net.ids if i != leader]
    assert any(net.cores[i].role is Role.LEADER for i in others)


def test_follower_truncates_a_divergent_uncommitted_tail():
    net = Net(3)
    old = net.elect()
    net.advance_time(net.now + 5)
    net.isolate(old)
    # the isolated leader appends entries nobody else will ever see
    net.propose(old, b"lost-1")
    net.propose(old, b"lost-2")
    net.advance_time(net.now + 60)
    new = net.leader() if net.leader() != old else None
    new = next(i for i in net.ids if i != old and net.cores[i].role is Role.LEADER)
    net.propose(new, b"kept")
    net.heal()
    net.advance_time(net.now + 60)
    for i in net.ids:
        assert b"lost-1" not in [e.payload for e in net.cores[i].entries_between(0, net.cores[i].last_position())]
        assert net.payloads(i) == [b"kept"]
    # the old leader's stored log was cut back too, not just its memory
    assert [e.payload for e in net.stores[old].entries if e.kind == EntryKind.MESSAGE] == [b"kept"]
    assert any(rd.truncate_to is not None for rd in net.readies[old])


def lagger_missing(proposals, **cfg):
    """A 3-member net (``cfg`` goes to it) whose leader took ``proposals`` entries (m0, m1, ...,
    one a tick) while a follower, the lagger, was down: (net, leader, lagger)."""
    net = Net(3, **cfg)
    leader = net.elect()
    lagger = next(i for i in net.ids if i != leader)
    net.crash(lagger)
    for k in range(proposals):
        net.propose(leader, b"m%d" % k)
        net.advance_time(net.now + 1)
    return net, leader, lagger


def test_lagging_follower_catches_up_after_a_long_absence():
    net, leader, lagger = lagger_missing(30)
    net.restart(lagger)
    net.advance_time(net.now + 60)
    assert net.payloads(lagger) == [b"m%d" % k for k in range(30)]


def test_restarted_follower_behind_a_compacted_log_gets_the_snapshot():
    net, leader, lagger = lagger_missing(10)
    c = net.cores[leader]
    snap = Snapshot(c.applied_position, c.term_at(c.applied_position), b"state-after-10")
    c.compact(snap)
    assert c.base_position == snap.position
    net.restart(lagger)
    net.advance_time(net.now + 60)
    assert net.stores[lagger].snapshot == snap
    assert net.cores[lagger].applied_position == snap.position
    net.propose(net.leader(), b"after")
    net.advance_time(net.now + 20)
    assert net.payloads(lagger) == [b"after"]


def test_only_current_term_entries_commit_by_counting_replicas():
    """Raft figure 8: an old-term entry on a majority is not committed by counting."""
    cfg = ConsensusConfig(1, (1, 2, 3), election_timeout_min=10, election_timeout_max=20, heartbeat_interval=3)
    old = Entry(0, 2, 0, EntryKind.MESSAGE, b"term-2")
    c = Consensus(cfg, random.Random(0), hard_state=HardState(term=3, voted_for=1), entries=[old])
    # become leader of term 4 by hand: pre-vote then vote
    c.tick(100)
    c.step(VoteResponse(2, 1, 4, True, pre_vote=True))
    c.step(VoteResponse(2, 1, 4, True))
    assert c.role is Role.LEADER and c.term == 4
    rd = c.ready()
    c.advance(rd)
    noop = next(e for e in rd.entries if e.kind == EntryKind.NOOP)
    # follower 2 acknowledges only the old-term entry: a quorum holds it, but it is from term 2
    from tickline.cluster.messages import AppendResponse
    c.step(AppendResponse(2, 1, 4, True, old.end, 0))
    assert c.commit_position == 0
    c.step(AppendResponse(2, 1, 4, True, noop.end, old.end))
    assert c.commit_position == noop.end  # the current-term entry commits, and the old one with it


def test_candidate_with_a_shorter_log_does_not_get_the_vote():
    cfg = ConsensusConfig(1, (1, 2, 3))
    c = Consensus(cfg, random.Random(0), hard_state=HardState(term=2), entries=[Entry(0, 2, 0, EntryKind.NOOP)])
    c.step(RequestVote(2, 1, 3, last_term=1, last_position=500))
    rd = c.ready()
    votes = [m for m in rd.messages if isinstance(m, VoteResponse)]
    assert votes and not votes[0].granted
    assert c.voted_for is None


def test_leadership_transfer_hands_over_without_waiting_for_a_timeout():
    net = Net(3)
    leader = net.elect()
    net.propose(leader, b"x")
    net.advance_time(net.now + 5)
    target = net.cores[leader].transfer_leadership()
    net.flush()
    with pytest.raises(NotLeaderError, match="transfer"):
        net.cores[leader].propose(EntryKind.MESSAGE, b"y")
    net.deliver()
    assert net.cores[target].role is Role.LEADER
    assert net.cores[leader].role is Role.FOLLOWER
    # fewer ticks than the minimum election timeout were needed
    assert net.cores[target].term == net.cores[leader].term


def test_stale_leader_learns_the_new_term_from_a_rejection():
    net = Net(3)
    old = net.elect()
    net.isolate(old)
    net.advance_time(net.now + 60)
    new = next(i for i in net.ids if i != old and net.cores[i].role is Role.LEADER)
    net.heal()
    net.advance_time(net.now + 30)
    assert net.leader() == new
    assert net.cores[old].term == net.cores[new].term


def test_restart_recovers_term_vote_and_log_from_the_store():
    net = Net(3)
    leader = net.elect()
    net.propose(leader, b"a")
    net.advance_time(net.now + 10)
    f = next(i for i in net.ids if i != leader)
    before = (net.cores[f].term, net.cores[f].last_position())
    net.crash(f)
    net.restart(f)
    assert (net.cores[f].term, net.cores[f].last_position()) == before
    # commit position was persisted too, so the restart re-applies what was committed
    assert net.payloads(f) == [b"a"]


def test_every_transition_in_the_table_is_reachable_from_the_events():
    roles = {r for (r, _) in TRANSITIONS} | set(TRANSITIONS.values())
    assert roles == set(Role)
    assert {e for (_, e) in TRANSITIONS} == set(Event)
    # a leader never becomes a candidate directly, and only candidates win votes
    assert (Role.LEADER, Event.ELECTION_TIMEOUT) not in TRANSITIONS
    assert [k for k, v in TRANSITIONS.items() if v is Role.LEADER] == [(Role.CANDIDATE, Event.VOTE_WON)]


def test_append_below_commit_skips_entries_already_committed():
    net = Net(3)
    leader = net.elect()
    net.propose(leader, b"a")
    net.advance_time(net.now + 10)
    f = next(i for i in net.ids if i != leader)
    c = net.cores[f]
    commit = c.commit_position
    # a duplicate, delayed copy of an old append (prev far below commit)
    entries = tuple(net.cores[leader].entries_between(0, commit))
    c.step(AppendRequest(leader, f, c.term, 0, 0, entries, commit))
    assert c.commit_position == commit and c.last_position() == commit


def test_follower_commits_only_what_this_append_verified():
    """Raft Fig. 2: commitIndex = min(leaderCommit, index of last new entry); a
    stale tail beyond the verified prefix is not committed even if the leader's
    commit position reaches past it."""
    a = Entry(0, 1, 0, EntryKind.MESSAGE, b"a")
    b = Entry(a.end, 1, 0, EntryKind.MESSAGE, b"b")
    stale = Entry(b.end, 1, 0, EntryKind.MESSAGE, b"stale")  # from the old leader, never committed
    c = Consensus(ConsensusConfig(2, (1, 2, 3)), random.Random(0), hard_state=HardState(term=1), entries=[a, b, stale])
    c.step(AppendRequest(1, 2, 2, a.end, 1, (b,), stale.end + 500))
    assert c.commit_position == b.end
    rd = c.ready()
    assert [e.payload for e in rd.committed] == [b"a", b"b"]


def test_vote_is_persisted_even_when_the_term_does_not_change():
    c = Consensus(ConsensusConfig(1, (1, 2, 3)), random.Random(0), hard_state=HardState(term=5))
    c.advance(c.ready())
    c.step(RequestVote(2, 1, 5, 0, 0))
    rd = c.ready()
    assert rd.hard_state == HardState(5, 2, 0)
    assert any(isinstance(m, VoteResponse) and m.granted for m in rd.messages)


def test_proposals_between_two_readies_go_to_each_peer_in_one_append_and_are_acknowledged_once():
    net = Net(3)
    leader = net.elect()
    net.deliver()
    net.flush()
    net.queue = []  # start from a quiet network
    core = net.cores[leader]
    for k in range(5):
        core.propose(EntryKind.MESSAGE, b"m%d" % k)  # a duty cycle's worth of ingress
    net.flush()
    appends = [m for m in net.queue if isinstance(m, AppendRequest)]
    assert sorted(m.dst for m in appends) == sorted(p for p in net.ids if p != leader)
    assert all([e.payload for e in m.entries] == [b"m0", b"m1", b"m2", b"m3", b"m4"] for m in appends)
    # a follower that steps several requests in one duty cycle answers once, with the highest position
    follower = appends[0].dst
    halves = (appends[0].entries[:2], appends[0].entries[2:])
    f = net.cores[follower]
    prev, prev_term = appends[0].prev_position, appends[0].prev_term
    for part in halves:
        f.step(AppendRequest(leader, follower, core.term, prev, prev_term, part, appends[0].commit_position))
        prev, prev_term = part[-1].end, part[-1].term
    acks = [m for m in f.ready().messages if m.dst == leader]
    assert len(acks) == 1 and acks[0].success and acks[0].position == appends[0].entries[-1].end


# ---------------------------------------------------------------- snapshot transfer in chunks (I8)

def _lagging_behind_a_big_snapshot(chunk=1000, size=10_500, **cfg):
    """A 3-member net whose leader compacted past a crashed follower with a
    ``size``-byte snapshot; returns (net, leader, lagger, snapshot)."""
    net, leader, lagger = lagger_missing(5, snapshot_chunk_bytes=chunk, **cfg)
    c = net.cores[leader]
    data = random.Random(7).randbytes(size)
    snap = Snapshot(c.applied_position, c.term_at(c.applied_position), data)
    c.compact(snap)
    return net, leader, lagger, snap


def _chunks(msgs):
    return [m for m in msgs if isinstance(m, InstallSnapshot)]


def steps_of(net, member):
    """The list of messages ``member``'s core steps on from now on (filled as they arrive)."""
    seen = []
    real_step = net.cores[member].step

    def spy(m):
        seen.append(m)
        real_step(m)

    net.cores[member].step = spy
    return seen


def test_a_snapshot_larger_than_one_chunk_arrives_in_chunks_and_installs_whole():
    net, leader, lagger, snap = _lagging_behind_a_big_snapshot()
    net.restart(lagger)
    sent = steps_of(net, lagger)
    net.advance_time(net.now + 60)
    chunks = _chunks(sent)
    assert len({m.offset for m in chunks}) == 11  # 10 full chunks of 1000 bytes and one of 500
    assert all(len(m.data) <= 1000 and m.length == len(snap.data) for m in chunks)
    installs = [rd.snapshot for rd in net.readies[lagger] if rd.snapshot is not None]
    assert installs == [snap]  # one Ready carries it, whole
    assert net.cores[lagger].applied_position == snap.position
    net.propose(net.leader(), b"after")
    net.advance_time(net.now + 20)
    assert net.payloads(lagger) == [b"after"]


def test_chunks_lost_duplicated_and_reordered_still_install_exactly_the_snapshot():
    net, leader, lagger, snap = _lagging_behind_a_big_snapshot()
    net.restart(lagger)
    rng = random.Random(3)
    real_deliver = net.deliver

    def unreliable(rounds=50, only=None):
        # drop a third of chunks and acknowledgements, repeat some, shuffle the rest
        q = []
        for m in net.queue:
            if isinstance(m, (InstallSnapshot, InstallSnapshotResponse)):
                r = rng.random()
                if r < 0.33:
                    continue
                if r < 0.5:
                    q.append(m)
            q.append(m)
        rng.shuffle(q)
        net.queue = q
        real_deliver(rounds=1, only=only)

    net.deliver = unreliable
    net.advance_time(net.now + 400)
    installs = [rd.snapshot for rd in net.readies[lagger] if rd.snapshot is not None]
    assert installs == [snap]
    assert net.stores[lagger].snapshot == snap
    assert net.cores[lagger].snapshot_checksum_failures == 0


def test_a_partial_snapshot_is_never_in_a_ready_and_a_new_leader_resumes_the_same_one():
    net, leader, lagger, snap = _lagging_behind_a_big_snapshot()
    other = next(i for i in net.ids if i not in (leader, lagger))
    net.advance_time(net.now + 5)  # the other follower applies up to the snapshot too
    net.cores[other].compact(snap)  # so the next leader holds the same snapshot
    net.restart(lagger)
    # one delivery round at a time, until the lagger holds four chunks; then the leader dies
    for _ in range(200):
        inc = net.cores[lagger]._incoming
        if inc is not None and len(inc.data) >= 4000:
            break
        net.now += 1
        for i in net.ids:
            net.cores[i].tick(net.now)
        net.flush()
        net.deliver(rounds=1)
    assert len(net.cores[lagger]._incoming.data) == 4000
    assert all(rd.snapshot is None for rd in net.readies[lagger])
    assert net.cores[lagger].base_position == 0
    net.crash(leader)
    seen = steps_of(net, lagger)
    net.advance_time(net.now + 200)
    assert net.leader() == other
    from_new = [m for m in _chunks(seen) if m.src == other]
    assert from_new and min(m.offset for m in from_new[1:] or from_new) >= 0
    # after one chunk of the new leader the lagger says it holds 4000 bytes; nothing before that is resent
    assert sorted({m.offset for m in from_new}) == [0] + list(range(4000, 10_001, 1000))
    assert net.stores[lagger].snapshot == snap


def test_a_new_leader_with_another_snapshot_restarts_the_transfer_from_zero():
    net, leader, lagger, snap = _lagging_behind_a_big_snapshot()
    net.restart(lagger)
    first = []
    for _ in range(100):  # the lagger rejects a heartbeat, so the leader finds it behind its base
        net.now += 1
        for i in net.ids:
            net.cores[i].tick(net.now)
        net.flush()
        net.deliver(rounds=1, only=lambda m: not isinstance(m, InstallSnapshot))
        first = [m for m in net.queue if isinstance(m, InstallSnapshot) and m.dst == lagger]
        if first:
            break
    net.queue = []
    net.cores[lagger].step(first[0])
    net.flush()
    assert net.cores[lagger]._incoming is not None
    c = net.cores[lagger]
    # a chunk from the middle of a different snapshot (term 9 leader): start again from 0
    other = next(i for i in net.ids if i not in (leader, lagger))
    c.step(InstallSnapshot(other, lagger, c.term + 5, snap.position + 28, c.term + 5, 2000, 1234, 1000, b"x" * 1000))
    rd = c.ready()
    assert [type(m).__name__ for m in rd.messages] == ["InstallSnapshotResponse"]
    assert rd.messages[0].offset == 0 and rd.snapshot is None
    c.advance(rd)


def test_a_snapshot_whose_checksum_fails_is_not_installed_and_the_transfer_restarts():
    c = Consensus(ConsensusConfig(2, (1, 2, 3)), random.Random(1))
    data = b"abcdefgh" * 10
    import zlib
    c.step(InstallSnapshot(1, 2, 1, 500, 1, len(data), zlib.crc32(data) ^ 1, 0, data[:50]))
    c.step(InstallSnapshot(1, 2, 1, 500, 1, len(data), zlib.crc32(data) ^ 1, 50, data[50:]))
    rd = c.ready()
    assert rd.snapshot is None and c.base_position == 0
    assert [(type(m).__name__, getattr(m, "offset", None)) for m in rd.messages][-1] == ("InstallSnapshotResponse", 0)
    assert c.snapshot_checksum_failures == 1
    c.advance(rd)
    c.step(InstallSnapshot(1, 2, 1, 500, 1, len(data), zlib.crc32(data), 0, data))
    rd = c.ready()
    assert rd.snapshot == Snapshot(500, 1, data)
    c.advance(rd)


def test_a_chunk_reaching_past_its_snapshot_is_the_leaders_fault():
    c = Consensus(ConsensusConfig(2, (1, 2, 3)), random.Random(1))
    with pytest.raises(RemoteProtocolError) as e:
        c.step(InstallSnapshot(1, 2, 1, 500, 1, 10, 0, 8, b"abcd"))
    assert "offset=8" in str(e.value) and "chunk=4" in str(e.value) and "length=10" in str(e.value)


def test_snapshot_chunk_size_is_validated():
    with pytest.raises(Exception) as e:
        ConsensusConfig(1, (1, 2, 3), snapshot_chunk_bytes=0)
    assert "snapshot_chunk_bytes" in str(e.value)
