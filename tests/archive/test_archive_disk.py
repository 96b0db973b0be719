"""A full disk: the recording stops with an error at the last whole block on
disk, everything before it replays, and the archive goes on serving."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from tickline.archive import ArchiveClient, RecordingState, replay_image_session_id

from tickline.transport import OfferResult

from archive_helpers import collect_to_end, live_recording, message, wait_until
from archive_helpers import RunningArchive


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "small"
    mnt.mkdir(mode=0o700)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k,mode=0700", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"a full-disk test needs to mount a small tmpfs (root): {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_stops_the_recording_at_the_last_whole_block_and_the_rest_replays(driver, aeron, small_disk):
    a = RunningArchive(driver.dir, small_disk / "archive", segment_length=128 * 1024)
    try:
        client = ArchiveClient.connect(aeron, timeout=10.0)
        _, pub, d = live_recording(aeron, client, 5001)
        msgs = [message(i) for i in range(4000)]  # ~700 KB: more than the 400 KiB disk holds
        sent = 0
        deadline = time.monotonic() + 20
        for m in msgs:  # until the archive lets the stream go (its only subscriber)
            r = pub.offer(m)
            while r < 0 and r != OfferResult.NOT_CONNECTED:
                assert time.monotonic() < deadline, f"publication stuck: result={r}"
                time.sleep(0.0005)
                r = pub.offer(m)
            if r == OfferResult.NOT_CONNECTED:
                break
            sent += 1
        assert 0 < sent < len(msgs)
        stopped = wait_until(lambda: (lambda r: r if r.state == RecordingState.STOPPED else None)(client.describe(d.recording_id)),
                             what="the recording to stop on the full disk")
        assert a.archive.counters["recording_errors"] == 1
        assert 0 < stopped.stop_position < pub.position
        assert stopped.stop_position % stopped.segment_file_length == 0  # the next segment could not be allocated
        # everything on disk replays
        sub = aeron.add_subscription("aeron:ipc", 5101)
        rs = client.replay(d.recording_id, stream_id=5101)
        got, end = collect_to_end(sub, replay_image_session_id(rs))
        assert end == stopped.stop_position and len(got) > 100 and got == msgs[:len(got)]
        client.close()
    finally:
        a.close()
    assert not a.errors, a.errors
