"""Authentication pieces, sans-IO: the native HMAC against RFC 4231 and Python's
hmac, the cluster key and credentials files, the session gate's accept /
reject / challenge, the client's side of a challenge, the egress channel policy."""

import hmac
import os
import sys
import types

import pytest

from tickline import _aeron
from tickline.cluster.aeron_io import CLIENT_TERM_LENGTH, EgressPolicy, EgressRefused
from tickline.cluster.auth import (
    Accept, CredentialsFileAuthenticator, MemberAuth, Reject, SessionGate, credentials_line, generate_member_key,
    load_authenticator, load_member_key, provision, read_credentials,
)
from tickline.cluster.client import ClusterClient
from tickline.cluster.errors import ConfigError
from tickline.cluster.protocol import Challenge, ChallengeResponse, EventCode, SessionConnect, SessionEvent

# RFC 4231 section 4: (key, data, HMAC-SHA-256)
RFC4231 = [
    (b"\x0b" * 20, b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (b"Jefe", b"what do ya want for nothing?", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    (b"\xaa" * 20, b"\xdd" * 50, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
    (b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
    (b"\xaa" * 131, b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed "
                    b"before being used by the HMAC algorithm.", "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
]


@pytest.mark.parametrize("key,data,tag", RFC4231)
def test_the_native_hmac_gives_rfc_4231_tags(key, data, tag):
    assert _aeron.HmacSha256(key).digest(data).hex() == tag


def test_the_native_hmac_agrees_with_pythons_at_every_padding_boundary():
    key = os.urandom(32)
    h = _aeron.HmacSha256(key)
    for n in [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 128, 1000, 70_000]:  # 70k: the GIL-free path
        data = os.urandom(n)
        assert h.digest(data) == hmac.digest(key, data, "sha256")
        assert h.digest(memoryview(bytearray(data))) == h.digest(data)


def test_a_sealed_message_opens_only_unaltered_and_under_the_same_key():
    a, b = MemberAuth(os.urandom(32)), MemberAuth(os.urandom(32))
    sealed = a.seal(b"append request")
    assert len(sealed) == len(b"append request") + 32
    assert bytes(a.open(memoryview(sealed))) == b"append request"
    assert b.open(memoryview(sealed)) is None
    for i in range(len(sealed)):
        altered = bytearray(sealed)
        altered[i] ^= 1
        assert a.open(memoryview(altered)) is None
    assert a.open(memoryview(sealed[:31])) is None and a.open(memoryview(b"")) is None
    off = MemberAuth(None)
    assert off.seal(b"x") == b"x" and bytes(off.open(memoryview(b"x"))) == b"x"


def test_the_member_key_file_must_be_private_hex_and_long_enough(tmp_path):
    p = str(tmp_path / "k")
    generate_member_key(p)
    assert os.stat(p).st_mode & 0o777 == 0o600 and len(load_member_key(p)) == 32
    with pytest.raises(FileExistsError):
        generate_member_key(p)  # never overwritten
    os.chmod(p, 0o644)
    with pytest.raises(ConfigError, match=r"readable or writable by others: key=member_key_file file=.* mode=0o644 .*fault=user"):
        load_member_key(p)
    short = tmp_path / "short"
    short.write_text("00" * 16)
    os.chmod(short, 0o600)
    with pytest.raises(ConfigError, match="member key too short: .*bytes=16 expected=>=32"):
        load_member_key(str(short))
    short.write_text("not hex")
    with pytest.raises(ConfigError, match="not hex text"):
        load_member_key(str(short))
    with pytest.raises(ConfigError, match="secret file not found"):
        load_member_key(str(tmp_path / "missing"))


def creds_file(tmp_path, lines):
    p = tmp_path / "creds"
    p.write_text("\n".join(lines) + "\n")
    os.chmod(p, 0o600)
    return str(p)


def test_the_credentials_file_holds_hashes_and_checks_principal_secret_and_role(tmp_path):
    path = creds_file(tmp_path, ["# operators", credentials_line("alice", "client", "s3cret-alice"),
                                 credentials_line("ops", "client,admin", "s3cret-ops"), credentials_line("feed", "reader", "s3cret-feed")])
    text = open(path).read()
    assert "s3cret" not in text  # only salted hashes are stored
    auth = CredentialsFileAuthenticator(path)
    assert auth.on_connect(1, b"alice:s3cret-alice", 0) == Accept("alice", frozenset({"client"}))
    assert auth.on_connect(1, b"alice:s3cret-ops", 0) == Reject("unknown principal or wrong secret")
    assert auth.on_connect(1, b"mallory:s3cret-alice", 0) == Reject("unknown principal or wrong secret")
    assert auth.on_connect(1, b"alice", 0) == Reject("unknown principal or wrong secret")
    assert auth.on_connect(1, b"\xff:x", 0) == Reject("credentials not principal:secret")
    assert auth.on_connect(1, b"feed:s3cret-feed", 0) == Reject("principal lacks role: principal=feed role=client")
    assert auth.is_admin(b"ops:s3cret-ops") and not auth.is_admin(b"alice:s3cret-alice") and not auth.is_admin(b"")


def test_a_bad_credentials_file_is_refused_at_start_with_file_and_line(tmp_path):
    with pytest.raises(ConfigError, match=r"bad credentials line: file=.* line=2 "):
        CredentialsFileAuthenticator(creds_file(tmp_path, [credentials_line("a", "client", "x"), "b client"]))
    with pytest.raises(ConfigError, match=r"bad credentials hash: file=.* line=1 principal=b"):
        CredentialsFileAuthenticator(creds_file(tmp_path, ["b client plain:secret"]))
    with pytest.raises(ConfigError, match=r"principal listed twice: file=.* line=2 principal=a"):
        CredentialsFileAuthenticator(creds_file(tmp_path, [credentials_line("a", "client", "x"), credentials_line("a", "admin", "y")]))
    p = creds_file(tmp_path, [credentials_line("a", "client", "x")])
    os.chmod(p, 0o640)
    with pytest.raises(ConfigError, match="readable or writable by others: key=credentials_file"):
        CredentialsFileAuthenticator(p)
    with pytest.raises(ConfigError, match="the default authenticator needs a credentials file: key=credentials_file"):
        load_authenticator("credentials-file", None)


class ChallengeOnce:
    """A pluggable authenticator: asks for the nonce back, reversed."""

    def on_connect(self, session_id, credentials, now):
        return Challenge(0, b"nonce-%d" % session_id)

    def on_challenge_response(self, session_id, credentials, now):
        return Accept("c") if credentials == (b"nonce-%d" % session_id)[::-1] else Reject("wrong answer")

    def is_admin(self, credentials):
        return False


def test_a_pluggable_authenticator_is_loaded_by_module_and_factory(monkeypatch):
    mod = types.ModuleType("tickline_test_authn")
    mod.make = lambda credentials_file: ChallengeOnce()
    monkeypatch.setitem(sys.modules, "tickline_test_authn", mod)
    assert isinstance(load_authenticator("tickline_test_authn:make", None), ChallengeOnce)
    with pytest.raises(ConfigError, match="cannot load authenticator: key=authenticator value=tickline_test_authn:nothing"):
        load_authenticator("tickline_test_authn:nothing", None)
    with pytest.raises(ConfigError, match="invalid authenticator"):
        load_authenticator("nomodule", None)


def test_the_gate_challenges_then_opens_or_rejects_and_answers_either_way():
    gate = SessionGate(ChallengeOnce(), max_pending=2, challenge_timeout=100)
    opened, answer = gate.on_connect(SessionConnect(9, 5, b"hello"), now=0)
    assert opened is None and answer == Challenge(5, b"nonce-5")
    # another client answering for session 5 is refused, and does not cancel the challenge
    opened, answer = gate.on_challenge_response(ChallengeResponse(8, 5, b"5-ecnon"), now=1)
    assert opened is None and answer.code is EventCode.AUTHENTICATION_REJECTED
    opened, answer = gate.on_challenge_response(ChallengeResponse(9, 5, b"5-ecnon"), now=2)
    assert opened == SessionConnect(9, 5) and answer is None
    # a wrong answer is rejected, with the reason
    gate.on_connect(SessionConnect(9, 6), now=0)
    assert gate.on_challenge_response(ChallengeResponse(9, 6, b"?"), now=1)[1] == SessionEvent(6, 0, EventCode.AUTHENTICATION_REJECTED,
                                                                                              detail="wrong answer")
    # a challenge expires, and at most max_pending wait
    gate.on_connect(SessionConnect(9, 7), now=0)
    assert gate.on_challenge_response(ChallengeResponse(9, 7, b"7-ecnon"), now=101)[0] is None
    for sid in (10, 11, 12):
        gate.on_connect(SessionConnect(9, sid), now=0)
    assert gate.on_challenge_response(ChallengeResponse(9, 10, b"01-ecnon"), now=1)[0] is None  # the oldest was dropped
    assert gate.on_challenge_response(ChallengeResponse(9, 12, b"21-ecnon"), now=1)[0] == SessionConnect(9, 12)
    # oversized credentials never reach the authenticator
    assert gate.on_connect(SessionConnect(9, 13, b"x" * 5000), now=0)[1].code is EventCode.AUTHENTICATION_REJECTED


def test_the_client_answers_a_challenge_and_stops_when_rejected():
    c = ClusterClient(1, 5, (1, 2, 3), credentials=b"me:pw", on_challenge=lambda data: data[::-1])
    c.offer(b"order", 0)
    assert c.poll(0) == [(1, SessionConnect(1, 5, b"me:pw"))]
    c.on_egress(Challenge(5, b"abc"), 1)
    assert c.poll(1) == [(1, ChallengeResponse(1, 5, b"cba"))]
    c.on_egress(SessionEvent(5, 0, EventCode.AUTHENTICATION_REJECTED, detail="wrong answer"), 2)
    assert c.rejected == "wrong answer" and not c.connected
    assert c.poll(10_000) == []  # no more connects with credentials the cluster refused


def test_provisioned_secrets_work_with_the_default_authenticator(tmp_path):
    s = provision(str(tmp_path / "s"))
    auth = CredentialsFileAuthenticator(s.credentials_file)
    assert isinstance(auth.on_connect(1, s.client, 0), Accept) and not auth.is_admin(s.client) and auth.is_admin(s.admin)
    assert open(s.admin_file, "rb").read().strip() == s.admin and len(load_member_key(s.key_file)) == 32
    assert read_credentials(s.client_file) == s.client and read_credentials(s.admin_file) == s.admin


def test_a_client_credentials_file_is_read_only_if_private_and_one_principal_secret(tmp_path):
    p = tmp_path / "c"
    fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"trader1:s3cret\n")
    os.close(fd)
    assert read_credentials(str(p), "venue.cluster_credentials_file") == b"trader1:s3cret"
    os.chmod(p, 0o644)
    with pytest.raises(ConfigError, match="readable or writable by others.*key=venue.cluster_credentials_file"):
        read_credentials(str(p), "venue.cluster_credentials_file")
    os.chmod(p, 0o600)
    for bad in (b"no-colon\n", b":secret\n", b"principal:\n", b"a:b\nc:d\n", b"a:" + b"x" * 5000):
        p.write_bytes(bad)
        with pytest.raises(ConfigError, match="credentials file"):
            read_credentials(str(p))


# ---------------------------------------------------------------- egress channels (issue 13, item 8)

def test_a_client_egress_channel_is_checked_against_the_topology():
    p = EgressPolicy.parse(["127.0.0.1:40000-40099", "127.0.0.1:41000"], ipc=False)
    assert p.check("aeron:udp?endpoint=127.0.0.1:40050") == f"aeron:udp?endpoint=127.0.0.1:40050|term-length={CLIENT_TERM_LENGTH}"
    assert p.check("aeron:udp?endpoint=127.0.0.1:41000|term-length=64k|mtu=1408") == \
        "aeron:udp?endpoint=127.0.0.1:41000|term-length=65536|mtu=1408"
    refusals = {
        "aeron:udp?endpoint=127.0.0.1:40050|term-length=1g": "term length above client_term_length_max: term-length=1g max=1048576",
        "aeron:udp?endpoint=127.0.0.1:40100": "endpoint not allowed by client_egress: endpoint=127.0.0.1:40100",
        "aeron:udp?endpoint=localhost:40050": "endpoint not allowed by client_egress: endpoint=localhost:40050",
        "aeron:udp?endpoint=127.0.0.1:40050|interface=127.0.0.1": "channel keys not allowed: keys=interface",
        "aeron:udp?endpoint=127.0.0.1:40050|ttl=255": "channel keys not allowed: keys=ttl",
        "aeron:udp?control=127.0.0.1:40050|control-mode=dynamic": "udp egress needs endpoint=host:port",
        "aeron:ipc": "this member's egress goes over udp only",
        "aeron:udp?endpoint=127.0.0.1:40050|term-length=lots": "malformed channel",
        "tcp://127.0.0.1:40050": "malformed channel",
    }
    for channel, reason in refusals.items():
        with pytest.raises(EgressRefused, match=reason.replace("?", r"\?").replace("|", r"\|")):
            p.check(channel)
    with pytest.raises(EgressRefused) as exc:
        p.check("aeron:udp?endpoint=127.0.0.1:40100")
    assert exc.value.answer_channel is None  # an endpoint not listed is never published to, not even to refuse
    with pytest.raises(EgressRefused) as exc:
        p.check("aeron:udp?endpoint=127.0.0.1:40050|term-length=1g")
    assert exc.value.answer_channel == f"aeron:udp?endpoint=127.0.0.1:40050|term-length={CLIENT_TERM_LENGTH}"


def test_ipc_egress_and_the_default_policy():
    ipc = EgressPolicy.for_members({1: ("ipc", 0), 2: ("ipc", 0)})
    assert ipc.check("aeron:ipc") == f"aeron:ipc?term-length={CLIENT_TERM_LENGTH}"
    with pytest.raises(EgressRefused, match="term length above"):
        ipc.check("aeron:ipc?term-length=1g")
    with pytest.raises(EgressRefused, match="egress goes over ipc only"):
        ipc.check("aeron:udp?endpoint=127.0.0.1:40000")
    udp = EgressPolicy.for_members({1: ("127.0.0.1", 9000)})
    assert udp.check("aeron:udp?endpoint=127.0.0.1:5555").startswith("aeron:udp?endpoint=127.0.0.1:5555")
    for bad in (["127.0.0.1"], ["127.0.0.1:9-1"], ["127.0.0.1:0"], [":80"], ["127.0.0.1:x"]):
        with pytest.raises(ValueError):
            EgressPolicy.parse(bad, ipc=False)
    with pytest.raises(ValueError, match="power of two"):
        EgressPolicy.parse([], ipc=True, max_term_length=3 * 1024 * 1024)


def test_keygen_and_credentials_commands_make_files_the_member_accepts(tmp_path, capsys):
    import argparse
    from tickline.cluster import cli
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    key, creds, out = str(tmp_path / "k"), str(tmp_path / "c"), str(tmp_path / "ops")
    args = parser.parse_args(["cluster", "keygen", key])
    assert args.func(args) == 0 and len(load_member_key(key)) == 32
    assert args.func(args) == 2 and "key file exists, not overwritten" in capsys.readouterr().out
    args = parser.parse_args(["cluster", "credentials", "--file", creds, "--principal", "ops", "--roles", "client,admin", "--out", out])
    assert args.func(args) == 0
    assert os.stat(creds).st_mode & 0o777 == 0o600 and os.stat(out).st_mode & 0o777 == 0o600
    secret = open(out, "rb").read().strip()
    assert secret.startswith(b"ops:") and secret.split(b":", 1)[1] not in open(creds, "rb").read()
    assert CredentialsFileAuthenticator(creds).is_admin(secret)
    args = parser.parse_args(["cluster", "credentials", "--file", creds, "--principal", "a:b", "--out", str(tmp_path / "x")])
    assert args.func(args) == 2 and "principal must be non-empty without ':'" in capsys.readouterr().out
