"""Robustness bench (issue 14): the gateway daemon under 500 garbage connections and a junk
stream keeps serving a real session, and its memory stays bounded.

Bounded in count and time: 500 connections, the junk stream stops after 256 MiB or 4 s, the
whole test after ~60 s at most.  Nothing here asserts a time; the memory assertion is on the
daemon's peak resident size (VmHWM) against what it had before the attack.  (The gateway before
these fixes buffered an unidentified connection's bytes until its logon timeout: 1.8 GB in 4 s.)
"""

import os
import random
import socket
import subprocess
import sys
import time

import pytest

from tickline.fix_gateway.io import FixInitiator, InitiatorConfig
from tickline.fix_gateway.session import ApplicationMessage, LoggedOn, SessionConfig, utc_timestamp
from tickline.transport import free_ports

pytestmark = pytest.mark.multiprocess

GARBAGE_CONNECTIONS = 500
JUNK_STREAM_MAX_BYTES = 256 << 20
JUNK_STREAM_MAX_S = 4.0
MAX_MESSAGE_SIZE = 64 << 10
# the bound the acceptor promises: each unidentified connection holds at most one message's
# worth; everything else the attack brings is per-connection overhead.  Measured growth on a
# loaded 2-core machine was far below this (see the report); the old code exceeded it in < 1 s.
RSS_GROWTH_BOUND = 48 << 20


def proc_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"{key} not in /proc/{pid}/status")


def garbage(rng, i):
    """Junk of several kinds: random bytes, oversized and lying headers, partial Logons, nothing."""
    kind = i % 6
    if kind == 0:
        return rng.randbytes(rng.randint(1, 4096))
    if kind == 1:
        return b"8=FIX.4.4\x019=999999999\x01" + rng.randbytes(64)
    if kind == 2:
        return b"8=FIX.4.4\x019=40\x0135=A\x0149=C1\x0156=GW\x01" + rng.randbytes(30) + b"10=000\x01"
    if kind == 3:
        return b"8=FIX.4.4\x019=200\x0135=A\x0195=\xb2\x0196=" + rng.randbytes(100)
    if kind == 4:
        return b"8=FIX" * 500
    return b""  # connects and says nothing


def test_gateway_under_garbage_connections_and_junk_stream(tmp_path, daemon, loop):
    port = free_ports(kind="tcp")[0]
    cfg = tmp_path / "topology.toml"
    cfg.write_text(f"""
[fix_gateway]
store_dir = "{tmp_path / 'store'}"
fsync = "none"
status_file = "{tmp_path / 'status.json'}"
idle = "backoff"
[fix_gateway.acceptor]
port = {port}
max_message_size = {MAX_MESSAGE_SIZE}
max_connections = 2000
max_connections_per_address = 2000
pending_timeout_s = 3
[fix_gateway.venue]
default_mode = "auto-fill"
[[fix_gateway.sessions]]
role = "acceptor"
sender_comp_id = "GW"
target_comp_id = "C1"
transport_dictionary = "FIX44"
""")
    proc = daemon(cfg)
    events = []
    ini = FixInitiator(InitiatorConfig(reconnect_min_s=0.05), on_event=lambda sid, e: events.append(e))
    ini.add_session(SessionConfig(sender_comp_id="C1", target_comp_id="GW", role="initiator"), port=port)
    loop.add(ini)
    sid = "FIX.4.4:C1->GW"
    fills = lambda: [e.message for e in events if isinstance(e, ApplicationMessage) and e.message.get(39) == "2"]
    sent = [0]

    def order():
        sent[0] += 1
        ini.submit(sid, "D", [(11, f"R{sent[0]}"), (55, "X"), (54, "1"), (60, utc_timestamp(time.time())), (38, "1"),
                              (40, "2"), (44, "1")])
    loop.run_until(lambda: any(isinstance(e, LoggedOn) for e in events), timeout=15, what="real session logged on")
    for _ in range(20):  # warm up: the paths the session uses are allocated before the baseline
        order()
    loop.run_until(lambda: len(fills()) == sent[0], timeout=15, what="warm-up fills")
    baseline = proc_kib(proc.pid, "VmRSS")

    rng = random.Random(14)
    conns = []
    try:
        for i in range(GARBAGE_CONNECTIONS):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            conns.append((s, garbage(rng, i)))
            if i % 50 == 49:  # the real session trades while the connections pile up
                order()
                loop.run_for(5)
        for s, junk in conns:
            if junk:
                try:
                    s.send(junk)
                except OSError:
                    pass  # refused or closed by the gateway already: that is its right
        # the junk stream: one connection after another, each sending until the gateway cuts it off
        junk_chunk = rng.randbytes(64 << 10)
        streamed, t_end = 0, time.monotonic() + JUNK_STREAM_MAX_S
        stream, cycles = None, 0
        while streamed < JUNK_STREAM_MAX_BYTES and time.monotonic() < t_end:
            if stream is None:
                stream = socket.create_connection(("127.0.0.1", port), timeout=5)
                stream.setblocking(False)
            try:
                streamed += stream.send(junk_chunk)
            except BlockingIOError:
                pass
            except OSError:
                stream.close()
                stream = None
            cycles += 1
            if cycles % 200 == 0:
                order()
            loop.run_for(1)
        if stream is not None:
            stream.close()
        loop.run_until(lambda: len(fills()) == sent[0], timeout=30, what="every order of the real session filled")
        assert proc.poll() is None, "the gateway exited"
        peak = proc_kib(proc.pid, "VmHWM")
        growth = peak - baseline
        print(f"robustness bench: garbage_connections={GARBAGE_CONNECTIONS} junk_streamed_bytes={streamed} "
              f"orders={sent[0]} rss_baseline={baseline} rss_peak={peak} growth={growth}")
        assert growth < RSS_GROWTH_BOUND, f"gateway RSS grew by {growth} bytes under garbage (bound {RSS_GROWTH_BOUND})"
        assert streamed > 4 * MAX_MESSAGE_SIZE  # the stream did bring more than the gateway may keep
    finally:
        for s, _ in conns:
            s.close()
    # the garbage is gone (pending timeout) and the session still trades
    loop.run_until(lambda: '"connections": 1' in (tmp_path / "status.json").read_text(), timeout=20,
                   what="garbage connections closed, the real one left")
    order()
    loop.run_until(lambda: len(fills()) == sent[0], timeout=15, what="fill after the attack")
    import json

    counters = json.loads((tmp_path / "status.json").read_text())["acceptor"]
    assert counters.get("too_much_before_logon", 0) >= 1
    out = subprocess.run([sys.executable, "-P", "-m", "tickline.fix_gateway.cli", "fix-gateway", "--config", str(cfg),
                          "--status"], capture_output=True, text=True, timeout=30).stdout
    assert "acceptor connections=1 " in out and "too_much_before_logon=" in out
    assert os.path.exists(f"/proc/{proc.pid}")
