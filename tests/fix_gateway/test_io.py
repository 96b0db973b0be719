"""Acceptor and initiator on loopback, driven by AgentInvoker; bad input on raw sockets."""

import time

import pytest

from tickline.fix_gateway.codec import Framer, encode, parse
from tickline.fix_gateway.io import AcceptorConfig, FixAcceptor, FixInitiator, InitiatorConfig
from tickline.fix_gateway.session import (
    ApplicationMessage, Disconnect, LoggedOn, LoggedOut, SessionConfig, State, utc_timestamp,
)
from tickline.fix_gateway.store import FileStore


class Recorder:
    def __init__(self):
        self.events = []
        self.unknown = []

    def __call__(self, sid, ev):
        self.events.append((sid, ev))

    def of(self, typ, sid=None):
        return [ev for s, ev in self.events if isinstance(ev, typ) and (sid is None or s == sid)]


def acc_cfg(target="CLI", **kw):
    return SessionConfig(sender_comp_id="GW", target_comp_id=target, role="acceptor", **kw)


def ini_cfg(sender="CLI", **kw):
    kw.setdefault("heartbeat_interval_s", 30)
    return SessionConfig(sender_comp_id=sender, target_comp_id="GW", role="initiator", **kw)


@pytest.fixture
def acceptor(loop):
    rec = Recorder()
    a = FixAcceptor(AcceptorConfig(port=0, max_message_size=4096, pending_timeout_s=2), on_event=rec,
                    on_unknown=rec.unknown.append)
    a.rec = rec
    return a


def test_initiator_and_acceptor_exchange_and_logout(loop, acceptor):
    acceptor.add_session(acc_cfg())
    loop.add(acceptor)
    irec = Recorder()
    ini = FixInitiator(InitiatorConfig(reconnect_min_s=0.05), on_event=irec)
    ini.add_session(ini_cfg(), port=acceptor.port)
    loop.add(ini)
    loop.run_until(lambda: irec.of(LoggedOn) and acceptor.rec.of(LoggedOn), what="logon")
    sid_i, sid_a = "FIX.4.4:CLI->GW", "FIX.4.4:GW->CLI"
    ini.submit(sid_i, "D", [(11, "O1"), (55, "IBM")])
    loop.run_until(lambda: acceptor.rec.of(ApplicationMessage), what="order at acceptor")
    assert acceptor.rec.of(ApplicationMessage)[0].message[11] == "O1"
    acceptor.submit(sid_a, "8", [(37, "X1"), (11, "O1")])
    loop.run_until(lambda: irec.of(ApplicationMessage), what="report at initiator")
    assert irec.of(ApplicationMessage)[0].message[37] == "X1"
    ini.set_enabled(sid_i, False)
    loop.run_until(lambda: irec.of(Disconnect) and acceptor.rec.of(Disconnect), what="logout")
    assert irec.of(LoggedOut)[0].initiated_by == "local"
    assert acceptor.rec.of(LoggedOut)[0].initiated_by == "remote"
    assert irec.of(Disconnect)[0] == Disconnect("logout_complete", "none")


def test_many_sessions_on_one_port_and_unknown_comp_id_refused(loop, acceptor, raw_clients):
    acceptor.add_session(acc_cfg("A"))
    acceptor.add_session(acc_cfg("B"))
    loop.add(acceptor)
    irec = Recorder()
    ini = FixInitiator(on_event=irec)
    ini.add_session(ini_cfg("A"), port=acceptor.port)
    ini.add_session(ini_cfg("B"), port=acceptor.port)
    loop.add(ini)
    loop.run_until(lambda: len(acceptor.rec.of(LoggedOn)) == 2, what="two logons")
    assert {s for s, ev in acceptor.rec.events if isinstance(ev, LoggedOn)} == {"FIX.4.4:GW->A", "FIX.4.4:GW->B"}
    c = raw_clients(acceptor.port)
    c.send(encode("FIX.4.4", [(35, "A"), (49, "Z"), (56, "GW"), (34, 1), (52, utc_timestamp(time.time())),
                              (98, 0), (108, 30)]))
    loop.run_until(lambda: not c.poll(), what="unknown session closed")
    assert c.buf == b""
    assert acceptor.rec.unknown[0].reason == "unknown_session session=FIX.4.4:GW->Z"
    # a second connection for a session that is already logged on is refused too
    c2 = raw_clients(acceptor.port)
    c2.send(encode("FIX.4.4", [(35, "A"), (49, "A"), (56, "GW"), (34, 1), (52, utc_timestamp(time.time())),
                               (98, 0), (108, 30)]))
    loop.run_until(lambda: not c2.poll(), what="duplicate connection closed")
    assert acceptor.rec.unknown[1].reason == "session_already_connected session=FIX.4.4:GW->A"
    assert acceptor.session("FIX.4.4:GW->A").state == State.ACTIVE


def raw_logon(c, loop, seq=1):
    c.send(encode("FIX.4.4", [(35, "A"), (49, "CLI"), (56, "GW"), (34, seq), (52, utc_timestamp(time.time())),
                              (98, 0), (108, 30)]))
    loop.run_until(lambda: c.poll() and b"\x0135=A\x01" in c.buf, what="logon reply")
    c.buf = b""


def raw_msg(mt, seq, body=(), **hdr):
    return encode("FIX.4.4", [(35, mt), (49, "CLI"), (56, "GW"), (34, seq), (52, utc_timestamp(time.time()))] + list(body))


def messages(buf):
    f = Framer()
    f.feed(buf)
    return [parse(fr.data) for fr in f]


def test_raw_garbled_ignored_then_session_continues(loop, acceptor, raw_clients, tmp_path):
    store = FileStore(tmp_path / "gw.log", "always")
    acceptor.add_session(acc_cfg(), store)
    loop.add(acceptor)
    c = raw_clients(acceptor.port)
    raw_logon(c, loop)
    bad = bytearray(raw_msg("D", 2, [(11, "bad")]))
    bad[-3] = ord("0") if bad[-3] != ord("0") else ord("1")
    c.send(bytes(bad) + b"\x00\xffnoise" + raw_msg("1", 2, [(112, "T1")]))
    loop.run_until(lambda: c.poll() and b"112=T1" in c.buf, what="heartbeat for test request")
    [hb] = messages(c.buf)
    assert (hb.msg_type, hb[112], hb[34]) == ("0", "T1", "2")
    assert store.next_target_seq == 3
    assert not acceptor.rec.of(ApplicationMessage)


def test_raw_oversized_gets_logout_and_close_store_intact(loop, acceptor, raw_clients, tmp_path):
    store = FileStore(tmp_path / "gw.log", "always")
    acceptor.add_session(acc_cfg(max_message_size=4096), store)
    loop.add(acceptor)
    c = raw_clients(acceptor.port)
    raw_logon(c, loop)
    acceptor.submit("FIX.4.4:GW->CLI", "8", [(37, "X1")])
    loop.run_until(lambda: c.poll() and b"37=X1" in c.buf, what="report")
    big = raw_msg("D", 2, [(58, "x" * 5000)])
    c.send(big)
    loop.run_until(lambda: not c.poll(), what="close after oversized")
    msgs = messages(c.buf)
    assert msgs[-1].msg_type == "5" and msgs[-1][58] == f"Message too large: size={len(big)} max=4096"
    # nothing stored was lost: the report is still there for a resend after restart
    store.close()
    st2 = FileStore(tmp_path / "gw.log")
    assert [parse(r)[37] for s, r in st2.get(2, 2)] == ["X1"] and st2.next_sender_seq == 4


def test_raw_truncated_message_then_disconnect(loop, acceptor, raw_clients):
    acceptor.add_session(acc_cfg())
    loop.add(acceptor)
    c = raw_clients(acceptor.port)
    raw_logon(c, loop)
    m = raw_msg("D", 2, [(11, "O1")])
    c.send(m[:-5])
    loop.run_for(50)
    assert not acceptor.rec.of(ApplicationMessage)
    c.send(m[-5:])
    loop.run_until(lambda: acceptor.rec.of(ApplicationMessage), what="completed message")
    c.send(raw_msg("D", 3, [(11, "O2")])[:20])
    c.close()
    loop.run_until(lambda: acceptor.rec.of(Disconnect), what="disconnect")
    assert acceptor.rec.of(Disconnect) == [Disconnect("connection_lost", "remote")]
    assert acceptor.session("FIX.4.4:GW->CLI").store.next_target_seq == 3


def test_raw_out_of_sequence(loop, acceptor, raw_clients):
    acceptor.add_session(acc_cfg())
    loop.add(acceptor)
    c = raw_clients(acceptor.port)
    raw_logon(c, loop)
    c.send(raw_msg("D", 5, [(11, "O5")]))
    loop.run_until(lambda: c.poll() and b"\x0135=2\x01" in c.buf, what="resend request")
    [rr] = messages(c.buf)
    assert (rr[7], rr[16]) == ("2", "0")
    c.buf = b""
    c.send(raw_msg("D", 1, [(11, "old")]))
    loop.run_until(lambda: not c.poll(), what="logout for seq too low")
    [lo] = messages(c.buf)
    assert lo.msg_type == "5" and lo[58] == "MsgSeqNum too low, expecting 2 but received 1"


def test_raw_first_message_not_logon_closed(loop, acceptor, raw_clients):
    acceptor.add_session(acc_cfg())
    loop.add(acceptor)
    c = raw_clients(acceptor.port)
    c.send(raw_msg("D", 1, [(11, "O1")]))
    loop.run_until(lambda: not c.poll(), what="close")
    assert c.buf == b"" and acceptor.rec.of(Disconnect) == [Disconnect("first_message_not_logon msg_type=D", "remote")]


def test_initiator_reconnects_with_backoff(loop):
    clock = [1000.0]
    rec = Recorder()
    ini = FixInitiator(InitiatorConfig(reconnect_min_s=0.5, reconnect_max_s=2.0), on_event=rec, clock=lambda: clock[0])
    # a port nobody listens on: one that was free a moment ago
    from tickline.transport import free_ports
    port = free_ports(kind="tcp")[0]
    ini.add_session(ini_cfg(), port=port)
    loop.add(ini)
    e = ini.entries["FIX.4.4:CLI->GW"]
    delays = []
    for _ in range(5):
        n = ini.connect_attempts["FIX.4.4:CLI->GW"]
        loop.run_until(lambda: ini.connect_attempts["FIX.4.4:CLI->GW"] > n and e.sock is None and e.next_attempt > clock[0],
                       what="refused attempt")
        delays.append(e.next_attempt - clock[0])
        clock[0] = e.next_attempt
    assert delays == [0.5, 1.0, 2.0, 2.0, 2.0]


def test_restart_resumes_seqnums_and_resends_pre_restart_messages(loop, tmp_path):
    acc_store = tmp_path / "acc.log"
    rec1 = Recorder()
    a1 = FixAcceptor(AcceptorConfig(port=0), on_event=rec1)
    a1.add_session(acc_cfg(), FileStore(acc_store, "batch"))
    loop.add(a1)
    irec = Recorder()
    ini = FixInitiator(InitiatorConfig(reconnect_min_s=0.05, reconnect_max_s=0.1), on_event=irec)
    ini.add_session(ini_cfg(), FileStore(tmp_path / "ini.log", "batch"), port=a1.port)
    loop.add(ini)
    loop.run_until(lambda: rec1.of(LoggedOn), what="logon 1")
    a1.submit("FIX.4.4:GW->CLI", "8", [(37, "X1")])
    loop.run_until(lambda: irec.of(ApplicationMessage), what="X1")
    # gateway stops; while it is down it "sends" X2 (stored only), then restarts on the same port
    loop.invokers[0].close()
    port = a1.port
    st = FileStore(acc_store, "batch")
    assert st.next_sender_seq == 3
    loop.invokers.pop(0)
    rec2 = Recorder()
    a2 = FixAcceptor(AcceptorConfig(port=port), on_event=rec2)
    s2 = a2.add_session(acc_cfg(), st)
    s2.send("8", [(37, "X2")], time.time())
    loop.add(a2)
    loop.run_until(lambda: len(irec.of(ApplicationMessage)) == 2, timeout=10, what="X2 via resend")
    x2 = irec.of(ApplicationMessage)[1]
    assert x2.message[37] == "X2" and x2.poss_dup and x2.message[34] == "3"
    assert [e.reset_seq_num for e in rec2.of(LoggedOn)] == [False]
    assert st.next_target_seq == ini.session("FIX.4.4:CLI->GW").store.next_sender_seq


def test_acceptor_schedule_refuses_outside_hours_and_resets_daily(loop, raw_clients):
    from tickline.fix_gateway.schedule import SessionSchedule
    from tickline.fix_gateway.store import MemoryStore

    day = 1767225600.0  # 2026-01-01 00:00 UTC
    clock = [day + 7 * 3600]  # 07:00, before the 08:00-17:00 window
    rec = Recorder()
    acc = FixAcceptor(AcceptorConfig(port=0), on_event=rec, clock=lambda: clock[0], on_unknown=rec.unknown.append)
    store = MemoryStore(creation_time=day - 86400)  # yesterday's sequence numbers
    store.next_sender_seq, store.next_target_seq = 40, 30
    acc.add_session(acc_cfg(check_latency=False), store, SessionSchedule("08:00", "17:00", "UTC"))
    loop.add(acc)
    logon = lambda seq: encode("FIX.4.4", [(35, "A"), (49, "CLI"), (56, "GW"), (34, seq), (52, utc_timestamp(clock[0])),
                                           (98, 0), (108, 30)])
    c = raw_clients(acc.port)
    c.send(logon(1))
    loop.run_until(lambda: not c.poll(), what="refused outside the window")
    assert rec.unknown[0].reason == "outside_session_schedule session=FIX.4.4:GW->CLI"
    clock[0] = day + 9 * 3600
    c2 = raw_clients(acc.port)
    c2.send(logon(1))
    loop.run_until(lambda: c2.poll() and b"\x0135=A\x01" in c2.buf, what="logon in the window")
    [reply] = messages(c2.buf)
    assert reply[34] == "1" and store.creation_time == clock[0]  # the daily reset happened first


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    import subprocess

    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return str(cert), str(key)


def test_tls_initiator_and_acceptor(loop, tls_files, raw_clients):
    import ssl

    cert, key = tls_files
    rec = Recorder()
    acc = FixAcceptor(AcceptorConfig(port=0, tls_cert_file=cert, tls_key_file=key, pending_timeout_s=2), on_event=rec,
                      on_unknown=rec.unknown.append)
    acc.add_session(acc_cfg())
    loop.add(acc)
    irec = Recorder()
    ini = FixInitiator(InitiatorConfig(reconnect_min_s=0.05), on_event=irec)
    ini.add_session(ini_cfg(), port=acc.port, tls=ssl.create_default_context(cafile=cert))
    loop.add(ini)
    loop.run_until(lambda: irec.of(LoggedOn) and rec.of(LoggedOn), what="logon over TLS")
    ini.submit("FIX.4.4:CLI->GW", "D", [(11, "T1")])
    loop.run_until(lambda: rec.of(ApplicationMessage), what="order over TLS")
    assert rec.of(ApplicationMessage)[0].message[11] == "T1"
    # a plaintext client can't talk to the TLS port: its handshake fails and the socket is closed
    c = raw_clients(acc.port)
    c.send(raw_msg("A", 1, [(98, 0), (108, 30)]))
    loop.run_until(lambda: not c.poll(), what="plaintext refused")
    assert rec.unknown[-1].reason == "tls_handshake_failed"
    assert acc.session("FIX.4.4:GW->CLI").state == State.ACTIVE


def test_tls_config_needs_both_files():
    from tickline.fix_gateway.config import ConfigError

    with pytest.raises(ConfigError, match="fault=config key=tls_cert_file/tls_key_file"):
        AcceptorConfig(tls_cert_file="c.pem")
