"""Message stores: sequence numbers and sent messages of one session.

The session calls ``save(seq, raw)`` and ``set_next_sender_seq`` *before*
it hands the message's bytes out, so a message is on record before the peer
can have seen it; ``sync()`` makes that durable (the I/O shell calls it once
per duty cycle before writing to sockets).  ``FileStore`` writes records
into a shared memory map of its log, so the OS has each record as soon as
it is appended, without a system call (it survives a crash of this process,
not of the machine: the ``none`` policy); ``batch`` flushes them to disk at
``sync()``, ``always`` after every record.  The log grows in reserved
chunks (``posix_fallocate``: a full disk is a ``StoreError`` at growth, not
a SIGBUS on a later write) and is cut back to its records on ``close()``.

``FileStore`` keeps one append-only log per session.  Each record is
``[u32 payload_len][u32 crc32(payload)][payload]`` with payload
``[u8 kind][...]``:

- kind 1, message: ``[u64 seq][raw bytes]``
- kind 2, sequence numbers: ``[u64 next_sender][u64 next_target]``
- kind 3, reset: ``[f64 creation_time]`` (everything before it is void)

Sequence numbers in records are range-checked on replay (1..``MAX_SEQ_NUM``, the
next-number fields up to ``MAX_SEQ_NUM + 1``): a record outside that range has a good CRC
but was not written by this code, so opening the store fails with a ``StoreError`` that
names the file, the offset and the value, rather than the session sending ``34=0`` or
overflowing the u64 field at its next message.  ``save`` and the setters check the same.

On open the log is replayed; a torn or corrupt tail (short record, bad CRC)
is cut off and the valid prefix kept (``recovered_tail_bytes`` says how much
was dropped; zero bytes left by a chunk reserved before a crash are not
records and are cut off without counting).  A reset rewrites the log to a new file and renames it over
the old one, so a crash leaves either the old or the new log.
"""

from __future__ import annotations

import mmap
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol

from tickline.transport.files import make_private_dirs, private_opener

from .codec import MAX_SEQ_NUM, NATIVE
from .msglog import show

__all__ = ["MessageStore", "MemoryStore", "FileStore", "FileStoreConfig", "StoreError", "FSYNC_POLICIES"]

FSYNC_POLICIES = ("always", "batch", "none")


def safe_name(session_id: str) -> str:
    """A session id as a file name (its store is ``<safe_name>.log``)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in session_id)


class StoreError(OSError):
    """The store could not read or write its file (a local fault)."""


def _check_seq(what: str, value: int, upper: int = MAX_SEQ_NUM) -> None:
    if not 1 <= value <= upper:
        raise ValueError(f"sequence number out of range: fault=local {what}={value} range=1..{upper}")


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
        _check_seq("seq", seq)
        self.messages[seq] = raw

    def get(self, begin: int, end: int) -> list[tuple[int, bytes]]:
        return [(s, self.messages[s]) for s in range(begin, end + 1) if s in self.messages]

    def set_next_sender_seq(self, n: int) -> None:
        _check_seq("next_sender_seq", n, MAX_SEQ_NUM + 1)
        self.next_sender_seq = n

    def set_next_target_seq(self, n: int) -> None:
        _check_seq("next_target_seq", n, MAX_SEQ_NUM + 1)
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
_CHUNK = 1 << 20  # the least the log grows by
MSG, SEQS, RESET = 1, 2, 3


def _load_native_append():
    if not NATIVE:  # TICKLINE_FIX_NATIVE=0, or no extension
        return None
    from tickline import _aeron

    return _aeron.fix_store_append


# cpp_ext/fixstore.cpp: writes a record as FileStore._append's Python code does, in one call
_native_append = _load_native_append()


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
        self._mm: mmap.mmap | None = None  # the log mapped, [0, _cap); records end at _end
        self._end = 0
        self._cap = 0
        self._dirty = False
        self._last_saved = 0
        make_private_dirs(self.path.parent)
        if self.path.exists():
            self._replay()
            self._open_for_append()
        else:
            self._rewrite(now)

    @property
    def size_bytes(self) -> int:
        """Bytes of records in the log (the file may be longer: it grows in chunks)."""
        return self._end

    @classmethod
    def for_session(cls, config: FileStoreConfig, session_id: str, now: float) -> "FileStore":
        return cls(Path(config.directory) / f"{safe_name(session_id)}.log", config.fsync, now)

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
                if not 1 <= seq <= MAX_SEQ_NUM:
                    self._bad_record(pos, "message_seq", seq, MAX_SEQ_NUM)
                index[seq] = (start + _SEQ.size) << 32 | (length - _SEQ.size)
            elif kind == SEQS and length == _SEQS.size:
                _, sender, target = _SEQS.unpack_from(payload)
                for what, v in (("next_sender_seq", sender), ("next_target_seq", target)):
                    if not 1 <= v <= MAX_SEQ_NUM + 1:
                        self._bad_record(pos, what, v, MAX_SEQ_NUM + 1)
            elif kind == RESET and length == _RESET.size:
                _, created = _RESET.unpack_from(payload)
                index.clear()
                sender, target = 1, 1
            else:
                break
            pos = start + length
        if pos < n:
            if data.count(0, pos) != n - pos:  # not just the zero rest of a reserved chunk
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

    def _bad_record(self, offset: int, what: str, value: int, upper: int) -> None:
        raise StoreError(f"message store record out of range: fault=file path={self.path} offset={offset} "
                         f"field={what} value={value} range=1..{upper} (not written by tickline; move the file away "
                         f"to start the session afresh)")

    def _open_for_append(self) -> None:
        self._f = open(self.path, "r+b", buffering=0)
        self._end = self._cap = self._f.seek(0, os.SEEK_END)
        self._mm = mmap.mmap(self._f.fileno(), self._cap) if self._cap else None

    def _reserve(self, need: int) -> None:
        """Grow the log (and its map) so ``need`` more bytes fit after ``_end``."""
        cap = self._end + need + max(_CHUNK, self._end // 4)
        fd = self._f.fileno()
        try:
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(fd, 0, cap)
            else:
                os.ftruncate(fd, cap)
            if self._mm is not None:
                self._mm.close()
            # MAP_POPULATE: fault the chunk's pages in now rather than one page fault per
            # 4 KiB of records on the send path
            self._mm = mmap.mmap(fd, cap, flags=mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0))
        except OSError as e:
            raise StoreError(f"cannot grow message store: fault=local path={self.path} size={cap} error={e}") from None
        self._cap = cap

    def _append(self, payload: bytes, data: bytes = b"") -> int:
        """Write the record ``payload + data``; returns the file offset of its payload."""
        n = len(payload) + len(data)
        off = self._end
        if off + _HDR.size + n > self._cap:
            self._reserve(_HDR.size + n)
        mm = self._mm
        assert mm is not None
        p = off + _HDR.size
        if _native_append is not None:
            _native_append(mm, off, payload, data)  # the same bytes as below, in one call
        else:
            crc = zlib.crc32(data, zlib.crc32(payload)) if data else zlib.crc32(payload)
            _HDR.pack_into(mm, off, n, crc)
            mm[p:p + len(payload)] = payload
            if data:
                mm[p + len(payload):p + n] = data
        self._end = p + n
        self._dirty = True
        if self.fsync == "always":
            self._flush_to_disk()
        return p

    def _flush_to_disk(self) -> None:
        try:
            if self._mm is not None:
                self._mm.flush()
            os.fsync(self._f.fileno())
        except OSError as e:
            raise StoreError(f"cannot sync message store: fault=local path={self.path} error={e}") from None
        self._dirty = False

    def _close_file(self) -> None:
        """Unmap and close, cutting the reserved rest off the log."""
        if self._mm is not None:
            self._mm.close()
            self._mm = None
        f = getattr(self, "_f", None)
        if f is not None and not f.closed:
            try:
                if self._cap > self._end:
                    os.ftruncate(f.fileno(), self._end)
            finally:
                f.close()

    def _rewrite(self, now: float) -> None:
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        payload = _RESET.pack(RESET, now)
        with open(tmp, "wb", opener=private_opener) as f:
            f.write(_HDR.pack(len(payload), zlib.crc32(payload)) + payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        dfd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        self._close_file()
        self._open_for_append()
        self._index = {}
        self.next_sender_seq = self.next_target_seq = 1
        self.creation_time = now

    def save(self, seq: int, raw: bytes) -> None:
        _check_seq("seq", seq)
        off = self._append(_SEQ.pack(MSG, seq), raw)
        self._index[seq] = (off + _SEQ.size) << 32 | len(raw)
        self._last_saved = seq

    def get(self, begin: int, end: int) -> list[tuple[int, bytes]]:
        out = []
        mm = self._mm
        for seq in range(begin, end + 1):
            loc = self._index.get(seq)
            if loc is not None and mm is not None:
                off = loc >> 32
                out.append((seq, mm[off:off + (loc & 0xFFFFFFFF)]))
        return out

    def _write_seqs(self) -> None:
        self._append(_SEQS.pack(SEQS, self.next_sender_seq, self.next_target_seq))

    def set_next_sender_seq(self, n: int) -> None:
        _check_seq("next_sender_seq", n, MAX_SEQ_NUM + 1)
        self.next_sender_seq = n
        if self._index.get(n - 1) is not None and n - 1 == self._last_saved:
            return  # replay derives it from the message record just written (max seq + 1)
        self._write_seqs()

    def set_next_target_seq(self, n: int) -> None:
        _check_seq("next_target_seq", n, MAX_SEQ_NUM + 1)
        self.next_target_seq = n
        self._write_seqs()

    def reset(self, now: float) -> None:
        self._rewrite(now)

    def sync(self) -> None:
        # records are in the OS's page cache as soon as they are appended; only "batch" has work here
        if self._dirty and self.fsync == "batch":
            self._flush_to_disk()

    def close(self) -> None:
        f = getattr(self, "_f", None)
        if f is not None and not f.closed:
            self.sync()
            self._close_file()


def dump(path: str | os.PathLike[str]) -> Iterator[str]:
    """The records of a ``FileStore`` log as text lines, read-only (the file is not changed:
    a torn tail is reported, not cut).  Messages show SOH as ``|``.  The last line says
    where the valid records end and how many bytes after them are not records; a record
    that is out of range or of an unknown kind ends the walk there (``stopped=`` says why).
    Reads one record at a time (at most ``_MAX_RECORD`` bytes), whatever the file holds."""
    p = Path(path)
    with open(p, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(0)
        pos = 0
        stopped = ""
        while True:
            if pos + _HDR.size > size:
                stopped = "" if pos == size else "short_header"
                break
            length, crc = _HDR.unpack(f.read(_HDR.size))
            if length == 0 or length > _MAX_RECORD or pos + _HDR.size + length > size:
                stopped = "zero_fill" if length == 0 else f"bad_length length={length}"
                break
            payload = f.read(length)
            if zlib.crc32(payload) != crc:
                stopped = "bad_crc"
                break
            kind = payload[0]
            if kind == MSG and length >= _SEQ.size:
                _, seq = _SEQ.unpack_from(payload)
                yield f"offset={pos} message seq={seq} {show(payload[_SEQ.size:])}"
            elif kind == SEQS and length == _SEQS.size:
                _, sender, target = _SEQS.unpack(payload)
                yield f"offset={pos} seqnums next_sender_seq={sender} next_target_seq={target}"
            elif kind == RESET and length == _RESET.size:
                _, created = _RESET.unpack(payload)
                yield f"offset={pos} reset creation_time={created!r}"
            else:
                stopped = f"unknown_record kind={kind} length={length}"
                break
            pos += _HDR.size + length
    tail = size - pos
    yield f"end valid_bytes={pos} trailing_bytes={tail}" + (f" stopped={stopped}" if stopped else "")
