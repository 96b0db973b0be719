"""The durable log, metadata and snapshots on real files: recovery after a crash,
torn and corrupted tails truncated to the last good entry, never applied."""

import os

import pytest

from cluster_harness import Died, DyingDisk, KeepUnsynced
from tickline.cluster.disk import OsDisk, SimDisk
from tickline.cluster.errors import LogCorruptionError
from tickline.cluster.log import MetaStore, SegmentLog, SnapshotStore, encode_entry
from tickline.cluster.messages import Entry, EntryKind, HardState, Snapshot


def make_entries(n, start=0, term=1, size=10):
    out, pos = [], start
    for i in range(n):
        e = Entry(pos, term, 1000 + i, EntryKind.MESSAGE, bytes([i % 256]) * size)
        out.append(e)
        pos = e.end
    return out


def open_log(path, **kw):
    log = SegmentLog(OsDisk(path), **kw)
    report = log.recover()
    return log, report


def synced_log(path, n):
    """A log at ``path`` holding ``n`` synced entries: (log, entries, path of its last segment)."""
    log, _ = open_log(path)
    entries = make_entries(n)
    log.append(entries)
    log.sync()
    return log, entries, os.path.join(path, log.segment_names()[-1])


def test_entries_survive_a_reopen(tmp_path):
    log, report = open_log(tmp_path)
    assert report.entries == () and report.end_position == 0
    entries = make_entries(5)
    log.append(entries)
    log.sync()
    log2, report = open_log(tmp_path)
    assert list(report.entries) == entries
    assert report.truncated_at is None
    assert log2.end_position == entries[-1].end


def test_torn_tail_mid_entry_is_truncated_to_the_last_good_entry(tmp_path):
    log, entries, seg = synced_log(tmp_path, 4)
    os.truncate(seg, entries[3].position + 30)  # header plus 2 payload bytes of the last entry
    log2, report = open_log(tmp_path)
    assert list(report.entries) == entries[:3]
    assert report.truncated_at == entries[3].position
    assert report.reason == "short_payload"
    assert os.path.getsize(seg) == entries[3].position  # cut on disk, not only in memory
    # the log continues cleanly at the cut
    more = make_entries(1, start=entries[2].end, term=2)
    log2.append(more)
    log2.sync()
    assert list(open_log(tmp_path)[1].entries) == entries[:3] + more


def test_torn_header_is_truncated(tmp_path):
    log, entries, seg = synced_log(tmp_path, 2)
    with open(seg, "ab") as f:
        f.write(b"\x05\x00\x00")
    _, report = open_log(tmp_path)
    assert list(report.entries) == entries
    assert report.reason == "short_header" and report.dropped_bytes == 3


@pytest.mark.parametrize("where", ["payload", "term", "crc", "length"])
def test_a_flipped_byte_is_detected_and_nothing_from_it_on_is_applied(tmp_path, where):
    log, entries, seg = synced_log(tmp_path, 5)
    victim = entries[2]
    offset = victim.position + {"payload": 30, "term": 9, "crc": 5, "length": 1}[where]
    with open(seg, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x40]))
    _, report = open_log(tmp_path)
    assert list(report.entries) == entries[:2]
    assert report.truncated_at == victim.position
    assert report.reason in ("crc_mismatch", "short_payload", "bad_length")


def test_a_frame_copied_to_another_position_fails_its_checksum(tmp_path):
    log, entries, seg = synced_log(tmp_path, 2)
    with open(seg, "ab") as f:
        f.write(encode_entry(entries[1]))  # valid frame, wrong position
    _, report = open_log(tmp_path)
    assert list(report.entries) == entries
    assert report.reason == "crc_mismatch"


def test_segments_roll_and_corruption_in_an_early_segment_is_damage_not_a_torn_tail(tmp_path):
    log, _ = open_log(tmp_path, segment_size=100)
    entries = make_entries(12)
    log.append(entries)
    log.sync()
    names = log.segment_names()
    assert len(names) >= 3
    first = os.path.join(tmp_path, names[0])
    size = os.path.getsize(first)
    with open(first, "r+b") as f:
        f.seek(size - 1)
        f.write(b"\xff")
    log2, report = open_log(tmp_path, segment_size=100)
    good = [e for e in entries if e.end < size]
    assert list(report.entries) == good
    assert log2.segment_names() == names[:1]
    assert sorted(n for n in os.listdir(tmp_path) if n.startswith("log-")) == names[:1]
    # synced entries were lost: damage, not a torn tail; the bytes are kept, the member must catch up
    assert report.damaged and report.catch_up_to == entries[-1].end
    assert report.damaged_file == names[0] and report.truncated_at == good[-1].end
    assert report.valid_after == entries[-1].end
    assert len(report.kept) == len(names)
    kept = b"".join(open(os.path.join(tmp_path, k), "rb").read() for k in report.kept)
    assert len(kept) == entries[-1].end - good[-1].end
    assert "file=" + names[0] in report.describe() and f"position={good[-1].end}" in report.describe()


def test_truncate_then_append_across_segments(tmp_path):
    log, _ = open_log(tmp_path, segment_size=100)
    entries = make_entries(10)
    log.append(entries)
    log.truncate(entries[3].position)
    other = make_entries(2, start=entries[3].position, term=2)
    log.append(other)
    log.sync()
    assert list(open_log(tmp_path, segment_size=100)[1].entries) == entries[:3] + other


@pytest.mark.parametrize("keep", [True, False], ids=["unsynced-kept", "unsynced-lost"])
@pytest.mark.parametrize("dies_at", [0, 1, 2, None])
def test_a_power_cut_while_a_divergent_tail_is_replaced_never_splices_old_and_new(dies_at, keep):
    """Found by the simulator (seed 3017712): the old tail (term 2) filled a
    segment to exactly where the next one starts; the replacement (term 3) was
    written over it and on into a new segment, and the power went before the
    cut was durable.  The first segment came back with its old tail, the new
    one kept its entries, and recovery read them as one valid log: old
    entries followed by new ones, a history no leader ever had.  Whenever the
    writes stop, recovery must give a prefix of the old log or of the new."""
    disk = DyingDisk()
    log = SegmentLog(disk, segment_size=100)
    log.recover()
    kept = make_entries(1)
    old = make_entries(2, start=kept[-1].end, term=2)
    log.append(kept + old)
    log.sync()
    assert log.segment_names() == ["log-00000000000000000000.seg"] and log.end_position == old[-1].end >= 100  # full
    new = make_entries(4, start=kept[-1].end, term=3)
    disk.fail_at = dies_at
    try:
        log.truncate(kept[-1].end)
        log.append(new)
        log.sync()
    except Died:
        pass
    disk.fail_at = None
    disk.crash(KeepUnsynced(keep), power_loss=True)
    recovered = list(SegmentLog(disk, segment_size=100).recover().entries)
    assert recovered in [(kept + old)[:n] for n in range(len(kept + old) + 1)] + [(kept + new)[:n] for n in range(len(kept + new) + 1)]
    assert recovered[: len(kept)] == kept  # synced before the cut: never lost
    if dies_at is None:
        assert recovered == kept + new


def test_remove_before_keeps_the_segment_holding_the_position(tmp_path):
    log, _ = open_log(tmp_path, segment_size=100)
    entries = make_entries(12)
    log.append(entries)
    log.sync()
    cut = entries[7].end
    removed = log.remove_before(cut)
    assert removed >= 1
    assert log.start_position <= cut
    log2, report = open_log(tmp_path, segment_size=100)
    assert report.first_position == log.start_position
    assert [e for e in report.entries if e.end > cut] == [e for e in entries if e.end > cut]


def test_meta_round_trip_and_detects_corruption(tmp_path):
    disk = OsDisk(tmp_path)
    meta = MetaStore(disk)
    assert meta.load() == HardState()
    meta.save(HardState(7, 2, 1234))
    assert MetaStore(OsDisk(tmp_path)).load() == HardState(7, 2, 1234)
    meta.save(HardState(8, None, 2000))
    assert MetaStore(OsDisk(tmp_path)).load() == HardState(8, None, 2000)
    assert not any(n.endswith(".tmp") for n in os.listdir(tmp_path))
    p = os.path.join(tmp_path, "meta")
    data = bytearray(open(p, "rb").read())
    data[6] ^= 1
    open(p, "wb").write(bytes(data))
    with pytest.raises(LogCorruptionError, match="metadata checksum mismatch: file=meta fault=storage"):
        MetaStore(OsDisk(tmp_path)).load()


def test_latest_valid_snapshot_is_loaded_and_a_corrupt_one_skipped(tmp_path):
    disk = OsDisk(tmp_path)
    store = SnapshotStore(disk, keep=3)
    store.save(Snapshot(100, 1, b"first"))
    store.save(Snapshot(200, 2, b"second"))
    snap, skipped = store.load_latest()
    assert snap == Snapshot(200, 2, b"second") and skipped == []
    name = SnapshotStore._name(200, 2)
    p = os.path.join(tmp_path, name)
    data = bytearray(open(p, "rb").read())
    data[-1] ^= 0xFF
    open(p, "wb").write(bytes(data))
    snap, skipped = SnapshotStore(OsDisk(tmp_path)).load_latest()
    assert snap == Snapshot(100, 1, b"first") and skipped == [name]


def test_snapshot_store_keeps_only_the_newest(tmp_path):
    store = SnapshotStore(OsDisk(tmp_path), keep=2)
    for i in range(1, 5):
        store.save(Snapshot(i * 100, 1, b"s%d" % i))
    assert sorted(n for n in os.listdir(tmp_path) if n.startswith("snap-")) == [SnapshotStore._name(300, 1), SnapshotStore._name(400, 1)]


def test_sim_disk_crash_keeps_synced_bytes_and_at_most_a_torn_prefix():
    import random
    disk = SimDisk()
    log = SegmentLog(disk)
    log.recover()
    entries = make_entries(6)
    log.append(entries[:3])
    log.sync()
    log.append(entries[3:])  # never synced
    disk.crash(random.Random(3))
    report = SegmentLog(disk).recover()
    assert list(report.entries[:3]) == entries[:3]
    assert all(e in entries for e in report.entries)


def test_recovery_makes_what_it_read_durable_before_the_member_acts_on_it():
    """Found by the simulator (seed 7083 of the first nightly run): after a kill -9 the
    unsynced tail is still readable from the page cache; the member recovered it,
    acknowledged it as leader, and a later power cut took it back."""
    import random
    disk = SimDisk()
    log = SegmentLog(disk)
    log.recover()
    entries = make_entries(4)
    log.append(entries)  # written, never synced
    disk.crash(random.Random(1), power_loss=False)  # kill -9: page cache survives
    assert list(SegmentLog(disk).recover().entries) == entries
    disk.crash(random.Random(2), power_loss=True)  # then the power goes
    assert list(SegmentLog(disk).recover().entries) == entries


def test_power_loss_keeps_at_most_a_torn_prefix_and_that_prefix_is_then_on_disk():
    import random
    disk = SimDisk()
    log = SegmentLog(disk)
    log.recover()
    entries = make_entries(8)
    log.append(entries)
    for seed in range(5):
        disk.crash(random.Random(seed), power_loss=True)
    name = log.segment_names()[0]
    assert disk.durable[name] == bytes(disk.files[name])


def test_preallocated_segments_reopen_cleanly_and_a_torn_tail_inside_them_is_still_cut(tmp_path):
    disk = OsDisk(tmp_path, preallocate=4096)
    log = SegmentLog(disk)
    log.recover()
    entries = make_entries(5)
    log.append(entries)
    log.sync()
    seg = os.path.join(tmp_path, log.segment_names()[-1])
    assert os.path.getsize(seg) >= 4096 > entries[-1].end  # zeros run ahead of the entries
    assert disk.size(log.segment_names()[-1]) == entries[-1].end
    more = make_entries(2, start=entries[-1].end)
    log.append(more)  # overwrites zeros; the length does not change
    log.sync()
    disk.close()
    log2, report = open_log(tmp_path)
    assert list(report.entries) == entries + more
    assert report.truncated_at is None and report.reason is None  # the zeros are the clean end, not damage
    assert os.path.getsize(seg) == more[-1].end
    # a torn entry followed by preallocated zeros is damage, and is cut
    disk3 = OsDisk(tmp_path, preallocate=4096)
    log3 = SegmentLog(disk3)
    log3.recover()
    tail = [Entry(more[-1].end, 1, 2000, EntryKind.MESSAGE, b"\x07" * 40)]
    log3.append(tail)
    log3.sync()
    disk3.close()
    with open(seg, "r+b") as f:
        f.seek(tail[0].position + 30)
        f.write(bytes(20))  # part of the payload never reached the disk
    _, report = open_log(tmp_path)
    assert list(report.entries) == entries + more
    assert report.truncated_at == tail[0].position and report.reason == "crc_mismatch"


@pytest.mark.parametrize("zeros", [1, 10, 27, 28, 200])
def test_a_full_segment_left_with_a_short_run_of_preallocated_zeros_keeps_the_segments_after_it(tmp_path, zeros):
    # A segment fills up and the log moves on, leaving that segment's preallocated
    # zeros behind it; any length of zeros there, shorter than an entry header too,
    # is its clean end, and the acknowledged entries in later segments survive.
    first = Entry(0, 1, 1, EntryKind.MESSAGE, b"\x05" * 200)
    disk = OsDisk(tmp_path, preallocate=first.end + zeros)
    log = SegmentLog(disk, segment_size=first.end)
    log.recover()
    later = make_entries(3, start=first.end)
    log.append([first])
    log.append(later)
    log.sync()
    assert len(log.segment_names()) == 2
    assert os.path.getsize(os.path.join(tmp_path, log.segment_names()[0])) == first.end + zeros
    disk.close()
    _, report = open_log(tmp_path, segment_size=first.end)
    assert list(report.entries) == [first] + later
    assert report.truncated_at is None and report.reason is None and report.dropped_bytes == 0


def test_preallocated_disk_grows_by_whole_steps_and_syncs_length_changes_fully(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append("fsync"))
    monkeypatch.setattr(os, "fdatasync", lambda fd: calls.append("fdatasync"))
    disk = OsDisk(tmp_path, preallocate=100)
    disk.append("f", b"a" * 30)
    disk.fsync("f")
    disk.append("f", b"b" * 30)
    disk.fsync("f")
    disk.append("f", b"c" * 70)  # past the first step
    disk.fsync("f")
    # creating the file syncs its directory; then a full fsync per step of growth, fdatasync otherwise
    assert calls == ["fsync", "fsync", "fdatasync", "fsync"]
    assert disk.read("f") == b"a" * 30 + b"b" * 30 + b"c" * 70 and disk.size("f") == 130
    assert os.path.getsize(tmp_path / "f") == 200  # two steps of 100


# ---------------------------------------------------------------- the acked record (issue 13, item 1)


def test_the_acked_record_says_what_was_synced_and_damage_below_it_is_not_a_torn_tail(tmp_path):
    for sync_thread in (False, True):
        d = tmp_path / str(sync_thread)
        disk = OsDisk(d, sync_thread=sync_thread)
        log = SegmentLog(disk, segment_size=200)
        log.recover()
        entries = make_entries(12)
        log.append(entries)
        disk.sync_wait(log.sync_begin())
        log.settle()  # idle: the record catches up with the completed sync
        disk.close()
        raw = (d / "acked").read_bytes()
        assert len(raw) == 20
        log2, report = open_log(d, segment_size=200)
        assert report.acked == (entries[-1].end, entries[-1].end) and not report.damaged
        # a flipped byte in the middle of the synced log: damage, with valid entries after it
        name = log2.segment_names()[1]
        with open(d / name, "r+b") as f:
            f.seek(30)
            b = f.read(1)
            f.seek(30)
            f.write(bytes([b[0] ^ 1]))
        _, report = open_log(d, segment_size=200)
        assert report.damaged and report.catch_up_to == entries[-1].end and report.damaged_file == name
        # a restart before catching up still knows: the log now ends where it was cut, below the record
        _, again = open_log(d, segment_size=200)
        assert again.damaged and again.catch_up_to == entries[-1].end and again.truncated_at is None


@pytest.mark.parametrize("die_at", [0, 1, 2])
def test_a_crash_inside_a_cut_the_leader_asked_for_is_never_taken_for_damage(die_at):
    # Found by the simulator: the record used to come down after the cut, so a
    # crash between the two left a record above a log that was cut on purpose.
    disk = DyingDisk()
    log = SegmentLog(disk, segment_size=200)
    log.recover()
    entries = make_entries(12)
    log.append(entries)
    log.sync()
    disk.fail_at = die_at  # 0: inside the record's sync, 1: inside the segment's, 2: after both
    try:
        log.truncate(entries[4].end)
    except Died:
        pass
    disk.fail_at = None
    disk.crash(KeepUnsynced(False), power_loss=False)  # kill -9: what was written stays readable
    report = SegmentLog(disk, segment_size=200).recover()
    assert not report.damaged and report.catch_up_to is None
