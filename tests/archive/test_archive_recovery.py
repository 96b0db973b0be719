"""Crash recovery and hostile storage: kill -9 mid-recording, damaged or
truncated segments, a damaged catalog, a missing segment, two archives on one
directory, requests from unknown clients.  Each error names the recording (or
file) and the position (or offset), and nothing stored is changed."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tickline import _aeron
from tickline.archive import ArchiveClient, ArchiveDamageError, Catalog, CatalogError, ErrorCode, RecordingState, RequestError
from tickline.archive import wire
from tickline.archive.config import ArchiveConfig
from tickline.archive.daemon import Archive, recover_recording, scan
from tickline.archive.errors import ConfigError
from tickline.archive.wire import RecordingDescriptor

from archive_helpers import (ArchiveThread, FakeClock, collect, collect_to_end, direct_replayer, live_recording, message,
                             publish, record_stopped, recorded_to, start_archive_process, wait_until)


def digest(dir: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(dir.iterdir()) if p.name != "archive.lock"}


def native_recording(aeron, dir: Path, stream_id: int, count: int, segment_length: int = 128 * 1024):
    """Record ``count`` messages with the native recorder alone; returns (descriptor left RECORDING, end position, messages)."""
    pub = aeron.add_exclusive_publication("aeron:ipc", stream_id)
    sub = aeron.add_subscription("aeron:ipc", stream_id)
    wait_until(lambda: sub.image_status(pub.session_id) is not None, what="image")
    rec = _aeron.Recorder(sub, pub.session_id, str(dir), 0, segment_length)
    msgs = [message(i) for i in range(count)]
    for m in msgs:
        while pub.offer(m) < 0:
            rec.record(1 << 20)
    while rec.record(1 << 20) > 0:
        pass
    assert rec.position == pub.position
    d_end = rec.position
    d = RecordingDescriptor(0, 0, 0, 1, -1, rec.start_position, -1, rec.segment_length, rec.initial_term_id,
                            rec.term_length, rec.mtu, rec.session_id, stream_id, RecordingState.RECORDING, "aeron:ipc",
                            "aeron:ipc", rec.source_identity)
    rec.close()
    sub.close()
    pub.close()
    return d, d_end, msgs


def test_recovery_finds_the_stop_position_from_the_last_segment(aeron, archive_dir):
    d, end, _ = native_recording(aeron, archive_dir, 3001, 2500)
    assert end > 3 * d.segment_file_length  # the last segment is not the first
    before = digest(archive_dir)
    recovered, damage = recover_recording(archive_dir, d, 1234)
    assert damage is None
    assert recovered.stop_position == end and recovered.state == RecordingState.STOPPED and recovered.stop_timestamp == 1234
    assert digest(archive_dir) == before  # recovery reads, never writes


def test_recovery_stops_before_a_damaged_frame_and_names_it(aeron, archive_dir):
    d, end, _ = native_recording(aeron, archive_dir, 3002, 300)
    # find the last frame by walking the recording, then damage its header's type
    seg = archive_dir / "0-0.rec"
    data = bytearray(seg.read_bytes())
    pos, last = 0, 0
    while pos < end:
        last = pos
        length = int.from_bytes(data[pos:pos + 4], "little")
        pos += (length + 31) & ~31
    data[last + 6] = 7
    seg.write_bytes(data)
    before = digest(archive_dir)
    recovered, damage = recover_recording(archive_dir, d, 0)
    assert recovered.stop_position == last
    assert damage is not None and "unknown frame type" in damage and f"offset={last}" in damage and "0-0.rec" in damage
    assert digest(archive_dir) == before


def test_a_truncated_segment_is_an_error_naming_file_and_offset_on_replay_and_verify(aeron, archive_client, archive_dir):
    msgs = [message(i) for i in range(1200)]
    d = record_stopped(aeron, archive_client, 3003, msgs)
    segs = sorted(archive_dir.glob(f"{d.recording_id}-*.rec"), key=lambda p: int(p.stem.split("-")[1]))
    second = segs[1]
    base = int(second.stem.split("-")[1])
    os.truncate(second, 1000)  # cut inside a frame of the second segment
    sub = aeron.add_subscription("aeron:ipc", 4003)
    rs = archive_client.replay(d.recording_id, stream_id=4003)
    from tickline.archive import replay_image_session_id
    from tickline.transport import FragmentAssembler

    got: list[bytes] = []
    asm = FragmentAssembler(lambda buf, hdr: got.append(bytes(buf)))
    sid = replay_image_session_id(rs)

    def read_and_check():
        try:
            sub.poll_image(sid, asm, 100)
        except LookupError:
            pass
        return archive_client.poll_errors()

    errors = wait_until(read_and_check, what="replay error")
    assert errors[0].error_code == ErrorCode.STORAGE and errors[0].relevant_id == rs
    text = errors[0].error_message
    assert "segment file truncated" in text and second.name in text and f"recording_id={d.recording_id}" in text
    assert f"offset={1000 - 1000 % 32}" in text or "offset=" in text
    # every whole frame before the cut was replayed, in order
    for _ in range(100):
        read_and_check()
    assert len(got) > 0 and got == msgs[:len(got)]
    r = subprocess.run([sys.executable, "-m", "tickline", "archive", "verify", "--dir", str(archive_dir), str(d.recording_id)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "result=damaged" in r.stdout and second.name in r.stdout
    assert "segment file truncated" in r.stdout and f"valid_to={base}" not in r.stdout


def test_a_flipped_header_byte_and_a_missing_segment_are_storage_errors(aeron, archive_client, archive_dir):
    msgs = [message(i) for i in range(800)]
    d = record_stopped(aeron, archive_client, 3004, msgs)
    seg0 = archive_dir / f"{d.recording_id}-0.rec"
    data = bytearray(seg0.read_bytes())
    first_len = (int.from_bytes(data[0:4], "little") + 31) & ~31
    data[first_len + 8] ^= 0x40  # the second frame's term offset
    seg0.write_bytes(data)
    with pytest.raises(ArchiveDamageError, match=f"recording_id={d.recording_id}.*offset={first_len} position={first_len}"):
        pub, s, r = direct_replayer(aeron, archive_dir, d, 4104)
        for _ in range(10):
            r.replay(d.stop_position)
        s.close()
    # through the archive: a replay starting at a later segment whose file is gone
    last = sorted(archive_dir.glob(f"{d.recording_id}-*.rec"), key=lambda p: int(p.stem.split("-")[1]))[-1]
    base = int(last.stem.split("-")[1])
    last.unlink()
    aeron.add_subscription("aeron:ipc", 4004)
    with pytest.raises(RequestError) as e:
        archive_client.replay(d.recording_id, position=base, stream_id=4004)
    assert e.value.code == ErrorCode.STORAGE
    assert "segment file missing" in str(e.value) and last.name in str(e.value) and f"position={base}" in str(e.value)


def test_a_damaged_catalog_is_refused_with_file_and_offset_and_left_as_it_is(tmp_path):
    dir = tmp_path / "arc"
    dir.mkdir(mode=0o700)
    cat = Catalog(dir)
    for i in range(3):
        cat.add(RecordingDescriptor(0, 0, 0, 1, 2, 0, 4096, 1 << 20, 5, 65536, 1408, 7 + i, 10, RecordingState.STOPPED,
                                    "aeron:ipc", "aeron:ipc", "aeron:ipc"))
    cat.save()
    assert oct(os.stat(dir / "catalog.bin").st_mode & 0o777) == "0o600"
    good = (dir / "catalog.bin").read_bytes()
    assert Catalog(dir).recordings == cat.recordings
    second_record = 28 + 8 + len(wire.encode(cat.recordings[0]))
    bad = bytearray(good)
    bad[second_record + 8 + 30] ^= 1
    (dir / "catalog.bin").write_bytes(bad)
    with pytest.raises(CatalogError, match=f"checksum mismatch: file=.*catalog.bin offset={second_record} record=1"):
        Catalog(dir)
    assert (dir / "catalog.bin").read_bytes() == bad
    (dir / "catalog.bin").write_bytes(good[:-5])
    with pytest.raises(CatalogError, match="truncated in a record"):
        Catalog(dir)
    (dir / "catalog.bin").write_bytes(good[:10])
    with pytest.raises(CatalogError, match="truncated in its header: file=.* offset=0"):
        Catalog(dir)


def test_two_archives_on_one_directory_the_second_is_refused(driver, archive_dir, running_archive):
    from tickline.transport import Aeron

    wait_until(lambda: running_archive.archive.started, what="archive start")
    with Aeron(driver.dir) as a:
        second = Archive(ArchiveConfig(dir=str(archive_dir), control_stream_id=10099), a)
        with pytest.raises(ConfigError, match=f"in use by another archive: dir={archive_dir} holder_pid={os.getpid()}"):
            second.on_start()
        second.on_close()


def test_requests_from_unknown_sessions_and_garbage_are_dropped_and_counted(aeron, archive_client, running_archive):
    pub = aeron.add_publication("aeron:ipc", 10010)
    wait_until(lambda: pub.is_connected, what="control connect")
    for data in (wire.encode(wire.StartRecordingRequest(987654, 1, 5, "aeron:ipc")), b"\x01\x02garbage",
                 wire.encode(wire.ReplayRequest(987654, 2, 0, 0, -1, 5, "aeron:ipc"))[:-3]):
        while pub.offer(data) < 0:
            time.sleep(0.001)
    wait_until(lambda: running_archive.archive.counters["dropped_requests"] == 3, what="drops")
    assert archive_client.list_recordings() == []  # the archive still answers, and recorded nothing
    assert running_archive.archive.recording_subs == {}


@pytest.mark.multiprocess
def test_kill_9_mid_recording_then_restart_recovers_and_every_frame_on_disk_replays(procs, driver, aeron, archive_dir):
    p = start_archive_process(procs, driver.dir, archive_dir)
    client = ArchiveClient.connect(aeron, timeout=20.0)
    _, pub, d = live_recording(aeron, client, 3010)
    msgs = [message(i) for i in range(4000)]
    publish(pub, msgs[:2000])
    confirmed = recorded_to(client, d.recording_id, pub)
    publish(pub, msgs[2000:2300])  # the archive may or may not have these on disk when it dies
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    client.close()
    cat = Catalog(archive_dir)
    assert cat.get(d.recording_id).state == RecordingState.RECORDING  # as the crash left it
    pub.close()
    p2 = start_archive_process(procs, driver.dir, archive_dir)
    client = ArchiveClient.connect(aeron, timeout=20.0)
    r = client.describe(d.recording_id)
    assert r.state == RecordingState.STOPPED
    assert r.stop_position >= confirmed  # at least what the archive had confirmed before it died
    sub = aeron.add_subscription("aeron:ipc", 4010)
    rs = client.replay(d.recording_id, stream_id=4010)
    from tickline.archive import replay_image_session_id

    sid = replay_image_session_id(rs)
    got, last_position = collect_to_end(sub, sid)
    assert got == msgs[:len(got)] and len(got) >= 2000
    assert last_position == r.stop_position
    assert sum((len(m) + 32 + 31) & ~31 for m in got) <= r.stop_position  # (fragmented messages take more)
    client.close()
    p2.send_signal(signal.SIGTERM)
    assert p2.wait(timeout=30) == 0


def test_a_client_that_dies_without_closing_frees_its_session_after_the_timeout(driver, aeron, archive_dir):
    """max_sessions=1: without the timeout a dead client would keep every later one out."""
    from tickline.transport import Aeron

    clock = FakeClock()
    with Aeron(driver.dir) as own:
        archive = Archive(ArchiveConfig(dir=str(archive_dir), max_sessions=1, session_timeout_s=5.0), own, clock=clock)
        archive.on_start()
        try:
            with ArchiveThread(archive):
                dead = ArchiveClient.connect(aeron, response_stream_id=10021)
                dead._sub.close()  # the client "dies": no close request, its response stream has no reader
                with pytest.raises(RequestError, match="too many control sessions"):
                    ArchiveClient.connect(aeron, response_stream_id=10022)
                clock.now += 6.0
                wait_until(lambda: archive.counters["timed_out_sessions"] == 1, what="session timeout")
                live = ArchiveClient.connect(aeron, response_stream_id=10023)
                assert live.list_recordings() == []
                live.close()
        finally:
            archive.on_close()


PUBLISHER = r"""
import sys, time
sys.path.insert(0, sys.argv[3])
from archive_helpers import message
from tickline.transport import Aeron
a = Aeron(sys.argv[1])
pub = a.add_exclusive_publication("aeron:ipc", int(sys.argv[2]))
print(pub.session_id, flush=True)
i = 0
while True:
    if pub.offer(message(i)) > 0:
        i += 1
    else:
        time.sleep(0.0001)
"""


@pytest.mark.multiprocess
def test_kill_9_of_the_recorded_publisher_stops_the_recording_and_all_of_it_replays(procs, driver, aeron, archive_client):
    sub_id = archive_client.start_recording("aeron:ipc", 3020)
    p = procs.start([sys.executable, "-c", PUBLISHER, driver.dir, "3020", str(Path(__file__).parent)],
                    stdout=subprocess.PIPE, text=True)
    session_id = int(p.stdout.readline())
    d = archive_client.wait_for_recording(3020, session_id)
    wait_until(lambda: archive_client.describe(d.recording_id).stop_position > 300_000, what="some recording")
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    # the driver notices the dead client, the image goes, the recording stops by itself
    r = wait_until(lambda: (lambda x: x if x.state == RecordingState.STOPPED else None)(archive_client.describe(d.recording_id)),
                   timeout=30, what="the recording to stop")
    sub = aeron.add_subscription("aeron:ipc", 4020)
    from tickline.archive import replay_image_session_id

    rs = archive_client.replay(d.recording_id, stream_id=4020)
    got, end = collect_to_end(sub, replay_image_session_id(rs))
    assert end == r.stop_position and len(got) > 100
    assert got == [message(i) for i in range(len(got))]
    archive_client.stop_recording(sub_id)


@pytest.mark.multiprocess
def test_kill_9_during_a_replay_leaves_the_recording_whole(procs, driver, aeron, archive_dir):
    from tickline.archive import replay_image_session_id

    p = start_archive_process(procs, driver.dir, archive_dir)
    client = ArchiveClient.connect(aeron, timeout=20.0)
    msgs = [message(i) for i in range(3000)]
    d = record_stopped(aeron, client, 3030, msgs)
    before = digest(archive_dir)
    sub = aeron.add_subscription("aeron:ipc", 4030)
    rs = client.replay(d.recording_id, stream_id=4030)
    collect(sub, replay_image_session_id(rs), 500)  # mid-replay (the subscriber's window holds the rest back)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    client.close()
    assert digest(archive_dir) == before  # a replay only reads
    p2 = start_archive_process(procs, driver.dir, archive_dir)
    client = ArchiveClient.connect(aeron, timeout=20.0)
    again = client.describe(d.recording_id)
    assert dataclasses.replace(again, control_session_id=0, correlation_id=0) == \
        dataclasses.replace(d, control_session_id=0, correlation_id=0)  # the catalog as it was
    sub2 = aeron.add_subscription("aeron:ipc", 4031)
    rs = client.replay(d.recording_id, stream_id=4031)
    got, last = collect_to_end(sub2, replay_image_session_id(rs))
    assert got == msgs and last == d.stop_position
    client.close()
    p2.send_signal(signal.SIGTERM)
    assert p2.wait(timeout=30) == 0


def test_a_catalog_record_with_impossible_geometry_is_refused_naming_the_field(tmp_path):
    dir = tmp_path / "arc"
    dir.mkdir(mode=0o700)
    cat = Catalog(dir)
    good = RecordingDescriptor(0, 0, 0, 1, 2, 0, 4096, 1 << 20, 5, 65536, 1408, 7, 10, RecordingState.STOPPED,
                               "aeron:ipc", "aeron:ipc", "x")
    for field, value in (("term_buffer_length", 65535), ("segment_file_length", 4096), ("mtu_length", 7),
                         ("start_position", 33), ("stop_position", -64)):
        cat.recordings = {0: dataclasses.replace(good, **{field: value})}
        cat.next_recording_id = 1
        # written the way save() does, with valid checksums: the record is well formed but impossible
        cat.save()
        with pytest.raises(CatalogError, match=f"record out of range: file=.* offset=28 record=0 recording_id=0 field={field}"):
            Catalog(dir)


def test_a_replay_nobody_subscribes_to_fails_after_the_connect_timeout(driver, aeron, archive_dir):
    from tickline.transport import Aeron

    clock = FakeClock()
    with Aeron(driver.dir) as own:
        archive = Archive(ArchiveConfig(dir=str(archive_dir), replay_connect_timeout_s=5.0, segment_length=128 * 1024),
                          own, clock=clock)
        archive.on_start()
        try:
            with ArchiveThread(archive), ArchiveClient.connect(aeron) as client:
                d = record_stopped(aeron, client, 3040, [message(i) for i in range(10)])
                rs = client.replay(d.recording_id, stream_id=4040)  # nobody subscribes to 4040
                assert client.poll_errors() == []
                clock.now += 6.0
                errors = wait_until(client.poll_errors, what="the replay's error")
                assert errors[0].relevant_id == rs and "replay subscriber never connected" in errors[0].error_message
                assert rs not in archive.replays
        finally:
            archive.on_close()
