"""The Aeron media driver: embedded in this process, or the ``aeronmd`` daemon.

``MediaDriver.embedded()`` is what tests, demos and a first-time user get: the
C driver runs on its own C threads inside this process (they never take the
GIL), in a directory of its own that is removed on ``close()``.  With
``invoker=True`` it starts no thread at all and the caller drives it with
``do_work()`` (it is then an agent: see ``as_agent()``).

``MediaDriver.launch()`` starts the ``aeronmd`` binary shipped in the package
as a child process (what ``tickline driver`` runs in the foreground); SIGTERM
shuts it down cleanly.  Neither starts over a live driver in the same
directory: that raises ``DriverError`` naming the directory and its pid.

Options are Aeron's property names, e.g. ``{"aeron.ipc.term.buffer.length":
"1m", "aeron.threading.mode": "SHARED"}``; each can also come from the
environment as Aeron reads it (``AERON_IPC_TERM_BUFFER_LENGTH``).

Files are private: the driver directory (and its ``publications/`` and
``images/``) is 0700, ``cnc.dat``, the loss report and every log buffer 0600,
whatever the process umask; ``group_access=True`` makes them 0770/0660 for
clients running as other users of the same group.  The daemon runs under a
umask of 077 (007); the embedded driver sets the process umask so only while
``aeron_driver_init`` runs and gives each log buffer its directory's mode.

A dead driver's directory is cleaned on start: a directory whose ``cnc.dat``
names a process that is gone is removed before a driver starts in it (one
whose heartbeat is stale is removed by Aeron itself at start), and
``MediaDriver.embedded()`` also removes the dead ``tickline-*`` directories of
crashed processes under the same base (``/dev/shm``).  ``tickline stat
--cleanup`` removes every dead driver directory of this user there.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Mapping

from .. import _aeron
from .._aeron import DriverError
from .cnc import CncFormatError, read_cnc

__all__ = [
    "MediaDriver", "DriverError", "default_dir", "unique_dir", "driver_pid_if_active", "aeronmd_path",
    "dead_driver_dirs", "remove_dead_driver_dir", "private_umask",
]

#: A driver whose CnC heartbeat is older than this is taken as dead.
LIVENESS_TIMEOUT_MS = 10_000

# Defaults for an embedded driver: one shared C thread (these machines may
# have two cores), sparse log files, and a directory of its own removed at
# shutdown.
EMBEDDED_DEFAULTS = {
    "aeron.threading.mode": "SHARED",
    "aeron.term.buffer.sparse.file": "true",
    "aeron.dir.delete.on.shutdown": "true",
}


def default_dir() -> str:
    """Aeron's default directory for this user (``/dev/shm/aeron-USER`` on Linux)."""
    env = os.environ.get("AERON_DIR")
    if env:
        return env
    base = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    user = os.environ.get("USER") or os.environ.get("LOGNAME") or "default"
    return os.path.join(base, f"aeron-{user}")


def unique_dir(prefix: str = "tickline") -> str:
    """A fresh driver directory path (not created) under /dev/shm when there is one."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    return os.path.join(base, f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def aeronmd_path() -> str:
    """Path of the ``aeronmd`` binary shipped inside the package."""
    path = Path(_aeron.__file__).parent / "bin" / "aeronmd"
    if not path.exists():
        raise FileNotFoundError(f"aeronmd not found in the installed package: path={path} (reinstall tickline)")
    return str(path)


def driver_pid_if_active(dir: str, liveness_timeout_ms: int = LIVENESS_TIMEOUT_MS) -> int | None:
    """The pid of a live driver using ``dir`` (recent CnC heartbeat), else None."""
    if not os.path.exists(os.path.join(dir, "cnc.dat")):
        return None
    try:  # read as untrusted bytes (cnc.py): a damaged file is no live driver
        cnc = read_cnc(dir, counters=False, errors=False)
    except (OSError, CncFormatError):
        return None
    if _aeron.epoch_ms() - cnc.heartbeat_ms > liveness_timeout_ms:
        return None
    return cnc.header.pid


def private_umask(group_access: bool = False) -> int:
    """The process umask with other users' (and, without group access, the group's) bits added."""
    current = os.umask(0o077)
    os.umask(current)
    return current | (0o007 if group_access else 0o077)


def _pid_alive(pid: int) -> bool:
    """True while ``pid`` is a running (not zombie) process on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def _dead_driver_pid(dir: str) -> int | None:
    """The pid of the dead driver whose ``cnc.dat`` is in ``dir``, else None (alive,
    unreadable, or no driver file).  Dead means its process is gone: a stale
    heartbeat alone may be an invoker-mode driver nobody turns for a while, and
    is left to Aeron's own check when a driver starts in that directory."""
    if not os.path.isfile(os.path.join(dir, "cnc.dat")):
        return None
    try:
        pid = read_cnc(dir, counters=False, errors=False).header.pid
    except (OSError, CncFormatError):
        return None  # not (yet) a readable CnC file: leave it to Aeron
    return None if _pid_alive(pid) else pid


def remove_dead_driver_dir(dir: str) -> int | None:
    """Removes ``dir`` if it holds a dead driver's files; returns that driver's pid, else None."""
    pid = _dead_driver_pid(dir)
    if pid is None:
        return None
    shutil.rmtree(dir, ignore_errors=True)
    return pid


def dead_driver_dirs(base: str | None = None, prefix: str = "") -> list[tuple[str, int]]:
    """(directory, pid) of the dead drivers' directories of this user under ``base``
    (default: where ``default_dir()`` lives) whose names start with ``prefix``."""
    base = base or os.path.dirname(default_dir())
    uid = os.getuid()
    found = []
    try:
        entries = list(os.scandir(base))
    except OSError:
        return []
    for e in entries:
        try:
            if not e.name.startswith(prefix) or not e.is_dir(follow_symlinks=False) or e.stat().st_uid != uid:
                continue
        except OSError:
            continue
        pid = _dead_driver_pid(e.path)
        if pid is not None:
            found.append((e.path, pid))
    return sorted(found)


def _clean_before_start(d: str) -> None:
    """Refuses a live driver's directory; removes a dead one's."""
    if remove_dead_driver_dir(d) is None:
        pid = driver_pid_if_active(d)
        if pid is not None:
            raise DriverError(f"a live media driver already uses this directory: dir={d} pid={pid}")


def _check_options(options: Mapping[str, object] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in (options or {}).items():
        if not isinstance(k, str) or not k.startswith("aeron."):
            raise ValueError(f"driver option must be an Aeron property name: option={k!r} expected=aeron.*")
        if k == "aeron.dir":
            raise ValueError("pass the directory as dir=, not as the aeron.dir option")
        out[k] = ("true" if v else "false") if isinstance(v, bool) else str(v)
    return out


class MediaDriver:
    """A running media driver.  Use ``embedded()`` or ``launch()``; close with ``close()`` or ``with``."""

    def __init__(self) -> None:  # use the factory methods
        self.dir = ""
        self.pid = 0
        self.is_embedded = False
        self._embedded: _aeron.EmbeddedDriver | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._remove_dir = False

    # -- embedded ----------------------------------------------------------
    @classmethod
    def embedded(
        cls,
        dir: str | None = None,
        *,
        invoker: bool = False,
        options: Mapping[str, object] | None = None,
        group_access: bool = False,
    ) -> "MediaDriver":
        """Start the C driver in this process.  ``dir=None`` makes a unique directory, removed on close.

        Dead drivers' directories are removed first: ``dir``'s, and the
        ``tickline-*`` ones of crashed processes beside it."""
        opts = dict(EMBEDDED_DEFAULTS)
        opts.update(_check_options(options))
        d = dir or unique_dir()
        _clean_before_start(d)
        for dead, _pid in dead_driver_dirs(os.path.dirname(d), prefix="tickline-"):
            remove_dead_driver_dir(dead)  # checked again just before removing
        self = cls()
        self.dir = d
        self.pid = os.getpid()
        self.is_embedded = True
        self._embedded = _aeron.start_embedded_driver(d, opts, invoker, group_access)
        self._remove_dir = dir is None
        return self

    def do_work(self) -> int:
        """One duty cycle of an ``invoker=True`` embedded driver."""
        if self._embedded is None:
            raise RuntimeError(f"do_work() needs an embedded invoker driver: dir={self.dir}")
        return int(self._embedded.do_work())

    def as_agent(self) -> "_DriverAgent":
        """This invoker-mode driver as an agent for an ``AgentRunner`` or ``AgentInvoker``."""
        return _DriverAgent(self)

    # -- external daemon ---------------------------------------------------
    @classmethod
    def launch(
        cls,
        dir: str | None = None,
        *,
        options: Mapping[str, object] | None = None,
        timeout: float = 10.0,
        stdout: int | None = None,
        stderr: int | None = None,
        group_access: bool = False,
    ) -> "MediaDriver":
        """Start ``aeronmd`` as a child process and wait until its CnC heartbeat shows it is up.

        A dead driver's files in ``dir`` are removed first; the daemon runs
        under a umask of 077 (007 with ``group_access``)."""
        d = dir or unique_dir()
        _clean_before_start(d)
        args = [aeronmd_path(), f"-Daeron.dir={d}"]
        args += [f"-D{k}={v}" for k, v in _check_options(options).items()]
        self = cls()
        self.dir = d
        self._remove_dir = dir is None
        self._process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                                         umask=private_umask(group_access))
        self.pid = self._process.pid
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise DriverError(f"aeronmd exited at start: dir={d} returncode={self._process.returncode}")
            if driver_pid_if_active(d) == self.pid:
                return self
            if time.monotonic() > deadline:
                self.close()
                raise DriverError(f"aeronmd did not come up: dir={d} timeout_s={timeout}")
            time.sleep(0.005)

    # -- both ----------------------------------------------------------------
    @property
    def is_running(self) -> bool:
        if self._embedded is not None:
            return not self._embedded.is_closed
        return self._process is not None and self._process.poll() is None

    def close(self, timeout: float = 10.0) -> None:
        """Stop the driver (SIGTERM for the daemon, then SIGKILL after ``timeout``) and remove its directory if we made it.

        aeronmd exits with the signal's number as its status after a clean shutdown.
        """
        if self._embedded is not None:
            self._embedded.close()
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._remove_dir and self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL the daemon (fault tests); the directory stays until ``close()``."""
        if self._process is None:
            raise RuntimeError("kill() is only for a launched driver")
        self._process.kill()
        self._process.wait()

    def __enter__(self) -> "MediaDriver":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        kind = "embedded" if self.is_embedded else "aeronmd"
        return f"MediaDriver(kind={kind}, dir={self.dir!r}, pid={self.pid}, running={self.is_running})"


class _DriverAgent:
    def __init__(self, driver: MediaDriver) -> None:
        self.driver = driver

    def role_name(self) -> str:
        return f"media-driver[{self.driver.dir}]"

    def on_start(self) -> None:
        pass

    def do_work(self) -> int:
        return self.driver.do_work()

    def on_close(self) -> None:
        self.driver.close()
