"""The catalog: every recording's descriptor, in one crash-safe file.

File ``catalog.bin`` in the archive directory (0600)::

    header  magic "TLARCCAT" | u32 version | u32 count | i64 next_recording_id | u32 crc32(previous 24 bytes)
    record  u32 length | u32 crc32(payload) | payload     (count times)

Each payload is the SBE ``RecordingDescriptor`` of ``schemas/archive.xml``
(control session and correlation ids zero).  The file is only ever replaced
whole: the new version is written to ``catalog.bin.tmp``, fsynced, renamed
over the old one and the directory fsynced, so a crash at any point leaves
either the old or the new catalog, never a mix.  Because of that, any record
that fails its checks is damage, not a torn write: loading refuses the whole
file with a ``CatalogError`` naming the file, the offset and the reason, and
changes nothing on disk (the operator decides; a recording is never dropped
silently).

Segments: a recording's data lives in ``<recording_id>-<base_position>.rec``
files beside the catalog (see cpp_ext/archive.cpp for their layout), or in
the directory its descriptor's ``segment_dir`` names once migrated.
"""

from __future__ import annotations

import dataclasses
import os
import re
import struct
import zlib
from pathlib import Path

from . import wire
from .errors import ArchiveProtocolError, CatalogError
from .wire import RecordingDescriptor, RecordingState

__all__ = ["Catalog", "CATALOG_FILE", "segment_dir", "segment_files", "segment_name"]

CATALOG_FILE = "catalog.bin"
MAGIC = b"TLARCCAT"
VERSION = 1
MAX_RECORDINGS = 1_000_000
_HEAD = struct.Struct("<8sIIq")
_CRC = struct.Struct("<I")
_REC = struct.Struct("<II")
_SEGMENT = re.compile(r"^(\d{1,19})-(\d{1,19})\.rec$")


def segment_name(recording_id: int, base_position: int) -> str:
    return f"{recording_id}-{base_position}.rec"


def segment_dir(archive_dir: str | Path, d: RecordingDescriptor) -> Path:
    """Where ``d``'s segment files are: the archive's directory, or where they were migrated to."""
    return Path(d.segment_dir) if d.segment_dir else Path(archive_dir)


def segment_files(dir: str | Path, recording_id: int) -> list[tuple[int, Path]]:
    """The recording's segment files as (base position, path), by base."""
    out = []
    for entry in os.scandir(dir):
        m = _SEGMENT.match(entry.name)
        if m and int(m.group(1)) == recording_id:
            out.append((int(m.group(2)), Path(entry.path)))
    return sorted(out)


def _insane(d: RecordingDescriptor) -> str | None:
    """The first field of ``d`` that no recording of this archive can have, or None."""
    t, seg = d.term_buffer_length, d.segment_file_length
    if not (64 * 1024 <= t <= 2**30 and t & (t - 1) == 0):
        return "term_buffer_length"
    if not (t <= seg <= 2**40 and seg & (seg - 1) == 0):
        return "segment_file_length"
    if not (32 <= d.mtu_length <= 65536 and d.mtu_length % 32 == 0):
        return "mtu_length"
    if d.start_position < 0 or d.start_position % 32:
        return "start_position"
    if d.segment_dir and (not os.path.isabs(d.segment_dir) or "\0" in d.segment_dir):
        return "segment_dir"
    if d.state == RecordingState.RECORDING:
        return None if d.stop_position == -1 else "stop_position"
    if d.stop_position < d.start_position or d.stop_position % 32:
        return "stop_position"
    return None


def fsync_dir(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (write ``<name>.tmp``, fsync, rename, fsync the directory)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


class Catalog:
    """The recordings of one archive directory.  Not thread safe: the archive's
    conductor owns it.  Changes are in memory until ``save()``."""

    def __init__(self, dir: str | Path) -> None:
        self.dir = Path(dir)
        self.path = self.dir / CATALOG_FILE
        self.recordings: dict[int, RecordingDescriptor] = {}
        self.next_recording_id = 0
        if self.path.exists():
            self._load(self.path.read_bytes())

    def _load(self, data: bytes) -> None:
        f = str(self.path)
        if len(data) < _HEAD.size + _CRC.size:
            raise CatalogError("catalog truncated in its header", file=f, offset=0, length=len(data))
        magic, version, count, next_id = _HEAD.unpack_from(data, 0)
        (crc,) = _CRC.unpack_from(data, _HEAD.size)
        if magic != MAGIC:
            raise CatalogError("not an archive catalog (bad magic)", file=f, offset=0)
        if crc != zlib.crc32(data[:_HEAD.size]):
            raise CatalogError("catalog header checksum mismatch", file=f, offset=0)
        if version != VERSION:
            raise CatalogError("unsupported catalog version", file=f, offset=8, version=version, supported=VERSION)
        if count > MAX_RECORDINGS or not 0 <= next_id < 2**62:
            raise CatalogError("catalog header out of range", file=f, offset=12, count=count, next_recording_id=next_id)
        pos = _HEAD.size + _CRC.size
        for i in range(count):
            if pos + _REC.size > len(data):
                raise CatalogError("catalog truncated at a record header", file=f, offset=pos, record=i, count=count)
            length, crc = _REC.unpack_from(data, pos)
            body = pos + _REC.size
            if length > len(data) - body:
                raise CatalogError("catalog truncated in a record", file=f, offset=pos, record=i, length=length,
                                   available=len(data) - body)
            payload = data[body:body + length]
            if zlib.crc32(payload) != crc:
                raise CatalogError("catalog record checksum mismatch", file=f, offset=pos, record=i)
            try:
                d = wire.decode(payload)
            except ArchiveProtocolError as exc:
                raise CatalogError("catalog record undecodable", file=f, offset=pos, record=i, error=exc.what) from None
            if not isinstance(d, RecordingDescriptor):
                raise CatalogError("catalog record is not a recording descriptor", file=f, offset=pos, record=i)
            bad = _insane(d)
            if bad:
                raise CatalogError("catalog record out of range", file=f, offset=pos, record=i, recording_id=d.recording_id,
                                   field=bad)
            if d.recording_id in self.recordings or not 0 <= d.recording_id < next_id:
                raise CatalogError("catalog record's recording id duplicated or out of range", file=f, offset=pos,
                                   record=i, recording_id=d.recording_id, next_recording_id=next_id)
            self.recordings[d.recording_id] = d
            pos = body + length
        if pos != len(data):
            raise CatalogError("catalog has bytes after its last record", file=f, offset=pos, length=len(data))
        self.next_recording_id = next_id

    def encode(self) -> bytes:
        head = _HEAD.pack(MAGIC, VERSION, len(self.recordings), self.next_recording_id)
        out = [head, _CRC.pack(zlib.crc32(head))]
        for rid in sorted(self.recordings):
            payload = wire.encode(self.recordings[rid])
            out.append(_REC.pack(len(payload), zlib.crc32(payload)))
            out.append(payload)
        return b"".join(out)

    def save(self) -> None:
        """Replace the catalog file atomically (write, fsync, rename, fsync the directory)."""
        write_durably(self.path, self.encode())

    def add(self, descriptor: RecordingDescriptor) -> RecordingDescriptor:
        """Give ``descriptor`` the next recording id and keep it (not yet saved)."""
        d = dataclasses.replace(descriptor, recording_id=self.next_recording_id, control_session_id=0, correlation_id=0)
        self.next_recording_id += 1
        self.recordings[d.recording_id] = d
        return d

    def update(self, descriptor: RecordingDescriptor) -> None:
        if descriptor.recording_id not in self.recordings:
            raise KeyError(descriptor.recording_id)
        self.recordings[descriptor.recording_id] = dataclasses.replace(descriptor, control_session_id=0, correlation_id=0)

    def get(self, recording_id: int) -> RecordingDescriptor | None:
        return self.recordings.get(recording_id)

    def active(self) -> list[RecordingDescriptor]:
        return [d for d in self.recordings.values() if d.state == RecordingState.RECORDING]

    def find(self, from_recording_id: int = 0, count: int = 2**31 - 1, stream_id: int | None = None,
             channel_fragment: str = "") -> list[RecordingDescriptor]:
        """Recordings from ``from_recording_id`` on, by id, filtered by stream and channel text."""
        out: list[RecordingDescriptor] = []
        for rid in sorted(self.recordings):
            if len(out) >= count:
                break
            d = self.recordings[rid]
            if rid < from_recording_id or (stream_id is not None and d.stream_id != stream_id):
                continue
            if channel_fragment and channel_fragment not in d.original_channel:
                continue
            out.append(d)
        return out
