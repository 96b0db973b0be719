"""``tickline bench cluster``: orders through a 3-member cluster on one host.

Measures, in one run and against peers measured the same way:

- latency from offering an order to its acknowledged answer (p50/p99/p99.9/max)
  at a fixed offered rate, for the 3-member cluster and for a 1-member cluster
  (the peer that isolates the cost of replication);
- maximum sustained throughput with a window of outstanding orders;
- failover: time from kill -9 of the leader to the first answer after it.

The members run as separate processes, each embedding its own media driver
in invoker mode, talking Aeron UDP unicast on loopback (see :mod:`.aeron_io`);
the client embeds one too.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from .aeron_io import AeronClusterClient, ClusterLink, default_aeron_base, query_status
from .daemon import load_topology
from .sequencer import NewOrder, Side, StructOrderCodec

_LAUNCH = (
    "import importlib.util, sys, tickline\n"
    "if importlib.util.find_spec('tickline.cluster') is None: tickline.__path__.append(sys.argv[1])\n"
    "from tickline.cluster.daemon import main\n"
    "sys.exit(main(sys.argv[2:]))\n"
)
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _ports(n: int) -> list[int]:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class _Cluster:
    def __init__(self, directory: str, members: int, fsync: str) -> None:
        self.dir = directory
        ports = _ports(members)
        self.config = os.path.join(directory, "cluster.toml")
        self.aeron_dir = tempfile.mkdtemp(prefix="tickline-bench-cluster-", dir=default_aeron_base())
        with open(self.config, "w") as f:
            f.write(f'data_dir = "{os.path.join(directory, "data")}"\nfsync = "{fsync}"\nsnapshot_interval = 0\n'
                    f'aeron_dir = "{self.aeron_dir}"\n'
                    "election_timeout_min = 300\nelection_timeout_max = 600\nheartbeat_interval = 50\n[members]\n")
            for i, p in enumerate(ports):
                f.write(f'{i + 1} = "127.0.0.1:{p}"\n')
        self.topo = load_topology(self.config)
        self.link = ClusterLink(self.topo.members, aeron_base=self.aeron_dir)
        self.procs = {m: self._spawn(m) for m in self.topo.members}

    def _spawn(self, m: int) -> "subprocess.Popen[bytes]":
        log = open(os.path.join(self.dir, f"member-{m}.log"), "ab")
        return subprocess.Popen([sys.executable, "-c", _LAUNCH, _ROOT, "--config", self.config, "--member", str(m)],
                                cwd=self.dir, stdout=log, stderr=subprocess.STDOUT)

    def leader(self) -> int | None:
        for m, p in self.procs.items():
            if p.poll() is None:
                st = query_status(self.link, m, timeout=0.2)
                if st is not None and st.role == "leader":
                    return m
        return None

    def close(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
        self.link.close()
        shutil.rmtree(self.aeron_dir, ignore_errors=True)


def _percentiles(samples_ns: list[int]) -> dict[str, float]:
    if not samples_ns:
        return {"n": 0}
    s = sorted(samples_ns)

    def pct(q: float) -> float:
        return s[min(len(s) - 1, int(q * len(s)))] / 1000.0

    return {"n": len(s), "p50_us": pct(0.50), "p99_us": pct(0.99), "p999_us": pct(0.999), "max_us": s[-1] / 1000.0}


class _Driver:
    def __init__(self, cluster: _Cluster) -> None:
        self.codec = StructOrderCodec()
        self.client = AeronClusterClient(cluster.topo.members, session_id=random.getrandbits(48), retry_timeout=250,
                                         aeron_base=cluster.aeron_dir)
        self.sent_at: dict[int, int] = {}
        self.latencies: list[int] = []
        self.answered = 0
        self.n = 0

    def offer(self) -> None:
        side = Side.BUY if self.n % 2 == 0 else Side.SELL
        corr = self.client.offer(self.codec.encode_order(NewOrder(self.n % 1000, side, 1, 100, self.n)))
        self.sent_at[corr] = time.perf_counter_ns()
        self.n += 1

    def poll(self) -> int:
        got = self.client.poll()
        now = time.perf_counter_ns()
        for corr, _ in got:
            self.latencies.append(now - self.sent_at.pop(corr))
        self.answered += len(got)
        return len(got)

    def connect(self, deadline: float) -> None:
        while not self.client.client.connected:
            self.poll()
            if time.monotonic() > deadline:
                raise RuntimeError("cluster did not accept the session: check the member logs")
            time.sleep(0.001)


def fixed_rate(cluster: _Cluster, rate: int, seconds: float) -> dict[str, float]:
    d = _Driver(cluster)
    try:
        d.connect(time.monotonic() + 30)
        start = time.perf_counter()
        i = 0
        while time.perf_counter() - start < seconds:
            due = start + i / rate
            while time.perf_counter() >= due and time.perf_counter() - start < seconds:
                d.offer()
                i += 1
                due = start + i / rate
            d.poll()
        drain = time.monotonic() + 10
        while d.client.client.outstanding and time.monotonic() < drain:
            d.poll()
        out = _percentiles(d.latencies)
        out["offered_per_s"] = rate
        out["unanswered"] = len(d.client.client.outstanding)
        return out
    finally:
        d.client.close()


def throughput(cluster: _Cluster, window: int, seconds: float) -> float:
    d = _Driver(cluster)
    try:
        d.connect(time.monotonic() + 30)
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            while len(d.client.client.outstanding) < window:
                d.offer()
            d.poll()
        return d.answered / (time.perf_counter() - start)
    finally:
        d.client.close()


def failover(cluster: _Cluster, rate: int) -> float:
    d = _Driver(cluster)
    try:
        d.connect(time.monotonic() + 30)
        leader = None
        deadline = time.monotonic() + 30
        while leader is None:
            leader = cluster.leader()
            if leader is None and time.monotonic() > deadline:
                raise RuntimeError("no leader within 30 s: check the member logs")
        start = time.perf_counter()
        i = 0
        while time.perf_counter() - start < 0.5:  # warm, under load
            if time.perf_counter() >= start + i / rate:
                d.offer()
                i += 1
            d.poll()
        cluster.procs[leader].send_signal(signal.SIGKILL)
        killed = time.perf_counter()
        cluster.procs[leader].wait()
        first_after = d.client.client._next_correlation  # answers to orders offered before the kill don't count
        while True:
            if time.perf_counter() >= start + i / rate:
                d.offer()
                i += 1
            got = d.client.poll()
            if any(corr >= first_after for corr, _ in got):
                return time.perf_counter() - killed
            for corr, _ in got:
                d.sent_at.pop(corr, None)
            if time.perf_counter() - killed > 30:
                return float("inf")
    finally:
        d.client.close()


def _machine() -> str:
    model = "unknown cpu"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cpus, Python {sys.version.split()[0]}"


def run(rate: int, seconds: float, window: int, fsync: str) -> str:
    mode = "threaded" if os.environ.get("TICKLINE_CLUSTER_AERON_THREADING") == "threaded" else "invoker"
    lines = [f"tickline bench cluster: Aeron UDP on loopback (driver embedded per process, {mode} mode), fsync={fsync}, "
             f"rate={rate}/s, {seconds}s per phase, window={window}; machine: {_machine()}"]
    for members in (3, 1):
        with tempfile.TemporaryDirectory() as tmp:
            c = _Cluster(tmp, members, fsync)
            try:
                lat = fixed_rate(c, rate, seconds)
                tput = throughput(c, window, seconds)
            finally:
                c.close()
        name = f"{members}-member" + (" (peer: no replication)" if members == 1 else "")
        if lat["n"]:
            lines.append(f"{name:<34} latency p50={lat['p50_us']:.0f}us p99={lat['p99_us']:.0f}us p99.9={lat['p999_us']:.0f}us "
                         f"max={lat['max_us']:.0f}us n={lat['n']} unanswered={lat['unanswered']}  max_throughput={tput:.0f}/s")
        else:
            lines.append(f"{name:<34} no answers")
    with tempfile.TemporaryDirectory() as tmp:
        c = _Cluster(tmp, 3, fsync)
        try:
            fo = failover(c, rate)
        finally:
            c.close()
    lines.append(f"{'3-member failover':<34} kill -9 leader -> first answer to an order sent after it: {fo * 1000:.0f} ms "
                 "(election timeout 300-600 ms + client retry 250 ms)")
    return "\n".join(lines)


def cmd_bench(args: argparse.Namespace) -> int:
    print(run(args.rate, args.seconds, args.window, args.fsync))
    return 0


def register_bench(bench_subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = bench_subparsers.add_parser("cluster", help="orders through a 3-member cluster on this host vs a 1-member peer")
    p.add_argument("--rate", type=int, default=1000, help="offered orders per second in the latency phase")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--window", type=int, default=64, help="outstanding orders in the throughput phase")
    p.add_argument("--fsync", choices=["always", "none"], default="always")
    p.set_defaults(func=cmd_bench)
