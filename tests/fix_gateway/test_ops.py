"""Operating the gateway (issue 18): its log lines, the per-session message log, the status
file (on by default), ``tickline fix-store dump`` and the refused order's real cause, through
the real daemon and the real commands."""

import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from tickline.fix_gateway.auth import hash_password
from tickline.fix_gateway.codec import encode
from tickline.fix_gateway.io import FixInitiator, InitiatorConfig
from tickline.fix_gateway.session import (ApplicationMessage, LoggedOn, LoggedOut, RejectReceived, SessionConfig,
                                          utc_timestamp)
from tickline.transport import free_ports

pytestmark = pytest.mark.multiprocess

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z (DEBUG|INFO|WARNING|ERROR) tickline\.fix_gateway \S")


def tickline(*args):
    return [sys.executable, "-P", "-m", "tickline", *args]


def topology(tmp_path, port, extra=""):
    p = tmp_path / "topology.toml"
    p.write_text(f"""
[fix_gateway]
store_dir = "{tmp_path / 'store'}"
idle = "sleeping"
{extra}
[fix_gateway.acceptor]
host = "127.0.0.1"
port = {port}
max_failed_logons = 100

[[fix_gateway.sessions]]
role = "acceptor"
sender_comp_id = "GW"
target_comp_id = "C1"
begin_string = "FIX.4.4"
transport_dictionary = "FIX44"
username = "c1"
password_hash = "{hash_password('right pw')}"
message_log = true
""")
    return p


def refused(port, sender, user, pw):
    """A Logon on a raw connection; returns what came back before the gateway closed it."""
    body = [(98, 0), (108, 30), (553, user), (554, pw)]
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(encode("FIX.4.4", [(35, "A"), (49, sender), (56, "GW"), (34, 1), (52, utc_timestamp(time.time()))] + body))
    got = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        got += d
    s.close()
    return got


def status(cfg):
    r = subprocess.run(tickline("fix-gateway", "--config", str(cfg), "--status"), capture_output=True, text=True,
                       timeout=60)
    return r.stdout


def test_gateway_logs_every_session_event_keeps_a_message_log_and_a_default_status_file(tmp_path, daemon, loop):
    port = free_ports(kind="tcp")[0]
    cfg = topology(tmp_path, port)
    log_file = tmp_path / "gw.log"
    proc = daemon(cfg, "--log-file", str(log_file), env={"TICKLINE_LOG_LEVEL": "info"})

    # refused logons: an unknown CompID, then bad credentials; both logged with the source address
    refused(port, "NOBODY", "c1", "right pw")
    assert b"35=5" in refused(port, "C1", "c1", "wrong pw")

    events = []
    ini = FixInitiator(InitiatorConfig(reconnect_min_s=0.05), on_event=lambda sid, e: events.append(e))
    sid = "FIX.4.4:C1->GW"
    ini.add_session(SessionConfig(sender_comp_id="C1", target_comp_id="GW", role="initiator", username="c1",
                                  password="right pw"), port=port)
    loop.add(ini)
    loop.run_until(lambda: any(isinstance(e, LoggedOn) for e in events), timeout=15, what="logon")
    ini.submit(sid, "D", [(11, "O1"), (55, "XYZ"), (54, "1"), (60, utc_timestamp(time.time())), (38, "1"),
                          (40, "2"), (44, "5")])
    ini.submit(sid, "D", [(11, "O2"), (54, "1"), (60, utc_timestamp(time.time())), (38, "1"), (40, "2")])  # no Symbol
    loop.run_until(lambda: any(isinstance(e, ApplicationMessage) for e in events)
                   and any(isinstance(e, RejectReceived) for e in events), timeout=15, what="ack and reject")
    # the status file is on by default (in the store directory) and follows the session
    assert (tmp_path / "store" / "status.json").exists()
    loop.run_until(lambda: " active " in status(cfg), timeout=10, what="status active")
    ini.invoke_later(lambda: ini.session(sid).logout(time.time(), "done for today"))
    ini.enabled[sid] = False
    loop.run_until(lambda: any(isinstance(e, LoggedOut) for e in events), timeout=10, what="logout")
    loop.run_until(lambda: " active " not in status(cfg), timeout=10, what="status after logout")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0

    lines = log_file.read_text().splitlines()
    assert lines and all(LINE.match(ln) for ln in lines), lines
    text = "\n".join(lines)
    assert re.search(r"WARNING tickline\.fix_gateway logon failed: fault=remote peer=127\.0\.0\.1:\d+ "
                     r"session=FIX\.4\.4:GW->NOBODY reason=\"unknown_session session=FIX\.4\.4:GW->NOBODY\"", text), text
    assert re.search(r"WARNING tickline\.fix_gateway logon failed: fault=remote peer=127\.0\.0\.1:\d+ "
                     r"session=FIX\.4\.4:GW->C1 reason=\"bad_credentials username='c1'\"", text), text
    assert re.search(r"INFO tickline\.fix_gateway logon session=FIX\.4\.4:GW->C1 peer=127\.0\.0\.1:\d+ "
                     r"heartbeat_s=30 reset_seq_num=False next_out=\d+ next_in=\d+", text), text
    assert re.search(r"WARNING tickline\.fix_gateway reject_sent session=FIX\.4\.4:GW->C1 fault=remote kind=session "
                     r"msg_type=D ref_seq_num=3 reason=1 tag=55 text=\"Required tag missing tag=55\"", text), text
    assert re.search(r"INFO tickline\.fix_gateway logout session=FIX\.4\.4:GW->C1 peer=127\.0\.0\.1:\d+ "
                     r"initiated_by=remote reason=\"done for today\"", text), text
    assert "INFO tickline.fix_gateway stopped" in text

    # the message log: every message in and out, SOH as |
    ml = (tmp_path / "store" / "FIX.4.4_GW-_C1.messages.log").read_text().splitlines()
    stamp = r"\d{8}-\d\d:\d\d:\d\d\.\d{6}"
    assert any(re.match(stamp + r" in  8=FIX\.4\.4\|9=\d+\|35=A\|.*\|553=c1\|", m) for m in ml), ml
    assert any(re.match(stamp + r" out 8=FIX\.4\.4\|9=\d+\|35=A\|", m) for m in ml), ml
    assert any(re.match(stamp + r" in  .*\|35=D\|.*\|11=O1\|.*\|10=\d{3}\|$", m) for m in ml), ml
    assert any(re.match(stamp + r" out .*\|35=8\|.*\|11=O1\|", m) for m in ml), ml
    assert any(re.match(stamp + r" in  .*\|35=5\|.*58=done for today\|", m) for m in ml), ml

    # fix-store dump prints the session's store, record by record
    r = subprocess.run(tickline("fix-store", "dump", str(tmp_path / "store" / "FIX.4.4_GW-_C1.log")),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert out[0].startswith("offset=0 reset creation_time="), out
    assert any(re.match(r"offset=\d+ message seq=1 8=FIX\.4\.4\|9=\d+\|35=A\|", o) for o in out), out
    assert any(re.match(r"offset=\d+ seqnums next_sender_seq=\d+ next_target_seq=\d+$", o) for o in out), out
    assert re.match(r"end valid_bytes=\d+ trailing_bytes=0$", out[-1]), out[-1]
    assert "554=" not in r.stdout  # the password is never stored


def test_fix_store_dump_reports_a_torn_tail_and_garbage_without_changing_the_file(tmp_path):
    from tickline.fix_gateway.store import FileStore

    path = tmp_path / "s.log"
    st = FileStore(path, "none", 1.0)
    st.save(1, b"8=FIX.4.4\x019=5\x0135=0\x0110=000\x01")
    st.set_next_sender_seq(2)
    st.close()
    good = path.read_bytes()
    path.write_bytes(good + b"\xff\xff\xff\x7f" + os.urandom(40))  # a record "of 2 GiB": hostile length
    r = subprocess.run(tickline("fix-store", "dump", str(path)), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "message seq=1 8=FIX.4.4|9=5|35=0|10=000|" in r.stdout
    assert r.stdout.splitlines()[-1] == f"end valid_bytes={len(good)} trailing_bytes=44 stopped=bad_length length=2147483647"
    assert path.read_bytes()[:len(good)] == good and path.stat().st_size == len(good) + 44  # untouched
    r = subprocess.run(tickline("fix-store", "dump", str(tmp_path / "missing.log")), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1 and "cannot read: fault=user path=" in r.stderr


def test_log_level_and_file_options_are_checked(tmp_path):
    cfg = topology(tmp_path, 1)
    r = subprocess.run(tickline("fix-gateway", "--config", str(cfg)), capture_output=True, text=True, timeout=60,
                       env={**os.environ, "TICKLINE_LOG_LEVEL": "chatty"})
    assert r.returncode == 2 and "bad log level: fault=user key=TICKLINE_LOG_LEVEL value='chatty'" in r.stderr, r.stderr
    r = subprocess.run(tickline("fix-gateway", "--config", str(cfg), "--log-file", str(tmp_path / "no" / "dir.log")),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "cannot open log file: fault=user key=--log-file" in r.stderr, r.stderr


def test_log_values_from_a_peer_cannot_forge_fields_or_lines():
    from tickline.logs import kv, quote

    assert quote("plain") == "plain"
    assert quote('x reason=ok\nFAKE') == '"x reason=ok\\nFAKE"'
    assert quote("\x1b[31m") == '"\\x1b[31m"'
    assert kv(a="", b="q\"") == 'a="" b="q\\""'


def admin(cfg, *args, password="adm pw", env=None):
    e = {**os.environ, **(env or {})}
    e.pop("TICKLINE_FIX_ADMIN_PASSWORD", None)
    if password is not None:
        e["TICKLINE_FIX_ADMIN_PASSWORD"] = password
    return subprocess.run(tickline("fix-gateway", "admin", "--config", str(cfg), *args), capture_output=True,
                          text=True, timeout=60, env=e)


def test_admin_lists_disconnects_and_resets_a_logged_out_session_with_the_admin_credential(tmp_path, daemon, loop):
    port = free_ports(kind="tcp")[0]
    cfg = topology(tmp_path, port, f'admin_password_hash = "{hash_password("adm pw")}"')
    proc = daemon(cfg)
    sock = tmp_path / "store" / "admin.sock"
    assert sock.is_socket() and (sock.stat().st_mode & 0o777) == 0o600

    events = []
    sid = "FIX.4.4:C1->GW"
    ini = FixInitiator(InitiatorConfig(reconnect_min_s=60, reconnect_max_s=60), on_event=lambda s, e: events.append(e))
    ini.add_session(SessionConfig(sender_comp_id="C1", target_comp_id="GW", role="initiator", username="c1",
                                  password="right pw"), port=port)
    loop.add(ini)
    loop.run_until(lambda: any(isinstance(e, LoggedOn) for e in events), timeout=15, what="logon")

    r = admin(cfg, "list")
    assert r.returncode == 0, r.stderr
    row = r.stdout.splitlines()[1].split()
    assert row[:5] == ["FIX.4.4:GW->C1", "acceptor", "active", "2", "2"] and row[5].startswith("127.0.0.1:"), r.stdout

    r = admin(cfg, "list", password="not it")
    assert r.returncode == 1 and "refused: fault=user reason=bad_credentials" in r.stderr, r.stderr
    r = admin(cfg, "list", password=None)
    assert r.returncode == 2 and "no admin password: fault=user" in r.stderr, r.stderr

    r = admin(cfg, "reset-seq", "FIX.4.4:GW->C1")  # not while it is logged on
    assert r.returncode == 1 and "session is connected: fault=user session=FIX.4.4:GW->C1 state=active" in r.stderr

    r = admin(cfg, "disconnect", "FIX.4.4:GW->C1", "--reason", "maintenance")
    assert r.returncode == 0 and r.stdout.startswith("ok session=FIX.4.4:GW->C1 state=logout_sent"), r.stdout + r.stderr
    loop.run_until(lambda: any(isinstance(e, LoggedOut) for e in events), timeout=10, what="logout by the operator")
    lo = [e for e in events if isinstance(e, LoggedOut)][0]
    assert lo.initiated_by == "remote" and lo.text == "maintenance"
    ini.enabled[sid] = False
    loop.run_until(lambda: "disconnected" in admin(cfg, "list").stdout, timeout=10, what="disconnected")

    r = admin(cfg, "set-next-seq", "FIX.4.4:GW->C1", "--sender", "50", "--target", "40")
    assert r.returncode == 0 and "next_sender_seq=50 next_target_seq=40" in r.stdout, r.stdout + r.stderr
    assert admin(cfg, "list").stdout.splitlines()[1].split()[3:5] == ["50", "40"]
    r = admin(cfg, "set-next-seq", "FIX.4.4:GW->C1", "--sender", "0")
    assert r.returncode == 1 and "bad sequence number: fault=user key=sender value=0" in r.stderr, r.stderr
    r = admin(cfg, "reset-seq", "FIX.4.4:GW->C1")
    assert r.returncode == 0 and "next_sender_seq=1 next_target_seq=1" in r.stdout, r.stdout + r.stderr
    r = admin(cfg, "disconnect", "FIX.4.4:GW->NOBODY")
    assert r.returncode == 1 and "unknown session: fault=user session=FIX.4.4:GW->NOBODY" in r.stderr

    # hostile requests on the socket itself: not JSON, too long; the gateway answers and carries on
    for junk in (b"\xff\x00garbage\n", b"{" * 10_000):
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(sock))
        try:
            s.sendall(junk)
        except OSError:
            pass
        answer = s.recv(4096)
        s.close()
        assert b'"ok": false' in answer and b"fault=user" in answer, answer
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    err = proc.stderr.read()
    assert "admin disconnect session=FIX.4.4:GW->C1 state=logout_sent reason=maintenance" in err, err
    assert "admin set_next_seq session=FIX.4.4:GW->C1 next_out=50 next_in=40" in err
    assert "admin reset_seq session=FIX.4.4:GW->C1 next_out=1 next_in=1" in err
    assert "admin refused: fault=user reason=bad_credentials" in err
    assert not sock.exists()  # removed at a clean stop


def test_gateway_logs_gaps_sequence_resets_and_resends(tmp_path, daemon, loop):
    from tickline.fix_gateway.store import MemoryStore

    port = free_ports(kind="tcp")[0]
    cfg = topology(tmp_path, port)
    proc = daemon(cfg, "--log-level", "INFO")
    events = []
    sid = "FIX.4.4:C1->GW"
    store = MemoryStore()
    store.set_next_sender_seq(10)  # the client says 10 where the gateway expects 1: a gap, filled by a SequenceReset (to 11: past the Logon)
    ini = FixInitiator(InitiatorConfig(reconnect_min_s=0.05, reconnect_max_s=0.1), on_event=lambda s, e: events.append(e))
    ini.add_session(SessionConfig(sender_comp_id="C1", target_comp_id="GW", role="initiator", username="c1",
                                  password="right pw"), store, port=port)
    loop.add(ini)
    loop.run_until(lambda: any(isinstance(e, LoggedOn) for e in events), timeout=15, what="logon")
    loop.run_for(200)
    # a new connection from a client that forgot what it received: it asks the gateway to resend
    ini.invoke_later(lambda: ini.session(sid).logout(time.time(), "again"))
    loop.run_until(lambda: any(isinstance(e, LoggedOut) for e in events), timeout=10, what="logout")
    ini.invoke_later(lambda: store.set_next_target_seq(1))
    loop.run_until(lambda: len([e for e in events if isinstance(e, LoggedOn)]) == 2, timeout=15, what="second logon")
    loop.run_for(200)
    ini.enabled[sid] = False
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    err = proc.stderr.read()
    assert re.search(r"INFO tickline\.fix_gateway resend_requested session=FIX\.4\.4:GW->C1 expected=1 received=10", err), err
    assert re.search(r"INFO tickline\.fix_gateway sequence_reset session=FIX\.4\.4:GW->C1 new_seq_num=11 gap_fill=True",
                     err), err
    assert re.search(r"INFO tickline\.fix_gateway resend session=FIX\.4\.4:GW->C1 begin=1 end=\d+ resent=\d+", err), err
