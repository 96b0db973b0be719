"""The node's I/O boundary over Aeron, in one process: two members' AeronNodeIO
and a client link on one embedded invoker-mode driver, on loopback UDP; and
the same over IPC, on a shared driver running on its own threads.

Loops are bounded by a count of duty cycles, never by a clock assertion.
"""

import os
import shutil
import uuid

import pytest

from tickline.cluster import wire
from tickline.cluster.aeron_io import IPC_EGRESS_MIN, IPC_ENDPOINT, AeronNodeIO, AeronStack, ClusterLink
from tickline.cluster.errors import ConfigError
from tickline.transport import MediaDriver, free_ports
from tickline.cluster.daemon import SNAPSHOT_CHUNK_BYTES
from tickline.cluster.messages import AppendResponse, InstallSnapshot
from tickline.cluster.protocol import EventCode, SessionEvent

CYCLES = 200_000  # duty cycles before a wait counts as stuck


@pytest.fixture
def stack():
    base = f"/dev/shm/tickline-cluster-io-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    s = AeronStack("io-test", base)
    yield s
    s.close()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def members():
    return dict(zip((1, 2, 3), (("127.0.0.1", p) for p in free_ports(3))))


def wait_for(stack, ios, got, what):
    for _ in range(CYCLES):
        stack.do_work()
        for io, sink in ios:
            io.poll(sink.append)
            io.flush()
        if got():
            return
    raise AssertionError(f"stuck waiting for {what}: stats={[io.stats for io, _ in ios]}")


def test_a_full_snapshot_chunk_reaches_the_peer_whole(stack, members):
    a, b = AeronNodeIO(stack, members, 1), AeronNodeIO(stack, members, 2)
    got_a, got_b = [], []
    wait_for(stack, [(a, got_a), (b, got_b)], lambda: a.peers[2].is_connected, "member 1's publication to member 2")
    # the daemon's chunk size: many UDP datagrams, reassembled by Aeron, under the stream's max message
    data = bytes(range(256)) * (SNAPSHOT_CHUNK_BYTES // 256)
    msg = InstallSnapshot(1, 2, 3, 4096, 2, 3 * len(data) + 5, 12345, len(data), data)
    a.send(2, msg)
    wait_for(stack, [(a, got_a), (b, got_b)], lambda: got_b, "the snapshot chunk at member 2")
    assert got_b == [msg]
    assert a.stats.dropped == 0 and b.stats.malformed == 0


def test_too_large_and_unconnected_sends_are_counted_not_raised_or_blocking(stack, members, caplog):
    a, b = AeronNodeIO(stack, members, 1), AeronNodeIO(stack, members, 2)
    got = []
    wait_for(stack, [(a, got), (b, got)], lambda: a.peers[2].is_connected, "member 1's publication to member 2")
    limit = a.peers[2].max_message_length
    a.send(2, InstallSnapshot(1, 2, 3, 4096, 2, limit, 0, 0, b"x" * limit))
    assert a.stats.too_large == 1
    err = caplog.text  # logged (tickline.cluster), not printed
    assert "max_message_length" in err and f"max_message_length={limit}" in err and "fault=ours" in err and "to=member-2" in err
    a.send(3, AppendResponse(1, 3, 1, True, 0, -1))  # nobody subscribes at member 3's endpoint
    assert a.stats.not_connected == 1
    assert a.stats.sent == 0


def test_egress_follows_the_clients_channel_and_waits_for_its_publication_to_connect(stack, members):
    a = AeronNodeIO(stack, members, 1)
    received = []
    link = ClusterLink(members, stack=stack, client_id=77)
    event = SessionEvent(5, 9, EventCode.OK)
    for _ in range(CYCLES):
        stack.do_work()
        link.poll_egress()
        a.poll(received.append)
        a.flush()
        if link.pubs[1].is_connected:
            break
    assert link.send(1, wire.StatusRequest(77, 0), link.now())  # preceded by the EgressChannel bind
    wait_for(stack, [(a, received)], lambda: received, "the request at member 1")
    assert received == [wire.StatusRequest(77, 0)] and a.clients[77] == (link.egress_channel, link.egress_stream)
    a.send_egress(77, event)  # the new egress publication is still connecting: held, not dropped
    for _ in range(CYCLES):
        stack.do_work()
        a.flush()
        link.poll_egress()
        if link.inbox:
            break
    assert link.inbox == [event]
    assert a.stats.dropped == 0
    a.send_egress(78, event)  # a client that never said where its egress goes
    assert a.stats.unknown_client == 1
    link.close()


def test_a_channel_the_member_cannot_publish_to_is_the_clients_fault(stack, members, caplog):
    a = AeronNodeIO(stack, members, 1)
    a.bind(5, "aeron:udp?endpoint=no-such-host-tickline.invalid:1")
    assert a.stats.bad_channel == 1 and 5 not in a.clients
    err = caplog.text
    assert "client=5" in err and "fault=client" in err


def test_threading_mode_from_the_environment_is_validated(monkeypatch):
    from tickline.cluster.errors import ConfigError
    monkeypatch.setenv("TICKLINE_CLUSTER_AERON_THREADING", "threads")
    with pytest.raises(ConfigError) as exc:
        AeronStack("bad-mode", "/dev/shm")
    assert "key=TICKLINE_CLUSTER_AERON_THREADING value=threads expected=invoker|threaded" in str(exc.value)


def test_after_a_kick_the_owner_must_poll_before_idling(stack, members):
    # A kick turns the driver mid-cycle (before an fsync): what it reads goes
    # into the images after this cycle's poll.  A member that then parked
    # would sit on a received message for the whole park.
    a, b = AeronNodeIO(stack, members, 1), AeronNodeIO(stack, members, 2)
    got_a, got_b = [], []
    wait_for(stack, [(a, got_a), (b, got_b)], lambda: a.peers[2].is_connected, "member 1's publication to member 2")
    msg = AppendResponse(1, 2, 3, True, 4096, -1)
    a.send(2, msg)
    for _ in range(100):
        b.kick()  # sends it and, on this one stack, receives it too
    assert b.polled_since_turn is False  # the owner is told to poll (NodeAgent.do_work counts it as work)
    b.poll(got_b.append)  # no driver turn needed: it is in the image already
    assert got_b == [msg] and b.polled_since_turn is True


@pytest.fixture
def shared_driver():
    """A media driver on its own threads, as ``tickline driver`` would run it for ipc members."""
    d = f"/dev/shm/tickline-cluster-ipc-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    drv = MediaDriver.embedded(d)
    yield d
    drv.close()
    shutil.rmtree(d, ignore_errors=True)


def test_ipc_members_and_a_client_talk_through_the_shared_driver(shared_driver):
    members = {1: IPC_ENDPOINT, 2: IPC_ENDPOINT, 3: IPC_ENDPOINT}
    s1, s2 = AeronStack("m1", shared_driver, shared=True), AeronStack("m2", shared_driver, shared=True)
    a, b = AeronNodeIO(s1, members, 1), AeronNodeIO(s2, members, 2)
    link = ClusterLink(members, aeron_base=shared_driver, client_id=77)
    try:
        assert link.egress_channel == "aeron:ipc" and IPC_EGRESS_MIN <= link.egress_stream < 2**31
        got_a, got_b = [], []

        def cycle():
            for s in (s1, s2):
                s.do_work()
            a.poll(got_a.append)
            b.poll(got_b.append)
            a.flush()
            link.poll_egress()

        for _ in range(CYCLES):
            cycle()
            if a.peers[2].is_connected and link.pubs[1].is_connected:
                break
        msg = AppendResponse(1, 2, 3, True, 4096, -1)
        a.send(2, msg)
        assert link.send(1, wire.StatusRequest(77, 0), link.now())
        for _ in range(CYCLES):
            cycle()
            if got_b and got_a:
                break
        assert got_b == [msg] and got_a == [wire.StatusRequest(77, 0)]
        assert a.clients[77] == ("aeron:ipc", link.egress_stream)
        event = SessionEvent(5, 9, EventCode.OK)
        a.send_egress(77, event)
        for _ in range(CYCLES):
            cycle()
            if link.inbox:
                break
        assert link.inbox == [event]
        # a UDP egress channel is refused by an ipc member: the client's fault, counted, not raised
        a.bind(78, "aeron:udp?endpoint=127.0.0.1:40123", 102)
        assert a.stats.bad_channel == 1 and 78 not in a.clients
        assert a.stats.dropped == 0 and b.stats.dropped == 0
    finally:
        link.close()
        a.close()
        b.close()
        s1.close()
        s2.close()
    assert os.path.isdir(shared_driver)  # a member's stack never removes the shared driver's directory


def test_ipc_without_a_running_driver_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as exc:
        AeronStack("m1", str(tmp_path / "no-driver"), shared=True)
    assert "no running media driver in aeron_dir" in str(exc.value) and f"aeron_dir={tmp_path / 'no-driver'}" in str(exc.value)
    with pytest.raises(ConfigError, match="mix ipc and host:port"):
        ClusterLink({1: IPC_ENDPOINT, 2: ("127.0.0.1", 9000)}, aeron_base=str(tmp_path))
