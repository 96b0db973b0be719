"""The exchange simulator publishes its orders by outcome as Aeron counters: a real
``tickline exchange-sim`` process, orders sent to it over Aeron, ``tickline stat`` (and
``--prometheus``) reading them while it runs; they leave the CnC file when it stops."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tickline.fix_gateway.bridge import CancelOrder, NewOrder, OrdType, Side, TimeInForce
from tickline.fix_gateway.sbe_orders import OrderCodec

pytestmark = pytest.mark.multiprocess

S = 10 ** 9


def stat(dir: str, *args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "tickline", "stat", "--dir", dir, *args], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def values(text: str, prefix: str) -> dict[str, int]:
    """label -> value of the counters in `tickline stat` output whose label starts with prefix."""
    out = {}
    for line in text.splitlines():
        num, sep, label = line.partition(" - ")
        if sep and label.startswith(prefix):
            out[label] = int(num.split(":")[1].replace(",", ""))
    return out


def wait_until(cond, timeout=20.0, what="condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}: last={last!r}")


@pytest.fixture
def driver():  # type: ignore[no-untyped-def]
    from tickline.transport import MediaDriver

    d = MediaDriver.launch(stdout=subprocess.DEVNULL)
    yield d
    d.close()
    shutil.rmtree(d.dir, ignore_errors=True)


def test_exchange_sim_counters_show_in_stat_while_it_runs(tmp_path, driver) -> None:  # type: ignore[no-untyped-def]
    from tickline.transport import Aeron

    cfg = tmp_path / "topology.toml"
    cfg.write_text(f"""
[exchange_sim]
dir = "{driver.dir}"
order_stream_id = 2301
report_stream_id = 2302
idle = "sleeping"
default_mode = "match"
modes = {{ AF = "auto-fill" }}
""")
    sim = subprocess.Popen([sys.executable, "-m", "tickline", "exchange-sim", "--config", str(cfg)],
                           stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        assert " INFO tickline.venue.exchange_sim running " in sim.stderr.readline()
        a = Aeron(driver.dir)
        pub = a.add_exclusive_publication("aeron:ipc", 2301)
        reports = a.add_subscription("aeron:ipc", 2302)
        wait_until(lambda: pub.is_connected, what="order stream connected")
        codec = OrderCodec()
        orders = [NewOrder("F1", "ACC", "AF", Side.BUY, OrdType.LIMIT, TimeInForce.DAY, 10 * S, None, 5, 0),
                  NewOrder("F2", "ACC", "AF", Side.SELL, OrdType.LIMIT, TimeInForce.DAY, 10 * S, None, 2, 0),
                  NewOrder("M1", "ACC", "AF", Side.BUY, OrdType.MARKET, TimeInForce.DAY, None, None, 1, 0),  # no price: rejected
                  CancelOrder("C1", "NOPE", "AF", Side.BUY, 0)]  # no such order: cancel rejected
        for o in orders:
            view, n = codec.encode(o)
            wait_until(lambda: pub.offer(bytes(view[:n])) > 0, what="offer")
        pub.offer(b"\x00" * 12)  # not an order: counted as bad
        want = {"exchange-sim orders: outcome=received": 4, "exchange-sim orders: outcome=bad": 1,
                "exchange-sim orders: outcome=accepted": 2, "exchange-sim orders: outcome=filled": 2,
                "exchange-sim orders: outcome=rejected": 1, "exchange-sim orders: outcome=cancel_rejected": 1,
                "exchange-sim orders: outcome=canceled": 0, "exchange-sim orders: outcome=replaced": 0}
        got = wait_until(lambda: (v := values(stat(driver.dir), "exchange-sim ")) == want and v, what="counters")
        assert got == want
        prom = stat(driver.dir, "--prometheus")
        assert 'tickline_exchange_sim_orders{id="' in prom
        assert [ln for ln in prom.splitlines() if 'outcome="filled"' in ln][0].endswith(" 2")
        assert 'component="exchange-sim"' in prom
        sim.send_signal(signal.SIGTERM)
        assert sim.wait(timeout=15) == 0
        # closed when the component stops
        wait_until(lambda: values(stat(driver.dir), "exchange-sim ") == {}, what="counters gone")
        reports.close()
        a.close()
    finally:
        if sim.poll() is None:
            os.kill(sim.pid, signal.SIGKILL)
        sim.wait(timeout=10)
        sim.stderr.close()
