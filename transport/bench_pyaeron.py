"""pyaeron worker for `tickline bench ping --pyaeron PYTHON` (run by that interpreter).

pyaeron is another CPython binding of the same Aeron C client (it needs
Python >= 3.12).  This file imports only pyaeron and the standard library, so
it runs in a separate environment; it mirrors the tickline workers in
bench.py exactly (same loops, same streams, no fragment assembly) so the two
bindings are compared like for like.

    PYTHON bench_pyaeron.py ping CPU DIR PING_CH PONG_CH PING_STREAM PONG_STREAM SIZE COUNT WARMUP OUT
    PYTHON bench_pyaeron.py pong CPU DIR PING_CH PONG_CH PING_STREAM PONG_STREAM TOTAL
    PYTHON bench_pyaeron.py tput-pub CPU DIR CHANNEL STREAM SIZE COUNT
"""

import os
import sys
from array import array
from time import perf_counter_ns

import pyaeron  # type: ignore[import-not-found, import-untyped, unused-ignore]  # runs under its own interpreter


def client(dir: str):  # type: ignore[no-untyped-def]
    return pyaeron.Aeron(context=pyaeron.Context(dir=dir, pre_touch_mapped_memory=True))


def ping(dir: str, ping_ch: str, pong_ch: str, ping_stream: int, pong_stream: int, size: int, count: int,
         warmup: int, out: str) -> None:
    with client(dir) as aeron:
        pub = aeron.add_publication(ping_ch, ping_stream)
        sub = aeron.add_subscription(pong_ch, pong_stream)
        while not (pub.is_connected and sub.is_connected):
            pass
        msg = bytearray(size)
        samples = array("q", bytes(8 * count))
        offer, poll = pub.offer, sub.poll
        got = [0]

        def on_pong(buffer, header) -> None:  # type: ignore[no-untyped-def]
            got[0] += 1

        for i in range(warmup + count):
            t0 = perf_counter_ns()
            while not offer(msg):
                pass
            want = got[0] + 1
            while got[0] < want:
                poll(on_pong, 1, assemble=False)
            if i >= warmup:
                samples[i - warmup] = perf_counter_ns() - t0
        with open(out, "wb") as f:
            f.write(samples.tobytes())


def pong(dir: str, ping_ch: str, pong_ch: str, ping_stream: int, pong_stream: int, total: int) -> None:
    with client(dir) as aeron:
        sub = aeron.add_subscription(ping_ch, ping_stream)
        pub = aeron.add_publication(pong_ch, pong_stream)
        offer = pub.offer
        got = [0]

        def on_ping(buffer, header) -> None:  # type: ignore[no-untyped-def]
            while not offer(buffer):
                pass
            got[0] += 1

        poll = sub.poll
        while got[0] < total:
            poll(on_ping, 10, assemble=False)


def tput_pub(dir: str, channel: str, stream: int, size: int, count: int) -> None:
    with client(dir) as aeron:
        pub = aeron.add_publication(channel, stream)
        while not pub.is_connected:
            pass
        offer, msg, sent = pub.offer, bytes(size), 0
        while sent < count:
            if offer(msg):
                sent += 1


if __name__ == "__main__":
    role, cpu, a = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    if cpu >= 0:
        os.sched_setaffinity(0, {cpu})
    if role == "ping":
        ping(a[0], a[1], a[2], int(a[3]), int(a[4]), int(a[5]), int(a[6]), int(a[7]), a[8])
    elif role == "pong":
        pong(a[0], a[1], a[2], int(a[3]), int(a[4]), int(a[5]))
    elif role == "tput-pub":
        tput_pub(a[0], a[1], int(a[2]), int(a[3]), int(a[4]))
    else:
        raise SystemExit(f"unknown role: role={role}")
