"""Tests mapped to sentences of the Raft paper (Ongaro & Ousterhout, "In Search
of an Understandable Consensus Algorithm", extended version) and, for pre-vote
and leadership transfer, Ongaro's thesis.  Positions here are byte offsets
where the paper has indexes."""

import random

import pytest

from cluster_harness import Died, DyingDisk, KeepUnsynced, Net, NodeNet
from tickline.cluster.config import ConsensusConfig
from tickline.cluster.consensus import Consensus
from tickline.cluster.disk import SimDisk
from tickline.cluster.log import MetaStore, SegmentLog
from tickline.cluster.messages import (
    AppendRequest, AppendResponse, Entry, EntryKind, HardState, RequestVote, Role, VoteResponse,
)

CFG = dict(election_timeout_min=10, election_timeout_max=20, heartbeat_interval=3)


def core(member=1, **kw):
    return Consensus(ConsensusConfig(member, (1, 2, 3), **CFG), random.Random(member), **kw)


def sent(c):
    rd = c.ready()
    c.advance(rd)
    return list(rd.messages)


def log(*terms, start=0):
    out, pos = [], start
    for t in terms:
        e = Entry(pos, t, 0, EntryKind.MESSAGE, b"t%d" % t)
        out.append(e)
        pos = e.end
    return out


def test_5_1_a_request_with_a_stale_term_is_rejected():
    """§5.1 "If a server receives a request with a stale term number, it rejects the request." """
    c = core(hard_state=HardState(term=5))
    sent(c)
    c.step(AppendRequest(2, 1, 4, 0, 0, tuple(log(4)), 0))
    [resp] = sent(c)
    assert isinstance(resp, AppendResponse) and not resp.success and resp.term == 5
    assert c.last_position() == 0


def test_5_1_a_larger_term_seen_is_adopted_and_a_leader_reverts_to_follower():
    """§5.1 "If one server's current term is smaller than the other's, then it updates its
    current term to the larger value. If a candidate or leader discovers that its term is
    out of date, it immediately reverts to follower state." """
    net = Net(3)
    leader = net.elect()
    c = net.cores[leader]
    other = next(i for i in net.ids if i != leader)
    c.step(AppendResponse(other, leader, c.term + 3, False, 0, 0))
    assert c.role is Role.FOLLOWER and c.term == net.cores[other].term + 3


def test_5_2_at_most_one_vote_per_term_first_come_first_served():
    """§5.2 "Each server will vote for at most one candidate in a given term, on a
    first-come-first-served basis." """
    c = core()
    sent(c)
    c.step(RequestVote(2, 1, 1, 0, 0))
    c.step(RequestVote(3, 1, 1, 0, 0))
    votes = [m for m in sent(c) if isinstance(m, VoteResponse)]
    assert [(v.dst, v.granted) for v in votes] == [(2, True), (3, False)]


def test_5_2_a_candidate_wins_with_votes_from_a_majority_of_the_full_cluster():
    """§5.2 "A candidate wins an election if it receives votes from a majority of the
    servers in the full cluster for the same term." """
    c = Consensus(ConsensusConfig(1, (1, 2, 3, 4, 5), **CFG), random.Random(0))
    c.tick(25)
    for p in (2, 3):
        c.step(VoteResponse(p, 1, 1, True, pre_vote=True))
    assert c.role is Role.CANDIDATE and c.term == 1
    c.step(VoteResponse(2, 1, 1, True))
    assert c.role is Role.CANDIDATE  # 2 of 5 is not a majority
    c.step(VoteResponse(3, 1, 1, True))
    assert c.role is Role.LEADER  # 3 of 5 is


def test_5_2_a_candidate_hearing_a_legitimate_leader_returns_to_follower():
    """§5.2 "If the leader's term ... is at least as large as the candidate's current term,
    then the candidate recognizes the leader as legitimate and returns to follower state." """
    c = core()
    c.tick(25)
    c.step(VoteResponse(2, 1, 1, True, pre_vote=True))
    assert c.role is Role.CANDIDATE
    c.step(AppendRequest(3, 1, c.term, 0, 0, (), 0))
    assert c.role is Role.FOLLOWER and c.leader == 3


def test_5_2_election_timeouts_are_chosen_randomly_from_a_fixed_interval():
    """§5.2 "Raft uses randomized election timeouts ... chosen randomly from a fixed interval." """
    firsts = set()
    for seed in range(30):
        c = Consensus(ConsensusConfig(1, (1, 2, 3), **CFG), random.Random(seed))
        t = 0
        while c.role is Role.FOLLOWER:
            t += 1
            c.tick(t)
        assert CFG["election_timeout_min"] <= t <= CFG["election_timeout_max"]
        firsts.add(t)
    assert len(firsts) > 3


def test_5_3_entries_are_refused_unless_the_preceding_entry_matches():
    """§5.3 "If the follower does not find an entry in its log with the same index and term,
    then it refuses the new entries." """
    entries = log(1, 1)
    c = core(hard_state=HardState(term=2), entries=entries)
    sent(c)
    new = Entry(entries[1].end, 2, 0, EntryKind.MESSAGE, b"n")
    c.step(AppendRequest(2, 1, 2, entries[1].end, 2, (new,), 0))  # wrong prev term
    [resp] = sent(c)
    assert not resp.success and c.last_position() == entries[1].end


def test_5_3_a_conflicting_entry_and_all_that_follow_it_are_deleted():
    """Fig. 2 "If an existing entry conflicts with a new one (same index but different
    terms), delete the existing entry and all that follow it." """
    old = log(1, 1, 1)
    c = core(hard_state=HardState(term=1), entries=old)
    sent(c)
    new = Entry(old[0].end, 2, 0, EntryKind.MESSAGE, b"x")
    c.step(AppendRequest(2, 1, 2, old[0].end, 1, (new,), 0))
    rd = c.ready()
    assert rd.truncate_to == old[0].end and rd.entries == (new,)
    assert c.last_position() == new.end


@pytest.mark.parametrize("keep", [True, False], ids=["unsynced-kept", "unsynced-lost"])
@pytest.mark.parametrize("dies_at", [0, 1, 2])
def test_5_3_log_matching_holds_on_a_follower_that_lost_power_while_overwriting_a_conflict(dies_at, keep):
    """§5.3 Log Matching: "If two entries in different logs have the same index and term,
    then the logs are identical in all preceding entries."  That holds on disk only if
    a crash leaves each member a prefix of what it wrote.  Seed 3017712 of the simulator:
    a follower's conflicting term-1 tail filled a log segment exactly; the term-2 leader's
    entries replaced it and ran on into a new segment; the power went before the cut
    was durable.  Back came the old tail followed by the new segment's term-2 entries,
    the next leader's append matched on the last of those, and the follower committed
    its old term-1 entry where the cluster had committed a term-2 one."""
    from tickline.cluster.node import ClusterNode, NodeConfig
    from tickline.sequencer.basic import OrderSequencer

    class IO:
        def send(self, member, m):
            pass

        def send_egress(self, client, m):
            pass

    def noops(term, n, start):
        out = []
        for _ in range(n):
            out.append(Entry(start, term, 0, EntryKind.NOOP, b"p" * 10))  # 38 bytes each
            start = out[-1].end
        return out

    def node(disk):
        config = NodeConfig(ConsensusConfig(1, (1, 2, 3), **CFG), segment_size=100)
        return ClusterNode(config, disk, OrderSequencer(), IO(), random.Random(1))

    disk = DyingDisk()
    follower = node(disk)
    committed = noops(1, 1, 0)
    conflict = noops(1, 2, committed[-1].end)  # from leader 2 in term 1; never committed
    follower.on_member_message(AppendRequest(2, 1, 1, 0, 0, tuple(committed + conflict), committed[-1].end))
    assert follower.log.segment_names() == ["log-00000000000000000000.seg"] and follower.log.end_position == 114  # full
    leaders_log = committed + noops(2, 4, committed[-1].end)  # leader 3 in term 2: commits all of it
    disk.fail_at = dies_at
    try:
        follower.on_member_message(AppendRequest(3, 1, 2, committed[-1].end, 1, tuple(leaders_log[1:]), leaders_log[-1].end))
    except Died:
        pass
    disk.fail_at = None
    disk.crash(KeepUnsynced(keep), power_loss=True)
    follower = node(disk)
    stored = follower.core.entries_between(0, follower.core.last_position())
    # the leader's heartbeat: prev is the end of its log; the follower accepts only if it holds that log
    follower.on_member_message(AppendRequest(3, 1, 2, leaders_log[-1].end, 2, (), leaders_log[-1].end))
    now_committed = follower.core.entries_between(0, follower.core.commit_position)
    assert now_committed == leaders_log[: len(now_committed)]
    assert stored in [(committed + conflict)[:n] for n in range(4)] + [leaders_log[:n] for n in range(6)]


def test_fig2_append_only_entries_not_already_in_the_log():
    """Fig. 2 "Append any new entries not already in the log": a duplicated request is harmless."""
    c = core(hard_state=HardState(term=1))
    sent(c)
    entries = tuple(log(1, 1))
    req = AppendRequest(2, 1, 1, 0, 0, entries, 0)
    c.step(req)
    c.step(req)
    assert [e.end for e in c.entries_between(0, 10**9)] == [e.end for e in entries]


def test_5_4_1_the_later_last_term_is_more_up_to_date_whatever_the_length():
    """§5.4.1 "If the logs have last entries with different terms, then the log with the
    later term is more up-to-date. If the logs end with the same term, then whichever log
    is longer is more up-to-date." """
    c = core(hard_state=HardState(term=3), entries=log(1, 3))
    sent(c)
    c.step(RequestVote(2, 1, 4, last_term=2, last_position=10**6))  # longer but older term
    assert not [m for m in sent(c) if isinstance(m, VoteResponse)][0].granted
    c.step(RequestVote(3, 1, 5, last_term=3, last_position=c.last_position() + 1))  # same term, longer
    assert [m for m in sent(c) if isinstance(m, VoteResponse)][0].granted


def test_5_4_2_entries_of_a_previous_term_commit_once_a_current_term_entry_does():
    """§5.4.2 "once an entry from the current term has been committed in this way, then all
    prior entries are committed indirectly because of the Log Matching Property." """
    net = Net(3)
    leader = net.elect()
    net.propose(leader, b"old-term")
    # replicate to nobody, then lose leadership
    net.isolate(leader)
    net.advance_time(net.now + 5)
    net.heal()
    net.advance_time(net.now + 100)
    for i in net.ids:
        assert net.cores[i].commit_position == net.cores[i].last_position()


def test_fig2_persistent_state_is_on_stable_storage_before_any_message_leaves():
    """Fig. 2 "Persistent state on all servers: (Updated on stable storage before
    responding to RPCs)": at the moment each message is sent, the sender's disk already
    durably holds its term, vote and every entry it acknowledges."""
    from tickline.sequencer.basic import OrderSequencer
    checked = []
    net = NodeNet(OrderSequencer)
    for i in net.ids:
        node = net.nodes[i]
        inner = node.io

        class Checking:
            def __init__(self, node, inner):
                self.node, self.inner = node, inner

            def send(self, member, m):
                disk = net.disks[self.node.id]
                durable = {k: v for k, v in disk.durable.items()}
                probe = SimDisk()
                probe.files = {k: bytearray(v) for k, v in durable.items()}
                probe.durable = dict(durable)
                hs = MetaStore(probe).load()
                if not getattr(m, "pre_vote", False):  # a pre-vote carries a proposed term
                    assert hs.term >= m.term
                if isinstance(m, VoteResponse) and m.granted and not m.pre_vote:
                    assert (hs.term, hs.voted_for) == (m.term, m.dst)
                if isinstance(m, AppendResponse) and m.success:
                    assert SegmentLog(probe).recover().end_position >= m.position
                checked.append(type(m).__name__)
                self.inner.send(member, m)

            def send_egress(self, c, m):
                self.inner.send_egress(c, m)

        node.io = Checking(node, inner)
    net.elect()
    net.run(50)
    assert {"VoteResponse", "AppendResponse", "AppendRequest", "RequestVote"} <= set(checked)


def test_thesis_pre_vote_does_not_change_the_voters_term_or_vote():
    """Thesis §9.6: a pre-candidate first asks "whether its log was up-to-date enough to
    get their vote"; voters do not update their term for it."""
    c = core(hard_state=HardState(term=2))
    sent(c)
    c.step(RequestVote(2, 1, 3, last_term=2, last_position=0, pre_vote=True))
    [v] = sent(c)
    assert v.granted and v.pre_vote and v.term == 3
    assert c.term == 2 and c.voted_for is None
