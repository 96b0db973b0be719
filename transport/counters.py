"""Reading a driver's counters and error log from its CnC file (like AeronStat).

``read_stat(dir)`` returns a ``Stat``: the driver's pid, heartbeat age,
every counter (system counters, publisher and subscriber positions, sender
limits, back-pressure events, client heartbeats...) and its distinct errors.
Reading never writes to the CnC file, so it is safe against a live driver.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

from .. import _aeron

__all__ = ["Stat", "CounterRow", "ErrorRow", "read_stat", "format_stat", "COUNTER_TYPES"]

# Aeron's counter type ids (the driver's and client's well-known ones).
COUNTER_TYPES = {
    0: "system",
    1: "pub-lmt",
    2: "snd-pos",
    3: "rcv-hwm",
    4: "sub-pos",
    5: "rcv-pos",
    6: "snd-channel",
    7: "rcv-channel",
    9: "snd-lmt",
    11: "client-heartbeat",
    12: "pub-pos",
    13: "snd-bpe",
}


@dataclass(frozen=True)
class CounterRow:
    id: int
    type_id: int
    value: int
    label: str

    @property
    def type_name(self) -> str:
        return COUNTER_TYPES.get(self.type_id, str(self.type_id))


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
        """Counters of one type, e.g. ``"pub-pos"``, ``"sub-pos"``, ``"snd-bpe"``."""
        return [c for c in self.counters if c.type_name == type_name]


def read_stat(dir: str, timeout: float = 0.0) -> Stat:
    """Read the CnC file of the driver in ``dir``; ``DriverError`` if there is none."""
    snap = _aeron.read_cnc(dir, int(timeout * 1000))
    return Stat(
        dir=dir,
        pid=int(snap.pid),
        cnc_version=int(snap.cnc_version),
        start_ms=int(snap.start_timestamp_ms),
        heartbeat_age_ms=int(_aeron.epoch_ms() - snap.heartbeat_ms),
        counters=[CounterRow(int(c.id), int(c.type_id), int(c.value), str(c.label)) for c in snap.counters],
        errors=[ErrorRow(int(e.count), int(e.first_timestamp_ms), int(e.last_timestamp_ms), str(e.text)) for e in snap.errors],
    )


def _ts(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def format_stat(stat: Stat, label_filter: str | None = None, errors: bool = True) -> str:
    """Text in AeronStat's shape: a header line, one line per counter, then the error log."""
    major, minor, patch = stat.cnc_version >> 16, (stat.cnc_version >> 8) & 0xFF, stat.cnc_version & 0xFF
    lines = [
        f"{_ts(stat.start_ms)} - Aeron Stat (CnC v{major}.{minor}.{patch}), pid {stat.pid}, "
        f"heartbeat age {stat.heartbeat_age_ms}ms, dir {stat.dir}",
        "=" * 80,
    ]
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
