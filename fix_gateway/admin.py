"""The gateway's admin endpoint: a local Unix socket (``<store_dir>/admin.sock``, mode 0600)
answering one JSON request per connection, with the admin credential.

A request is one line (at most ``MAX_REQUEST`` bytes) of JSON::

    {"password": "...", "command": "list"}
    {"password": "...", "command": "disconnect", "session": "FIX.4.4:GW->C1", "reason": "..."}
    {"password": "...", "command": "reset-seq", "session": "..."}
    {"password": "...", "command": "set-next-seq", "session": "...", "sender": 10, "target": 7}

and the answer one line: ``{"ok": true, ...}`` or ``{"ok": false, "error": "...fault=..."}``.
The password is checked against ``admin_password_hash`` on the admin thread (scrypt takes
milliseconds: never on the agent's duty cycle); the command itself runs on the agent's
thread (``Gateway.do_work`` drains the queue), so it sees and changes the sessions
between two duty-cycle steps, never during one.  Sequence numbers change only on a
logged-out session (``reset-seq``, ``set-next-seq``), as the FIX spec's manual reset
expects: a live session's numbers belong to its conversation.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import socket
import stat
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

from .auth import verify_password

__all__ = ["AdminServer", "AdminError", "request", "MAX_REQUEST"]

MAX_REQUEST = 4096
_TIMEOUT_S = 5.0
_log = logging.getLogger("tickline.fix_gateway")


class AdminError(Exception):
    """The admin request failed (the message says whose fault)."""


Job = tuple[Callable[[], dict[str, Any]], list[dict[str, Any]], threading.Event]


class AdminServer:
    """Serves the admin socket on its own thread; ``jobs`` is drained by the agent."""

    def __init__(self, path: str | os.PathLike[str], password_hash: str, run: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.path = Path(path)
        self.password_hash = password_hash
        self.run = run  # the command, on the agent thread
        self.jobs: collections.deque[Job] = collections.deque()
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_socket():
            self.path.unlink()  # left by a gateway that was killed (the store directory is ours)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # created 0600: no window in which others may connect
        try:
            with _short_path(self.path) as p:
                s.bind(p)
        except OSError as e:
            s.close()
            raise OSError(e.errno, f"cannot open the admin socket: fault=local path={self.path} error={e.strerror}") from None
        finally:
            os.umask(old)
        os.chmod(self.path, stat.S_IRUSR | stat.S_IWUSR)
        s.listen(8)
        s.settimeout(0.2)
        self._sock = s
        self._thread = threading.Thread(target=self._serve, name="tickline-fix-admin", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._sock is not None:
            self._sock.close()
            try:
                self.path.unlink()
            except OSError:
                pass
        while self.jobs:  # answered: the agent is gone
            _, out, done = self.jobs.popleft()
            out.append({"ok": False, "error": "gateway stopping: fault=none"})
            done.set()

    def drain(self) -> int:
        """Run the queued commands (agent thread); returns how many ran."""
        n = 0
        while self.jobs:
            fn, out, done = self.jobs.popleft()
            try:
                out.append(fn())
            except Exception as e:  # noqa: BLE001 - an admin command must not take the gateway down
                out.append({"ok": False, "error": f"{e}"})
            done.set()
            n += 1
        return n

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                continue
            with conn:
                try:
                    conn.settimeout(_TIMEOUT_S)
                    answer = self._handle(_read_line(conn))
                except (OSError, AdminError) as e:
                    answer = {"ok": False, "error": str(e)}
                try:
                    conn.sendall(json.dumps(answer).encode() + b"\n")
                except OSError:
                    pass

    def _handle(self, line: bytes) -> dict[str, Any]:
        try:
            req = json.loads(line)
        except ValueError as e:
            raise AdminError(f"bad request: fault=user error=not JSON: {e}") from None
        if not isinstance(req, dict):
            raise AdminError("bad request: fault=user error=not a JSON object")
        pw = req.pop("password", None)
        if not isinstance(pw, str) or not verify_password(pw, self.password_hash):
            _log.warning("admin refused: fault=user reason=bad_credentials command=%s", _short(req.get("command")))
            raise AdminError("refused: fault=user reason=bad_credentials")
        out: list[dict[str, Any]] = []
        done = threading.Event()
        self.jobs.append((lambda: self.run(req), out, done))
        if not done.wait(_TIMEOUT_S):
            raise AdminError(f"no answer from the gateway agent within {_TIMEOUT_S}s: fault=ours")
        return out[0]


@contextlib.contextmanager
def _short_path(path: Path) -> Iterator[str]:
    """``path`` as a socket address: a Unix socket's path is limited to 107 bytes, so a longer
    one is reached through its directory's descriptor (``/proc/self/fd/N/name``, Linux)."""
    if len(os.fsencode(str(path))) < 100:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


def _short(v: object) -> str:
    s = json.dumps(v)
    return s if len(s) <= 40 else s[:40] + "..."


def _read_line(conn: socket.socket) -> bytes:
    buf = b""
    while b"\n" not in buf:
        chunk = conn.recv(MAX_REQUEST + 1 - len(buf))
        if not chunk:
            break
        buf += chunk
        if len(buf) > MAX_REQUEST:
            raise AdminError(f"request too long: fault=user max_bytes={MAX_REQUEST}")
    return buf.partition(b"\n")[0]


def request(path: str | os.PathLike[str], password: str, command: str, **fields: Any) -> dict[str, Any]:
    """Send one admin request to the gateway at ``path``; its answer (``AdminError`` when there is none)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(_TIMEOUT_S + 5)
    try:
        try:
            with _short_path(Path(path)) as p:
                s.connect(p)
        except OSError as e:
            raise AdminError(f"cannot reach the gateway's admin socket (is it running?): path={path} "
                             f"error={e.strerror or e}") from None
        s.sendall(json.dumps({"password": password, "command": command, **fields}).encode() + b"\n")
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    finally:
        s.close()
    try:
        answer = json.loads(buf)
    except ValueError:
        raise AdminError(f"no answer from the gateway: path={path}") from None
    if not isinstance(answer, dict):
        raise AdminError(f"bad answer from the gateway: path={path}")
    return answer
