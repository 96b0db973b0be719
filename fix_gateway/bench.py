"""Codec micro-benchmark: tickline's tag=value codec against simplefix, same run.

``python -m tickline.fix_gateway.bench [N]`` prints parse and encode rates for
a typical NewOrderSingle.  A benchmark, not a test: no assertions.
"""

from __future__ import annotations

import sys
import time

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
            for fr in f:
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
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _client_run(qf, binary, workdir, port: int, count: int, warmup: int) -> dict[str, float]:
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
        peer.cmd(f"bench {count}")
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
    return out


def _aeron_venue(root, idle: str):
    """An embedded media driver here, ``tickline exchange-sim`` (auto-fill) as its own process;
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
        cfg.write_text(f'[exchange_sim]\ndir = "{driver.dir}"\nidle = "{idle}"\ndefault_mode = "auto-fill"\n')
        p = subprocess.Popen([sys.executable, "-m", "tickline.fix_gateway.cli", "exchange-sim", "--config", str(cfg)],
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


def run_fix_bench(count: int = 20_000, warmup: int = 2_000, idle: str = "busy-spin", aeron: bool = False) -> int:
    """NewOrderSingle -> filled ExecutionReport round trips, one QuickFIX client, three servers:
    QuickFIX (its own acceptor), tickline's session layer with the same one-fill application, and
    tickline's full path (bridge + exchange simulator: ack and fill per order).  ``aeron=True`` adds
    the deployed path: bridge -> SBE on Aeron IPC -> ``tickline exchange-sim`` process -> back."""
    import os
    import platform
    import tempfile
    import time
    from pathlib import Path

    from tickline.transport.agent import AgentRunner, CompositeAgent
    from tickline.transport.idle import idle_strategy_from_name

    from .bridge import FixBridge
    from .exchange_sim import ExchangeSim
    from .io import AcceptorConfig, FixAcceptor
    from .session import ApplicationMessage, SessionConfig
    from .store import FileStore

    qf = _load_qfpeer()
    binary = qf.build()
    os.environ["QFPEER_NOLOG"] = "1"  # neither side logs messages to files
    results: dict[str, dict[str, float]] = {}
    sid = "FIX.4.4:GW->CLIENT"
    with tempfile.TemporaryDirectory(prefix="tickline-bench-fix-") as tmp:
        root = Path(tmp)
        # 1. QuickFIX to QuickFIX
        port = _free_port()
        server = qf.QfPeer(binary, qf.settings("acceptor", port, root / "qf-acc", sender="GW", target="CLIENT"),
                           root / "qf-acc")
        try:
            server.wait_for(r"^READY ")
            server.cmd("quiet")
            results["quickfix -> quickfix"] = _client_run(qf, binary, root / "qf-cli1", port, count, warmup)
        finally:
            server.stop()

        # 2. and 3. QuickFIX to tickline
        names = ["quickfix -> tickline session", "quickfix -> tickline bridge+sim"]
        if aeron:
            names.append("quickfix -> tickline aeron+sim proc")
        for name in names:
            port = _free_port()
            cfg = SessionConfig(sender_comp_id="GW", target_comp_id="CLIENT", transport_dictionary="FIX44")
            acc = FixAcceptor(AcceptorConfig(port=port))
            store = FileStore(root / f"tl-{len(results)}.log", "none")  # QuickFIX's FileStore doesn't fsync either
            acc.add_session(cfg, store)
            agent: object = acc
            close_venue = None
            if name.endswith("session"):
                n_exec = [0]

                def on_event(s: str, e: object, acc: FixAcceptor = acc, n_exec: list[int] = n_exec) -> None:
                    if isinstance(e, ApplicationMessage) and e.message.msg_type == "D":
                        m = e.message
                        n_exec[0] += 1
                        acc.session(s).send("8", [
                            (37, "TL-" + m[11]), (17, n_exec[0]), (150, "F"), (39, "2"), (11, m[11]), (55, m.get(55) or ""),
                            (54, m[54]), (38, m[38]), (32, m[38]), (31, m.get(44) or "0"), (151, 0), (14, m[38]),
                            (6, m.get(44) or "0")], time.time())
                acc.on_event = on_event
            elif name.endswith("proc"):
                sink, source, close_venue = _aeron_venue(root, idle)
                bridge = FixBridge(acc, sink, source, time.time)
                acc.on_event = bridge.on_event
                agent = CompositeAgent([acc, bridge])
            else:
                venue = ExchangeSim(lambda: time.time_ns(), default_mode="auto-fill")
                bridge = FixBridge(acc, venue, venue, time.time)
                acc.on_event = bridge.on_event
                agent = CompositeAgent([acc, bridge])
            acc.on_start()
            runner = AgentRunner(agent, idle_strategy_from_name(idle))  # type: ignore[arg-type]
            runner.start()
            try:
                results[name] = _client_run(qf, binary, root / f"cli-{len(results)}", port, count, warmup)
            finally:
                runner.close()
                if close_venue is not None:
                    close_venue()

    print(f"tickline bench fix: NewOrderSingle -> filled ExecutionReport, FIX.4.4, loopback, one session, "
          f"count={count} warmup={warmup} idle={idle}")
    print(f"machine: {platform.processor() or platform.machine()} cpus={os.cpu_count()} python={platform.python_version()}")
    print(f"{'path':<34} {'p50_us':>9} {'p99_us':>9} {'max_us':>9} {'rtt_msgs/s':>11} {'burst_msgs/s':>13}")
    for name, r in results.items():
        print(f"{name:<34} {r['p50_us']:>9.1f} {r['p99_us']:>9.1f} {r['max_us']:>9.1f} {r['msgs_per_s']:>11.0f} "
              f"{r['burst_msgs_per_s']:>13.0f}")
    return 0
