"""Reading a member's data directory offline: ``tickline cluster tool recovery-plan``
and ``tickline cluster tool log dump``.

Nothing here writes to the directory.  :func:`recovery_plan` runs the member's
own recovery (:meth:`~.log.SegmentLog.recover`, the snapshot store, the
metadata) over a :class:`ReadOnlyDisk`, which reads the real files and only
records what recovery would change (a torn tail cut, damaged bytes set aside),
so the plan is what the member will do, by the same code.  Meant for a stopped
member; on a running one it shows what a restart now would do.

:func:`read_entries` walks the log's frames (see :mod:`.log` for the framing)
and raises :class:`LogDumpError` naming the file and position of the first
frame that is short, too long, fails its checksum or leaves a gap: a damaged or
hostile file is reported, never trusted.  :func:`describe_entry` decodes an
entry: its kind by ``schemas/cluster.xml``'s ``EntryKind``, its payload by the
layout that enum documents, and a client message through the service's SBE
schemas when given (the framework knows no application's schema: the operator
names it, ``--schema``).
"""

from __future__ import annotations

import builtins
import json
import os
import struct
import time
from typing import Any, Iterator

from .errors import ClusterError, ConfigError, kv
from .log import _HEADER, MAX_PAYLOAD, FsyncPolicy, MetaStore, SegmentLog, SnapshotStore, _crc, load_acked
from .messages import ENTRY_HEADER_LENGTH, KIND_ACTION, KIND_MESSAGE, KIND_SESSION_CLOSE, KIND_SESSION_OPEN, KIND_TIMER, Entry
from .service import ACTION, CLOSE, MESSAGE_HEADER, OPEN, TIMER

__all__ = ["ReadOnlyDisk", "recovery_plan", "format_plan", "LogDumpError", "read_entries", "describe_entry", "load_service_schemas",
           "entry_kind_names"]

#: how much of an undecoded payload is shown (hex)
PAYLOAD_HEX_MAX = 256


class ReadOnlyDisk:
    """The :class:`~.disk.Disk` surface over a real directory that never writes to it:
    reads go to the files (as changed so far in memory), and every change is kept
    in :attr:`changes` as a sentence instead."""

    def __init__(self, directory: str) -> None:
        if not os.path.isdir(directory):
            raise ConfigError("no such member data directory", data_dir=directory)
        self.directory = directory
        self.changes: list[str] = []
        self._data: dict[str, bytes] = {}  # files as changed in memory
        self._gone: set[str] = set()
        self._ticket = 0

    def list(self) -> list[str]:
        names = {n for n in os.listdir(self.directory) if not n.endswith(".tmp")} | set(self._data)
        return sorted(names - self._gone)

    def exists(self, name: str) -> bool:
        return name in self.list()

    def read(self, name: str) -> bytes:
        if name in self._gone:
            raise FileNotFoundError(name)
        if name in self._data:
            return self._data[name]
        with open(os.path.join(self.directory, name), "rb") as f:
            return f.read()

    def size(self, name: str) -> int:
        return len(self.read(name))

    def _change(self, name: str, data: bytes, sentence: str) -> None:
        self._data[name] = data
        self._gone.discard(name)
        self.changes.append(sentence)

    def append(self, name: str, data: bytes) -> None:
        self._change(name, (self.read(name) if self.exists(name) else b"") + data, f"append {len(data)} bytes to {name}")

    def overwrite(self, name: str, data: bytes) -> None:
        self._change(name, data, f"rewrite {name}")

    def truncate(self, name: str, size: int) -> None:
        old = self.read(name)
        if len(old) > size and old[size:].strip(b"\0"):
            self._change(name, old[:size], f"cut {name} to {size} bytes (drop {len(old) - size})")
        else:  # only preallocated zeros go: not worth a line
            self._data[name] = old[:size]

    def delete(self, name: str) -> None:
        self._gone.add(name)
        self._data.pop(name, None)
        self.changes.append(f"delete {name}")

    def write_atomic(self, name: str, data: bytes, sync: bool) -> None:
        self._change(name, data, f"write {name} ({len(data)} bytes)")

    def fsync(self, name: str) -> None:
        pass

    def sync_begin(self, names: "builtins.list[str]") -> int:
        self._ticket += 1
        return self._ticket

    def synced(self) -> int:
        return self._ticket

    def sync_wait(self, ticket: int) -> None:
        pass


def recovery_plan(directory: str) -> dict[str, Any]:
    """What the member whose data directory is ``directory`` will load and replay when it
    starts (JSON-ready): the snapshot, the log range replayed at once (up to the saved
    commit position), the range applied once a leader confirms it, what recovery would
    cut or set aside, and whether the member would refuse to start (``refuses``)."""
    disk = ReadOnlyDisk(directory)
    plan: dict[str, Any] = {"data_dir": directory, "refuses": None}
    snapshots = SnapshotStore(disk)
    snapshot, skipped = snapshots.load_latest()
    plan["skipped_snapshots"] = skipped
    plan["snapshot"] = None
    if snapshot is not None:
        name = SnapshotStore._name(snapshot.position, snapshot.term)
        plan["snapshot"] = {"file": name, "position": snapshot.position, "term": snapshot.term, "bytes": len(snapshot.data)}
    try:
        hs = MetaStore(disk).load()
        plan["meta"] = {"term": hs.term, "voted_for": -1 if hs.voted_for is None else hs.voted_for, "saved_commit": hs.commit_position}
    except ClusterError as exc:
        plan["refuses"] = str(exc)
        return plan
    log = SegmentLog(disk, fsync=FsyncPolicy.NONE)
    try:
        plan["acked"] = load_acked(disk)
        report = log.recover()
    except ClusterError as exc:
        plan["refuses"] = str(exc)
        return plan
    except ValueError as exc:  # e.g. a file named log-<not a number>.seg: the member would stop here too
        bad = [n for n in disk.list() if n.startswith("log-") and n.endswith(".seg") and not n[4:-4].isdigit()]
        plan["refuses"] = kv(error="the log's files cannot be read back", file=",".join(bad) or "?", reason=exc, fault="storage")
        return plan
    plan["segments"] = log.segment_names()
    plan["log"] = {"start": report.first_position, "end": report.end_position}
    base = 0
    entries = list(report.entries)
    if snapshot is not None:
        base = snapshot.position
        if log.start_position > snapshot.position:
            plan["refuses"] = kv(error="log starts after the newest valid snapshot", log_start=log.start_position, snapshot=snapshot.position)
        elif log.end_position < snapshot.position:
            disk.changes.append(f"drop the log: it ends at {log.end_position}, before the snapshot at {snapshot.position}")
            entries = []
    elif log.start_position != 0:
        plan["refuses"] = kv(error="log starts after 0 but no valid snapshot covers it", log_start=log.start_position)
    end = entries[-1].end if entries else base
    commit = max(base, min(hs.commit_position, end))
    replay = [e for e in entries if e.position >= base and e.end <= commit]
    later = [e for e in entries if e.position >= commit]
    plan["replay"] = {"from": base, "to": commit, "entries": len(replay)}
    plan["pending"] = {"from": commit, "to": end, "entries": len(later)}
    plan["tail"] = ("damaged" if report.damaged else "torn" if report.truncated_at is not None else "clean")
    if report.truncated_at is not None:
        plan["cut"] = {"at": report.truncated_at, "reason": report.reason, "dropped_bytes": report.dropped_bytes}
    if report.damaged:
        plan["damage"] = {"file": report.damaged_file, "catch_up_to": report.catch_up_to, "kept": list(report.kept),
                          "valid_after": report.valid_after}
    plan["changes"] = disk.changes
    return plan


def format_plan(member: int | None, plan: dict[str, Any]) -> list[str]:
    """``recovery_plan``'s answer as lines for a person."""
    who = f"member {member}" if member is not None else "the member"
    out = [f"recovery plan for {who} (data dir {plan['data_dir']}):"]
    snap = plan.get("snapshot")
    if snap:
        out.append(f"  load snapshot {snap['file']}: position={snap['position']} term={snap['term']} ({snap['bytes']} bytes)")
    else:
        out.append("  no snapshot: the service starts empty")
    if plan.get("skipped_snapshots"):
        out.append(f"  skip invalid snapshots: {', '.join(plan['skipped_snapshots'])}")
    if "meta" in plan:
        m = plan["meta"]
        out.append(f"  term={m['term']} voted_for={m['voted_for']} saved_commit={m['saved_commit']}")
    if "log" in plan:
        lg = plan["log"]
        out.append(f"  log: positions {lg['start']}..{lg['end']} in {len(plan.get('segments', []))} segment(s): {', '.join(plan.get('segments', [])) or 'none'}")
        r, p = plan["replay"], plan["pending"]
        out.append(f"  replay at start: positions {r['from']}..{r['to']}, {r['entries']} entries (up to the saved commit position)")
        out.append(f"  then: positions {p['from']}..{p['to']}, {p['entries']} entries, applied once a leader confirms them committed")
        tail = plan["tail"]
        if tail == "clean":
            out.append("  tail: clean")
        elif tail == "torn":
            c = plan["cut"]
            out.append(f"  tail: torn at position {c['at']} ({c['reason']}): cut, the rest comes from the leader")
        else:
            d, c = plan["damage"], plan["cut"]
            out.append(f"  DAMAGE at position {c['at']} in {d['file']} ({c['reason']}): kept in {', '.join(d['kept']) or 'none'}; "
                       f"no vote until caught up to {d['catch_up_to']} from the leader")
    changes = plan.get("changes") or []
    out.append(f"  would change: {'; '.join(changes) if changes else 'nothing'}")
    if plan.get("refuses"):
        out.append(f"  REFUSES TO START: {plan['refuses']}")
    return out


class LogDumpError(ClusterError):
    """A log file that cannot be read as entries: names the file and position."""

    fault = "storage"


def _segments(directory: str) -> list[tuple[int, str]]:
    try:
        names = os.listdir(directory)
    except OSError as exc:
        raise ConfigError("cannot read the member's data directory", data_dir=directory, reason=exc.strerror) from None
    out = []
    for n in names:
        if n.startswith("log-") and n.endswith(".seg"):
            digits = n[4:-4]
            if not digits.isdigit() or len(digits) > 20:
                raise LogDumpError("log segment name is not log-<position>.seg", file=os.path.join(directory, n))
            out.append((int(digits), n))
    return sorted(out)


def read_entries(directory: str) -> Iterator[Entry]:
    """Every entry of the log in ``directory``, in order; a bad frame raises
    :class:`LogDumpError` after the entries before it.  Memory: one segment at a time."""
    expected: int | None = None
    for base, name in _segments(directory):
        path = os.path.join(directory, name)
        if expected is not None and base != expected:
            raise LogDumpError("gap in the log: a segment does not start where the previous ended", file=path, position=expected,
                               segment_start=base)
        with open(path, "rb") as f:
            data = f.read()
        offset = 0
        while offset < len(data):
            position = base + offset

            def bad(reason: str, **fields: object) -> LogDumpError:
                return LogDumpError("damaged log frame", file=path, position=position, offset=offset, reason=reason, **fields)

            if not data[offset:].strip(b"\0"):
                break  # preallocated zeros: the segment's clean end
            if len(data) - offset < ENTRY_HEADER_LENGTH:
                raise bad("short_header", bytes_left=len(data) - offset)
            length, crc, term, timestamp, kind = _HEADER.unpack_from(data, offset)
            if length > MAX_PAYLOAD:
                raise bad("bad_length", length=length, max=MAX_PAYLOAD)
            end = offset + ENTRY_HEADER_LENGTH + length
            if end > len(data):
                raise bad("short_payload", length=length, bytes_left=len(data) - offset - ENTRY_HEADER_LENGTH)
            payload = bytes(data[offset + ENTRY_HEADER_LENGTH: end])
            if term <= 0 or _crc(position, term, timestamp, kind, payload) != crc:
                raise bad("crc_mismatch" if term > 0 else "bad_term", term=term)
            yield Entry(position, term, timestamp, kind, payload)
            offset = end
        expected = base + offset


_KIND_NAMES: dict[int, str] | None = None


def entry_kind_names() -> dict[int, str]:
    """Entry kinds by value, named as ``schemas/cluster.xml``'s ``EntryKind`` enum names them."""
    global _KIND_NAMES
    if _KIND_NAMES is None:
        from tickline.codecs import load_builtin
        enum = load_builtin("cluster.xml").types["EntryKind"]
        _KIND_NAMES = {v.value: v.name for v in enum.by_value().values()}  # type: ignore[union-attr]
    return _KIND_NAMES


def load_service_schemas(paths: list[str]) -> list[Any]:
    """The service's SBE schemas (``--schema``); a bad one is the user's error, named."""
    from tickline.codecs import SchemaError, load_schema
    out = []
    for p in paths:
        try:
            out.append(load_schema(p))
        except (SchemaError, OSError) as exc:
            raise ConfigError("cannot load the service schema", file=p, reason=exc) from None
    return out


def decode_payload(payload: bytes, schemas: list[Any]) -> dict[str, Any]:
    """A client message through the schema whose id its SBE header names; else its bytes in hex.
    Hostile bytes are reported in the answer, never raised."""
    from tickline.codecs import MessageError
    from tickline.codecs import otf
    for schema in schemas:
        try:
            header = otf.decode_header(schema, payload)
        except MessageError:
            continue
        if header.get("schemaId") != schema.id:
            continue
        try:
            doc, used = otf.decode(schema, payload)
        except MessageError as exc:
            return {"payload_error": f"not a message of {os.path.basename(schema.file)}: {exc}", "payload_hex": _hex(payload)}
        out: dict[str, Any] = {"message": doc["message"], "fields": doc["fields"]}
        if used != len(payload):
            out["trailing_bytes"] = len(payload) - used
        return out
    return {"payload_hex": _hex(payload), "payload_bytes": len(payload)}


def _hex(b: bytes) -> str:
    return b[:PAYLOAD_HEX_MAX].hex() + ("..." if len(b) > PAYLOAD_HEX_MAX else "")


def describe_entry(e: Entry, schemas: list[Any], committed: bool | None) -> dict[str, Any]:
    """One entry, JSON-ready: position, end, term, time (UTC), kind by name, its payload decoded."""
    names = entry_kind_names()
    out: dict[str, Any] = {"position": e.position, "end": e.end, "term": e.term,
                           "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(e.timestamp / 1000)) + f".{e.timestamp % 1000:03d}Z",
                           "kind": names.get(e.kind, f"UNKNOWN_{e.kind}")}
    if committed is not None:
        out["committed"] = committed
    p = e.payload
    try:
        if e.kind == KIND_SESSION_OPEN:
            out["session"], out["client"] = OPEN.unpack(p)
        elif e.kind == KIND_SESSION_CLOSE:
            (out["session"],) = CLOSE.unpack(p)
        elif e.kind == KIND_TIMER:
            (out["timer"],) = TIMER.unpack(p)
        elif e.kind == KIND_ACTION:
            action, out["client"], out["request"] = ACTION.unpack(p)
            from .wire import ClusterAction
            out["action"] = ClusterAction(action).name if action in ClusterAction._value2member_map_ else action
        elif e.kind == KIND_MESSAGE:
            out["session"], out["correlation"], out["floor"] = MESSAGE_HEADER.unpack_from(p)
            out.update(decode_payload(p[MESSAGE_HEADER.size:], schemas))
        elif p:
            out["payload_hex"] = _hex(p)
    except struct.error:
        out["payload_error"] = f"payload of {len(p)} bytes does not fit kind {out['kind']}"
        out["payload_hex"] = _hex(p)
    return out


def format_entry(d: dict[str, Any]) -> str:
    """One line: key=value, a decoded message as compact JSON."""
    parts = []
    for k, v in d.items():
        if isinstance(v, (dict, list)):
            parts.append(f"{k}={json.dumps(v, separators=(',', ':'), ensure_ascii=True)}")
        elif isinstance(v, bool):
            parts.append(f"{k}={'yes' if v else 'no'}")
        else:
            parts.append(f"{k}={v}")
    return " ".join(parts)

