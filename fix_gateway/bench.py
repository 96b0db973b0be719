"""Codec micro-benchmark: tickline's tag=value codec against simplefix, same run.

``python -m tickline.fix_gateway.bench [N]`` prints parse and encode rates for
a typical NewOrderSingle.  A benchmark, not a test: no assertions.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from .codec import FieldValue, Framer, encode, parse

NOS: list[tuple[int, FieldValue]] = [(35, "D"), (49, "CLIENT"), (56, "GATEWAY"), (34, 1234), (52, "20260101-12:00:00.000"),
       (11, "ORD-000001"), (21, "1"), (55, "AAPL"), (54, "1"), (60, "20260101-12:00:00.000"),
       (38, 100), (40, "2"), (44, "187.25"), (59, "0")]


def _rate(fn, n: int) -> float:
    t0 = time.perf_counter()
    fn(n)
    return n / (time.perf_counter() - t0)


def run(n: int = 100_000) -> dict[str, float]:
    raw = encode("FIX.4.4", NOS)
    stream = raw * 100
    out: dict[str, float] = {}

    def tl_parse(k: int) -> None:
        f = Framer()
        for _ in range(k // 100):
            f.feed(stream)
            while True:  # as Session.receive_data: the native fast path, then the reference framer
                if f.next_message() is not None:
                    continue
                fr = f.next()
                if fr is None:
                    break
                parse(fr.data)  # type: ignore[union-attr]

    def tl_encode(k: int) -> None:
        for _ in range(k):
            encode("FIX.4.4", NOS)

    out["tickline_parse_msgs_per_s"] = _rate(tl_parse, n)
    out["tickline_encode_msgs_per_s"] = _rate(tl_encode, n)
    try:
        import simplefix
    except ImportError:
        return out

    def sf_parse(k: int) -> None:
        p = simplefix.FixParser()
        for _ in range(k // 100):
            p.append_buffer(stream)
            while p.get_message() is not None:
                pass

    def sf_encode(k: int) -> None:
        for _ in range(k):
            m = simplefix.FixMessage()
            m.append_pair(8, "FIX.4.4", header=True)
            for t, v in NOS:
                m.append_pair(t, v)
            m.encode()

    out["simplefix_parse_msgs_per_s"] = _rate(sf_parse, n)
    out["simplefix_encode_msgs_per_s"] = _rate(sf_encode, n)
    return out


if __name__ == "__main__":
    for k, v in run(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000).items():
        print(f"{k}={v:,.0f}")


# -- tickline bench fix ------------------------------------------------------------


def _load_qfpeer():
    """The QuickFIX peer helper from the source checkout (tests/fix_gateway/qfpeer)."""
    import importlib.util
    import os
    from pathlib import Path

    src = os.environ.get("TICKLINE_QFPEER_SRC") or str(
        Path(__file__).resolve().parents[1] / "tests" / "fix_gateway" / "qfpeer" / "__init__.py")
    if not Path(src).exists():
        raise RuntimeError(f"qfpeer sources not found: fault=environment path={src} "
                           "hint=run from a source checkout or set TICKLINE_QFPEER_SRC")
    spec = importlib.util.spec_from_file_location("tickline_qfpeer", src)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _free_port() -> int:
    from tickline.transport.uri import free_ports

    return free_ports(kind="tcp")[0]


def _client_run(qf, binary, workdir, port: int, count: int, warmup: int) -> tuple[dict[str, float], list[int]]:
    """The client's figures and every measured round trip in ns."""
    import re

    peer = qf.QfPeer(binary, qf.settings("initiator", port, workdir, sender="CLIENT", target="GW"), workdir)
    try:
        peer.wait_for(r"^LOGON ", timeout=20)
        m = peer.mark()
        peer.cmd("quiet")
        peer.wait_for(r"^OK cmd=quiet", after=m)
        if warmup:
            m = peer.mark()
            peer.cmd(f"bench {warmup}")
            peer.wait_for(r"^BENCH ", after=m, timeout=300)
        m = peer.mark()
        samples = Path(workdir) / "round-trips-ns.txt"
        peer.cmd(f"bench {count} {samples}")
        line = peer.wait_for(r"^BENCH ", after=m, timeout=600)
        m = peer.mark()
        peer.cmd(f"burst {count}")
        burst = peer.wait_for(r"^BURST ", after=m, timeout=600)
    finally:
        peer.stop()
    if "error" in line or "error" in burst:
        raise RuntimeError(f"bench client failed: fault=peer bench={line!r} burst={burst!r}")
    out = {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", line)}
    out["burst_msgs_per_s"] = float(re.search(r"msgs_per_s=([\d.]+)", burst).group(1))  # type: ignore[union-attr]
    return out, [int(v) for v in samples.read_text().split()]


def _aeron_venue(root, idle: str, mode: str = "auto-fill"):
    """An embedded media driver here, ``tickline exchange-sim`` (``mode``) as its own process;
    returns (sink, source, close)."""
    import subprocess
    import sys
    import time

    from tickline.transport import Aeron, MediaDriver

    from .aeron_bridge import AeronExecutionSource, AeronOrderSink, AeronStreams

    driver = MediaDriver.embedded()
    procs: list[subprocess.Popen[str]] = []
    aeron = None

    def close() -> None:
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if aeron is not None:
            aeron.close()
        driver.close()

    try:
        cfg = root / "exchange-sim.toml"
        cfg.write_text(f'[exchange_sim]\ndir = "{driver.dir}"\nidle = "{idle}"\ndefault_mode = "{mode}"\n')
        p = subprocess.Popen([sys.executable, "-m", "tickline.cli", "exchange-sim", "--config", str(cfg)],
                             stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        procs.append(p)
        line = p.stderr.readline() if p.stderr else ""
        if "running" not in line:
            raise RuntimeError(f"exchange-sim did not start: fault=ours line={line!r}")
        aeron = Aeron(driver.dir)
        streams = AeronStreams(dir=driver.dir)
        sink, source = AeronOrderSink(aeron, streams), AeronExecutionSource(aeron, streams)
        deadline = time.monotonic() + 10
        while not sink.is_connected:
            if time.monotonic() > deadline:
                raise RuntimeError(f"exchange-sim never subscribed: fault=ours dir={driver.dir} timeout_s=10")
            time.sleep(0.001)
        return sink, source, close
    except BaseException:
        close()
        raise


# The rows of ``tickline bench fix``: (name, server, what it does per NewOrderSingle).  The client
# is always the same QuickFIX initiator; it counts a round trip when the fill (39=2) arrives.
ROWS = [
    ("quickfix -> quickfix", "quickfix",
     "QuickFIX acceptor, its application answers with one fill ER"),
    ("quickfix -> tickline session", "session",
     "tickline acceptor + session layer, the same one-fill application"),
    ("quickfix -> tickline bridge+sim fill", "fill-only",
     "real gateway path: FIX -> bridge -> in-process exchange-sim (fill-only) -> FIX; one fill ER"),
    ("quickfix -> tickline bridge+sim ack+fill", "auto-fill",
     "real gateway path, exchange-sim auto-fill: ack ER then fill ER (two ERs per order)"),
]
AERON_ROW = ("quickfix -> tickline aeron+sim ack+fill", "aeron",
             "bridge -> SBE on Aeron IPC -> tickline exchange-sim process (auto-fill) -> back; two ERs")


def _median(xs: list[float]) -> float:
    ys = sorted(xs)
    n = len(ys)
    return ys[n // 2] if n % 2 else (ys[n // 2 - 1] + ys[n // 2]) / 2


def run_fix_bench(count: int = 20_000, warmup: int = 2_000, idle: str = "busy-spin", aeron: bool = False,
                  runs: int = 1, args: Any = None) -> int:
    """NewOrderSingle -> filled ExecutionReport round trips, one QuickFIX client against each server of
    ``ROWS`` (and ``AERON_ROW`` with ``aeron=True``), all in one run; ``runs`` > 1 repeats the whole set
    and prints the median of each figure.  Validation is on for every server (the FIX44 dictionary:
    QuickFIX's UseDataDictionary=Y, tickline's default checks).  Every round trip goes into the
    row's HDR histogram (one per run); ``args`` carries benchkit's --json/--hgrm/--plot."""
    import gc
    import os
    import platform
    import tempfile
    import time
    from pathlib import Path

    from tickline.transport.agent import AgentRunner, CompositeAgent
    from tickline.transport.idle import idle_strategy_from_name

    from .bridge import FixBridge
    from .codec import NATIVE
    from tickline.transport.loader import load_object

    from .gateway import IN_PROCESS_VENUE
    from .io import AcceptorConfig, FixAcceptor
    from .session import ApplicationMessage, SessionConfig
    from .store import FileStore

    from tickline import benchkit

    if runs < 1 or count < 1 or warmup < 0:
        raise benchkit.BenchInputError(f"bad bench arguments: runs={runs} count={count} warmup={warmup} fault=user")
    qf = _load_qfpeer()
    binary = qf.build()
    os.environ["QFPEER_NOLOG"] = "1"  # neither side logs messages to files
    rows = ROWS + ([AERON_ROW] if aeron else [])
    report = benchkit.Report("fix", reference=ROWS[0][0])
    report.extra.update({"count": count, "warmup": warmup, "idle": idle, "native_codec": bool(NATIVE),
                         "what": "NewOrderSingle -> filled ExecutionReport round trip, FIX.4.4, loopback, one session"})

    def record(name: str, figures: tuple[dict[str, float], list[int]]) -> dict[str, float]:
        out, samples = figures
        case = report.case(name.replace(" -> ", "-to-").replace(" ", "-").replace("+", "-"), label=name,
                           group="round-trip")
        case.histograms.append(benchkit.histogram_of(samples))
        case.run_throughputs.append(out["msgs_per_s"])
        case.extra.setdefault("burst_msgs_per_s", []).append(out["burst_msgs_per_s"])
        return out
    per_run: list[dict[str, dict[str, float]]] = []
    for run in range(runs):
        results: dict[str, dict[str, float]] = {}
        with tempfile.TemporaryDirectory(prefix="tickline-bench-fix-") as tmp:
            root = Path(tmp)
            for i, (name, server, _) in enumerate(rows):
                port = _free_port()
                if server == "quickfix":
                    qf_server = qf.QfPeer(binary, qf.settings("acceptor", port, root / f"qf-acc-{i}", sender="GW",
                                                              target="CLIENT"), root / f"qf-acc-{i}")
                    try:
                        qf_server.wait_for(r"^READY ")
                        qf_server.cmd("quiet")
                        results[name] = record(name, _client_run(qf, binary, root / f"cli-{i}", port, count, warmup))
                    finally:
                        qf_server.stop()
                    continue
                cfg = SessionConfig(sender_comp_id="GW", target_comp_id="CLIENT", transport_dictionary="FIX44")
                acc = FixAcceptor(AcceptorConfig(port=port))
                store = FileStore(root / f"tl-{i}.log", "none")  # QuickFIX's FileStore doesn't fsync either
                acc.add_session(cfg, store)
                agent: object = acc
                close_venue = None
                if server == "session":
                    n_exec = [0]

                    def on_event(s: str, e: object, acc: FixAcceptor = acc, n_exec: list[int] = n_exec) -> None:
                        if isinstance(e, ApplicationMessage) and e.message.msg_type == "D":
                            m = e.message
                            n_exec[0] += 1
                            acc.session(s).send("8", [
                                (37, "TL-" + m[11]), (17, n_exec[0]), (150, "F"), (39, "2"), (11, m[11]),
                                (55, m.get(55) or ""), (54, m[54]), (38, m[38]), (32, m[38]), (31, m.get(44) or "0"),
                                (151, 0), (14, m[38]), (6, m.get(44) or "0")], time.time())
                    acc.on_event = on_event
                elif server == "aeron":
                    sink, source, close_venue = _aeron_venue(root, idle)
                    bridge = FixBridge(acc, sink, source, time.time)
                    acc.on_event = bridge.on_event
                    agent = CompositeAgent([acc, bridge])
                else:
                    venue = load_object(IN_PROCESS_VENUE)(lambda: time.time_ns(), default_mode=server)
                    bridge = FixBridge(acc, venue, venue, time.time)
                    acc.on_event = bridge.on_event
                    agent = CompositeAgent([acc, bridge])
                acc.on_start()
                gc.freeze()  # as `tickline fix-gateway` does once started
                runner = AgentRunner(agent, idle_strategy_from_name(idle))  # type: ignore[arg-type]
                runner.start()
                try:
                    results[name] = record(name, _client_run(qf, binary, root / f"cli-{i}", port, count, warmup))
                finally:
                    runner.close()
                    if close_venue is not None:
                        close_venue()
                    gc.unfreeze()
        per_run.append(results)
        if runs > 1:
            print(f"run {run + 1}/{runs}: " + "  ".join(
                f"{n.split(' -> ')[1]}: p50={r['p50_us']:.1f} p99={r['p99_us']:.1f} rtt/s={r['msgs_per_s']:.0f} "
                f"burst/s={r['burst_msgs_per_s']:.0f}" for n, r in results.items()), flush=True)

    print(f"tickline bench fix: NewOrderSingle -> filled ExecutionReport, FIX.4.4, loopback, one session, "
          f"count={count} warmup={warmup} idle={idle} runs={runs}" + (" (medians)" if runs > 1 else ""))
    print(f"machine: {platform.processor() or platform.machine()} cpus={os.cpu_count()} "
          f"python={platform.python_version()}")
    print(f"validation: on, FIX44 dictionary, both engines; tickline store: FileStore fsync=none; "
          f"tickline native codec: {'on' if NATIVE else 'off (TICKLINE_FIX_NATIVE=0)'}")
    print(f"{'path':<42} {'p50_us':>9} {'p99_us':>9} {'max_us':>9} {'rtt_msgs/s':>11} {'burst_msgs/s':>13}")
    cols = ("p50_us", "p99_us", "max_us", "msgs_per_s", "burst_msgs_per_s")
    for name, _, _ in rows:
        med = {c: _median([r[name][c] for r in per_run]) for c in cols}
        print(f"{name:<42} {med['p50_us']:>9.1f} {med['p99_us']:>9.1f} {med['max_us']:>9.1f} "
              f"{med['msgs_per_s']:>11.0f} {med['burst_msgs_per_s']:>13.0f}")
    print("rows:")
    for name, _, what in rows:
        print(f"  {name}: {what}")
    for case in report.cases:
        case.throughput = _median(case.run_throughputs)
    if args is not None:
        benchkit.emit(report, args, table=False)
    return 0
