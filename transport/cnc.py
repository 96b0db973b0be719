"""Reading a media driver's files as untrusted bytes: ``cnc.dat`` (its counters, error log,
heartbeat) and ``loss-report.dat`` (the loss it observed).

Another process writes these files and a damaged or hostile one may say anything, so
nothing here maps them or follows an offset unchecked: each section is read with
``pread`` after its offset and length were checked against the file's size (Python
integers, so no sum overflows), every record's fields are range-checked, and a file
that does not hold together raises ``CncFormatError`` naming the file, the offset and
what was wrong.  A file truncated while being read gives short reads, which are
checked the same way.  Reading never writes.

Layouts (Aeron's CnC version 0.x, little-endian), learned from Aeron's documentation
and headers:

- ``cnc.dat``: a 128-byte header (version, the five section lengths, client liveness
  timeout, start time, pid, page size), then the to-driver ring buffer (its trailer
  holds the driver's heartbeat), the to-clients buffer, the counters' metadata
  (512-byte records: state, type id, free-for-reuse deadline, 112-byte key, label
  length and up to 380 bytes of label), the counters' values (128-byte records:
  value, registration id, owner id, reference id) and the error log (records of
  length, count, last and first observation times, then the text, 8-byte aligned).
- ``loss-report.dat``: records at 64-byte boundaries: observation count, bytes lost,
  first and last observation times, session id, stream id, then the channel and the
  source, each a 4-byte length and its bytes.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

__all__ = ["CncFormatError", "CncHeader", "RawCounter", "RawError", "LossEntry", "CncFile",
           "read_cnc", "read_loss_report", "CNC_FILE", "LOSS_REPORT_FILE"]

CNC_FILE = "cnc.dat"
LOSS_REPORT_FILE = "loss-report.dat"
CNC_MAJOR_VERSION = 0

_HEADER = struct.Struct("<iiiiiiqqqi")  # version, 5 lengths, liveness ns, start ms, pid, page size
HEADER_LENGTH = 128
METADATA_RECORD = 512
VALUE_RECORD = 128
MAX_KEY = 112
MAX_LABEL = 380
_META = struct.Struct("<iiq")            # state, type id, free-for-reuse deadline
_LABEL_OFFSET = 16 + MAX_KEY             # the label length, then the label
_VALUE = struct.Struct("<qqqq")          # value, registration id, owner id, reference id
RB_TRAILER = 6 * 128                     # a ring buffer's trailer; the consumer heartbeat at +640
RB_HEARTBEAT_OFFSET = 5 * 128
_ERROR_HEADER = struct.Struct("<iiqq")   # length, count, last ms, first ms
_LOSS = struct.Struct("<qqqqii")         # count, bytes, first ms, last ms, session, stream
LOSS_ALIGNMENT = 64
STATE_UNUSED, STATE_ALLOCATED, STATE_RECLAIMED = 0, 1, -1
# Sections larger than this are refused rather than read (Aeron's own maxima are far below).
MAX_SECTION = 1 << 30


class CncFormatError(ValueError):
    """A driver file that does not hold together (truncated, corrupt, another version)."""


def _fail(path: str, offset: int, what: str, **fields: object) -> CncFormatError:
    extra = "".join(f" {k}={v}" for k, v in fields.items())
    return CncFormatError(f"bad driver file: {what}: file={path} offset={offset}{extra} fault=peer "
                          f"(written by the media driver; a damaged or foreign file)")


@dataclass(frozen=True)
class CncHeader:
    cnc_version: int
    to_driver_length: int
    to_clients_length: int
    counters_metadata_length: int
    counters_values_length: int
    error_log_length: int
    client_liveness_timeout_ns: int
    start_timestamp_ms: int
    pid: int
    file_page_size: int


@dataclass(frozen=True)
class RawCounter:
    id: int
    type_id: int
    value: int
    registration_id: int
    owner_id: int
    reference_id: int
    key: bytes
    label: str


@dataclass(frozen=True)
class RawError:
    count: int
    first_ms: int
    last_ms: int
    text: str


@dataclass(frozen=True)
class LossEntry:
    observation_count: int
    total_bytes_lost: int
    first_ms: int
    last_ms: int
    session_id: int
    stream_id: int
    channel: str
    source: str


class _File:
    """An open file read with bounds-checked preads."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self.size = os.fstat(self.fd).st_size

    def read(self, offset: int, length: int, what: str) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise _fail(self.path, offset, f"{what} lies outside the file", length=length, file_size=self.size)
        data = os.pread(self.fd, length, offset)
        if len(data) != length:  # the file shrank under us
            raise _fail(self.path, offset, f"{what} truncated while reading", length=length, got=len(data))
        return data

    def close(self) -> None:
        os.close(self.fd)


def _text(b: bytes) -> str:
    return b.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class CncFile:
    path: str
    header: CncHeader
    heartbeat_ms: int
    counters: list[RawCounter]
    errors: list[RawError]


def read_cnc(dir: str, *, counters: bool = True, errors: bool = True) -> CncFile:
    """Read ``dir/cnc.dat``.  ``FileNotFoundError`` when there is none (no driver ever ran
    there); ``CncFormatError`` when it does not hold together; other ``OSError`` as raised."""
    path = os.path.join(dir, CNC_FILE)
    f = _File(path)
    try:
        if f.size < HEADER_LENGTH:
            raise _fail(path, 0, "file shorter than its header (a driver starting, or a truncated file)",
                        file_size=f.size, header=HEADER_LENGTH)
        h = CncHeader(*_HEADER.unpack_from(f.read(0, _HEADER.size, "header")))
        if h.cnc_version == 0:
            raise _fail(path, 0, "no version yet (a driver still starting)")
        if (h.cnc_version >> 16) != CNC_MAJOR_VERSION:
            raise _fail(path, 0, "CnC version not understood", version=_version(h.cnc_version),
                        expected=f"{CNC_MAJOR_VERSION}.x")
        lengths = {"to_driver": h.to_driver_length, "to_clients": h.to_clients_length,
                   "counters_metadata": h.counters_metadata_length, "counters_values": h.counters_values_length,
                   "error_log": h.error_log_length}
        offset = HEADER_LENGTH
        offsets: dict[str, int] = {}
        for name, n in lengths.items():
            if not 0 <= n <= MAX_SECTION:
                raise _fail(path, offset, "section length out of range", section=name, length=n, max=MAX_SECTION)
            offsets[name] = offset
            offset += n
        if offset > f.size:
            raise _fail(path, HEADER_LENGTH, "sections extend past the end of the file (truncated?)",
                        needed=offset, file_size=f.size)
        heartbeat = -1
        if h.to_driver_length >= RB_TRAILER:
            at = offsets["to_driver"] + h.to_driver_length - RB_TRAILER + RB_HEARTBEAT_OFFSET
            (heartbeat,) = struct.unpack("<q", f.read(at, 8, "driver heartbeat"))
        rows: list[RawCounter] = []
        if counters:
            rows = _counters(f, offsets["counters_metadata"], h.counters_metadata_length,
                             offsets["counters_values"], h.counters_values_length)
        errs: list[RawError] = []
        if errors:
            errs = _errors(f, offsets["error_log"], h.error_log_length)
        return CncFile(path, h, heartbeat, rows, errs)
    finally:
        f.close()


def _counters(f: _File, meta_at: int, meta_len: int, values_at: int, values_len: int) -> list[RawCounter]:
    meta = f.read(meta_at, meta_len, "counters metadata")
    values = f.read(values_at, values_len, "counters values")
    out: list[RawCounter] = []
    n = min(meta_len // METADATA_RECORD, values_len // VALUE_RECORD)
    for cid in range(n):
        m = cid * METADATA_RECORD
        state, type_id, _deadline = _META.unpack_from(meta, m)
        if state == STATE_UNUSED:
            break  # records are allocated in order: the first unused one ends the list
        if state != STATE_ALLOCATED:
            if state != STATE_RECLAIMED:
                raise _fail(f.path, meta_at + m, "counter record in an unknown state", counter_id=cid, state=state)
            continue
        (label_len,) = struct.unpack_from("<i", meta, m + _LABEL_OFFSET)
        if not 0 <= label_len <= MAX_LABEL:
            raise _fail(f.path, meta_at + m + _LABEL_OFFSET, "counter label length out of range", counter_id=cid,
                        label_length=label_len, max=MAX_LABEL)
        key = meta[m + 16: m + 16 + MAX_KEY]
        label = _text(meta[m + _LABEL_OFFSET + 4: m + _LABEL_OFFSET + 4 + label_len])
        value, reg, owner, ref = _VALUE.unpack_from(values, cid * VALUE_RECORD)
        out.append(RawCounter(cid, type_id, value, reg, owner, ref, key, label))
    return out


def _errors(f: _File, at: int, length: int) -> list[RawError]:
    buf = f.read(at, length, "error log")
    out: list[RawError] = []
    off = 0
    while off + _ERROR_HEADER.size <= length:
        rec_len, count, last, first = _ERROR_HEADER.unpack_from(buf, off)
        if rec_len == 0:
            break
        if rec_len < _ERROR_HEADER.size or rec_len > length - off:
            raise _fail(f.path, at + off, "error log record length out of range", length=rec_len,
                        remaining=length - off)
        out.append(RawError(count, first, last, _text(buf[off + _ERROR_HEADER.size: off + rec_len])))
        off += (rec_len + 7) & ~7
    return out


def read_loss_report(dir: str) -> list[LossEntry]:
    """Read ``dir/loss-report.dat``: one entry per (session, stream, channel, source) that lost
    data.  ``FileNotFoundError`` when the driver wrote none; ``CncFormatError`` when damaged."""
    path = os.path.join(dir, LOSS_REPORT_FILE)
    f = _File(path)
    try:
        buf = f.read(0, min(f.size, MAX_SECTION), "loss report")
    finally:
        f.close()
    out: list[LossEntry] = []
    off = 0
    size = len(buf)
    while off + _LOSS.size <= size:
        count, lost, first, last, session, stream = _LOSS.unpack_from(buf, off)
        if count <= 0:
            break  # entries are written in order, the count last: the first empty one ends the list
        at = off + _LOSS.size
        channel, at = _string(path, buf, at, "channel")
        at = off + _LOSS.size + ((4 + len(channel) + 3) & ~3)  # the channel is padded to 4 bytes
        source, at = _string(path, buf, at, "source")
        out.append(LossEntry(count, lost, first, last, session, stream, _text(channel), _text(source)))
        off += (at - off + LOSS_ALIGNMENT - 1) & ~(LOSS_ALIGNMENT - 1)
    return out


def _string(path: str, buf: bytes, at: int, what: str) -> tuple[bytes, int]:
    if at + 4 > len(buf):
        raise _fail(path, at, f"loss entry's {what} length past the end of the file", file_size=len(buf))
    (n,) = struct.unpack_from("<i", buf, at)
    if not 0 <= n <= len(buf) - at - 4:
        raise _fail(path, at, f"loss entry's {what} length out of range", length=n, remaining=len(buf) - at - 4)
    return buf[at + 4: at + 4 + n], at + 4 + n


def _version(v: int) -> str:
    return f"{(v >> 16) & 0xFF}.{(v >> 8) & 0xFF}.{v & 0xFF}"
