"""Publications and subscriptions in one process over IPC: offer, try_claim,
poll, fragment assembly, controlled poll, images, and every bad input."""

from __future__ import annotations

import os
import struct
import time

import pytest

from tickline.transport import (
    Aeron,
    BufferClaim,
    ChannelError,
    ChannelUri,
    ClosedError,
    ControlledPollAction,
    FragmentAssembler,
    OfferResult,
    PublicationError,
    RegistrationError,
)

from transport_helpers import ipc_pair, wait_for


def poll_until(sub, handler, n_fragments: int, timeout: float = 5.0) -> int:  # type: ignore[no-untyped-def]
    got = 0
    deadline = time.monotonic() + timeout
    while got < n_fragments:
        got += sub.poll(handler, 10)
        if time.monotonic() > deadline:
            raise AssertionError(f"only {got} of {n_fragments} fragments arrived")
    return got


@pytest.fixture
def pair(aeron: Aeron):  # type: ignore[no-untyped-def]
    return ipc_pair(aeron, 10)


def test_offer_and_poll_zero_copy_with_header(pair) -> None:  # type: ignore[no-untyped-def]
    pub, sub = pair
    got: list[tuple[bytes, int, int, int, int, bool]] = []

    def handler(buffer: memoryview, header) -> None:  # type: ignore[no-untyped-def]
        got.append((bytes(buffer), header.session_id, header.stream_id, header.position, header.flags, buffer.readonly))

    p1 = pub.offer(b"hello")
    p2 = pub.offer(bytearray(b"xxworldxx"), 2, 5)
    p3 = pub.offer(memoryview(b"!"))
    assert 0 < p1 < p2 < p3
    assert poll_until(sub, handler, 3) == 3
    assert [g[0] for g in got] == [b"hello", b"world", b"!"]
    assert {g[1] for g in got} == {pub.session_id} and {g[2] for g in got} == {10}
    assert [g[3] for g in got] == [p1, p2, p3]  # header.position is the position after the fragment
    assert all(g[4] == 0xC0 and g[5] for g in got)  # unfragmented, read-only view


def test_view_and_header_are_only_valid_during_the_call(pair) -> None:  # type: ignore[no-untyped-def]
    pub, sub = pair
    kept = []
    pub.offer(b"abc")
    poll_until(sub, lambda b, h: kept.append((b, h)), 1)
    view, header = kept[0]
    with pytest.raises(ValueError, match="released memoryview"):
        bytes(view)
    # A kept header becomes a frozen copy of its values.
    assert header.session_id == pub.session_id and header.position == pub.position
    assert "Header(session_id=" in repr(header)


def test_try_claim_commit_abort_and_context_manager(pair) -> None:  # type: ignore[no-untyped-def]
    pub, sub = pair
    claim = BufferClaim()
    assert not claim.is_active and len(claim) == 0
    pos = pub.try_claim(8, claim)
    assert pos > 0 and claim.is_active and len(claim) == 8
    struct.pack_into("<q", claim, 0, 1234567)
    claim.reserved_value = 99
    claim.commit()
    assert not claim.is_active
    with pytest.raises(ValueError, match="not active"):
        claim.commit()
    with pytest.raises(BufferError, match="not active"):
        memoryview(claim)

    assert pub.try_claim(4, claim) > 0
    claim.abort()  # becomes padding that subscribers skip

    assert pub.try_claim(3, claim) > 0
    with claim:
        memoryview(claim)[:] = b"end"
    assert pub.try_claim(3, claim) > 0
    with pytest.raises(KeyError):
        with claim:
            raise KeyError("encoding failed")  # aborted, not published
    got: list[tuple[bytes, int]] = []
    poll_until(sub, lambda b, h: got.append((bytes(b), h.reserved_value)), 2)
    assert got == [(struct.pack("<q", 1234567), 99), (b"end", 0)]
    assert sub.poll(lambda b, h: got.append(b), 10) == 0


def test_try_claim_bad_input(pair) -> None:  # type: ignore[no-untyped-def]
    pub, _ = pair
    claim = BufferClaim()
    with pytest.raises(ValueError, match=rf"claim length out of range: length=-1 expected=0..{pub.max_payload_length}"):
        pub.try_claim(-1, claim)
    with pytest.raises(ValueError, match="claim length out of range"):
        pub.try_claim(pub.max_payload_length + 1, claim)
    with pytest.raises(TypeError, match="needs a BufferClaim"):
        pub.try_claim(8, bytearray(8))
    assert pub.try_claim(8, claim) > 0
    with pytest.raises(ValueError, match="still active"):
        pub.try_claim(8, claim)
    claim.abort()


def test_fragmented_messages_reassemble_up_to_max_message_length(pair) -> None:  # type: ignore[no-untyped-def]
    pub, sub = pair
    sizes = [pub.max_payload_length + 1, 3 * pub.max_payload_length + 17, pub.max_message_length]
    messages = [os.urandom(n) for n in sizes]
    got: list[bytes] = []
    assembler = FragmentAssembler(lambda b, h: got.append(bytes(b)))
    for m in messages:
        while pub.offer(m) < 0:
            sub.poll(assembler, 100)  # term is small: drain while offering
    deadline = time.monotonic() + 5
    while len(got) < len(messages) and time.monotonic() < deadline:
        sub.poll(assembler, 100)
    assert got == messages


def test_message_too_large_is_a_terminal_error(pair) -> None:  # type: ignore[no-untyped-def]
    pub, _ = pair
    with pytest.raises(PublicationError, match=rf"message too large: length={pub.max_message_length + 1} max_message_length={pub.max_message_length}"):
        pub.offer(bytes(pub.max_message_length + 1))


def test_offer_bad_arguments(pair) -> None:  # type: ignore[no-untyped-def]
    pub, _ = pair
    with pytest.raises(ValueError, match="offset/length outside the buffer: offset=-1 length=4 buffer_length=3"):
        pub.offer(b"abc", -1, 4)
    with pytest.raises(ValueError, match="offset=2 length=5 buffer_length=3"):
        pub.offer(b"abc", 2, 5)
    with pytest.raises(ValueError, match="offset=0 length=-2"):
        pub.offer(b"abc", 0, -2)
    with pytest.raises(TypeError):
        pub.offer("text is not bytes")
    with pytest.raises(TypeError, match="offer\\(\\) takes 1 to 3 positional arguments: given=0"):
        pub.offer()


def test_not_connected_before_a_subscriber_exists(aeron: Aeron) -> None:
    pub = aeron.add_publication("aeron:ipc", 77)
    assert not pub.is_connected
    assert pub.offer(b"x") == OfferResult.NOT_CONNECTED
    assert pub.try_claim(1, BufferClaim()) == OfferResult.NOT_CONNECTED


def test_back_pressure_when_the_subscriber_stops_polling(pair) -> None:  # type: ignore[no-untyped-def]
    pub, sub = pair
    msg = bytes(1000)
    results = [pub.offer(msg) for _ in range(200)]  # 64 KiB term: the window fills
    assert OfferResult.BACK_PRESSURED in results
    first = results.index(OfferResult.BACK_PRESSURED)
    assert all(r > 0 for r in results[:first])
    sub.drain(1000)
    # The driver moves the publication limit on its next duty cycle.
    wait_for(lambda: pub.offer(msg) > 0, what="space after the subscriber consumed")


def test_offer_batch_and_repeat(pair) -> None:  # type: ignore[no-untyped-def]
    pub, sub = pair
    assert pub.offer_batch([b"a", bytearray(b"bb"), memoryview(b"ccc")]) == 3
    assert pub.offer_repeat(b"zz", 4) == 4
    got: list[bytes] = []
    poll_until(sub, lambda b, h: got.append(bytes(b)), 7)
    assert got == [b"a", b"bb", b"ccc"] + [b"zz"] * 4
    n = pub.offer_repeat(bytes(1000), 500)  # stops at back pressure, says how many went
    assert 0 < n < 500
    with pytest.raises(TypeError, match="sequence of bytes-like"):
        pub.offer_batch(5)
    with pytest.raises(ValueError, match="count must be >= 0: count=-1"):
        pub.offer_repeat(b"x", -1)


def test_offer_frames_sends_each_frame_of_one_buffer_as_its_own_message(pair) -> None:  # type: ignore[no-untyped-def]
    pub, sub = pair
    buf = bytearray(b"aaaabbbbccccdddd")
    assert pub.offer_frames(buf, 0, 4, 3) == 3
    assert pub.offer_frames(memoryview(buf), 8, 4, 2) == 2  # from an offset: frames 2 and 3
    assert pub.offer_frames(b"", 0, 4, 0) == 0
    got: list[bytes] = []
    poll_until(sub, lambda b, h: got.append(bytes(b)), 5)
    assert got == [b"aaaa", b"bbbb", b"cccc", b"cccc", b"dddd"]
    n = pub.offer_frames(bytes(1000 * 500), 0, 1000, 500)  # stops at back pressure, says how many went
    assert 0 < n < 500


@pytest.mark.parametrize("args, error, match", [
    ((bytes(16), 0, 4, 5), ValueError, "frames outside the buffer: offset=0 frame_length=4 count=5 buffer_length=16"),
    ((bytes(16), 13, 4, 1), ValueError, "frames outside the buffer: offset=13"),
    ((bytes(16), 17, 0, 1), ValueError, "frames outside the buffer: offset=17"),
    ((bytes(16), 0, 2**40, 1), ValueError, "frame too large: frame_length=1099511627776"),
    ((bytes(16), 0, 4096, 2**62), ValueError, "frames outside the buffer"),  # frame_length * count overflows
    ((bytes(16), 2**63 - 1, 1, 1), ValueError, "frames outside the buffer"),  # offset + bytes overflows
    ((bytes(16), 0, 1, 2**63 - 1), ValueError, "frames outside the buffer"),
    ((bytes(16), -1, 4, 1), ValueError, "argument=offset value=-1"),
    ((bytes(16), 0, -4, 1), ValueError, "argument=frame_length value=-4"),
    ((bytes(16), 0, 4, -1), ValueError, "argument=count value=-1"),
    ((bytes(16), 0, 4, 2**64), ValueError, "argument=count"),
    ((bytes(16), 0, 4.0, 1), TypeError, "frame_length must be int"),
    ((5, 0, 4, 1), TypeError, "a bytes-like object is required"),
])
def test_offer_frames_refuses_a_bad_range_before_offering_anything(pair, args, error, match) -> None:  # type: ignore[no-untyped-def]
    pub, sub = pair
    before = pub.position
    with pytest.raises(error, match=match):
        pub.offer_frames(*args)
    assert pub.position == before and sub.drain(10) == 0


def test_offer_frames_refuses_a_frame_over_max_message_length(pair) -> None:  # type: ignore[no-untyped-def]
    pub, sub = pair
    n = pub.max_message_length + 1
    with pytest.raises(ValueError, match=f"frame too large: frame_length={n} max_message_length="):
        pub.offer_frames(bytes(n), 0, n, 1)
    pub.close()
    with pytest.raises(ClosedError):
        pub.offer_frames(b"x", 0, 1, 1)


def test_offer_frames_goes_on_across_a_term_rotation_in_one_call(aeron: Aeron) -> None:
    # 64 KiB terms (tests/conftest.py): 80-byte messages take 128 bytes of log each, so
    # after 500 of them a batch of 100 crosses into the next term.  offer_batch stops at the
    # rotation (ADMIN_ACTION); offer_frames retries it and sends the whole batch.
    sub = aeron.add_subscription("aeron:ipc", 11)
    pub = aeron.add_exclusive_publication("aeron:ipc", 11)
    wait_for(lambda: pub.is_connected, what="publication connected")
    frames = bytearray(80 * 100)
    for i in range(100):
        struct.pack_into("<I", frames, 80 * i, i)
    def window_open() -> None:
        sub.drain(1000)
        wait_for(lambda: pub.position_limit >= pub.position + 100 * 128, what="the window to open")

    for _ in range(5):
        window_open()
        assert pub.offer_frames(frames, 0, 80, 100) == 100
    assert pub.position == 500 * 128 < pub.term_buffer_length
    window_open()
    assert pub.offer_frames(frames, 0, 80, 100) == 100
    assert pub.position > pub.term_buffer_length  # rotated inside the call
    got: list[int] = []
    poll_until(sub, lambda b, h: got.append(struct.unpack_from("<I", b)[0]), 100)
    assert got == list(range(100))


def test_controlled_poll_actions(pair) -> None:  # type: ignore[no-untyped-def]
    pub, sub = pair
    for i in range(4):
        pub.offer(bytes([i]))
    seen: list[int] = []

    def abort_first(b: memoryview, h) -> ControlledPollAction:  # type: ignore[no-untyped-def]
        seen.append(b[0])
        return ControlledPollAction.ABORT

    assert sub.controlled_poll(abort_first, 10) == 0  # aborted: nothing consumed
    assert seen == [0]

    def brk(b: memoryview, h) -> ControlledPollAction:  # type: ignore[no-untyped-def]
        seen.append(b[0])
        return ControlledPollAction.BREAK

    assert sub.controlled_poll(brk, 10) == 1  # consumed fragment 0 and stopped
    assert sub.controlled_poll(lambda b, h: seen.append(b[0]), 10) == 3  # None means CONTINUE
    assert seen == [0, 0, 1, 2, 3]
    pub.offer(b"\x09")
    with pytest.raises(ValueError, match="invalid action: value=7"):
        sub.controlled_poll(lambda b, h: 7, 10)


def test_handler_exception_propagates_and_later_fragments_stay(pair) -> None:  # type: ignore[no-untyped-def]
    pub, sub = pair
    for i in range(3):
        pub.offer(bytes([i]))
    seen: list[int] = []

    def handler(b: memoryview, h) -> None:  # type: ignore[no-untyped-def]
        seen.append(b[0])
        if b[0] == 1:
            raise RuntimeError("bad message")

    with pytest.raises(RuntimeError, match="bad message"):
        sub.poll(handler, 10)
    assert seen == [0, 1]
    assert sub.poll(handler, 10) == 1
    assert seen == [0, 1, 2]


def test_image_events_images_and_per_image_poll(aeron: Aeron) -> None:
    events: list[tuple[str, int]] = []
    sub = aeron.add_subscription("aeron:ipc", 20, on_available_image=lambda i: events.append(("up", i.session_id)),
                                 on_unavailable_image=lambda i: events.append(("down", i.session_id)))
    pub = aeron.add_exclusive_publication("aeron:ipc", 20)
    assert pub.is_exclusive
    wait_for(lambda: sub.image_count == 1, what="image")
    assert events == []  # image callbacks run on the polling thread, inside poll
    pub.offer(b"one")
    # The conductor adds the image before it reports it: the event may trail by a poll.
    fragments = 0
    deadline = time.monotonic() + 5
    while not events and time.monotonic() < deadline:
        fragments += sub.poll(lambda b, h: None, 1)
    assert fragments <= 1 and events == [("up", pub.session_id)]
    pub.offer(b"two")
    [img] = sub.images()
    assert img.session_id == pub.session_id and img.position >= 0 and not img.is_closed
    got: list[bytes] = []
    assert sub.poll_image(pub.session_id, lambda b, h: got.append(bytes(b)), 10) == 1
    assert got == [b"two"]
    assert sub.image_status(pub.session_id).position == pub.position
    assert sub.image_status(12345) is None
    with pytest.raises(LookupError, match="no image with this session id: session_id=12345"):
        sub.poll_image(12345, lambda b, h: None, 10)
    pub.close()
    deadline = time.monotonic() + 10
    while ("down", pub.session_id) not in events and time.monotonic() < deadline:
        sub.poll(lambda b, h: None, 10)
        time.sleep(0.01)
    assert events[-1] == ("down", pub.session_id)


def test_use_after_close_raises_closed_error(aeron: Aeron) -> None:
    sub = aeron.add_subscription("aeron:ipc", 30)
    pub = aeron.add_publication("aeron:ipc", 30)
    pub.close()
    pub.close()  # idempotent
    assert pub.is_closed
    with pytest.raises(ClosedError, match="publication is closed: channel=aeron:ipc stream_id=30 reason=closed by user"):
        pub.offer(b"x")
    with pytest.raises(ClosedError):
        pub.try_claim(1, BufferClaim())
    with pytest.raises(ClosedError):
        _ = pub.position
    sub.close()
    with pytest.raises(ClosedError, match="subscription is closed: channel=aeron:ipc stream_id=30 reason=closed by user"):
        sub.poll(lambda b, h: None, 10)
    with pytest.raises(ClosedError):
        sub.drain(10)


def test_client_close_closes_children(driver) -> None:  # type: ignore[no-untyped-def]
    aeron = Aeron(driver.dir)
    pub = aeron.add_publication("aeron:ipc", 31)
    sub = aeron.add_subscription("aeron:ipc", 31)
    aeron.close()
    aeron.close()
    assert aeron.is_closed
    with pytest.raises(ClosedError, match="reason=client closed"):
        pub.offer(b"x")
    with pytest.raises(ClosedError, match="reason=client closed"):
        sub.poll(lambda b, h: None, 1)
    with pytest.raises(ClosedError, match="client is closed: operation=add_publication"):
        aeron.add_publication("aeron:ipc", 1)


def test_poll_bad_arguments(pair) -> None:  # type: ignore[no-untyped-def]
    _, sub = pair
    with pytest.raises(ValueError, match="fragment_limit out of range: fragment_limit=0"):
        sub.poll(lambda b, h: None, 0)
    with pytest.raises(ValueError, match="fragment_limit=-5"):
        sub.drain(-5)
    # one range check for every count argument: beyond a C long is out of range too (checked before narrowing)
    with pytest.raises(ValueError, match=r"poll\(\) argument fragment_limit out of range: fragment_limit=1180591620717411303424 "
                                         r"expected=1\.\.1048576 fault=user"):
        sub.poll(lambda b, h: None, 2**70)
    with pytest.raises(TypeError, match="drain\\(\\) argument fragment_limit must be int: type=float fault=user"):
        sub.drain(1.5)
    with pytest.raises(TypeError, match="poll\\(\\) takes 2 positional arguments: given=1"):
        sub.poll(lambda b, h: None)
    with pytest.raises(TypeError, match="handler must be callable"):
        FragmentAssembler(42)


def test_malformed_channels_and_stream_ids(aeron: Aeron) -> None:
    with pytest.raises(ChannelError, match="unknown channel media: media='tcp'"):
        aeron.add_publication("aeron:tcp?endpoint=x:1", 1)
    with pytest.raises(ChannelError, match="key=term-length value='1000'"):
        aeron.add_subscription("aeron:ipc?term-length=1000", 1)
    with pytest.raises(ValueError, match="stream_id must be a 32-bit integer: stream_id=4294967296"):
        aeron.add_publication("aeron:ipc", 2**32)
    # Values each fine alone but inconsistent together: the driver refuses them.
    with pytest.raises(RegistrationError, match=r"publication registration failed: channel=aeron:ipc\?mtu=65536\|term-length=64k stream_id=1 dir="):
        aeron.add_publication("aeron:ipc?mtu=65536|term-length=64k", 1)
    with pytest.raises(RegistrationError, match="(init-term-id|Invalid argument)"):
        aeron.add_publication("aeron:ipc?init-term-id=1", 1)


def test_channel_uri_objects_are_accepted(aeron: Aeron) -> None:
    sub = aeron.add_subscription(ChannelUri.ipc(), 40)
    pub = aeron.add_publication(ChannelUri.ipc(term_length="128k"), 40)
    assert pub.term_buffer_length == 128 * 1024
    wait_for(lambda: pub.is_connected)
    assert pub.offer(b"uri") > 0
    assert poll_until(sub, lambda b, h: None, 1) == 1


def test_views_are_reused_only_when_nothing_holds_them(pair) -> None:  # type: ignore[no-untyped-def]
    pub, sub = pair
    for m in (b"first", b"second!", b"third", b"fourth"):
        pub.offer(m)
    seen: list[bytes] = []
    kept: list[memoryview] = []
    copies: list[memoryview] = []

    def handler(buffer: memoryview, header) -> None:  # type: ignore[no-untyped-def]
        seen.append(bytes(buffer))
        assert len(buffer) == len(seen[-1]) and buffer.nbytes == len(seen[-1])
        if seen[-1] == b"second!":
            kept.append(buffer)  # kept: must be revoked after the call
        if seen[-1] == b"third":
            copies.append(memoryview(buffer))  # a view made from it: revoked as well

    assert poll_until(sub, handler, 4) == 4
    assert seen == [b"first", b"second!", b"third", b"fourth"]
    for view in (kept[0], copies[0]):
        with pytest.raises(ValueError, match="released memoryview"):
            bytes(view)


def test_poll_one_pulls_fragments_valid_until_the_next_poll(pair) -> None:  # type: ignore[no-untyped-def]
    pub, sub = pair
    assert sub.poll_one() is None and sub.last_header is None
    p1 = pub.offer(b"first")
    p2 = pub.offer(b"second")
    pub.offer(b"third")
    v1 = sub.poll_one()
    assert bytes(v1) == b"first" and v1.readonly
    assert sub.last_header.position == p1 and sub.last_header.session_id == pub.session_id
    v2 = sub.poll_one()  # the previous view is revoked now: it was kept (v1)
    with pytest.raises(ValueError):
        bytes(v1)
    assert bytes(v2) == b"second" and sub.last_header.position == p2
    got: list[bytes] = []
    assert sub.poll(lambda b, h: got.append(bytes(b)), 10) == 1  # a handler poll revokes it too
    with pytest.raises(ValueError):
        bytes(v2)
    assert got == [b"third"] and sub.poll_one() is None
    with pytest.raises(TypeError, match="poll_one\\(\\) takes 0 positional arguments: given=1"):
        sub.poll_one(1)
    sub.close()
    with pytest.raises(ClosedError):
        sub.poll_one()
