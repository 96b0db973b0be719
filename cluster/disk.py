"""The little file-system surface the durable log needs, with two implementations:

- :class:`OsDisk`: real files in a directory (``os.fsync`` on files and the directory);
- :class:`SimDisk`: in memory, tracking what is durable so the simulator can
  crash it: after a power cut unsynced appends survive only as a torn prefix,
  possibly with garbage; after a kill -9 they survive in the page cache but
  are still not durable.

Besides the blocking ``fsync``, a disk can make files durable in the
background: ``sync_begin(names)`` returns a ticket, ``synced()`` the highest
ticket completed (tickets complete in order), ``sync_wait(ticket)`` blocks.
What ``sync_begin`` covers is what was written before it.  A disk without a
background writer completes the ticket before returning it.

``overwrite`` rewrites a small file in place (a few bytes, one sector: a
crash leaves the old or the new content, never a mix), made durable by the
next ``fsync``/``sync_begin`` that names it, like an append.

Names are flat file names inside one directory.  Not thread-safe: one caller
(the background writer of :class:`OsDisk` only ever sees file descriptors).
"""

from __future__ import annotations

import os
import random
from typing import Protocol

from tickline.transport.files import PRIVATE_FILE, make_private_dirs, private_opener

__all__ = ["Disk", "OsDisk", "SimDisk"]


class Disk(Protocol):
    def list(self) -> list[str]: ...
    def exists(self, name: str) -> bool: ...
    def read(self, name: str) -> bytes: ...
    def size(self, name: str) -> int: ...
    def append(self, name: str, data: bytes) -> None: ...
    def overwrite(self, name: str, data: bytes) -> None: ...
    def truncate(self, name: str, size: int) -> None: ...
    def fsync(self, name: str) -> None: ...
    def delete(self, name: str) -> None: ...
    def write_atomic(self, name: str, data: bytes, sync: bool) -> None: ...
    def sync_begin(self, names: list[str]) -> int: ...
    def synced(self) -> int: ...
    def sync_wait(self, ticket: int) -> None: ...


class _Preallocated:
    """An appended file whose length runs ahead of its content in zeros."""

    __slots__ = ("fd", "end", "allocated", "grown")

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.end = size  # logical end: what append wrote
        self.allocated = size  # file length: zeros beyond end
        self.grown = False  # length changed since the last sync: the next one must be a full fsync


class OsDisk:
    """``preallocate``: if > 0, appended files grow in steps of at least that
    many bytes of written zeros, made durable once per step; appends then
    overwrite zeros and ``fsync`` is ``fdatasync`` of data only.  On a
    journaling file system an append that extends a file makes every fsync
    commit the journal (the length changed); measured on the benchmark host
    with three members fsyncing at once, this halves the fsync time.  The log
    reads a run of zeros at the end of a segment as its clean end.

    ``sync_thread``: ``sync_begin`` hands the file descriptors to a native
    thread (``tickline._aeron.Syncer``) and returns at once, so the caller's
    duty cycle (and the Aeron driver it turns) keeps running during the
    fsync.  Every call that closes, truncates or deletes a file first waits
    for the syncs in flight, so the thread never syncs a closed descriptor."""

    def __init__(self, directory: str | os.PathLike[str], *, preallocate: int = 0, sync_thread: bool = False) -> None:
        if preallocate < 0:
            raise ValueError(f"preallocate must be >= 0: preallocate={preallocate}")
        self.directory = os.fspath(directory)
        make_private_dirs(self.directory)
        self._handles: dict[str, object] = {}
        self.preallocate = preallocate
        self._pre: dict[str, _Preallocated] = {}
        self._over: dict[str, int] = {}  # files rewritten in place: name -> fd
        self._tickets = 0  # without a sync thread: every ticket completes before it is returned
        self._syncer = None
        if sync_thread:
            from tickline._aeron import Syncer
            self._syncer = Syncer()

    @property
    def sync_thread(self) -> bool:
        """Syncs run on a native thread (until :meth:`close`)."""
        return self._syncer is not None

    def _path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def list(self) -> list[str]:
        return sorted(n for n in os.listdir(self.directory) if not n.endswith(".tmp"))

    def exists(self, name: str) -> bool:
        return os.path.exists(self._path(name))

    def read(self, name: str) -> bytes:
        fd = self._over.get(name)
        if fd is not None:
            return os.pread(fd, os.fstat(fd).st_size, 0)
        f = self._pre.get(name)
        if f is not None:
            return os.pread(f.fd, f.end, 0)
        self._flush(name)
        with open(self._path(name), "rb") as fh:
            return fh.read()

    def size(self, name: str) -> int:
        f = self._pre.get(name)
        if f is not None:
            return f.end
        self._flush(name)
        return os.path.getsize(self._path(name))

    def _open_preallocated(self, name: str) -> _Preallocated:
        f = self._pre.get(name)
        if f is None:
            new = not self.exists(name)
            fd = os.open(self._path(name), os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
            f = self._pre[name] = _Preallocated(fd, os.fstat(fd).st_size)
            if new:
                self._sync_dir()
        return f

    def _handle(self, name: str):
        h = self._handles.get(name)
        if h is None:
            h = open(self._path(name), "ab", opener=private_opener)
            self._handles[name] = h
        return h

    def _flush(self, name: str) -> None:
        h = self._handles.get(name)
        if h is not None:
            h.flush()  # type: ignore[attr-defined]

    def append(self, name: str, data: bytes) -> None:
        if self.preallocate:
            f = self._open_preallocated(name)
            end = f.end + len(data)
            os.pwrite(f.fd, data, f.end)
            if end > f.allocated:
                grow = max(self.preallocate, end - f.allocated)
                os.pwrite(f.fd, bytes(f.allocated + grow - end), end)
                f.allocated += grow
                f.grown = True
            f.end = end
            return
        new = name not in self._handles and not self.exists(name)
        self._handle(name).write(data)  # type: ignore[attr-defined]
        if new:
            self._sync_dir()

    def overwrite(self, name: str, data: bytes) -> None:
        fd = self._over.get(name)
        if fd is None:
            new = not self.exists(name)
            fd = self._over[name] = os.open(self._path(name), os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
            if new:
                os.pwrite(fd, data, 0)
                os.fsync(fd)  # its length, once: later rewrites change data only
                self._sync_dir()
                return
        os.pwrite(fd, data, 0)

    def truncate(self, name: str, size: int) -> None:
        self._drain()
        f = self._pre.get(name)
        if f is not None:
            os.ftruncate(f.fd, size)
            f.end = f.allocated = size
            f.grown = True
            return
        self._flush(name)
        os.truncate(self._path(name), size)

    def fsync(self, name: str) -> None:
        fd = self._over.get(name)
        if fd is not None:
            os.fdatasync(fd)
            return
        if self.preallocate:
            f = self._open_preallocated(name)
            if f.grown:
                f.grown = False
                os.fsync(f.fd)
            else:
                os.fdatasync(f.fd)  # the length did not change: no metadata to commit
            return
        h = self._handle(name)
        h.flush()  # type: ignore[attr-defined]
        os.fsync(h.fileno())  # type: ignore[attr-defined]

    def sync_begin(self, names: list[str]) -> int:
        if self._syncer is None:
            for name in names:
                self.fsync(name)
            self._tickets += 1
            return self._tickets
        files = []
        for name in names:
            fd = self._over.get(name)
            if fd is not None:
                files.append((fd, False))  # rewritten in place: data only
            elif self.preallocate:
                f = self._open_preallocated(name)
                files.append((f.fd, f.grown))  # a length change needs a full fsync
                f.grown = False
            else:
                h = self._handle(name)
                h.flush()  # type: ignore[attr-defined]
                files.append((h.fileno(), True))  # type: ignore[attr-defined]
        return int(self._syncer.submit(files))

    def synced(self) -> int:
        return self._tickets if self._syncer is None else int(self._syncer.completed())

    def sync_wait(self, ticket: int) -> None:
        if self._syncer is not None:
            self._syncer.wait(ticket)

    def _drain(self) -> None:
        if self._syncer is not None:
            self._syncer.wait(self._syncer.submitted)

    def delete(self, name: str) -> None:
        self._drain()
        f = self._pre.pop(name, None)
        if f is not None:
            os.close(f.fd)
        fd = self._over.pop(name, None)
        if fd is not None:
            os.close(fd)
        h = self._handles.pop(name, None)
        if h is not None:
            h.close()  # type: ignore[attr-defined]
        try:
            os.unlink(self._path(name))
        except FileNotFoundError:
            pass
        self._sync_dir()

    def write_atomic(self, name: str, data: bytes, sync: bool) -> None:
        # write a temporary file, make it durable, then rename over the old one:
        # a crash leaves either the old or the new content, never a mix.
        tmp = self._path(name + ".tmp")
        with open(tmp, "wb", opener=private_opener) as f:
            f.write(data)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, self._path(name))
        if sync:
            self._sync_dir()

    def _sync_dir(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def close(self) -> None:
        if self._syncer is not None:
            self._syncer.close()  # serves what is queued first
            self._syncer = None
        for f in self._pre.values():
            os.close(f.fd)
        self._pre.clear()
        for fd in self._over.values():
            os.close(fd)
        self._over.clear()
        for h in self._handles.values():
            h.close()  # type: ignore[attr-defined]
        self._handles.clear()


class SimDisk:
    """In-memory disk.  ``crash(rng)`` keeps durable bytes and a random torn
    prefix of what was appended since the last fsync (sometimes with a flipped
    byte).  File creation, deletion and atomic writes are modelled as durable
    immediately (the OS shell syncs the directory for them).

    ``background``: ``sync_begin`` only records what the sync will make
    durable; :meth:`complete_syncs` (the simulator, after a delay it draws)
    makes it so, and a crash before then loses it."""

    def __init__(self, *, background: bool = False) -> None:
        self.files: dict[str, bytearray] = {}
        self.durable: dict[str, bytes] = {}
        self.fsyncs = 0
        self.background = background
        self._tickets = 0
        self._synced = 0
        self._pending: list[tuple[int, dict[str, bytes]]] = []

    def list(self) -> list[str]:
        return sorted(self.files)

    def exists(self, name: str) -> bool:
        return name in self.files

    def read(self, name: str) -> bytes:
        return bytes(self.files[name])

    def size(self, name: str) -> int:
        return len(self.files[name])

    def append(self, name: str, data: bytes) -> None:
        if name not in self.files:
            self.files[name] = bytearray()
            self.durable[name] = b""
        self.files[name] += data

    def overwrite(self, name: str, data: bytes) -> None:
        if name not in self.files:
            self.durable[name] = bytes(data)  # created durable, as files are here
        self.files[name] = bytearray(data)

    def truncate(self, name: str, size: int) -> None:
        del self.files[name][size:]

    def fsync(self, name: str) -> None:
        self.fsyncs += 1
        self.durable[name] = bytes(self.files[name])

    def sync_begin(self, names: list[str]) -> int:
        self.fsyncs += 1
        self._tickets += 1
        self._pending.append((self._tickets, {name: bytes(self.files[name]) for name in names}))
        if not self.background:
            self.complete_syncs(self._tickets)
        return self._tickets

    def synced(self) -> int:
        return self._synced

    @property
    def in_flight(self) -> int:
        """Syncs begun and not completed."""
        return len(self._pending)

    def sync_wait(self, ticket: int) -> None:
        self.complete_syncs(ticket)

    def complete_syncs(self, ticket: int) -> None:
        """Make durable what the syncs up to ``ticket`` covered (no-op for tickets a crash lost)."""
        while self._pending and self._pending[0][0] <= ticket:
            t, contents = self._pending.pop(0)
            for name, data in contents.items():
                current = self.files.get(name)
                # content cut since (which the node does only with no sync in flight) stays as durable as it was
                if current is not None and current[: len(data)] == data and len(data) >= len(self.durable[name]):
                    self.durable[name] = data
            self._synced = t

    def delete(self, name: str) -> None:
        self.files.pop(name, None)
        self.durable.pop(name, None)

    def write_atomic(self, name: str, data: bytes, sync: bool) -> None:
        self.files[name] = bytearray(data)
        self.durable[name] = bytes(data)

    def crash(self, rng: random.Random, power_loss: bool = True) -> None:
        """Simulate a crash.  ``power_loss``: unsynced appends survive only as a
        random torn prefix (sometimes with a flipped bit), and whatever is left
        is now what the platter holds.  Otherwise (kill -9): the page cache
        survives, so every write is still readable, but what was not synced is
        still not durable: a later power loss can take it away.  Syncs in
        flight never complete."""
        self._pending.clear()
        self._synced = self._tickets  # nobody is left to wait for them
        if not power_loss:
            return
        for name, data in self.files.items():
            durable = self.durable[name]
            if len(data) == len(durable) and data != durable:
                # rewritten in place and not synced: old or new, never a mix
                self.files[name] = bytearray(data if rng.random() < 0.5 else durable)
            elif len(data) > len(durable) and data[: len(durable)] == durable:
                torn = bytearray(data[len(durable): len(durable) + rng.randint(0, len(data) - len(durable))])
                if torn and rng.random() < 0.3:
                    torn[rng.randrange(len(torn))] ^= 1 << rng.randrange(8)
                self.files[name] = bytearray(durable) + torn
            else:
                self.files[name] = bytearray(durable)
            self.durable[name] = bytes(self.files[name])
