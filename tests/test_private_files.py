"""What tickline writes is private to the user (issue 14, item 15): a FIX store, its
message log and the cluster's log files are 0600 in 0700 directories even under
umask 0 (they were 0644 / 0755 under the default umask, readable by any local user)."""

import os
import stat
from pathlib import Path

import pytest

from tickline.cluster.disk import OsDisk
from tickline.fix_gateway.msglog import MessageLog
from tickline.fix_gateway.store import FileStore


@pytest.fixture
def umask_0():
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def mode(p: Path) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def every_entry(root: Path):
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            yield Path(dirpath) / d
        for f in filenames:
            yield Path(dirpath) / f


def test_fix_store_and_message_log_are_private_under_umask_0(tmp_path, umask_0):
    root = tmp_path / "fix"
    store = FileStore(root / "stores" / "FIX.4.4-GW-C1.log", "batch", 1.0)
    store.save(1, b"8=FIX.4.4\x019=5\x0135=0\x0110=000\x01")
    store.close()
    log = MessageLog(root / "logs" / "FIX.4.4-GW-C1.messages")
    log.incoming(b"8=FIX.4.4\x019=5\x0135=0\x0110=000\x01", 1.0)
    log.close()
    entries = list(every_entry(root))
    assert len(entries) >= 4  # two directories, the store, the message log
    for p in entries:
        assert mode(p) == (0o700 if p.is_dir() else 0o600), p


def test_cluster_log_files_are_private_under_umask_0(tmp_path, umask_0):
    data = tmp_path / "cluster" / "m1"
    disk = OsDisk(data, preallocate=4096)
    disk.append("segment-0", b"x" * 100)
    disk.write_atomic("meta", b"term=1", sync=True)
    disk.close()
    entries = list(every_entry(tmp_path / "cluster"))
    assert {p.name for p in entries} >= {"m1", "segment-0", "meta"}
    for p in entries:
        assert mode(p) == (0o700 if p.is_dir() else 0o600), p
