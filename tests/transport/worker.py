"""Child-process roles for the multi-process tests (run as a script).

    worker.py pub DIR CHANNEL STREAM COUNT SIZES   offer COUNT numbered messages, sizes cycling
    worker.py sub DIR CHANNEL STREAM COUNT OUT     receive COUNT whole messages, write a JSON report
    worker.py hold DIR CHANNEL STREAM              publish one message, then wait to be killed

Messages carry (sequence, length, crc32 of the payload) so the receiver can
check order and integrity.
"""

import json
import struct
import sys
import time
import zlib

from tickline.transport import Aeron, FragmentAssembler

HEADER = struct.Struct("<qiI")  # sequence, total length, crc32 of the rest


def make(seq: int, size: int) -> bytes:
    body = bytes((seq + i) & 0xFF for i in range(size - HEADER.size))
    return HEADER.pack(seq, size, zlib.crc32(body)) + body


def pub(dir: str, channel: str, stream: int, count: int, sizes: str) -> None:
    lengths = [int(s) for s in sizes.split(",")]
    with Aeron(dir, timeout=5) as aeron:
        p = aeron.add_publication(channel, stream)
        deadline = time.monotonic() + 30
        while not p.is_connected:
            if time.monotonic() > deadline:
                raise SystemExit("publication never connected")
            time.sleep(0.001)
        for seq in range(count):
            msg = make(seq, lengths[seq % len(lengths)])
            while p.offer(msg) < 0:
                if time.monotonic() > deadline:
                    raise SystemExit(f"offer stuck at seq={seq}")
        # Stay until the subscriber has had time to read everything.
        time.sleep(float(__import__("os").environ.get("WORKER_LINGER_S", "1.0")))


def sub(dir: str, channel: str, stream: int, count: int, out: str) -> None:
    received: list[int] = []
    bad: list[str] = []

    def on_message(buffer: memoryview, header: object) -> None:
        seq, size, crc = HEADER.unpack_from(buffer, 0)
        if size != len(buffer) or zlib.crc32(buffer[HEADER.size:]) != crc:
            bad.append(f"seq={seq} size={size} len={len(buffer)}")
        received.append(seq)

    with Aeron(dir, timeout=5) as aeron:
        s = aeron.add_subscription(channel, stream)
        print("ready", flush=True)
        assembler = FragmentAssembler(on_message)
        deadline = time.monotonic() + 30
        while len(received) < count and time.monotonic() < deadline:
            if s.poll(assembler, 100) == 0:
                time.sleep(0.0001)
    with open(out, "w") as f:
        json.dump({"received": received, "bad": bad}, f)


def hold(dir: str, channel: str, stream: int) -> None:
    with Aeron(dir, timeout=5) as aeron:
        p = aeron.add_publication(channel, stream)
        print(p.session_id, flush=True)
        deadline = time.monotonic() + 30
        while p.offer(b"alive") < 0 and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(60)  # until killed


if __name__ == "__main__":
    role, args = sys.argv[1], sys.argv[2:]
    if role == "pub":
        pub(args[0], args[1], int(args[2]), int(args[3]), args[4])
    elif role == "sub":
        sub(args[0], args[1], int(args[2]), int(args[3]), args[4])
    elif role == "hold":
        hold(args[0], args[1], int(args[2]))
    else:
        raise SystemExit(f"unknown role: {role}")
