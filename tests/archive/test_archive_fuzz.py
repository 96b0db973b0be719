"""Hostile segment bytes: seeded mutations (flipped bytes in headers and
payloads, truncations, garbage frames) of a real recording, walked by the
native scanner and replayer.  Each run ends in a position on a frame boundary
or an ArchiveDamageError naming the recording, file and offset: never a crash,
never a read past what is there (run under ASan/UBSan too, see the README)."""

from __future__ import annotations

import os
import random
import shutil
import time

from tickline import _aeron
from tickline.archive import ArchiveDamageError

from archive_helpers import message, wait_until

SEGMENT = 128 * 1024


def make_recording(aeron, dir, stream_id: int):
    pub = aeron.add_exclusive_publication("aeron:ipc", stream_id)
    sub = aeron.add_subscription("aeron:ipc", stream_id)
    wait_until(lambda: sub.image_status(pub.session_id) is not None, what="image")
    rec = _aeron.Recorder(sub, pub.session_id, str(dir), 0, SEGMENT)
    for i in range(1500):
        while pub.offer(message(i)) < 0:
            rec.record(1 << 20)
    while rec.record(1 << 20) > 0:
        pass
    geometry = dict(start_position=rec.start_position, term_length=rec.term_length, segment_length=rec.segment_length,
                    initial_term_id=rec.initial_term_id, session_id=rec.session_id, mtu=rec.mtu)
    stop = rec.position
    rec.close()
    sub.close()
    pub.close()
    return geometry, stop


def mutate(dir, rng: random.Random) -> str:
    files = sorted(p for p in dir.iterdir() if p.suffix == ".rec")
    f = rng.choice(files)
    data = bytearray(f.read_bytes())
    kind = rng.randrange(4)
    if kind == 0:  # a byte of some frame header region
        at = rng.randrange(0, len(data) // 32) * 32 + rng.randrange(0, 32)
        data[at] = rng.randrange(256)
    elif kind == 1:  # a frame length set to anything
        at = rng.randrange(0, len(data) // 32) * 32
        data[at:at + 4] = rng.randrange(-(2**31), 2**31).to_bytes(4, "little", signed=True)
    elif kind == 2:  # truncated anywhere
        del data[rng.randrange(0, len(data)):]
    else:  # a run of garbage
        at = rng.randrange(0, len(data))
        data[at:at + 64] = rng.randbytes(64)
    f.write_bytes(data)
    return f"{kind}:{f.name}"


def test_mutated_segments_are_walked_safely_by_the_scanner_and_the_replayer(aeron, tmp_path):
    pristine = tmp_path / "pristine"
    pristine.mkdir()
    g, stop = make_recording(aeron, pristine, 7001)
    rng = random.Random(1234)
    work = tmp_path / "work"
    deadline = time.monotonic() + 60
    damaged = 0
    for run in range(60):
        if time.monotonic() > deadline:
            break
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(pristine, work)
        what = [mutate(work, rng) for _ in range(rng.randrange(1, 4))]
        for limit in (-1, stop):
            pos, damage = _aeron.archive_scan(str(work), 0, g["start_position"], g["term_length"], g["segment_length"],
                                              g["initial_term_id"], g["session_id"], g["mtu"], 0, limit)
            assert 0 <= pos <= stop and pos % 32 == 0, (what, pos)
            if damage is not None:
                damaged += 1
                assert "recording_id=0" in damage and "file=" in damage and "offset=" in damage, damage
        # replay the mutated recording to a live subscriber until it ends or reports damage
        channel = (f"aeron:ipc?init-term-id={g['initial_term_id']}|term-id={g['initial_term_id']}|term-offset=0|"
                   f"term-length={g['term_length']}|mtu={g['mtu']}")
        pub = aeron.add_exclusive_publication(channel, 7100 + run)
        sub = aeron.add_subscription("aeron:ipc", 7100 + run)
        wait_until(lambda: pub.is_connected, what="replay connect")
        r = _aeron.Replayer(pub, str(work), 0, g["start_position"], g["term_length"], g["segment_length"],
                            g["initial_term_id"], g["session_id"], g["mtu"], 0)
        t_end = time.monotonic() + 10
        try:
            while r.position < stop:
                assert time.monotonic() < t_end, f"replay stuck: {what} position={r.position}"
                if r.replay(stop, 1 << 16) == 0:
                    sub.poll(lambda b, h: None, 1000)
                sub.poll(lambda b, h: None, 1000)
        except ArchiveDamageError as exc:
            assert "recording damaged: recording_id=0 file=" in str(exc) and "fault=storage" in str(exc)
        except OSError as exc:
            assert "segment" in str(exc)
        assert r.position % 32 == 0 and r.position <= stop
        r.close()
        pub.close()
        sub.close()
    assert damaged > 10  # the mutations were seen, not silently replayed


def test_a_counter_written_after_its_client_closed_is_ignored_not_a_crash(driver):
    from tickline.transport import Aeron, read_stat

    a = Aeron(driver.dir)
    c = a.add_counter(100, "rec-pos: test counter")
    c.set(4096)
    assert c.get() == 4096
    wait_until(lambda: any(r.value == 4096 for r in read_stat(driver.dir).counter("^rec-pos: test counter$")), what="counter")
    a.close()  # unmaps the CnC file the counter lives in
    c.set(8192)  # ignored: the mapping is gone
    try:
        c.get()
    except _aeron.ClosedError as e:  # reading it is the caller's mistake, said so (not a read of unmapped memory)
        assert "reason=client closed" in str(e)
    else:
        raise AssertionError("get() after the client closed returned a value")
    c.close()
