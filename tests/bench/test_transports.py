"""``tickline bench transports``: every harness carries the bytes, fixed-rate accounting, bad input.

Tiny counts, no timing asserted: a case that runs returns exactly ``count``
samples, and ping has compared every echo with what it sent (a mismatch
fails the case, as the corrupting-link test shows)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tickline import benchkit
from tickline.transport import bench_transports as bt

pytestmark = pytest.mark.multiprocess

PYTHON_TRANSPORTS = ["tickline-ipc", "tickline-ipc-pull", "tickline-ipc-recv", "tickline-udp", "shm-ring", "uds-stream", "uds-dgram", "tcp",
                     "pipe", "zmq-ipc", "zmq-tcp"]


@pytest.fixture
def harness() -> "object":
    h = bt.Harness(bt.Options(count=40, warmup=5, rate=None, timeout=120), (None, None))
    yield h
    h.close()


@pytest.mark.parametrize("kind", PYTHON_TRANSPORTS)
def test_each_python_transport_carries_every_message(harness: bt.Harness, kind: str) -> None:
    for size in (32, 4096):
        samples, elapsed = harness.run(kind, size)
        assert len(samples) == 40 and all(s > 0 for s in samples) and elapsed > 0


def test_c_reference_runs_the_requested_count(harness: bt.Harness) -> None:
    samples, _ = harness.run("aeron-c", 32)
    assert len(samples) == 40 and all(s > 0 for s in samples)


def test_redis_runs_or_says_why_not(harness: bt.Harness) -> None:
    if shutil.which("redis-server") is None:
        with pytest.raises(bt.CaseSkipped, match="no redis-server on PATH"):
            harness.run("redis", 32)
    else:
        samples, _ = harness.run("redis", 256)
        assert len(samples) == 40


class EchoLink:
    """An in-process echo; ``corrupt_at`` flips a byte of that message's echo; ``on_send`` sees each send."""

    def __init__(self, corrupt_at: int = -1, on_send: "object" = None) -> None:
        self.last = b""
        self.sent = 0
        self.corrupt_at, self.on_send = corrupt_at, on_send

    def send(self, msg: bytearray) -> None:
        if self.on_send is not None:
            self.on_send(self.sent)  # type: ignore[operator]
        self.last = bytes(msg)
        if self.sent == self.corrupt_at:
            self.last = self.last[:-1] + bytes([self.last[-1] ^ 1])
        self.sent += 1

    def recv_into(self, buf: bytearray) -> int:
        buf[: len(self.last)] = self.last
        return len(self.last)


def test_ping_loop_rejects_an_echo_that_differs() -> None:
    r = bt.ping_loop(EchoLink(), 64, 10, 2)
    assert len(r.samples) == 10
    with pytest.raises(RuntimeError, match="echo differs from the message sent: seq=7 size=64"):
        bt.ping_loop(EchoLink(corrupt_at=7), 64, 10, 2)


class FakeClock:
    """Every read advances 100 ns; ``stall(ns)`` jumps ahead once, as a descheduled process would."""

    def __init__(self) -> None:
        self.now = 1_000_000

    def __call__(self) -> int:
        self.now += 100
        return self.now

    def stall(self, ns: int) -> None:
        self.now += ns


def _run_with_stall(rate: float | None) -> list[int]:
    clock = FakeClock()
    stall_at = 20  # the 20th send overall: measured send 10 after 10 warm-up sends
    link = EchoLink(on_send=lambda i: clock.stall(1_000_000) if i == stall_at else None)
    return list(bt.ping_loop(link, 32, 200, 10, rate=rate, clock=clock).samples)


def test_fixed_rate_charges_a_stall_to_every_send_it_delayed() -> None:
    # 100k/s: one send due every 10 us; a round trip costs 200 ns of fake time.
    rated = _run_with_stall(100_000)
    assert all(s <= 200 for s in rated[:10])  # on time: from the due time, one or two clock reads
    assert rated[10] >= 1_000_000  # the stalled send
    # The sends due during the stall went late, and each counts from its due time:
    # about 1 ms / 10 us of them show the stall, shrinking by ~10 us each.
    late = [s for s in rated[11:] if s > 1000]
    assert 95 <= len(late) <= 102
    assert rated[11] == pytest.approx(1_000_000 - 10_000, abs=1000)
    assert rated[11] > rated[12] > rated[13]
    # Ping-pong measures from the actual send, so only the stalled round trip shows it (coordinated omission).
    pingpong = _run_with_stall(None)
    assert pingpong[10] >= 1_000_000 and [s for s in pingpong if s > 1000] == [pingpong[10]]


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tickline", "bench", "transports", *args], capture_output=True,
                          text=True, timeout=300, env=env)


@pytest.mark.parametrize("args, message", [
    (["--transports", "tcp,carrier-pigeon"], "unknown transport: transport=carrier-pigeon expected=tickline-ipc,"),
    (["--sizes", "32,lots"], "unknown message size: size='lots'"),
    (["--sizes", "4"], "message size out of range: size=4 expected=8..65536"),
    (["--rate", "-5"], "rate out of range: rate=-5.0"),
    (["--json", "/proc/no/such/dir/out.json"], "output path is not writable: option=--json path=/proc/no/such/dir/out.json"),
    (["--count", "0"], "counts out of range: count=0 warmup=10000 runs=1"),
    (["--pyaeron", "/no/such/python"], "--pyaeron is not an executable interpreter: python=/no/such/python"),
    (["--plot", "out.gif"], "unsupported plot format: option=--plot path=out.gif expected=.png|.svg"),
])
def test_bad_input_gets_a_message_not_a_traceback(args: list[str], message: str) -> None:
    r = _cli(*args)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr + r.stdout


def test_a_small_run_writes_every_output_and_skips_missing_peers(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # no redis-server on this PATH
    r = _cli("--transports", "pipe,tcp,redis,pyaeron", "--sizes", "32,1K", "--count", "30", "--warmup", "3",
             "--runs", "2", "--json", str(tmp_path / "t.json"), "--hgrm", str(tmp_path / "h"),
             "--plot", str(tmp_path / "t.svg"), env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    doc = benchkit.load(str(tmp_path / "t.json"))
    cases = {c["name"]: c for c in doc["cases"]}
    assert set(cases) == {f"{t}/{s}" for t in ("pipe", "tcp", "redis", "pyaeron") for s in (32, 1024)}
    for t in ("pipe", "tcp"):
        for s in (32, 1024):
            c = cases[f"{t}/{s}"]
            assert c["count"] == 60 and len(c["runs"]) == 2 and c["group"] == f"{s} B" and c["throughput"] > 0
            assert (tmp_path / "h" / f"{t}_{s}.hgrm").exists()
    assert cases["redis/32"]["skipped"].startswith("no redis-server on PATH")
    assert cases["pyaeron/32"]["skipped"].startswith("needs --pyaeron PYTHON")
    assert "<svg" in (tmp_path / "t.svg").read_text()
    assert "redis/32" in r.stdout and "skipped: no redis-server on PATH" in r.stdout


def test_a_rate_the_machine_cannot_sustain_is_reported(tmp_path: Path) -> None:
    r = _cli("--transports", "pipe", "--sizes", "32", "--count", "50", "--warmup", "5", "--rate", "1e9",
             "--json", str(tmp_path / "r.json"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "rate not sustained: requested=1e+09/s achieved=" in r.stdout
    assert "the machine could not sustain --rate 1e+09/s for: pipe/32" in r.stdout
    [case] = benchkit.load(str(tmp_path / "r.json"))["cases"]
    assert case["extra"]["rate_not_sustained"] is True and 0 < case["throughput"] < 1e9
    # The C reference's own loop has no fixed-rate mode: it says so instead of measuring something else.
    r = _cli("--transports", "aeron-c", "--sizes", "32", "--count", "10", "--rate", "1000")
    assert r.returncode == 0 and "skipped: fixed-rate mode is not implemented by this peer's own loop" in r.stdout
