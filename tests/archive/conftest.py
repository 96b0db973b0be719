"""Fixtures of the archive tests: an archive in a temporary directory, and a client of it."""

from pathlib import Path
from typing import Iterator

import pytest

from archive_helpers import RunningArchive


@pytest.fixture
def archive_dir(tmp_path: Path) -> Path:
    d = tmp_path / "archive"
    d.mkdir(mode=0o700)
    return d


@pytest.fixture
def running_archive(driver: object, archive_dir: Path) -> Iterator[RunningArchive]:
    a = RunningArchive(driver.dir, archive_dir, segment_length=128 * 1024)  # type: ignore[attr-defined]
    try:
        yield a
    finally:
        a.close()
    assert not a.errors, a.errors


@pytest.fixture
def archive_client(aeron: object, running_archive: RunningArchive) -> Iterator[object]:
    from tickline.archive import ArchiveClient

    c = ArchiveClient.connect(aeron, timeout=10.0)
    try:
        yield c
    finally:
        c.close()
