"""Subscription.receive_into and Publication.offer_retry over real IPC streams.

receive_into polls in C and copies one whole message into the caller's
buffer: these tests send through a real embedded driver and check the bytes,
the lengths, the one-message-per-call rule, reassembly of fragmented
messages, a buffer too small (an error naming both lengths, the message left
for a retry, the bytes after the buffer untouched), and use after close.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from tickline.transport import Aeron, ClosedError, FragmentAssembler, MessageTooLong, OfferResult

from transport_helpers import ipc_pair, wait_for


def receive(sub, buf, timeout: float = 5.0) -> int:  # type: ignore[no-untyped-def]
    """receive_into until a message arrives (bounded in time)."""
    deadline = time.monotonic() + timeout
    while (n := sub.receive_into(buf, 1000)) is None:
        assert time.monotonic() < deadline, "no message arrived"
    return n


def offer(pub, sub_drain, msg: bytes) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 5
    while pub.offer(msg) < 0:
        assert time.monotonic() < deadline, "offer never succeeded"
        sub_drain()


@pytest.fixture
def pair(aeron: Aeron):  # type: ignore[no-untyped-def]
    return ipc_pair(aeron, 30)


def test_receive_into_copies_each_message_and_returns_its_length(pair) -> None:  # type: ignore[no-untyped-def]
    pub, sub = pair
    buf = bytearray(b"\xee" * 256)
    assert sub.receive_into(buf) is None  # nothing sent yet
    assert sub.receive_into(buf, 50) is None
    messages = [os.urandom(n) for n in (1, 32, 200, 256)] + [b""]
    for m in messages:
        assert pub.offer(m) > 0
    for m in messages:  # one message per call, in order, even though all are waiting
        n = receive(sub, buf)
        assert n == len(m)
        assert bytes(buf[:n]) == m
    assert sub.receive_into(buf, 10) is None


def test_receive_into_fills_any_writable_buffer(pair) -> None:  # type: ignore[no-untyped-def]
    pub, sub = pair
    m = os.urandom(64)
    backing = bytearray(200)
    array = np.zeros(64, dtype=np.uint8)
    for target in (memoryview(backing)[100:], array):
        assert pub.offer(m) > 0
        assert receive(sub, target) == 64
    assert bytes(backing[100:164]) == m and backing[:100] == bytes(100)
    assert array.tobytes() == m
    with pytest.raises(BufferError, match="not writable"):
        sub.receive_into(b"read-only bytes")
    with pytest.raises(BufferError):
        sub.receive_into(memoryview(backing)[::2])  # not contiguous


def test_a_message_longer_than_the_buffer_is_an_error_and_stays_for_a_larger_buffer(pair) -> None:  # type: ignore[no-untyped-def]
    pub, sub = pair
    m = os.urandom(100)
    backing = bytearray(b"\xaa" * 128)
    small = memoryview(backing)[:99]  # one byte short: the 29 bytes after it must stay untouched
    assert pub.offer(m) > 0
    wait_for(lambda: sub.images()[0].position < pub.position, what="message in the log")
    with pytest.raises(MessageTooLong, match=rf"length=100 buffer_length=99 channel=aeron:ipc stream_id=30 "
                                            rf"session_id={pub.session_id} fault=user") as e:
        receive(sub, small)
    assert (e.value.length, e.value.buffer_length) == (100, 99)
    assert isinstance(e.value, ValueError)
    assert backing == b"\xaa" * 128  # nothing was copied
    with pytest.raises(MessageTooLong):  # still there: not consumed
        sub.receive_into(bytearray(0))
    big = bytearray(100)
    assert receive(sub, big) == 100 and bytes(big) == m


def test_fragmented_messages_are_reassembled_natively(pair) -> None:  # type: ignore[no-untyped-def]
    pub, sub = pair
    sizes = [pub.max_payload_length + 1, 3 * pub.max_payload_length + 17, pub.max_message_length]
    messages = [os.urandom(n) for n in sizes]
    buf = bytearray(pub.max_message_length)
    got: list[bytes] = []
    for m in messages:
        deadline = time.monotonic() + 5
        while pub.offer(m) < 0:  # the 64 KiB term is small: receive while offering
            assert time.monotonic() < deadline, "offer never succeeded"
            if (n := sub.receive_into(buf, 100)) is not None:
                got.append(bytes(buf[:n]))
    deadline = time.monotonic() + 5
    while len(got) < len(messages):
        assert time.monotonic() < deadline, "not every message arrived"
        if (n := sub.receive_into(buf, 100)) is not None:
            got.append(bytes(buf[:n]))
    assert got == messages


def test_a_fragmented_message_too_long_for_the_buffer_stays_whole(pair) -> None:  # type: ignore[no-untyped-def]
    pub, sub = pair
    m = os.urandom(3 * pub.max_payload_length + 5)
    assert pub.offer(m) > 0
    wait_for(lambda: sub.images()[0].position < pub.position, what="message in the log")
    small = bytearray(len(m) - 1)
    with pytest.raises(MessageTooLong, match=rf"length={len(m)} buffer_length={len(m) - 1} "):
        receive(sub, small)
    buf = bytearray(len(m))
    assert receive(sub, buf) == len(m) and bytes(buf) == m


def test_messages_of_two_publishers_interleaved_in_fragments_stay_whole(aeron: Aeron) -> None:
    # Two sessions on one subscription, each sending messages of several
    # fragments: the reassembly is per session and one call takes one message.
    sub = aeron.add_subscription("aeron:ipc", 31)
    a = aeron.add_exclusive_publication("aeron:ipc", 31)
    b = aeron.add_exclusive_publication("aeron:ipc", 31)
    wait_for(lambda: a.is_connected and b.is_connected and sub.image_count == 2, what="two images")
    size = 2 * a.max_payload_length + 9
    sent: dict[int, list[bytes]] = {a.session_id: [], b.session_id: []}
    got: list[bytes] = []
    buf = bytearray(size)

    def take() -> None:
        if (n := sub.receive_into(buf, 10)) is not None:
            got.append(bytes(buf[:n]))

    for i in range(20):
        for p in (a, b):
            m = bytes([p.session_id & 0xFF, i]) + os.urandom(size - 2)
            offer(p, take, m)
            sent[p.session_id].append(m)
    deadline = time.monotonic() + 5
    while len(got) < 40:
        assert time.monotonic() < deadline, f"only {len(got)} of 40 messages arrived"
        take()
    for p in (a, b):
        assert [m for m in got if m[0] == p.session_id & 0xFF] == sent[p.session_id]


def test_receive_into_after_close_and_bad_arguments(aeron: Aeron) -> None:
    sub = aeron.add_subscription("aeron:ipc", 32)
    buf = bytearray(8)
    with pytest.raises(ValueError, match=r"spins=0 expected=1\.\.1000000000 fault=user"):
        sub.receive_into(buf, 0)
    with pytest.raises(ValueError, match=r"spins=1000000001"):
        sub.receive_into(buf, 1_000_000_001)
    with pytest.raises(TypeError, match="spins must be int"):
        sub.receive_into(buf, 1.5)
    with pytest.raises(TypeError, match="takes 1 to 2 positional arguments"):
        sub.receive_into()
    sub.close()
    with pytest.raises(ClosedError, match="subscription is closed: channel=aeron:ipc stream_id=32 reason=closed by user"):
        sub.receive_into(buf)
    other = aeron.add_subscription("aeron:ipc", 33)
    aeron.close()
    with pytest.raises(ClosedError, match="reason=client closed"):
        other.receive_into(buf)


def test_receive_into_from_a_handler_of_the_same_subscription_is_refused(pair) -> None:  # type: ignore[no-untyped-def]
    pub, sub = pair
    errors: list[str] = []

    def handler(buffer: memoryview, header: object) -> None:
        try:
            sub.receive_into(bytearray(8))
        except RuntimeError as e:
            errors.append(str(e))

    assert pub.offer(b"12345678") > 0
    deadline = time.monotonic() + 5
    while not errors:
        assert time.monotonic() < deadline
        sub.poll(FragmentAssembler(handler), 1)
    assert "receive_into() called from a handler or callback of a poll of the same subscription" in errors[0]


def test_offer_retry_retries_back_pressure_and_returns_what_does_not_clear(pair, aeron: Aeron) -> None:  # type: ignore[no-untyped-def]
    pub, sub = pair
    msg = bytes(1000)
    results = [pub.offer_retry(msg, 0) for _ in range(200)]  # 64 KiB term, nobody polls: the window fills
    assert OfferResult.BACK_PRESSURED in results
    assert pub.offer_retry(msg, 1000) == OfferResult.BACK_PRESSURED  # still full after the retries
    sub.drain(1000)
    wait_for(lambda: pub.offer_retry(msg, 100_000) > 0, what="space after the subscriber consumed")
    lonely = aeron.add_publication("aeron:ipc", 34)  # no subscriber: NOT_CONNECTED comes back as it is
    assert lonely.offer_retry(msg, 1000) == OfferResult.NOT_CONNECTED
    with pytest.raises(ValueError, match=r"spins=-1 expected=0\.\.1000000000"):
        pub.offer_retry(msg, -1)
    pub.close()
    with pytest.raises(ClosedError):
        pub.offer_retry(msg)
