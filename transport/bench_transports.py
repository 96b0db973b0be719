"""``tickline bench transports``: every common IPC transport side by side, one harness.

Each case is a ping-pong between two child processes pinned to two cores:
ping sends a message of the case's size, pong echoes it, ping measures the
round trip.  Every Python transport runs the *same* ping loop
(:func:`ping_loop`) over a small link object with ``send`` and
``recv_into``; after each round trip (outside the timed region) ping checks
that the echo is byte for byte the message it sent, whose first 8 bytes are
the sequence number.  The C reference (``tickline-cping``) and pyaeron run
their own loops, the same ones ``tickline bench ping`` uses.

Transports: tickline Aeron IPC (poll with a handler, ``poll_one``, and the
native ``receive_into``/``offer_retry`` pair),
tickline Aeron UDP over 127.0.0.1, the C reference over IPC, pyaeron over IPC
(with ``--pyaeron PYTHON``), a shared-memory SPSC ring, Unix domain sockets
(stream, datagram), TCP over 127.0.0.1 with TCP_NODELAY, a pair of pipes,
ZeroMQ PAIR sockets over ipc and tcp (pyzmq), and Redis pub/sub (when a
``redis-server`` binary and the ``redis`` package are installed: the bench
starts its own on a free port on 127.0.0.1 and stops it).  Aeron and the ring
busy-spin; sockets, pipes, ZeroMQ and Redis block in the kernel (polling
them from Python would cost more than it saves).

``--rate N`` sends at a fixed rate instead: send i is scheduled at
``start + i/N`` and its latency is measured from that intended time, so a
stall delays and is charged to every send behind it, as in Aeron's
LoadTestRig (no coordinated omission).  One message is in flight at a time.
The achieved rate is reported; when the machine can't keep up, the bench says
so.

The shared-memory ring has no PyPI library that is both kept up and
single-producer/single-consumer busy-spinning, so it is the simplest honest
one: two rings of fixed slots in one ``multiprocessing.shared_memory`` block,
positions as aligned 64-bit ``ctypes`` words.  It relies on x86-64's store
ordering (the interpreter writes the slot before it publishes the position),
so on other machines it is skipped.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from array import array
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter_ns
from typing import TYPE_CHECKING, Any, Callable, Protocol

from tickline import benchkit

if TYPE_CHECKING:
    from tickline._aeron import Publication, Subscription

#: Every transport, in the order of the table; the reference the ratios use.
TRANSPORTS = ["tickline-ipc", "tickline-ipc-pull", "tickline-ipc-recv", "tickline-udp", "aeron-c", "pyaeron", "shm-ring", "uds-stream",
              "uds-dgram", "tcp", "pipe", "zmq-ipc", "zmq-tcp", "redis"]
REFERENCE = "aeron-c"
DEFAULT_SIZES = "32,256,1024,4096"
MIN_SIZE, MAX_SIZE = 8, 65536
#: Requested rates the run must reach to count as sustained.
SUSTAINED = 0.95


class Link(Protocol):
    def send(self, msg: bytearray) -> None: ...
    def recv_into(self, buf: bytearray) -> int: ...


# ---------------------------------------------------------------- the one ping loop


@dataclass
class PingResult:
    samples: "array[int]"  # round-trip ns per measured message
    elapsed_ns: int  # from the first measured send to the last echo


def message(size: int) -> bytearray:
    """The message a case sends: a byte pattern that differs by size; its first 8 bytes carry the sequence number."""
    return bytearray((j * 31 + size) & 0xFF for j in range(size))


def ping_loop(link: Link, size: int, count: int, warmup: int, rate: float | None = None,
              clock: Callable[[], int] = perf_counter_ns) -> PingResult:
    """Send ``warmup + count`` messages one at a time and time each echo.

    Ping-pong (``rate`` None): a sample runs from just before the send to the
    echo.  Fixed rate: measured send ``i`` is due at ``start + i * 1e9 / rate``
    ns; ping waits (spinning) until it is due, and the sample runs from the
    due time, so time lost to a stall is charged to every send it delayed.
    Raises ``RuntimeError`` if an echo differs from what was sent.
    """
    msg, rx = message(size), bytearray(size)
    samples = array("q", bytes(8 * count))
    send, recv_into, pack = link.send, link.recv_into, struct.pack_into
    interval = 1e9 / rate if rate else 0.0
    start = 0
    for i in range(warmup + count):
        pack("<Q", msg, 0, i)
        k = i - warmup
        if k == 0:
            start = clock()
        if rate and k >= 0:
            t0 = start + int(k * interval)
            while clock() < t0:
                pass
        else:
            t0 = clock()
        send(msg)
        n = recv_into(rx)
        t1 = clock()
        if k >= 0:
            samples[k] = t1 - t0
        if n != size or rx != msg:
            raise RuntimeError(f"echo differs from the message sent: seq={i} size={size} got_bytes={n} fault=peer")
    return PingResult(samples, clock() - start if count else 0)


def pong_loop(link: Link, size: int, total: int) -> None:
    rx = bytearray(size)
    view = memoryview(rx)
    for _ in range(total):
        n = link.recv_into(rx)
        link.send(view[:n])  # type: ignore[arg-type]


# ---------------------------------------------------------------- links


def _recv_exact(readinto: Callable[[memoryview], int], buf: bytearray) -> int:
    view, got, size = memoryview(buf), 0, len(buf)
    while got < size:
        n = readinto(view[got:])
        if n <= 0:
            raise EOFError("peer closed the stream mid-message fault=peer")
        got += n
    return got


class StreamLink:
    """TCP or a Unix stream socket: fixed-size messages, read exactly."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.send = sock.sendall

    def recv_into(self, buf: bytearray) -> int:
        return _recv_exact(self.sock.recv_into, buf)


class DgramLink:
    def __init__(self, sock: socket.socket, peer: str | None) -> None:
        self.sock, self.peer = sock, peer

    def send(self, msg: bytearray) -> None:
        if self.peer is None:
            self.sock.send(msg)
        else:
            self.sock.sendto(msg, self.peer)

    def recv_into(self, buf: bytearray) -> int:
        n, addr = self.sock.recvfrom_into(buf)
        if self.peer is None or addr != self.peer:
            self.peer = addr
        return n


class PipeLink:
    def __init__(self, rfd: int, wfd: int) -> None:
        self.rfd, self.wfd = rfd, wfd

    def send(self, msg: bytearray) -> None:
        view = memoryview(msg)
        while view:
            view = view[os.write(self.wfd, view):]

    def recv_into(self, buf: bytearray) -> int:
        rfd = self.rfd
        return _recv_exact(lambda b: os.readv(rfd, [b]), buf)


class ShmRing:
    """One single-producer single-consumer ring in shared memory.

    Layout from ``base``: the consumer's position (8 bytes), padding to 64,
    the producer's position, padding to 128, then ``slots`` slots of 8 bytes
    of length plus ``slot_size`` bytes.  Positions only grow; the producer
    writes a slot, then publishes position+1; the consumer reads it, then
    publishes its own position+1 (x86-64 keeps these stores in order).
    """

    HEADER = 128

    def __init__(self, buf: memoryview, base: int, slots: int, slot_size: int) -> None:
        self.buf, self.slots, self.slot_size = buf, slots, slot_size
        self.head = ctypes.c_uint64.from_buffer(buf, base)
        self.tail = ctypes.c_uint64.from_buffer(buf, base + 64)
        self.data = base + self.HEADER
        self.stride = 8 + slot_size

    @staticmethod
    def bytes_needed(slots: int, slot_size: int) -> int:
        return ShmRing.HEADER + slots * (8 + slot_size)

    def send(self, msg: bytearray) -> None:
        n = len(msg)
        if n > self.slot_size:
            raise ValueError(f"message larger than a ring slot: size={n} slot_size={self.slot_size} fault=user")
        tail = self.tail.value
        while tail - self.head.value >= self.slots:
            pass
        off = self.data + (tail % self.slots) * self.stride
        struct.pack_into("<Q", self.buf, off, n)
        self.buf[off + 8: off + 8 + n] = msg
        self.tail.value = tail + 1

    def recv_into(self, buf: bytearray) -> int:
        head = self.head.value
        while self.tail.value == head:
            pass
        off = self.data + (head % self.slots) * self.stride
        (n,) = struct.unpack_from("<Q", self.buf, off)
        if n > len(buf):
            raise RuntimeError(f"ring slot length out of range: length={n} buffer={len(buf)} fault=peer")
        buf[:n] = self.buf[off + 8: off + 8 + n]
        self.head.value = head + 1
        return int(n)

    def release(self) -> None:
        del self.head, self.tail  # the ctypes views pin the shared memory's buffer


class RingLink:
    def __init__(self, out: ShmRing, inn: ShmRing) -> None:
        self.send = out.send
        self.recv_into = inn.recv_into


class ZmqLink:
    def __init__(self, sock: Any) -> None:
        self.sock = sock

    def send(self, msg: bytearray) -> None:
        self.sock.send(msg, copy=True)

    def recv_into(self, buf: bytearray) -> int:
        data = self.sock.recv(copy=True)
        n = len(data)
        buf[:n] = data
        return n


class RedisLink:
    """Publish on one channel, read the other's messages from a subscription."""

    def __init__(self, client: Any, pubsub: Any, out_channel: str) -> None:
        self.client, self.pubsub, self.out = client, pubsub, out_channel

    def send(self, msg: bytearray) -> None:
        self.client.publish(self.out, bytes(msg))

    def recv_into(self, buf: bytearray) -> int:
        while True:
            m = self.pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if m is not None and m["type"] == "message":
                data = m["data"]
                buf[: len(data)] = data
                return len(data)


#: Polls per ``receive_into`` call, and retries per ``offer_retry`` call, before the link's loop
#: gets control back (to turn an invoker-mode driver, or see a signal): tens of microseconds.
NATIVE_SPINS = 1000


def native_calls(pub: "Publication", sub: "Subscription",
                 turn: Callable[[], object]) -> tuple[Callable[[bytearray], int], Callable[[bytearray], None]]:
    """The link's recv_into and send over ``Subscription.receive_into`` and ``Publication.offer_retry``: each a
    closure over the bound native call (no attribute lookups per message), which polls or retries in C and
    comes back to Python only after NATIVE_SPINS tries without a message or without space."""

    def recv_into(buf: bytearray) -> int:
        n = receive_into(buf, NATIVE_SPINS)
        while n is None:
            turn()
            n = receive_into(buf, NATIVE_SPINS)
        return n

    def send(msg: bytearray) -> None:
        while offer_retry(msg, NATIVE_SPINS) < 0:
            turn()

    receive_into, offer_retry = sub.receive_into, pub.offer_retry
    return recv_into, send


class AeronLink:
    """tickline over Aeron: busy-spin offers, and polls with a handler, ``poll_one``, or the native
    ``receive_into`` (which polls and copies in C, paired with ``offer_retry``)."""

    def __init__(self, spec: dict[str, Any], role: str) -> None:
        from tickline.transport import FragmentAssembler
        from tickline.transport.bench import _Duty

        udp = spec["kind"] == "tickline-udp"
        self.media = _Duty(spec["dir"] + (f"-{role}" if udp else ""), udp)
        aeron, ping = self.media.aeron, role == "ping"
        out_ch, in_ch = (spec["ping_channel"], spec["pong_channel"]) if ping else (spec["pong_channel"], spec["ping_channel"])
        out_stream, in_stream = (spec["stream"], spec["stream"] + 1) if ping else (spec["stream"] + 1, spec["stream"])
        self.sub = aeron.add_subscription(in_ch, in_stream)
        self.pub = aeron.add_publication(out_ch, out_stream)
        self.turn = self.media.turn
        while not (self.pub.is_connected and self.sub.is_connected):
            self.turn()
        self.got = 0
        self.rx: bytearray | None = None
        # Messages above the MTU arrive in fragments: the handler case reassembles with Aeron's
        # fragment assembler; poll_one hands out fragments, so the pull case joins them up to the
        # message's known length.
        self.assembler = FragmentAssembler(self._on_fragment)
        if spec["kind"] == "tickline-ipc-pull":
            self.recv_into = self._recv_pull  # type: ignore[method-assign]
        elif spec["kind"] == "tickline-ipc-recv":
            self.recv_into, self.send = native_calls(self.pub, self.sub, self.turn)  # type: ignore[method-assign,assignment]

    def send(self, msg: bytearray) -> None:
        offer, turn = self.pub.offer, self.turn
        while offer(msg) < 0:
            turn()

    def _on_fragment(self, buffer: memoryview, header: object) -> None:
        n = len(buffer)
        self.rx[:n] = buffer  # type: ignore[index]
        self.got = n

    def recv_into(self, buf: bytearray) -> int:
        self.rx, self.got = buf, 0
        poll, handler, turn = self.sub.poll, self.assembler, self.turn
        while not self.got:
            if poll(handler, 1) == 0:
                turn()
        return self.got

    def _recv_pull(self, buf: bytearray) -> int:
        poll_one, turn, got, size = self.sub.poll_one, self.turn, 0, len(buf)
        while got < size:
            while (view := poll_one()) is None:
                turn()
            n = len(view)
            if got + n > size:
                raise RuntimeError(f"fragment beyond the message's length: length={got + n} expected={size} fault=peer")
            buf[got:got + n] = view
            got += n
        return got

    def close(self, linger: bool) -> None:
        self.media.close(linger_turns=100_000 if linger else 0)


# ---------------------------------------------------------------- workers (child processes)


def _connect_retry(make: Callable[[], socket.socket], addr: Any, deadline: float) -> socket.socket:
    while True:
        s = make()
        try:
            s.connect(addr)
            return s
        except OSError:
            s.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _attach_shm(name: str) -> Any:
    """Attach to the orchestrator's block without handing it to this process's resource tracker
    (which would unlink it when this worker exits; the orchestrator owns and unlinks it)."""
    from multiprocessing import resource_tracker, shared_memory

    try:
        return shared_memory.SharedMemory(name=name, track=False)  # type: ignore[call-arg]
    except TypeError:  # Python < 3.13 has no track=
        shm = shared_memory.SharedMemory(name=name)
        resource_tracker.unregister(shm._name, "shared_memory")  # type: ignore[attr-defined]
        return shm


_said_ready = False


def say_ready() -> None:
    """Pong tells the orchestrator (once, on stdout) that ping may start."""
    global _said_ready
    if not _said_ready:
        _said_ready = True
        print("ready", flush=True)


def open_link(spec: dict[str, Any], role: str) -> tuple[Link, Callable[[], None]]:
    """This side's link for ``spec``, connected.  Pong calls :func:`say_ready` as soon as ping may start
    (before it waits for ping where the connection needs both).  Returns (link, close)."""
    kind, ping = spec["kind"], role == "ping"
    deadline = time.monotonic() + 30
    if kind in ("tcp", "uds-stream"):
        family = socket.AF_INET if kind == "tcp" else socket.AF_UNIX
        addr = ("127.0.0.1", spec["port"]) if kind == "tcp" else spec["path"]
        if ping:
            s = _connect_retry(lambda: socket.socket(family, socket.SOCK_STREAM), addr, deadline)
        else:
            listener = socket.socket(family, socket.SOCK_STREAM)
            if kind == "tcp":
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(addr)
            listener.listen(1)
            say_ready()
            s, _ = listener.accept()
            listener.close()
        if kind == "tcp":
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return StreamLink(s), s.close
    if kind == "uds-dgram":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(spec["path"] + ("-ping" if ping else "-pong"))
        return DgramLink(s, spec["path"] + "-pong" if ping else None), s.close
    if kind == "pipe":
        fds = spec["fds"]  # [ping->pong read, ping->pong write, pong->ping read, pong->ping write]
        link = PipeLink(fds[2], fds[1]) if ping else PipeLink(fds[0], fds[3])
        return link, lambda: None
    if kind == "shm-ring":
        shm = _attach_shm(spec["shm"])
        slots, slot = spec["slots"], spec["slot_size"]
        a = ShmRing(shm.buf, 0, slots, slot)
        b = ShmRing(shm.buf, ShmRing.bytes_needed(slots, slot), slots, slot)

        def close() -> None:
            a.release()
            b.release()
            shm.close()

        return (RingLink(a, b) if ping else RingLink(b, a)), close
    if kind in ("zmq-ipc", "zmq-tcp"):
        import zmq

        ctx = zmq.Context(1)
        zs = ctx.socket(zmq.PAIR)
        zs.setsockopt(zmq.LINGER, 1000)
        if ping:
            zs.connect(spec["endpoint"])
        else:
            zs.bind(spec["endpoint"])

        def zclose() -> None:
            zs.close()
            ctx.term()

        return ZmqLink(zs), zclose
    if kind == "redis":
        import redis

        client = redis.Redis(host="127.0.0.1", port=spec["port"])
        ps = client.pubsub()
        ps.subscribe("tickline-pong" if ping else "tickline-ping")
        while (m := ps.get_message(timeout=1.0)) is None or m["type"] != "subscribe":
            if time.monotonic() > deadline:
                raise TimeoutError("redis subscription not confirmed")
        rlink = RedisLink(client, ps, "tickline-ping" if ping else "tickline-pong")
        if ping:  # pong subscribed before it said ready; wait until the server counts it
            while client.pubsub_numsub("tickline-ping")[0][1] < 1:
                time.sleep(0.01)

        def rclose() -> None:
            ps.close()
            client.close()

        return rlink, rclose
    if kind.startswith("tickline-"):
        if not ping:
            say_ready()  # ping's publication waits for this side's subscription, so connecting needs both
        aeron = AeronLink(spec, role)
        return aeron, lambda: aeron.close(linger=not ping)
    raise ValueError(f"unknown transport: transport={kind}")


def worker_main(argv: list[str]) -> int:
    role, spec = argv[0], json.loads(argv[1])
    if spec.get("cpu") is not None:
        os.sched_setaffinity(0, {spec["cpu"]})
    link, close = open_link(spec, role)
    try:
        if role == "pong":
            say_ready()
            pong_loop(link, spec["size"], spec["warmup"] + spec["count"])
        else:
            r = ping_loop(link, spec["size"], spec["count"], spec["warmup"], spec.get("rate"))
            Path(spec["out"]).write_bytes(r.samples.tobytes())
            print(json.dumps({"elapsed_ns": r.elapsed_ns}), flush=True)
    finally:
        close()
    return 0


# ---------------------------------------------------------------- orchestration


class CaseSkipped(Exception):
    """This case can't run here; the message says why."""


def _python_cmd(role: str, spec: dict[str, Any]) -> list[str]:
    return [sys.executable, "-m", "tickline.transport.bench_transports", role, json.dumps(spec)]


def _kill(p: "subprocess.Popen[Any]") -> None:
    if p.poll() is None:
        p.kill()
        p.wait()


def _stderr_tail(p: "subprocess.Popen[Any]") -> str:
    err = p.stderr.read() if p.stderr else ""
    return " ".join((err or "").strip().splitlines()[-1:])[-300:]


def run_python_pair(spec: dict[str, Any], cpus: tuple[int | None, int | None], timeout: float,
                    pass_fds: tuple[int, ...] = ()) -> tuple["array[int]", int]:
    """Start pong, wait until it is ready, run ping; returns (samples, elapsed_ns)."""
    out = tempfile.NamedTemporaryFile(prefix="tickline-tx-", suffix=".bin", delete=False)
    out.close()
    try:
        pong = subprocess.Popen(_python_cmd("pong", {**spec, "cpu": cpus[1]}), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, pass_fds=pass_fds)
        try:
            assert pong.stdout is not None
            ready, _, _ = select.select([pong.stdout], [], [], timeout)
            line = pong.stdout.readline().strip() if ready else ""
            if line != "ready":
                _kill(pong)
                raise RuntimeError(f"pong did not start: transport={spec['kind']} error={_stderr_tail(pong)}")
            ping = subprocess.Popen(_python_cmd("ping", {**spec, "cpu": cpus[0], "out": out.name}),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, pass_fds=pass_fds)
            try:
                stdout, stderr = ping.communicate(timeout=timeout)
            finally:
                _kill(ping)
            if ping.returncode != 0:
                tail = " ".join(stderr.strip().splitlines()[-1:])[-300:]
                raise RuntimeError(f"ping failed: transport={spec['kind']} returncode={ping.returncode} error={tail}")
            pong.wait(timeout)
            if pong.returncode != 0:
                raise RuntimeError(f"pong failed: transport={spec['kind']} returncode={pong.returncode} "
                                   f"error={_stderr_tail(pong)}")
        finally:
            _kill(pong)
        samples = array("q")
        samples.frombytes(Path(out.name).read_bytes())
        elapsed = int(json.loads(stdout.strip().splitlines()[-1])["elapsed_ns"])
    finally:
        os.unlink(out.name)
    if len(samples) != spec["count"]:
        raise RuntimeError(f"ping wrote a short sample file: expected={spec['count']} got={len(samples)}")
    return samples, elapsed


class Redis:
    """A redis-server of our own on a free port on 127.0.0.1, without persistence."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise CaseSkipped("no redis-server on PATH (Debian: apt-get install redis-server)")
        try:
            import redis  # noqa: F401
        except ImportError:
            raise CaseSkipped("the redis package is not installed (pip install 'tickline[bench]')") from None
        from tickline.transport import free_ports

        self.port = free_ports(1, kind="tcp")[0]
        self.dir = tempfile.mkdtemp(prefix="tickline-redis-")
        self.proc = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", self.dir], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise CaseSkipped(f"redis-server did not start: port={self.port}")
            time.sleep(0.05)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Options:
    count: int
    warmup: int
    rate: float | None
    timeout: float
    pyaeron: str | None = None


class Harness:
    """Runs one (transport, size) case at a time; owns the media driver, temp dir and Redis server it needs."""

    def __init__(self, opts: Options, cpus: tuple[int | None, int | None]) -> None:
        self.opts, self.cpus = opts, cpus
        self.tmp = tempfile.mkdtemp(prefix="tickline-tx-")
        self.driver: Any = None
        self.redis: Redis | None = None
        self.redis_skip: str | None = None
        self.stream = 2000

    def close(self) -> None:
        if self.redis is not None:
            self.redis.close()
        if self.driver is not None:
            self.driver.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _driver_dir(self) -> str:
        if self.driver is None:
            from tickline.transport import MediaDriver

            self.driver = MediaDriver.embedded(options={"aeron.ipc.term.buffer.length": "16m",
                                                        "aeron.term.buffer.length": "16m"})
        return str(self.driver.dir)

    def run(self, kind: str, size: int) -> tuple["array[int]", int]:
        o = self.opts
        spec: dict[str, Any] = {"kind": kind, "size": size, "count": o.count, "warmup": o.warmup, "rate": o.rate}
        self.stream += 10
        if kind in ("aeron-c", "pyaeron"):
            return self._run_native(kind, size)
        if kind in ("tickline-ipc", "tickline-ipc-pull", "tickline-ipc-recv"):
            spec.update(dir=self._driver_dir(), ping_channel="aeron:ipc", pong_channel="aeron:ipc", stream=self.stream)
        elif kind == "tickline-udp":
            from tickline.transport import free_ports

            p1, p2 = free_ports(2)
            spec.update(dir=os.path.join(self.tmp, f"aeron-{self.stream}"), stream=self.stream,
                        ping_channel=f"aeron:udp?endpoint=127.0.0.1:{p1}", pong_channel=f"aeron:udp?endpoint=127.0.0.1:{p2}")
        elif kind in ("tcp", "zmq-tcp"):
            from tickline.transport import free_ports

            port = free_ports(1, kind="tcp")[0]
            spec.update(port=port, endpoint=f"tcp://127.0.0.1:{port}")
        elif kind in ("uds-stream", "uds-dgram", "zmq-ipc"):
            path = os.path.join(self.tmp, f"{kind}-{self.stream}.sock")
            spec.update(path=path, endpoint=f"ipc://{path}")
        elif kind == "redis":
            if self.redis is None:
                if self.redis_skip is not None:
                    raise CaseSkipped(self.redis_skip)
                try:
                    self.redis = Redis()
                except CaseSkipped as e:
                    self.redis_skip = str(e)
                    raise
            spec.update(port=self.redis.port)
        if kind.startswith("zmq-"):
            try:
                import zmq  # noqa: F401
            except ImportError:
                raise CaseSkipped("pyzmq is not installed (pip install 'tickline[bench]')") from None
        if kind == "pipe":
            a, b = os.pipe()
            c, d = os.pipe()
            try:
                return run_python_pair({**spec, "fds": [a, b, c, d]}, self.cpus, o.timeout, pass_fds=(a, b, c, d))
            finally:
                for fd in (a, b, c, d):
                    os.close(fd)
        if kind == "shm-ring":
            if platform.machine() not in ("x86_64", "AMD64"):
                raise CaseSkipped(f"the ring relies on x86-64 store ordering: machine={platform.machine()}")
            from multiprocessing import shared_memory

            slots, slot = 64, max(size, 8)
            shm = shared_memory.SharedMemory(create=True, size=2 * ShmRing.bytes_needed(slots, slot))
            try:
                return run_python_pair({**spec, "shm": shm.name, "slots": slots, "slot_size": slot}, self.cpus, o.timeout)
            finally:
                shm.close()
                shm.unlink()
        return run_python_pair(spec, self.cpus, o.timeout)

    def _run_native(self, kind: str, size: int) -> tuple["array[int]", int]:
        from tickline.transport import bench

        o = self.opts
        if o.rate:
            raise CaseSkipped(f"fixed-rate mode is not implemented by this peer's own loop: transport={kind}")
        if kind == "pyaeron":
            if not o.pyaeron:
                raise CaseSkipped("needs --pyaeron PYTHON (an interpreter with pyaeron installed)")
            bench.PYAERON_PYTHON = o.pyaeron
        impl = "c" if kind == "aeron-c" else "pyaeron"
        lat = bench.measure_latency(impl, self._driver_dir(), ("aeron:ipc", "aeron:ipc"), "ipc", size, o.count, o.warmup,
                                    self.cpus, timeout=o.timeout)
        # These loops report only their samples: the measured time is their sum (ping-pong, one in flight).
        return lat.samples, sum(lat.samples)


def parse_sizes(text: str) -> list[int]:
    sizes = []
    for item in text.split(","):
        item = item.strip()
        mult = 1024 if item[-1:].upper() == "K" else 1
        try:
            n = int(item[:-1] if mult > 1 else item) * mult
        except ValueError:
            raise benchkit.BenchInputError(f"unknown message size: size={item!r} expected=bytes like 32,256,1K,4K fault=user") from None
        if not MIN_SIZE <= n <= MAX_SIZE:
            raise benchkit.BenchInputError(f"message size out of range: size={n} expected={MIN_SIZE}..{MAX_SIZE} fault=user")
        sizes.append(n)
    return sizes


def parse_transports(text: str | None, pyaeron: str | None) -> list[str]:
    if not text:
        return [t for t in TRANSPORTS if t != "pyaeron" or pyaeron]
    chosen = [t.strip() for t in text.split(",") if t.strip()]
    for t in chosen:
        if t not in TRANSPORTS:
            raise benchkit.BenchInputError(f"unknown transport: transport={t} expected={','.join(TRANSPORTS)} fault=user")
    return chosen


def cmd_bench_transports(args: argparse.Namespace) -> int:
    sizes = parse_sizes(args.sizes)
    kinds = parse_transports(args.transports, args.pyaeron)
    if args.count < 1 or args.warmup < 0 or args.runs < 1:
        raise benchkit.BenchInputError(f"counts out of range: count={args.count} warmup={args.warmup} runs={args.runs} "
                                       "expected=count>=1 warmup>=0 runs>=1 fault=user")
    if args.rate is not None and not args.rate > 0:
        raise benchkit.BenchInputError(f"rate out of range: rate={args.rate} expected=messages per second > 0 fault=user")
    if args.pyaeron:
        from tickline.transport.bench import check_pyaeron

        exe = shutil.which(args.pyaeron)
        if exe is None:
            raise benchkit.BenchInputError(f"--pyaeron is not an executable interpreter: python={args.pyaeron} fault=user")

        print(f"peer: pyaeron {check_pyaeron(args.pyaeron)} under {args.pyaeron}", flush=True)
    from tickline.transport.bench import choose_cpus, core_rtt

    cpus = choose_cpus()
    report = benchkit.Report("transports", reference=REFERENCE)
    report.extra.update(mode=f"fixed rate {args.rate:g}/s" if args.rate else "ping-pong", cpus=list(cpus),
                        core_rtt_ns_before=core_rtt(cpus), warmup=args.warmup)
    print(f"tickline bench transports: {report.extra['mode']}, cpus {cpus}, "
          f"core-to-core cache-line RTT {report.extra['core_rtt_ns_before']} ns", flush=True)
    harness = Harness(Options(args.count, args.warmup, args.rate, args.timeout, args.pyaeron), cpus)
    failed = 0
    try:
        for run in range(args.runs):
            for size in sizes:
                for kind in kinds:
                    case = report.case(f"{kind}/{size}", label=kind, group=f"{size} B")
                    if case.skipped:
                        continue
                    try:
                        samples, elapsed = harness.run(kind, size)
                    except CaseSkipped as e:
                        case.skipped = str(e)
                        print(f"  {case.name:<24} skipped: {e}", flush=True)
                        continue
                    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
                        case.skipped = f"failed: {e}"
                        failed += 1
                        print(f"  {case.name:<24} failed: {e}", file=sys.stderr, flush=True)
                        continue
                    h = benchkit.histogram_of(samples)
                    case.histograms.append(h)
                    rate = round(len(samples) / (elapsed / 1e9), 1) if elapsed > 0 else 0.0
                    case.run_throughputs.append(rate)
                    case.throughput = round(sum(case.run_throughputs) / len(case.run_throughputs), 1)
                    s = benchkit.summarize(h)
                    note = ""
                    if args.rate and rate < SUSTAINED * args.rate:
                        case.extra["rate_not_sustained"] = True
                        note = f"  rate not sustained: requested={args.rate:g}/s achieved={rate:g}/s"
                    print(f"  run {run + 1} {case.name:<24} p50 {s['p50']:9.3f}  p99 {s['p99']:9.3f}  "
                          f"max {s['max']:10.3f} us  {rate:10.0f}/s{note}", flush=True)
    finally:
        harness.close()
    report.extra["core_rtt_ns_after"] = core_rtt(cpus)
    print(f"\ncore-to-core cache-line RTT {report.extra['core_rtt_ns_before']} ns before, "
          f"{report.extra['core_rtt_ns_after']} ns after; {report.extra['mode']}; ratios: p50 over aeron-c's p50, same size")
    benchkit.emit(report, args)
    unsustained = [c.name for c in report.cases if c.extra.get("rate_not_sustained")]
    if unsustained:
        print(f"the machine could not sustain --rate {args.rate:g}/s for: {', '.join(unsustained)} "
              "(achieved rates in the 'per s' column; latencies count from the intended send times)")
    return 1 if failed else 0


def register_bench(bench_subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = bench_subparsers.add_parser("transports", help="every common IPC transport side by side: Aeron, shm ring, "
                                                       "sockets, pipe, ZeroMQ, Redis")
    p.add_argument("--transports", metavar="LIST", help=f"comma separated, default all: {','.join(TRANSPORTS)}")
    p.add_argument("--sizes", default=DEFAULT_SIZES, help=f"message sizes in bytes, 1K = 1024 (default {DEFAULT_SIZES})")
    p.add_argument("--count", type=int, default=100_000, help="measured round trips per case")
    p.add_argument("--warmup", type=int, default=10_000, help="round trips before measuring")
    p.add_argument("--runs", type=int, default=1, help="repeat every case (gives bench compare its noise)")
    p.add_argument("--rate", type=float, metavar="N", help="send N messages/s at fixed times instead of ping-pong")
    p.add_argument("--pyaeron", metavar="PYTHON", help="also measure pyaeron, installed in this interpreter")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds a case may take")
    benchkit.add_output_args(p)
    p.set_defaults(func=lambda a: benchkit.run_guarded("tickline bench transports", cmd_bench_transports, a))


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
