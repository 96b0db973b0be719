"""`tickline bench ping` and `tickline demo`: IPC/UDP ping-pong between two processes.

The orchestrating process owns the media driver; ping and pong run in two
child processes, each pinned to its own core and busy-spinning.  Every figure
is measured twice in the same run: with tickline from Python, and with the C
reference (``tickline-cping``, built from cpp_ext/ against the same Aeron
client and driver), so the binding's overhead is a ratio, not a guess.

Throughput: one publisher process offers 32-byte messages as fast as it can
to a C subscriber (the same one for every publisher, so only the publisher
differs): Python single offers, Python batched offers (``offer_batch``), and
C single offers.

The host may move vCPUs during a run; the cache-line round trip between the
two cores is probed before and after and printed beside the results.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import itertools

from tickline import benchkit

# Each case gets stream ids of its own: a concurrent publication's log lingers
# in the driver after its process exits and a new publication on the same
# channel and stream would share it, inheriting its "connected" flag, so a
# ping could fire before the new pong subscribed.
_streams = itertools.count(1000, 10)


# ---------------------------------------------------------------- workers (child processes)


def _pin(cpu: int | None) -> None:
    if cpu is not None and cpu >= 0:
        os.sched_setaffinity(0, {cpu})


class _Duty:
    """The worker's media: for UDP an invoker-mode driver and client of its own,
    turned from the same busy-spin loop (see the module doc); for IPC the
    orchestrator's driver, and nothing to turn."""

    def __init__(self, dir: str, udp: bool) -> None:
        from tickline.transport import Aeron, MediaDriver

        self.driver = MediaDriver.embedded(dir, invoker=True) if udp else None
        self.aeron = Aeron(dir, pre_touch=True, invoker=udp, wait_hook=self.driver.do_work if self.driver else None)
        self.turn: Callable[[], object] = self.aeron.duty_cycle(self.driver) if self.driver else self._nothing

    def _nothing(self) -> None:
        pass

    def close(self, linger_turns: int = 0) -> None:
        for _ in range(linger_turns if self.driver else 0):
            self.turn()
        self.aeron.close()
        if self.driver is not None:
            self.driver.close()


def _worker_ping(dir: str, ping_channel: str, pong_channel: str, ping_stream: int, pong_stream: int, size: int, count: int, warmup: int, out: str) -> None:
    from time import perf_counter_ns

    media = _Duty(dir, ping_channel.startswith("aeron:udp"))
    try:
        pub = media.aeron.add_publication(ping_channel, ping_stream)
        sub = media.aeron.add_subscription(pong_channel, pong_stream)
        turn = media.turn
        while not (pub.is_connected and sub.is_connected):
            turn()
        msg = bytearray(size)
        samples = array("q", bytes(8 * count))
        offer, poll = pub.offer, sub.poll
        got = [0]

        def on_pong(buffer: memoryview, header: object) -> None:
            got[0] += 1

        if PULL:
            poll_one = sub.poll_one
            for i in range(warmup + count):
                t0 = perf_counter_ns()
                while offer(msg) < 0:
                    turn()
                while poll_one() is None:
                    turn()
                if i >= warmup:
                    samples[i - warmup] = perf_counter_ns() - t0
        else:
            for i in range(warmup + count):
                t0 = perf_counter_ns()
                while offer(msg) < 0:
                    turn()
                want = got[0] + 1
                while got[0] < want:
                    if poll(on_pong, 1) == 0:
                        turn()
                if i >= warmup:
                    samples[i - warmup] = perf_counter_ns() - t0
        Path(out).write_bytes(samples.tobytes())
    finally:
        media.close()


def _worker_pong(dir: str, ping_channel: str, pong_channel: str, ping_stream: int, pong_stream: int, total: int) -> None:
    media = _Duty(dir, ping_channel.startswith("aeron:udp"))
    try:
        sub = media.aeron.add_subscription(ping_channel, ping_stream)
        pub = media.aeron.add_publication(pong_channel, pong_stream)
        offer, turn = pub.offer, media.turn
        got = [0]

        def on_ping(buffer: memoryview, header: object) -> None:
            while offer(buffer) < 0:
                turn()
            got[0] += 1

        if PULL:
            poll_one = sub.poll_one
            for _ in range(total):
                while (view := poll_one()) is None:
                    turn()
                while offer(view) < 0:
                    turn()
        else:
            poll = sub.poll
            while got[0] < total:
                if poll(on_ping, 10) == 0:
                    turn()
    finally:
        media.close(linger_turns=100_000)  # let the last pong leave before the driver goes


def _worker_tput_pub(dir: str, channel: str, stream: int, size: int, count: int, batch: int) -> None:
    from tickline.transport import Aeron

    with Aeron(dir, pre_touch=True) as aeron:
        pub = aeron.add_publication(channel, stream)
        while not pub.is_connected:
            pass
        sent = 0
        if batch <= 1:
            offer, msg = pub.offer, bytes(size)
            while sent < count:
                if offer(msg) > 0:
                    sent += 1
        else:
            offer_batch = pub.offer_batch
            messages = [bytes([i & 0xFF]) * size for i in range(batch)]
            while sent < count:
                n = min(batch, count - sent)
                sent += offer_batch(messages if n == batch else messages[:n])


#: Workers poll pull-style (``poll_one``) instead of with a handler.
PULL = False


def worker_main(argv: list[str]) -> int:
    global PULL
    role, cpu = argv[0], int(argv[1])
    if role.endswith("-pull"):
        PULL, role = True, role[: -len("-pull")]
    _pin(cpu)
    if role == "ping":
        _worker_ping(argv[2], argv[3], argv[4], int(argv[5]), int(argv[6]), int(argv[7]), int(argv[8]), int(argv[9]), argv[10])
    elif role == "pong":
        _worker_pong(argv[2], argv[3], argv[4], int(argv[5]), int(argv[6]), int(argv[7]))
    elif role == "tput-pub":
        _worker_tput_pub(argv[2], argv[3], int(argv[4]), int(argv[5]), int(argv[6]), int(argv[7]))
    else:
        raise SystemExit(f"unknown worker role: role={role}")
    return 0


# ---------------------------------------------------------------- orchestration


@dataclass
class Latency:
    impl: str
    transport: str
    size: int
    count: int
    p50_us: float
    p90_us: float
    p99_us: float
    p999_us: float
    max_us: float
    samples: Any = field(default=None, repr=False, compare=False)  # round-trip ns, for the common output (benchkit)


@dataclass
class Throughput:
    impl: str
    size: int
    messages: int
    msgs_per_s: float


@dataclass
class Report:
    machine: dict[str, Any]
    core_rtt_ns_before: int
    core_rtt_ns_after: int
    latency: list[Latency] = field(default_factory=list)
    throughput: list[Throughput] = field(default_factory=list)


def cping_path() -> str:
    from tickline import _aeron

    path = Path(_aeron.__file__).parent / "bin" / "tickline-cping"
    if not path.exists():
        raise FileNotFoundError(f"C reference binary missing: path={path} (reinstall tickline)")
    return str(path)


def _python_worker(*args: object) -> list[str]:
    return [sys.executable, "-m", "tickline.transport.bench", *map(str, args)]


#: The interpreter that has pyaeron installed (set from --pyaeron).
PYAERON_PYTHON: str | None = None


def _pyaeron_worker(*args: object) -> list[str]:
    if PYAERON_PYTHON is None:
        raise RuntimeError("pyaeron peer requested without an interpreter: use --pyaeron PYTHON")
    return [PYAERON_PYTHON, str(Path(__file__).with_name("bench_pyaeron.py")), *map(str, args)]


def check_pyaeron(python: str) -> str:
    """The pyaeron version importable by ``python``; a clear error if it isn't."""
    r = subprocess.run([python, "-c", "import importlib.metadata as m, pyaeron; print(m.version('pyaeron'))"],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise SystemExit(f"pyaeron is not importable by this interpreter: python={python} error={r.stderr.strip()[-300:]}")
    return r.stdout.strip()


def _preexec(cpu: int | None) -> "Callable[[], None] | None":
    return (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None and cpu >= 0 else None


@contextlib.contextmanager
def _child(cmd: list[str], cpu: int | None, **kwargs: Any) -> "Iterator[subprocess.Popen[Any]]":
    """A child process pinned to ``cpu``, killed and reaped on the way out if still running."""
    p = subprocess.Popen(cmd, preexec_fn=_preexec(cpu), **kwargs)
    try:
        yield p
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def _run_pair(ping_cmd: list[str], pong_cmd: list[str], ping_cpu: int | None, pong_cpu: int | None, timeout: float) -> None:
    with _child(pong_cmd, pong_cpu) as pong:
        with _child(ping_cmd, ping_cpu) as ping:
            rc = ping.wait(timeout)
        if rc != 0:
            raise RuntimeError(f"ping process failed: returncode={rc} cmd={' '.join(ping_cmd)}")
        pong.wait(timeout)
        if pong.returncode != 0:
            raise RuntimeError(f"pong process failed: returncode={pong.returncode} cmd={' '.join(pong_cmd)}")


def _histogram(samples: "array[int]") -> Any:
    from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

    h = HdrHistogram(1, 60_000_000_000, 3)
    for s in samples:
        h.record_value(max(1, s))
    return h


def measure_latency(impl: str, dir: str, channels: tuple[str, str], transport: str, size: int, count: int, warmup: int,
                    cpus: tuple[int | None, int | None], timeout: float = 300.0) -> Latency:
    """One ping-pong case.  For IPC both processes use the driver in ``dir``;
    for UDP each embeds its own invoker-mode driver in ``dir``-ping/-pong."""
    with tempfile.NamedTemporaryFile(prefix="tickline-ping-", suffix=".bin", delete=False) as f:
        out = f.name
    udp = transport == "udp"
    ping_dir, pong_dir = (dir + "-ping", dir + "-pong") if udp else (dir, dir)
    ping_ch, pong_ch = channels
    ping_stream = next(_streams)
    pong_stream = ping_stream + 1
    try:
        total = warmup + count
        if impl in ("python", "python-pull"):
            suffix = "-pull" if impl == "python-pull" else ""
            ping_cmd = _python_worker("ping" + suffix, -1, ping_dir, ping_ch, pong_ch, ping_stream, pong_stream, size, count, warmup, out)
            pong_cmd = _python_worker("pong" + suffix, -1, pong_dir, ping_ch, pong_ch, ping_stream, pong_stream, total)
        elif impl == "pyaeron":
            ping_cmd = _pyaeron_worker("ping", -1, ping_dir, ping_ch, pong_ch, ping_stream, pong_stream, size, count, warmup, out)
            pong_cmd = _pyaeron_worker("pong", -1, pong_dir, ping_ch, pong_ch, ping_stream, pong_stream, total)
        else:
            c = cping_path()
            ping_cmd = [c, "ping", ping_dir, ping_ch, pong_ch, str(ping_stream), str(pong_stream), str(size), str(count),
                        str(warmup), out]
            pong_cmd = [c, "pong", pong_dir, ping_ch, pong_ch, str(ping_stream), str(pong_stream), str(total)]
        _run_pair(ping_cmd, pong_cmd, cpus[0], cpus[1], timeout)
        samples = array("q")
        samples.frombytes(Path(out).read_bytes())
    finally:
        os.unlink(out)
        if udp:
            for d in (ping_dir, pong_dir):
                shutil.rmtree(d, ignore_errors=True)
    if len(samples) != count:
        raise RuntimeError(f"ping wrote a short sample file: expected={count} got={len(samples)}")
    h = _histogram(samples)
    def us(ns: int) -> float:
        return round(ns / 1000.0, 3)

    return Latency(impl, transport, size, count, us(h.get_value_at_percentile(50)), us(h.get_value_at_percentile(90)),
                   us(h.get_value_at_percentile(99)), us(h.get_value_at_percentile(99.9)), us(h.get_max_value()), samples)


def measure_throughput(impl: str, dir: str, channel: str, size: int, count: int, batch: int,
                       cpus: tuple[int | None, int | None], timeout: float = 300.0) -> Throughput:
    c = cping_path()
    stream = next(_streams)
    with _child([c, "tput-sub", dir, channel, str(stream), str(count)], cpus[1], stdout=subprocess.PIPE, text=True) as sub:
        assert sub.stdout is not None
        if sub.stdout.readline().strip() != "ready":
            raise RuntimeError("throughput subscriber did not start")
        if impl == "c":
            pub_cmd = [c, "tput-pub", dir, channel, str(stream), str(size), str(count)]
        elif impl == "pyaeron":
            pub_cmd = _pyaeron_worker("tput-pub", -1, dir, channel, stream, size, count)
        else:
            pub_cmd = _python_worker("tput-pub", -1, dir, channel, stream, size, count, batch)
        with _child(pub_cmd, cpus[0]) as pub:
            rc = pub.wait(timeout)
        if rc != 0:
            raise RuntimeError(f"throughput publisher failed: impl={impl} returncode={rc}")
        line = sub.stdout.readline().strip()
        sub.wait(timeout)
    fields = dict(kv.split("=") for kv in line.split())
    elapsed = int(fields["elapsed_ns"])
    return Throughput(impl, size, count, round(int(fields["received"]) / (elapsed / 1e9)) if elapsed > 0 else 0.0)


def machine_info() -> dict[str, Any]:
    return {**benchkit.machine_info(), "python": platform.python_version()}


def core_rtt(cpus: tuple[int | None, int | None]) -> int:
    from tickline import _aeron

    if cpus[0] is None or cpus[1] is None:
        return -1
    return int(_aeron.core_to_core_rtt_ns(cpus[0], cpus[1], 200_000))


def choose_cpus() -> tuple[int | None, int | None]:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 2:
        return cpus[0], cpus[1]
    return None, None


def run_bench(sizes: list[int], count: int, warmup: int, udp: bool, impls: list[str], tput_count: int,
              batch: int, port: int = 40456) -> Report:
    from tickline.transport import MediaDriver

    cpus = choose_cpus()
    report = Report(machine_info(), core_rtt(cpus), -1)
    # The driver lives in this (idle) process with one shared thread; for IPC
    # it is off the data path.  Log buffers are pre-touched by the clients.
    options = {"aeron.ipc.term.buffer.length": "16m", "aeron.term.buffer.length": "16m"}
    with MediaDriver.embedded(options=options) as driver:
        transports = [("ipc", ("aeron:ipc", "aeron:ipc"))]
        if udp:
            transports.append(("udp", (f"aeron:udp?endpoint=127.0.0.1:{port}", f"aeron:udp?endpoint=127.0.0.1:{port + 1}")))
        for transport, channel in transports:
            for size in sizes:
                for impl in impls:
                    if impl == "pyaeron" and transport != "ipc":
                        continue  # its workers use the shared driver: IPC only
                    report.latency.append(measure_latency(impl, driver.dir, channel, transport, size, count, warmup, cpus))
                    _print_latency(report.latency[-1])
        if tput_count > 0:
            runs = [("c", 1)] if "c" in impls else []
            if "pyaeron" in impls:
                runs += [("pyaeron", 1)]
            if "python" in impls:
                runs += [("python", 1), ("python-batch", batch)]  # the pull case differs only on the receive side
            for impl, b in runs:
                kind = "python" if impl.startswith("python") else impl
                t = measure_throughput(kind, driver.dir, "aeron:ipc", 32, tput_count, b, cpus)
                t.impl = impl
                report.throughput.append(t)
                print(f"  throughput {impl:<13} 32 B: {t.msgs_per_s / 1e6:7.2f} M msgs/s", flush=True)
    report.core_rtt_ns_after = core_rtt(cpus)
    return report


def _print_latency(r: Latency) -> None:
    print(f"  {r.transport} {r.impl:<12}{r.size:4d} B: p50 {r.p50_us:8.3f}  p90 {r.p90_us:8.3f}  p99 {r.p99_us:8.3f}  "
          f"p99.9 {r.p999_us:8.3f}  max {r.max_us:10.3f} us", flush=True)


def format_report(report: Report) -> str:
    m = report.machine
    lines = [
        f"machine: {m['cpu']} ({m['cpus']} cpus), Python {m['python']}, kernel {m['kernel']}",
        f"core-to-core cache-line RTT: {report.core_rtt_ns_before} ns before, {report.core_rtt_ns_after} ns after",
        "",
        "RTT (us)                  p50       p90       p99     p99.9        max   vs C p50",
    ]
    c_p50 = {(r.transport, r.size): r.p50_us for r in report.latency if r.impl == "c"}
    peer_p50 = {(r.transport, r.size): r.p50_us for r in report.latency if r.impl == "pyaeron"}
    for r in report.latency:
        ref = c_p50.get((r.transport, r.size))
        ratio = f"{r.p50_us / ref:6.2f}x" if ref and r.impl != "c" else ""
        peer = peer_p50.get((r.transport, r.size))
        if peer and r.impl.startswith("python"):
            ratio += f"   ({r.p50_us / peer:.2f}x pyaeron)"
        lines.append(f"{r.transport} {r.impl:<12}{r.size:4d} B {r.p50_us:9.3f} {r.p90_us:9.3f} {r.p99_us:9.3f} "
                     f"{r.p999_us:9.3f} {r.max_us:10.3f}   {ratio}")
    if report.throughput:
        c_rate = next((t.msgs_per_s for t in report.throughput if t.impl == "c"), None)
        lines += ["", "throughput, ipc, 32 B      M msgs/s   vs C"]
        for t in report.throughput:
            ratio = f"{t.msgs_per_s / c_rate:5.2f}x" if c_rate and t.impl != "c" else ""
            lines.append(f"{t.impl:<24} {t.msgs_per_s / 1e6:9.2f}   {ratio}")
    return "\n".join(lines)


def cmd_bench_ping(args: argparse.Namespace) -> int:  # noqa: C901
    sizes = [int(s) for s in args.sizes.split(",")]
    for s in sizes:
        if s < 8 or s > 65536:
            raise SystemExit(f"message size out of range: size={s} expected=8..65536")
    impls = ["python", "python-pull"] if args.python_only else ["python", "python-pull", "c"]
    if args.pyaeron:
        global PYAERON_PYTHON
        PYAERON_PYTHON = args.pyaeron
        print(f"peer: pyaeron {check_pyaeron(args.pyaeron)} under {args.pyaeron}", flush=True)
        impls.append("pyaeron")
    reports = []
    for run in range(args.runs):
        print(f"run {run + 1}/{args.runs}", flush=True)
        reports.append(run_bench(sizes, args.count, args.warmup, args.udp, impls, args.throughput_count, args.batch))
    for r in reports:
        print()
        print(format_report(r))
    print()
    benchkit.emit(to_benchkit(reports), args, table=False)
    return 0


def to_benchkit(reports: list[Report]) -> "benchkit.Report":
    """The runs in the common output format: a case per (transport, impl, size), one histogram per run."""
    out = benchkit.Report("ping", reference="c")
    for r in reports:
        for lat in r.latency:
            case = out.case(f"{lat.transport}/{lat.impl}/{lat.size}", label=lat.impl, group=f"{lat.transport} {lat.size} B")
            case.histograms.append(benchkit.histogram_of(lat.samples))
        for t in r.throughput:
            case = out.case(f"throughput/{t.impl}/{t.size}", label=t.impl, group="throughput")
            case.run_throughputs.append(t.msgs_per_s)
            case.throughput = sum(case.run_throughputs) / len(case.run_throughputs)
    out.extra["core_rtt_ns"] = [[r.core_rtt_ns_before, r.core_rtt_ns_after] for r in reports]
    return out


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job: ping-pong between two Python processes over IPC on an embedded driver."""
    from tickline.transport import MediaDriver

    cpus = choose_cpus()
    print("tickline demo: ping-pong between two processes over Aeron IPC, embedded media driver")
    with MediaDriver.embedded(options={"aeron.ipc.term.buffer.length": "16m"}) as driver:
        print(f"driver dir {driver.dir}; ping on cpu {cpus[0]}, pong on cpu {cpus[1]}")
        for size in (32, 256):
            r = measure_latency("python", driver.dir, ("aeron:ipc", "aeron:ipc"), "ipc", size, args.count, args.count // 10, cpus)
            _print_latency(r)
    return 0


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
