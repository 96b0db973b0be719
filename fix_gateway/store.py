"""Message stores: sequence numbers and sent messages of one session.

The session calls ``save(seq, raw)`` and ``set_next_sender_seq`` *before*
it hands the message's bytes out, so a message is on record before the peer
can have seen it; ``sync()`` makes that durable (the I/O shell calls it once
per duty cycle before writing to sockets).  ``FileStore`` queues the
records of a duty cycle and hands them to the OS in one write at ``sync()``,
which also fsyncs when the policy is ``batch``; with ``always`` every record
is written and fsynced as it happens; with ``none`` the OS has them (they
survive a crash of this process, not of the machine).

``FileStore`` keeps one append-only log per session.  Each record is
``[u32 payload_len][u32 crc32(payload)][payload]`` with payload
``[u8 kind][...]``:

- kind 1, message: ``[u64 seq][raw bytes]``
- kind 2, sequence numbers: ``[u64 next_sender][u64 next_target]``
- kind 3, reset: ``[f64 creation_time]`` (everything before it is void)

On open the log is replayed; a torn or corrupt tail (short record, bad CRC)
is cut off and the valid prefix kept (``recovered_tail_bytes`` says how much
was dropped).  A reset rewrites the log to a new file and renames it over
the old one, so a crash leaves either the old or the new log.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = ["MessageStore", "MemoryStore", "FileStore", "FileStoreConfig", "StoreError", "FSYNC_POLICIES"]

FSYNC_POLICIES = ("always", "batch", "none")


class StoreError(OSError):
    """The store could not read or write its file (a local fault)."""


class MessageStore(Protocol):
    next_sender_seq: int
    next_target_seq: int
    creation_time: float

    def save(self, seq: int, raw: bytes) -> None: ...

    def get(self, begin: int, end: int) -> list[tuple[int, bytes]]: ...

    def set_next_sender_seq(self, n: int) -> None: ...

    def set_next_target_seq(self, n: int) -> None: ...

    def reset(self, now: float) -> None: ...

    def sync(self) -> None: ...

    def close(self) -> None: ...


class MemoryStore:
    """A store that forgets everything at exit: for tests and throwaway sessions."""

    def __init__(self, creation_time: float = 0.0) -> None:
        self.next_sender_seq = 1
        self.next_target_seq = 1
        self.creation_time = creation_time
        self.messages: dict[int, bytes] = {}

    def save(self, seq: int, raw: bytes) -> None:
        self.messages[seq] = raw

    def get(self, begin: int, end: int) -> list[tuple[int, bytes]]:
        return [(s, self.messages[s]) for s in range(begin, end + 1) if s in self.messages]

    def set_next_sender_seq(self, n: int) -> None:
        self.next_sender_seq = n

    def set_next_target_seq(self, n: int) -> None:
        self.next_target_seq = n

    def reset(self, now: float) -> None:
        self.next_sender_seq = self.next_target_seq = 1
        self.messages.clear()
        self.creation_time = now

    def sync(self) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class FileStoreConfig:
    """directory: where session logs live; fsync: always | batch | none."""

    directory: str = "fix-store"
    fsync: str = "batch"

    def __post_init__(self) -> None:
        if self.fsync not in FSYNC_POLICIES:
            raise ValueError(f"bad fsync policy: fault=config key=fsync value={self.fsync!r} allowed={'|'.join(FSYNC_POLICIES)}")
        if not self.directory:
            raise ValueError("empty store directory: fault=config key=directory")


_HDR = struct.Struct("<II")
_SEQ = struct.Struct("<BQ")
_SEQS = struct.Struct("<BQQ")
_RESET = struct.Struct("<Bd")
_MAX_RECORD = 64 << 20
MSG, SEQS, RESET = 1, 2, 3


class FileStore:
    """A crash-safe on-disk store for one session (see the module doc).

    Not thread safe: one session (one agent) owns it.
    """

    def __init__(self, path: str | os.PathLike[str], fsync: str = "batch", now: float = 0.0) -> None:
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"bad fsync policy: fault=config key=fsync value={fsync!r}")
        self.path = Path(path)
        self.fsync = fsync
        self.next_sender_seq = 1
        self.next_target_seq = 1
        self.creation_time = now
        self.recovered_tail_bytes = 0
        # seq -> offset of raw << 32 | length: an int, which the cyclic GC does not track (a tuple
        # per sent message made the collector run every few hundred messages)
        self._index: dict[int, int] = {}
        # Records appended since the last write to the file, and the log's end
        # offset counting them: one write() per sync() instead of one per record.
        self._pending = bytearray()
        self._end = 0
        self._last_saved = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self._replay()
            self._open_for_append()
        else:
            self._rewrite(now)

    @classmethod
    def for_session(cls, config: FileStoreConfig, session_id: str, now: float) -> "FileStore":
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in session_id)
        return cls(Path(config.directory) / f"{safe}.log", config.fsync, now)

    def _replay(self) -> None:
        try:
            data = self.path.read_bytes()
        except OSError as e:
            raise StoreError(f"cannot read message store: fault=local path={self.path} error={e}") from None
        pos, n = 0, len(data)
        index: dict[int, int] = {}
        sender, target, created = 1, 1, self.creation_time
        while pos + _HDR.size <= n:
            length, crc = _HDR.unpack_from(data, pos)
            start = pos + _HDR.size
            if length == 0 or length > _MAX_RECORD or start + length > n:
                break
            payload = memoryview(data)[start:start + length]
            if zlib.crc32(payload) != crc:
                break
            kind = payload[0]
            if kind == MSG and length >= _SEQ.size:
                _, seq = _SEQ.unpack_from(payload)
                index[seq] = (start + _SEQ.size) << 32 | (length - _SEQ.size)
            elif kind == SEQS and length == _SEQS.size:
                _, sender, target = _SEQS.unpack_from(payload)
            elif kind == RESET and length == _RESET.size:
                _, created = _RESET.unpack_from(payload)
                index.clear()
                sender, target = 1, 1
            else:
                break
            pos = start + length
        if pos < n:
            self.recovered_tail_bytes = n - pos
            with open(self.path, "r+b") as f:
                f.truncate(pos)
                f.flush()
                os.fsync(f.fileno())
        self._index = index
        self.next_sender_seq, self.next_target_seq, self.creation_time = sender, target, created
        # a message saved but whose sender-seq record was torn off still counts as sent
        if index and max(index) >= self.next_sender_seq:
            self.next_sender_seq = max(index) + 1

    def _open_for_append(self) -> None:
        self._f = open(self.path, "r+b", buffering=0)
        self._end = self._f.seek(0, os.SEEK_END)
        self._pending = bytearray()

    def _append(self, payload: bytes, data: bytes = b"") -> int:
        """Queue the record ``payload + data``; returns the file offset of its payload."""
        crc = zlib.crc32(data, zlib.crc32(payload)) if data else zlib.crc32(payload)
        pending = self._pending
        off = self._end + _HDR.size
        pending += _HDR.pack(len(payload) + len(data), crc)
        pending += payload
        if data:
            pending += data
        self._end = off + len(payload) + len(data)
        if self.fsync == "always":
            self._write_pending()
            try:
                os.fsync(self._f.fileno())
            except OSError as e:
                raise StoreError(f"cannot write message store: fault=local path={self.path} error={e}") from None
        return off

    def _write_pending(self) -> None:
        pending = self._pending
        if not pending:
            return
        try:
            view = memoryview(pending)
            done = 0
            while done < len(pending):
                done += self._f.write(view[done:])
            view.release()
        except OSError as e:
            raise StoreError(f"cannot write message store: fault=local path={self.path} error={e}") from None
        self._pending = bytearray()

    def _rewrite(self, now: float) -> None:
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        payload = _RESET.pack(RESET, now)
        with open(tmp, "wb") as f:
            f.write(_HDR.pack(len(payload), zlib.crc32(payload)) + payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        dfd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        if getattr(self, "_f", None) is not None:
            self._f.close()
        self._open_for_append()  # records queued for the old log are void with it
        self._index = {}
        self.next_sender_seq = self.next_target_seq = 1
        self.creation_time = now

    def save(self, seq: int, raw: bytes) -> None:
        off = self._append(_SEQ.pack(MSG, seq), raw)
        self._index[seq] = (off + _SEQ.size) << 32 | len(raw)
        self._last_saved = seq

    def get(self, begin: int, end: int) -> list[tuple[int, bytes]]:
        out = []
        self._write_pending()
        with open(self.path, "rb") as r:
            for seq in range(begin, end + 1):
                loc = self._index.get(seq)
                if loc is not None:
                    r.seek(loc >> 32)
                    out.append((seq, r.read(loc & 0xFFFFFFFF)))
        return out

    def _write_seqs(self) -> None:
        self._append(_SEQS.pack(SEQS, self.next_sender_seq, self.next_target_seq))

    def set_next_sender_seq(self, n: int) -> None:
        self.next_sender_seq = n
        if self._index.get(n - 1) is not None and n - 1 == self._last_saved:
            return  # replay derives it from the message record just written (max seq + 1)
        self._write_seqs()

    def set_next_target_seq(self, n: int) -> None:
        self.next_target_seq = n
        self._write_seqs()

    def reset(self, now: float) -> None:
        self._rewrite(now)

    def sync(self) -> None:
        if self._pending:
            self._write_pending()
            if self.fsync == "batch":
                try:
                    os.fsync(self._f.fileno())
                except OSError as e:
                    raise StoreError(f"cannot sync message store: fault=local path={self.path} error={e}") from None

    def close(self) -> None:
        f = getattr(self, "_f", None)
        if f is not None and not f.closed:
            self.sync()
            f.close()
