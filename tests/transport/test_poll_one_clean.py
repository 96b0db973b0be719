"""poll_one() views against the driver cleaning the log behind the subscriber.

poll_one() consumes the fragment it returns: the image's subscriber position
moves past it before Python reads the view.  For an IPC publication the
media driver's conductor zeroes the log up to the slowest subscriber's
position whenever it moves the publisher limit, so a view over the log itself
could read zeros (or a later message) while it was still supposed to be
valid.  The view now covers a copy the subscription owns.
"""

from __future__ import annotations

import struct
import time
import pytest

from tickline.transport import Aeron, ClosedError, Publication, Subscription

SIZE = 32  # sequence number at both ends, zeros between
CHANNEL = "aeron:ipc?term-length=65536"


def connect(aeron: Aeron, channel: str, stream_id: int, publications: int = 1,
            exclusive: bool = False) -> tuple[Subscription, list[Publication]]:
    """A subscription and its connected publications (bounded wait)."""
    sub = aeron.add_subscription(channel, stream_id)
    add = aeron.add_exclusive_publication if exclusive else aeron.add_publication
    pubs = [add(channel, stream_id) for _ in range(publications)]
    deadline = time.monotonic() + 10
    while not (all(p.is_connected for p in pubs) and sub.image_count == publications):
        assert time.monotonic() < deadline, f"not connected: channel={channel} stream_id={stream_id}"
        time.sleep(0.001)
    return sub, pubs


def next_view(sub: Subscription) -> memoryview:
    """The next poll_one() view, waiting for it a bounded time."""
    deadline = time.monotonic() + 10
    while (view := sub.poll_one()) is None:
        assert time.monotonic() < deadline, "no fragment arrived"
    return view


def message(seq: int, out: bytearray) -> bytearray:
    struct.pack_into("<q", out, 0, seq)
    struct.pack_into("<q", out, SIZE - 8, seq)
    return out


def test_poll_one_views_never_read_the_cleaned_log(aeron: Aeron) -> None:
    # The reproduction: one publisher, one subscriber pulling with poll_one(),
    # 200,000 sequence-numbered messages on 64 KiB terms (the conductor
    # cleans a few times per term).  Each view is read in full after
    # poll_one returned; on the old code some were all zeros (gaps in the
    # sequence).
    count = 200_000
    sub, (pub,) = connect(aeron, CHANNEL, 41)
    out = bytearray(SIZE)
    sent = expected = 0
    zero_views: list[int] = []  # the sequence number each all-zero view should have carried
    wrong: list[tuple[int, int, int]] = []  # (expected, first, last) of views with another message
    zero = bytes(SIZE)
    deadline = time.monotonic() + 120  # a bound, not a timing assertion
    while expected < count:
        assert time.monotonic() < deadline, f"only {expected} of {count} messages arrived"
        while sent < count and pub.offer(message(sent + 1, out)) > 0:
            sent += 1
        while (view := sub.poll_one()) is not None:
            expected += 1
            data = bytes(view)
            if data == zero:
                zero_views.append(expected)
                continue
            first, last = struct.unpack_from("<q", data, 0)[0], struct.unpack_from("<q", data, SIZE - 8)[0]
            if (first, last) != (expected, expected) or len(data) != SIZE:
                wrong.append((expected, first, last))
    assert zero_views == [], f"all-zero poll_one views: count={len(zero_views)} at={zero_views[:20]}"
    assert wrong == [], f"views with another message: count={len(wrong)} first={wrong[:20]}"
    assert expected == count and sub.poll_one() is None


def test_poll_one_view_holds_its_fragment_after_the_driver_cleaned_its_place(aeron: Aeron) -> None:
    # Deterministic: a fragment longer than the conductor's trip gain (an
    # eighth of the publication window) moves the subscriber position far
    # enough that the conductor's next duty cycle cleans the log up to it and
    # only then raises the publisher limit to position + window.  Once the
    # limit shows that, the fragment's place in the log is zeros; the view
    # (and a view made from it) must still show the fragment.  The next
    # poll_one revokes both.
    channel = "aeron:ipc?term-length=65536|mtu=8192"
    sub, (pub,) = connect(aeron, channel, 42)
    window = pub.position_limit - pub.position  # nothing consumed yet
    assert window > 0
    big = bytes(range(256)) * 31 + b"tail"  # 7940 bytes: one fragment (mtu 8192)
    assert len(big) <= pub.max_payload_length
    assert pub.offer(big) > 0 and pub.offer(b"next") > 0
    view = next_view(sub)
    derived = view[-4:]
    header = sub.last_header
    assert header is not None
    position = header.position
    assert position > window // 8
    deadline = time.monotonic() + 10
    while pub.position_limit < position + window:  # the conductor cleans, then moves the limit
        assert time.monotonic() < deadline, "the conductor did not move the publisher limit"
        time.sleep(0.001)
    assert bytes(view) == big, "the view lost its fragment to the driver's clean-up"
    assert bytes(derived) == b"tail"
    nxt = sub.poll_one()
    assert nxt is not None and bytes(nxt) == b"next"
    for v in (view, derived):
        with pytest.raises(ValueError, match="released"):
            bytes(v)
    assert sub.poll_one() is None


def test_poll_one_across_images_keeps_each_sessions_order(aeron: Aeron) -> None:
    # Two exclusive publications on one stream: two images with their own
    # session ids.  Every view carries its session's next sequence number,
    # last_header names that session, and no view is zeros.
    count = 20_000
    sub, pubs = connect(aeron, CHANNEL, 43, publications=2, exclusive=True)
    assert pubs[0].session_id != pubs[1].session_id
    out = bytearray(SIZE)
    sent = {p.session_id: 0 for p in pubs}
    seen = {p.session_id: 0 for p in pubs}
    bad: list[tuple[int, int, bytes]] = []
    zero = bytes(SIZE)
    deadline = time.monotonic() + 120
    while min(seen.values()) < count:
        assert time.monotonic() < deadline, f"only {seen} of {count} per session arrived"
        for p in pubs:
            while sent[p.session_id] < count and p.offer(message(sent[p.session_id] + 1, out)) > 0:
                sent[p.session_id] += 1
        while (view := sub.poll_one()) is not None:
            header = sub.last_header
            assert header is not None
            session = header.session_id
            seen[session] += 1
            data = bytes(view)
            if data == zero or data != bytes(message(seen[session], bytearray(SIZE))):
                bad.append((session, seen[session], data))
    assert bad == [], f"views out of order or zeros: count={len(bad)} first={bad[:5]}"
    assert seen == {p.session_id: count for p in pubs}
    sub.close()
    with pytest.raises(ClosedError):
        sub.poll_one()


def test_poll_one_buffer_grows_and_drain_revokes_the_view(aeron: Aeron) -> None:
    # A small fragment, then one longer than the subscription's first buffer
    # (4 KiB): the buffer grows while a view made from the small one is held;
    # that view is revoked, the big one is whole.  drain() revokes as well.
    channel = "aeron:ipc?term-length=65536|mtu=16384"
    sub, (pub,) = connect(aeron, channel, 44)
    big = bytes(range(251)) * 50  # 12550 bytes, one fragment
    for m in (b"small", big, b"after"):
        assert pub.offer(m) > 0
    small = next_view(sub)
    derived = small[1:]
    assert bytes(small) == b"small" and bytes(derived) == b"mall"
    view = sub.poll_one()
    assert view is not None and bytes(view) == big and len(view) == len(big) and view.readonly
    for v in (small, derived):
        with pytest.raises(ValueError, match="released"):
            bytes(v)
    kept = view[-10:]
    assert sub.drain(10) == 1  # "after"
    for v in (view, kept):
        with pytest.raises(ValueError, match="released"):
            bytes(v)
    assert sub.poll_one() is None
