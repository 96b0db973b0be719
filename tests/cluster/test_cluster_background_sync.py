"""Log syncs in the background: what waits for them, and what does not.

The disks here are SimDisks that complete a sync only when the test says so,
so each step of the rule can be watched: a follower's append position and a
leader's own copy count only once synced; a leader's AppendRequests do not wait.
"""

from __future__ import annotations

import errno
import os
import random

import pytest
from cluster_harness import NodeNet

from tickline.cluster.disk import OsDisk, SimDisk
from tickline.cluster.messages import AppendRequest, AppendResponse
from tickline.cluster.protocol import EventCode, SessionConnect, SessionEvent
from tickline.sequencer.basic import OrderSequencer


ALL = 2**62  # complete_syncs(ALL): every sync in flight


def settle(net: NodeNet) -> None:
    """Complete every sync, then let the members act on it."""
    for _ in range(5):
        for i in net.ids:
            net.disks[i].complete_syncs(ALL)
            if net.nodes[i] is not None:
                net.nodes[i].process()
        net.deliver()


def in_flight(net: NodeNet, kind: type) -> list:
    return [m for _, _, m in net.queue if type(m) is kind]


def connected(net: NodeNet, client_id: int) -> bool:
    return any(type(m) is SessionEvent and m.code == EventCode.OK for m in net.egress.get(client_id, []))


@pytest.fixture
def net() -> NodeNet:
    net = NodeNet(OrderSequencer, disks={i: SimDisk(background=True) for i in (1, 2, 3)})
    net.elect()
    settle(net)
    return net


def test_a_follower_acknowledges_only_after_its_sync_and_the_leader_commits_only_on_durable_copies(net: NodeNet) -> None:
    leader = net.leader()
    f1, f2 = [i for i in net.ids if i != leader]
    commit = net.nodes[leader].core.commit_position
    net.nodes[leader].on_ingress(SessionConnect(client_id=7, session_id=1))
    # the leader replicates before its own sync completes (Raft thesis §10.2.1)
    assert sorted(m.dst for m in in_flight(net, AppendRequest)) == [f1, f2]
    assert net.nodes[leader].syncing
    net.deliver()
    # both followers wrote the entry, but neither may say so before it is durable
    assert net.nodes[f1].syncing and net.nodes[f2].syncing
    assert in_flight(net, AppendResponse) == []
    net.disks[f1].complete_syncs(ALL)
    net.nodes[f1].process()
    [ack] = in_flight(net, AppendResponse)
    assert ack.src == f1 and ack.success
    net.deliver()
    # f1's copy is durable, the leader's is not: one durable copy of three is no quorum
    assert net.nodes[leader].core.commit_position == commit
    assert not connected(net, 7)
    net.disks[leader].complete_syncs(ALL)
    net.nodes[leader].process()
    assert net.nodes[leader].core.commit_position > commit
    assert connected(net, 7)
    assert net.nodes[f2].syncing  # f2 was never needed


def test_a_crash_before_the_sync_completes_loses_only_what_nobody_was_promised(net: NodeNet) -> None:
    leader = net.leader()
    net.nodes[leader].on_ingress(SessionConnect(client_id=7, session_id=1))
    net.deliver()
    # every member loses power before its sync completes: the entry was never acknowledged
    for i in net.ids:
        net.disks[i].crash(random.Random(1), power_loss=True)
        net.stop(i)
    for i in net.ids:
        net.start(i)
    net.elect()
    settle(net)
    net.run(30)
    assert not connected(net, 7)
    # and the cluster goes on: a new connect commits and is answered
    net.nodes[net.leader()].on_ingress(SessionConnect(client_id=8, session_id=2))
    settle(net)
    assert connected(net, 8)


def test_a_snapshot_waits_for_the_syncs_in_flight(net: NodeNet) -> None:
    leader = net.leader()
    net.nodes[leader].on_ingress(SessionConnect(client_id=7, session_id=1))
    settle(net)
    net.nodes[leader].on_ingress(SessionConnect(client_id=7, session_id=2))
    assert net.nodes[leader].syncing
    net.nodes[leader].take_snapshot()
    assert not net.nodes[leader].syncing
    assert net.disks[leader].in_flight == 0


def test_os_disk_syncs_on_its_thread_and_waits_before_it_closes_a_file(tmp_path) -> None:
    disk = OsDisk(tmp_path, preallocate=4096, sync_thread=True)
    try:
        disk.append("a", b"x" * 100)
        t1 = disk.sync_begin(["a"])
        disk.append("a", b"y" * 5000)  # grows the file: the next sync must be a full fsync
        t2 = disk.sync_begin(["a"])
        assert t2 == t1 + 1
        disk.sync_wait(t2)
        assert disk.synced() >= t2
        disk.append("b", b"z")
        disk.sync_begin(["a", "b"])
        disk.delete("b")  # waits for the sync in flight on b's descriptor first
        assert disk.read("a") == b"x" * 100 + b"y" * 5000
        assert not disk.exists("b")
    finally:
        disk.close()
    disk.close()  # idempotent


def test_a_failed_background_sync_raises_with_the_descriptor_and_stays_failed() -> None:
    from tickline._aeron import Syncer

    s = Syncer()
    try:
        r, w = os.pipe()
        os.close(r)
        os.close(w)  # a descriptor that is not open
        t = s.submit([(w, False)])
        with pytest.raises(OSError, match=f"fsync failed on the sync thread: fd={w} ticket={t}") as exc:
            s.wait(t)
        assert exc.value.errno == errno.EBADF
        with pytest.raises(OSError):
            s.completed()  # nothing after a failed sync is known durable
        with pytest.raises(ValueError, match="negative file descriptor: fd=-1"):
            s.submit([(-1, True)])
    finally:
        s.close()
    with pytest.raises(RuntimeError, match="Syncer is closed"):
        s.submit([(0, False)])



def test_waiting_for_a_ticket_never_submitted_is_refused(tmp_path) -> None:
    from tickline._aeron import Syncer

    s = Syncer()
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"x")
        t = s.submit([(fd, True)])
        s.wait(t)
        assert s.completed() == t == s.submitted
        with pytest.raises(ValueError, match=f"never submitted: ticket={t + 1} submitted={t}"):
            s.wait(t + 1)  # would otherwise block for ever
    finally:
        s.close()
        os.close(fd)
