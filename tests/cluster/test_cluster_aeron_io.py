"""The node's I/O boundary over Aeron, in one process: two members' AeronNodeIO
and a client link on one embedded invoker-mode driver, on loopback UDP.

Loops are bounded by a count of duty cycles, never by a clock assertion.
"""

import os
import shutil
import uuid

import pytest

from tickline.cluster import wire
from tickline.cluster.aeron_io import AeronNodeIO, AeronStack, ClusterLink, free_udp_port
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
    return {1: ("127.0.0.1", free_udp_port()), 2: ("127.0.0.1", free_udp_port()), 3: ("127.0.0.1", free_udp_port())}


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


def test_too_large_and_unconnected_sends_are_counted_not_raised_or_blocking(stack, members, capfd):
    a, b = AeronNodeIO(stack, members, 1), AeronNodeIO(stack, members, 2)
    got = []
    wait_for(stack, [(a, got), (b, got)], lambda: a.peers[2].is_connected, "member 1's publication to member 2")
    limit = a.peers[2].max_message_length
    a.send(2, InstallSnapshot(1, 2, 3, 4096, 2, limit, 0, 0, b"x" * limit))
    assert a.stats.too_large == 1
    err = capfd.readouterr().err
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
    assert received == [wire.StatusRequest(77, 0)] and a.clients[77] == link.egress_channel
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


def test_a_channel_the_member_cannot_publish_to_is_the_clients_fault(stack, members, capfd):
    a = AeronNodeIO(stack, members, 1)
    a.bind(5, "aeron:udp?endpoint=no-such-host-tickline.invalid:1")
    assert a.stats.bad_channel == 1 and 5 not in a.clients
    err = capfd.readouterr().err
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
