"""Batch decode: many messages of one SBE template into numpy column arrays, in one call.

The shape a research user wants for a day of ticks: one array per field of the
template's root block, read from

- a list of messages (bytes, or views copied out of poll handlers), each
  starting with its message header: :meth:`BatchDecoder.messages`;
- a buffer of Aeron frames as they lie in a term buffer (frames 32-byte
  aligned, padding frames, other templates interleaved):
  :meth:`BatchDecoder.frames`;
- an archive recording's segment files: :meth:`BatchDecoder.recording`.

Columns are named by the flyweights' Python names (``bid_size``), composite
members joined with a dot (``bid_price.mantissa``).  Numbers keep their wire
type (native byte order), char arrays are fixed-width bytes (``S16``, NULs
stripped on access), enums and sets their raw integer (the mapping is in
:attr:`Batch.enums` / :attr:`Batch.sets`), non-char arrays a 2-D column.
Optional values keep their raw null value (NaN for floats);
:meth:`Batch.null_mask` says where a column is null, including fields newer
than a message's acting version (filled with the null value, as the
flyweights read them as null).  Constant fields are in
:attr:`Batch.constants`.  Groups and var data are not decoded.

Two paths, same result:

- **uniform**: every frame (or message) has the same length and header, the
  common case of one template per stream.  The buffer is viewed as a numpy
  structured array whose itemsize is the frame stride, checked with a few
  vectorised comparisons, and each column is one strided copy (or a
  zero-copy view with ``copy=False``);
- **scan**: a native scanner (``cpp_ext/batch.cpp``) walks the frames, skips
  padding frames, fragments and other templates (counted in
  :attr:`Batch.skipped`) and copies each matching root block into a record
  array, which is then split into columns.

Hostile bytes: a frame length below the frame header, a frame or a root
block running past the end of what holds it, a block shorter than the
fields of its acting version, an unknown frame type end in
:class:`MessageError` naming the offset (``fault=peer``; ``fault=storage``
with the file for a recording).  Nothing is read outside the buffer.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from tickline.codecs.errors import MessageError
from tickline.codecs.ir import (
    PRIMITIVES,
    CompositeType,
    EncodedType,
    EnumType,
    Message,
    Schema,
    SetType,
    TypeDef,
    block_need,
    block_needs,
    is_float,
)

if TYPE_CHECKING:
    import numpy as np

__all__ = ["Batch", "BatchDecoder", "FRAME_HEADER_LENGTH", "pack_frames"]

FRAME_HEADER_LENGTH = 32  # an Aeron data frame header
FRAME_ALIGNMENT = 32
_PAD, _DATA, _UNFRAGMENTED = 0, 1, 0xC0

_NUMPY_CODE = {"b": "i1", "B": "u1", "h": "i2", "H": "u2", "i": "i4", "I": "u4", "q": "i8", "Q": "u8", "f": "f4", "d": "f8"}

BufferLike = Union[bytes, bytearray, memoryview, mmap.mmap, Any]


def pack_frames(messages: Iterable[BufferLike], *, session_id: int = 0, stream_id: int = 0, term_id: int = 0,
                term_offset: int = 0) -> bytearray:
    """``messages`` laid out as unfragmented Aeron data frames, as a term buffer holds them (each frame
    32-byte aligned, zero filled to the next frame).  For tests, benchmarks and tools that write frame
    files; a real term also holds padding frames, which :meth:`BatchDecoder.frames` skips."""
    out = bytearray()
    for m in messages:
        length = FRAME_HEADER_LENGTH + len(m)
        if length > 2**31 - 1:
            raise ValueError(f"message too long for a frame: length={len(m)}")
        out += struct.pack("<iBBHiiiiq", length, 0, _UNFRAGMENTED, _DATA, term_offset + len(out), session_id, stream_id,
                           term_id, 0)
        out += m
        out += bytes(-len(out) % FRAME_ALIGNMENT)
    return out


def _np() -> Any:
    try:
        import numpy
    except ImportError as e:  # pragma: no cover - numpy is in the test and bench extras
        raise ImportError("tickline.codecs.batch needs numpy: pip install 'tickline[batch]'") from e
    return numpy


@dataclass(frozen=True)
class Column:
    """One column: where it lies in the root block and what it holds."""

    name: str
    offset: int  # inside the root block
    dtype: str  # numpy dtype string in wire byte order (e.g. '<u8', 'S16', ('<i4', (4,)) as '4<i4')
    shape: tuple[int, ...]
    since_version: int
    null: Any  # the raw value that reads as null (None: a required field, no value is null)
    fill: Any  # what a message of an older acting version, which lacks the field, holds there
    kind: str  # number | chars | enum | set


@dataclass
class Batch:
    """The result of one batch decode."""

    columns: dict[str, Any]
    """column name -> numpy array (len == count)"""
    count: int
    offsets: Any
    """int64: each message's frame offset (a stream position for a recording; an index for a list)"""
    versions: Any
    """uint16: each message's acting version"""
    skipped: dict[str, int]
    """frames not decoded: ``padding``, ``other_template`` (other templates or schemas), ``fragmented``"""
    path: str
    """which path decoded it: ``uniform`` (a strided view), ``scan`` (the native frame scanner) or ``gather`` (a list of messages of different lengths or templates)"""
    enums: dict[str, dict[int, str]] = field(default_factory=dict)
    """enum column -> {raw value: validValue name}"""
    sets: dict[str, dict[int, str]] = field(default_factory=dict)
    """set column -> {bit: choice name}"""
    constants: dict[str, Any] = field(default_factory=dict)
    nulls: dict[str, Any] = field(default_factory=dict)
    """column -> raw null value (NaN for floats), for optional fields and enums"""
    since: dict[str, int] = field(default_factory=dict)
    """column -> the version that added it (for columns newer than version 0): null in older messages"""

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, name: str) -> Any:
        return self.columns[name]

    def keys(self) -> Iterable[str]:
        return self.columns.keys()

    def null_mask(self, name: str) -> Any:
        """Boolean array: where column ``name`` is null: an optional field or an enum holding its null value
        (every element, for an array), or a field newer than the message's acting version."""
        np = _np()
        col = self.columns[name]
        null = self.nulls.get(name)
        if null is None:
            mask = np.zeros(self.count, dtype=bool)
        else:
            if isinstance(null, float) and null != null:
                mask = np.isnan(col)
            else:
                mask = col == np.asarray(null, dtype=col.dtype)
            if mask.ndim > 1:
                mask = mask.reshape(self.count, -1).all(axis=1)
        since = self.since.get(name)
        if since is not None:
            mask = mask | (self.versions < since)
        return mask


def _columns(schema: Schema, message: Message) -> tuple[list[Column], dict[str, Any], dict[str, dict[int, str]], dict[str, dict[int, str]]]:
    """The columns of ``message``'s root block, its constants, enum and set mappings."""
    e = schema.endian
    cols: list[Column] = []
    constants: dict[str, Any] = {}
    enums: dict[str, dict[int, str]] = {}
    sets: dict[str, dict[int, str]] = {}

    def add(name: str, t: TypeDef, offset: int, since: int, presence: str, constant: Any) -> None:
        if presence == "constant":
            constants[name] = constant
            return
        if isinstance(t, CompositeType):
            for m in t.members:
                mt = m.type
                mpresence = getattr(mt, "presence", "required")
                add(f"{name}.{m.py or m.name}", mt, offset + m.offset, max(since, getattr(mt, "since_version", 0)),
                    mpresence, getattr(mt, "constant", None))
            return
        optional = presence == "optional" or getattr(t, "presence", "required") == "optional"
        if isinstance(t, EncodedType):
            code = PRIMITIVES[t.primitive][0]
            if t.primitive == "char":
                null: Any = b"" if t.length > 1 else bytes([int(t.null)]) if t.null_value is not None else b"\x00"
                nullable = optional or (t.length == 1 and t.null_value is not None)
                cols.append(Column(name, offset, f"S{t.length}", (), since, null if nullable else None, null, "chars"))
                return
            dt = e + _NUMPY_CODE[code]
            shape = (t.length,) if t.length > 1 else ()
            nv: Any = float("nan") if is_float(t.primitive) else int(t.null)
            cols.append(Column(name, offset, dt, shape, since, nv if optional else None, nv, "number"))
        elif isinstance(t, EnumType):
            dt = e + _NUMPY_CODE[PRIMITIVES[t.primitive][0]]
            enums[name] = {v.value: v.name for v in t.values}
            # an enum's null value reads as null whatever the presence (sbe-tool's NULL_VAL), as in the flyweights
            cols.append(Column(name, offset, dt, (), since, t.null_value, t.null_value, "enum"))
        elif isinstance(t, SetType):
            dt = e + _NUMPY_CODE[PRIMITIVES[t.primitive][0]]
            sets[name] = {c.bit: c.name for c in t.choices}
            cols.append(Column(name, offset, dt, (), since, None, 0, "set"))

    for f in message.fields:
        add(f.py or f.name, f.type, f.offset, f.since_version, f.presence, f.constant)
    return cols, constants, enums, sets


_Member = tuple[int, int, int]  # (offset, size, constant): offset -1 when the schema fixes the member as a constant


def _header_layout(schema: Schema) -> tuple[int, tuple[_Member, _Member, _Member, _Member]]:
    """The message header's length and (offset, size, constant) of blockLength, templateId, schemaId, version."""
    h = schema.header
    members: list[_Member] = []
    for name in ("blockLength", "templateId", "schemaId", "version"):
        m = h.member(name)
        if m is None or not isinstance(m.type, EncodedType) or m.type.length != 1 or is_float(m.type.primitive) \
                or m.type.primitive.startswith("int"):
            raise ValueError(f"batch decode needs an unsigned integer header member: member={name} header={h.name}")
        if m.type.presence == "constant":
            members.append((-1, 0, int(m.type.constant or 0)))
        else:
            members.append((m.offset, m.type.primitive_size, 0))
    return h.size, (members[0], members[1], members[2], members[3])


class BatchDecoder:
    """Decodes many messages of one template of ``schema`` into numpy columns.  Build once, use many times;
    keeps no state between calls (thread safe)."""

    def __init__(self, schema: Schema, message: str | int) -> None:
        np = _np()
        self.schema = schema
        self.message = schema.message_by_name(message) if isinstance(message, str) else schema.message_by_id(message)
        self.columns, self.constants, self.enums, self.sets = _columns(schema, self.message)
        self.record_length = max(self.message.block_length, 1)
        self.header_length, self._members = _header_layout(schema)
        self._needs = block_needs(self.message.fields)
        sid = schema.header_constant("schemaId")
        # a header whose schemaId is a constant of its own carries no schema id to check (as the flyweights)
        self._check_schema = sid is None
        self.record_dtype = self._dtype(0, self.record_length)
        self._np = np

    # -- layout -----------------------------------------------------------------------------------------------
    def _dtype(self, base: int, itemsize: int, header: bool = False) -> Any:
        """A structured dtype of the columns at ``base`` + their offset (and the frame and message header
        members at ``base - header_length - 32`` when ``header``), ``itemsize`` bytes per item."""
        np = _np()
        names, formats, offsets = [], [], []
        for c in self.columns:
            names.append(c.name)
            formats.append((c.dtype, c.shape) if c.shape else c.dtype)
            offsets.append(base + c.offset)
        if header:
            e = self.schema.endian
            hbase = base - self.header_length
            names += ["@frame_length", "@flags", "@type"]
            formats += ["<i4", "u1", "<u2"]
            offsets += [hbase - FRAME_HEADER_LENGTH, hbase - FRAME_HEADER_LENGTH + 5, hbase - FRAME_HEADER_LENGTH + 6]
            for label, (off, size, _) in zip(("@block_length", "@template_id", "@schema_id", "@version"), self._members):
                if off >= 0:
                    names.append(label)
                    formats.append(f"{e}u{size}" if size > 1 else "u1")
                    offsets.append(hbase + off)
        return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": itemsize})

    def _hv(self, arr: Any, i: int, label: str) -> Any:
        """Header member ``i`` of every item of ``arr`` (a constant broadcast when the schema fixes it)."""
        off, _, const = self._members[i]
        return arr[label] if off >= 0 else self._np.full(len(arr), const)

    def _need(self, versions: Any) -> Any:
        """The bytes a block of each acting version must have (a scalar when all versions are one)."""
        np = self._np
        if len(versions) and int(versions.min()) == int(versions.max()):
            return block_need(self.message.fields, int(versions[0]))
        need = np.zeros(len(versions), dtype=np.int64)
        for since, n in self._needs:
            need[versions >= since] = n
        return need

    # -- results ----------------------------------------------------------------------------------------------
    def _batch(self, items: Any, versions: Any, offsets: Any, skipped: dict[str, int], path: str, copy: bool) -> Batch:
        """A batch of the columns of ``items`` (a structured array or view): copies, or views when not ``copy``."""
        np = self._np
        return self._finish({c.name: np.array(items[c.name], copy=True) if copy else items[c.name] for c in self.columns},
                            versions, offsets, skipped, path, owned=copy)

    def _finish(self, columns: dict[str, Any], versions: Any, offsets: Any, skipped: dict[str, int], path: str,
                owned: bool = True) -> Batch:
        """The batch of ``columns`` (wire byte order): native byte order, and the fields newer than a message's
        acting version filled with their null.  ``owned``: the arrays are this call's, not views of the input."""
        np = self._np
        cols: dict[str, Any] = {}
        for c in self.columns:
            col = columns[c.name]
            own = owned
            if col.dtype.byteorder not in ("=", "|"):  # a big-endian schema on a little-endian host
                col = col.astype(col.dtype.newbyteorder("="))
                own = True
            if c.since_version > 0:
                old = versions < c.since_version
                if old.any():
                    if not own:  # never write into the caller's buffer
                        col = col.copy()
                    col[old] = c.fill
            cols[c.name] = col
        nulls = {c.name: c.null for c in self.columns if c.null is not None}
        since = {c.name: c.since_version for c in self.columns if c.since_version > 0}
        return Batch(cols, len(versions), offsets, versions, skipped, path, dict(self.enums), dict(self.sets),
                     dict(self.constants), nulls, since)

    def _empty(self, skipped: dict[str, int], path: str) -> Batch:
        np = self._np
        return self._batch(np.zeros(0, dtype=self.record_dtype), np.zeros(0, np.uint16), np.zeros(0, np.int64),
                           skipped, path, True)

    # -- frames -----------------------------------------------------------------------------------------------
    def frames(self, data: BufferLike, *, copy: bool = True, base: int = 0, where: str = "") -> Batch:
        """Decode every unfragmented data frame of this template in ``data``, a buffer of Aeron frames laid
        out as in a term buffer (each frame at a 32-byte aligned offset from the start of ``data``).
        A frame length of 0 ends the frames (the unwritten part of a term).  ``copy=False`` returns
        zero-copy views of ``data`` when the uniform path applies (they keep ``data`` alive).  Offsets
        are ``base`` + the offset in ``data``; ``where`` is added to error messages."""
        return self._frames(data, copy, base, where)[0]

    def _frames(self, data: BufferLike, copy: bool, base: int, where: str) -> tuple[Batch, bool]:
        """The batch, and whether the frames ended at a zero frame length before the end of ``data``."""
        buf = self._np.frombuffer(data, dtype=self._np.uint8)
        if not copy:  # views need frames of one stride; a copy is made fastest by the scanner in one pass
            uniform = self._uniform_frames(buf, base)
            if uniform is not None:
                return uniform
        return self._scan_frames(buf, base, where)

    def _uniform_frames(self, buf: Any, base: int) -> tuple[Batch, bool] | None:
        np = self._np
        n = len(buf)
        hl = self.header_length
        if n < FRAME_HEADER_LENGTH + hl:
            return None
        first = int.from_bytes(bytes(buf[:4]), "little", signed=True)
        if first < FRAME_HEADER_LENGTH + hl + self.message.block_length:
            return None
        stride = (first + FRAME_ALIGNMENT - 1) & ~(FRAME_ALIGNMENT - 1)
        count = n // stride
        tail = n - count * stride
        # bytes after the last whole frame: only the start of the unwritten part (a zero frame length)
        ended = tail > 0
        if count == 0 or (tail and (tail < 4 or buf[count * stride:count * stride + 4].any())):
            return None
        items = np.ndarray((count,), dtype=self._dtype(FRAME_HEADER_LENGTH + hl, stride, header=True), buffer=buf)
        head = items[:1]
        if int(head["@type"][0]) != _DATA or int(head["@flags"][0]) & _UNFRAGMENTED != _UNFRAGMENTED:
            return None
        if int(self._hv(head, 1, "@template_id")[0]) != self.message.id:
            return None
        if self._check_schema and int(self._hv(head, 2, "@schema_id")[0]) != self.schema.id:
            return None
        bl0, v0 = int(self._hv(head, 0, "@block_length")[0]), int(self._hv(head, 3, "@version")[0])
        if bl0 < self.message.block_length or hl + bl0 > first - FRAME_HEADER_LENGTH or v0 > 0xFFFF:
            return None
        # every frame like the first: its first 8 bytes (length, version, flags, type) and its whole message header
        frame_word = np.ndarray((count,), dtype=np.dtype({"names": ["w"], "formats": ["<u8"], "offsets": [0],
                                                          "itemsize": stride}), buffer=buf)["w"]
        if not bool((frame_word == frame_word[0]).all()):
            return None
        header = np.ndarray((count,), dtype=np.dtype({"names": ["h"], "formats": [f"V{hl}" if hl != 8 else "<u8"],
                                                      "offsets": [FRAME_HEADER_LENGTH], "itemsize": stride}),
                            buffer=buf)["h"]
        if hl and not bool((header == header[0]).all()):
            return None
        versions = np.full(count, v0, dtype=np.uint16)
        offsets = base + np.arange(count, dtype=np.int64) * stride
        skipped = {"padding": 0, "other_template": 0, "fragmented": 0}
        return self._batch(items, versions, offsets, skipped, "uniform", False), ended

    def _scan_frames(self, buf: Any, base: int, where: str) -> tuple[Batch, bool]:
        from tickline import _aeron

        np = self._np
        n = len(buf)
        hl = self.header_length
        # A message of the smallest block its versions allow fills a frame of at least ``least`` bytes: a good
        # guess of how many fit.  A hostile frame may declare a smaller block (refused below, after the scan):
        # the scanner then stops with its output full and the scan continues into more space.
        least = (FRAME_HEADER_LENGTH + hl + block_need(self.message.fields, 0) + FRAME_ALIGNMENT - 1) & ~(FRAME_ALIGNMENT - 1)
        header = (hl, *self._members)
        chunks: list[tuple[dict[str, Any], Any, Any]] = []
        skipped = {"padding": 0, "other_template": 0, "fragmented": 0}
        start, ended, full = 0, False, True
        while full:
            capacity = (n - start) // least + 1
            columns = {c.name: np.empty((capacity,) + c.shape, dtype=c.dtype) for c in self.columns}
            spec = [(c.offset, columns[c.name][:1].nbytes, columns[c.name]) for c in self.columns]
            offsets = np.empty(capacity, dtype=np.int64)
            meta = np.empty((capacity, 2), dtype=np.uint16)
            err, err_off, count, start, full, ended, padding, other, fragments = _aeron.batch_scan_frames(
                buf, start, header, self.schema.byte_order == "bigEndian", self.message.id, self.schema.id,
                self._check_schema, spec, offsets, meta)
            skipped["padding"] += padding
            skipped["other_template"] += other
            skipped["fragmented"] += fragments
            if err is not None:
                raise MessageError(f"bad frame: message={self.message.name} offset={base + err_off}{where} "
                                   f"reason={err!r} (fault=peer)")
            # keep only what was written (a small batch out of a large buffer does not hold the whole reservation)
            small = count < capacity // 4

            def keep(a: Any, n: int = count, small: bool = small) -> Any:
                return a[:n].copy() if small else a[:n]

            chunks.append(({k: keep(v) for k, v in columns.items()}, keep(offsets), keep(meta)))
        if len(chunks) == 1:
            cols, offs, meta = chunks[0]
        else:
            cols = {c.name: np.concatenate([ch[0][c.name] for ch in chunks]) for c in self.columns}
            offs = np.concatenate([ch[1] for ch in chunks])
            meta = np.concatenate([ch[2] for ch in chunks])
        bls, versions = meta[:, 0], meta[:, 1].copy()
        short = bls < self._need(versions)
        if short.any():
            i = int(np.argmax(short))
            raise MessageError(f"block too short: message={self.message.name} offset={base + int(offs[i])}{where} "
                               f"blockLength={int(bls[i])} but version={int(versions[i])} has fields up to "
                               f"length={block_need(self.message.fields, int(versions[i]))} (fault=peer)")
        return self._finish(cols, versions, base + offs, skipped, "scan"), ended

    # -- a list of messages -----------------------------------------------------------------------------------
    def messages(self, messages: Sequence[BufferLike], *, copy: bool = True) -> Batch:
        """Decode a sequence of whole SBE messages (each starting with its message header, e.g. the bytes of
        poll views copied in the handler).  Messages of other templates are skipped and counted.
        Offsets are the messages' indexes in ``messages``."""
        np = self._np
        count = len(messages)
        skipped = {"padding": 0, "other_template": 0, "fragmented": 0}
        if count == 0:
            return self._empty(skipped, "uniform")
        lengths = np.fromiter(map(len, messages), dtype=np.int64, count=count)
        joined = b"".join(messages)
        hl = self.header_length
        short = lengths < hl
        if short.any():
            i = int(np.argmax(short))
            raise MessageError(f"message shorter than its header: message={self.message.name} index={i} "
                               f"length={int(lengths[i])} header_length={hl} (fault=peer)")
        l0 = int(lengths[0])
        if l0 >= hl + self.record_length and bool((lengths == l0).all()):
            raw = np.frombuffer(joined, dtype=np.uint8)
            items = np.ndarray((count,), dtype=self._dtype(hl, l0, header=False), buffer=raw)
            hdr = np.ndarray((count,), dtype=self._header_dtype(l0), buffer=raw)
            return self._select(items, hdr, lengths, skipped, copy, uniform=True)
        # different lengths: gather each message's header and root block into fixed-width rows
        starts = np.zeros(count, dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        width = hl + self.record_length
        raw = np.frombuffer(joined + bytes(width), dtype=np.uint8)
        rows = raw[starts[:, None] + np.arange(width)]
        hdr = np.ndarray((count,), dtype=self._header_dtype(width), buffer=rows)
        room = lengths - hl
        rows[:, hl:] *= (np.arange(self.record_length) < room[:, None])  # bytes past a message are not its own
        items = np.ndarray((count,), dtype=self._dtype(hl, width), buffer=rows)
        return self._select(items, hdr, lengths, skipped, copy, uniform=False)

    def _header_dtype(self, itemsize: int) -> Any:
        np = self._np
        e = self.schema.endian
        names, formats, offsets = [], [], []
        for label, (off, size, _) in zip(("@block_length", "@template_id", "@schema_id", "@version"), self._members):
            if off >= 0:
                names.append(label)
                formats.append(f"{e}u{size}" if size > 1 else "u1")
                offsets.append(off)
        return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": itemsize})

    def _select(self, items: Any, hdr: Any, lengths: Any, skipped: dict[str, int], copy: bool, uniform: bool) -> Batch:
        np = self._np
        mine = self._hv(hdr, 1, "@template_id") == self.message.id
        if self._check_schema:
            mine &= self._hv(hdr, 2, "@schema_id") == self.schema.id
        bl = self._hv(hdr, 0, "@block_length").astype(np.int64)
        vs = self._hv(hdr, 3, "@version").astype(np.int64)
        index = np.arange(len(items), dtype=np.int64)
        over = mine & (bl > lengths - self.header_length)
        if over.any():
            i = int(np.argmax(over))
            raise MessageError(f"message's root block runs past its end: message={self.message.name} index={i} "
                               f"length={int(lengths[i])} blockLength={int(bl[i])} (fault=peer)")
        short = mine & (bl < self._need(vs))
        if short.any():
            i = int(np.argmax(short))
            raise MessageError(f"block too short: message={self.message.name} index={i} blockLength={int(bl[i])} "
                               f"but version={int(vs[i])} has fields up to length={block_need(self.message.fields, int(vs[i]))} "
                               f"(fault=peer)")
        skipped["other_template"] = int(len(items) - mine.sum())
        all_mine = skipped["other_template"] == 0
        # Past a root block shorter than ours lie only fields newer than its acting version (a block holds
        # at least its version's fields, checked above): _finish fills those with their null.
        if all_mine:
            sel, idx = items, index
        else:
            sel, idx = items[mine], index[mine]
            uniform = False
        versions = vs[mine].astype(np.uint16) if not all_mine else vs.astype(np.uint16)
        return self._batch(sel, versions, idx, skipped, "uniform" if uniform else "gather", copy or not uniform)

    # -- an archive recording ---------------------------------------------------------------------------------
    def recording(self, archive_dir: str | os.PathLike[str], recording_id: int) -> Batch:
        """Decode every message of this template in recording ``recording_id`` of the archive in
        ``archive_dir`` (its catalog says where the recording starts and stops; a recording still being
        written is read up to its first unwritten frame).  Offsets are stream positions.  Damage in a
        segment file ends in a :class:`MessageError` naming the file, offset and position (``fault=storage``)."""
        from tickline.archive.catalog import Catalog, segment_files

        directory = Path(archive_dir)
        d = Catalog(directory).recordings.get(recording_id)
        if d is None:
            raise KeyError(f"no such recording: recording_id={recording_id} dir={os.fspath(archive_dir)}")
        start, stop, seg_len = d.start_position, d.stop_position, d.segment_file_length
        term = d.term_buffer_length
        files = dict(segment_files(directory, recording_id))
        first = start - (start & (term - 1))
        parts: list[Batch] = []
        base = first
        while stop == -1 or base < stop:
            path = files.get(base)
            if path is None:
                if stop == -1 and parts:
                    break
                if stop != -1 and start == stop:
                    break
                raise MessageError(f"segment file missing: recording_id={recording_id} base={base} "
                                   f"dir={os.fspath(archive_dir)} (fault=storage)")
            lo = max(start, base) - base
            hi = seg_len if stop == -1 else min(stop - base, seg_len)
            part, ended = self._segment(Path(path), lo, hi, base, recording_id)
            parts.append(part)
            if ended:
                break
            base += seg_len
        return self._concat(parts)

    def _segment(self, path: Path, lo: int, hi: int, base: int, recording_id: int) -> tuple[Batch, bool]:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < hi:
                raise MessageError(f"segment file truncated: recording_id={recording_id} file={path} "
                                   f"length={size} expected={hi} (fault=storage)")
            if hi <= lo:
                return self._empty({"padding": 0, "other_template": 0, "fragmented": 0}, "scan"), False
            with mmap.mmap(f.fileno(), hi, access=mmap.ACCESS_READ) as mm:
                view = memoryview(mm)[lo:hi]
                damage = ""
                try:
                    return self._frames(view, True, base + lo, f" file={path} recording_id={recording_id}")
                except MessageError as e:
                    damage = str(e).replace("(fault=peer)", "(fault=storage)")
                finally:
                    view.release()  # the columns are copies: nothing of the map outlives it
        raise MessageError(damage)

    def _concat(self, parts: list[Batch]) -> Batch:
        np = self._np
        if not parts:
            return self._empty({"padding": 0, "other_template": 0, "fragmented": 0}, "scan")
        if len(parts) == 1:
            return parts[0]
        p0 = parts[0]
        cols = {name: np.concatenate([p.columns[name] for p in parts]) for name in p0.columns}
        skipped = {k: sum(p.skipped[k] for p in parts) for k in p0.skipped}
        path = "uniform" if all(p.path == "uniform" for p in parts) else "scan"
        return Batch(cols, sum(p.count for p in parts), np.concatenate([p.offsets for p in parts]),
                     np.concatenate([p.versions for p in parts]), skipped, path, p0.enums, p0.sets, p0.constants, p0.nulls,
                     p0.since)
