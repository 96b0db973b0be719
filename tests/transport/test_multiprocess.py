"""Publisher and subscriber in different processes, over IPC and UDP loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tickline.transport import Aeron, OfferResult, free_ports

WORKER = Path(__file__).with_name("worker.py")

pytestmark = pytest.mark.multiprocess


def run_pair(procs, driver_dir: str, channel: str, count: int, sizes: str, tmp_path: Path) -> dict:  # type: ignore[no-untyped-def]
    out = tmp_path / "sub.json"
    s = procs.python(WORKER, "sub", driver_dir, channel, 5, count, out, stdout=subprocess.PIPE)
    assert s.stdout.readline().strip() == b"ready"
    p = procs.python(WORKER, "pub", driver_dir, channel, 5, count, sizes)
    assert s.wait(90) == 0
    assert p.wait(30) == 0
    return json.loads(out.read_text())


@pytest.mark.parametrize("transport", ["ipc", "udp"])
def test_messages_arrive_complete_and_in_order(procs, driver, tmp_path: Path, udp_port: int, transport: str) -> None:  # type: ignore[no-untyped-def]
    channel = "aeron:ipc" if transport == "ipc" else f"aeron:udp?endpoint=127.0.0.1:{udp_port}"
    report = run_pair(procs, driver.dir, channel, 3000, "16,100,1000", tmp_path)
    assert report["bad"] == []
    assert report["received"] == list(range(3000))


@pytest.mark.parametrize("transport", ["ipc", "udp"])
def test_fragmented_large_messages_reassemble(procs, driver, tmp_path: Path, udp_port: int, transport: str) -> None:  # type: ignore[no-untyped-def]
    channel = "aeron:ipc" if transport == "ipc" else f"aeron:udp?endpoint=127.0.0.1:{udp_port}|mtu=1408"
    # 64 KiB terms: max message length is 8 KiB; 8000 B messages span ~6 frames.
    report = run_pair(procs, driver.dir, channel, 200, "8000,3000,1500", tmp_path)
    assert report["bad"] == []
    assert report["received"] == list(range(200))


def test_back_pressure_when_the_subscriber_process_stops(procs, driver, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "sub.json"
    s = procs.python(WORKER, "sub", driver.dir, "aeron:ipc", 6, 10**9, out, stdout=subprocess.PIPE)
    assert s.stdout.readline().strip() == b"ready"
    with Aeron(driver.dir) as aeron:
        pub = aeron.add_publication("aeron:ipc", 6)
        deadline = time.monotonic() + 10
        while not pub.is_connected and time.monotonic() < deadline:
            time.sleep(0.001)
        os.kill(s.pid, signal.SIGSTOP)  # the subscriber stops polling
        try:
            results = []
            for seq in range(500):
                results.append(pub.offer(bytes(1000)))
                if results[-1] == OfferResult.BACK_PRESSURED:
                    break
            assert results[-1] == OfferResult.BACK_PRESSURED
            assert all(r > 0 for r in results[:-1])
        finally:
            os.kill(s.pid, signal.SIGCONT)


def test_image_unavailable_when_the_publisher_is_killed(procs, driver) -> None:  # type: ignore[no-untyped-def]
    events: list[tuple[str, int]] = []
    with Aeron(driver.dir) as aeron:
        sub = aeron.add_subscription("aeron:ipc", 7, on_available_image=lambda i: events.append(("up", i.session_id)),
                                     on_unavailable_image=lambda i: events.append(("down", i.session_id)))
        p = procs.python(WORKER, "hold", driver.dir, "aeron:ipc", 7, stdout=subprocess.PIPE)
        session_id = int(p.stdout.readline())
        got: list[bytes] = []
        # The client conductor adds the image to the subscription before it runs the
        # handler, so the "up" event may come one poll after the image's first fragment.
        deadline = time.monotonic() + 10
        while (not got or not events) and time.monotonic() < deadline:
            sub.poll(lambda b, h: got.append(bytes(b)), 10)
        assert got == [b"alive"] and events == [("up", session_id)]
        p.send_signal(signal.SIGKILL)
        p.wait()
        # The driver notices the dead client after its liveness timeout (set short in the fixture).
        deadline = time.monotonic() + 20
        while ("down", session_id) not in events and time.monotonic() < deadline:
            sub.poll(lambda b, h: None, 10)
            time.sleep(0.01)
        assert events == [("up", session_id), ("down", session_id)]



def test_manual_multi_destination_cast(aeron) -> None:  # type: ignore[no-untyped-def]
    """A control-mode=manual publication sends to the destinations it is given, and stops on removal."""
    ports = free_ports(2)
    subs = [aeron.add_subscription(f"aeron:udp?endpoint=127.0.0.1:{p}", 12) for p in ports]
    pub = aeron.add_publication("aeron:udp?control-mode=manual", 12)
    for p in ports:
        pub.add_destination(f"aeron:udp?endpoint=127.0.0.1:{p}")
    deadline = time.monotonic() + 10
    while not all(s.is_connected for s in subs) and time.monotonic() < deadline:
        time.sleep(0.005)

    def receive(sub, n: int) -> list[bytes]:  # type: ignore[no-untyped-def]
        got: list[bytes] = []
        end = time.monotonic() + 5
        while len(got) < n and time.monotonic() < end:
            sub.poll(lambda b, h: got.append(bytes(b)), 10)
        return got

    while pub.offer(b"to both") < 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert [receive(s, 1) for s in subs] == [[b"to both"], [b"to both"]]

    pub.remove_destination(f"aeron:udp?endpoint=127.0.0.1:{ports[1]}")
    while pub.offer(b"to the first") < 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert receive(subs[0], 1) == [b"to the first"]
    end = time.monotonic() + 0.5
    leftover: list[bytes] = []
    while time.monotonic() < end:
        subs[1].poll(lambda b, h: leftover.append(bytes(b)), 10)
    assert leftover == []

    from tickline.transport import RegistrationError

    with pytest.raises(RegistrationError, match="add_destination failed: destination=bogus dir=.* invalid channel"):
        pub.add_destination("bogus")
    ipc = aeron.add_publication("aeron:ipc", 13)
    with pytest.raises(RegistrationError, match="add_destination failed: destination=aeron:udp.* unknown publication"):
        ipc.add_destination(f"aeron:udp?endpoint=127.0.0.1:{ports[0]}")  # not a multi-destination publication
