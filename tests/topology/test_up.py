"""`tickline up` as a user runs it: every process started, their lines prefixed
and timestamped, a status table with the members' roles, and SIGTERM stops
them all (the leader first), leaving no process behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tickline.topology.demo import example_topology

pytestmark = pytest.mark.multiprocess


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_up_starts_everything_shows_roles_and_stops_it_all_on_sigterm(tmp_path):
    base = "/dev/shm" if os.path.isdir("/dev/shm") else str(tmp_path)
    run = os.path.join(base, f"tickline-up-test-{os.getpid()}")
    os.makedirs(run)
    path = example_topology(run)
    p = subprocess.Popen([sys.executable, "-m", "tickline", "up", path, "--status-interval", "2"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, start_new_session=True)
    out: list[str] = []
    pids: set[int] = set()
    buf = b""

    def read() -> None:
        nonlocal buf
        while True:
            try:
                data = os.read(p.stdout.fileno(), 65536)
            except BlockingIOError:
                return
            if not data:
                return
            buf += data
            *lines, buf = buf.split(b"\n")
            out.extend(ln.decode(errors="replace") for ln in lines)

    try:
        os.set_blocking(p.stdout.fileno(), False)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            read()
            if any(re.match(r"member-\d\s+cluster leader\s+\d+", ln) for ln in out) and \
                    any(re.match(r"flow-a\s+order flow\s+\d+\s+\S+\s+running\s+[1-9]", ln) for ln in out):
                break
            assert p.poll() is None, "\n".join(out)
            time.sleep(0.2)
        else:
            pytest.fail("no leader and no orders within 90 s:\n" + "\n".join(out[-60:]))
        for ln in out:
            m = re.match(r"(\S+)\s+(media driver|cluster \w+|venue|order flow|strategy|FIX gateway|market data).*?\s(\d+)\s", ln)
            if m:
                pids.add(int(m.group(3)))
        p.send_signal(signal.SIGTERM)
        end = time.monotonic() + 90
        while p.poll() is None and time.monotonic() < end:
            read()
            time.sleep(0.1)
        rc = p.wait(timeout=5)
        read()
        out.append(buf.decode(errors="replace"))
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        import shutil
        shutil.rmtree(run, ignore_errors=True)
    text = "\n".join(out)
    assert rc == 0, text
    # lines are stamped (UTC, once: a child's log event keeps its own) and prefixed with the process's name
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"
    assert re.search(rf"^{stamp} member-1\s+\| INFO tickline.cluster started member=1 ", text, re.M), text
    assert re.search(rf"^{stamp} venue\s+\| INFO tickline.venue running pid=\d+$", text, re.M), text
    assert re.search(rf"^{stamp} member-1\s+\| \*\* stopped code=0$", text, re.M), text
    assert not re.search(rf"^{stamp} \S+\s+\| {stamp}", text, re.M), text
    # the leader steps down first: the first member to stop hands its leadership over
    stops = re.findall(r"INFO tickline.cluster stopping member=(\d) transfer_to=(\w+)", text)
    assert stops and stops[0][1] != "None", stops
    assert len(pids) >= 10 and not [pid for pid in pids if _alive(pid)]
    assert "DIED" not in text


def test_a_killed_supervisor_leaves_no_process_behind(tmp_path):
    # `tickline up` (and the demo) killed with -9: its children were left running for hours,
    # a busy feed and a driver directory among them.  Each child now gets SIGTERM when its
    # supervisor dies, and stops as it would on Ctrl-C.
    base = "/dev/shm" if os.path.isdir("/dev/shm") else str(tmp_path)
    run = os.path.join(base, f"tickline-up-kill-test-{os.getpid()}")
    os.makedirs(run)
    path = example_topology(run)
    p = subprocess.Popen([sys.executable, "-m", "tickline", "up", path, "--status-interval", "1"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, start_new_session=True)
    out = b""
    named: dict[str, int] = {}
    try:
        os.set_blocking(p.stdout.fileno(), False)
        deadline = time.monotonic() + 90
        # every row of the status table: process, role (words), pid, uptime, state
        while time.monotonic() < deadline and not (len(named) >= 10 and {"member-1", "member-2", "member-3"} <= set(named)):
            try:
                out += os.read(p.stdout.fileno(), 65536) or b""
            except BlockingIOError:
                pass
            for ln in out.decode(errors="replace").splitlines():
                m = re.match(r"([\w-]+)\s{2,}(\S.*?)\s{2,}(\d+)\s{2,}\S+\s{2,}[a-z]", ln)
                if m:
                    named[m.group(1)] = int(m.group(3))
            assert p.poll() is None, out.decode(errors="replace")
            time.sleep(0.2)
        assert {"member-1", "member-2", "member-3"} <= set(named) and len(named) >= 10, out.decode(errors="replace")[-4000:]
        pids = set(named.values())
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        end = time.monotonic() + 60
        while time.monotonic() < end and [pid for pid in pids if _alive(pid)]:
            time.sleep(0.1)
        assert not [pid for pid in pids if _alive(pid)], "children outlived their supervisor"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        for pid in named.values():
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        import shutil
        shutil.rmtree(run, ignore_errors=True)
