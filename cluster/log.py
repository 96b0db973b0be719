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
is short or fails its checksum.  What it does then depends on whether the
member may have acknowledged that position:

- The file ``acked`` holds two positions, rewritten in place with every sync
  that makes entries durable (after the segments, in the same sync, so it is
  durable before any acknowledgement or vote relying on them goes out:
  persist before send).  ``written``: the log's end when it was written.
  ``synced``: the end covered by the last sync that had *completed* then.
  Everything this member acknowledged, or counted towards commit as a leader,
  is at or below ``synced`` once the next record is written (the next batch,
  or one idle heartbeat interval later: :meth:`SegmentLog.settle`).
- **Damage**: the log ends below ``synced`` (a bad frame there, a segment
  missing).  Those entries were durable and may have been acknowledged.  The
  entries from the bad frame on cannot be used (the log is contiguous), so the
  log is cut there, but the bytes from it on are kept in ``damaged-*`` files
  for the operator, and the report's ``catch_up_to`` names ``written``, what
  the member may have acknowledged.  The member grants no vote and never
  campaigns until a leader has brought it back there (see consensus I9), so
  no election counts a log that lost acknowledged entries.  ``acked`` keeps
  saying so across restarts until then.
- A **torn tail**: the log ends at or past ``synced``.  What follows was being
  written when the member stopped; the OS may have written it back in any
  order (even ``acked`` before the segment), so valid frames after a bad one
  prove nothing here.  It was never acknowledged: it is cut, later segments
  are deleted, and the member fetches the rest from the leader.
- The one case recovery cannot tell apart: entries damaged after their sync
  completed but before the next record said so (a window of one batch, or of
  one heartbeat interval when idle) look like a torn tail.  Telling them apart
  would need a second sync before every acknowledgement.
- A log without ``acked`` (written before it existed) falls back to the
  shape: valid frames after the bad one make it damage.

``acked`` is lowered only on a leader's instruction (a conflicting tail cut, a
snapshot installed) or once caught up.

A cut made on a leader's instruction (:meth:`SegmentLog.truncate`) is made
durable before anything is written after it, so recovery reads a prefix of the
log as written.
"""

from __future__ import annotations

import enum
import struct
from collections import deque
import zlib
from dataclasses import dataclass

from .disk import Disk
from .errors import ConfigError, LogCorruptionError, kv
from .messages import ENTRY_HEADER_LENGTH, Entry, HardState, Snapshot

__all__ = ["FsyncPolicy", "SegmentLog", "RecoveryReport", "MetaStore", "SnapshotStore", "encode_entry", "ACKED_NAME", "load_acked"]

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
    # Damage (not a torn tail): the file and position of the first bad frame, the
    # end of the last valid frame found after it (None: none), the acknowledged
    # position the member must be brought back to before it votes (None: nothing
    # lost that may have been acknowledged) and the files the damaged bytes were kept in.
    damaged_file: str | None = None
    valid_after: int | None = None
    catch_up_to: int | None = None
    kept: tuple[str, ...] = ()
    acked: tuple[int, int] | None = None  # (written, synced) read from ``acked`` (None: no such file)

    @property
    def damaged(self) -> bool:
        return self.catch_up_to is not None

    def describe(self) -> str:
        """One line for the member's log: what recovery found and did."""
        if self.catch_up_to is None:
            return kv(log_start=self.first_position, log_end=self.end_position, truncated_at=self.truncated_at, reason=self.reason)
        return kv(error="log damaged below what this member may have acknowledged", file=self.damaged_file or "none",
                  position=self.truncated_at if self.truncated_at is not None else self.end_position, reason=self.reason,
                  valid_after=self.valid_after, acked=self.acked, catch_up_to=self.catch_up_to, log_end=self.end_position,
                  kept=",".join(self.kept) or "none", action="no vote until caught up from the leader", fault="storage")


_ACKED = struct.Struct("<qqI")  # written, synced, crc32 of both
ACKED_NAME = "acked"
# after a bad frame whose length field cannot be trusted, recovery looks this far for a valid frame
SCAN_AFTER_DAMAGE = 64 * 1024


def load_acked(disk: Disk) -> tuple[int, int] | None:
    """(written, synced) from a member's ``acked`` file; None if it has none."""
    if not disk.exists(ACKED_NAME):
        return None
    data = disk.read(ACKED_NAME)
    if len(data) != _ACKED.size:
        raise LogCorruptionError("acknowledged-position file has wrong size", file=ACKED_NAME, size=len(data), expected=_ACKED.size)
    written, synced, crc = _ACKED.unpack(data)
    if zlib.crc32(data[:16]) != crc or not 0 <= synced <= written:
        raise LogCorruptionError("acknowledged-position file checksum mismatch", file=ACKED_NAME)
    return written, synced


def _frame_at(data: bytes, offset: int, base: int) -> int | None:
    """The offset just past a valid frame at ``offset`` in segment ``data`` (which starts at log position ``base``), else None."""
    if len(data) - offset < ENTRY_HEADER_LENGTH:
        return None
    length, crc, term, timestamp, kind = _HEADER.unpack_from(data, offset)
    end = offset + ENTRY_HEADER_LENGTH + length
    if term <= 0 or length > MAX_PAYLOAD or end > len(data):
        return None
    if _crc(base + offset, term, timestamp, kind, bytes(data[offset + ENTRY_HEADER_LENGTH: end])) != crc:
        return None
    return end


def _valid_after(data: bytes, offset: int, base: int) -> int | None:
    """The log position where the last valid frame after the bad one at ``offset`` ends, or None.

    Tries where the bad frame's own length says the next starts, then every
    offset within SCAN_AFTER_DAMAGE (the position is in each checksum, so a
    frame is valid only where it was written); from the first valid frame it
    follows the chain of frames."""
    start = None
    if len(data) - offset >= ENTRY_HEADER_LENGTH:
        length = _HEADER.unpack_from(data, offset)[0]
        nxt = offset + ENTRY_HEADER_LENGTH + length
        if length <= MAX_PAYLOAD and _frame_at(data, nxt, base) is not None:
            start = nxt
    if start is None:
        for o in range(offset + 1, min(len(data), offset + 1 + SCAN_AFTER_DAMAGE)):
            if _frame_at(data, o, base) is not None:
                start = o
                break
    if start is None:
        return None
    end = start
    while (nxt := _frame_at(data, end, base)) is not None:
        end = nxt
    return base + end


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
        self.acked_floor = 0  # see set_acked_floor
        self._acked_written: tuple[int, int] | None = None  # what ``acked`` holds (None: not written yet)
        self._synced_end = 0  # the log's end as of the last completed sync
        self._acked_pending: deque[tuple[int, int]] = deque()  # (ticket, end it makes durable)

    # ---------------------------------------------------------------- recovery

    def _load_acked(self) -> tuple[int, int] | None:
        return load_acked(self.disk)

    def recover(self) -> RecoveryReport:
        """Read the log back, cut a torn tail, and set aside damage (see the module docstring)."""
        acked = self._load_acked()
        self._acked_written = acked
        self._acked_pending.clear()
        self._synced_end = acked[1] if acked is not None else 0
        bases = sorted(int(n[4:-4]) for n in self.disk.list() if n.startswith("log-") and n.endswith(".seg"))
        entries: list[Entry] = []
        self._segments = []
        truncated_at = None
        dropped = 0
        reason = None
        cut_file: str | None = None
        valid_after: int | None = None
        later: list[str] = []  # whole segments after the cut or a gap
        expected = bases[0] if bases else 0
        self._start = expected
        for base in bases:
            name = _segment_name(base)
            if truncated_at is not None or base != expected:
                if truncated_at is None:
                    truncated_at, reason, cut_file = expected, "gap", name
                later.append(name)
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
                cut_file = name
                valid_after = _valid_after(data, offset, base)
            self._segments.append([base, offset])
            expected = base + offset
        for name in later:  # a later segment holding a valid first frame is data after the damage, not a torn tail
            data = self.disk.read(name)
            end = 0
            while (nxt := _frame_at(data, end, int(name[4:-4]))) is not None:
                end = nxt
            if end:
                valid_after = max(valid_after or 0, int(name[4:-4]) + end)
        log_end = expected
        if acked is not None:
            damaged = log_end < acked[1]
            catch_up_to = acked[0] if damaged else None
        else:
            # A log without the file (written before it existed): valid frames
            # after the bad one say it is damage, not a torn tail.
            damaged = truncated_at is not None and valid_after is not None
            catch_up_to = valid_after if damaged else None
        kept: list[str] = []
        if damaged and truncated_at is not None:
            # Never destroy what may be the last copy of acknowledged entries: the
            # bytes from the bad frame on go to files recovery never reads again.
            assert cut_file is not None
            for name in ([cut_file] if cut_file not in later else []) + later:
                data = self.disk.read(name)
                if name == cut_file and name not in later:
                    data = data[truncated_at - int(name[4:-4]):]
                keep = f"damaged-{truncated_at:020d}-{name}"
                self.disk.write_atomic(keep, bytes(data), True)
                kept.append(keep)
        for name in later:
            dropped += self.disk.size(name)
            self.disk.delete(name)
        if self._segments:
            base, size = self._segments[-1]
            name = _segment_name(base)
            if self.disk.size(name) > size:
                dropped += self.disk.size(name) - size
                self.disk.truncate(name, size)
        # What we just read may be only in the page cache (a kill -9 keeps
        # unsynced writes readable).  Make it durable before the member acts
        # on it, or a later power cut could take back entries it acknowledged.
        for base, _ in self._segments:
            if truncated_at is not None or self.fsync_policy is FsyncPolicy.ALWAYS:
                self.disk.fsync(_segment_name(base))
        # until caught up, ``acked`` keeps saying what was lost (a restart must not forget it)
        self.acked_floor = catch_up_to or 0
        return RecoveryReport(tuple(entries), self._start, self.end_position, truncated_at, dropped, reason,
                              cut_file if damaged else None, valid_after, catch_up_to, tuple(kept), acked)

    def set_acked_floor(self, position: int) -> None:
        """While the member is catching up (consensus I9), ``acked`` says it holds
        at least ``position`` (so a restart remembers what was lost); 0 once caught
        up, and ``acked`` comes down to the log's end at once (durably), so a
        restart does not wait for a catch-up again."""
        if position != self.acked_floor:
            self._pull_synced()
            self.acked_floor = position
            self._cut_synced(self.end_position)
            if self._write_acked() and self.fsync_policy is FsyncPolicy.ALWAYS:
                self.disk.fsync(ACKED_NAME)

    def _pull_synced(self) -> None:
        done = self.disk.synced()
        pending = self._acked_pending
        while pending and pending[0][0] <= done:
            self._synced_end = max(self._synced_end, pending.popleft()[1])

    def _acked_record(self) -> tuple[int, int]:
        self._pull_synced()
        floor = self.acked_floor
        written = max(self.end_position, floor)
        return written, min(written, max(self._synced_end, floor))

    def _write_acked(self) -> bool:
        """Rewrite ``acked`` if what it should say changed; True if it was written (and needs a sync)."""
        record = self._acked_record()
        if record == self._acked_written:
            return False
        self._put_acked(record)
        return True

    def _put_acked(self, record: tuple[int, int]) -> None:
        body = struct.pack("<qq", *record)
        self.disk.overwrite(ACKED_NAME, body + struct.pack("<I", zlib.crc32(body)))
        self._acked_written = record

    def _lower_acked(self, end: int) -> None:
        """Make ``acked`` say the log ends at ``end`` (durably) before the log is cut there."""
        written = max(end, self.acked_floor)
        record = (written, min(written, max(self._synced_end, self.acked_floor)))
        if record != self._acked_written:
            self._put_acked(record)
            if self.fsync_policy is FsyncPolicy.ALWAYS:
                self.disk.fsync(ACKED_NAME)

    def _acked_synced(self, ticket: int | None) -> None:
        """The record just written becomes durable with ``ticket`` (None: already is)."""
        written = self._acked_written[0] if self._acked_written is not None else 0
        if ticket is None:
            self._synced_end = max(self._synced_end, written)
        else:
            self._acked_pending.append((ticket, written))

    def _cut_synced(self, position: int) -> None:
        """A cut on a leader's instruction: nothing above ``position`` is ours any more."""
        self._synced_end = min(self._synced_end, position)
        self._acked_pending = deque((t, min(w, position)) for t, w in self._acked_pending)

    def settle(self) -> int | None:
        """When idle: if ``acked`` does not yet say that the last sync completed,
        rewrite it and start its sync (nothing waits for it); returns the ticket.
        Shrinks the window in which damage passes for a torn tail (module docstring)."""
        if self.fsync_policy is not FsyncPolicy.ALWAYS or self._dirty or not self._write_acked():
            return None
        ticket = self.disk.sync_begin([ACKED_NAME])
        self._acked_synced(ticket)
        return ticket

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
        # The leader said so: what is cut was not committed, and is no longer ours
        # to keep.  ``acked`` comes down first: a crash inside the cut must not
        # leave a record saying the member lost entries it was told to drop.
        self._pull_synced()
        self._cut_synced(position)
        self._lower_acked(position)
        while self._segments and self._segments[-1][0] > position:
            base, _ = self._segments.pop()
            self.disk.delete(_segment_name(base))  # deletes are durable (the disk syncs the directory)
            self._dirty.discard(base)
        if not self._segments or position < self._segments[0][0]:
            raise LogCorruptionError("truncate below the start of the log", position=position, start=self.start_position)
        seg = self._segments[-1]
        size = position - seg[0]
        if seg[1] != size:  # else the cut fell on this segment's end: only later segments went
            seg[1] = size
            name = _segment_name(seg[0])
            self.disk.truncate(name, size)
            if self.fsync_policy is FsyncPolicy.ALWAYS:
                self.disk.fsync(name)
                self._dirty.discard(seg[0])
            else:
                self._dirty.add(seg[0])
        if self._write_acked() and self.fsync_policy is FsyncPolicy.ALWAYS:
            self.disk.fsync(ACKED_NAME)

    def reset(self, position: int) -> None:
        """Delete every segment; the next entry appended starts at ``position``."""
        # the snapshot (saved before this) covers the log up to ``position``; ``acked`` says so first
        self._acked_pending.clear()
        self._synced_end = position
        self._lower_acked(position)
        for base, _ in self._segments:
            self.disk.delete(_segment_name(base))
        self._segments = []
        self._dirty.clear()
        self._start = position
        if self._write_acked() and self.fsync_policy is FsyncPolicy.ALWAYS:
            self.disk.fsync(ACKED_NAME)

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
            self._synced_end = max(self._synced_end, self.end_position)
            if self._write_acked():  # after the entries it covers, saying they are durable
                self.disk.fsync(ACKED_NAME)
        else:
            self._write_acked()
        self._dirty.clear()

    def sync_begin(self) -> int | None:
        """Start making what was appended durable, in the background if the disk
        can (see :mod:`.disk`); the disk's ticket for it, or None if there is
        nothing to sync under this policy."""
        if self.fsync_policy is not FsyncPolicy.ALWAYS:
            self._dirty.clear()
            self._write_acked()
            return None
        names = [_segment_name(base) for base in sorted(self._dirty)]
        self._dirty.clear()
        # ``acked`` goes in the same sync, after the segments it covers: the
        # acknowledgements waiting for this sync are then covered by it (persist before send).
        if not names:
            return None
        if self._background():
            # The record goes in the same sync, after the segments: written now, it
            # can only say what had completed before (see the module docstring).
            if self._write_acked():
                names.append(ACKED_NAME)
            ticket = self.disk.sync_begin(names)
            self._acked_synced(ticket)
            return ticket
        # Synchronous: the segments are durable when this returns, so the record
        # written after them says so exactly, and is synced before anyone is told.
        self.disk.sync_begin(names)
        self._synced_end = max(self._synced_end, self.end_position)
        if self._write_acked():
            self.disk.sync_begin([ACKED_NAME])
        return self.disk.synced()

    def _background(self) -> bool:
        return bool(getattr(self.disk, "sync_thread", False) or getattr(self.disk, "background", False))

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
        self.saved = 0  # snapshots saved (taken or installed) since start, for the member's counters

    @staticmethod
    def _name(position: int, term: int) -> str:
        return f"snap-{position:020d}-{term:020d}.snap"

    def save(self, s: Snapshot) -> None:
        header = _SNAP.pack(_SNAP_MAGIC, s.position, s.term, len(s.data), zlib.crc32(s.data))
        self.disk.write_atomic(self._name(s.position, s.term), header + s.data, True)
        self.saved += 1
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
