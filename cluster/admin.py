"""The operator's side of a member, in the manner of Aeron's ClusterTool.

Member side (run by :class:`~.daemon.NodeAgent`): :class:`ErrorRing`, the
bounded record of a member's recent error lines (everything it writes to
stderr), and :func:`describe`, what ``tickline cluster tool describe`` shows
of one member.

Tool side: :func:`admin_request` sends one :class:`~.wire.AdminRequest` over a
:class:`~.aeron_io.ClusterLink` and collects the answers.

Offline, from a member's data directory (no process needed): see :mod:`.logtool`.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import deque
from typing import TYPE_CHECKING, Any, TextIO

from . import wire

if TYPE_CHECKING:
    from .aeron_io import ClusterLink
    from .node import ClusterNode

__all__ = ["ErrorRing", "ErrorTee", "describe", "snapshot_files", "admin_request", "ERROR_RING_LINES", "ERROR_LINE_MAX"]

#: the error lines a member keeps (the oldest go first)
ERROR_RING_LINES = 64
#: a longer line is cut here (and says so): the ring stays under ADMIN_DETAIL_MAX as JSON
ERROR_LINE_MAX = 600
#: a partial line (no newline yet) longer than this is recorded as it is
_PARTIAL_MAX = 4096


def _utc(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds % 1 * 1000):03d}Z"


class ErrorRing:
    """The last ERROR_RING_LINES error lines, each with its UTC time, and how many
    there were in all.  Memory is bounded whatever is written."""

    def __init__(self, lines: int = ERROR_RING_LINES) -> None:
        self.lines: deque[tuple[str, str]] = deque(maxlen=lines)
        self.total = 0

    def record(self, line: str, now: float | None = None) -> None:
        line = line.rstrip("\r\n")
        if not line.strip():
            return
        if len(line) > ERROR_LINE_MAX:
            line = line[:ERROR_LINE_MAX] + f"... ({len(line)} chars)"
        self.total += 1
        self.lines.append((_utc(time.time() if now is None else now), line))

    def to_json(self) -> dict[str, Any]:
        return {"total": self.total, "kept": len(self.lines), "errors": [{"time": t, "line": x} for t, x in self.lines]}


class ErrorTee:
    """A text stream that writes through to ``stream`` and records each complete
    line in ``ring``: a member writes its errors (and only those) to stderr."""

    def __init__(self, stream: TextIO, ring: ErrorRing) -> None:
        self.stream = stream
        self.ring = ring
        self._partial = ""

    def write(self, text: str) -> int:
        n = self.stream.write(text)
        buf = self._partial + text
        *complete, self._partial = buf.split("\n")
        for line in complete:
            self.ring.record(line)
        if len(self._partial) > _PARTIAL_MAX:
            self.ring.record(self._partial)
            self._partial = ""
        return n

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str) -> Any:  # fileno, isatty, encoding ...: the real stream's
        return getattr(self.stream, name)


def snapshot_files(directory: str) -> list[dict[str, Any]]:
    """The snapshot files in a member's data directory, oldest first: file, position,
    term and size (from the names ``snap-<position>-<term>.snap``; not read)."""
    out: list[dict[str, Any]] = []
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return out
    for name in names:
        if name.startswith("snap-") and name.endswith(".snap"):
            parts = name[5:-5].split("-")
            if len(parts) == 2 and all(p.isdigit() for p in parts):
                try:
                    size = os.path.getsize(os.path.join(directory, name))
                except OSError:
                    continue
                out.append({"file": name, "position": int(parts[0]), "term": int(parts[1]), "bytes": size})
    return out


def describe(node: "ClusterNode", member: int, directory: str, errors: ErrorRing | None = None,
             io_stats: Any = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """One member as ``describe`` shows it (JSON-ready)."""
    c = node.core
    r = node.recovery
    out: dict[str, Any] = {
        "member": member, "pid": os.getpid(), "role": c.role.value, "term": c.term, "leader": -1 if c.leader is None else c.leader,
        "voted_for": -1 if c.voted_for is None else c.voted_for,
        "log_start": node.log.start_position, "log_end": c.last_position(), "commit": c.commit_position, "applied": c.applied_position,
        "snapshot": c.base_position, "snapshots": snapshot_files(directory), "data_dir": directory,
        "suspended": node.container.suspended, "stopping": node.stopping or node.terminate_at is not None,
        "sessions": len(node.container.sessions), "timers": len(node.container.timers),
        "catch_up_to": c.catch_up_to, "peer_faults": node.peer_faults,
        "recovered": {"log_start": r.first_position, "log_end": r.end_position, "truncated_at": r.truncated_at, "reason": r.reason,
                      "damaged": r.damaged},
    }
    match = c.match_positions()
    if match:
        out["followers"] = {str(p): {"match": pos} for p, pos in sorted(match.items())}
    if errors is not None:
        out["errors"] = errors.total
    if io_stats is not None:
        out["io"] = {k: getattr(io_stats, k) for k in ("sent", "received", "dropped", "malformed", "unauthenticated", "bad_channel")}
    if extra:
        out.update(extra)
    return out


def answer(member: int, request: wire.AdminRequest, code: int, leader: int | None, detail: dict[str, Any] | str) -> wire.AdminResponse:
    """An AdminResponse whose detail (JSON) fits ADMIN_DETAIL_MAX (a list too long is cut)."""
    def dump(d: dict[str, Any]) -> str:
        return json.dumps(d, separators=(",", ":"), sort_keys=True)

    text = detail if isinstance(detail, str) else dump(detail)
    if len(text.encode()) > wire.ADMIN_DETAIL_MAX and isinstance(detail, dict):
        for key in ("errors", "snapshots"):  # the oldest go first, in one pass
            items = detail.get(key)
            excess = len(text.encode()) - wire.ADMIN_DETAIL_MAX + 32  # room for "cut"
            if not isinstance(items, list) or excess <= 0:
                continue
            drop = 0
            while excess > 0 and drop < len(items):
                excess -= len(dump({"x": items[drop]}).encode()) - 6
                drop += 1
            detail[key] = items[drop:]
            detail["cut"] = True
            text = dump(detail)
    if len(text.encode()) > wire.ADMIN_DETAIL_MAX:
        text = json.dumps({"error": "answer too large", "bytes": len(text.encode())})
    return wire.AdminResponse(member, request.request_id, request.action, code, -1 if leader is None else leader, text)


def admin_request(link: "ClusterLink", member: int, action: int, *, timeout: float = 2.0, answers: int = 1,
                  until: Any = None, request_id: int | None = None) -> list[wire.AdminResponse]:
    """Send ``action`` to ``member`` and collect AdminResponses to it for up to ``timeout``
    seconds: returns as soon as ``answers`` have come (from any member), or ``until(answers)``
    says so.  The request is sent once (actions are not idempotent), repeated only
    while the member's ingress is not connected.  The link's credentials go with it."""
    rid = random.getrandbits(62) if request_id is None else request_id
    deadline = time.monotonic() + timeout
    request = wire.AdminRequest(link.client_id, rid, action, link.credentials)
    got: list[wire.AdminResponse] = []
    sent = False
    while time.monotonic() < deadline:
        if not sent:
            sent = link.send(member, request, link.now())
        link.poll_egress()
        keep = []
        for m in link.inbox:
            if isinstance(m, wire.AdminResponse) and m.request_id == rid:
                got.append(m)
            else:
                keep.append(m)
        link.inbox = keep
        if (until(got) if until is not None else len(got) >= answers):
            break
        time.sleep(0.001)
    return got
