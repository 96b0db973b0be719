"""Replay-merge: a late joiner replays the recording of a live stream that keeps
publishing, catches up, switches to the live stream, and sees every message
exactly once, in order (no gap, no duplicate at the switch)."""

from __future__ import annotations

import time

from tickline.archive.replay_merge import ReplayMerge

from archive_helpers import live_recording, message


def test_a_late_joiner_replays_then_merges_into_the_live_stream_without_gap_or_duplicate(aeron, archive_client):
    _, pub, d = live_recording(aeron, archive_client, 6001)
    sent = 0

    def publish_some(n: int) -> None:
        nonlocal sent
        for _ in range(n):
            if pub.offer(message(sent)) < 0:
                return  # back pressure: try again next turn, the live stream never blocks the test
            sent += 1

    while sent < 2000:
        publish_some(100)
        time.sleep(0.001)
    got: list[tuple[bytes, int]] = []
    merge = ReplayMerge(aeron, archive_client, d.recording_id, "aeron:ipc", 6001,
                        lambda m, pos: got.append((m, pos)), replay_stream_id=6101)
    deadline = time.monotonic() + 60
    merged_at = None
    while merged_at is None or len(got) < sent or sent < merged_at + 500:
        assert time.monotonic() < deadline, f"state={merge.state} got={len(got)} sent={sent}"
        if merged_at is None or sent < merged_at + 500:
            publish_some(5)  # the live stream keeps going throughout
        if merge.poll(50) == 0:
            time.sleep(0.0005)
        if merge.is_merged and merged_at is None:
            merged_at = sent
    merge.close()
    assert merge.join_position is not None and merge.join_position > 0
    indices = [int.from_bytes(m[:4], "little") for m, _ in got]
    assert indices == list(range(sent))  # every message once, in order, across the switch
    assert [m for m, _ in got] == [message(i) for i in range(sent)]
    positions = [p for _, p in got]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert any(p > merge.join_position for p in positions)  # messages arrived live after the switch


def test_a_join_at_a_term_boundary_after_padding_merges(aeron, archive_client):
    """The live stream joins where a term ends in padding (an offer that did not fit wrote the
    padding and answered ADMIN_ACTION, so the tail sits on the next term's first byte).  The
    replay's last message ends before the padding: the merge must still see it reached the
    join position (the image's position, past the padding), not wait for a message there."""
    from tickline.transport import OfferResult

    term = 64 * 1024
    _, pub, d = live_recording(aeron, archive_client, 6002, channel=f"aeron:ipc?term-length={term}")
    sent, big = 0, bytes(1000)

    def offer(m: bytes) -> int:
        return int(pub.offer(m))

    deadline = time.monotonic() + 30
    while True:  # 1000-byte messages until one does not fit the term: padding, then ADMIN_ACTION
        assert time.monotonic() < deadline
        r = offer(i_message(sent, big))
        if r == OfferResult.ADMIN_ACTION:
            break
        if r > 0:
            sent += 1
        else:
            time.sleep(0.0005)
    assert pub.position % term == 0 and pub.position > 0
    while archive_client.describe(d.recording_id).stop_position < pub.position:  # the recorder has it all
        assert time.monotonic() < deadline
        time.sleep(0.001)
    got: list[bytes] = []
    merge = ReplayMerge(aeron, archive_client, d.recording_id, "aeron:ipc", 6002,
                        lambda m, pos: got.append(m), replay_stream_id=6102)
    while merge.state in ("replay", "attach"):
        assert time.monotonic() < deadline, f"state={merge.state}"
        if merge.poll(50) == 0:
            time.sleep(0.0005)
    assert merge.join_position == pub.position  # joined exactly at the term boundary
    more = sent + 20
    while len(got) < more:
        assert time.monotonic() < deadline, f"state={merge.state} got={len(got)} sent={sent}"
        if sent < more and offer(i_message(sent, big)) > 0:
            sent += 1
        if merge.poll(50) == 0:
            time.sleep(0.0005)
    merge.close()
    assert merge.is_merged
    assert got == [i_message(i, big) for i in range(more)]


def i_message(i: int, body: bytes) -> bytes:
    return i.to_bytes(4, "little") + body[4:]
