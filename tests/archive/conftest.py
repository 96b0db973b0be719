"""Make ``tickline.archive`` importable when pytest runs from the repository root.

``python -m pytest`` puts the current directory first on ``sys.path``, so the
root's ``tickline/`` folder (which holds only the package's own files) shadows
the installed or shimmed package whose subpackages are the root's sibling
folders (ARCHITECTURE.md, "Layout").  Extending ``tickline.__path__`` with the root
reproduces the ``pyproject.toml`` mapping for this test session only.
"""

import importlib.util
import os

import tickline

if importlib.util.find_spec("tickline.archive") is None:
    tickline.__path__.append(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from pathlib import Path  # noqa: E402
from typing import Iterator  # noqa: E402

import pytest  # noqa: E402

from archive_helpers import RunningArchive  # noqa: E402


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
