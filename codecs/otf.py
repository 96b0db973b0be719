"""On-the-fly SBE decoding and encoding from the IR alone (no generated code).

:func:`decode` turns one message into the JSON-ready form that
``tickline sbe-decode`` prints; :func:`encode` turns that form back into the
exact bytes a reference encoder writes (every byte not written by a field is
zero).  The form is::

    {"header": {<every header member>}, "message": NAME,
     "fields": {<root fields>, <groups>, <var data>}}

Values: integers as ints (full unsigned range); floats as their exact value
widened to double, non-finite ones as "NaN"/"-NaN"/"Infinity"/"-Infinity" (a NaN's sign is kept, not its payload); a single
char as a 1-character string; a char array as the text before the first NUL
in its characterEncoding (US-ASCII if none); other arrays as lists; optional
values equal to their null value as None; enums by validValue name (None
for the null value, the raw value if unknown); sets as the list of choice
names that are set, in schema order, then the number of each set bit no choice names; composites as objects; constants with
their value; groups as lists of entry objects; var data as text when its ``varData`` member has a
characterEncoding (bytes invalid in it kept as lone surrogates), else as lowercase hex.
A field, group or var data newer than the acting version is None, [] and "".

Hostile bytes raise :class:`MessageError` (see the runtime's ``short_block``, ``count_too_large`` and
``too_many_empty``): a block shorter than the fields of its acting version, a group count the rest of
the buffer cannot hold, too many group entries that take no bytes.  A decode's work is bounded by the
bytes present.

Not thread-unsafe: functions keep no state.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

from tickline.codecs.errors import MessageError
from tickline.codecs.ir import (
    INT_RANGE,
    PRIMITIVES,
    CompositeType,
    EncodedType,
    EnumType,
    Field,
    Group,
    Message,
    Schema,
    SetType,
    TypeDef,
    VarData,
    block_need,
    is_float,
    tail_min,
)
from tickline.codecs.runtime import MAX_EMPTY_ENTRIES, count_too_large, ff, fj, set_from_json, set_json, short_block, too_many_empty
from tickline.codecs.schema import py_encoding



def _fmt(schema: Schema, primitive: str) -> struct.Struct:
    return struct.Struct(schema.endian + PRIMITIVES[primitive][0])


def float_to_json(value: float) -> float | str:
    out = fj(value)
    assert out is not None
    return out


def float_from_json(value: Any) -> float:
    if isinstance(value, str):
        return ff(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MessageError(f"not a float value={value!r}")
    return float(value)


class _Decoder:
    def __init__(self, schema: Schema, buf: bytes | bytearray | memoryview, version: int, strict_enums: bool = False) -> None:
        self.s = schema
        self.strict_enums = strict_enums
        # decode() hands in a flat byte view it releases itself; anything else is viewed here.
        flat = isinstance(buf, (bytes, bytearray)) or (isinstance(buf, memoryview) and buf.format == "B" and buf.ndim == 1)
        self.buf = buf if flat else memoryview(buf).cast("B")
        self.version = version
        self.empty_left = MAX_EMPTY_ENTRIES

    def need(self, offset: int, size: int, what: str) -> None:
        if offset < 0 or offset + size > len(self.buf):
            raise MessageError(f"message truncated: {what} needs bytes [{offset}, {offset + size}) but the buffer has length={len(self.buf)}")

    def prim(self, primitive: str, offset: int) -> int | float:
        st = _fmt(self.s, primitive)
        self.need(offset, st.size, primitive)
        value: int | float = st.unpack_from(self.buf, offset)[0]
        return value

    def encoded(self, t: EncodedType, presence: str, offset: int) -> Any:
        if presence == "constant" or t.presence == "constant":
            return t.constant
        if t.length == 1:
            raw = self.prim(t.primitive, offset)
            if presence == "optional":
                if is_float(t.primitive):
                    if math.isnan(raw) or (not math.isnan(t.null) and raw == t.null):
                        return None
                elif raw == t.null:
                    return None
            if t.primitive == "char":
                return chr(int(raw))
            return float_to_json(raw) if is_float(t.primitive) else raw
        if t.primitive == "char":
            self.need(offset, t.length, t.name)
            raw_bytes = bytes(self.buf[offset:offset + t.length])
            cut = raw_bytes.find(b"\0")
            if cut >= 0:
                raw_bytes = raw_bytes[:cut]
            return raw_bytes.decode(py_encoding(t.character_encoding), errors="surrogateescape")
        size = t.primitive_size
        values = [self.prim(t.primitive, offset + i * size) for i in range(t.length)]
        if presence == "optional":  # each element holding the null value is null
            nan_null = is_float(t.primitive) and math.isnan(t.null)
            return [None if (math.isnan(v) if nan_null else v == t.null) else float_to_json(v) if is_float(t.primitive) else v
                    for v in values]
        if is_float(t.primitive):
            return [float_to_json(v) for v in values]
        return values

    def value(self, t: TypeDef, presence: str, offset: int, constant: Any = None) -> Any:
        if isinstance(t, EncodedType):
            if presence == "constant" and constant is not None:
                return constant
            return self.encoded(t, presence, offset)
        if isinstance(t, EnumType):
            if presence == "constant" or t.presence == "constant":
                return constant
            raw = int(self.prim(t.primitive, offset))
            if raw == t.null_value:
                return None
            vv = t.by_value().get(raw)
            if vv is None:
                if self.strict_enums:
                    raise MessageError(f"unknown value={raw} of enum {t.name} at offset={offset} (strict enums)")
                return chr(raw) if t.primitive == "char" else raw
            return vv.name
        if isinstance(t, SetType):
            return set_json(int(self.prim(t.primitive, offset)), tuple((c.name, c.bit) for c in t.choices))
        return self.composite(t, offset)

    def composite(self, t: CompositeType, offset: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for m in t.members:
            since = getattr(m.type, "since_version", 0)
            if since > self.version:
                out[m.name] = None
                continue
            presence = getattr(m.type, "presence", "required")
            const = m.type.constant if isinstance(m.type, EncodedType) else None
            out[m.name] = self.value(m.type, presence, offset + m.offset, const)
        return out

    def block(self, fields: list[Field], offset: int, block_length: int, out: dict[str, Any]) -> None:
        for f in fields:
            if f.since_version > self.version or (f.presence != "constant" and f.offset + f.size > block_length):
                out[f.name] = None
                continue
            out[f.name] = self.value(f.type, f.presence, offset + f.offset, f.constant)

    def check_block(self, fields: list[Field], block_length: int, offset: int, what: str) -> None:
        """A block shorter than the fields of its acting version is the producer's error, never silent nulls."""
        need = block_need(fields, self.version)
        if block_length < need:
            raise short_block(what, offset, block_length, self.version, need)

    def check_count(self, g: Group, count: int, block_length: int, pos: int, what: str) -> None:
        """Bound the work by the bytes present: refuse a count the rest of the buffer cannot hold (each entry
        needs its block and its nested group headers and var data lengths), and spend the allowance of
        entries that take no bytes at all."""
        entry = block_length + tail_min(g.groups, g.data, self.version)
        room = len(self.buf) - pos
        if entry and count * entry > room:
            raise count_too_large(what, pos, count, entry, room)
        if not entry:
            self.empty_left -= count
            if self.empty_left < 0:
                raise too_many_empty(what, pos, count)

    def rest(self, groups: list[Group], data: list[VarData], pos: int, out: dict[str, Any], where: str) -> int:
        for g in groups:
            if g.since_version > self.version:
                out[g.name] = []
                continue
            what = f"{where}.{g.name}"
            dim = g.dimension
            bl_m, n_m = dim.member("blockLength"), dim.member("numInGroup")
            assert bl_m is not None and n_m is not None
            assert isinstance(bl_m.type, EncodedType) and isinstance(n_m.type, EncodedType)
            self.need(pos, dim.size, f"group {what} dimensions")
            block_length = int(self.prim(bl_m.type.primitive, pos + bl_m.offset))
            count = int(self.prim(n_m.type.primitive, pos + n_m.offset))
            pos += dim.size
            self.check_block(g.fields, block_length, pos, f"group={what}")
            self.check_count(g, count, block_length, pos, what)
            entries: list[dict[str, Any]] = []
            for _ in range(count):
                entry: dict[str, Any] = {}
                self.need(pos, block_length, f"group {what} entry")
                self.block(g.fields, pos, block_length, entry)
                pos = self.rest(g.groups, g.data, pos + block_length, entry, what)
                entries.append(entry)
            out[g.name] = entries
        for d in data:
            if d.since_version > self.version:
                out[d.name] = ""
                continue
            lt = d.length_type
            length = int(self.prim(lt.primitive, pos))
            pos += lt.primitive_size
            self.need(pos, length, f"var data {d.name}")
            out[d.name] = var_data_to_json(d, bytes(self.buf[pos:pos + length]))
            pos += length
        return pos


def var_data_to_json(d: VarData, payload: bytes) -> str:
    """Var data in the JSON form: text when its ``varData`` member has a characterEncoding, else lowercase hex.
    Bytes not valid in the encoding are kept as lone surrogates, so the text still round-trips."""
    enc = d.data_type.character_encoding
    if enc is None:
        return payload.hex()
    try:
        return payload.decode(py_encoding(enc), errors="surrogateescape")
    except UnicodeDecodeError as exc:  # only multi-byte codecs other than UTF-8 get here (surrogateescape fails)
        raise MessageError(f"var data name={d.name} is not valid characterEncoding={enc}: {exc.reason} "
                           f"at byte={exc.start}") from None


def var_data_from_json(d: VarData, value: Any, what: str) -> bytes:
    """The inverse of :func:`var_data_to_json`; a value of the wrong form is a :class:`MessageError`."""
    enc = d.data_type.character_encoding
    if not isinstance(value, str):
        raise MessageError(f"{what}: var data name={d.name} must be a {'string' if enc else 'hex string'}, got value={value!r}")
    if enc is not None:
        try:
            return value.encode(py_encoding(enc), errors="surrogateescape")
        except UnicodeEncodeError:
            raise MessageError(f"{what}: var data name={d.name} value={value!r} is not representable in "
                               f"characterEncoding={enc}") from None
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise MessageError(f"{what}: var data name={d.name} is not valid hex") from None


def decode_header(schema: Schema, buf: bytes | bytearray | memoryview, offset: int = 0) -> dict[str, Any]:
    """Decode the message header at ``offset`` into a dict of every header member."""
    dec = _Decoder(schema, buf, schema.version)
    dec.need(offset, schema.header.size, "message header")
    return dec.composite(schema.header, offset)


def decode(schema: Schema, buf: bytes | bytearray | memoryview, offset: int = 0, *,
           strict_enums: bool = False) -> tuple[dict[str, Any], int]:
    """Decode the message at ``offset``; returns (the JSON-ready form, bytes consumed).

    ``buf`` is any buffer (a poll's view, a ``BufferClaim``, an mmap); a view of it taken here is released
    before returning or raising, so nothing of it outlives the call (the result holds copies).
    An enum value the schema does not know (a newer producer's) reads as its raw value, or raises
    :class:`MessageError` with ``strict_enums``.  Raises :class:`MessageError` for unknown templateIds,
    other schemas and truncated or hostile input.
    """
    if isinstance(buf, (bytes, bytearray)):
        return _decode(schema, buf, offset, strict_enums)
    view = memoryview(buf)
    try:
        flat = view if view.format == "B" and view.ndim == 1 else view.cast("B")
        try:
            return _decode(schema, flat, offset, strict_enums)
        finally:
            flat.release()
    finally:
        view.release()


def _decode(schema: Schema, buf: bytes | bytearray | memoryview, offset: int,
            strict_enums: bool) -> tuple[dict[str, Any], int]:
    header = decode_header(schema, buf, offset)
    if header["schemaId"] != schema.id and schema.header_constant("schemaId") is None:
        raise MessageError(f"message has schemaId={header['schemaId']} but the schema has id={schema.id}")
    try:
        msg = schema.message_by_id(header["templateId"])
    except KeyError:
        raise MessageError(f"unknown templateId={header['templateId']} for schema id={schema.id}") from None
    dec = _Decoder(schema, buf, int(header["version"]), strict_enums)
    start = offset + schema.header.size
    block_length = int(header["blockLength"])
    dec.need(start, block_length, f"message {msg.name} root block")
    dec.check_block(msg.fields, block_length, start, f"message={msg.name}")
    fields: dict[str, Any] = {}
    dec.block(msg.fields, start, block_length, fields)
    end = dec.rest(msg.groups, msg.data, start + block_length, fields, msg.name)
    return {"header": header, "message": msg.name, "fields": fields}, end - offset


def decode_all(schema: Schema, buf: bytes | bytearray | memoryview, *, strict_enums: bool = False) -> list[dict[str, Any]]:
    """Decode back-to-back messages until the buffer ends."""
    out: list[dict[str, Any]] = []
    pos = 0
    while pos < len(buf):
        doc, used = decode(schema, buf, pos, strict_enums=strict_enums)
        out.append(doc)
        pos += used
    return out


class _Encoder:
    def __init__(self, schema: Schema, version: int) -> None:
        self.s = schema
        self.version = version

    def prim(self, buf: bytearray, primitive: str, offset: int, value: Any, what: str) -> None:
        st = _fmt(self.s, primitive)
        if is_float(primitive):
            value = float_from_json(value)
        else:
            if isinstance(value, bool) or not isinstance(value, int):
                raise MessageError(f"{what}: expected an integer, got value={value!r}")
            lo, hi = INT_RANGE[primitive]
            if not lo <= value <= hi:
                raise MessageError(f"{what}: value={value} is out of range for {primitive} [{lo}, {hi}]")
        st.pack_into(buf, offset, value)

    def char(self, value: Any, what: str) -> int:
        if not isinstance(value, str) or len(value) != 1 or ord(value) > 0xFF:
            raise MessageError(f"{what}: expected a 1-character string, got value={value!r}")
        return ord(value)

    def encoded(self, buf: bytearray, t: EncodedType, presence: str, offset: int, value: Any, what: str) -> None:
        if presence == "constant" or t.presence == "constant":
            return
        if t.length == 1:
            if value is None:
                if presence != "optional":
                    raise MessageError(f"{what}: required value is null")
                self.prim(buf, t.primitive, offset, float_to_json(t.null) if is_float(t.primitive) else t.null, what)
                return
            if t.primitive == "char":
                value = self.char(value, what)
            self.prim(buf, t.primitive, offset, value, what)
            return
        if t.primitive == "char":
            if not isinstance(value, str):
                raise MessageError(f"{what}: expected a string, got value={value!r}")
            try:
                raw = value.encode(py_encoding(t.character_encoding), errors="surrogateescape")
            except UnicodeEncodeError:
                raise MessageError(f"{what}: value={value!r} is not representable in "
                                   f"characterEncoding={t.character_encoding or 'US-ASCII'}") from None
            if len(raw) > t.length:
                raise MessageError(f"{what}: value={value!r} is {len(raw)} bytes, longer than length={t.length}")
            buf[offset:offset + len(raw)] = raw
            return
        if not isinstance(value, list) or len(value) != t.length:
            raise MessageError(f"{what}: expected a list of {t.length} values, got value={value!r}")
        for i, v in enumerate(value):
            if v is None and presence == "optional":
                v = float_to_json(t.null) if is_float(t.primitive) else t.null
            self.prim(buf, t.primitive, offset + i * t.primitive_size, v, f"{what}[{i}]")

    def value(self, buf: bytearray, t: TypeDef, presence: str, offset: int, value: Any, what: str) -> None:
        if isinstance(t, EncodedType):
            self.encoded(buf, t, presence, offset, value, what)
        elif isinstance(t, EnumType):
            if presence == "constant" or t.presence == "constant":
                return
            if value is None:
                raw = t.null_value
            elif isinstance(value, str) and any(v.name == value for v in t.values):
                raw = next(v.value for v in t.values if v.name == value)
            elif t.primitive == "char" and isinstance(value, str):
                raw = self.char(value, what)
            elif isinstance(value, int) and not isinstance(value, bool):
                raw = value
            else:
                raise MessageError(f"{what}: value={value!r} is not a validValue of enum {t.name}")
            self.prim(buf, t.primitive, offset, raw, what)
        elif isinstance(t, SetType):
            if not isinstance(value, list):
                raise MessageError(f"{what}: expected a list of choice names, got value={value!r}")
            try:
                raw = set_from_json(value, tuple((c.name, c.bit) for c in t.choices), 8 * t.size, f"set {t.name}")
            except MessageError as exc:
                raise MessageError(f"{what}: {exc}") from None
            self.prim(buf, t.primitive, offset, raw, what)
        else:
            if not isinstance(value, dict):
                raise MessageError(f"{what}: expected an object, got value={value!r}")
            for m in t.members:
                if getattr(m.type, "since_version", 0) > self.version:
                    continue
                presence_m = getattr(m.type, "presence", "required")
                self.value(buf, m.type, presence_m, offset + m.offset, value.get(m.name), f"{what}.{m.name}")

    def block(self, buf: bytearray, fields: list[Field], offset: int, block_length: int, values: dict[str, Any], what: str) -> None:
        for f in fields:
            if f.since_version > self.version or f.presence == "constant":
                continue
            if f.name not in values:
                raise MessageError(f"{what}: missing field name={f.name}")
            if f.offset + f.size > block_length:
                if values[f.name] is None:
                    continue
                raise MessageError(f"{what}: field name={f.name} does not fit blockLength={block_length}")
            self.value(buf, f.type, f.presence, offset + f.offset, values[f.name], f"{what}.{f.name}")

    def block_length_at(self, g: Group) -> int:
        return self.block_length_of(g.fields, g.block_length)

    def block_length_of(self, fields: list[Field], block_length: int) -> int:
        """A block's length as an encoder of the acting version wrote it: fields newer than the
        version did not exist yet (the schema's blockLength when the version is current)."""
        if self.version >= self.s.version or all(f.since_version <= self.version for f in fields):
            return block_length
        return max((f.offset + f.size for f in fields if f.since_version <= self.version), default=0)

    def rest(self, out: bytearray, groups: list[Group], data: list[VarData], values: dict[str, Any], what: str) -> None:
        for g in groups:
            if g.since_version > self.version:
                continue
            entries = values.get(g.name)
            if not isinstance(entries, list):
                raise MessageError(f"{what}: group name={g.name} must be a list of entries")
            dim = g.dimension
            head = bytearray(dim.size)
            bl_m, n_m = dim.member("blockLength"), dim.member("numInGroup")
            assert bl_m is not None and n_m is not None
            assert isinstance(bl_m.type, EncodedType) and isinstance(n_m.type, EncodedType)
            block_length = self.block_length_at(g)
            self.prim(head, bl_m.type.primitive, bl_m.offset, block_length, f"{what}.{g.name}.blockLength")
            self.prim(head, n_m.type.primitive, n_m.offset, len(entries), f"{what}.{g.name}.numInGroup")
            out += head
            for i, entry in enumerate(entries):
                if not isinstance(entry, dict):
                    raise MessageError(f"{what}.{g.name}[{i}]: expected an object")
                block = bytearray(block_length)
                self.block(block, g.fields, 0, block_length, entry, f"{what}.{g.name}[{i}]")
                out += block
                self.rest(out, g.groups, g.data, entry, f"{what}.{g.name}[{i}]")
        for d in data:
            if d.since_version > self.version:
                continue
            payload = var_data_from_json(d, values.get(d.name), what)
            lt = d.length_type
            limit = INT_RANGE[lt.primitive][1]
            if lt.max_value is not None:
                limit = min(limit, int(lt.max_value))
            if len(payload) > limit:
                raise MessageError(f"{what}: var data name={d.name} has length={len(payload)} > max={limit}")
            head = bytearray(lt.primitive_size)
            self.prim(head, lt.primitive, 0, len(payload), f"{what}.{d.name}.length")
            out += head
            out += payload


def encode(schema: Schema, doc: dict[str, Any]) -> bytes:
    """Encode the JSON-ready form (as :func:`decode` returns it) into message bytes.

    The header members are written as given; members left out (or the whole
    ``header``) are filled as a reference encoder writes them (:func:`default_header`,
    with the root block length of the acting version).  The acting version is the
    header's ``version`` and the root block is the header's ``blockLength``
    bytes long.  Raises :class:`MessageError` for input that does not fit.
    """
    try:
        msg: Message = schema.message_by_name(doc["message"])
    except (KeyError, TypeError):
        raise MessageError(f"unknown message name={doc.get('message') if isinstance(doc, dict) else doc!r}") from None
    header = doc.get("header", {})
    fields = doc.get("fields")
    if not isinstance(header, dict) or not isinstance(fields, dict):
        raise MessageError("the document needs an object 'fields' (and 'header', if given, must be an object)")
    version = header.get("version", schema.version)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise MessageError(f"header version={version!r} must be a non-negative integer")
    enc = _Encoder(schema, version)
    # Members the document leaves out are what an encoder of the acting version writes.
    header = {**default_header(schema, msg), "blockLength": enc.block_length_of(msg.fields, msg.block_length), **header}
    block_length = header["blockLength"]
    if not isinstance(block_length, int) or isinstance(block_length, bool) or block_length < 0:
        raise MessageError(f"header blockLength={block_length!r} must be a non-negative integer")
    out = bytearray(schema.header.size)
    enc.value(out, schema.header, "required", 0, header, "header")
    block = bytearray(block_length)
    enc.block(block, msg.fields, 0, block_length, fields, msg.name)
    out += block
    enc.rest(out, msg.groups, msg.data, fields, msg.name)
    return bytes(out)


def to_json(doc: dict[str, Any] | list[dict[str, Any]], indent: int | None = 2) -> str:
    """JSON text of decoded message(s); NaN/Infinity never appear as bare tokens.

    Text is written as UTF-8 characters, except when a char array held bytes that are not valid
    in its encoding (kept as lone surrogates so they round-trip): then everything non-ASCII is
    \\u-escaped, which keeps the output valid UTF-8 and still round-trips through :func:`from_json`.
    """
    text = json.dumps(doc, indent=indent, ensure_ascii=False, allow_nan=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(doc, indent=indent, ensure_ascii=True, allow_nan=False)
    return text


def from_json(text: str | bytes) -> Any:
    """Parse JSON text; malformed or too deeply nested JSON is a :class:`MessageError` (the input's fault)."""
    try:
        return json.loads(text)
    except RecursionError:
        # json's parser recurses once per nesting level and stops cleanly at the interpreter's limit.
        raise MessageError("JSON nested too deeply (arrays/objects nested beyond Python's recursion limit)") from None
    except ValueError as exc:
        raise MessageError(f"not valid JSON: {exc}") from None


def default_header(schema: Schema, msg: Message) -> dict[str, Any]:
    """The header a reference encoder writes for ``msg`` at the schema's version."""
    header: dict[str, Any] = {m.name: 0 for m in schema.header.members}
    header.update(blockLength=msg.block_length, templateId=msg.id, schemaId=schema.id, version=schema.version)
    for m in schema.header.members:
        value = schema.header_constant(m.name)
        if value is not None:
            header[m.name] = value
    return header
