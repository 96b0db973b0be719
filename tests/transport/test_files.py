"""The driver's files: private modes under any umask, and dead drivers'
directories cleaned on start and by `tickline stat --cleanup`."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tickline.transport import MediaDriver, free_ports
from tickline.transport.driver import dead_driver_dirs, driver_pid_if_active, unique_dir

TICKLINE = str(Path(sys.executable).parent / "tickline")

# Run in a child with the most permissive umask: every file a driver makes
# there must still be private.  Prints "dir MODE path" / "file MODE path".
WALK = """
import os, stat, sys, time
from tickline.transport import Aeron

def walk_modes(d, port):
    with Aeron(d) as aeron:
        channel = f"aeron:udp?endpoint=127.0.0.1:{port}"
        sub = aeron.add_subscription(channel, 1)  # a network image: images/*.logbuffer
        pub = aeron.add_publication(channel, 1)   # publications/*.logbuffer
        ipc = aeron.add_publication("aeron:ipc", 2)
        deadline = time.monotonic() + 10
        while not (pub.is_connected and sub.image_count > 0):
            assert time.monotonic() < deadline, "udp pair never connected"
            time.sleep(0.005)
        for root, dirs, files in os.walk(d):
            print("dir", oct(stat.S_IMODE(os.stat(root).st_mode)), root)
            for f in files:
                print("file", oct(stat.S_IMODE(os.stat(os.path.join(root, f)).st_mode)), f)
"""


def modes(stdout: str) -> tuple[set[str], set[str], list[str]]:
    dirs = {line.split()[1] for line in stdout.splitlines() if line.startswith("dir ")}
    files = {line.split()[1] for line in stdout.splitlines() if line.startswith("file ")}
    names = [line.split()[2] for line in stdout.splitlines() if line.startswith("file ")]
    return dirs, files, names


def run_child(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("group_access", [False, True])
def test_embedded_driver_files_are_private_under_any_umask(shm_dir: str, group_access: bool) -> None:
    port = free_ports()[0]
    proc = run_child(WALK + f"""
from tickline.transport import MediaDriver
os.umask(0)
with MediaDriver.embedded({shm_dir!r}, group_access={group_access}):
    walk_modes({shm_dir!r}, {port})
    print("umask after start", oct(os.umask(0)))
""")
    assert proc.returncode == 0, proc.stderr[-3000:]
    dirs, files, names = modes(proc.stdout)
    assert dirs == ({"0o770"} if group_access else {"0o700"}), proc.stdout
    assert files == ({"0o660"} if group_access else {"0o600"}), proc.stdout
    assert "cnc.dat" in names and sum(n.endswith(".logbuffer") for n in names) >= 3, names
    assert "umask after start 0o0" in proc.stdout  # the process umask is given back


def test_daemon_files_are_private_under_any_umask(shm_dir: str) -> None:
    port = free_ports()[0]
    proc = run_child(WALK + f"""
from tickline.transport import MediaDriver
os.umask(0)
driver = MediaDriver.launch({shm_dir!r})
try:
    walk_modes({shm_dir!r}, {port})
finally:
    driver.close()
""")
    assert proc.returncode == 0, proc.stderr[-3000:]
    dirs, files, names = modes(proc.stdout)
    assert dirs == {"0o700"} and files == {"0o600"}, proc.stdout
    assert "cnc.dat" in names and sum(n.endswith(".logbuffer") for n in names) >= 3, names


def _parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def wait_for_driver(d: str, pid: int, timeout: float = 20.0) -> None:
    """Until the driver in ``d`` is ``pid`` or its child (``tickline driver`` runs aeronmd as one)."""
    deadline = time.monotonic() + timeout
    while True:
        active = driver_pid_if_active(d)
        if active is not None and (active == pid or _parent_of(active) == pid):
            return
        assert time.monotonic() < deadline, f"driver pid={pid} (or its child) never came up in {d}"
        time.sleep(0.01)


def test_tickline_driver_command_files_are_private(shm_dir: str, procs) -> None:  # type: ignore[no-untyped-def]
    p = procs.start([TICKLINE, "driver", "--dir", shm_dir], umask=0, stderr=subprocess.PIPE)
    wait_for_driver(shm_dir, p.pid)
    for root, _dirs, files in os.walk(shm_dir):
        assert stat.S_IMODE(os.stat(root).st_mode) == 0o700, root
        for f in files:
            assert stat.S_IMODE(os.stat(os.path.join(root, f)).st_mode) == 0o600, f
    p.send_signal(signal.SIGTERM)
    p.wait(20)


def dead_driver_dir(d: str) -> int:
    """Leaves a SIGKILLed aeronmd's directory at d, with a marker file in it; returns its pid."""
    driver = MediaDriver.launch(d)
    driver.kill()  # SIGKILL and reaped: its pid is gone, its heartbeat still looks fresh
    Path(d, "marker-of-the-dead-driver").write_text("x")
    return driver.pid


@pytest.mark.parametrize("how", ["embedded", "launch", "command"])
def test_a_dead_drivers_directory_is_cleaned_on_start(shm_dir: str, how: str, procs) -> None:  # type: ignore[no-untyped-def]
    dead_pid = dead_driver_dir(shm_dir)
    assert driver_pid_if_active(shm_dir) == dead_pid  # a fresh heartbeat: only the pid shows it is dead
    if how == "command":
        p = procs.start([TICKLINE, "driver", "--dir", shm_dir], stderr=subprocess.PIPE)
        wait_for_driver(shm_dir, p.pid)
        p.send_signal(signal.SIGTERM)
        p.wait(20)
        assert f"removed a dead driver's directory: dir={shm_dir} pid={dead_pid}" in p.stderr.read().decode()
        return
    driver = MediaDriver.embedded(shm_dir) if how == "embedded" else MediaDriver.launch(shm_dir)
    try:
        assert not Path(shm_dir, "marker-of-the-dead-driver").exists()
        assert driver_pid_if_active(shm_dir) == driver.pid
    finally:
        driver.close()


def test_a_live_drivers_directory_is_never_cleaned(shm_dir: str) -> None:
    with MediaDriver.launch(shm_dir) as live:
        assert dead_driver_dirs(os.path.dirname(shm_dir), prefix=os.path.basename(shm_dir)) == []
        proc = subprocess.run([TICKLINE, "stat", "--cleanup", "--dir", shm_dir], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and "removed=0" in proc.stdout
        assert driver_pid_if_active(shm_dir) == live.pid and Path(shm_dir, "cnc.dat").exists()


def test_embedded_start_removes_directories_of_crashed_processes() -> None:
    # A process with an embedded driver dies without closing it: its
    # tickline-* directory stays in /dev/shm until the next embedded start.
    proc = run_child("""
        import os
        from tickline.transport import MediaDriver
        d = MediaDriver.embedded()
        print(d.dir, flush=True)
        os._exit(0)
    """)
    left = proc.stdout.strip()
    try:
        assert os.path.basename(left).startswith("tickline-") and Path(left, "cnc.dat").exists(), proc.stderr
        with MediaDriver.embedded():
            assert not os.path.exists(left)
    finally:
        shutil.rmtree(left, ignore_errors=True)


def test_stat_cleanup_removes_dead_driver_directories(tmp_path: Path) -> None:
    base = tmp_path / "shm"
    base.mkdir()
    dead = [str(base / "aeron-dead-1"), str(base / "tickline-dead-2")]
    pids = [dead_driver_dir(d) for d in dead]
    live_dir = str(base / "aeron-live")
    unrelated = base / "not-a-driver"
    unrelated.mkdir()
    with MediaDriver.launch(live_dir) as live:
        env = dict(os.environ, AERON_DIR=str(base / "aeron-default"))  # the scan covers the default dir's parent
        proc = subprocess.run([TICKLINE, "stat", "--cleanup"], capture_output=True, text=True, timeout=60, env=env)
        assert proc.returncode == 0, proc.stderr
        for d, pid in zip(dead, pids):
            assert f"removed dead driver directory: dir={d} pid={pid}" in proc.stdout
            assert not os.path.exists(d)
        assert "removed=2" in proc.stdout
        assert driver_pid_if_active(live_dir) == live.pid
        assert unrelated.is_dir()
