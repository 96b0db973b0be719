"""Segment migration: ``migrate_recording`` / ``tickline archive migrate ID --to
DIR`` moves a stopped recording's segment files to another directory (copy,
fsync, catalog, delete), and everything works from there afterwards: replay,
verify, dump, truncate, purge, migrating back.  Refused: an active recording,
an unknown id, a destination that is relative, not a directory or not
writable.  ``kill -9`` during a migration leaves exactly one whole copy, and
the catalog points at it after the restart."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tickline.archive import ArchiveClient, Catalog, ErrorCode, RecordingState, RequestError, replay_image_session_id

from archive_helpers import collect_to_end, live_recording, message, publish, record_stopped, start_archive_process, wait_until


def files_of(dir: Path, recording_id: int) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(dir.iterdir())
            if p.name.startswith(f"{recording_id}-")}


def end_of_messages(seg: Path, n: int) -> int:
    """The position after the first ``n`` messages of a recording starting at 0 (frames' END flags counted)."""
    data = seg.read_bytes()
    pos = 0
    while n:
        length, flags = int.from_bytes(data[pos:pos + 4], "little"), data[pos + 5]
        n -= 1 if flags & 0x40 else 0
        pos += (length + 31) & ~31
    return pos


def replay_all(aeron, client: ArchiveClient, recording_id: int, stream_id: int) -> list[bytes]:
    sub = aeron.add_subscription("aeron:ipc", stream_id)
    try:
        rs = client.replay(recording_id, stream_id=stream_id)
        got, _ = collect_to_end(sub, replay_image_session_id(rs))
        return got
    finally:
        sub.close()


def test_migrate_moves_the_segments_and_everything_works_from_there(aeron, driver, archive_dir, archive_client, tmp_path):
    msgs = [message(i) for i in range(1200)]
    d = record_stopped(aeron, archive_client, 7001, msgs)
    before = files_of(archive_dir, d.recording_id)
    assert len(before) >= 3  # several segments
    dest = tmp_path / "cold"
    dest.mkdir()
    archive_client.migrate_recording(d.recording_id, str(dest))
    assert files_of(archive_dir, d.recording_id) == {}  # the old files are gone
    assert files_of(dest, d.recording_id) == before  # byte for byte, every segment
    assert not [p for p in dest.iterdir() if p.name.endswith(".migrating")]
    assert archive_client.describe(d.recording_id).segment_dir == str(dest)
    assert Catalog(archive_dir).get(d.recording_id).segment_dir == str(dest)  # saved, not only in memory
    assert not list(archive_dir.glob("migrate-*.json"))  # the journal is gone once done
    assert replay_all(aeron, archive_client, d.recording_id, 7101) == msgs
    for cmd in (["verify", "--dir", str(archive_dir), str(d.recording_id)],
                ["dump", "--dir", str(archive_dir), str(d.recording_id), "--count", "2"]):
        r = subprocess.run([sys.executable, "-m", "tickline", "archive", *cmd], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
    # back home, through the CLI this time
    r = subprocess.run([sys.executable, "-m", "tickline", "archive", "migrate", "--aeron-dir", driver.dir,
                        str(d.recording_id), "--to", str(archive_dir)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and f"recording_id={d.recording_id} migrated_to={archive_dir}" in r.stdout, r.stderr
    assert files_of(archive_dir, d.recording_id) == before and files_of(dest, d.recording_id) == {}
    assert archive_client.describe(d.recording_id).segment_dir == ""
    # and away again: truncate and purge act on the files where they are
    archive_client.migrate_recording(d.recording_id, str(dest))
    cut = end_of_messages(dest / f"{d.recording_id}-0.rec", 2)
    archive_client.truncate_recording(d.recording_id, cut)
    assert replay_all(aeron, archive_client, d.recording_id, 7102) == msgs[:2]
    archive_client.purge_recording(d.recording_id)
    assert files_of(dest, d.recording_id) == {} and archive_client.describe(d.recording_id) is None


def test_migrate_refuses_an_active_recording_an_unknown_id_and_a_bad_destination(aeron, archive_dir, archive_client, tmp_path):
    stopped = record_stopped(aeron, archive_client, 7002, [message(i) for i in range(50)])
    sub_id, pub, active = live_recording(aeron, archive_client, 7003)
    publish(pub, [message(i) for i in range(20)])
    dest = tmp_path / "dest"
    dest.mkdir()
    catalog_before = (archive_dir / "catalog.bin").read_bytes()
    files_before = files_of(archive_dir, stopped.recording_id)

    def refused(recording_id: int, destination: str, code: ErrorCode, text: str) -> None:
        with pytest.raises(RequestError) as e:
            archive_client.migrate_recording(recording_id, destination)
        assert e.value.code == code and text in str(e.value) and f"recording_id={recording_id}" in str(e.value), str(e.value)

    refused(active.recording_id, str(dest), ErrorCode.RECORDING_ACTIVE, "cannot migrate a recording still recording")
    refused(999, str(dest), ErrorCode.UNKNOWN_RECORDING, "unknown recording")
    refused(stopped.recording_id, str(tmp_path / "missing"), ErrorCode.BAD_REQUEST, "not a directory")
    (tmp_path / "a-file").write_text("x")
    refused(stopped.recording_id, str(tmp_path / "a-file"), ErrorCode.BAD_REQUEST, "not a directory")
    refused(stopped.recording_id, str(archive_dir), ErrorCode.BAD_REQUEST, "already in the migration destination")
    if os.geteuid() == 0:
        unwritable = "/proc/self"  # root writes through file modes; nobody creates files in /proc
    else:
        ro = tmp_path / "read-only"
        ro.mkdir(mode=0o500)
        unwritable = str(ro)
    refused(stopped.recording_id, unwritable, ErrorCode.STORAGE, "migration destination not writable")
    # the wire refuses a relative path even from a client that sent one as is
    from tickline.archive import wire

    corr = 424242
    archive_client._send(wire.MigrateRecordingRequest(archive_client.session_id, corr, stopped.recording_id, "rel/dir"))
    with pytest.raises(RequestError, match="must be an absolute path"):
        archive_client._await_response(corr)
    # nothing changed
    assert (archive_dir / "catalog.bin").read_bytes() == catalog_before and files_of(archive_dir, stopped.recording_id) == files_before
    assert Catalog(archive_dir).get(stopped.recording_id).segment_dir == ""
    assert list(dest.iterdir()) == [] and not list(archive_dir.glob("migrate-*.json"))
    archive_client.stop_recording(sub_id)
    pub.close()


@pytest.mark.multiprocess
@pytest.mark.parametrize("kill_after_files", [1, 12])
def test_kill_9_during_a_migration_leaves_one_whole_copy_and_the_restart_settles_it(procs, driver, aeron, archive_dir,
                                                                                    tmp_path, kill_after_files):
    # 4 KiB per duty cycle: the copy takes many cycles
    p = start_archive_process(procs, driver.dir, archive_dir, segment_length="64k", migrate_block_bytes="4k")
    client = ArchiveClient.connect(aeron, timeout=20.0)
    msgs = [message(i) for i in range(6000)]
    d = record_stopped(aeron, client, 7010, msgs)
    original = files_of(archive_dir, d.recording_id)
    assert len(original) > 12
    dest = tmp_path / "dest"
    dest.mkdir()
    from tickline.archive import wire

    client._send(wire.MigrateRecordingRequest(client.session_id, 77, d.recording_id, str(dest)))  # not waited for
    deadline = time.monotonic() + 30
    def copies() -> int:  # segment files (finished or not) in the destination; not the writability probe
        return sum(1 for name in os.listdir(dest) if name.startswith(f"{d.recording_id}-"))

    while copies() < kill_after_files and p.poll() is None:
        assert time.monotonic() < deadline, "the migration did not start"
        time.sleep(0.0005)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    client.close()
    assert copies() > 0  # the kill came after the copy began
    p2 = start_archive_process(procs, driver.dir, archive_dir, segment_length="64k")
    client = ArchiveClient.connect(aeron, timeout=20.0)
    r = client.describe(d.recording_id)
    assert r.state == RecordingState.STOPPED and r.stop_position == d.stop_position
    home = Path(r.segment_dir) if r.segment_dir else archive_dir
    other = archive_dir if r.segment_dir else dest
    assert home in (archive_dir, dest)
    assert files_of(home, d.recording_id) == original  # one whole copy, where the catalog says
    assert files_of(other, d.recording_id) == {}  # and nothing of it elsewhere
    assert not [x for x in dest.iterdir() if x.name.endswith(".migrating")] and not list(archive_dir.glob("migrate-*"))
    assert replay_all(aeron, client, d.recording_id, 7110) == msgs
    if not r.segment_dir:  # the restart undid it: it can be done again
        client.migrate_recording(d.recording_id, str(dest))
        assert files_of(dest, d.recording_id) == original and replay_all(aeron, client, d.recording_id, 7111) == msgs
    client.close()
    p2.send_signal(signal.SIGTERM)
    assert p2.wait(timeout=30) == 0


def test_a_journal_found_at_start_finishes_a_migration_the_catalog_already_points_at(driver, aeron, archive_dir, tmp_path):
    """The crash after the catalog was saved and before the old files were deleted (the kill
    tests above land in the copy): the restart deletes the old files, keeps the new ones."""
    import json
    import shutil

    from archive_helpers import RunningArchive

    dest = tmp_path / "dest"
    dest.mkdir()
    msgs = [message(i) for i in range(800)]
    a = RunningArchive(driver.dir, archive_dir, segment_length=64 * 1024)
    with ArchiveClient.connect(aeron, timeout=10.0) as client:
        d = record_stopped(aeron, client, 7020, msgs)
        client.migrate_recording(d.recording_id, str(dest))
    a.close()
    moved = files_of(dest, d.recording_id)
    for name in moved:  # as the crash left them: the old copies still there, and the journal
        shutil.copyfile(dest / name, archive_dir / name)
    (archive_dir / f"migrate-{d.recording_id}.json").write_text(json.dumps(
        {"recording_id": d.recording_id, "source": str(archive_dir), "destination": str(dest)}))
    a = RunningArchive(driver.dir, archive_dir, segment_length=64 * 1024)
    try:
        wait_until(lambda: a.archive.started, what="the archive's start (on its thread)")
        assert files_of(archive_dir, d.recording_id) == {} and files_of(dest, d.recording_id) == moved
        assert not list(archive_dir.glob("migrate-*"))
        with ArchiveClient.connect(aeron, timeout=10.0) as client:
            assert replay_all(aeron, client, d.recording_id, 7120) == msgs
    finally:
        a.close()
    assert not a.errors, a.errors


def test_a_journal_that_does_not_match_the_catalog_deletes_nothing(archive_dir, tmp_path):
    """A journal is trusted only where the catalog agrees with it: garbage, relative paths, or a
    pair of directories neither of which holds the recording leave every file (and the journal) alone."""
    import json

    from tickline.archive.daemon import finish_migration
    from tickline.archive.wire import RecordingDescriptor

    cat = Catalog(archive_dir)
    d = cat.add(RecordingDescriptor(0, 0, 0, 1, 2, 0, 4096, 1 << 16, 5, 1 << 16, 1408, 9, 1001, RecordingState.STOPPED,
                                    "aeron:ipc", "aeron:ipc", ""))
    cat.save()
    seg = archive_dir / f"{d.recording_id}-0.rec"
    seg.write_bytes(b"\x01" * 4096)
    other = tmp_path / "other"
    other.mkdir()
    (other / f"{d.recording_id}-0.rec").write_bytes(b"\x02" * 4096)
    journal = archive_dir / f"migrate-{d.recording_id}.json"
    for text, why in (("{not json", "journal unreadable"),
                      (json.dumps({"recording_id": d.recording_id, "source": "rel", "destination": str(other)}),
                       "relative directory"),
                      (json.dumps({"recording_id": d.recording_id, "source": str(other), "destination": str(tmp_path)}),
                       "does not match the catalog")):
        journal.write_text(text)
        assert why in finish_migration(archive_dir, journal, cat)
        assert journal.exists() and seg.read_bytes() == b"\x01" * 4096
        assert (other / f"{d.recording_id}-0.rec").read_bytes() == b"\x02" * 4096


def test_old_files_that_cannot_be_deleted_leave_the_migration_done_and_the_next_start_finishes_it(
        aeron, archive_dir, archive_client, tmp_path, monkeypatch):
    """The catalog already points at the copies when a delete fails: the request succeeds, the
    journal stays, and settling it (at the next start) deletes the old file."""
    from tickline.archive.daemon import finish_migration

    msgs = [message(i) for i in range(400)]
    d = record_stopped(aeron, archive_client, 7030, msgs)
    stuck = archive_dir / f"{d.recording_id}-0.rec"
    dest = tmp_path / "dest"
    dest.mkdir()
    if os.geteuid() == 0:  # a real refusal: an immutable file cannot be unlinked, even by root
        subprocess.run(["chattr", "+i", str(stuck)], check=True)
    else:
        real_unlink = Path.unlink

        def unlink(self: Path, missing_ok: bool = False) -> None:
            if self == stuck:
                raise PermissionError(1, "Operation not permitted", str(self))
            real_unlink(self, missing_ok=missing_ok)

        monkeypatch.setattr(Path, "unlink", unlink)
    try:
        archive_client.migrate_recording(d.recording_id, str(dest))
        assert archive_client.describe(d.recording_id).segment_dir == str(dest)
        assert stuck.exists() and (archive_dir / f"migrate-{d.recording_id}.json").exists()
        assert replay_all(aeron, archive_client, d.recording_id, 7130) == msgs
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(stuck)], check=True)
        monkeypatch.undo()
    settled = finish_migration(archive_dir, archive_dir / f"migrate-{d.recording_id}.json", Catalog(archive_dir))
    assert "kept=destination" in settled
    assert not stuck.exists() and files_of(archive_dir, d.recording_id) == {} and not list(archive_dir.glob("migrate-*"))
