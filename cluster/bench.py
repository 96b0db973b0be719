"""``tickline bench cluster``: orders through a 3-member cluster on one host.

Measures, in one run and against peers measured the same way:

- latency from offering an order to its acknowledged answer (p50/p99/p99.9/max)
  at a fixed offered rate, for the 3-member cluster and for a 1-member cluster
  (the peer that isolates the cost of replication);
- maximum sustained throughput with a window of outstanding orders;
- failover: time from kill -9 of the leader to the first answer after it.

Two transports, each measured the same way (``--transport``):

- ``udp``: the members run as separate processes, each embedding its own
  media driver in invoker mode, talking Aeron UDP unicast on loopback (see
  :mod:`.aeron_io`); the client embeds one too.  What members on separate
  hosts would run.
- ``ipc``: the same processes share one media driver (``aeronmd``, started
  by the benchmark) and talk through its IPC streams: what members on one
  host would run.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from tickline.transport import MediaDriver, free_ports
from tickline.transport.idle import BackoffIdleStrategy

from .aeron_io import (SHARED_DRIVER_OPTIONS, THREADING_MODES, AeronClusterClient, ClusterLink, default_aeron_base, query_status,
                       threading_mode)
from .auth import provision
from .daemon import DEFAULT_MAX_PARK_US, load_topology
import importlib

_LAUNCH = (
    "import importlib.util, sys, tickline\n"
    "if importlib.util.find_spec('tickline.cluster') is None: tickline.__path__.append(sys.argv[1])\n"
    "from tickline.cluster.daemon import main\n"
    "sys.exit(main(sys.argv[2:]))\n"
)
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: the service the members run (the daemon's default, an application module named, not imported:
#: ARCHITECTURE.md) and whose orders this bench sends
BENCH_WORKLOAD = "tickline.sequencer.basic"


TRANSPORTS = ("udp", "ipc")


class _Cluster:
    def __init__(self, directory: str, members: int, fsync: str, threading: str = "invoker", transport: str = "udp",
                 max_park_us: int = DEFAULT_MAX_PARK_US, service: str | None = None,
                 member_env: dict[str, str] | None = None) -> None:
        """``service``: the members' ``module:factory`` (None: the daemon's default, the
        example sequencer); ``member_env``: more environment for the members (a service's
        own ``TICKLINE_*`` settings)."""
        self.threading = threading
        self.member_env = dict(member_env or {})
        self.max_park_us = max_park_us
        self.dir = directory
        self.driver: MediaDriver | None = None
        self.config = os.path.join(directory, "cluster.toml")
        self.aeron_dir = tempfile.mkdtemp(prefix="tickline-bench-cluster-", dir=default_aeron_base())
        if transport == "ipc":
            # the members' shared driver: aeronmd in its own process (see aeron_io.SHARED_DRIVER_OPTIONS)
            shutil.rmtree(self.aeron_dir)
            with open(os.path.join(directory, "aeronmd.log"), "ab") as log:
                self.driver = MediaDriver.launch(self.aeron_dir, options=SHARED_DRIVER_OPTIONS,
                                                 stdout=log, stderr=subprocess.STDOUT)
            endpoints = ["ipc"] * members
        else:
            endpoints = [f"127.0.0.1:{p}" for p in free_ports(members)]
        # members sign consensus messages and clients present credentials, as deployed;
        # TICKLINE_BENCH_CLUSTER_AUTH=off measures the trusted-network opt-out instead
        self.secrets = None if os.environ.get("TICKLINE_BENCH_CLUSTER_AUTH") == "off" else provision(os.path.join(directory, "secrets"))
        security = self.secrets.topology() if self.secrets else 'member_auth = "none"\nauthenticator = "none"\n'
        with open(self.config, "w") as f:
            f.write(f'data_dir = "{os.path.join(directory, "data")}"\nfsync = "{fsync}"\nsnapshot_interval = 0\n'
                    f'aeron_dir = "{self.aeron_dir}"\naeron_threading = "{threading}"\n{security}'
                    "election_timeout_min = 300\nelection_timeout_max = 600\nheartbeat_interval = 50\n"
                    + (f'service = "{service}"\n' if service else "") + "[members]\n")
            for i, ep in enumerate(endpoints):
                f.write(f'{i + 1} = "{ep}"\n')
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        try:
            self.topo = load_topology(self.config)
            self.link = ClusterLink(self.topo.members, aeron_base=self.aeron_dir)
            self.credentials = self.secrets.client if self.secrets else b""
        except BaseException:
            self._close_driver()
            raise
        try:
            for m in self.topo.members:
                self.procs[m] = self._spawn(m)
        except BaseException:  # Ctrl-C while starting: nothing started is left running
            self.close()
            raise

    def _spawn(self, m: int) -> "subprocess.Popen[bytes]":
        log = open(os.path.join(self.dir, f"member-{m}.log"), "ab")
        # the environment would override the file: the members run what this benchmark says
        env = dict(os.environ, **self.member_env, TICKLINE_CLUSTER_AERON_THREADING=self.threading,
                   TICKLINE_CLUSTER_IDLE="backoff", TICKLINE_CLUSTER_IDLE_MAX_PARK_US=str(self.max_park_us))
        return subprocess.Popen([sys.executable, "-c", _LAUNCH, _ROOT, "--config", self.config, "--member", str(m)],
                                cwd=self.dir, stdout=log, stderr=subprocess.STDOUT, env=env)

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
        self._close_driver()

    def _close_driver(self) -> None:
        if self.driver is not None:
            self.driver.close()
        shutil.rmtree(self.aeron_dir, ignore_errors=True)


def _percentiles(samples_ns: list[int]) -> dict[str, float]:
    if not samples_ns:
        return {"n": 0}
    s = sorted(samples_ns)

    def pct(q: float) -> float:
        return s[min(len(s) - 1, int(q * len(s)))] / 1000.0

    return {"n": len(s), "p50_us": pct(0.50), "p99_us": pct(0.99), "p999_us": pct(0.999), "max_us": s[-1] / 1000.0}


def _idle() -> BackoffIdleStrategy:
    # The client shares 2 cores with 3 members: spinning when there is nothing
    # to do would take the CPU the members need (measured: a spinning client
    # used more CPU per order than the leader).  Parks stay short (<= 100 us)
    # because the client's embedded driver sends only when turned.
    return BackoffIdleStrategy(max_spins=10, max_yields=5, min_park_ns=1_000, max_park_ns=100_000)


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class _Driver:
    def __init__(self, cluster: _Cluster) -> None:
        w = importlib.import_module(BENCH_WORKLOAD)
        self.codec, self._new_order, self._buy, self._sell = w.StructOrderCodec(), w.NewOrder, w.Side.BUY, w.Side.SELL
        self.client = AeronClusterClient(cluster.topo.members, session_id=random.getrandbits(48), retry_timeout=250,
                                         aeron_base=cluster.aeron_dir, invoker=cluster.threading == "invoker",
                                         credentials=cluster.credentials)
        self.sent_at: dict[int, int] = {}
        self.latencies: list[int] = []
        self.answered = 0
        self.n = 0

    def offer(self) -> None:
        side = self._buy if self.n % 2 == 0 else self._sell
        corr = self.client.offer(self.codec.encode_order(self._new_order(self.n % 1000, side, 1, 100, self.n)))
        self.sent_at[corr] = time.perf_counter_ns()
        self.n += 1

    def poll(self) -> int:
        """Send, receive; returns the work done (for the idle strategy)."""
        got = self.client.poll()
        if got:
            now = time.perf_counter_ns()
            for corr, _ in got:
                self.latencies.append(now - self.sent_at.pop(corr))
            self.answered += len(got)
        return self.client.work

    def connect(self, deadline: float) -> None:
        while not self.client.client.connected:
            self.poll()
            if time.monotonic() > deadline:
                raise RuntimeError("cluster did not accept the session: check the member logs")
            time.sleep(0.001)


class _CpuMeter:
    """CPU seconds each process of a cluster used since the meter was made, by
    role: the leader, the followers (mean), the shared aeronmd (``driver``; a
    member's embedded driver counts as the member's) and this client, with
    ``total`` of them all, each divided by ``per`` (seconds or orders)."""

    def __init__(self, cluster: _Cluster, leader: int) -> None:
        self.cluster, self.leader = cluster, leader
        self.pids = {str(m): p.pid for m, p in cluster.procs.items() if p.poll() is None}
        if cluster.driver is not None and cluster.driver.pid:
            self.pids["driver"] = cluster.driver.pid
        self.cpu0 = {key: _cpu_seconds(pid) for key, pid in self.pids.items()}
        self.me0 = _self_cpu()

    def used(self, per: float, suffix: str) -> dict[str, float]:
        client = (_self_cpu() - self.me0) / per
        out = {f"client{suffix}": client}
        total, followers = client, []
        for key, pid in self.pids.items():
            try:
                v = (_cpu_seconds(pid) - self.cpu0[key]) / per
            except OSError:  # exited meanwhile
                continue
            total += v
            if key == "driver":
                out[f"driver{suffix}"] = v
            elif key == str(self.leader):
                out[f"leader{suffix}"] = v
            else:
                followers.append(v)
        if followers:
            out[f"follower{suffix}"] = statistics.mean(followers)
        out[f"total{suffix}"] = total
        return out


def _wait_leader(cluster: _Cluster, seconds: float = 30.0) -> int:
    deadline = time.monotonic() + seconds
    while (leader := cluster.leader()) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no leader within {seconds:.0f} s: check the member logs")
    return leader


def fixed_rate(cluster: _Cluster, rate: int, seconds: float, samples: list[int] | None = None) -> dict[str, float]:
    """Latency from offer to answer at ``rate`` orders/s, and the cores each
    process kept busy meanwhile (how close the host is to saturation); every
    latency (ns) is appended to ``samples`` when given."""
    d = _Driver(cluster)
    try:
        d.connect(time.monotonic() + 30)
        leader = _wait_leader(cluster)
        idle = _idle()
        meter = _CpuMeter(cluster, leader)
        start = time.perf_counter()
        i = 0
        while time.perf_counter() - start < seconds:
            due = start + i / rate
            work = 0
            while time.perf_counter() >= due and time.perf_counter() - start < seconds:
                d.offer()
                i += 1
                work += 1
                due = start + i / rate
            idle.idle(work + d.poll())
        busy = meter.used(time.perf_counter() - start, "_cores")
        drain = time.monotonic() + 10
        while d.client.client.outstanding and time.monotonic() < drain:
            idle.idle(d.poll())
        out = _percentiles(d.latencies)
        if samples is not None:
            samples.extend(d.latencies)
        out.update(busy)
        out["offered_per_s"] = rate
        out["unanswered"] = len(d.client.client.outstanding)
        out["retries"] = d.client.client.retries
        return out
    finally:
        d.client.close()


def throughput(cluster: _Cluster, window: int, seconds: float) -> dict[str, float]:
    """Orders/s with ``window`` outstanding, and CPU us per answered order of
    each process (leader, followers, this client) over the same interval."""
    d = _Driver(cluster)
    try:
        d.connect(time.monotonic() + 30)
        idle = _idle()
        warm = time.perf_counter()
        while time.perf_counter() - warm < min(1.0, seconds / 3):
            while len(d.client.client.outstanding) < window:
                d.offer()
            idle.idle(d.poll())
        meter = _CpuMeter(cluster, _wait_leader(cluster))
        answered0 = d.answered
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            work = 0
            while len(d.client.client.outstanding) < window:
                d.offer()
                work += 1
            idle.idle(work + d.poll())
        elapsed = time.perf_counter() - start
        n = max(1, d.answered - answered0)
        return {"per_s": (d.answered - answered0) / elapsed, **meter.used(n / 1e6, "_us")}
    finally:
        d.client.close()


def failover(cluster: _Cluster, rate: int) -> float:
    d = _Driver(cluster)
    try:
        d.connect(time.monotonic() + 30)
        leader = _wait_leader(cluster)
        idle = _idle()
        start = time.perf_counter()
        i = 0
        while time.perf_counter() - start < 0.5:  # warm, under load
            work = 0
            if time.perf_counter() >= start + i / rate:
                d.offer()
                i += 1
                work = 1
            idle.idle(work + d.poll())
        cluster.procs[leader].send_signal(signal.SIGKILL)
        killed = time.perf_counter()
        cluster.procs[leader].wait()
        first_after = d.client.client._next_correlation  # answers to orders offered before the kill don't count
        while True:
            work = 0
            if time.perf_counter() >= start + i / rate:
                d.offer()
                i += 1
                work = 1
            got = d.client.poll()
            idle.idle(work + d.client.work)
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


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def run(rate: int, seconds: float, window: int, fsync: str, runs: int = 1, threading: str | None = None,
        transports: tuple[str, ...] = TRANSPORTS, max_park_us: int = DEFAULT_MAX_PARK_US,
        report: Any = None) -> str:
    """``runs`` rounds of every phase; figures are medians over the rounds.  With a
    :class:`tickline.benchkit.Report`, every latency of the fixed-rate phase goes into a
    histogram per run (case ``TRANSPORT-N-member``, group the transport, reference the
    1-member peer), the maximum throughput per run is its throughput, and each
    failover time is a case of its own."""
    from tickline import benchkit

    mode = threading or threading_mode()
    lines = [f"tickline bench cluster: fsync={fsync}, rate={rate}/s, {seconds}s per phase, window={window}, medians of {runs} run(s); "
             f"members' idle_max_park_us={max_park_us}; machine: {_machine()}"]
    if "udp" in transports:
        lines.append(f"  udp: Aeron UDP on loopback, a media driver embedded in each process ({mode} mode)")
    if "ipc" in transports:
        lines.append("  ipc: Aeron IPC, one media driver (aeronmd) shared by all processes")
    results: dict[tuple[str, int], list[tuple[dict[str, float], dict[str, float]]]] = {(t, m): [] for t in transports for m in (3, 1)}
    failovers: dict[str, list[float]] = {t: [] for t in transports}
    for _ in range(runs):
        for transport in transports:  # interleaved run by run: the machine's noise falls on both alike
            for members in (3, 1):
                with tempfile.TemporaryDirectory() as tmp:
                    c = _Cluster(tmp, members, fsync, mode, transport, max_park_us)
                    try:
                        samples: list[int] = []
                        lat = fixed_rate(c, rate, seconds, samples)
                        tput = throughput(c, window, seconds)
                        results[(transport, members)].append((lat, tput))
                        if report is not None:
                            case = report.case(f"{transport}-{members}-member", label=f"{members}-member", group=transport)
                            case.histograms.append(benchkit.histogram_of(samples))
                            case.run_throughputs.append(tput["per_s"])
                            for key in ("unanswered", "retries"):
                                case.extra.setdefault(key, []).append(lat[key])
                    finally:
                        c.close()
            with tempfile.TemporaryDirectory() as tmp:
                c = _Cluster(tmp, 3, fsync, mode, transport, max_park_us)
                try:
                    failovers[transport].append(failover(c, rate))
                    if report is not None and failovers[transport][-1] != float("inf"):
                        case = report.case(f"{transport}-failover", label="kill -9 leader -> first answer",
                                           group=f"{transport}-failover", unit="ms")
                        case.histograms.append(benchkit.histogram_of([int(failovers[transport][-1] * 1e9)]))
                finally:
                    c.close()
    for transport in transports:
        for members in (3, 1):
            name = f"{transport} {members}-member" + (" (peer: no replication)" if members == 1 else "")
            rs = results[(transport, members)]
            if not all(lat["n"] for lat, _ in rs):
                lines.append(f"{name:<38} no answers in some run")
                continue

            def med(key: str, which: int = 0) -> float:
                return _median([r[which][key] for r in rs if key in r[which]])

            runs_tput = " ".join(f"{r[1]['per_s']:.0f}" for r in rs)
            lines.append(f"{name:<38} latency at {rate}/s p50={med('p50_us'):.0f}us p99={med('p99_us'):.0f}us "
                         f"p99.9={med('p999_us'):.0f}us max={med('max_us'):.0f}us n={med('n'):.0f} "
                         f"unanswered={med('unanswered'):.0f} retries={med('retries'):.0f}")
            busy = f"leader={med('leader_cores'):.2f}"
            if members > 1:
                busy += f" follower={med('follower_cores'):.2f}"
            if "driver_cores" in rs[0][0]:
                busy += f" driver={med('driver_cores'):.2f}"
            lines.append(f"{'':<38} busy cores at {rate}/s: {busy} client={med('client_cores'):.2f} "
                         f"total={med('total_cores'):.2f} of {os.cpu_count()}")
            cpu = f"leader={med('leader_us', 1):.1f}"
            if members > 1:
                cpu += f" follower={med('follower_us', 1):.1f}"
            lines.append(f"{'':<38} max_throughput={med('per_s', 1):.0f}/s (runs: {runs_tput}); "
                         f"CPU us/order at that rate: {cpu} client={med('client_us', 1):.1f}")
        fo = failovers[transport]
        lines.append(f"{transport + ' 3-member failover':<38} kill -9 leader -> first answer to an order sent after it: "
                     f"{_median(fo) * 1000:.0f} ms (runs: {' '.join(f'{f * 1000:.0f}' for f in fo)}; "
                     "election timeout 300-600 ms)")
    return "\n".join(lines)


def cmd_bench(args: argparse.Namespace) -> int:
    if args.runs < 1:
        print(f"error: --runs must be >= 1: runs={args.runs}", file=sys.stderr)
        return 2
    transports = TRANSPORTS if args.transport == "both" else (args.transport,)
    if not 1 <= args.idle_max_park_us <= 1_000_000:
        print(f"error: --idle-max-park-us must be 1..1000000: idle_max_park_us={args.idle_max_park_us}", file=sys.stderr)
        return 2
    from tickline import benchkit

    report = benchkit.Report("cluster", reference="1-member")
    report.extra.update({"rate": args.rate, "seconds": args.seconds, "window": args.window, "fsync": args.fsync,
                         "idle_max_park_us": args.idle_max_park_us})
    print(run(args.rate, args.seconds, args.window, args.fsync, args.runs, args.aeron_threading, transports,
              args.idle_max_park_us, report))
    for case in report.cases:
        if case.run_throughputs:
            case.throughput = _median(case.run_throughputs)
    benchkit.emit(report, args, table=False)
    return 0


def register_bench(bench_subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = bench_subparsers.add_parser("cluster", help="orders through a 3-member cluster on this host vs a 1-member peer")
    p.add_argument("--rate", type=int, default=1000, help="offered orders per second in the latency phase")
    p.add_argument("--seconds", type=float, default=3.0, help="how long each phase (latency at --rate, then throughput) runs, per transport and run")
    p.add_argument("--window", type=int, default=1024,
                   help="outstanding orders in the throughput phase (at 256, no more than one poll takes, client and leader take turns: that measures the window, not capacity)")
    p.add_argument("--fsync", choices=["always", "none"], default="always",
                   help="the members' log fsync policy: always (fsync before acknowledging; survives a power cut) or none (the OS writes back)")
    p.add_argument("--runs", type=int, default=1, help="repeat every phase N times and report medians")
    p.add_argument("--transport", choices=[*TRANSPORTS, "both"], default="both",
                   help="udp: a driver embedded per process; ipc: one shared driver (members on one host); both (default)")
    p.add_argument("--aeron-threading", choices=list(THREADING_MODES), default=None,
                   help="Aeron threading mode of the udp members and client (default: TICKLINE_CLUSTER_AERON_THREADING or invoker)")
    p.add_argument("--idle-max-park-us", type=int, default=DEFAULT_MAX_PARK_US,
                   help="the members' idle_max_park_us (the longest sleep of their backoff idle strategy; sets latency when orders are sparse)")
    from tickline import benchkit

    benchkit.add_output_args(p)
    p.set_defaults(func=lambda a: benchkit.run_guarded("tickline bench cluster", cmd_bench, a))
