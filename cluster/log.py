"""The durable replicated log (segment files), the persisted term/vote record
and the snapshot store.

Segment ``log-<base position>.seg`` holds whole entries starting at that log
position; a new segment starts when the current one reaches
``segment_size``.  Each entry is framed as::

    length    u32   payload length
    crc       u32   zlib.crc32 of (position, term, timestamp, kind) + payload
    term      i64
    timestamp i64
    kind      u32
    payload   length bytes

The position is in the checksum, so a frame found at the wrong offset fails
it.  Recovery scans every segment in order and stops at the first frame that
is short or fails its checksum: that tail (torn by a crash, or corrupted) is
truncated and later segments are deleted, so a damaged entry is never applied;
the member fetches what it lost from the leader.  That recovers a prefix of
the log as written only because a cut (:meth:`SegmentLog.truncate`) is made
durable before anything is written after it.
"""

from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass

from .disk import Disk
from .errors import ConfigError, LogCorruptionError
from .messages import ENTRY_HEADER_LENGTH, Entry, HardState, Snapshot

__all__ = ["FsyncPolicy", "SegmentLog", "RecoveryReport", "MetaStore", "SnapshotStore", "encode_entry"]

_HEADER = struct.Struct("<IIqqI")
_CRC_PREFIX = struct.Struct("<qqqI")
assert _HEADER.size == ENTRY_HEADER_LENGTH
MAX_PAYLOAD = 16 * 1024 * 1024


class FsyncPolicy(enum.Enum):
    ALWAYS = "always"  # fsync before the Ready's messages go out: nothing acknowledged is lost
    NONE = "none"  # leave it to the OS: survives a process kill, not a power cut

    @classmethod
    def parse(cls, value: str) -> "FsyncPolicy":
        try:
            return cls(value)
        except ValueError:
            raise ConfigError("invalid cluster config", key="fsync", value=value, expected="always|none") from None


def _crc(position: int, term: int, timestamp: int, kind: int, payload: bytes) -> int:
    return zlib.crc32(payload, zlib.crc32(_CRC_PREFIX.pack(position, term, timestamp, kind)))


def encode_entry(e: Entry) -> bytes:
    return _HEADER.pack(len(e.payload), _crc(e.position, e.term, e.timestamp, e.kind, e.payload), e.term, e.timestamp, e.kind) + e.payload


def _segment_name(base: int) -> str:
    return f"log-{base:020d}.seg"


@dataclass(frozen=True)
class RecoveryReport:
    entries: tuple[Entry, ...]
    first_position: int
    end_position: int
    truncated_at: int | None  # log position where a bad tail was cut, if any
    dropped_bytes: int
    reason: str | None  # e.g. "short_header", "short_payload", "crc_mismatch", "gap"


class SegmentLog:
    def __init__(self, disk: Disk, *, segment_size: int = 64 * 1024 * 1024, fsync: FsyncPolicy = FsyncPolicy.ALWAYS) -> None:
        if segment_size < ENTRY_HEADER_LENGTH:
            raise ConfigError("invalid cluster config", key="segment_size", value=segment_size, expected=f">={ENTRY_HEADER_LENGTH}")
        self.disk = disk
        self.segment_size = segment_size
        self.fsync_policy = fsync
        self._segments: list[list[int]] = []  # [base, size] in position order
        self._dirty: set[int] = set()
        self._start = 0

    # ---------------------------------------------------------------- recovery

    def recover(self) -> RecoveryReport:
        bases = sorted(int(n[4:-4]) for n in self.disk.list() if n.startswith("log-") and n.endswith(".seg"))
        entries: list[Entry] = []
        self._segments = []
        truncated_at = None
        dropped = 0
        reason = None
        expected = bases[0] if bases else 0
        self._start = expected
        for k, base in enumerate(bases):
            name = _segment_name(base)
            if truncated_at is not None or base != expected:
                if truncated_at is None:
                    truncated_at, reason = expected, "gap"
                dropped += self.disk.size(name)
                self.disk.delete(name)
                continue
            data = self.disk.read(name)
            offset = 0
            while offset < len(data):
                position = base + offset
                if len(data) - offset < ENTRY_HEADER_LENGTH:
                    reason = "short_header"
                    break
                length, crc, term, timestamp, kind = _HEADER.unpack_from(data, offset)
                if length > MAX_PAYLOAD or offset + ENTRY_HEADER_LENGTH + length > len(data):
                    reason = "short_payload" if length <= MAX_PAYLOAD else "bad_length"
                    break
                payload = bytes(data[offset + ENTRY_HEADER_LENGTH: offset + ENTRY_HEADER_LENGTH + length])
                if _crc(position, term, timestamp, kind, payload) != crc:
                    reason = "crc_mismatch"
                    break
                entries.append(Entry(position, term, timestamp, kind, payload))
                offset += ENTRY_HEADER_LENGTH + length
            if offset < len(data) and len(data.rstrip(b"\0")) <= offset:
                # Only zeros from here, however few: preallocated space (see OsDisk), the
                # clean end of this segment (a full segment keeps the zeros it was grown
                # by when the log moves on).  No entry starts with a zero header (terms
                # start at 1), and an entry that reached the disk in part is not all zeros.
                self.disk.truncate(name, offset)
                data = data[:offset]
                reason = None  # what stopped the scan was the zeros
            if offset < len(data):
                truncated_at = base + offset
                dropped += len(data) - offset
                self.disk.truncate(name, offset)
            # What we just read may be only in the page cache (a kill -9 keeps
            # unsynced writes readable).  Make it durable before the member acts
            # on it, or a later power cut could take back entries it acknowledged.
            if offset < len(data) or self.fsync_policy is FsyncPolicy.ALWAYS:
                self.disk.fsync(name)
            self._segments.append([base, offset])
            expected = base + offset
        return RecoveryReport(tuple(entries), self._start, self.end_position, truncated_at, dropped, reason)

    # ---------------------------------------------------------------- writes

    @property
    def end_position(self) -> int:
        if not self._segments:
            return self._start
        base, size = self._segments[-1]
        return base + size

    @property
    def start_position(self) -> int:
        return self._segments[0][0] if self._segments else self._start

    def append(self, entries: tuple[Entry, ...] | list[Entry]) -> None:
        """Append a batch: one write per segment touched, not one per entry."""
        end = self.end_position
        seg: list[int] | None = self._segments[-1] if self._segments else None
        parts: list[bytes] = []
        for e in entries:
            if e.position != end:
                raise LogCorruptionError("append at wrong position", expected=end, position=e.position)
            if seg is None or seg[1] >= self.segment_size:
                if parts:
                    self._write(seg, parts)  # type: ignore[arg-type]
                    parts = []
                seg = [e.position, 0]
                self._segments.append(seg)
            data = encode_entry(e)
            parts.append(data)
            seg[1] += len(data)
            end += len(data)
        if parts:
            self._write(seg, parts)  # type: ignore[arg-type]

    def _write(self, seg: list[int], parts: list[bytes]) -> None:
        self.disk.append(_segment_name(seg[0]), b"".join(parts))
        self._dirty.add(seg[0])

    def truncate(self, position: int) -> None:
        """Cut the log back to end at ``position`` (no-op at or past the end).

        The cut is durable when this returns (policy ``always``), before
        anything is appended after it.  Otherwise a power cut could bring back
        the old tail of this segment while entries written after the cut
        survive in the next one: if the old tail ends exactly where that next
        segment starts, recovery reads one contiguous, checksummed log that
        splices two histories, and its last entries would then match a
        leader's (same position and term) above a prefix that does not."""
        if position >= self.end_position:
            return
        while self._segments and self._segments[-1][0] > position:
            base, _ = self._segments.pop()
            self.disk.delete(_segment_name(base))  # deletes are durable (the disk syncs the directory)
            self._dirty.discard(base)
        if not self._segments or position < self._segments[0][0]:
            raise LogCorruptionError("truncate below the start of the log", position=position, start=self.start_position)
        seg = self._segments[-1]
        size = position - seg[0]
        if seg[1] == size:
            return  # the cut fell on this segment's end: only later segments went
        seg[1] = size
        name = _segment_name(seg[0])
        self.disk.truncate(name, size)
        if self.fsync_policy is FsyncPolicy.ALWAYS:
            self.disk.fsync(name)
            self._dirty.discard(seg[0])
        else:
            self._dirty.add(seg[0])

    def reset(self, position: int) -> None:
        """Delete every segment; the next entry appended starts at ``position``."""
        for base, _ in self._segments:
            self.disk.delete(_segment_name(base))
        self._segments = []
        self._dirty.clear()
        self._start = position

    def remove_before(self, position: int) -> int:
        """Delete segments whose entries all end at or before ``position`` (after a snapshot there).
        Returns how many were removed; the segment containing ``position`` stays."""
        removed = 0
        while len(self._segments) > 1 and self._segments[1][0] <= position:
            base, _ = self._segments.pop(0)
            self.disk.delete(_segment_name(base))
            self._dirty.discard(base)
            removed += 1
        return removed

    def sync(self) -> None:
        if self.fsync_policy is FsyncPolicy.ALWAYS:
            for base in sorted(self._dirty):
                self.disk.fsync(_segment_name(base))
        self._dirty.clear()

    def sync_begin(self) -> int | None:
        """Start making what was appended durable, in the background if the disk
        can (see :mod:`.disk`); the disk's ticket for it, or None if there is
        nothing to sync under this policy."""
        if self.fsync_policy is not FsyncPolicy.ALWAYS or not self._dirty:
            self._dirty.clear()
            return None
        names = [_segment_name(base) for base in sorted(self._dirty)]
        self._dirty.clear()
        return self.disk.sync_begin(names)

    def segment_names(self) -> list[str]:
        return [_segment_name(b) for b, _ in self._segments]


_META = struct.Struct("<Iqqq")


class MetaStore:
    """Term, vote and commit position in one small file, replaced atomically."""

    NAME = "meta"

    def __init__(self, disk: Disk, *, fsync: FsyncPolicy = FsyncPolicy.ALWAYS) -> None:
        self.disk = disk
        self.fsync_policy = fsync

    def load(self) -> HardState:
        if not self.disk.exists(self.NAME):
            return HardState()
        data = self.disk.read(self.NAME)
        if len(data) != _META.size:
            raise LogCorruptionError("metadata file has wrong size", file=self.NAME, size=len(data), expected=_META.size)
        crc, term, vote, commit = _META.unpack(data)
        if zlib.crc32(data[4:]) != crc:
            raise LogCorruptionError("metadata checksum mismatch", file=self.NAME)
        return HardState(term, None if vote < 0 else vote, commit)

    def save(self, hs: HardState) -> None:
        body = struct.pack("<qqq", hs.term, -1 if hs.voted_for is None else hs.voted_for, hs.commit_position)
        self.disk.write_atomic(self.NAME, struct.pack("<I", zlib.crc32(body)) + body, self.fsync_policy is FsyncPolicy.ALWAYS)


_SNAP = struct.Struct("<8sqqII")
_SNAP_MAGIC = b"TLSNAP01"


class SnapshotStore:
    """Snapshots ``snap-<position>-<term>.snap``, each written atomically with a checksum."""

    def __init__(self, disk: Disk, *, keep: int = 2) -> None:
        self.disk = disk
        self.keep = keep

    @staticmethod
    def _name(position: int, term: int) -> str:
        return f"snap-{position:020d}-{term:020d}.snap"

    def save(self, s: Snapshot) -> None:
        header = _SNAP.pack(_SNAP_MAGIC, s.position, s.term, len(s.data), zlib.crc32(s.data))
        self.disk.write_atomic(self._name(s.position, s.term), header + s.data, True)
        names = self._names()
        for name in names[: max(0, len(names) - self.keep)]:
            self.disk.delete(name)

    def _names(self) -> list[str]:
        return sorted(n for n in self.disk.list() if n.startswith("snap-") and n.endswith(".snap"))

    def load_latest(self) -> tuple[Snapshot | None, list[str]]:
        """The newest snapshot that passes its checks, and the names of invalid ones skipped."""
        skipped: list[str] = []
        for name in reversed(self._names()):
            data = self.disk.read(name)
            if len(data) >= _SNAP.size:
                magic, position, term, length, crc = _SNAP.unpack_from(data)
                body = data[_SNAP.size:]
                if magic == _SNAP_MAGIC and len(body) == length and zlib.crc32(body) == crc:
                    return Snapshot(position, term, bytes(body)), skipped
            skipped.append(name)
        return None, skipped
