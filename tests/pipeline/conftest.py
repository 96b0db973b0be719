from __future__ import annotations

import os
import shutil
import tempfile

import pytest


@pytest.fixture
def run_dir():
    """The pipeline's run directory (driver, cluster data, status files), removed after.

    Every process a test starts belongs to its Supervisor, which stops them (by
    process group: SIGTERM, then SIGKILL) in a ``finally``."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    d = tempfile.mkdtemp(prefix="tickline-pipeline-test-", dir=base)
    yield d
    shutil.rmtree(d, ignore_errors=True)
