"""Fixtures shared by every test package: drivers, clients and child processes
that are always cleaned up (killed by PID, directories removed)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

TESTS = Path(__file__).parent


def pytest_configure(config: pytest.Config) -> None:
    # Child processes started by tests find the tests' helper scripts here.
    os.environ.setdefault("TICKLINE_TESTS_DIR", str(TESTS))


class Processes:
    """Child processes a test starts; all are SIGKILLed and reaped at teardown."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, args: list[str], **kwargs: object) -> "subprocess.Popen[bytes]":
        p = subprocess.Popen(args, **kwargs)  # type: ignore[call-overload]
        self.procs.append(p)
        return p

    def python(self, script: str | Path, *args: object, **kwargs: object) -> "subprocess.Popen[bytes]":
        return self.start([sys.executable, str(script), *map(str, args)], **kwargs)

    def cleanup(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
                p.kill()
            p.wait()


@pytest.fixture
def procs() -> Iterator[Processes]:
    ps = Processes()
    try:
        yield ps
    finally:
        ps.cleanup()


@pytest.fixture
def shm_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A unique driver directory path (not created), removed at teardown."""
    from tickline.transport.driver import unique_dir

    d = unique_dir("tickline-test")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
        for suffix in ("-ping", "-pong"):
            shutil.rmtree(d + suffix, ignore_errors=True)


@pytest.fixture
def driver(shm_dir: str) -> Iterator["object"]:
    """An embedded media driver with small term buffers, closed and removed at teardown."""
    from tickline.transport import MediaDriver

    # Small terms (back pressure comes quickly) and short client liveness and
    # publication linger, so tests about dead clients don't wait Aeron's
    # production timeouts.
    d = MediaDriver.embedded(shm_dir, options={
        "aeron.ipc.term.buffer.length": "64k",
        "aeron.term.buffer.length": "64k",
        "aeron.client.liveness.timeout": "2000000000",
        "aeron.publication.linger.timeout": "200000000",
        "aeron.image.liveness.timeout": "2000000000",
        "aeron.publication.unblock.timeout": "3000000000",
    })
    try:
        yield d
    finally:
        d.close()


@pytest.fixture
def aeron(driver: "object") -> Iterator["object"]:
    from tickline.transport import Aeron

    a = Aeron(driver.dir, timeout=5.0)  # type: ignore[attr-defined]
    try:
        yield a
    finally:
        a.close()


@pytest.fixture
def udp_port() -> int:
    from tickline.transport import free_ports

    return free_ports()[0]
