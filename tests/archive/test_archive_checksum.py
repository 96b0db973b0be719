"""Per-frame checksums (config ``checksum = "crc32c"``): every recorded data
frame carries the CRC-32C of its payload in its reserved value; ``verify``
finds a flipped byte and names the recording, the segment file and the
frame's position; a replay stops at the damaged frame with an error and never
delivers it; crash recovery stops before it."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tickline import _aeron
from tickline.archive import ArchiveClient, ErrorCode, RecordingState, replay_image_session_id
from tickline.archive.config import ArchiveConfig
from tickline.archive.daemon import recover_recording, scan
from tickline.archive.errors import ConfigError
from tickline.archive.wire import ChecksumType, RecordingDescriptor

from tickline.transport import FragmentAssembler

from archive_helpers import RunningArchive, message, record_stopped, wait_until


def crc32c_reference(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def test_crc32c_is_the_castagnoli_crc():
    assert _aeron.archive_crc32c(b"123456789") == 0xE3069283  # the standard check value
    rng = random.Random(7)
    for n in (0, 1, 7, 8, 9, 63, 64, 65, 1000):
        data = bytes(rng.randrange(256) for _ in range(n))
        assert _aeron.archive_crc32c(data) == crc32c_reference(data)
    with pytest.raises(ValueError, match="checksum type unknown: recording_id=3 checksum=7"):
        _aeron.archive_scan("/nonexistent", 3, 0, 1 << 16, 1 << 16, 0, 1, 1408, 0, -1, 7)


def test_checksum_option_is_validated_and_settable_from_the_environment(tmp_path):
    with pytest.raises(ConfigError, match="checksum must be none or crc32c: option=checksum value=md5"):
        ArchiveConfig(dir=str(tmp_path), checksum="md5")
    assert ArchiveConfig.from_env({"TICKLINE_ARCHIVE_CHECKSUM": "crc32c"}, dir=str(tmp_path)).checksum_type() == 1
    assert ArchiveConfig(dir=str(tmp_path)).checksum == "none"


def frames(seg: Path, base: int, start: int, end: int):
    """(position, frame bytes) of the recorded frames of one segment file between start and end."""
    data = seg.read_bytes()
    pos = start
    while pos < end:
        length = int.from_bytes(data[pos - base:pos - base + 4], "little")
        yield pos, data[pos - base:pos - base + length]
        pos += (length + 31) & ~31


@pytest.fixture
def checksum_archive(driver, archive_dir):
    a = RunningArchive(driver.dir, archive_dir, segment_length=128 * 1024, checksum="crc32c")
    try:
        yield a
    finally:
        a.close()
    assert not a.errors, a.errors


def second_segment_frame(archive_dir: Path, d: RecordingDescriptor) -> tuple[Path, int, int]:
    """A data frame in the recording's second segment: (file, its offset there, its stream position)."""
    base = d.segment_file_length
    seg = archive_dir / f"{d.recording_id}-{base}.rec"
    for pos, frame in frames(seg, base, base, min(d.stop_position, 2 * base)):
        if int.from_bytes(frame[6:8], "little") == 1 and len(frame) > 64:
            return seg, pos - base, pos
    raise AssertionError("no data frame in the second segment")


def test_a_flipped_payload_byte_is_found_by_verify_and_stops_the_replay_before_it(aeron, driver, archive_dir, checksum_archive):
    with ArchiveClient.connect(aeron, timeout=10.0) as client:
        msgs = [message(i) for i in range(1500)]
        d = record_stopped(aeron, client, 5001, msgs)
        assert d.checksum == ChecksumType.CRC32C and d.stop_position > 2 * d.segment_file_length
        # every data frame carries its payload's CRC-32C in its reserved value
        for pos, frame in frames(archive_dir / f"{d.recording_id}-0.rec", 0, 0, d.segment_file_length):
            if int.from_bytes(frame[6:8], "little") == 1:
                assert int.from_bytes(frame[24:32], "little") == crc32c_reference(frame[32:]), pos
        verify = [sys.executable, "-m", "tickline", "archive", "verify", "--dir", str(archive_dir), str(d.recording_id)]
        ok = subprocess.run(verify, capture_output=True, text=True, timeout=60)
        assert ok.returncode == 0 and "result=ok" in ok.stdout

        seg, offset, position = second_segment_frame(archive_dir, d)
        with open(seg, "r+b") as f:  # one payload byte, well inside the frame
            f.seek(offset + 40)
            b = f.read(1)
            f.seek(offset + 40)
            f.write(bytes([b[0] ^ 0x20]))
        bad = subprocess.run(verify, capture_output=True, text=True, timeout=60)
        assert bad.returncode == 1
        assert (f"recording_id={d.recording_id} result=damaged valid_to={position} " in bad.stdout
                and f"frame checksum mismatch: recording_id={d.recording_id} file={seg} offset={offset} position={position}"
                in bad.stdout), bad.stdout

        sub = aeron.add_subscription("aeron:ipc", 6001)
        rs = client.replay(d.recording_id, stream_id=6001)
        sid = replay_image_session_id(rs)
        got: list[bytes] = []
        asm = FragmentAssembler(lambda buf, hdr: got.append(bytes(buf)))
        errors: list = []
        deadline = time.monotonic() + 20
        while not errors:  # read the replay (its term is small) until the archive reports the damage
            assert time.monotonic() < deadline, f"no replay error; delivered={len(got)}"
            try:
                sub.poll_image(sid, asm, 100)
            except LookupError:
                pass
            errors = client.poll_errors()
            time.sleep(0.0005)
        assert errors[0].error_code == ErrorCode.STORAGE
        assert ("frame checksum mismatch" in errors[0].error_message
                and f"position={position}" in errors[0].error_message and f"file={seg}" in errors[0].error_message)
        end = time.monotonic() + 1.0
        while time.monotonic() < end:  # whatever the replay had offered before it stopped
            try:
                sub.poll_image(sid, asm, 100)
            except LookupError:
                break
        # only whole, good messages before the damaged frame: never its bytes
        assert got == msgs[:len(got)]
        assert sum((len(m) + 32 + 31) & ~31 for m in got) <= position
        sub.close()


def test_recovery_with_checksums_stops_before_a_frame_whose_payload_changed(aeron, archive_dir):
    pub = aeron.add_exclusive_publication("aeron:ipc", 5002)
    sub = aeron.add_subscription("aeron:ipc", 5002)
    wait_until(lambda: sub.image_status(pub.session_id) is not None, what="image")
    rec = _aeron.Recorder(sub, pub.session_id, str(archive_dir), 0, 128 * 1024, checksum=1)
    for i in range(400):
        while pub.offer(message(i)) < 0:
            rec.record(1 << 20)
    while rec.record(1 << 20) > 0:
        pass
    end = rec.position
    d = RecordingDescriptor(0, 0, 0, 1, -1, rec.start_position, -1, rec.segment_length, rec.initial_term_id,
                            rec.term_length, rec.mtu, rec.session_id, 5002, RecordingState.RECORDING, "aeron:ipc",
                            "aeron:ipc", rec.source_identity, ChecksumType.CRC32C)
    rec.close()
    sub.close()
    pub.close()
    recovered, damage = recover_recording(archive_dir, d, 0)
    assert damage is None and recovered.stop_position == end
    # the last frame's payload changes (a torn write): recovery ends before it, and says why
    seg = archive_dir / "0-0.rec"
    last = list(frames(seg, 0, 0, end))[-1][0]
    data = bytearray(seg.read_bytes())
    data[last + 33] ^= 0xFF
    seg.write_bytes(data)
    recovered, damage = recover_recording(archive_dir, d, 0)
    assert recovered.stop_position == last
    assert damage == f"frame checksum mismatch: recording_id=0 file={seg} offset={last} position={last}"
    # without the checksum the same bytes pass the header checks (what checksum=none cannot see)
    assert scan(archive_dir, RecordingDescriptor(**{**d.__dict__, "checksum": 0}), 0, end) == (end, None)
