"""Record IPC streams through a running archive, replay them: bounded, from a
position, following a live recording, several at once, stopped; and the
errors a bad replay request gets."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time

import pytest

from tickline.archive import ErrorCode, RecordingState, RequestError, replay_image_session_id

from archive_helpers import (collect, collect_to_end, direct_replayer, live_recording, message, publish, record_stopped,
                             recorded_to, wait_until)


def test_a_recorded_stream_replays_every_message_in_order(aeron, archive_client, running_archive):
    msgs = [message(i) for i in range(3000)]  # ~500 KB: several 64 KiB terms and 128 KiB segments, with padding
    d = record_stopped(aeron, archive_client, 1001, msgs)
    assert d.start_position == 0 and d.term_buffer_length == 64 * 1024 and d.segment_file_length == 128 * 1024
    assert d.stop_position > 4 * d.segment_file_length
    sub = aeron.add_subscription("aeron:ipc", 2001)
    rs = archive_client.replay(d.recording_id, channel="aeron:ipc", stream_id=2001)
    assert collect(sub, replay_image_session_id(rs), len(msgs)) == msgs
    # the replay ends at the stop position: its image reaches end of stream there
    sid = replay_image_session_id(rs)
    wait_until(lambda: sub.image_status(sid) is None or sub.image_status(sid).is_end_of_stream, what="end of replay")
    assert running_archive.archive.counters["bytes_replayed"] >= d.stop_position


def test_a_replay_from_a_frame_for_a_length_gives_exactly_those_messages(aeron, archive_client):
    msgs = [message(i) for i in range(400)]
    pub_positions = []
    sub_id, pub, d = live_recording(aeron, archive_client, 1002)
    for m in msgs:
        pub_positions.append(pub.position)
        publish(pub, [m])
    end = recorded_to(archive_client, d.recording_id, pub)
    archive_client.stop_recording(sub_id)
    start, stop = pub_positions[100], pub_positions[250]
    sub = aeron.add_subscription("aeron:ipc", 2002)
    rs = archive_client.replay(d.recording_id, position=start, length=stop - start, stream_id=2002)
    got = collect(sub, replay_image_session_id(rs), 150)
    assert got == msgs[100:250]
    time.sleep(0.2)
    assert collect(sub, replay_image_session_id(rs), 0) == []  # nothing past the length


def test_bad_replay_requests_get_errors_naming_the_recording_and_position(aeron, archive_client):
    msgs = [message(i) for i in range(50)]
    d = record_stopped(aeron, archive_client, 1003, msgs)
    with pytest.raises(RequestError, match="unknown recording") as e:
        archive_client.replay(d.recording_id + 100, stream_id=2003)
    assert e.value.code == ErrorCode.UNKNOWN_RECORDING
    with pytest.raises(RequestError, match="past the stop position") as e:
        archive_client.replay(d.recording_id, position=0, length=d.stop_position + 32, stream_id=2003)
    assert e.value.code == ErrorCode.BAD_POSITION
    with pytest.raises(RequestError, match="past the recorded position"):
        archive_client.replay(d.recording_id, position=d.stop_position + 64, stream_id=2003)
    # 64 is frame aligned but inside the first frame (message 0 is 3008 bytes: an MTU-long first fragment)
    with pytest.raises(RequestError, match="not on a frame boundary") as e:
        archive_client.replay(d.recording_id, position=64, stream_id=2003)
    assert e.value.code == ErrorCode.BAD_POSITION and f"recording_id={d.recording_id}" in str(e.value)
    assert "position=64" in str(e.value)
    with pytest.raises(RequestError, match="not frame aligned"):
        archive_client.replay(d.recording_id, position=40, stream_id=2003)
    with pytest.raises(RequestError) as e:
        archive_client.stop_replay(12345)
    assert e.value.code == ErrorCode.UNKNOWN_REPLAY
    with pytest.raises(RequestError) as e:
        archive_client.stop_recording(999999)
    assert e.value.code == ErrorCode.UNKNOWN_SUBSCRIPTION


def test_an_unbounded_replay_follows_a_live_recording_until_it_stops(aeron, archive_client):
    sub_id, pub, d = live_recording(aeron, archive_client, 1004)
    first = [message(i) for i in range(200)]
    publish(pub, first)
    sub = aeron.add_subscription("aeron:ipc", 2004)
    rs = archive_client.replay(d.recording_id, stream_id=2004)
    sid = replay_image_session_id(rs)
    assert collect(sub, sid, 200) == first
    later = [message(i) for i in range(200, 1500)]
    publish(pub, later)  # recorded after the replay caught up: the replay follows it
    assert collect(sub, sid, len(later)) == later
    end = pub.position
    archive_client.stop_recording(sub_id)
    pub.close()
    assert archive_client.describe(d.recording_id).stop_position == end
    wait_until(lambda: sub.image_status(sid) is None or sub.image_status(sid).is_end_of_stream, what="replay to end")


def test_many_replays_at_once_and_a_stopped_one(aeron, archive_client, running_archive):
    msgs = [message(i) for i in range(1500)]
    d = record_stopped(aeron, archive_client, 1005, msgs)
    subs = [aeron.add_subscription("aeron:ipc", 2100 + k) for k in range(4)]
    ids = [archive_client.replay(d.recording_id, stream_id=2100 + k) for k in range(4)]
    assert len(running_archive.archive.replays) >= 1
    for sub, rs in zip(subs[:3], ids[:3]):
        assert collect(sub, replay_image_session_id(rs), len(msgs)) == msgs
    # the 4th is stopped (its subscriber has not read, so it is still at it or done; either way it goes)
    try:
        archive_client.stop_replay(ids[3])
    except RequestError as e:
        assert e.code == ErrorCode.UNKNOWN_REPLAY  # it had already finished
    wait_until(lambda: ids[3] not in running_archive.archive.replays, what="replay stopped")


def test_recording_events_say_started_progress_and_stopped(aeron, archive_client):
    from tickline.archive import RecordingEvents, wire

    sub = RecordingEvents(aeron)
    msgs = [message(i) for i in range(300)]
    d = record_stopped(aeron, archive_client, 1006, msgs)
    events: list = []
    wait_until(lambda: sub.poll(events.append) == 0 and any(isinstance(e, wire.RecordingStopped) for e in events),
               what="stopped event")
    assert sub.skipped == 0
    sub.close()
    mine = [e for e in events if e.recording_id == d.recording_id]
    assert mine[0] == wire.RecordingStarted(d.recording_id, 0, d.session_id, 1006, "aeron:ipc", d.source_identity)
    assert mine[-1] == wire.RecordingStopped(d.recording_id, 0, d.stop_position)
    progress = [e.position for e in mine if isinstance(e, wire.RecordingProgress)]
    assert progress and progress == sorted(progress) and progress[-1] == d.stop_position


def test_the_cli_lists_describes_and_verifies_recordings(aeron, archive_client, archive_dir, capsys):
    from tickline.cli import main

    d = record_stopped(aeron, archive_client, 1007, [message(i) for i in range(100)])
    assert main(["archive", "list", "--dir", str(archive_dir), "--stream-id", "1007"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[1].split()[:6] == [str(d.recording_id), "STOPPED", "1007", str(d.session_id), "0",
                                                     str(d.stop_position)]
    assert main(["archive", "describe", "--dir", str(archive_dir), str(d.recording_id)]) == 0
    out = capsys.readouterr().out
    assert f"stop_position: {d.stop_position}" in out and "state: STOPPED" in out and "original_channel: aeron:ipc" in out
    assert "checksum: none" in out and f"segment_dir: {archive_dir} (the archive's)" in out
    assert main(["archive", "verify", "--dir", str(archive_dir), str(d.recording_id)]) == 0
    assert "result=ok" in capsys.readouterr().out
    assert main(["archive", "dump", "--dir", str(archive_dir), str(d.recording_id), "--count", "3", "--bytes", "4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[0].startswith("position=0 length=") and "type=DATA" in lines[0]
    # message 0 is 3008 bytes: fragmented, its first frame begins it (flags 0x80), the next is a middle one
    assert "flags=0x80" in lines[0] and lines[0].endswith("payload=" + message(0)[:4].hex())
    assert lines[1].startswith("position=1408 length=1408 type=DATA flags=0x00")
    assert main(["archive", "describe", "--dir", str(archive_dir), "999"]) == 1
    assert "unknown recording: recording_id=999" in capsys.readouterr().err
    assert main(["archive", "list", "--dir", str(archive_dir / "nope")]) == 1
    assert "no archive catalog" in capsys.readouterr().err


def test_truncate_cuts_a_stopped_recording_at_a_frame_and_purge_deletes_one(aeron, archive_client, archive_dir):
    msgs = [message(i) for i in range(1500)]
    sub_id, pub, d = live_recording(aeron, archive_client, 1008)
    positions = []
    for m in msgs:
        positions.append(pub.position)
        publish(pub, [m])
    end = recorded_to(archive_client, d.recording_id, pub)
    with pytest.raises(RequestError, match="still recording") as e:
        archive_client.truncate_recording(d.recording_id, positions[10])
    assert e.value.code == ErrorCode.RECORDING_ACTIVE
    with pytest.raises(RequestError) as e:
        archive_client.purge_recording(d.recording_id)
    assert e.value.code == ErrorCode.RECORDING_ACTIVE
    archive_client.stop_recording(sub_id)
    pub.close()
    cut = positions[700]
    with pytest.raises(RequestError, match="not on a frame boundary") as e:
        archive_client.truncate_recording(d.recording_id, cut + 32)  # inside message 700's frame (>= 64 bytes)
    assert e.value.code == ErrorCode.BAD_POSITION
    archive_client.truncate_recording(d.recording_id, cut)
    assert archive_client.describe(d.recording_id).stop_position == cut
    segs = sorted(int(p.stem.split("-")[1]) for p in archive_dir.glob(f"{d.recording_id}-*.rec"))
    assert segs == list(range(0, cut, d.segment_file_length))  # the segments after the cut are gone
    sub = aeron.add_subscription("aeron:ipc", 2008)
    rs = archive_client.replay(d.recording_id, stream_id=2008)
    got, last = collect_to_end(sub, replay_image_session_id(rs))
    assert got == msgs[:700] and last == cut
    r = subprocess.run([sys.executable, "-m", "tickline", "archive", "verify", "--dir", str(archive_dir),
                        str(d.recording_id)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "result=ok" in r.stdout
    archive_client.purge_recording(d.recording_id)
    assert archive_client.describe(d.recording_id) is None
    assert list(archive_dir.glob(f"{d.recording_id}-*.rec")) == []
    with pytest.raises(RequestError) as e:
        archive_client.replay(d.recording_id, stream_id=2008)
    assert e.value.code == ErrorCode.UNKNOWN_RECORDING


def test_the_archive_directory_and_its_files_are_private(driver, aeron, tmp_path):
    from archive_helpers import RunningArchive

    from tickline.archive import ArchiveClient

    a = RunningArchive(driver.dir, tmp_path / "new" / "archive", segment_length=128 * 1024)
    try:
        with ArchiveClient.connect(aeron) as client:
            record_stopped(aeron, client, 1009, [message(i) for i in range(10)])
    finally:
        a.close()
    d = tmp_path / "new" / "archive"
    assert d.stat().st_mode & 0o777 == 0o700
    files = list(d.iterdir())
    assert {f.suffix for f in files} >= {".rec", ".bin", ".lock"}
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in files), [(f.name, oct(f.stat().st_mode)) for f in files]


def test_a_udp_stream_is_recorded_and_replayed_over_udp(aeron, archive_client):
    from tickline.transport import free_ports

    live_port, replay_port = free_ports(2)
    live = f"aeron:udp?endpoint=127.0.0.1:{live_port}"
    replay = f"aeron:udp?endpoint=127.0.0.1:{replay_port}"
    archive_client.start_recording(live, 1010)
    pub = aeron.add_exclusive_publication(live, 1010)
    d = archive_client.wait_for_recording(1010, pub.session_id)
    assert d.source_identity.startswith("127.0.0.1:") and d.stripped_channel == live
    msgs = [message(i) for i in range(1000)]
    publish(pub, msgs)
    end = recorded_to(archive_client, d.recording_id, pub)
    sub = aeron.add_subscription(replay, 2010)
    rs = archive_client.replay(d.recording_id, length=end, channel=replay, stream_id=2010)
    got, last = collect_to_end(sub, replay_image_session_id(rs))
    assert got == msgs and last == end


def test_a_list_answers_at_most_1000_descriptors_and_pages_by_recording_id(driver, aeron, tmp_path):
    from archive_helpers import RunningArchive

    from tickline.archive import ArchiveClient, Catalog
    from tickline.archive.wire import RecordingDescriptor

    dir = tmp_path / "many"
    dir.mkdir(mode=0o700)
    cat = Catalog(dir)
    for i in range(1500):
        cat.add(RecordingDescriptor(0, 0, 0, 1, 2, 0, 64, 1 << 20, 5, 65536, 1408, i, 10 + i % 2, RecordingState.STOPPED,
                                    "aeron:ipc", "aeron:ipc", "x"))
    cat.save()
    a = RunningArchive(driver.dir, dir)
    try:
        with ArchiveClient.connect(aeron) as client:
            first = client.list_recordings(count=5000)
            assert [d.recording_id for d in first] == list(range(1000))
            rest = client.list_recordings(from_recording_id=1000, count=5000)
            assert [d.recording_id for d in rest] == list(range(1000, 1500))
            odd = client.list_recordings(from_recording_id=1400, stream_id=11)
            assert [d.recording_id for d in odd] == list(range(1401, 1500, 2))
    finally:
        a.close()
    assert not a.errors


def test_a_stopped_recording_is_extended_by_a_publication_that_continues_it(aeron, archive_client):
    from tickline.archive.daemon import replay_channel

    first = [message(i) for i in range(700)]
    d = record_stopped(aeron, archive_client, 1011, first)
    # a publication that does not continue it (a fresh stream at position 0) is refused, nothing changes
    # (on another stream: the recorded publication's image may still linger on 1011, and it does continue it)
    sub_id = archive_client.extend_recording(d.recording_id, "aeron:ipc", 1013)
    wrong = aeron.add_exclusive_publication("aeron:ipc", 1013)
    errors = wait_until(archive_client.poll_errors, what="refusal")
    assert errors[0].error_code == ErrorCode.BAD_POSITION and "extension refused" in errors[0].error_message
    assert f"join_position=0(recording {d.stop_position})" in errors[0].error_message
    now = archive_client.describe(d.recording_id)
    assert dataclasses.replace(now, correlation_id=0) == dataclasses.replace(d, correlation_id=0)
    archive_client.stop_recording(sub_id)
    wrong.close()
    # the same session, term geometry and position: recorded into the same recording
    sub_id = archive_client.extend_recording(d.recording_id, "aeron:ipc", 1012)
    channel = replay_channel(f"aeron:ipc?session-id={d.session_id}", d, d.stop_position)
    pub = aeron.add_exclusive_publication(channel, 1012)
    assert pub.position == d.stop_position
    wait_until(lambda: archive_client.describe(d.recording_id).state == RecordingState.RECORDING, what="extension")
    more = [message(i) for i in range(700, 1600)]
    publish(pub, more)
    end = recorded_to(archive_client, d.recording_id, pub)
    archive_client.stop_recording(sub_id)
    pub.close()
    e = archive_client.describe(d.recording_id)
    assert e.state == RecordingState.STOPPED and e.start_position == d.start_position and e.stop_position == end
    sub = aeron.add_subscription("aeron:ipc", 2011)
    rs = archive_client.replay(d.recording_id, stream_id=2011)
    got, last = collect_to_end(sub, replay_image_session_id(rs))
    assert got == first + more and last == end


def test_tickline_stat_shows_the_recording_position_and_the_archive_totals(driver, aeron, archive_client, running_archive):
    from tickline.transport import read_stat

    sub_id, pub, d = live_recording(aeron, archive_client, 1014)
    publish(pub, [message(i) for i in range(500)])
    end = pub.position

    def rec_pos():
        rows = read_stat(driver.dir).counter(f"^rec-pos: recording_id={d.recording_id} stream_id=1014 session_id={d.session_id}")
        return rows[0] if rows and rows[0].value == end else None

    row = wait_until(rec_pos, what="the recording position counter")
    assert row.type_id == 100
    stat = read_stat(driver.dir)
    [recorded] = stat.counter("^archive bytes recorded: dir=")
    assert recorded.type_id == 101 and recorded.value >= end - 64 * 1024  # padding is stored as its header only
    assert stat.counter("^archive recordings active: ")[0].value == 1
    archive_client.stop_recording(sub_id)
    wait_until(lambda: not read_stat(driver.dir).counter(f"^rec-pos: recording_id={d.recording_id} "),
               what="the counter to go with the recording")
    wait_until(lambda: read_stat(driver.dir).counter("^archive recordings active: ")[0].value == 0, what="totals")


def test_the_cli_asks_a_running_archive_to_replay_truncate_and_purge(driver, aeron, archive_client):
    d = record_stopped(aeron, archive_client, 1015, [message(i) for i in range(50)])
    base = [sys.executable, "-m", "tickline", "archive"]

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*base, *args], capture_output=True, text=True, timeout=60)

    sub = aeron.add_subscription("aeron:ipc", 2015)
    r = run("replay", "--aeron-dir", driver.dir, "--response-stream-id", "10025", "--recording-id", str(d.recording_id),
            "--stream-id", "2015")
    assert r.returncode == 0 and r.stdout.startswith("replay_session_id="), r.stderr
    rs = int(r.stdout.strip().split("=")[1])
    got, last = collect_to_end(sub, replay_image_session_id(rs))
    assert got == [message(i) for i in range(50)] and last == d.stop_position
    r = run("truncate", "--aeron-dir", driver.dir, "--response-stream-id", "10025", str(d.recording_id), "64")
    assert r.returncode == 1 and "not on a frame boundary" in r.stderr and "BAD_POSITION" in r.stderr
    r = run("purge", "--aeron-dir", driver.dir, "--response-stream-id", "10025", str(d.recording_id))
    assert r.returncode == 0 and f"recording_id={d.recording_id} purged" in r.stdout
    assert archive_client.describe(d.recording_id) is None


def test_a_bounded_replay_past_a_live_recording_ends_where_the_recording_stops(aeron, archive_client):
    sub_id, pub, d = live_recording(aeron, archive_client, 1016)
    msgs = [message(i) for i in range(100)]
    publish(pub, msgs)
    sub = aeron.add_subscription("aeron:ipc", 2016)
    rs = archive_client.replay(d.recording_id, position=0, length=10 * 1024 * 1024, stream_id=2016)  # far past the live end
    got = collect(sub, replay_image_session_id(rs), 100)
    end = recorded_to(archive_client, d.recording_id, pub)
    archive_client.stop_recording(sub_id)
    pub.close()
    rest, last = collect_to_end(sub, replay_image_session_id(rs))
    assert got + rest == msgs and last == end


def test_a_replay_whose_subscriber_leaves_ends(aeron, archive_client, running_archive):
    d = record_stopped(aeron, archive_client, 1017, [message(i) for i in range(2000)])
    sub = aeron.add_subscription("aeron:ipc", 2017)
    rs = archive_client.replay(d.recording_id, stream_id=2017)
    collect(sub, replay_image_session_id(rs), 10)
    assert rs in running_archive.archive.replays  # held back by the subscriber's window
    sub.close()
    wait_until(lambda: rs not in running_archive.archive.replays, what="the replay to end")


def test_a_replay_held_back_by_its_subscriber_waits_in_place_then_delivers_every_message_once(aeron, archive_client, archive_dir):
    # The native replayer offering to a subscriber that does not read: once the publication's
    # window (half a 64 KiB term) is full, replay() answers 0 and its position stays put, however
    # often it is called (the replayer sees the publication's limit before it reads a block); when
    # the subscriber reads, the rest comes, every message in order, once.
    from tickline.transport import FragmentAssembler

    msgs = [message(i) for i in range(3000)]
    d = record_stopped(aeron, archive_client, 3020, msgs, channel="aeron:ipc?term-length=65536")  # stopped at its end
    assert d.term_buffer_length == 65536 and d.stop_position > 4 * 65536

    pub, sub, r = direct_replayer(aeron, archive_dir, d, 3021)
    for _ in range(1000):
        if r.replay(d.stop_position, 4096) == 0:
            break
    held = r.position
    assert 0 < held < d.stop_position
    assert all(r.replay(d.stop_position, 4096) == 0 for _ in range(200))
    assert r.position == held

    got: list[bytes] = []
    asm = FragmentAssembler(lambda buf, hdr: got.append(bytes(buf)))
    deadline = time.monotonic() + 30
    while len(got) < len(msgs):
        assert time.monotonic() < deadline, f"replay delivered {len(got)} of {len(msgs)} messages"
        r.replay(d.stop_position, 4096)
        sub.poll(asm, 100)
    assert r.position == d.stop_position and got == msgs
    r.close()
    sub.close()
    pub.close()
