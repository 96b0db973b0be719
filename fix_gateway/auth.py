"""Logon authentication for acceptor sessions.

What a Logon must pass, in order (``SessionAuth``, built from the ``SessionConfig``):

1. the source address is in the session's ``allowed_addresses`` (addresses or CIDR
   networks; empty = any);
2. with ``tls_client_cn`` set: the connection is TLS with a client certificate the
   acceptor verified (``AcceptorConfig.tls_client_cert``), whose subject CN is that name;
3. with ``password_hash`` or ``credentials_file`` set: Username(553) and Password(554)
   match.  Passwords are kept only as salted hashes (``hash_password``: scrypt, or
   PBKDF2-SHA256 for hashes made elsewhere), compared in constant time;
4. the application's ``Authenticator`` hook, if one is given, with everything above
   (message, source address, client certificate) in a ``LogonRequest``.

Each check answers None (pass) or the reason for the refusal; the session then
answers the Logon with a Logout that says only "Logon refused" (the reason goes to
the log and the ``LogonRefused`` event, not to the peer) and stores nothing.

``credentials_file``: one ``username:hash`` per line, ``#`` comments; it must not be
readable by group or others (``ConfigError`` otherwise, as for a missing file).  An initiator
session's password can come from ``password_file`` (the same rule) instead of the topology file.
``tickline fix-gateway --hash-password`` prints a hash for a password read from stdin.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import os
import stat
from dataclasses import dataclass
from typing import Any, Callable, Union

from .codec import FixMessage
from .config import ConfigError

__all__ = ["Peer", "LogonRequest", "Authenticator", "SessionAuth", "hash_password", "verify_password",
           "check_password_hash", "load_credentials", "parse_networks", "read_private_file"]

# scrypt cost: 16 MiB and some tens of milliseconds per check (OWASP's minimum for scrypt is
# N=2**17 with r=8 at p=1, or N=2**14 with higher p; failed logons are rate-limited per address,
# which bounds what a guessing peer can make us spend).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_MAX_SCRYPT_N = 2**20
_MAX_PBKDF2_ITERATIONS = 10_000_000
_MAX_PASSWORD = 1024  # longer 554 values are refused without hashing them


@dataclass(frozen=True)
class Peer:
    """Where a connection comes from: host and port, and the client certificate
    (``ssl.SSLSocket.getpeercert()``) when the acceptor verified one."""

    host: str
    port: int
    tls: bool = False
    certificate: dict[str, Any] | None = None

    @property
    def certificate_cn(self) -> str | None:
        for rdn in (self.certificate or {}).get("subject", ()):
            for key, value in rdn:
                if key == "commonName":
                    return str(value)
        return None


@dataclass(frozen=True)
class LogonRequest:
    """What an ``Authenticator`` gets: the session, its Logon and the connection's peer
    (None when the session runs without the I/O shell)."""

    session_id: str
    message: FixMessage
    peer: Peer | None


# None = accept; a string = refuse, the string says why (logged, never sent to the peer)
Authenticator = Callable[[LogonRequest], Union[str, None]]


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def hash_password(password: str, salt: bytes | None = None) -> str:
    """A salted scrypt hash of ``password``: ``scrypt$N$r$p$<salt>$<hash>`` (base64)."""
    salt = os.urandom(16) if salt is None else salt
    dk = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(dk)}"


def _parse_hash(encoded: str) -> tuple[str, tuple[int, ...], bytes, bytes]:
    parts = encoded.split("$")
    try:
        if parts[0] == "scrypt" and len(parts) == 6:
            n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
            if not (2 <= n <= _MAX_SCRYPT_N and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16):
                raise ValueError("scrypt parameters out of range")
            params: tuple[int, ...] = (n, r, p)
        elif parts[0] == "pbkdf2_sha256" and len(parts) == 4:
            it = int(parts[1])
            if not 1000 <= it <= _MAX_PBKDF2_ITERATIONS:
                raise ValueError("iterations out of range")
            params = (it,)
        else:
            raise ValueError("expected scrypt$N$r$p$salt$hash or pbkdf2_sha256$iterations$salt$hash")
        salt, dk = base64.b64decode(parts[-2], validate=True), base64.b64decode(parts[-1], validate=True)
        if len(salt) < 8 or len(dk) < 16:
            raise ValueError("salt or hash too short")
    except (ValueError, IndexError) as e:
        raise ValueError(str(e)) from None
    return parts[0], params, salt, dk


def check_password_hash(encoded: str, key: str) -> None:
    """``ConfigError`` naming ``key`` unless ``encoded`` is a hash ``verify_password`` reads."""
    try:
        _parse_hash(encoded)
    except ValueError as e:
        raise ConfigError(f"bad password hash: fault=config key={key} error={e} (make one with "
                          f"tickline fix-gateway --hash-password)") from None


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches the hash (constant-time compare)."""
    if len(password) > _MAX_PASSWORD:
        return False
    kind, params, salt, dk = _parse_hash(encoded)
    pw = password.encode("utf-8", "surrogateescape")
    if kind == "scrypt":
        n, r, p = params
        got = hashlib.scrypt(pw, salt=salt, n=n, r=r, p=p, maxmem=256 * n * r * p + (1 << 20), dklen=len(dk))
    else:
        got = hashlib.pbkdf2_hmac("sha256", pw, salt, params[0], dklen=len(dk))
    return hmac.compare_digest(got, dk)


def read_private_file(path: str, key: str) -> str:
    """The text of a file only its owner may read (``ConfigError`` naming ``key`` otherwise)."""
    try:
        st = os.stat(path)
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(f"secret file readable by others: fault=config key={key} path={path} "
                              f"mode={stat.S_IMODE(st.st_mode):o} (chmod 600)")
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise ConfigError(f"cannot read secret file: fault=config key={key} path={path} error={e.strerror}") from None


def load_credentials(path: str) -> dict[str, str]:
    """username -> password hash from a credentials file (see the module doc)."""
    lines = read_private_file(path, "credentials_file").splitlines()
    out: dict[str, str] = {}
    for i, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, h = line.partition(":")
        if not sep or not user:
            raise ConfigError(f"bad credentials line: fault=config path={path} line={i} expected=username:hash")
        check_password_hash(h, f"credentials_file:{path}:{i}")
        out[user] = h
    return out


def parse_networks(values: tuple[str, ...] | list[str], key: str) -> tuple[Any, ...]:
    nets = []
    for v in values:
        try:
            nets.append(ipaddress.ip_network(v, strict=False))
        except ValueError:
            raise ConfigError(f"bad address: fault=config key={key} value={v!r} expected=address or CIDR network") from None
    return tuple(nets)


class SessionAuth:
    """The built-in checks of one acceptor session (see the module doc), then ``hook``."""

    def __init__(self, config: Any, hook: Authenticator | None = None) -> None:
        self.username: str = config.username
        self.password_hash: str = config.password_hash
        self.credentials = load_credentials(config.credentials_file) if config.credentials_file else None
        self.networks = parse_networks(config.allowed_addresses, "allowed_addresses")
        self.tls_client_cn: str = config.tls_client_cn
        self.hook = hook

    @property
    def checks_anything(self) -> bool:
        return bool(self.password_hash or self.credentials is not None or self.networks or self.tls_client_cn
                    or self.hook)

    def __call__(self, req: LogonRequest) -> str | None:
        peer = req.peer
        if self.networks:
            try:
                addr = ipaddress.ip_address(peer.host) if peer is not None else None
            except ValueError:
                addr = None
            if addr is None or not any(addr in n for n in self.networks):
                return f"address_not_allowed host={peer.host if peer else None}"
        if self.tls_client_cn:
            cn = peer.certificate_cn if peer is not None else None
            if cn != self.tls_client_cn:
                return f"client_certificate_mismatch expected_cn={self.tls_client_cn} cn={cn}"
        if self.password_hash or self.credentials is not None:
            user, pw = req.message.get(553), req.message.get(554)
            if user is None or pw is None:
                return "credentials_missing tags=553,554"
            if self.credentials is not None:
                h = self.credentials.get(user)
            else:
                h = self.password_hash if not self.username or user == self.username else None
            # a hash is computed for an unknown user too, so timing does not tell which part was wrong
            fallback = self.password_hash or (next(iter(self.credentials.values()), _DUMMY) if self.credentials else _DUMMY)
            ok = verify_password(pw, h or fallback)
            if h is None or not ok:
                return f"bad_credentials username={user[:64]!r}"
        if self.hook is not None:
            return self.hook(req)
        return None


_DUMMY = "pbkdf2_sha256$1000$AAAAAAAAAAA=$AAAAAAAAAAAAAAAAAAAAAA=="
