"""Logon authentication on real sockets: credentials checked against salted hashes, source
addresses, mutual TLS, the Authenticator hook, a second logon, failed logons logged and
rate-limited, and no password in the message store (issue 14, FIX authentication)."""

import logging
import os
import socket
import ssl
import subprocess
import sys
import time

import pytest

from tickline.fix_gateway.auth import LogonRequest, hash_password, load_credentials, verify_password
from tickline.fix_gateway.codec import encode
from tickline.fix_gateway.config import ConfigError
from tickline.fix_gateway.io import AcceptorConfig, FixAcceptor, FixInitiator, InitiatorConfig
from tickline.fix_gateway.session import Disconnect, LoggedOn, LogonRefused, SessionConfig, State, utc_timestamp
from tickline.fix_gateway.store import FileStore

from test_fix_hardening import Recorder, received  # (this folder is on sys.path: pytest's rootdir imports)

SID = "FIX.4.4:GW->CLI"
HASH = hash_password("s3cret pass")


def acceptor(loop, acfg=None, hook=None, **session):
    rec = Recorder()
    a = FixAcceptor(acfg or AcceptorConfig(port=0, pending_timeout_s=2), on_event=rec, on_unknown=rec.unknown.append)
    a.add_session(SessionConfig(sender_comp_id="GW", target_comp_id="CLI", **session), authenticator=hook)
    a.rec = rec
    loop.add(a)
    return a


def logon_bytes(user=None, pw=None, sender="CLI"):
    body = [(98, 0), (108, 30)] + ([(553, user)] if user is not None else []) + ([(554, pw)] if pw is not None else [])
    return encode("FIX.4.4", [(35, "A"), (49, sender), (56, "GW"), (34, 1), (52, utc_timestamp(time.time()))] + body)


def answer(loop, raw_clients, port, data, source=None):
    """Send ``data`` on a new connection; the messages received until the gateway closes it."""
    if source is not None:  # from another loopback address
        s = socket.socket()
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        s.setblocking(False)
        return _drain(loop, s, data)
    c = raw_clients(port)
    c.send(data)
    loop.run_until(lambda: not c.poll(), what="connection closed")
    return received(c.buf)


def _drain(loop, s, data):
    s.sendall(data)
    buf = bytearray()

    def done():
        try:
            d = s.recv(65536)
        except BlockingIOError:
            return False
        except OSError:
            d = b""
        if not d:
            return True
        buf.extend(d)
        return False
    loop.run_until(done, what="connection closed")
    s.close()
    return received(bytes(buf))


def test_password_hash_checked_and_nothing_stored_for_a_refused_peer(loop, raw_clients, tmp_path):
    a = acceptor(loop, username="client1", password_hash=HASH)
    st = a.session(SID).store
    for user, pw in [("client1", "wrong"), ("other", "s3cret pass"), (None, None), ("client1", None)]:
        [lo] = answer(loop, raw_clients, a.port, logon_bytes(user, pw))
        assert lo.msg_type == "5" and lo[58] == "Logon refused"  # the reason is not told to the peer
    reasons = [ev.reason for ev in a.rec.of(LogonRefused)]
    assert reasons == ["bad_credentials username='client1'", "bad_credentials username='other'",
                       "credentials_missing tags=553,554", "credentials_missing tags=553,554"]
    assert all(ev.peer.host == "127.0.0.1" for ev in a.rec.of(LogonRefused))
    assert (st.next_sender_seq, st.next_target_seq) == (1, 1)
    c = raw_clients(a.port)
    c.send(logon_bytes("client1", "s3cret pass"))
    loop.run_until(lambda: a.rec.of(LoggedOn), what="logon with the right password")
    assert a.session(SID).state == State.ACTIVE


def test_initiator_password_is_sent_but_never_stored(loop, tmp_path):
    a = acceptor(loop, username="client1", password_hash=HASH)
    irec = Recorder()
    ini = FixInitiator(InitiatorConfig(reconnect_min_s=0.05), on_event=irec)
    store = FileStore(tmp_path / "ini.log", "always")
    pw = tmp_path / "pw"
    pw.write_text("s3cret pass\n")
    pw.chmod(0o640)
    with pytest.raises(ConfigError, match="secret file readable by others: fault=config key=password_file"):
        SessionConfig(sender_comp_id="CLI", target_comp_id="GW", role="initiator", password_file=str(pw))
    pw.chmod(0o600)
    ini.add_session(SessionConfig(sender_comp_id="CLI", target_comp_id="GW", role="initiator", username="client1",
                                  password_file=str(pw)), store, port=a.port)
    loop.add(ini)
    loop.run_until(lambda: irec.of(LoggedOn) and a.rec.of(LoggedOn), what="logon with credentials")
    [(seq, raw)] = store.get(1, 1)
    assert b"\x01553=client1\x01" in raw and b"554=" not in raw
    assert b"s3cret" not in (tmp_path / "ini.log").read_bytes()
    assert "s3cret" not in repr(ini.session("FIX.4.4:CLI->GW").config)


def test_credentials_file_must_be_private_and_names_users(loop, raw_clients, tmp_path):
    p = tmp_path / "creds"
    p.write_text(f"# user:hash\nalice:{hash_password('a-pass')}\nbob:{hash_password('b-pass')}\n")
    os.chmod(p, 0o644)
    with pytest.raises(ConfigError, match=f"secret file readable by others: fault=config key=credentials_file path={p} mode=644"):
        FixAcceptor().add_session(SessionConfig(sender_comp_id="GW", target_comp_id="CLI", credentials_file=str(p)))
    os.chmod(p, 0o600)
    assert set(load_credentials(str(p))) == {"alice", "bob"}
    a = acceptor(loop, credentials_file=str(p))
    [lo] = answer(loop, raw_clients, a.port, logon_bytes("alice", "b-pass"))  # bob's password for alice
    assert lo[58] == "Logon refused"
    c = raw_clients(a.port)
    c.send(logon_bytes("bob", "b-pass"))
    loop.run_until(lambda: a.rec.of(LoggedOn), what="bob logged on")


def test_password_hashes_and_config_errors():
    assert verify_password("s3cret pass", HASH) and not verify_password("s3cret pas", HASH)
    assert HASH.startswith("scrypt$16384$8$1$") and hash_password("x") != hash_password("x")  # salted
    import base64
    import hashlib

    salt = b"0123456789abcdef"
    pbk = "pbkdf2_sha256$100000$%s$%s" % (base64.b64encode(salt).decode(),
                                           base64.b64encode(hashlib.pbkdf2_hmac("sha256", b"pw", salt, 100000)).decode())
    assert verify_password("pw", pbk) and not verify_password("pW", pbk)
    with pytest.raises(ConfigError, match="bad password hash: fault=config key=password_hash"):
        SessionConfig(sender_comp_id="GW", target_comp_id="CLI", password_hash="plain-text")
    with pytest.raises(ConfigError, match="fault=config key=password .*never a plain-text password"):
        SessionConfig(sender_comp_id="GW", target_comp_id="CLI", password="secret")
    with pytest.raises(ConfigError, match="fault=config key=allowed_addresses value='10.0.0.300'"):
        SessionConfig(sender_comp_id="GW", target_comp_id="CLI", allowed_addresses=["10.0.0.300"])


def test_hash_password_command():
    out = subprocess.run([sys.executable, "-P", "-m", "tickline.fix_gateway.cli", "fix-gateway", "--hash-password"],
                         input="from stdin\n", capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    h = out.stdout.strip()
    assert h.startswith("scrypt$") and verify_password("from stdin", h)


def test_allowed_addresses(loop, raw_clients):
    a = acceptor(loop, allowed_addresses=["127.0.0.2/32", "10.0.0.0/8"])
    [lo] = answer(loop, raw_clients, a.port, logon_bytes())
    assert lo[58] == "Logon refused"
    assert a.rec.of(LogonRefused)[-1].reason == "address_not_allowed host=127.0.0.1"
    s = socket.socket()
    s.bind(("127.0.0.2", 0))
    s.connect(("127.0.0.1", a.port))
    s.sendall(logon_bytes())
    loop.run_until(lambda: a.rec.of(LoggedOn), what="logon from an allowed address")
    s.close()


def test_authenticator_hook_sees_the_peer(loop, raw_clients):
    seen = []

    def hook(req: LogonRequest):
        seen.append(req)
        return None if req.message.get(553) == "desk-7" else f"not a desk user={req.message.get(553)}"
    a = acceptor(loop, hook=hook)
    [lo] = answer(loop, raw_clients, a.port, logon_bytes("desk-9", "x"))
    assert lo[58] == "Logon refused" and a.rec.of(LogonRefused)[-1].reason == "not a desk user=desk-9"
    c = raw_clients(a.port)
    c.send(logon_bytes("desk-7", "x"))
    loop.run_until(lambda: a.rec.of(LoggedOn), what="logon accepted by the hook")
    assert seen[-1].session_id == SID and seen[-1].peer.host == "127.0.0.1" and seen[-1].peer.tls is False


def test_second_logon_is_refused_and_the_first_keeps_working(loop, raw_clients):
    a = acceptor(loop, username="client1", password_hash=HASH)
    first = raw_clients(a.port)
    first.send(logon_bytes("client1", "s3cret pass"))
    loop.run_until(lambda: first.poll() and b"\x0135=A\x01" in first.buf, what="first logon")
    # the same CompIDs and the right password on a second connection: refused, the first untouched
    assert answer(loop, raw_clients, a.port, logon_bytes("client1", "s3cret pass")) == []
    assert a.rec.unknown[-1].reason == f"session_already_connected session={SID}"
    assert a.counters["failed_logons"] == 1 and a.session(SID).state == State.ACTIVE
    first.buf = b""
    first.send(encode("FIX.4.4", [(35, "1"), (49, "CLI"), (56, "GW"), (34, 2), (52, utc_timestamp(time.time())),
                                  (112, "still-me")]))
    loop.run_until(lambda: first.poll() and b"112=still-me" in first.buf, what="first session still answers")
    assert not a.rec.of(Disconnect)


def test_failed_logons_are_logged_with_the_address_and_rate_limited(loop, raw_clients, caplog):
    caplog.set_level(logging.WARNING, logger="tickline.fix_gateway")
    a = acceptor(loop, AcceptorConfig(port=0, pending_timeout_s=2, max_failed_logons=3, failed_logon_window_s=60),
                 username="client1", password_hash=HASH)
    for _ in range(3):
        answer(loop, raw_clients, a.port, logon_bytes("client1", "guess"))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("logon failed")]
    assert len(lines) == 3 and all("fault=remote peer=127.0.0.1:" in ln and f"session={SID}" in ln for ln in lines)
    assert "reason=logon_refused" not in lines[0] and "bad_credentials username='client1'" in lines[0]
    assert "guess" not in caplog.text  # the password tried is never logged
    # a fourth attempt from the address, even with the right password, is closed before it is read
    assert answer(loop, raw_clients, a.port, logon_bytes("client1", "s3cret pass")) == []
    assert a.counters["too_many_failed_logons"] == 1 and not a.rec.of(LoggedOn)
    assert a.session(SID).store.next_sender_seq == 1
    # another address is not locked out
    assert answer(loop, raw_clients, a.port, logon_bytes("client1", "nope"), source="127.0.0.3")[0][58] == "Logon refused"


def test_log_lines_about_bad_peers_are_rate_limited(caplog):
    from tickline.fix_gateway.io import _LogLimiter

    caplog.set_level(logging.WARNING, logger="tickline.fix_gateway")
    lim = _LogLimiter(per_s=10)
    for i in range(1000):
        lim.warning(100.5, "refused n=%d", i)
    lim.warning(101.0, "refused n=%d", 1000)
    msgs = [r.getMessage() for r in caplog.records]
    assert len(msgs) == 11 and msgs[-1] == "refused n=1000 suppressed_since_last=990"


# -- mutual TLS ----------------------------------------------------------------------------------


def _openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a server certificate for 127.0.0.1 and two client certificates, made with the openssl CLI."""
    d = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"), "-days", "1",
             "-subj", "/CN=tickline-test-ca")
    _openssl("req", "-x509", *ec, "-keyout", str(d / "server.key"), "-out", str(d / "server.pem"), "-days", "1",
             "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1")
    for name in ("client1", "intruder"):
        _openssl("req", *ec, "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.csr"), "-subj", f"/CN={name}")
        _openssl("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / "ca.pem"), "-CAkey", str(d / "ca.key"),
                 "-CAcreateserial", "-out", str(d / f"{name}.pem"), "-days", "1")
    return d


def _client_ctx(pki, name=None):
    ctx = ssl.create_default_context(cafile=str(pki / "server.pem"))
    if name:
        ctx.load_cert_chain(str(pki / f"{name}.pem"), str(pki / f"{name}.key"))
    return ctx


def test_mutual_tls_required_client_certificate_and_cn(loop, pki):
    acfg = AcceptorConfig(port=0, pending_timeout_s=2, tls_cert_file=str(pki / "server.pem"),
                          tls_key_file=str(pki / "server.key"), tls_client_cert="required",
                          tls_client_ca_file=str(pki / "ca.pem"), max_failed_logons=100)
    a = acceptor(loop, acfg, tls_client_cn="client1")
    sessions = {}
    for name in (None, "intruder", "client1"):
        rec = Recorder()
        ini = FixInitiator(InitiatorConfig(reconnect_min_s=0.05, reconnect_max_s=0.1), on_event=rec)
        ini.add_session(SessionConfig(sender_comp_id="CLI", target_comp_id="GW", role="initiator"), port=a.port,
                        tls=_client_ctx(pki, name))
        sessions[name] = (ini, rec)
        loop.add(ini)
        if name is None:  # no client certificate: the handshake fails at the acceptor
            loop.run_until(lambda: any(u.reason == "tls_handshake_failed" for u in a.rec.unknown), what="no cert refused")
        elif name == "intruder":  # a certificate from the CA, for another name: the logon is refused
            loop.run_until(lambda: a.rec.of(LogonRefused), what="wrong CN refused")
            assert a.rec.of(LogonRefused)[0].reason == "client_certificate_mismatch expected_cn=client1 cn=intruder"
        ini.set_enabled("FIX.4.4:CLI->GW", name == "client1")
    ini, rec = sessions["client1"]
    loop.run_until(lambda: rec.of(LoggedOn) and a.rec.of(LoggedOn), what="logon with client1's certificate")
    peer = a.entries[SID].peer
    assert peer.tls and peer.certificate_cn == "client1"


def test_client_certificates_need_tls_and_a_ca():
    with pytest.raises(ConfigError, match="client certificates need TLS and a CA file"):
        AcceptorConfig(tls_client_cert="required")
    with pytest.raises(ConfigError, match="key=tls_client_cert value='maybe'"):
        AcceptorConfig(tls_client_cert="maybe")


def test_topology_file_carries_the_security_settings(tmp_path, pki):
    from tickline.fix_gateway.gateway import Gateway, load_config

    creds = tmp_path / "creds"
    creds.write_text(f"client2:{hash_password('pw2')}\n")
    os.chmod(creds, 0o600)
    p = tmp_path / "t.toml"
    p.write_text(f"""
[fix_gateway]
store_dir = "{tmp_path / 'store'}"
[fix_gateway.acceptor]
tls_cert_file = "{pki / 'server.pem'}"
tls_key_file = "{pki / 'server.key'}"
tls_client_cert = "optional"
tls_client_ca_file = "{pki / 'ca.pem'}"
max_connections = 50
max_connections_per_address = 5
max_failed_logons = 3
failed_logon_window_s = 30
max_send_buffer = 1048576
[[fix_gateway.sessions]]
sender_comp_id = "GW"
target_comp_id = "C1"
username = "client1"
password_hash = "{HASH}"
allowed_addresses = ["127.0.0.1", "10.1.0.0/16"]
tls_client_cn = "client1"
[[fix_gateway.sessions]]
sender_comp_id = "GW"
target_comp_id = "C2"
credentials_file = "{creds}"
""")
    cfg = load_config(p)
    s1 = cfg.sessions[0].session
    assert s1.allowed_addresses == ("127.0.0.1", "10.1.0.0/16") and s1.password_hash == HASH
    assert (cfg.acceptor.max_connections, cfg.acceptor.tls_client_cert) == (50, "optional")
    gw = Gateway(cfg)
    try:
        auth = gw.acceptor.session("FIX.4.4:GW->C2")._auth
        assert set(auth.credentials) == {"client2"}
    finally:
        gw.on_close()
    p.write_text(p.read_text().replace(HASH, "md5:abc"))
    with pytest.raises(ConfigError, match="bad password hash: fault=config key=password_hash"):
        load_config(p)
