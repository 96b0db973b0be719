"""Reading a driver's counters, error log and loss report (the AeronStat family).

``read_stat(dir)`` returns a ``Stat``: the driver's pid, heartbeat age, every counter
(system counters, publisher and subscriber positions, sender limits, back-pressure
events, client heartbeats, and the counters tickline's components own: the archive's,
the FIX gateway's, cluster members', the exchange simulator's and strategies') and its
distinct errors.  Views over it: ``format_stat`` (AeronStat), ``stream_rows`` /
``format_streams`` (StreamStat), ``backlog_rows`` / ``format_backlog`` (BacklogStat),
``format_loss`` over ``read_loss_report`` (LossStat), ``format_prometheus`` (the
Prometheus text exposition format, for a node exporter's textfile collector).

The files are read as untrusted bytes (``cnc.py``): a truncated or corrupt one raises
``CncFormatError``, never crashes.  Reading never writes, so it is safe against a live
driver.  Pure Python: no extension needed.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from . import counter_types as ct
from .cnc import CncFormatError, LossEntry, read_cnc, read_loss_report

__all__ = ["Stat", "CounterRow", "ErrorRow", "StreamRow", "BacklogRow", "CncFormatError", "LossEntry",
           "read_stat", "read_loss_report", "format_stat", "format_streams", "format_backlog", "format_loss",
           "format_prometheus", "stream_rows", "backlog_rows", "COUNTER_TYPES"]

# Type id -> short name, for every type the project knows (driver, archive, components).
COUNTER_TYPES = {t.type_id: t.name for t in ct.TYPES}

_STREAM_TYPES = (ct.PUBLISHER_POSITION, ct.PUBLISHER_LIMIT, ct.SENDER_POSITION, ct.SENDER_LIMIT, ct.SENDER_BPE,
                 ct.RECEIVER_HWM, ct.RECEIVER_POSITION, ct.SUBSCRIBER_POSITION)


@dataclass(frozen=True)
class CounterRow:
    id: int
    type_id: int
    value: int
    label: str
    registration_id: int = 0
    key: bytes = b""

    @property
    def type_name(self) -> str:
        return COUNTER_TYPES.get(self.type_id, str(self.type_id))

    def stream_key(self) -> tuple[int, int, int, str] | None:
        """(registration id, session id, stream id, channel) of a stream position counter, else None."""
        if self.type_id not in _STREAM_TYPES or len(self.key) < 20:
            return None
        reg = int.from_bytes(self.key[0:8], "little", signed=True)
        session = int.from_bytes(self.key[8:12], "little", signed=True)
        stream = int.from_bytes(self.key[12:16], "little", signed=True)
        # The label holds the whole channel ("<name>: <reg> <session> <stream> <channel>[ @<join>]");
        # the key only its first 92 bytes.
        m = re.match(r"[^:]*: (-?\d+) (-?\d+) (-?\d+) (.*)$", self.label)
        if m:
            channel = m.group(4)
            if self.type_id == ct.SUBSCRIBER_POSITION:
                channel = re.sub(r" @-?\d+$", "", channel)
        else:
            n = int.from_bytes(self.key[16:20], "little", signed=True)
            channel = self.key[20:20 + max(0, min(n, len(self.key) - 20))].decode("utf-8", "replace")
        return reg, session, stream, channel


@dataclass(frozen=True)
class ErrorRow:
    count: int
    first_ms: int
    last_ms: int
    text: str


@dataclass(frozen=True)
class Stat:
    dir: str
    pid: int
    cnc_version: int
    start_ms: int
    heartbeat_age_ms: int
    counters: list[CounterRow]
    errors: list[ErrorRow]

    def counter(self, label_regex: str) -> list[CounterRow]:
        """Counters whose label matches ``label_regex`` (``re.search``)."""
        pattern = re.compile(label_regex)
        return [c for c in self.counters if pattern.search(c.label)]

    def by_type(self, type_name: str) -> list[CounterRow]:
        """Counters of one type, e.g. ``"pub-pos"``, ``"sub-pos"``, ``"snd-bpe"``, ``"fix-msgs-in"``."""
        return [c for c in self.counters if c.type_name == type_name]


def read_stat(dir: str, timeout: float = 0.0) -> Stat:
    """Read the CnC file of the driver in ``dir``.  ``DriverError`` if there is none (after
    ``timeout`` seconds of retrying); ``CncFormatError`` if it is damaged."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            f = read_cnc(dir)
            break
        except (FileNotFoundError, CncFormatError) as e:
            if time.monotonic() < deadline:
                time.sleep(0.016)
                continue
            if isinstance(e, CncFormatError):
                raise
            from .._aeron import DriverError

            raise DriverError(f"no driver CnC file to read: dir={dir} fault=user (is a driver running there?)") from None
    h = f.header
    now_ms = time.time_ns() // 1_000_000
    return Stat(
        dir=dir,
        pid=h.pid,
        cnc_version=h.cnc_version,
        start_ms=h.start_timestamp_ms,
        heartbeat_age_ms=now_ms - f.heartbeat_ms,
        counters=[CounterRow(c.id, c.type_id, c.value, c.label, c.registration_id, c.key) for c in f.counters],
        errors=[ErrorRow(e.count, e.first_ms, e.last_ms, e.text) for e in f.errors],
    )


def _ts(ms: int) -> str:
    try:
        return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"
    except (OverflowError, OSError, ValueError):  # a time no calendar holds: the file said so
        return f"{ms}ms"


def _header(stat: Stat, what: str) -> list[str]:
    major, minor, patch = stat.cnc_version >> 16, (stat.cnc_version >> 8) & 0xFF, stat.cnc_version & 0xFF
    return [
        f"{_ts(stat.start_ms)} - {what} (CnC v{major}.{minor}.{patch}), pid {stat.pid}, "
        f"heartbeat age {stat.heartbeat_age_ms}ms, dir {stat.dir}",
        "=" * 80,
    ]


def format_stat(stat: Stat, label_filter: str | None = None, errors: bool = True) -> str:
    """Text in AeronStat's shape: a header line, one line per counter, then the error log."""
    lines = _header(stat, "Aeron Stat")
    pattern = re.compile(label_filter) if label_filter else None
    for c in stat.counters:
        if pattern and not pattern.search(c.label):
            continue
        lines.append(f"{c.id:3d}: {c.value:20,d} - {c.label}")
    if errors:
        lines.append("")
        lines.append(f"{len(stat.errors)} distinct errors observed.")
        for e in stat.errors:
            lines.append(f"***\n{e.count} observations from {_ts(e.first_ms)} to {_ts(e.last_ms)} for:\n {e.text}")
    return "\n".join(lines)


# -- StreamStat and BacklogStat ---------------------------------------------------------------

@dataclass
class StreamRow:
    """One stream's counters in a driver: a (session, stream, channel), its publication's
    position and limit, its sender's, its receiver's, and each subscriber's position."""

    channel: str
    stream_id: int
    session_id: int
    pub_pos: int | None = None
    pub_lmt: int | None = None
    snd_pos: int | None = None
    snd_lmt: int | None = None
    snd_bpe: int | None = None
    rcv_hwm: int | None = None
    rcv_pos: int | None = None
    sub_pos: dict[int, int] = field(default_factory=dict)  # subscription registration id -> position

    @property
    def head(self) -> int | None:
        """The furthest position known to exist: the publisher's, else the receiver's high-water mark."""
        return self.pub_pos if self.pub_pos is not None else self.rcv_hwm

    @property
    def lag(self) -> int | None:
        """How far the slowest subscriber is behind the head (None without both)."""
        if self.head is None or not self.sub_pos:
            return None
        return self.head - min(self.sub_pos.values())


_FIELD = {ct.PUBLISHER_POSITION: "pub_pos", ct.PUBLISHER_LIMIT: "pub_lmt", ct.SENDER_POSITION: "snd_pos",
          ct.SENDER_LIMIT: "snd_lmt", ct.SENDER_BPE: "snd_bpe", ct.RECEIVER_HWM: "rcv_hwm",
          ct.RECEIVER_POSITION: "rcv_pos"}


def stream_rows(stat: Stat, channel: str | None = None, stream_id: int | None = None) -> list[StreamRow]:
    """The stream position counters grouped by (channel, stream, session), optionally only those
    whose channel contains ``channel`` and whose stream id is ``stream_id``."""
    rows: dict[tuple[str, int, int], StreamRow] = {}
    for c in stat.counters:
        k = c.stream_key()
        if k is None:
            continue
        reg, session, stream, chan = k
        if channel is not None and channel not in chan:
            continue
        if stream_id is not None and stream != stream_id:
            continue
        row = rows.setdefault((chan, stream, session), StreamRow(chan, stream, session))
        if c.type_id == ct.SUBSCRIBER_POSITION:
            row.sub_pos[reg] = c.value
        else:
            setattr(row, _FIELD[c.type_id], c.value)
    return sorted(rows.values(), key=lambda r: (r.channel, r.stream_id, r.session_id))


def _n(v: int | None) -> str:
    return "-" if v is None else f"{v:,d}"


def format_streams(stat: Stat, channel: str | None = None, stream_id: int | None = None) -> str:
    """StreamStat: per stream, the publication's position and limit, the sender's, the
    receiver's, each subscriber's position, and the slowest subscriber's lag."""
    lines = _header(stat, "Stream Stat")
    rows = stream_rows(stat, channel, stream_id)
    for r in rows:
        lines.append(f"{r.channel} stream={r.stream_id} session={r.session_id}")
        lines.append(f"  pub-pos={_n(r.pub_pos)} pub-lmt={_n(r.pub_lmt)} snd-pos={_n(r.snd_pos)} "
                     f"snd-lmt={_n(r.snd_lmt)} rcv-hwm={_n(r.rcv_hwm)} rcv-pos={_n(r.rcv_pos)} lag={_n(r.lag)}")
        for reg, pos in sorted(r.sub_pos.items()):
            lag = None if r.head is None else r.head - pos
            lines.append(f"  sub-pos[{reg}]={pos:,d} lag={_n(lag)}")
    lines.append(f"{len(rows)} streams.")
    return "\n".join(lines)


@dataclass(frozen=True)
class BacklogRow:
    channel: str
    stream_id: int
    session_id: int
    sender_backlog: int | None      # pub-pos - snd-pos: written, not yet sent
    sender_window: int | None       # snd-lmt - snd-pos: what flow control still lets it send
    receiver_backlog: int | None    # rcv-hwm - rcv-pos: seen, not yet complete (loss being repaired)
    subscriber_backlog: dict[int, int]  # per subscriber: head (rcv-pos, else pub-pos) - sub-pos


def backlog_rows(stat: Stat, channel: str | None = None, stream_id: int | None = None) -> list[BacklogRow]:
    out = []
    for r in stream_rows(stat, channel, stream_id):
        snd = None if r.pub_pos is None or r.snd_pos is None else r.pub_pos - r.snd_pos
        window = None if r.snd_lmt is None or r.snd_pos is None else r.snd_lmt - r.snd_pos
        rcv = None if r.rcv_hwm is None or r.rcv_pos is None else r.rcv_hwm - r.rcv_pos
        head = r.rcv_pos if r.rcv_pos is not None else r.pub_pos
        subs = {} if head is None else {reg: head - pos for reg, pos in r.sub_pos.items()}
        out.append(BacklogRow(r.channel, r.stream_id, r.session_id, snd, window, rcv, subs))
    return out


def format_backlog(stat: Stat, channel: str | None = None, stream_id: int | None = None) -> str:
    """BacklogStat: per stream, what the sender has not sent, what the receiver has not
    completed, and what each subscriber has not consumed (bytes)."""
    lines = _header(stat, "Backlog Stat")
    rows = backlog_rows(stat, channel, stream_id)
    for r in rows:
        subs = " ".join(f"sub[{reg}]={b:,d}" for reg, b in sorted(r.subscriber_backlog.items())) or "sub=-"
        lines.append(f"{r.channel} stream={r.stream_id} session={r.session_id}: sender_backlog={_n(r.sender_backlog)} "
                     f"sender_window={_n(r.sender_window)} receiver_backlog={_n(r.receiver_backlog)} {subs}")
    lines.append(f"{len(rows)} streams.")
    return "\n".join(lines)


# -- LossStat ---------------------------------------------------------------------------------

def format_loss(dir: str, entries: list[LossEntry], channel: str | None = None, stream_id: int | None = None) -> str:
    """LossStat: one line per (session, stream, channel, source) that lost data."""
    lines = [f"Loss Stat, dir {dir}",
             "#OBSERVATIONS,TOTAL_BYTES_LOST,FIRST_OBSERVATION,LAST_OBSERVATION,SESSION_ID,STREAM_ID,CHANNEL,SOURCE"]
    shown = 0
    for e in entries:
        if channel is not None and channel not in e.channel:
            continue
        if stream_id is not None and e.stream_id != stream_id:
            continue
        shown += 1
        lines.append(f"{e.observation_count},{e.total_bytes_lost},{_ts(e.first_ms)},{_ts(e.last_ms)},"
                     f"{e.session_id},{e.stream_id},{e.channel},{e.source}")
    lines.append(f"{shown} loss entries.")
    return "\n".join(lines)


# -- Prometheus text exposition format --------------------------------------------------------

_NAME_BAD = re.compile(r"[^a-zA-Z0-9_]+")
_PAIR = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(\S+)")
_RESERVED = {"type", "component", "id", "name", "channel", "stream", "session", "registration"}


def _metric_name(s: str) -> str:
    name = _NAME_BAD.sub("_", s).strip("_").lower() or "unnamed"
    return name if not name[0].isdigit() else "_" + name


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def _sample(c: CounterRow) -> tuple[str, str, dict[str, str]]:
    """(metric name, help, labels) of one counter."""
    t = ct.by_id(c.type_id)
    labels: dict[str, str] = {"id": str(c.id), "type": t.name if t else str(c.type_id)}
    if t is None:
        return "aeron_counter", "counters of types tickline does not know", {**labels, "label": c.label}
    labels["component"] = t.component
    if c.type_id in (ct.SYSTEM, ct.ARCHIVE_TOTAL):
        # one metric per system counter / archive total, named by its label ("Bytes sent" -> aeron_bytes_sent)
        what = c.label.partition(":")[0]
        if c.type_id == ct.ARCHIVE_TOTAL:
            what = what.removeprefix("archive ")
            for k, v in _PAIR.findall(c.label.partition(":")[2]):
                labels.setdefault(k.lower(), v)
        prefix = "aeron_" if c.type_id == ct.SYSTEM else "tickline_archive_"
        return prefix + _metric_name(what), t.help, labels
    k = c.stream_key()
    if k is not None:
        reg, session, stream, chan = k
        labels.update(channel=chan, stream=str(stream), session=str(session), registration=str(reg))
        return t.metric, t.help, labels
    # a component's counter: "<component> <what>: k=v ..." -> its pairs as labels
    for name, value in _PAIR.findall(c.label.partition(":")[2]):
        name = name.lower()
        if name.startswith("__"):  # reserved by Prometheus
            name = "label" + name
        labels[name if name not in _RESERVED or name in ("stream", "session") else "label_" + name] = value
    return t.metric, t.help, labels


def format_prometheus(stat: Stat) -> str:
    """Every counter as a Prometheus gauge (text exposition format 0.0.4): one family per
    metric name, with ``# HELP`` and ``# TYPE``, labels for the counter's id, type and
    component, and its stream/session/channel or its component's key=value pairs; plus
    ``aeron_driver_heartbeat_age_ms`` and ``aeron_driver_errors``.  For a node exporter's
    textfile collector (write to a temporary file, then rename it into place)."""
    families: dict[str, tuple[str, list[tuple[dict[str, str], int]]]] = {}

    def add(name: str, help: str, labels: dict[str, str], value: int) -> None:
        families.setdefault(name, (help, []))[1].append((labels, value))

    add("aeron_driver_heartbeat_age_ms", "milliseconds since the driver's last heartbeat", {"pid": str(stat.pid)},
        stat.heartbeat_age_ms)
    add("aeron_driver_errors", "distinct errors in the driver's error log", {"pid": str(stat.pid)}, len(stat.errors))
    for c in stat.counters:
        name, help, labels = _sample(c)
        add(name, help, labels, c.value)
    out = []
    for name, (help, samples) in families.items():
        out.append(f"# HELP {name} {help.replace(chr(92), chr(92) * 2).replace(chr(10), ' ')}")
        out.append(f"# TYPE {name} gauge")
        for labels, value in samples:
            body = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            out.append(f"{name}{{{body}}} {value}")
    return "\n".join(out) + "\n"
