"""Real processes on one host: FIX client -> gateway acceptor -> Aeron -> exchange-sim
process -> Aeron -> gateway -> FIX execution reports, through an aeronmd the test starts.
The exchange simulator hangs, is killed and restarted: an order that went onto the stream
while it hung is answered once by the restarted one; an order sent once the gateway knows it is
down is refused on FIX (BusinessMessageReject 380=4) and never executed."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tickline.transport import free_ports
from tickline.fix_gateway.session import ApplicationMessage, utc_timestamp

from fix_helpers import acceptor_toml, logged_on_clients

pytestmark = pytest.mark.multiprocess


def free_port():
    return free_ports(kind="tcp")[0]


def cli(*args):
    # exchange-sim is the application package tickline.venue's command since it moved there
    module = "tickline.venue.cli" if args and args[0] == "exchange-sim" else "tickline.fix_gateway.cli"
    return [sys.executable, "-P", "-m", module, *args]


@pytest.fixture
def driver():
    from tickline.transport import MediaDriver

    # a short client liveness timeout: a dead exchange-sim is noticed in about two seconds
    d = MediaDriver.launch(options={"aeron.client.liveness.timeout": "2s", "aeron.timer.interval": "100ms"},
                           stdout=subprocess.DEVNULL)
    yield d
    d.close()  # SIGTERM, then SIGKILL by PID; removes its /dev/shm directory
    shutil.rmtree(d.dir, ignore_errors=True)
    assert not os.path.exists(d.dir)


@pytest.fixture
def procs():
    started = []

    def start(args, banner):
        p = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        started.append(p)
        line = p.stderr.readline()
        assert banner in line, line
        return p

    yield start
    for p in started:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=10)
        p.stderr.close()


def topology(tmp_path, port, aeron_dir):
    p = tmp_path / "topology.toml"
    p.write_text(f"""
[fix_gateway]
store_dir = "{tmp_path / 'store'}"
status_file = "{tmp_path / 'status.json'}"
status_interval_s = 0.05
idle = "sleeping"

[fix_gateway.aeron]                # a driver dir given: bridge = "aeron" by default
dir = "{aeron_dir}"
order_stream_id = 2001
report_stream_id = 2002

{acceptor_toml(port)}
[exchange_sim]
dir = "{aeron_dir}"
order_stream_id = 2001
report_stream_id = 2002
idle = "sleeping"
default_mode = "match"
modes = {{ AF = "auto-fill", RS = "rest" }}
""")
    return p


def test_fix_orders_through_aeron_and_exchange_sim_killed_and_restarted(tmp_path, driver, procs, loop):
    port = free_port()
    cfg = topology(tmp_path, port, driver.dir)
    sim_banner = " INFO tickline.venue.exchange_sim running orders=aeron:ipc#2001 reports=aeron:ipc#2002 "
    sim = procs(cli("exchange-sim", "--config", str(cfg)), sim_banner)
    gw = procs(cli("fix-gateway", "--config", str(cfg)), "bridge=aeron")

    def bridge():
        try:
            return json.loads((tmp_path / "status.json").read_text())["bridge"]
        except (OSError, ValueError, KeyError):
            return {}

    ini, events = logged_on_clients(loop, port, timeout=20)
    loop.run_until(lambda: bridge().get("connected") is True, timeout=10, what="gateway's order stream connected")
    status = subprocess.run(cli("fix-gateway", "--config", str(cfg), "--status"), capture_output=True, text=True,
                            timeout=30).stdout
    assert "bridge kind=aeron connected=True orders_sent=0 orders_refused={} reports_received=0" in status, status
    c1, c2 = "FIX.4.4:C1->GW", "FIX.4.2:C2->GW"
    app = lambda sid: [e for e in events[sid] if isinstance(e, ApplicationMessage)]
    now = lambda: utc_timestamp(time.time())

    def nos(sid, cl, sym, side, qty, px):
        ini.submit(sid, "D", [(11, cl), (21, "1"), (55, sym), (54, side), (60, now()), (38, str(qty)), (40, "2"),
                              (44, px)])

    # 1. auto-fill: every order acked and filled exactly once
    for i in range(20):
        nos(c1, f"A{i}", "AF", "1", 1 + i, "10.5")
    # 2. matching across sessions; 3. a resting order cancelled
    nos(c1, "S1", "XYZ", "2", 10, "5")
    nos(c2, "B1", "XYZ", "1", 4, "6")
    nos(c1, "R1", "RS", "1", 3, "1.25")
    loop.run_until(lambda: len(app(c1)) >= 43 and len(app(c2)) >= 2, timeout=20, what="acks and fills")
    ini.submit(c1, "F", [(11, "R2"), (41, "R1"), (55, "RS"), (54, "1"), (60, now())])
    loop.run_until(lambda: any(m.message.get(11) == "R2" for m in app(c1)), timeout=10, what="cancel")
    r1 = [(e.message[11], e.message[150], e.message[39]) for e in app(c1) if not e.poss_dup]
    assert sorted(x for x in r1 if x[0].startswith("A")) == sorted(
        [(f"A{i}", "0", "0") for i in range(20)] + [(f"A{i}", "F", "2") for i in range(20)])
    fills = {e.message[11]: e.message for e in app(c1) if e.message.get(150) == "F"}
    assert (fills["A7"][32], fills["A7"][31], fills["A7"][151], fills["A7"][14]) == ("8", "10.5", "0", "8")
    assert ("S1", "F", "1") in r1 and ("R2", "4", "4") in r1
    b1 = [e.message for e in app(c2) if e.message.get(32)][0]
    assert (b1[150], b1[20], b1[39], b1[32], b1[31]) == ("2", "0", "2", "4", "5")  # 4.2 fill at the resting price
    cancel = [e.message for e in app(c1) if e.message.get(11) == "R2"][0]
    assert cancel[41] == "R1"

    # 4. the exchange simulator hangs (SIGSTOP): an order goes onto the stream, unread, and stays there
    os.kill(sim.pid, signal.SIGSTOP)
    nos(c1, "O1", "AF", "1", 1, "1")
    loop.run_until(lambda: bridge().get("orders_sent") == 25, timeout=10, what="order on the stream")
    loop.run_until(lambda: bridge().get("connected") is False, timeout=15, what="gateway sees the venue gone")
    assert not [e for e in app(c1) if "O1" in (e.message.get(11), e.message.get(379))]
    # 5. it dies: an order now is refused at once on FIX and never reaches a venue
    os.kill(sim.pid, signal.SIGKILL)
    sim.wait(timeout=10)
    seen = len(app(c1))
    nos(c1, "D1", "AF", "1", 1, "1")
    loop.run_until(lambda: len(app(c1)) > seen, timeout=10, what="refusal")
    rej = app(c1)[-1].message
    assert (rej.msg_type, rej[372], rej[379], rej[380]) == ("j", "D", "D1", "4")
    # the real cause, not "back pressured, retry" (issue 18)
    assert rej[58] == "order entry not connected: no venue subscribed (NOT_CONNECTED)" and int(rej[45]) > 0
    loop.run_until(lambda: bridge().get("orders_refused") == {"NOT_CONNECTED": 1}, timeout=5, what="refusal counted")

    # 6. restarted (empty books): it joins the order stream where the last one stopped reading, so O1
    #    is answered now, once; new orders trade; the refused D1 never reaches it
    sim2 = procs(cli("exchange-sim", "--config", str(cfg)), sim_banner)
    loop.run_until(lambda: bridge().get("connected") is True, timeout=15, what="reconnected")
    for i in range(5):
        nos(c1, f"N{i}", "AF", "2", 2, "3")
    loop.run_until(lambda: sum(1 for e in app(c1) if e.message.get(11, "")[:1] in "NO") >= 12, timeout=20,
                   what="orders after restart")
    sim2.send_signal(signal.SIGTERM)
    assert sim2.wait(timeout=15) == 0
    tail = sim2.stderr.read()
    assert " INFO tickline.venue.exchange_sim stopped orders=6 reports=12 bad=0 unsent=0 " in tail, tail
    reports = [(e.message[11], e.message[150]) for e in app(c1) if e.message.msg_type == "8" and not e.poss_dup]
    assert sorted(r for r in reports if r[0][0] in "NDO") == sorted(
        [(f"N{i}", t) for i in range(5) for t in ("0", "F")] + [("O1", "0"), ("O1", "F")])
    assert [e.message.msg_type for e in app(c1) if "D1" in (e.message.get(11), e.message.get(379))] == ["j"]
    gw.send_signal(signal.SIGTERM)
    ini.enabled[c1] = ini.enabled[c2] = False
    assert gw.wait(timeout=15) == 0
    st = bridge()
    # 20 auto-fill, S1, B1, R1, the cancel, O1, 5 after the restart; D1 never sent
    assert st["orders_sent"] == 20 + 3 + 1 + 1 + 5
    assert st["rejects"] == 1  # D1
    # 40 auto-fill; S1 ack + partial, B1 ack + fill; R1 ack; cancelled; O1 and 5 more after the restart
    assert st["reports_received"] == 40 + 4 + 1 + 1 + 12
    assert st["reports_bad"] == 0


def test_exchange_sim_daemon_refuses_bad_config_and_a_missing_driver(tmp_path):
    p = tmp_path / "x.toml"
    p.write_text('[exchange_sim]\nmodes = { AF = "fill" }\n')
    out = subprocess.run(cli("exchange-sim", "--config", str(p)), capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "tickline exchange-sim: bad venue mode: fault=config key=exchange_sim.modes symbol=AF" in out.stderr
    missing = tmp_path / "no-driver-here"
    p.write_text(f'[exchange_sim]\ndir = "{missing}"\ndriver_timeout_s = 0.5\n')
    out = subprocess.run(cli("exchange-sim", "--config", str(p)), capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and str(missing) in out.stderr, out.stderr
    assert "running" not in out.stderr
