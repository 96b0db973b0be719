"""The service container and node: sessions, exactly-once, timers through the
log, snapshots and recovery that replays only the log after the snapshot."""

import json

from cluster_harness import NodeNet
from tickline.cluster.disk import OsDisk
from tickline.cluster.errors import LogCorruptionError
from tickline.cluster.messages import EntryKind, Role
from tickline.cluster.protocol import EgressMessage, EventCode, IngressMessage, SessionClose, SessionConnect, SessionEvent

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickline.cluster.messages import Entry
from tickline.cluster.service import MESSAGE_HEADER, OPEN, ServiceContainer


class Recorder:
    """A service that records every callback and echoes messages; 'timer:N'
    schedules a timer N ms of cluster time later."""

    def __init__(self):
        self.calls = []
        self.cluster = None
        self.roles = []

    def on_start(self, cluster):
        self.cluster = cluster

    def on_session_open(self, session, timestamp):
        self.calls.append(("open", session.id))

    def on_session_close(self, session, timestamp):
        self.calls.append(("close", session.id))

    def on_message(self, session, timestamp, payload):
        self.calls.append(("message", session.id, session.correlation_id, bytes(payload).decode()))
        if payload.startswith(b"timer:"):
            self.cluster.schedule_timer(session.correlation_id, timestamp + int(payload[6:]))
        if payload == b"cancel":
            self.cluster.cancel_timer(session.correlation_id - 1)
        session.offer(b"echo:" + bytes(payload))

    def on_timer(self, correlation_id, timestamp):
        self.calls.append(("timer", correlation_id, timestamp, self.cluster.log_position))

    def on_take_snapshot(self):
        return json.dumps(self.calls).encode()

    def on_load_snapshot(self, data):
        self.calls = [tuple(c) for c in json.loads(data)]
        self.calls.append(("loaded",))

    def on_role_change(self, role):
        self.roles.append(role)


def open_session(net, leader, client=7, session=70):
    net.ingress(leader, SessionConnect(client, session))
    net.run(10)
    assert SessionEvent(session, 0, EventCode.OK, leader=leader) in net.egress[client]


def session_net(**kwargs):
    """A NodeNet of Recorders (``kwargs`` go to it) with a leader elected and client 7's session 70 open."""
    net = NodeNet(Recorder, **kwargs)
    leader = net.elect()
    open_session(net, leader)
    return net, leader


def test_messages_reach_every_replica_once_and_only_the_leader_answers():
    net, leader = session_net()
    net.ingress(leader, IngressMessage(7, 70, 1, 1, b"hello"))
    net.run(10)
    for i in net.ids:
        assert net.services[i].calls == [("open", 70), ("message", 70, 1, "hello")]
    assert net.egress[7].count(EgressMessage(70, 1, b"echo:hello")) == 1
    assert Role.LEADER in net.services[leader].roles


def test_a_follower_redirects_the_client_to_the_leader():
    net = NodeNet(Recorder)
    leader = net.elect()
    net.run(5)
    follower = next(i for i in net.ids if i != leader)
    net.ingress(follower, SessionConnect(7, 70))
    assert net.egress[7] == [SessionEvent(70, 0, EventCode.REDIRECT, leader=leader)]


def test_a_retry_after_leader_change_is_applied_once_and_answered_from_the_cache():
    net, leader = session_net()
    net.ingress(leader, IngressMessage(7, 70, 1, 1, b"buy"))
    net.run(10)
    net.stop(leader)  # the answer may never have reached the client
    net.run(60)
    new = net.leader()
    assert new is not None and new != leader
    net.egress[7] = []
    end = net.nodes[new].core.last_position()
    net.ingress(new, IngressMessage(7, 70, 1, 1, b"buy"))  # the client retries
    net.run(10)
    assert net.egress[7] == [EgressMessage(70, 1, b"echo:buy")]
    # the new leader had applied it: answered from the cache, nothing appended
    assert net.nodes[new].duplicates_dropped == 1 and net.nodes[new].core.last_position() == end
    for i in net.ids:
        if net.nodes[i] is not None:
            assert [c for c in net.services[i].calls if c[0] == "message"] == [("message", 70, 1, "buy")]
            assert net.nodes[i].container.duplicates == 0


def test_a_retry_of_a_message_still_in_the_leaders_log_is_dropped_without_an_append():
    net, leader = session_net()
    node = net.nodes[leader]
    node.on_ingress(IngressMessage(7, 70, 1, 1, b"buy"))  # appended and sent to the followers, not yet committed
    end = node.core.last_position()
    node.on_ingress(IngressMessage(7, 70, 1, 1, b"buy"))  # the client resends before the answer came
    assert node.duplicates_dropped == 1 and node.core.last_position() == end
    net.deliver()
    node.on_ingress(IngressMessage(7, 70, 1, 1, b"buy"))  # applied now: answered from the cache, not appended
    assert node.duplicates_dropped == 2 and node.core.last_position() == end
    net.run(10)
    assert net.egress[7].count(EgressMessage(70, 1, b"echo:buy")) == 2
    assert [c for c in net.services[leader].calls if c[0] == "message"] == [("message", 70, 1, "buy")]
    assert node._in_log == {}  # forgotten once applied


def test_ids_below_the_clients_floor_are_forgotten_and_never_reapplied():
    net, leader = session_net()
    net.ingress(leader, IngressMessage(7, 70, 1, 1, b"a"))
    net.ingress(leader, IngressMessage(7, 70, 2, 2, b"b"))  # floor 2: id 1 was answered
    net.run(10)
    net.ingress(leader, IngressMessage(7, 70, 1, 2, b"a"))
    net.run(10)
    container = net.nodes[leader].container
    assert sorted(container.sessions[70].answered) == [2]
    assert [c[2] for c in net.services[leader].calls if c[0] == "message"] == [1, 2]


def _apply_all(container, messages, session=70, client=7):
    """Apply (correlation id, floor) messages of one session straight to a container."""
    position = 0
    for kind, payload in [(EntryKind.SESSION_OPEN, OPEN.pack(session, client))] + [
            (EntryKind.MESSAGE, MESSAGE_HEADER.pack(session, c, floor) + b"x") for c, floor in messages]:
        e = Entry(position, 1, 1000, kind, payload)
        container.apply(e)
        position = e.end


def test_a_rising_floor_forgets_exactly_the_ids_below_it_even_when_they_were_applied_out_of_order():
    container = ServiceContainer(Recorder())
    # 3 overtook 2 (a retry of 2 reached the log after 3), then the floor rises past both
    _apply_all(container, [(1, 1), (3, 1), (2, 1), (5, 1), (4, 1), (6, 4)])
    s = container.sessions[70]
    assert sorted(s.answered) == [4, 5, 6] and list(s.ids) == [4, 5, 6]
    _apply_all(container, [(2, 4)])  # below the floor: a duplicate, not applied
    assert container.duplicates == 1 and [c[2] for c in container.service.calls if c[0] == "message"] == [1, 3, 2, 5, 4, 6]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 40), st.integers(0, 45)), max_size=80))
def test_the_answer_cache_holds_exactly_the_applied_ids_at_or_above_the_floor(messages):
    """Whatever order ids arrive in and however the floor moves, the cache (and its
    ascending index) is every id applied once and not below the highest floor
    seen, and the service sees an id at most once and never one below the floor."""
    container = ServiceContainer(Recorder())
    _apply_all(container, messages)
    floor, applied = 0, []
    for c, f in messages:
        floor = max(floor, f)
        if c >= floor and c not in applied:
            applied.append(c)
    s = container.sessions[70]
    assert sorted(s.answered) == sorted(c for c in applied if c >= floor) == list(s.ids)
    assert [c[2] for c in container.service.calls if c[0] == "message"] == applied
    # a snapshot brings the same cache and index back
    other = ServiceContainer(Recorder())
    other.load_snapshot(container.take_snapshot())
    assert other.sessions[70].answered == s.answered and list(other.sessions[70].ids) == list(s.ids)


def test_message_for_an_unknown_session_is_not_applied():
    net = NodeNet(Recorder)
    leader = net.elect()
    net.ingress(leader, IngressMessage(7, 99, 1, 1, b"x"))
    net.run(10)
    assert all(c[0] != "message" for c in net.services[leader].calls)


def test_session_close_reaches_the_service_everywhere():
    net, leader = session_net()
    net.ingress(leader, SessionClose(7, 70))
    net.run(10)
    for i in net.ids:
        assert net.services[i].calls == [("open", 70), ("close", 70)]
        assert 70 not in net.nodes[i].container.sessions


def test_timers_fire_through_the_log_at_the_same_position_on_every_member():
    net, leader = session_net()
    net.ingress(leader, IngressMessage(7, 70, 1, 1, b"timer:20"))
    net.run(5)
    scheduled_at = net.nodes[leader].container.time
    assert all(c[0] != "timer" for c in net.services[leader].calls)
    net.run(40)
    fired = {i: [c for c in net.services[i].calls if c[0] == "timer"] for i in net.ids}
    assert len(fired[leader]) == 1
    assert all(f == fired[leader] for f in fired.values())
    _, corr, ts, position = fired[leader][0]
    assert corr == 1 and ts >= scheduled_at + 20
    timer_entries = [p for p, k in net.nodes[leader].applied if k == EntryKind.TIMER]
    assert timer_entries == [position]


def test_a_cancelled_timer_never_fires():
    net, leader = session_net()
    net.ingress(leader, IngressMessage(7, 70, 1, 1, b"timer:20"))
    net.ingress(leader, IngressMessage(7, 70, 2, 1, b"cancel"))
    net.run(50)
    for i in net.ids:
        assert all(c[0] != "timer" for c in net.services[i].calls)


def test_recovery_loads_the_snapshot_and_replays_only_the_log_after_it(tmp_path):
    disks = {i: OsDisk(tmp_path / f"m{i}") for i in (1, 2, 3)}
    net, leader = session_net(disks=disks, segment_size=200)
    for c in range(1, 11):
        net.ingress(leader, IngressMessage(7, 70, c, c, b"m%d" % c))
    net.run(10)
    f = next(i for i in net.ids if i != leader)
    node = net.nodes[f]
    segs_before = len(node.log.segment_names())
    first = node.take_snapshot()
    for c in range(11, 16):
        net.ingress(leader, IngressMessage(7, 70, c, c, b"m%d" % c))
    net.run(10)
    snap = node.take_snapshot()  # the second snapshot drops segments below the first
    assert len(node.log.segment_names()) < segs_before + 3
    assert node.log.start_position <= first.position
    assert not any(name for name in __import__("os").listdir(tmp_path / f"m{f}") if name.endswith(".seg") and int(name[4:-4]) + 200 < node.log.start_position)
    for c in range(16, 19):
        net.ingress(leader, IngressMessage(7, 70, c, c, b"m%d" % c))
    net.run(10)
    expected = list(net.services[f].calls)
    net.stop(f)
    node = net.start(f)
    net.run(10)  # the commit position is persisted lazily; the leader tells it the rest
    assert node.core.base_position == snap.position
    # only entries after the snapshot were applied again
    assert node.applied and all(p > snap.position for p, _ in node.applied)
    assert [c for c in net.services[f].calls if c != ("loaded",)] == expected
    assert len([p for p, k in node.applied if k == EntryKind.MESSAGE]) == 3


def follower_with_snapshots(tmp_path, segment_size, snapshot_after):
    """Members on disk under ``tmp_path``; 20 messages of session 70, a follower ``f``
    taking a snapshot after each message number in ``snapshot_after``.  Returns (net, f)."""
    disks = {i: OsDisk(tmp_path / f"m{i}") for i in (1, 2, 3)}
    net, leader = session_net(disks=disks, segment_size=segment_size)
    f = next(i for i in net.ids if i != leader)
    for c in range(1, 21):
        net.ingress(leader, IngressMessage(7, 70, c, c, b"m%d" % c))
        net.run(2)
        if c in snapshot_after:
            net.nodes[f].take_snapshot()
    return net, f


def test_a_damaged_newest_snapshot_falls_back_to_the_previous_one_and_the_log(tmp_path):
    net, f = follower_with_snapshots(tmp_path, segment_size=200, snapshot_after=(8, 16))
    net.run(10)
    expected = list(net.services[f].calls)
    net.stop(f)
    d = tmp_path / f"m{f}"
    newest = sorted(p for p in d.iterdir() if p.name.startswith("snap-"))[-1]
    data = bytearray(newest.read_bytes())
    data[-2] ^= 0x10
    newest.write_bytes(bytes(data))
    node = net.start(f)
    net.run(10)
    assert node.skipped_snapshots == [newest.name]
    assert [c for c in net.services[f].calls if c != ("loaded",)] == expected


def test_log_starting_after_every_valid_snapshot_is_refused(tmp_path):
    net, f = follower_with_snapshots(tmp_path, segment_size=100, snapshot_after=(6, 12, 18))
    net.stop(f)
    for p in (tmp_path / f"m{f}").iterdir():
        if p.name.startswith("snap-"):
            p.write_bytes(b"garbage")
    with pytest.raises(LogCorruptionError) as exc:
        net.start(f)
    assert "no valid snapshot covers it" in str(exc.value) and "fault=storage" in str(exc.value)


def test_clean_shutdown_transfers_leadership():
    net, leader = session_net()
    target = net.nodes[leader].shutdown()
    net.deliver()
    net.run(1)
    assert net.leader() == target


class Ballast(Recorder):
    """A Recorder whose snapshot also carries 3 MiB of state: many chunks, and
    far over the consensus stream's 512 KiB max message."""

    BALLAST = bytes(range(251)) * (3 * 1024 * 1024 // 251)

    def on_take_snapshot(self):
        return self.BALLAST + super().on_take_snapshot()

    def on_load_snapshot(self, data):
        assert data[: len(self.BALLAST)] == self.BALLAST
        super().on_load_snapshot(data[len(self.BALLAST):])


def test_a_lagging_member_gets_a_multi_megabyte_snapshot_in_chunks_and_keeps_it_on_disk(tmp_path):
    disks = {i: OsDisk(tmp_path / f"m{i}") for i in (1, 2, 3)}
    net = NodeNet(Ballast, disks=disks, segment_size=200)
    leader = net.elect()
    open_session(net, leader)
    f = next(i for i in net.ids if i != leader)
    net.stop(f)
    for c in range(1, 6):
        net.ingress(leader, IngressMessage(7, 70, c, c, b"m%d" % c))
    net.run(10)
    snap = net.nodes[leader].take_snapshot()  # the leader's log no longer holds what f lacks
    assert len(snap.data) > 3 * 1024 * 1024
    chunks = []
    node = net.start(f)
    step = node.on_member_message

    def counting(m, **kw):
        if type(m).__name__ == "InstallSnapshot":
            chunks.append(m)
        step(m, **kw)

    node.on_member_message = counting
    net.run(200)
    assert node.core.snapshots_received == 1
    chunk = node.config.consensus.snapshot_chunk_bytes
    assert max(len(m.data) for m in chunks) == chunk
    assert sorted({m.offset for m in chunks}) == list(range(0, len(snap.data), chunk))
    assert node.core.base_position == snap.position
    expected = [c for c in net.services[leader].calls]
    assert [c for c in net.services[f].calls if c != ("loaded",)] == expected
    # installed on disk whole: a restart loads it from there
    net.stop(f)
    node = net.start(f)
    assert node.core.base_position == snap.position and node.skipped_snapshots == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["schedule", "cancel", "fire", "due", "snapshot"]),
                          st.integers(0, 5), st.integers(0, 100)), max_size=40))
def test_due_timers_with_the_earliest_deadline_kept_match_a_full_scan(ops):
    """The container keeps a lower bound on its timers' deadlines so a leader's duty cycle with
    nothing due costs one comparison; whatever the schedules, replacements, cancels, firings and
    snapshot loads, ``due_timers`` answers what a scan of every timer answers."""
    c = ServiceContainer(Recorder())
    for op, cid, t in ops:
        if op == "schedule":
            c.schedule_timer(cid, t)
        elif op == "cancel":
            c.cancel_timer(cid)
        elif op == "fire":  # a TIMER entry applied: the timer leaves the table
            c.apply(Entry(0, 1, t, EntryKind.TIMER, cid.to_bytes(8, "little")))
        elif op == "snapshot":
            c2 = ServiceContainer(Recorder())
            c2.load_snapshot(c.take_snapshot())
            c = c2
        else:
            assert c.due_timers(t) == sorted(k for k, d in c.timers.items() if d <= t)
        if c.timers:  # (a stale bound may outlive the timers: due_timers drops it)
            assert c.earliest_deadline is not None and c.earliest_deadline <= min(c.timers.values())
