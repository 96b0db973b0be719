"""Media driver lifecycle (embedded and the aeronmd daemon), client errors
when there is no driver or it dies, invoker mode, counters and `tickline stat`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tickline.transport import (
    Aeron,
    AgentInvoker,
    CompositeAgent,
    DriverError,
    MediaDriver,
    read_stat,
)
from tickline.transport.counters import format_stat
from tickline.transport.driver import driver_pid_if_active


def os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def wait_for(cond, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_embedded_start_stop_repeatedly_leaks_nothing() -> None:
    threads = os_threads()
    dirs = []
    for _ in range(5):
        with MediaDriver.embedded() as d:
            dirs.append(d.dir)
            assert os.path.exists(os.path.join(d.dir, "cnc.dat"))
            assert driver_pid_if_active(d.dir) == os.getpid()
            with Aeron(d.dir) as a:
                a.add_publication("aeron:ipc", 1).offer(b"x")
        assert not d.is_running
    assert all(not os.path.exists(p) for p in dirs)
    assert len(set(dirs)) == 5
    assert wait_for(lambda: os_threads() == threads, 5), f"threads before={threads} after={os_threads()}"


def test_no_second_driver_over_a_live_one(shm_dir: str) -> None:
    with MediaDriver.embedded(shm_dir):
        with pytest.raises(DriverError, match=f"a live media driver already uses this directory: dir={shm_dir} pid={os.getpid()}"):
            MediaDriver.embedded(shm_dir)
        with pytest.raises(DriverError, match=f"dir={shm_dir} pid={os.getpid()}"):
            MediaDriver.launch(shm_dir)


def test_bad_driver_options() -> None:
    with pytest.raises(ValueError, match="driver option must be an Aeron property name: option='term.length'"):
        MediaDriver.embedded(options={"term.length": "64k"})
    with pytest.raises(ValueError, match="pass the directory as dir="):
        MediaDriver.embedded(options={"aeron.dir": "/tmp/x"})


def test_client_without_a_driver_names_the_directory(shm_dir: str) -> None:
    t0 = time.monotonic()
    with pytest.raises(DriverError, match=f"no media driver answered: dir={shm_dir} timeout_ms=500"):
        Aeron(shm_dir, timeout=0.5)
    assert time.monotonic() - t0 < 10  # gave up, did not hang
    with pytest.raises(ValueError, match="timeout must be > 0"):
        Aeron(shm_dir, timeout=0)


def test_daemon_serves_clients_and_stops_cleanly_on_sigterm(shm_dir: str) -> None:
    d = MediaDriver.launch(shm_dir, options={"aeron.ipc.term.buffer.length": "64k"}, stdout=subprocess.PIPE)
    try:
        assert d.is_running and driver_pid_if_active(shm_dir) == d.pid != os.getpid()
        with Aeron(shm_dir) as a:
            sub = a.add_subscription("aeron:ipc", 3)
            pub = a.add_publication("aeron:ipc", 3)
            assert pub.term_buffer_length == 64 * 1024
            assert wait_for(lambda: pub.offer(b"via daemon") > 0)
            got: list[bytes] = []
            assert wait_for(lambda: sub.poll(lambda b, h: got.append(bytes(b)), 1) > 0)
            assert got == [b"via daemon"]
        proc = d._process
        assert proc is not None
        proc.send_signal(signal.SIGTERM)
        # aeronmd shuts down cleanly and exits with the signal's number as its status.
        assert proc.wait(10) == signal.SIGTERM
        assert proc.stdout is not None and b"Shutting down driver" in proc.stdout.read()
    finally:
        d.close()


def test_driver_command_refuses_a_live_directory(shm_dir: str) -> None:
    with MediaDriver.embedded(shm_dir):
        r = subprocess.run([sys.executable, "-m", "tickline", "driver", "--dir", shm_dir], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert f"a live media driver already uses this directory: dir={shm_dir} pid={os.getpid()}" in r.stderr


def _parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rpartition(")")[2].split()[1])


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_driver_command_runs_aeronmd_until_a_signal_then_exits_0(shm_dir: str, procs, sig) -> None:  # type: ignore[no-untyped-def]
    p = procs.start([sys.executable, "-m", "tickline", "driver", "--dir", shm_dir, "-D", "aeron.threading.mode=SHARED"],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # aeronmd runs as the command's child
    assert wait_for(lambda: driver_pid_if_active(shm_dir) not in (None, p.pid), 15)
    assert _parent_of(driver_pid_if_active(shm_dir)) == p.pid  # type: ignore[arg-type]
    p.send_signal(sig)
    assert p.wait(10) == 0  # a clean stop (aeronmd alone exits with the signal's number)
    assert b"Shutting down driver" in p.stdout.read()
    err = p.stderr.read().decode()
    assert re.search(rf"^\d{{4}}-\d\d-\d\dT[\d:.]+Z INFO tickline.driver stopped signal={sig.name}$", err, re.M), err
    assert "unknown property" not in err


def test_driver_command_warns_about_an_unknown_property_and_dies_with_its_parent(shm_dir: str, procs) -> None:  # type: ignore[no-untyped-def]
    p = procs.start([sys.executable, "-m", "tickline", "driver", "--dir", shm_dir, "-D", "aeron.threading.mode=SHARED",
                     "-D", "aeron.no.such.thing=1", "-D", "AERON_TERM_BUFFER_LENGTH=65536"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    line = p.stderr.readline().decode()
    assert re.match(r"\d{4}-\d\d-\d\dT[\d:.]+Z WARNING tickline.driver unknown property, Aeron ignores it: fault=user "
                    r"property=aeron.no.such.thing$", line), line
    assert wait_for(lambda: driver_pid_if_active(shm_dir) not in (None, p.pid), 15)
    child = driver_pid_if_active(shm_dir)
    assert "AERON_TERM_BUFFER_LENGTH" not in p.stderr.readline().decode()  # the next line is the banner
    p.kill()  # even SIGKILLed, the command takes its aeronmd with it
    p.wait(10)
    assert wait_for(lambda: not os.path.exists(f"/proc/{child}") or open(f"/proc/{child}/stat").read().rpartition(")")[2].split()[0] == "Z", 10)


def test_error_when_the_driver_dies_under_a_client(shm_dir: str) -> None:
    d = MediaDriver.launch(shm_dir)
    try:
        a = Aeron(shm_dir, timeout=1.0)
        pub = a.add_publication("aeron:ipc", 9)
        d.kill()
        assert wait_for(lambda: a.driver_lost, 15)
        assert wait_for(lambda: a.is_closed, 15)
        errors = a.take_errors()
        assert any("driver" in msg.lower() and "timeout" in msg.lower() for _, msg in errors), errors
        with pytest.raises(DriverError, match=f"media driver lost: the client timed out waiting for it: operation=add_publication dir={shm_dir}"):
            a.add_publication("aeron:ipc", 9)
        r = pub.offer(b"x")  # a result, not a crash
        assert r < 0
        a.close()
    finally:
        d.close()


def test_invoker_mode_runs_driver_and_client_on_the_callers_thread(shm_dir: str) -> None:
    threads = os_threads()
    driver = MediaDriver.embedded(shm_dir, invoker=True)
    try:
        aeron = Aeron(shm_dir, invoker=True, wait_hook=driver.do_work)
        try:
            assert os_threads() == threads  # nothing started behind our back
            duty = AgentInvoker(CompositeAgent([driver.as_agent(), aeron.as_agent()]))
            sub = aeron.add_subscription("aeron:ipc", 4)
            pub = aeron.add_publication("aeron:ipc", 4)
            for _ in range(100_000):
                duty.invoke()
                if pub.is_connected:
                    break
            assert pub.offer(b"one thread") > 0
            got: list[bytes] = []
            for _ in range(1000):
                duty.invoke()
                if sub.poll(lambda b, h: got.append(bytes(b)), 1):
                    break
            assert got == [b"one thread"]
            assert os_threads() == threads
        finally:
            aeron.close()
    finally:
        driver.close()


def test_one_call_duty_cycle_turns_driver_and_client(driver) -> None:  # type: ignore[no-untyped-def]
    inv_driver = MediaDriver.embedded(invoker=True)  # a directory of its own, removed on close
    try:
        with Aeron(inv_driver.dir, invoker=True, wait_hook=inv_driver.do_work) as aeron:
            turn = aeron.duty_cycle(inv_driver)
            sub = aeron.add_subscription("aeron:ipc", 5)
            pub = aeron.add_publication("aeron:ipc", 5)
            for _ in range(100_000):
                turn()
                if pub.is_connected:
                    break
            assert pub.offer(b"turned") > 0
            got: list[bytes] = []
            for _ in range(1000):
                turn()
                if sub.poll(lambda b, h: got.append(bytes(b)), 1):
                    break
            assert got == [b"turned"]
            assert aeron.duty_cycle()() >= 0  # the conductor alone
            with pytest.raises(ValueError, match="needs an embedded invoker-mode driver"):
                aeron.duty_cycle(driver)  # the fixture's driver runs its own thread
            with pytest.raises(TypeError, match="turn\\(\\) expected type EmbeddedDriver: got=int"):
                aeron._client.turn(42)
    finally:
        inv_driver.close()
    with pytest.raises(RuntimeError, match="turn\\(\\) needs an open invoker-mode client"):
        turn()


def test_do_work_needs_invoker_mode(aeron) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RuntimeError, match="do_work\\(\\) is only for invoker mode: dir=.* invoker=false"):
        aeron.do_work()
    with pytest.raises(RuntimeError, match="as_agent\\(\\) needs invoker=True"):
        aeron.as_agent()
    with pytest.raises(RuntimeError, match="duty_cycle\\(\\) needs invoker=True"):
        aeron.duty_cycle()


def test_stat_reads_positions_and_errors(driver, aeron) -> None:  # type: ignore[no-untyped-def]
    sub = aeron.add_subscription("aeron:ipc", 11)
    pub = aeron.add_publication("aeron:ipc", 11)
    assert wait_for(lambda: pub.offer(b"counted") > 0)

    def pub_pos() -> int:
        [row] = [c for c in read_stat(driver.dir).by_type("pub-pos") if f"{pub.session_id} 11 aeron:ipc" in c.label]
        return row.value

    assert wait_for(lambda: pub_pos() == pub.position)  # the driver refreshes it on its duty cycle
    stat = read_stat(driver.dir)
    assert stat.pid == os.getpid() and 0 <= stat.heartbeat_age_ms < 5000
    assert stat.counter(f"sub-pos: .* {pub.session_id} 11 aeron:ipc") != []
    text = format_stat(stat)
    assert "Aeron Stat" in text and f"pid {os.getpid()}" in text and "distinct errors observed" in text
    r = subprocess.run([sys.executable, "-m", "tickline", "stat", "--dir", driver.dir, "--filter", "pub-pos"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "pub-pos" in r.stdout and "sub-pos" not in r.stdout
    del sub


def test_stat_without_a_driver(shm_dir: str) -> None:
    r = subprocess.run([sys.executable, "-m", "tickline", "stat", "--dir", shm_dir], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert f"no driver CnC file to read: dir={shm_dir}" in r.stderr
