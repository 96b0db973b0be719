"""``tickline up``: start every process of a topology, and watch them.

- starts the children in their groups' order (driver, cluster members, venue,
  adapter, clients), each ``python -m tickline ...`` in its own process group;
- prefixes and timestamps every line they print (``2026-12-06T12:00:01.234567Z member-2 | ...``,
  the UTC timestamp of the logs; a child's log line keeps its own, it is not stamped twice);
- prints a status table (process, role, pid, uptime, state, messages, errors)
  every ``status_interval`` seconds, the cluster members' roles included;
- a child that dies is reported, once; it is restarted only with ``restart``;
- ``stop()`` (on SIGTERM/SIGINT) stops them in the reverse order: clients
  first, then the adapter and venue, then the members (a leader hands its
  leadership over on SIGTERM before it exits), the driver last; whatever does
  not exit within ``grace`` seconds is killed.

The supervisor reads its children's output with one selector on its own
thread (the caller's): no threads are started.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import IO, Callable

from tickline.logs import STAMP, utc_stamp

from .config import Process, Topology


def _stop_with_supervisor() -> None:
    # In the child, before exec: SIGTERM (its clean stop) when the supervisor dies, even by
    # SIGKILL, so a killed `tickline up` or demo leaves no process running and no driver
    # directory behind.  (start_new_session keeps a terminal's Ctrl-C for the supervisor.)
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

__all__ = ["Supervisor", "Child"]


@dataclass
class Child:
    spec: Process
    proc: subprocess.Popen | None = None
    started: float = 0.0
    exit_code: int | None = None
    reported: bool = False
    restarts: int = 0
    buf: bytes = b""
    lines: list[str] = field(default_factory=list)  # the last lines it printed

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def _stamp() -> str:
    return utc_stamp(time.time())


class Supervisor:
    def __init__(self, topology: Topology, *, restart: bool = False, out: IO[str] | None = None,
                 echo: Callable[[str, str], bool] | None = None, grace: float = 8.0, log_level: str | None = None) -> None:
        """``echo(name, line)`` decides which child lines are printed (default: all); ``log_level``
        (else the inherited ``TICKLINE_LOG_LEVEL``) is every child's."""
        self.topology = topology
        self.log_level = log_level
        self.restart = restart
        self.out = out or sys.stdout
        self.echo = echo
        self.grace = grace
        self.children = {p.name: Child(p) for p in topology.processes}
        self.sel = selectors.DefaultSelector()
        self.events: list[str] = []  # deaths and restarts, for the caller's report
        self._link = None
        self.stopping = False

    # ---------------------------------------------------------------- start / stop

    def start(self) -> None:
        os.makedirs(self.topology.status_dir, mode=0o700, exist_ok=True)
        groups = sorted({c.spec.group for c in self.children.values()})
        for g in groups:
            for c in self.children.values():
                if c.spec.group == g:
                    self._spawn(c)
            if g == 0:
                self._wait_for_driver()

    def _spawn(self, c: Child) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if self.log_level:
            env["TICKLINE_LOG_LEVEL"] = self.log_level
        c.proc = subprocess.Popen([sys.executable, "-m", "tickline", *c.spec.argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, start_new_session=True, env=env, preexec_fn=_stop_with_supervisor)
        c.started = time.monotonic()
        c.exit_code = None
        c.reported = False
        assert c.proc.stdout is not None
        os.set_blocking(c.proc.stdout.fileno(), False)
        self.sel.register(c.proc.stdout, selectors.EVENT_READ, c)

    def _wait_for_driver(self, timeout: float = 15.0) -> None:
        cnc = os.path.join(self.topology.driver_dir, "cnc.dat")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pump(0.05)
            if os.path.exists(cnc):
                time.sleep(0.2)  # the driver maps it, then initialises it
                return
            d = self.children.get("driver")
            if d is not None and not d.alive:
                break
        raise RuntimeError(f"the media driver did not start: fault=ours dir={self.topology.driver_dir}")

    def stop(self) -> None:
        self.stopping = True
        self.restart = False
        leader = None
        if any(c.alive and c.spec.name.startswith("member-") for c in self.children.values()):
            try:
                leader = self.leader(timeout=0.2)
            except Exception:  # no answer is no leader: every member is stopped alike
                leader = None
        if self._link is not None:
            self._link.close()
            self._link = None
        for g in sorted({c.spec.group for c in self.children.values()}, reverse=True):
            group = [c for c in self.children.values() if c.spec.group == g and c.alive]
            first = self.children.get(f"member-{leader}")
            if first is not None and first in group and len(group) > 1:
                # the leader first: on SIGTERM it hands leadership to a follower that is still
                # running, so the members that stop after it see a clean leader change
                self._terminate([first])
                group.remove(first)
            self._terminate(group)
        self.pump(0.0)
        for c in self.children.values():
            if c.proc is not None and c.proc.stdout is not None:
                try:
                    self.sel.unregister(c.proc.stdout)
                except (KeyError, ValueError):
                    pass
                c.proc.stdout.close()
        self.sel.close()

    def _terminate(self, group: list[Child]) -> None:
        """SIGTERM each, wait up to ``grace`` s for all, SIGKILL the rest."""
        for c in group:
            try:
                os.killpg(c.proc.pid, signal.SIGTERM)  # type: ignore[union-attr]
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + self.grace
        while any(c.alive for c in group) and time.monotonic() < deadline:
            self.pump(0.05)
        for c in group:
            if c.alive:
                self._line(c, f"did not stop within {self.grace:g} s: killed")
                os.killpg(c.proc.pid, signal.SIGKILL)  # type: ignore[union-attr]
                c.proc.wait()  # type: ignore[union-attr]

    def stop_child(self, name: str) -> None:
        """Stop one child as ``stop`` would (SIGTERM, up to ``grace`` s, then SIGKILL): not
        restarted, not reported as died.  The others run on."""
        c = self.children[name]
        if not c.alive:
            return
        restart, stopping = self.restart, self.stopping
        self.restart, self.stopping = False, True
        try:
            self._terminate([c])
            self.pump(0.0)
            self._reap(c)
        finally:
            self.restart, self.stopping = restart, stopping

    def kill(self, name: str, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` to a child (the demo's chaos, the tests' faults); returns its pid."""
        c = self.children[name]
        assert c.proc is not None
        os.killpg(c.proc.pid, sig)
        return c.proc.pid

    def respawn(self, name: str) -> None:
        c = self.children[name]
        if c.alive:
            return
        self._reap(c)
        c.restarts += 1
        self._spawn(c)
        self._note(c, f"restarted (restart {c.restarts})")

    # ---------------------------------------------------------------- the loop

    def pump(self, timeout: float) -> None:
        """Read what the children printed (up to ``timeout`` s), and notice deaths."""
        for key, _ in self.sel.select(timeout):
            c: Child = key.data
            try:
                data = os.read(key.fd, 65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                self.sel.unregister(key.fileobj)
                if c.buf:
                    self._line(c, c.buf.decode(errors="replace"))
                    c.buf = b""
                continue
            c.buf += data
            *lines, c.buf = c.buf.split(b"\n")
            for raw in lines:
                self._line(c, raw.decode(errors="replace"))
        for c in self.children.values():
            if c.proc is not None and not c.reported and c.proc.poll() is not None:
                self._reap(c)
                if self.restart:
                    time.sleep(0.2)
                    self.respawn(c.spec.name)

    def _reap(self, c: Child) -> None:
        if c.proc is None or c.reported:
            return
        c.exit_code = c.proc.poll()
        c.reported = True
        if c.proc.stdout is not None:
            try:
                rest = c.proc.stdout.read() or b""
            except (OSError, ValueError):
                rest = b""
            for raw in (c.buf + rest).split(b"\n"):
                if raw:
                    self._line(c, raw.decode(errors="replace"))
            c.buf = b""
            try:
                self.sel.unregister(c.proc.stdout)
            except (KeyError, ValueError):
                pass
        if self.stopping:
            self._line(c, f"** stopped code={c.exit_code}")  # a planned stop: shown where lines are
            return
        self._note(c, f"DIED code={c.exit_code}" + ("" if self.restart else " (not restarted: tickline up --restart restarts)"))

    def _note(self, c: Child, what: str) -> None:
        self.events.append(f"{_stamp()} {c.spec.name} {what}")
        self._line(c, f"** {what}", force=True)

    def _line(self, c: Child, line: str, force: bool = False) -> None:
        c.lines = (c.lines + [line])[-20:]
        if force or self.echo is None or self.echo(c.spec.name, line):
            # a line that carries the common timestamp (a child's log event) keeps its own, in front
            m = STAMP.match(line)
            stamp, text = (m.group(), line[m.end() + 1:]) if m else (_stamp(), line)
            print(f"{stamp} {c.spec.name:<12} | {text}", file=self.out, flush=True)

    # ---------------------------------------------------------------- status

    def member_roles(self, timeout: float = 0.3) -> dict[int, str]:
        """Each member's role as it answers a status request (``?`` if it does not)."""
        from tickline.cluster.aeron_io import ClusterLink, query_status

        if self._link is None:
            try:
                self._link = ClusterLink(self.topology.members, aeron_base=self.topology.driver_dir)
            except Exception:  # the driver is not up (yet): no roles to show
                return {}
        roles = {}
        for m in sorted(self.topology.members):
            st = query_status(self._link, m, timeout=timeout)
            roles[m] = "?" if st is None else st.role
        return roles

    def leader(self, timeout: float = 0.3) -> int | None:
        for m, role in self.member_roles(timeout).items():
            if role == "leader":
                return m
        return None

    def status_rows(self, roles: dict[int, str] | None = None) -> list[list[str]]:
        rows = []
        now = time.monotonic()
        for c in self.children.values():
            role = c.spec.role
            if c.spec.name.startswith("member-") and roles:
                role = f"cluster {roles.get(int(c.spec.name.split('-')[1]), '?')}"
            msgs = errs = "-"
            if c.spec.status_file and os.path.exists(c.spec.status_file):
                try:
                    with open(c.spec.status_file) as f:
                        st = json.load(f)
                    msgs, errs = str(st.get("messages", "-")), str(st.get("errors", st.get("bad", "-")))
                    if isinstance(st.get("errors"), list):
                        errs = str(st.get("bad", 0))
                    if "counters" in st:  # a strategy's (tickline strategy run)
                        ctr = st["counters"]
                        md, orders = ctr.get("md", {}), ctr.get("orders", {})
                        msgs = str(ctr.get("sent", 0) + md.get("received", 0) + orders.get("reports", 0))
                        errs = str(md.get("malformed", 0) + orders.get("malformed", 0) + orders.get("unknown", 0)
                                   + ctr.get("callback_errors", 0))
                except (OSError, ValueError):
                    pass
            state = "running" if c.alive else f"exited {c.exit_code}" if c.proc is not None else "not started"
            pid = str(c.proc.pid) if c.proc is not None else "-"
            up = f"{now - c.started:.0f}s" if c.alive else "-"
            rows.append([c.spec.name, role, pid, up, state, msgs, errs])
        return rows

    def status_table(self, roles: dict[int, str] | None = None) -> str:
        head = ["process", "role", "pid", "uptime", "state", "messages", "errors"]
        rows = self.status_rows(roles)
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        fmt = lambda r: "  ".join(v.ljust(w) for v, w in zip(r, widths))  # noqa: E731
        return "\n".join([fmt(head), fmt(["-" * w for w in widths]), *map(fmt, rows)])
