"""Who may talk to a cluster member, and how it knows.

Three kinds of peer, three checks (as Aeron Cluster does):

- **Members** sign every consensus message: each message on the consensus
  stream is followed by the 32-byte HMAC-SHA256 tag of its bytes under the
  cluster key, a secret of at least 32 random bytes in a file the topology
  names (``member_key_file``; hex, mode 0600, owned by the member's user).  A
  member steps a consensus message only if its tag checks, its ``dst`` is this
  member and its ``src`` is another configured member; anything else is
  dropped and counted (``unauthenticated`` in the status) and never reaches
  the consensus core.  The tag is computed natively (``_aeron.HmacSha256``).
  A replayed message passes (Raft tolerates duplicates: a stale term is
  refused by the core); a forged or altered one does not.  ``member_auth =
  "none"`` turns this off, for a trusted network only (every host that can
  send a datagram to a member's endpoint can then forge consensus traffic).
- **Clients** present credentials on SessionConnect.  The leader asks its
  :class:`Authenticator` (pluggable: ``authenticator = "module:factory"``),
  which accepts, rejects (the client gets ``AUTHENTICATION_REJECTED`` with
  the reason) or challenges (the client answers with a ChallengeResponse).
  The default, :class:`CredentialsFileAuthenticator`, checks ``principal:secret``
  against a credentials file (``credentials_file``, mode 0600) that holds only
  salted hashes of the secrets.  ``authenticator = "none"`` accepts everyone.
- **Operators**: a StatusRequest that does something (take a snapshot, step
  down) needs a credential with the ``admin`` role; a plain status query
  does not.

Secrets are generated (``tickline cluster credentials``), 128 random bits or
more, so a salted SHA-256 is enough to keep the file from giving them away
(a slow password hash protects guessable passwords, and costs the leader's
duty cycle on every connect).

Everything here is sans-IO except the file loaders.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import os
import secrets
import stat
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Protocol

from .errors import ConfigError
from .protocol import Challenge, ChallengeResponse, EventCode, SessionConnect, SessionEvent

__all__ = [
    "TAG_LENGTH", "MemberAuth", "load_member_key", "generate_member_key", "Accept", "Reject", "Decision", "Authenticator",
    "AllowAllAuthenticator", "CredentialsFileAuthenticator", "hash_secret", "credentials_line", "load_authenticator", "SessionGate",
    "Provisioned", "provision", "read_credentials",
]

TAG_LENGTH = 32
KEY_MIN_BYTES = 32
#: credentials longer than this are refused unread (the authenticator never sees them)
MAX_CREDENTIALS = 4096


def _check_private(path: str, key: str) -> None:
    """The file at ``path`` is a regular file of this user that no one else may read or write."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ConfigError("secret file not found", key=key, file=path) from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError("secret file is not a regular file", key=key, file=path)
    if st.st_mode & 0o077:
        raise ConfigError("secret file is readable or writable by others", key=key, file=path, mode=oct(st.st_mode & 0o777),
                          expected="0600 (chmod 600)")
    if st.st_uid != os.geteuid():
        raise ConfigError("secret file belongs to another user", key=key, file=path, uid=st.st_uid, expected=os.geteuid())


def read_credentials(path: str, key: str = "credentials") -> bytes:
    """A client's ``principal:secret`` from the file at ``path`` (mode 0600; ``key`` names the
    setting that pointed here, for the error): what its SessionConnect carries."""
    _check_private(path, key)
    with open(path, "rb") as f:
        text = f.read(MAX_CREDENTIALS + 1).strip()
    if len(text) > MAX_CREDENTIALS:
        raise ConfigError("credentials file too long", key=key, file=path, expected=f"<={MAX_CREDENTIALS} bytes of principal:secret")
    principal, sep, secret = text.partition(b":")
    if not sep or not principal or not secret or b"\n" in text:
        raise ConfigError("credentials file does not hold one principal:secret line", key=key, file=path,
                          expected="principal:secret (tickline cluster credentials --out FILE)")
    return text


def load_member_key(path: str) -> bytes:
    """The cluster key from ``path``: hex text (whitespace ignored) of at least 32 bytes, file mode 0600."""
    _check_private(path, "member_key_file")
    with open(path, "rb") as f:
        text = f.read(4096)
    try:
        key = bytes.fromhex(text.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        raise ConfigError("member key file is not hex text", key="member_key_file", file=path) from None
    if len(key) < KEY_MIN_BYTES:
        raise ConfigError("member key too short", key="member_key_file", file=path, bytes=len(key), expected=f">={KEY_MIN_BYTES}")
    return key


def generate_member_key(path: str) -> None:
    """Write a new random cluster key to ``path`` (mode 0600; an existing file is an error)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(KEY_MIN_BYTES) + "\n")


class MemberAuth:
    """Seals and opens the consensus stream's messages under the cluster key
    (``key=None``: ``member_auth = "none"``, messages go as they are)."""

    def __init__(self, key: bytes | None) -> None:
        self.enabled = key is not None
        if key is not None:
            from tickline import _aeron
            self._hmac = _aeron.HmacSha256(key)

    def seal(self, data: bytes) -> bytes:
        return self._hmac.seal(data) if self.enabled else data

    def open(self, buf: memoryview) -> memoryview | None:
        """The message inside ``buf`` if its tag checks, else None."""
        if not self.enabled:
            return buf
        if len(buf) < TAG_LENGTH or not self._hmac.verify(buf):
            return None
        return buf[: len(buf) - TAG_LENGTH]


# ---------------------------------------------------------------- clients


@dataclass(frozen=True)
class Accept:
    principal: str
    roles: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Reject:
    reason: str


Decision = Accept | Reject | Challenge


class Authenticator(Protocol):
    """Decides who may open a session and who may administer the cluster.

    Called on the leader's duty cycle (keep it fast, never block); ``now`` is
    the member's clock in ms.  ``on_connect`` and ``on_challenge_response``
    return :class:`Accept`, :class:`Reject` or :class:`~.protocol.Challenge`
    (whose ``data`` goes to the client; its ``session_id`` is filled in)."""

    def on_connect(self, session_id: int, credentials: bytes, now: int) -> Decision: ...
    def on_challenge_response(self, session_id: int, credentials: bytes, now: int) -> Decision: ...
    def is_admin(self, credentials: bytes) -> bool: ...


class AllowAllAuthenticator:
    """``authenticator = "none"``: every session and every admin request is accepted."""

    def on_connect(self, session_id: int, credentials: bytes, now: int) -> Decision:
        return Accept("anonymous")

    def on_challenge_response(self, session_id: int, credentials: bytes, now: int) -> Decision:
        return Accept("anonymous")

    def is_admin(self, credentials: bytes) -> bool:
        return True


def hash_secret(secret: str, salt: bytes | None = None) -> str:
    """``sha256:SALT:HASH`` (hex) of a secret, as the credentials file holds it."""
    salt = os.urandom(16) if salt is None else salt
    return f"sha256:{salt.hex()}:{hashlib.sha256(salt + secret.encode()).hexdigest()}"


def credentials_line(principal: str, roles: str, secret: str) -> str:
    """One line of a credentials file: ``principal roles sha256:SALT:HASH``."""
    return f"{principal} {roles} {hash_secret(secret)}"


class CredentialsFileAuthenticator:
    """Checks ``principal:secret`` credentials against a credentials file.

    The file (mode 0600) has one line per principal, ``principal roles
    sha256:SALT:HASH``, roles comma-separated (``client``, ``admin``); ``#``
    starts a comment.  A session needs the ``client`` role, an admin request
    the ``admin`` role.  The file is read once, at start."""

    def __init__(self, path: str) -> None:
        _check_private(path, "credentials_file")
        self.path = path
        self._users: dict[str, tuple[frozenset[str], bytes, bytes]] = {}
        with open(path, encoding="utf-8") as f:
            for n, raw in enumerate(f, 1):
                line = raw.split("#", 1)[0].strip()
                if not line:
                    continue
                parts = line.split()
                if len(parts) != 3:
                    raise ConfigError("bad credentials line", file=path, line=n, expected="principal roles sha256:SALT:HASH")
                name, roles, hashed = parts
                scheme, _, rest = hashed.partition(":")
                salt_hex, _, digest_hex = rest.partition(":")
                try:
                    salt, digest = bytes.fromhex(salt_hex), bytes.fromhex(digest_hex)
                except ValueError:
                    salt, digest = b"", b""
                if scheme != "sha256" or not salt or len(digest) != 32:
                    raise ConfigError("bad credentials hash", file=path, line=n, principal=name, expected="sha256:SALT:HASH (hex)")
                if name in self._users:
                    raise ConfigError("principal listed twice", file=path, line=n, principal=name)
                self._users[name] = (frozenset(r for r in roles.split(",") if r), salt, digest)

    def _check(self, credentials: bytes, role: str) -> Decision:
        name_b, sep, secret = credentials.partition(b":")
        try:
            name = name_b.decode()
        except UnicodeDecodeError:
            return Reject("credentials not principal:secret")
        user = self._users.get(name) if sep else None
        if user is None:
            # hash anyway, so an unknown principal takes as long as a wrong secret
            hashlib.sha256(b"\0" * 16 + secret).digest()
            return Reject("unknown principal or wrong secret")
        roles, salt, digest = user
        if not hmac.compare_digest(hashlib.sha256(salt + secret).digest(), digest):
            return Reject("unknown principal or wrong secret")
        if role not in roles:
            return Reject(f"principal lacks role: principal={name} role={role}")
        return Accept(name, roles)

    def on_connect(self, session_id: int, credentials: bytes, now: int) -> Decision:
        return self._check(credentials, "client")

    def on_challenge_response(self, session_id: int, credentials: bytes, now: int) -> Decision:
        return Reject("unexpected challenge response")

    def is_admin(self, credentials: bytes) -> bool:
        return isinstance(self._check(credentials, "admin"), Accept)


def load_authenticator(spec: str, credentials_file: str | None) -> Authenticator:
    """The authenticator a topology names: ``credentials-file`` (the default;
    needs ``credentials_file``), ``none``, or ``module:factory`` (called with
    the credentials file path, or None)."""
    if spec == "none":
        return AllowAllAuthenticator()
    if spec == "credentials-file":
        if not credentials_file:
            raise ConfigError("the default authenticator needs a credentials file", key="credentials_file",
                              expected='a path (or authenticator = "none" on a trusted network)')
        return CredentialsFileAuthenticator(credentials_file)
    module, sep, attr = spec.partition(":")
    if not sep or not module or not attr:
        raise ConfigError("invalid authenticator", key="authenticator", value=spec, expected="credentials-file|none|module:factory")
    try:
        factory: Callable[[str | None], Authenticator] = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError("cannot load authenticator", key="authenticator", value=spec, reason=exc) from None
    return factory(credentials_file)


class SessionGate:
    """The leader's side of session authentication, sans-IO.

    :meth:`on_connect` and :meth:`on_challenge_response` return what to do
    with the client's message: ``(SessionConnect, None)`` to open the session
    (append it to the log), or ``(None, egress)`` to answer the client instead
    (a Challenge, or a SessionEvent AUTHENTICATION_REJECTED).  Challenged
    sessions wait at most ``challenge_timeout`` ms, at most ``max_pending`` of
    them (the oldest is forgotten first)."""

    def __init__(self, authenticator: Authenticator, *, max_pending: int = 1024, challenge_timeout: int = 5000) -> None:
        self.authenticator = authenticator
        self.max_pending = max_pending
        self.challenge_timeout = challenge_timeout
        self._pending: OrderedDict[int, tuple[int, int]] = OrderedDict()  # session id -> (client id, deadline)
        self.rejected = 0

    def _decide(self, decision: Decision, client_id: int, session_id: int, now: int) -> tuple[SessionConnect | None, object | None]:
        self._pending.pop(session_id, None)
        if isinstance(decision, Accept):
            return SessionConnect(client_id, session_id), None
        if isinstance(decision, Challenge):
            while len(self._pending) >= self.max_pending:
                self._pending.popitem(last=False)
            self._pending[session_id] = (client_id, now + self.challenge_timeout)
            return None, Challenge(session_id, decision.data)
        reason = decision.reason if isinstance(decision, Reject) else f"authenticator returned {type(decision).__name__}"
        self.rejected += 1
        return None, SessionEvent(session_id, 0, EventCode.AUTHENTICATION_REJECTED, detail=reason)

    def on_connect(self, msg: SessionConnect, now: int) -> tuple[SessionConnect | None, object | None]:
        if len(msg.credentials) > MAX_CREDENTIALS:
            return self._decide(Reject(f"credentials too long: length={len(msg.credentials)} max={MAX_CREDENTIALS}"),
                                msg.client_id, msg.session_id, now)
        return self._decide(self.authenticator.on_connect(msg.session_id, msg.credentials, now), msg.client_id, msg.session_id, now)

    def on_challenge_response(self, msg: ChallengeResponse, now: int) -> tuple[SessionConnect | None, object | None]:
        pending = self._pending.get(msg.session_id)
        if pending is None or pending[0] != msg.client_id or now > pending[1]:
            if pending is not None and now > pending[1]:
                del self._pending[msg.session_id]
            # another client's answer does not cancel this session's challenge
            self.rejected += 1
            return None, SessionEvent(msg.session_id, 0, EventCode.AUTHENTICATION_REJECTED, detail="no challenge outstanding for this session")
        if len(msg.credentials) > MAX_CREDENTIALS:
            return self._decide(Reject("credentials too long"), msg.client_id, msg.session_id, now)
        return self._decide(self.authenticator.on_challenge_response(msg.session_id, msg.credentials, now), msg.client_id,
                            msg.session_id, now)

    def is_admin(self, credentials: bytes) -> bool:
        return len(credentials) <= MAX_CREDENTIALS and self.authenticator.is_admin(credentials)


@dataclass(frozen=True)
class Provisioned:
    """Throwaway secrets for a cluster made on the fly (tests, ``bench cluster``):
    the key and credentials files, and the credentials of a client and an admin."""

    key_file: str
    credentials_file: str
    client: bytes
    admin: bytes
    admin_file: str  # the admin's credentials, for ``tickline cluster tool --credentials``
    client_file: str  # the client's credentials, for a component's ``cluster_credentials_file``

    def topology(self) -> str:
        """The topology file's lines that name them."""
        return f'member_key_file = "{self.key_file}"\ncredentials_file = "{self.credentials_file}"\n'


def provision(directory: str) -> Provisioned:
    """A new cluster key and a credentials file with principals ``client``
    (role client) and ``admin`` (roles client, admin) in ``directory`` (0600 files)."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    key_file = os.path.join(directory, "cluster.key")
    generate_member_key(key_file)
    client, admin = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    creds = os.path.join(directory, "cluster.credentials")
    fd = os.open(creds, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(credentials_line("client", "client", client) + "\n" + credentials_line("admin", "client,admin", admin) + "\n")
    files = {}
    for principal, secret in (("admin", admin), ("client", client)):
        files[principal] = os.path.join(directory, f"{principal}.credentials")
        fd = os.open(files[principal], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"{principal}:{secret}\n")
    return Provisioned(key_file, creds, f"client:{client}".encode(), f"admin:{admin}".encode(), files["admin"], files["client"])
