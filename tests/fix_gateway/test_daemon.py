"""The gateway daemon as a real process: topology file, orders through the simulated venue,
status command, SIGTERM logs sessions out cleanly."""

import os
import signal
import subprocess
import sys
import time

import pytest

from tickline.fix_gateway.config import ConfigError
from tickline.fix_gateway.gateway import load_config
from tickline.fix_gateway.io import FixInitiator, InitiatorConfig
from tickline.transport import free_ports
from tickline.fix_gateway.session import ApplicationMessage, LoggedOn, LoggedOut, SessionConfig, utc_timestamp

from fix_helpers import acceptor_toml, logged_on_clients

pytestmark = pytest.mark.multiprocess

SHIM = os.environ.get("PYTHONPATH", "")


def free_port():
    return free_ports(kind="tcp")[0]


def topology(tmp_path, port):
    p = tmp_path / "topology.toml"
    p.write_text(f"""
[fix_gateway]
store_dir = "{tmp_path / 'store'}"
fsync = "batch"
status_file = "{tmp_path / 'status.json'}"
status_interval_s = 0.05
idle = "sleeping"

{acceptor_toml(port)}
[fix_gateway.venue]
default_mode = "match"
modes = {{ AF = "auto-fill" }}
""")
    return p


def cli(*args):
    return [sys.executable, "-P", "-m", "tickline.fix_gateway.cli", *args]


def test_config_errors_name_file_and_key(tmp_path):
    p = tmp_path / "t.toml"
    p.write_text('[fix_gateway]\nfsync = "batch"\nbogus = 1\n[[fix_gateway.sessions]]\nsender_comp_id="A"\ntarget_comp_id="B"\n')
    with pytest.raises(ConfigError, match="unknown key: fault=config key=fix_gateway.bogus"):
        load_config(p)
    p.write_text('[fix_gateway]\n[[fix_gateway.sessions]]\nsender_comp_id="A"\ntarget_comp_id="B"\nheartbeat_interval_s=-5\n')
    with pytest.raises(ConfigError, match="fault=config key=heartbeat_interval_s value=-5"):
        load_config(p)
    p.write_text('[fix_gateway]\n[[fix_gateway.sessions]]\nsender_comp_id="A"\ntarget_comp_id="B"\n')
    with pytest.raises(ConfigError, match="acceptor sessions need"):
        load_config(p)
    p.write_text('[fix_gateway]\nfsync="batch"\n[fix_gateway.acceptor]\n[[fix_gateway.sessions]]\nsender_comp_id="A"\ntarget_comp_id="B"\n')
    assert load_config(p, env={"TICKLINE_FIX_GATEWAY_FSYNC": "always"}).fsync == "batch"  # the file wins over env
    p.write_text('[fix_gateway]\n[fix_gateway.acceptor]\n[[fix_gateway.sessions]]\nsender_comp_id="A"\ntarget_comp_id="B"\n')
    assert load_config(p, env={"TICKLINE_FIX_GATEWAY_FSYNC": "always"}).fsync == "always"


def test_daemon_trades_reports_status_and_logs_out_on_sigterm(tmp_path, daemon, loop):
    port = free_port()
    cfg = topology(tmp_path, port)
    proc = daemon(cfg)
    ini, events = logged_on_clients(loop, port, timeout=15)
    now = utc_timestamp(time.time())
    ini.submit("FIX.4.4:C1->GW", "D", [(11, "S1"), (55, "XYZ"), (54, "2"), (60, now), (38, "10"), (40, "2"), (44, "5")])
    ini.submit("FIX.4.2:C2->GW", "D", [(11, "B1"), (21, "1"), (55, "XYZ"), (54, "1"), (60, now), (38, "4"), (40, "2"),
                                       (44, "6")])
    fills = lambda sid: [e.message for e in events[sid] if isinstance(e, ApplicationMessage) and e.message.get(32)]
    loop.run_until(lambda: fills("FIX.4.4:C1->GW") and fills("FIX.4.2:C2->GW"), timeout=10, what="cross-session match")
    s1, b1 = fills("FIX.4.4:C1->GW")[0], fills("FIX.4.2:C2->GW")[0]
    assert (s1[150], s1[39], s1[32], s1[31], s1[151]) == ("F", "1", "4", "5", "6")   # partial at the resting price
    assert (b1[150], b1[20], b1[39], b1[32], b1[31]) == ("2", "0", "2", "4", "5")    # 4.2 fill, price improvement

    def status():
        out = subprocess.run(cli("fix-gateway", "--config", str(cfg), "--status"), capture_output=True, text=True,
                             timeout=30)
        return out.stdout
    loop.run_until(lambda: "active" in status() and status().count("active") == 2, timeout=10, what="status")
    rows = {line.split()[0]: line.split()[1:] for line in status().splitlines()[1:]}
    assert rows["FIX.4.4:GW->C1"] == ["acceptor", "active", "4", "3"]  # Logon, ack, partial out; Logon, order in

    proc.send_signal(signal.SIGTERM)
    loop.run_until(lambda: all(any(isinstance(e, LoggedOut) for e in ev) for ev in events.values()), timeout=10,
                   what="logout on SIGTERM")
    for ev in events.values():
        lo = [e for e in ev if isinstance(e, LoggedOut)][0]
        assert lo.initiated_by == "remote" and lo.text == "Gateway shutting down"
    ini.enabled["FIX.4.4:C1->GW"] = ini.enabled["FIX.4.2:C2->GW"] = False
    assert proc.wait(timeout=15) == 0


def test_initiator_session_tls_ca_file_must_load(tmp_path):
    from tickline.fix_gateway.gateway import Gateway

    p = tmp_path / "t.toml"
    p.write_text(f'[fix_gateway]\nstore_dir="{tmp_path}/s"\n[[fix_gateway.sessions]]\nrole="initiator"\nsender_comp_id="A"\n'
                 f'target_comp_id="B"\nport=1\ntls_ca_file="{tmp_path}/missing.pem"\n')
    cfg = load_config(p)
    assert cfg.sessions[0].tls_ca_file.endswith("missing.pem")
    with pytest.raises(ConfigError, match="cannot load CA file: fault=config session=FIX.4.4:A->B key=tls_ca_file"):
        Gateway(cfg)


def restartable_gateway(tmp_path, daemon, loop):
    """The daemon with the two sessions of ``topology``, and an initiator that reconnects quickly."""
    port = free_port()
    cfg = topology(tmp_path, port)
    proc = daemon(cfg)
    events = {"FIX.4.4:C1->GW": [], "FIX.4.2:C2->GW": []}
    ini = FixInitiator(InitiatorConfig(reconnect_min_s=0.05, reconnect_max_s=0.2),
                       on_event=lambda sid, e: events[sid].append(e))
    ini.add_session(SessionConfig(sender_comp_id="C1", target_comp_id="GW", role="initiator"), port=port)
    ini.add_session(SessionConfig(sender_comp_id="C2", target_comp_id="GW", role="initiator", begin_string="FIX.4.2"),
                    port=port)
    loop.add(ini)
    return cfg, proc, ini, events


def test_daemon_killed_and_restarted_resumes_sequence_numbers(tmp_path, daemon, loop):
    cfg, proc, ini, events = restartable_gateway(tmp_path, daemon, loop)
    sid = "FIX.4.4:C1->GW"
    logons = lambda: [e for e in events[sid] if isinstance(e, LoggedOn)]
    reports = lambda: [e for e in events[sid] if isinstance(e, ApplicationMessage)]
    loop.run_until(lambda: logons(), timeout=15, what="logon")
    for i in range(5):
        ini.submit(sid, "D", [(11, f"A{i}"), (55, "AF"), (54, "1"), (60, utc_timestamp(time.time())), (38, "1"),
                              (40, "2"), (44, "1")])
    loop.run_until(lambda: len(reports()) == 10, timeout=15, what="5 acks and 5 fills")
    proc.kill()  # no clean shutdown: whatever was synced is all the gateway has
    proc.wait(timeout=10)
    loop.run_for(20)
    proc2 = daemon(cfg)
    loop.run_until(lambda: len(logons()) == 2, timeout=20, what="logon after restart")
    assert logons()[1].reset_seq_num is False
    ini.submit(sid, "D", [(11, "B0"), (55, "AF"), (54, "1"), (60, utc_timestamp(time.time())), (38, "1"), (40, "2"),
                          (44, "1")])
    loop.run_until(lambda: any(e.message.get(11) == "B0" and e.message.get(39) == "2" for e in reports()), timeout=15,
                   what="fill after restart")
    # every order acked and filled exactly once as a new message (resends, if any, are marked PossDup)
    fresh = [(e.message[11], e.message[150]) for e in reports() if not e.poss_dup]
    assert sorted(fresh) == sorted([(f"A{i}", t) for i in range(5) for t in ("0", "F")] + [("B0", "0"), ("B0", "F")])
    st = ini.session(sid).store
    # the gateway's sequence numbers continued: 1 Logon + 10 reports, then Logon, ack, fill
    assert st.next_target_seq == 15 and st.next_sender_seq == 9
    proc2.send_signal(signal.SIGTERM)
    ini.enabled[sid] = ini.enabled["FIX.4.2:C2->GW"] = False
    assert proc2.wait(timeout=15) == 0


def test_restart_with_in_process_venue_keeps_ids_unique_and_does_not_execute_a_possdup_twice(tmp_path, daemon, loop):
    # issue 14 item 7: after a restart the in-process venue began again at OrderID/ExecID 1, and a
    # NewOrderSingle resent with PossDupFlag=Y was filled a second time
    cfg, proc, ini, events = restartable_gateway(tmp_path, daemon, loop)
    sid = "FIX.4.4:C1->GW"
    logons = lambda: [e for e in events[sid] if isinstance(e, LoggedOn)]
    reports = lambda: [e.message for e in events[sid] if isinstance(e, ApplicationMessage)]
    loop.run_until(lambda: logons(), timeout=15, what="logon")
    first_sent = utc_timestamp(time.time())
    order = [(11, "P1"), (55, "AF"), (54, "1"), (60, first_sent), (38, "1"), (40, "2"), (44, "1")]
    ini.submit(sid, "D", order)
    loop.run_until(lambda: len(reports()) == 2, timeout=15, what="ack and fill")
    before = {(m[37], m[17]) for m in reports()}
    proc.kill()
    proc.wait(timeout=10)
    loop.run_for(20)
    proc2 = daemon(cfg)
    loop.run_until(lambda: len(logons()) == 2, timeout=20, what="logon after restart")
    # the same order again as a possible duplicate (a new MsgSeqNum, PossDupFlag=Y), then a new one
    ini.submit(sid, "D", [(43, "Y"), (122, first_sent)] + order)
    ini.submit(sid, "D", [(11, "P2")] + order[1:])
    loop.run_until(lambda: any(m[11] == "P2" and m[39] == "2" for m in reports()), timeout=15, what="P2 filled")
    loop.run_for(50)
    fresh = [m for m in reports() if m.get(43) != "Y"]
    assert [(m[11], m[150]) for m in fresh] == [("P1", "0"), ("P1", "F"), ("P2", "0"), ("P2", "F")]
    after = {(m[37], m[17]) for m in fresh[2:]}
    assert not {o for o, _ in after} & {o for o, _ in before} and not {e for _, e in after} & {e for _, e in before}
    status = lambda: subprocess.run(cli("fix-gateway", "--config", str(cfg), "--status"), capture_output=True,
                                    text=True, timeout=30).stdout
    loop.run_until(lambda: "possdup_ignored=1" in status(), timeout=10, what="the PossDup order counted as ignored")
    proc2.send_signal(signal.SIGTERM)
    ini.enabled[sid] = ini.enabled["FIX.4.2:C2->GW"] = False
    assert proc2.wait(timeout=15) == 0
