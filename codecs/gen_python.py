"""Generate typed Python flyweights from the IR (``tickline codegen --lang python``).

For each message the module has a ``<Name>Decoder`` and a ``<Name>Encoder``
that wrap a buffer (bytes, bytearray, memoryview, mmap, a claimed Aeron
buffer) at an offset without copying.  Enums become ``IntEnum``, sets
``IntFlag``, composites a flyweight class with properties.  Groups are
iterators (decoder) or ``<group>_count(n)`` + ``next()`` (encoder); var data
are methods, in schema order.  ``decode(buf, offset)`` reads the header and
dispatches on templateId.  ``to_dict()``/``from_dict()`` use the same form as
``tickline sbe-decode``'s ``fields``.

Decoders unpack a block's fixed fields with one ``struct`` call when they are
wrapped (or move to the next group entry).  Numeric fields, char arrays (as
text, through a bounded bytes->str cache) and the views of flat composites are
then plain slot attributes, so reading one is an attribute load; the other
fields (enums, sets, single chars, arrays, versioned composites) are
properties over the unpacked tuple.  The buffer itself is never
copied; var data and group dimensions are read in place.  Encoders write
through to the buffer on every assignment.

One call per block: every decoder class (message or group entry) has
``unpack()``, the tuple of all its fixed fields (composite fields walked down
to their members, constants left out) in the order of the class's
``UNPACK_NAMES``; every encoder class has ``pack(*values)``, which writes them
all from positional values (the whole block: the same bytes as assigning each
field, nothing written when a value is refused).  The compiled codecs of
:mod:`tickline.codecs.gen_cython` have the same two methods.

Schema evolution: decoders take the acting block length and version from the
header; fields newer than the acting version read as ``None``, newer groups
as empty, newer var data as empty; unknown trailing block bytes are skipped.

Access order of groups and var data is checked (``AccessOrderError``);
set ``check_order = False`` on a class, or call ``set_check_order(False)``,
to turn it off.
"""

from __future__ import annotations

import math
import struct
from typing import Any

from tickline.codecs import naming
from tickline.codecs.errors import SchemaError
from tickline.codecs.ir import (
    INT_RANGE,
    PRIMITIVES,
    CompositeType,
    EncodedType,
    EnumType,
    Field,
    Group,
    Member,
    Message,
    Schema,
    SetType,
    TypeDef,
    VarData,
    block_needs,
    is_float,
    tail_mins,
)
from tickline.codecs.schema import py_encoding

_SHORT = {"char": "CHAR", "int8": "I8", "int16": "I16", "int32": "I32", "int64": "I64", "uint8": "U8",
          "uint16": "U16", "uint32": "U32", "uint64": "U64", "float": "F32", "double": "F64"}


class _Slot:
    """A fixed-position value: a field of a block or a member of a composite."""

    def __init__(self, json_name: str, py: str, t: TypeDef, presence: str, offset: int, since: int,
                 constant: Any, line: int, doc: str) -> None:
        self.json = json_name
        self.py = py
        self.t = t
        self.presence = presence
        self.offset = offset
        self.since = since
        self.constant = constant
        self.line = line
        self.doc = doc


def _field_slot(f: Field) -> _Slot:
    doc = f"id={f.id} offset={f.offset} type={getattr(f.type, 'name', '?')}"
    if f.since_version:
        doc += f" sinceVersion={f.since_version}"
    return _Slot(f.name, _py(f), f.type, f.presence, f.offset, f.since_version, f.constant, f.line, doc)


def _py(el: Field | Group | VarData | Member) -> str:
    """An element's name in generated code: as the parser assigned it (naming.assign), else derived."""
    return el.py or naming.python_name(el.name)[0]


def _member_slots(c: CompositeType) -> list[_Slot]:
    out = []
    for m in c.members:
        presence = getattr(m.type, "presence", "required")
        const = m.type.constant if isinstance(m.type, EncodedType) else None
        if presence == "constant" and isinstance(m.type, EnumType):
            presence = "required"  # a constant enum member without valueRef carries no value; treat as stored
        since = getattr(m.type, "since_version", 0)
        out.append(_Slot(m.name, _py(m), m.type, presence, m.offset, since, const, getattr(m.type, "line", 0),
                         f"offset={m.offset}"))
    return out


class _Gen:
    def __init__(self, schema: Schema, source: str) -> None:
        self.s = schema
        self.source = source
        self.lines: list[str] = []
        self.structs: dict[str, str] = {}  # name -> format
        self.classes: dict[int, str] = {}  # id(typedef) -> class name
        self.class_owner: dict[str, TypeDef] = {}
        # Set while generating a decoder block or composite view: field -> (tuple expression, index expression).
        self._cache: dict[str, tuple[str, str]] | None = None
        self._views: dict[int, str] = {}  # id(composite) -> view class name, for flat composites
        self.str_caches: set[str] = set()
        self.bytes_caches: set[str] = set()
        self.zero_consts: set[int] = set()
        self._is_message_ctx = True
        self.emitted_views: set[str] = set()
        self._slot_views: dict[str, str] = {}
        self._plain: list[_Slot] = []
        self._attr_views: set[str] = set()
        self.view_plain: dict[str, list[tuple[_Slot, int]]] = {}
        self._block_struct = ""
        self._block_span = 0

    # -- helpers -------------------------------------------------------------------------------

    def w(self, text: str = "", indent: int = 0) -> None:
        self.lines.append(("    " * indent + text) if text else "")

    def st(self, primitive: str, count: int = 1) -> str:
        name = f"_{_SHORT[primitive]}" if count == 1 else f"_{_SHORT[primitive]}X{count}"
        code = PRIMITIVES[primitive][0]
        self.structs[name] = f"{self.s.endian}{count if count > 1 else ''}{code}"
        return name

    def cls(self, t: TypeDef) -> str:
        return self.classes[id(t)]

    def register(self, t: TypeDef) -> None:
        if isinstance(t, EncodedType) or id(t) in self.classes:
            return
        name = naming.pascal(t.name)
        other = self.class_owner.get(name)
        if other is not None and other is not t:
            raise SchemaError(f"two different types named {t.name} would both become class {name}",
                              file=self.s.file, line=t.line, element=type(t).__name__)
        self.classes[id(t)] = name
        self.class_owner[name] = t
        if isinstance(t, CompositeType):
            for m in t.members:
                self.register(m.type)

    def py_type(self, slot: _Slot) -> str:
        t = slot.t
        if slot.presence == "constant":
            if isinstance(t, EnumType):
                return self.cls(t)
            assert isinstance(t, EncodedType)
            return "str" if t.primitive == "char" else ("float" if is_float(t.primitive) else "int")
        if isinstance(t, EnumType):
            return f"{self.cls(t)} | None"
        if isinstance(t, SetType):
            return self.cls(t)
        if isinstance(t, CompositeType):
            if self._cache is not None and slot.py in self._slot_views:
                return self._slot_views[slot.py]
            return self.cls(t)
        base = "str" if t.primitive == "char" else ("float" if is_float(t.primitive) else "int")
        if t.length > 1 and t.primitive != "char":
            return f"tuple[{base}{' | None' if slot.presence == 'optional' else ''}, ...]"
        if t.length > 1:
            return base  # char arrays: "" when empty, never None (the JSON form's rule)
        return base + (" | None" if slot.presence == "optional" else "")

    def null_literal(self, value: int | float) -> str:
        if isinstance(value, float) and math.isnan(value):
            return "math.nan"
        return repr(value)

    # -- module --------------------------------------------------------------------------------

    def module(self) -> str:
        s = self.s
        for t in s.types.values():
            self.register(t)
        self.register(s.header)
        body_start = len(self.lines)
        for name, t in list(self.class_owner.items()):
            if isinstance(t, EnumType):
                self.enum(name, t)
            elif isinstance(t, SetType):
                self.set(name, t)
        for name, t in list(self.class_owner.items()):
            if isinstance(t, CompositeType):
                self.composite(name, t)
                if self.is_flat(t):
                    self._views[id(t)] = name
        for m in s.messages:
            self.message(m)
        self.dispatch()
        body = self.lines[body_start:]
        self.lines = self.lines[:body_start]
        self.w('"""SBE codecs generated by tickline codegen -- do not edit.')
        self.w()
        self.w(f"schema: {self.source}")
        self.w(f"package={s.package} id={s.id} version={s.version} semanticVersion={s.semantic_version} byteOrder={s.byte_order}")
        self.w('"""')
        self.w()
        self.w("from __future__ import annotations")
        self.w()
        uses_math = any("math." in line for line in body)
        if uses_math:
            self.w("import math")
        self.w("import struct")
        self.w("from enum import IntEnum, IntFlag")
        self.w("from typing import Any, Callable, Iterator, Union")
        self.w()
        self.w("from tickline.codecs import runtime as _rt")
        self.w("from tickline.codecs.runtime import AccessOrderError, Buffer, MessageError")
        self.w()
        self.w('__all__ = ["AccessOrderError", "MessageError", "decode", "set_check_order", "set_strict_enums"]')
        self.w()
        self.w(f"SCHEMA_ID = {s.id}")
        self.w(f"SCHEMA_VERSION = {s.version}")
        self.w(f"SCHEMA_PACKAGE = {s.package!r}")
        self.w(f"HEADER_LENGTH = {s.header.size}")
        self.w("_STRICT_ENUMS = False  # set_strict_enums()")
        self.w()
        for name, fmt in sorted(self.structs.items()):
            self.w(f"{name} = struct.Struct({fmt!r})")
            typ = "float" if fmt[-1] in "fd" else ("bytes" if fmt[-1] == "s" else "int")
            if fmt[-1] == "s":
                self.w(f"{name}_put: Callable[[Buffer, int, bytes], None] = {name}.pack_into")
                continue
            if name.startswith("_BLOCK_"):
                continue
            if name[-1].isdigit() and "X" in name:
                self.w(f"{name}_get: Callable[[Buffer, int], tuple[{typ}, ...]] = {name}.unpack_from")
                self.w(f"{name}_put: Callable[..., None] = {name}.pack_into")
            else:
                self.w(f"{name}_get: Callable[[Buffer, int], tuple[{typ}]] = {name}.unpack_from")
                self.w(f"{name}_put: Callable[[Buffer, int, {typ}], None] = {name}.pack_into")
        self.w()
        for n in sorted(self.zero_consts):
            self.w(f"_ZERO_{n} = bytes({n})")
        for name in sorted(self.bytes_caches):
            self.w(f"{name}: dict[str, bytes] = {{}}  # bounded by _rt.encode_str")
        for name in sorted(self.str_caches):
            self.w(f"{name}: dict[bytes, str] = {{}}  # bounded by _rt.decode_str")
            self.w(f"{name}_get = {name}.get")
        self.w()
        self.lines.extend(body)
        return "\n".join(self.lines).rstrip() + "\n"

    # -- enums and sets ------------------------------------------------------------------------

    def enum(self, name: str, t: EnumType) -> None:
        self.w()
        self.w(f"class {name}(IntEnum):")
        self.w(f'"""enum {t.name}: encoding {t.primitive}, null value {t.null_value}."""', 1)
        self.w()
        for v in t.values:
            comment = f"  # {chr(v.value)!r}" if t.primitive == "char" else ""
            since = f" sinceVersion={v.since_version}" if v.since_version else ""
            if since:
                comment = (comment or "  #") + since
            self.w(f"{naming.constant_name(v.name)} = {v.value}{comment}", 1)
        self.w(f"{_unknown_name(t)} = {UNKNOWN_VALUE}  # a value read that is none of the above (see the field's _raw)", 1)
        self.w()
        self.w()
        self.w(f"_{name}_NAMES: dict[int, str] = {{{', '.join(f'{v.value}: {v.name!r}' for v in t.values)}}}")
        self.w(f"_{name}_MEMBERS: dict[int, {name}] = {{m.value: m for m in {name}}}  # faster than calling the enum")
        self.w(f"_{name}_VALUES: dict[str, int] = {{{', '.join(f'{v.name!r}: {v.value}' for v in t.values)}}}")
        self.w()

    def set(self, name: str, t: SetType) -> None:
        self.w()
        self.w(f"class {name}(IntFlag):")
        self.w(f'"""set {t.name}: encoding {t.primitive}; each choice is one bit."""', 1)
        self.w()
        if not t.choices:
            self.w("pass", 1)
        for c in t.choices:
            self.w(f"{naming.constant_name(c.name)} = 1 << {c.bit}", 1)
        self.w()
        self.w()
        self.w(f"_{name}_CHOICES: tuple[tuple[str, int], ...] = ({''.join(f'({c.name!r}, {c.bit}), ' for c in t.choices)})")
        self.w()

    # -- slot accessors ------------------------------------------------------------------------

    def getter_expr_lines(self, slot: _Slot, versioned: bool, raw: bool = False) -> list[str]:
        """Body lines of a getter (1-level indent relative to the def)."""
        t = slot.t
        off = f"self._offset + {slot.offset}" if slot.offset else "self._offset"
        lines: list[str] = []
        if versioned and slot.since:
            lines.append(f"if self._acting_version < {slot.since}:")
            lines.append("    return None")
        cache = self._cache
        if cache is not None and slot.py in cache and not (slot.presence == "constant" and not raw):
            tup, idx = cache[slot.py]
            return lines + self.cached_getter_lines(slot, tup, idx, raw)
        if slot.presence == "constant" and not raw:
            if isinstance(t, EnumType):
                lines.append(f"return {self.cls(t)}.{naming.constant_name(str(slot.constant))}")
            else:
                lines.append(f"return {slot.constant!r}")
            return lines
        if isinstance(t, EnumType):
            g = self.st(t.primitive)
            if raw:
                lines.append(f"return {g}_get(self._buf, {off})[0]")
                return lines
            lines.append(f"v = {g}_get(self._buf, {off})[0]")
            return lines + self.enum_tail(slot, t)
        if isinstance(t, SetType):
            lines.append(f"return {self.cls(t)}({self.st(t.primitive)}_get(self._buf, {off})[0])")
            return lines
        if isinstance(t, CompositeType):
            lines.append(f"c = self._c_{slot.py}")
            lines.append("c._buf = self._buf")
            lines.append(f"c._offset = {off}")
            if _versioned(t):
                lines.append("c._acting_version = self._acting_version")
            lines.append("return c")
            return lines
        if t.primitive == "char" and t.length > 1:
            lines.append(f"return _rt.get_str(self._buf, {off}, {t.length}, {py_encoding(t.character_encoding)!r})")
            return lines
        if t.length > 1:
            get = f"{self.st(t.primitive, t.length)}_get(self._buf, {off})"
            if slot.presence == "optional":  # each element holding the null value reads None
                get = f"_rt.array_nulls({get}, {self.null_literal(t.null)})"
            lines.append(f"return {get}")
            return lines
        g = self.st(t.primitive)
        if slot.presence == "optional":
            lines.append(f"v = {g}_get(self._buf, {off})[0]")
            null = t.null
            if isinstance(null, float) and math.isnan(null):
                lines.append("return None if v != v else v")
            elif t.primitive == "char":
                lines.append(f"return None if v == {null!r} else chr(v)")
            else:
                lines.append(f"return None if v == {self.null_literal(null)} else v")
            return lines
        if t.primitive == "char":
            lines.append(f"return chr({g}_get(self._buf, {off})[0])")
        else:
            lines.append(f"return {g}_get(self._buf, {off})[0]")
        return lines

    def enum_tail(self, slot: _Slot, t: EnumType) -> list[str]:
        c = self.cls(t)
        return [f"m = _{c}_MEMBERS.get(v)", "if m is None:", f"    if v == {t.null_value}:", "        return None",
                "    if _STRICT_ENUMS:",
                f'        raise MessageError(f"unknown {t.name} value={{v}} in field {slot.json} (strict enums; read {slot.py}_raw)")',
                f"    return {c}.{_unknown_name(t)}", "return m"]

    def cached_getter_lines(self, slot: _Slot, tup: str, i: str, raw: bool) -> list[str]:
        """Getter reading the block's values, unpacked once by wrap()/next() (decoders only)."""
        t = slot.t
        if isinstance(t, CompositeType):
            return [f"return self._c_{slot.py}"]
        if isinstance(t, EnumType):
            if raw:
                return [f"r: int = {tup}[{i}]", "return r"]
            return [f"v: int = {tup}[{i}]"] + self.enum_tail(slot, t)
        if isinstance(t, SetType):
            return [f"return {self.cls(t)}({tup}[{i}])"]
        assert isinstance(t, EncodedType)
        if t.primitive == "char" and t.length > 1:
            enc = py_encoding(t.character_encoding)
            cache = self.str_cache(enc)
            return [f"b: bytes = {tup}[{i}]", f"s = {cache}_get(b)", "if s is None:",
                    f"    s = _rt.decode_str(b, {enc!r}, {cache})", "return s"]
        typ = "float" if is_float(t.primitive) else "int"
        if t.length > 1:
            if slot.presence == "optional":
                return [f"a: tuple[{typ} | None, ...] = _rt.array_nulls({tup}[{i}:{i} + {t.length}], {self.null_literal(t.null)})",
                        "return a"]
            return [f"a: tuple[{typ}, ...] = {tup}[{i}:{i} + {t.length}]", "return a"]
        lines = [f"v: {typ} = {tup}[{i}]"]
        if slot.presence == "optional":
            null = t.null
            if isinstance(null, float) and math.isnan(null):
                lines.append("return None if v != v else v")
            elif t.primitive == "char":
                lines.append(f"return None if v == {null!r} else chr(v)")
            else:
                lines.append(f"return None if v == {self.null_literal(null)} else v")
            return lines
        lines.append("return chr(v)" if t.primitive == "char" else "return v")
        return lines

    def str_cache(self, enc: str) -> str:
        """Module-level bytes -> str cache for decoded char arrays (symbols repeat; decoding them does not need to)."""
        name = "_STRS_" + "".join(c if c.isalnum() else "_" for c in enc.upper())
        self.str_caches.add(name)
        return name

    def block_struct(self, slots: list[_Slot], total: int) -> tuple[str, dict[str, tuple[str, str]], int, dict[str, int]]:
        """struct format covering a block's plain fields and its flat composites' members, the tuple
        index of each plain field, the bytes it spans, and the base index of each flat composite."""
        fmt = self.s.endian
        index: dict[str, tuple[str, str]] = {}
        comp_base: dict[str, int] = {}
        pos = 0
        idx = 0
        for sl in slots:
            if sl.presence == "constant":
                continue
            if isinstance(sl.t, CompositeType):
                if id(sl.t) not in self._views:
                    continue
                comp_base[sl.py] = idx
                index[sl.py] = ("", "")
                members = [(ms, sl.offset + ms.offset) for ms in _member_slots(sl.t) if ms.presence != "constant"]
            else:
                index[sl.py] = ("self._v", str(idx))
                members = [(sl, sl.offset)]
            for ms, offset in members:
                t = ms.t
                assert not isinstance(t, CompositeType)
                if offset > pos:
                    fmt += f"{offset - pos}x"
                code = PRIMITIVES[t.primitive][0]
                if isinstance(t, EncodedType) and t.length > 1:
                    fmt += f"{t.length}s" if t.primitive == "char" else f"{t.length}{code}"
                    idx += 1 if t.primitive == "char" else t.length
                else:
                    fmt += code
                    idx += 1
                pos = offset + t.size
        if pos < total:
            fmt += f"{total - pos}x"
            pos = total
        return fmt, index, pos, comp_base

    def view_index(self, t: CompositeType, base: int) -> dict[str, tuple[str, str]]:
        index: dict[str, tuple[str, str]] = {}
        k = base
        for ms in _member_slots(t):
            if ms.presence == "constant":
                continue
            index[ms.py] = ("self._p._v", str(k))
            mt = ms.t
            k += mt.length if isinstance(mt, EncodedType) and mt.length > 1 and mt.primitive != "char" else 1
        return index

    @staticmethod
    def is_flat(t: CompositeType) -> bool:
        for m in t.members:
            if isinstance(m.type, CompositeType) or m.type.since_version > 0:
                return False
            if isinstance(m.type, EnumType) and m.type.presence == "constant":
                return False
        return True

    def composite_view(self, t: CompositeType, base: int) -> str:
        """A read-only view of a flat composite whose members sit at tuple index ``base`` onwards of a
        decoder's unpacked block (one class per composite and position, so every read is a constant index)."""
        view = f"{self.cls(t)}ViewAt{base}"
        if view in self.emitted_views:
            return view
        self.emitted_views.add(view)
        saved = self._cache
        slots = _member_slots(t)
        index = self.view_index(t, base)
        plain = [sl for sl in slots if sl.py in index and _is_plain(sl)]
        self.view_plain[view] = [(sl, int(index[sl.py][1])) for sl in plain]
        self.w()
        self.w(f"class {view}:")
        self.w(f'"""Composite {t.name} read from a decoder\'s unpacked block, its members from index {base}."""', 1)
        self.w()
        self.w("ENCODED_LENGTH = " + str(t.size), 1)
        self.w(f"__slots__ = ({''.join(repr(x) + ', ' for x in ['_p'] + [sl.py for sl in plain])})", 1)
        self.w()
        self.w("def __init__(self, parent: Any) -> None:", 1)
        self.w("self._p = parent", 2)
        for sl in plain:
            typ = self.py_type(sl)
            self.w(f"self.{sl.py}: {typ} = {_default(typ)}  # filled by the decoder's wrap()/next()", 2)
        self.w()
        self._cache = index
        for sl in slots:
            if sl in plain:
                continue
            self.slot_accessors(sl, versioned=False, writable=False)
        self.dict_methods(slots, [], [], versioned=False, encoder=False)
        self.w("def __repr__(self) -> str:", 1)
        self.w(f'return f"{view}({{self._dict()!r}})"', 2)
        self.w()
        self.w()
        self._cache = saved
        return view

    def setter_lines(self, slot: _Slot, raw: bool = False) -> list[str]:
        t = slot.t
        off = f"self._offset + {slot.offset}" if slot.offset else "self._offset"
        if isinstance(t, EnumType):
            p = self.st(t.primitive)
            if raw:
                return [f"{p}_put(self._buf, {off}, value)"]
            return [f"{p}_put(self._buf, {off}, {t.null_value} if value is None else int(value))"]
        if isinstance(t, SetType):
            return [f"{self.st(t.primitive)}_put(self._buf, {off}, int(value))"]
        assert isinstance(t, EncodedType)
        if t.primitive == "char" and t.length > 1:
            self.structs[f"_S{t.length}"] = f"{self.s.endian}{t.length}s"
            return self.text_bytes_lines(t, slot.json, "value", "raw") + [f"_S{t.length}_put(self._buf, {off}, raw)"]
        if t.length > 1:
            if slot.presence == "optional":
                return [f"{self.st(t.primitive, t.length)}_put(self._buf, {off}, *_rt.array_put(value, {self.null_literal(t.null)}))"]
            return [f"{self.st(t.primitive, t.length)}_put(self._buf, {off}, *value)"]
        p = self.st(t.primitive)
        val = "ord(value)" if t.primitive == "char" else "value"
        if slot.presence == "optional":
            null = t.null
            null_lit = self.null_literal(null) if t.primitive != "char" else repr(null)
            return [f"{p}_put(self._buf, {off}, {null_lit} if value is None else {val})"]
        return [f"{p}_put(self._buf, {off}, {val})"]

    def text_bytes_lines(self, t: EncodedType, json_name: str, value: str, raw: str) -> list[str]:
        """Statements turning the text ``value`` into ``raw``, the bytes of char array ``t`` (through the module's
        str -> bytes cache), refusing a text longer than the array."""
        enc = py_encoding(t.character_encoding)
        cache = "_BYTES_" + "".join(c if c.isalnum() else "_" for c in enc.upper())
        self.bytes_caches.add(cache)
        return [f"{raw} = {cache}.get({value})", f"if {raw} is None:", f"    {raw} = _rt.encode_str({value}, {enc!r}, {cache})",
                f"if len({raw}) > {t.length}:",
                f'    raise MessageError(f"{json_name}: value={{{value}!r}} is {{len({raw})}} bytes, longer than length={t.length}")']

    #: Whether generated signatures carry type annotations (the Cython generator, whose .pyx does not, clears it).
    ANNOTATE = True

    def _ann(self, text: str) -> str:
        return text if self.ANNOTATE else ""

    def slot_accessors(self, slot: _Slot, versioned: bool, writable: bool) -> None:
        rtype = self.py_type(slot)
        if versioned and slot.since and "None" not in rtype:
            rtype += " | None"
        self.w("@property", 1)
        self.w(f"def {slot.py}(self){self._ann(' -> ' + rtype)}:", 1)
        self.w(f'"""{slot.json}: {slot.doc}."""', 2)
        for line in self.getter_expr_lines(slot, versioned):
            self.w(line, 2)
        self.w()
        settable = slot.presence != "constant" and not isinstance(slot.t, CompositeType)
        if writable and settable:
            vtype = self.py_type(slot)
            self.w(f"@{slot.py}.setter", 1)
            self.w(f"def {slot.py}(self, value{self._ann(': ' + vtype)}){self._ann(' -> None')}:", 1)
            for line in self.setter_lines(slot):
                self.w(line, 2)
            self.w()
        if isinstance(slot.t, EnumType) and slot.presence != "constant":
            self.w("@property", 1)
            self.w(f"def {slot.py}_raw(self){self._ann(' -> int' + (' | None' if versioned and slot.since else ''))}:", 1)
            self.w(f'"""{slot.json} as the raw wire value (no check against the validValues)."""', 2)
            for line in self.getter_expr_lines(slot, versioned, raw=True):
                self.w(line, 2)
            self.w()
            if writable:
                self.w(f"@{slot.py}_raw.setter", 1)
                self.w(f"def {slot.py}_raw(self, value{self._ann(': int')}){self._ann(' -> None')}:", 1)
                for line in self.setter_lines(slot, raw=True):
                    self.w(line, 2)
                self.w()

    def json_expr(self, slot: _Slot) -> str:
        t = slot.t
        if slot.presence == "constant":
            return repr(slot.constant)
        if isinstance(t, EnumType):
            c = self.cls(t)
            return f"_rt.enum_json(self.{slot.py}_raw, {t.null_value}, _{c}_NAMES, {t.primitive == 'char'})"
        if isinstance(t, SetType):
            return f"_rt.set_json(self.{slot.py}, _{self.cls(t)}_CHOICES)"
        if isinstance(t, CompositeType):
            if slot.since:
                return f"None if self._acting_version < {slot.since} else self.{slot.py}._dict()"
            return f"self.{slot.py}._dict()"
        if is_float(t.primitive):
            if t.length > 1:
                return f"None if (v := self.{slot.py}) is None else [_rt.fj(x) for x in v]"
            return f"_rt.fj(self.{slot.py})"
        if t.length > 1 and t.primitive != "char":
            return f"None if (v := self.{slot.py}) is None else list(v)"
        return f"self.{slot.py}"

    def apply_lines(self, slot: _Slot) -> list[str]:
        t = slot.t
        key = f"d[{slot.json!r}]"
        if slot.presence == "constant":
            return []
        if isinstance(t, EnumType):
            c = self.cls(t)
            return [f"self.{slot.py}_raw = _rt.enum_from_json({key}, {t.null_value}, _{c}_VALUES, {t.primitive == 'char'})"]
        if isinstance(t, SetType):
            return [f"self.{slot.py} = {self.cls(t)}(_rt.set_from_json({key}, _{self.cls(t)}_CHOICES, {8 * t.size}))"]
        if isinstance(t, CompositeType):
            return [f"self.{slot.py}._apply({key})"]
        if is_float(t.primitive):
            if t.length > 1:
                if slot.presence == "optional":
                    return [f"self.{slot.py} = tuple(None if x is None else _rt.ff(x) for x in {key})"]
                return [f"self.{slot.py} = tuple(_rt.ff(x) for x in {key})"]
            if slot.presence == "optional":
                return [f"self.{slot.py} = None if {key} is None else _rt.ff({key})"]
            return [f"self.{slot.py} = _rt.ff({key})"]
        if t.length > 1 and t.primitive != "char":
            return [f"self.{slot.py} = tuple({key})"]
        return [f"self.{slot.py} = {key}"]

    # -- composites ----------------------------------------------------------------------------

    def composite(self, name: str, t: CompositeType) -> None:
        slots = _member_slots(t)
        comps = [sl for sl in slots if isinstance(sl.t, CompositeType)]
        self.w()
        self.w(f"class {name}:")
        self.w(f'"""composite {t.name}: {t.size} bytes; a flyweight, wrap() it over a buffer."""', 1)
        self.w()
        self.w(f"ENCODED_LENGTH = {t.size}", 1)
        self.w(f"__slots__ = ({''.join(repr(x) + ', ' for x in ['_buf', '_offset', '_acting_version'] + ['_c_' + c.py for c in comps])})", 1)
        self.w()
        self.w("def __init__(self) -> None:", 1)
        self.w("self._buf: Buffer = _rt.EMPTY", 2)
        self.w("self._offset = 0", 2)
        self.w("self._acting_version = SCHEMA_VERSION", 2)
        for c in comps:
            self.w(f"self._c_{c.py} = {self.cls(c.t)}()", 2)
        self.w()
        self.w(f"def wrap(self, buf: Buffer, offset: int, acting_version: int = SCHEMA_VERSION) -> {name}:", 1)
        self.w("self._buf = buf", 2)
        self.w("self._offset = offset", 2)
        self.w("self._acting_version = acting_version", 2)
        self.w("return self", 2)
        self.w()
        for sl in slots:
            self.slot_accessors(sl, versioned=True, writable=True)
        self.dict_methods(slots, [], [], versioned=True)
        self.w("def __repr__(self) -> str:", 1)
        self.w(f'return f"{name}({{self._dict()!r}})"', 2)
        self.w()

    def dict_methods(self, slots: list[_Slot], groups: list[Group], data: list[VarData], versioned: bool, decoder: bool = True,
                     encoder: bool = True, prefix: str = "") -> None:
        if decoder:
            self.w("def _dict(self) -> dict[str, Any]:", 1)
            self.w("out: dict[str, Any] = {}", 2)
            if any("v :=" in self.json_expr(sl) for sl in slots):
                self.w("v: Any", 2)
            for sl in slots:
                self.w(f"out[{sl.json!r}] = {self.json_expr(sl)}", 2)
            for g in groups:
                self.w(f"out[{g.name!r}] = [e._dict() for e in self.{_py(g)}()]", 2)
            for d in data:
                # The JSON form (otf.var_data_to_json): text when the data has a characterEncoding, else hex.
                if d.data_type.character_encoding:
                    enc = py_encoding(d.data_type.character_encoding)
                    self.w(f"out[{d.name!r}] = self._{_py(d)}_bytes().decode({enc!r}, 'surrogateescape')", 2)
                else:
                    self.w(f"out[{d.name!r}] = self._{_py(d)}_bytes().hex()", 2)
            self.w("return out", 2)
            self.w()
        if encoder:
            self.w("def _apply(self, d: dict[str, Any]) -> None:", 1)
            n = 0
            for sl in slots:
                for line in self.apply_lines(sl):
                    self.w(line, 2)
                    n += 1
            for g in groups:
                py = _py(g)
                self.w(f"g_{py} = self.{py}_count(len(d[{g.name!r}]))", 2)
                self.w(f"for e_{py} in d[{g.name!r}]:", 2)
                self.w(f"g_{py}.next()._apply(e_{py})", 3)
                n += 1
            for dd in data:
                py = _py(dd)
                if dd.data_type.character_encoding:
                    enc = py_encoding(dd.data_type.character_encoding)
                    self.w(f"self.put_{py}(d[{dd.name!r}].encode({enc!r}, 'surrogateescape'))", 2)
                else:
                    self.w(f"self.put_{py}(bytes.fromhex(d[{dd.name!r}]))", 2)
                n += 1
            if n == 0:
                self.w("return None", 2)
            self.w()

    # -- messages and groups -------------------------------------------------------------------

    def check_names(self, cls: str, names: list[tuple[str, int]]) -> None:
        seen: set[str] = set()
        for n, line in names:
            if n in seen or n in naming.RESERVED_MEMBERS:
                raise SchemaError(f"generated member {n} of class {cls} collides with another member",
                                  file=self.s.file, line=line, element="field")
            seen.add(n)

    def message(self, m: Message) -> None:
        name = naming.pascal(m.name)
        self.block_classes(name, m.name, m.fields, m.groups, m.data, m, None)

    def block_classes(self, cls: str, label: str, fields: list[Field], groups: list[Group], data: list[VarData],
                      msg: Message | None, group: Group | None) -> None:
        # Nested group classes first, so annotations can name them without quotes at definition time.
        for g in groups:
            self.block_classes(cls + naming.pascal(g.name), f"{label}.{g.name}", g.fields, g.groups, g.data, None, g)
        slots = [_field_slot(f) for f in fields]
        names = [(sl.py, sl.line) for sl in slots] + [(sl.py + "_raw", sl.line) for sl in slots if isinstance(sl.t, EnumType)]
        for g in groups:
            py = _py(g)
            names += [(py, g.line), (py + "_count", g.line)]
        for d in data:
            py = _py(d)
            names += [(py, d.line), ("put_" + py, d.line)]
        self.check_names(cls, names)
        for role in ("Decoder", "Encoder"):
            self.block_class(cls, role, label, slots, groups, data, msg, group)

    def block_class(self, base: str, role: str, label: str, slots: list[_Slot], groups: list[Group], data: list[VarData],
                    msg: Message | None, group: Group | None) -> None:
        name = base + role
        dec = role == "Decoder"
        self._block_len = msg.block_length if msg is not None else (group.block_length if group is not None else 0)
        # group classes reach the message (which owns the read/write position) through ``self._msg``
        self._is_message_ctx = msg is not None
        comps = [sl for sl in slots if isinstance(sl.t, CompositeType)]
        self._cache = None
        comp_base: dict[str, int] = {}
        self._plain = []
        if dec:
            total = msg.block_length if msg is not None else (group.block_length if group is not None else 0)
            fmt, index, span, comp_base = self.block_struct(slots, total)
            self._block_struct = f"_BLOCK_{base}"
            self._block_span = span
            self.structs[self._block_struct] = fmt
            # Plain numeric fields become slot attributes filled at wrap()/next(): a read is then an
            # attribute load, not a property call (the largest cost of a decode in CPython).
            self._plain = [sl for sl in slots if sl.py in index and _is_plain(sl)]
            comp_types = {sl.py: sl.t for sl in slots if isinstance(sl.t, CompositeType)}
            self._slot_views = {py: self.composite_view(comp_types[py], b) for py, b in comp_base.items()}
            self._cache = index
        elems = [("group", g) for g in groups] + [("data", d) for d in data]
        # A decoder's flat composites that exist in every version are plain attributes holding their view.
        attr_views = {c.py for c in comps if c.py in self._slot_views and not c.since} if dec else set()
        self._attr_views = attr_views
        slots_attr = ["_buf", "_offset", "_acting_version", "_step", "_open", "_v"]
        slots_attr += [c.py if c.py in attr_views else "_c_" + c.py for c in comps]
        slots_attr += [sl.py for sl in self._plain]
        if msg is not None:
            slots_attr += ["_limit", "_acting_block_length"] + (["_empty_left"] if dec and _has_empty(groups) else [])
        else:
            slots_attr += ["_msg", "_block_length", "_count", "_index"]
        self.w()
        self.w(f"class {name}:")
        if msg is not None:
            self.w(f'"""{role} flyweight for message {msg.name} (templateId={msg.id}, blockLength={msg.block_length}).', 1)
            self.w()
            self.w("Wraps a buffer without copying it; reuse one instance per stream.  Not thread-safe.", 1)
            if role == "Decoder":
                self.w("wrap() unpacks the root block's fields once (one struct call) and fills numeric fields,", 1)
                self.w("char arrays and flat composites as attributes, so later writes to the buffer are seen only", 1)
                self.w("after the next wrap(); groups and var data are read in place.", 1)
            self.w('"""', 1)
        else:
            assert group is not None
            self.w(f'"""{role} for repeating group {label} (id={group.id}, blockLength={group.block_length})."""', 1)
        self.w()
        self.w("check_order = True", 1)
        if msg is not None:
            self.w(f"BLOCK_LENGTH = {msg.block_length}", 1)
            self.w(f"TEMPLATE_ID = {msg.id}", 1)
            self.w(f"NAME = {msg.name!r}", 1)
        else:
            assert group is not None
            self.w(f"BLOCK_LENGTH = {group.block_length}", 1)
        self.w(f"__slots__ = ({''.join(repr(x) + ', ' for x in slots_attr)})", 1)
        self.w()
        self.w("def __init__(self) -> None:", 1)
        self.w("self._buf: Buffer = _rt.EMPTY", 2)
        self.w("self._offset = 0", 2)
        self.w("self._acting_version = SCHEMA_VERSION", 2)
        self.w("self._step = 0", 2)
        self.w("self._open: Any = None", 2)
        self.w("self._v: tuple[Any, ...] = ()", 2)
        for sl in self._plain:
            typ = self.py_type(sl)
            if sl.since and "None" not in typ:
                typ += " | None"
            self.w(f"self.{sl.py}: {typ} = {_default(typ)}", 2)
        for c in comps:
            if c.py in comp_base:
                if c.py in attr_views:
                    self.w(f"self.{c.py} = {self._slot_views[c.py]}(self)", 2)
                else:
                    self.w(f"self._c_{c.py} = {self._slot_views[c.py]}(self)", 2)
            else:
                self.w(f"self._c_{c.py} = {self.cls(c.t)}()", 2)
        if msg is not None:
            self.w("self._limit = 0", 2)
            self.w("self._acting_block_length = self.BLOCK_LENGTH", 2)
            if dec and _has_empty(groups):
                self.w("self._empty_left = _rt.MAX_EMPTY_ENTRIES  # zero-byte group entries this message may still hold", 2)
        else:
            self.w("self._msg: Any = None", 2)
            self.w("self._block_length = self.BLOCK_LENGTH", 2)
            self.w("self._count = 0", 2)
            self.w("self._index = 0", 2)
        self.w()
        if msg is not None:
            self.message_methods(name, dec, msg)
        else:
            assert group is not None
            self.group_methods(name, dec, group, elems)
        for sl in slots:
            if sl in self._plain or sl.py in attr_views:
                continue
            self.slot_accessors(sl, versioned=dec, writable=not dec)
        self.block_tail(base, label, dec, elems, slots, groups, data, msg is None)
        self._cache = None

    #: How a block class's _finished() is declared and reads its open group's (the Cython generator's differ).
    FINISHED_DEF = "def _finished(self) -> bool:"
    FINISHED_OPEN = "bool(self._open._finished())"

    def block_tail(self, base: str, label: str, dec: bool, elems: list[tuple[str, Any]], slots: list[_Slot],
                   groups: list[Group], data: list[VarData], is_group: bool) -> None:
        """The end of a block class: group and var data accessors in schema order, _finished(), the JSON form."""
        for i, (kind, el) in enumerate(elems):
            if kind == "group":
                assert isinstance(el, Group)
                self.group_accessor(base, label, dec, i, el, elems)
            else:
                assert isinstance(el, VarData)
                self.data_accessor(dec, i, el, elems)
        self.w(self.FINISHED_DEF, 1)
        if is_group:
            self.w("if self._index < self._count:", 2)
            self.w("return False", 3)
            self.w("if self._count == 0:", 2)
            self.w("return True", 3)
        self.w(f"return self._step == {len(elems)} and (self._open is None or {self.FINISHED_OPEN})", 2)
        self.w()
        self.dict_methods(slots, groups, data, versioned=dec, decoder=dec, encoder=not dec)
        leaves = block_leaves(slots)
        self.w(f"UNPACK_NAMES = {tuple(lf.name for lf in leaves)!r}  # the positions of unpack() and pack()", 1)
        self.w()
        if dec:
            self.unpack_method(leaves)
        else:
            self.pack_method(base + "Encoder", leaves, self._block_len)

    #: The docstrings of the one-call methods, the same in both kinds of codecs.
    UNPACK_DOC = ('"""Every fixed field of the block, in one call: a tuple of what reading each field (and each member of a '
                  'composite field) gives, in the order of UNPACK_NAMES (constants left out)."""')
    PACK_DOC = ('"""Write every fixed field of the block from positional values, in the order of UNPACK_NAMES, in one '
                'call: the bytes of the block are those of assigning each field (the rest zero); nothing is written '
                'when a value is refused."""')

    def unpack_method(self, leaves: list[Leaf]) -> None:
        self.w("def unpack(self) -> tuple[Any, ...]:", 1)
        self.w(self.UNPACK_DOC, 2)
        exprs = []
        for lf in leaves:
            if len(lf.path) > 1 and lf.guarded:  # a composite on the way may read None (newer than the acting version)
                exprs.append(f"_rt.path_value(self, {lf.path!r})")
            else:
                exprs.append("self." + ".".join(lf.path))
        self.w(f"return ({''.join(e + ', ' for e in exprs)})", 2)
        self.w()

    def pack_method(self, name: str, leaves: list[Leaf], block: int) -> None:
        params = "".join(f", v{k}: Any" for k in range(len(leaves)))
        self.w(f"def pack(self{params}) -> {name}:", 1)
        self.w(self.PACK_DOC, 2)
        if block == 0:
            self.w("return self", 2)
            self.w()
            return
        fmt = self.s.endian
        pos = 0
        args: list[str] = []
        for k, lf in enumerate(leaves):
            t, v = lf.slot.t, f"v{k}"
            if lf.slot.offset > pos:
                fmt += f"{lf.slot.offset - pos}x"
            pos = lf.slot.offset + t.size
            if isinstance(t, EnumType):
                fmt += PRIMITIVES[t.primitive][0]
                args.append(f"{t.null_value} if {v} is None else int({v})")
                continue
            if isinstance(t, SetType):
                fmt += PRIMITIVES[t.primitive][0]
                args.append(f"int({v})")
                continue
            assert isinstance(t, EncodedType)
            code = PRIMITIVES[t.primitive][0]
            if t.primitive == "char" and t.length > 1:
                for line in self.text_bytes_lines(t, lf.slot.json, v, f"r{k}"):
                    self.w(line, 2)
                fmt += f"{t.length}s"
                args.append(f"r{k}")
            elif t.length > 1:
                fmt += f"{t.length}{code}"
                src = f"_rt.array_put({v}, {self.null_literal(t.null)})" if lf.slot.presence == "optional" else v
                self.w(f"a{k} = tuple({src})", 2)
                self.w(f"if len(a{k}) != {t.length}:", 2)
                self.w(f'raise struct.error(f"pack expected {t.length} items for {lf.slot.json} (got {{len(a{k})}})")', 3)
                args.append(f"*a{k}")
            else:
                fmt += code
                val = f"ord({v})" if t.primitive == "char" else v
                if lf.slot.presence == "optional":
                    null_lit = self.null_literal(t.null) if t.primitive != "char" else repr(t.null)
                    val = f"{null_lit} if {v} is None else {val}"
                args.append(val)
        if pos < block:
            fmt += f"{block - pos}x"
        st = f"_BLOCK_{name}_PACK"
        self.structs[st] = fmt
        # Packed into bytes first, then copied: a value struct refuses leaves the buffer as it was.
        self.w(f"raw = {st}.pack({', '.join(args)})", 2)
        self.w(f"_rt.check_bounds(self._buf, self._offset + {block}, 'block')", 2)
        self.w("_rt.write(self._buf, self._offset, raw)", 2)
        self.w("return self", 2)
        self.w()

    def plain_loads(self, tup: str, version_expr: str) -> list[str]:
        """Statements copying the plain numeric fields out of the unpacked tuple into their attributes."""
        lines: list[str] = []
        assert self._cache is not None
        for sl in self._plain:
            t = sl.t
            assert isinstance(t, EncodedType)
            i = self._cache[sl.py][1]
            expr = self.plain_expr(sl, f"{tup}[{i}]")
            if sl.since:
                expr = f"None if {version_expr} < {sl.since} else ({expr})"
            lines.append(f"self.{sl.py} = {expr}")
        for py, view in self._slot_views.items():
            members = self.view_plain.get(view, [])
            if not members:
                continue
            lines.append(f"c_{py} = self.{py}" if py in self._attr_views else f"c_{py} = self._c_{py}")
            for ms, k in members:
                lines.append(f"c_{py}.{ms.py} = {self.plain_expr(ms, f'{tup}[{k}]')}")
        return lines

    def plain_expr(self, sl: _Slot, expr: str) -> str:
        t = sl.t
        assert isinstance(t, EncodedType)
        if t.primitive == "char":  # a char array: its text, through the module's bytes -> str cache
            enc = py_encoding(t.character_encoding)
            cache = self.str_cache(enc)
            return f"{cache}_get({expr}) or _rt.decode_str({expr}, {enc!r}, {cache})"
        if sl.presence == "optional":
            null = t.null
            if isinstance(null, float) and math.isnan(null):
                return f"None if {expr} != {expr} else {expr}"
            return f"None if {expr} == {self.null_literal(null)} else {expr}"
        return expr

    def unpack_line(self, block_length_expr: str) -> str:
        """Statement that unpacks the block's plain fields once (zero-padded when the acting block is shorter)."""
        st = self._block_struct
        return (f"v = self._v = {st}.unpack_from(self._buf, self._offset) if {block_length_expr} >= {self._block_span} "
                f"else {st}.unpack(_rt.padded(self._buf, self._offset, {block_length_expr}, {self._block_span}))")

    def message_methods(self, name: str, dec: bool, msg: Message) -> None:
        if dec:
            self.w(f"def wrap(self, buf: Buffer, offset: int, acting_block_length: int = {msg.block_length}, "
                   f"acting_version: int = SCHEMA_VERSION) -> {name}:", 1)
            self.w('"""Wrap the root block at ``offset`` (just after the header); block length and version come from the header."""', 2)
            self.w("self._buf = buf", 2)
            self.w("self._offset = offset", 2)
            self.w("self._acting_block_length = acting_block_length", 2)
            self.w("self._acting_version = acting_version", 2)
            self.w("self._limit = offset + acting_block_length", 2)
            if _has_empty(msg.groups):
                self.w("self._empty_left = _rt.MAX_EMPTY_ENTRIES", 2)
            st = self._block_struct
            self.w(f"if acting_block_length >= {self._block_span}:", 2)
            self.w(f"v = self._v = {st}.unpack_from(buf, offset)", 3)
            self.w("else:", 2)
            need = _piecewise(block_needs(msg.fields), "acting_version")
            error = f"raise _rt.short_block({'message=' + msg.name!r}, offset, acting_block_length, acting_version, {need})"
            if need == str(self._block_span):  # every version has all the fields: a shorter block is always an error
                self.w(error, 3)
            else:
                if need != "0":
                    self.w(f"if acting_block_length < {need}:", 3)
                    self.w(error, 4)
                self.w(f"v = self._v = {st}.unpack(_rt.padded(buf, offset, acting_block_length, {self._block_span}))", 3)
            for line in self.plain_loads("v", "acting_version"):
                self.w(line, 2)
            if msg.groups or msg.data:
                self.w("self._step = 0", 2)
                self.w("self._open = None", 2)
            self.w("return self", 2)
            self.w()
            self.w("@property", 1)
            self.w("def acting_version(self) -> int:", 1)
            self.w("return self._acting_version", 2)
            self.w()
            self.w("def to_dict(self) -> dict[str, Any]:", 1)
            self.w('"""All fields in the ``sbe-decode`` JSON form (decodes a fresh copy of the flyweight)."""', 2)
            self.w(f"return {name}().wrap(self._buf, self._offset, self._acting_block_length, self._acting_version)._dict()", 2)
            self.w()
            self.w("def __repr__(self) -> str:", 1)
            self.w(f'return f"{name}({{self.to_dict()!r}})"', 2)
            self.w()
        else:
            self.w(f"def wrap(self, buf: Buffer, offset: int) -> {name}:", 1)
            self.w('"""Wrap the root block at ``offset`` and clear it (unwritten bytes are zero)."""', 2)
            self.w(f"end = offset + {msg.block_length}", 2)
            self.w("if end > len(buf):", 2)
            self.w("_rt.check_bounds(buf, end, 'root block')", 3)
            self.w(f"_rt.write(buf, offset, _ZERO_{msg.block_length})", 2)
            self.zero_consts.add(msg.block_length)
            self.w("self._buf = buf", 2)
            self.w("self._offset = offset", 2)
            self.w("self._limit = end", 2)
            self.w("self._step = 0", 2)
            self.w("self._open = None", 2)
            self.w("return self", 2)
            self.w()
            self.w(f"def wrap_and_apply_header(self, buf: Buffer, offset: int = 0) -> {name}:", 1)
            self.w('"""Write the message header at ``offset``, then wrap the root block after it."""', 2)
            hb = self.header_bytes(msg)
            self.w(f"end = offset + {len(hb)}", 2)
            self.w("if end > len(buf):", 2)
            self.w("_rt.check_bounds(buf, end, 'header and root block')", 3)
            self.w(f"_rt.write(buf, offset, {hb!r})", 2)
            self.w("self._buf = buf", 2)
            self.w("self._offset = offset + HEADER_LENGTH", 2)
            self.w("self._limit = end", 2)
            self.w("self._step = 0", 2)
            self.w("self._open = None", 2)
            self.w("return self", 2)
            self.w()
            self.w("@classmethod", 1)
            self.w("def from_dict(cls, fields: dict[str, Any]) -> bytes:", 1)
            self.w('"""Encode a message (header included) from the ``sbe-decode`` JSON form of its fields."""', 2)
            self.w("size = 256", 2)
            self.w("while True:", 2)
            self.w("buf = bytearray(size)", 3)
            self.w("try:", 3)
            self.w("enc = cls().wrap_and_apply_header(buf, 0)", 4)
            self.w("enc._apply(fields)", 4)
            self.w("return bytes(buf[:enc._limit])", 4)
            self.w("except (struct.error, IndexError, MessageError) as exc:", 3)
            self.w("if size > 1 << 26 or 'buffer too small' not in str(exc) and not isinstance(exc, (struct.error, IndexError)):", 4)
            self.w("raise", 5)
            self.w("size *= 4", 4)
            self.w()
        self.w("@property", 1)
        self.w("def encoded_length(self) -> int:", 1)
        self.w('"""Bytes from the root block to the current position (the whole message once everything is visited)."""', 2)
        self.w("return self._limit - self._offset", 2)
        self.w()
        self.w("@property", 1)
        self.w("def buffer(self) -> Buffer:", 1)
        self.w("return self._buf", 2)
        self.w()

    def header_bytes(self, msg: Message) -> bytes:
        """The message header for ``msg`` followed by its zeroed root block, precomputed."""
        out = bytearray(self.s.header.size + msg.block_length)
        values = {"blockLength": msg.block_length, "templateId": msg.id, "schemaId": self.s.id, "version": self.s.version}
        for m in self.s.header.members:
            if m.name in values and isinstance(m.type, EncodedType) and m.type.presence != "constant":
                struct.pack_into(self.s.endian + PRIMITIVES[m.type.primitive][0], out, m.offset, values[m.name])
        return bytes(out)

    def group_methods(self, name: str, dec: bool, g: Group, elems: list[tuple[str, Any]]) -> None:
        self.w(f"def _wrap(self, msg: Any, count: int, block_length: int, acting_version: int) -> {name}:", 1)
        self.w("self._msg = msg", 2)
        self.w("self._buf = msg._buf", 2)
        self.w("self._count = count", 2)
        self.w("self._index = 0", 2)
        self.w("self._block_length = block_length", 2)
        self.w("self._acting_version = acting_version", 2)
        self.w("self._step = 0", 2)
        self.w("self._open = None", 2)
        self.w("return self", 2)
        self.w()
        self.w("@property", 1)
        self.w("def count(self) -> int:", 1)
        self.w("return self._count", 2)
        self.w()
        self.w(f"def next(self) -> {name}:", 1)
        self.w('"""Move to the next entry (the previous entry\'s groups and var data must have been visited)."""', 2)
        self.w("if self._index >= self._count:", 2)
        self.w(f'raise MessageError(f"group {g.name}: no more entries (count={{self._count}})")', 3)
        self.w(f"if self.check_order and self._index > 0 and not (self._step == {len(elems)} and (self._open is None or self._open._finished())):", 2)
        self.w(f'raise _rt.order_error("group {g.name}", "all groups and var data of the entry", "next()")', 3)
        self.w("msg = self._msg", 2)
        self.w("self._offset = msg._limit", 2)
        self.w("msg._limit += self._block_length", 2)
        if not dec:
            self.zero_consts.add(g.block_length)
            self.w("if msg._limit > len(self._buf):", 2)
            self.w("_rt.check_bounds(self._buf, msg._limit, 'group entry')", 3)
            self.w(f"_rt.write(self._buf, self._offset, _ZERO_{g.block_length})", 2)
        else:
            self.w("_rt.check_bounds(self._buf, msg._limit, 'group entry')", 2)
            self.w(self.unpack_line("self._block_length"), 2)
            for line in self.plain_loads("v", "self._acting_version"):
                self.w(line, 2)
        self.w("self._index += 1", 2)
        self.w("self._step = 0", 2)
        self.w("self._open = None", 2)
        self.w("return self", 2)
        self.w()
        if dec:
            self.w(f"def __iter__(self) -> Iterator[{name}]:", 1)
            if not elems and g.block_length > 0:
                # Flat entries of the expected size: let struct walk them all in C.
                st = self._block_struct
                self.w(f"if self._index == 0 and self._block_length == {st}.size and self._count:", 2)
                self.w("msg = self._msg", 3)
                self.w("start = off = msg._limit", 3)
                self.w("end = start + self._block_length * self._count", 3)
                self.w(f"_rt.check_bounds(self._buf, end, 'group {g.name} entries')", 3)
                self.w("msg._limit = end", 3)
                self.w(f"for v in {st}.iter_unpack(memoryview(self._buf)[start:end]):", 3)
                self.w("self._v = v", 4)
                for line in self.plain_loads("v", "self._acting_version"):
                    self.w(line, 4)
                self.w("self._offset = off", 4)
                self.w("off += self._block_length", 4)
                self.w("self._index += 1", 4)
                self.w("yield self", 4)
                self.w("return", 3)
            self.w("while self._index < self._count:", 2)
            self.w("yield self.next()", 3)
            self.w()
            self.w("def __len__(self) -> int:", 1)
            self.w("return self._count", 2)
            self.w()
        cols = row_columns(g)
        if cols is not None:
            paths = [c[0] for c in cols]
            if dec:
                self.w("def rows(self) -> list[tuple[Any, ...]]:", 1)
                self.w(f'"""The remaining entries, each a tuple of ({", ".join(paths)}) (None for a null)."""', 2)
                self.w(f"return [({''.join(f'e.{p}, ' for p in paths)}) for e in self]", 2)
            else:
                self.w("def put_rows(self, rows: Any) -> None:", 1)
                self.w(f'"""Write one entry per tuple of ({", ".join(paths)}) (None for a null), as next() and assignments."""', 2)
                self.w("for row in rows:", 2)
                self.w("e = self.next()", 3)
                self.w(f"{', '.join(f'e.{p}' for p in paths)}, = row", 3)
            self.w()

    def _order_check(self, i: int, what: str, elems: list[tuple[str, Any]], where: str) -> None:
        self.w(f"if self.check_order and (self._step != {i} or not (self._open is None or self._open._finished())):", 2)
        names = tuple(e.name for _, e in elems)
        self.w(f"raise _rt.order_error({where!r}, _rt.expected({names!r}, self._step, self._open), {what!r})", 3)

    def group_accessor(self, base: str, label: str, dec: bool, i: int, g: Group, elems: list[tuple[str, Any]]) -> None:
        py = _py(g)
        gcls = base + naming.pascal(g.name) + ("Decoder" if dec else "Encoder")
        dim = g.dimension
        bl = dim.member("blockLength")
        n = dim.member("numInGroup")
        assert bl is not None and n is not None
        assert isinstance(bl.type, EncodedType) and isinstance(n.type, EncodedType)
        msg_ref = "self" if self._is_message_ctx else "self._msg"
        if dec:
            self.w(f"def {py}(self) -> {gcls}:", 1)
            self.w(f'"""Repeating group {g.name} (id={g.id}); iterate it fully before the next group or var data."""', 2)
            self._order_check(i, g.name, [e for e in elems], g.name)
            self.w(f"msg = {msg_ref}", 2)
            self.w(f"self._step = {i + 1}", 2)
            if g.since_version:
                self.w(f"if self._acting_version < {g.since_version}:", 2)
                self.w(f"self._open = {gcls}()._wrap(msg, 0, {g.block_length}, self._acting_version)", 3)
                self.w("return self._open  # type: ignore[no-any-return]", 3)
            self.w(f"_rt.check_bounds(self._buf, msg._limit + {dim.size}, 'group {g.name} dimensions')", 2)
            self.w(f"block_length = {self.st(bl.type.primitive)}_get(self._buf, msg._limit + {bl.offset})[0]", 2)
            self.w(f"count = {self.st(n.type.primitive)}_get(self._buf, msg._limit + {n.offset})[0]", 2)
            self.w(f"msg._limit += {dim.size}", 2)
            what = f"{label}.{g.name}"
            if block_needs(g.fields):
                need = _piecewise(block_needs(g.fields), "self._acting_version")
                self.w(f"if block_length < {need}:", 2)
                self.w(f"raise _rt.short_block({'group=' + what!r}, msg._limit, block_length, self._acting_version, {need})", 3)
            # Bound the work by the bytes present: each entry needs its block and its nested headers.
            tail = _piecewise(tail_mins(g.groups, g.data), "self._acting_version")
            self.w("entry = block_length" + (f" + {tail}" if tail != "0" else ""), 2)
            self.w("if count * entry > len(self._buf) - msg._limit:", 2)
            self.w(f"raise _rt.count_too_large({what!r}, msg._limit, count, entry, len(self._buf) - msg._limit)", 3)
            if _may_be_empty(g):
                self.w("if not entry:", 2)
                self.w("msg._empty_left -= count", 3)
                self.w("if msg._empty_left < 0:", 3)
                self.w(f"raise _rt.too_many_empty({what!r}, msg._limit, count)", 4)
            self.w(f"self._open = {gcls}()._wrap(msg, count, block_length, self._acting_version)", 2)
            self.w("return self._open  # type: ignore[no-any-return]", 2)
            self.w()
        else:
            self.w(f"def {py}_count(self, count: int) -> {gcls}:", 1)
            self.w(f'"""Start group {g.name} (id={g.id}) with ``count`` entries; call ``next()`` before each entry."""', 2)
            self._order_check(i, g.name, [e for e in elems], g.name)
            self.w(f"msg = {msg_ref}", 2)
            self.w(f"self._step = {i + 1}", 2)
            self.w(f"_rt.zero(self._buf, msg._limit, {dim.size})", 2)
            self.w(f"{self.st(bl.type.primitive)}_put(self._buf, msg._limit + {bl.offset}, {g.block_length})", 2)
            self.w(f"{self.st(n.type.primitive)}_put(self._buf, msg._limit + {n.offset}, count)", 2)
            self.w(f"msg._limit += {dim.size}", 2)
            self.w(f"self._open = {gcls}()._wrap(msg, count, {g.block_length}, SCHEMA_VERSION)", 2)
            self.w("return self._open  # type: ignore[no-any-return]", 2)
            self.w()

    def data_accessor(self, dec: bool, i: int, d: VarData, elems: list[tuple[str, Any]]) -> None:
        py = _py(d)
        lt = d.length_type
        g = self.st(lt.primitive)
        msg_ref = "self" if self._is_message_ctx else "self._msg"
        enc = py_encoding(d.data_type.character_encoding) if d.data_type.character_encoding else None
        if dec:
            self.w(f"def _{py}_bytes(self) -> bytes:", 1)
            self._order_check(i, d.name, elems, d.name)
            self.w(f"self._step = {i + 1}", 2)
            self.w("self._open = None", 2)
            if d.since_version:
                self.w(f"if self._acting_version < {d.since_version}:", 2)
                self.w('return b""', 3)
            self.w(f"msg = {msg_ref}", 2)
            self.w(f"_rt.check_bounds(self._buf, msg._limit + {lt.primitive_size}, 'var data {d.name} length')", 2)
            self.w(f"n = {g}_get(self._buf, msg._limit)[0]", 2)
            self.w(f"start = msg._limit + {lt.primitive_size}", 2)
            self.w("msg._limit = start + n", 2)
            self.w("return _rt.get_bytes(self._buf, start, n)", 2)
            self.w()
            rtype = "str" if enc else "bytes"
            self.w(f"def {py}(self) -> {rtype}:", 1)
            self.w(f'"""Var data {d.name} (id={d.id}), read in schema order."""', 2)
            if enc:
                self.w(f"return self._{py}_bytes().decode({enc!r})", 2)
            else:
                self.w(f"return self._{py}_bytes()", 2)
            self.w()
        else:
            limit = _int_max(lt)
            self.w(f"def put_{py}(self, value: bytes | str) -> None:", 1)
            self.w(f'"""Write var data {d.name} (id={d.id}), in schema order."""', 2)
            self._order_check(i, d.name, elems, d.name)
            self.w(f"raw = value.encode({(enc or 'utf-8')!r}) if isinstance(value, str) else value", 2)
            self.w(f"if len(raw) > {limit}:", 2)
            self.w(f'raise MessageError(f"var data {d.name}: length={{len(raw)}} > max={limit}")', 3)
            self.w(f"self._step = {i + 1}", 2)
            self.w("self._open = None", 2)
            self.w(f"msg = {msg_ref}", 2)
            self.w(f"_rt.check_bounds(self._buf, msg._limit + {lt.primitive_size} + len(raw), 'var data {d.name}')", 2)
            self.w(f"{g}_put(self._buf, msg._limit, len(raw))", 2)
            self.w(f"_rt.put_bytes(self._buf, msg._limit + {lt.primitive_size}, raw)", 2)
            self.w(f"msg._limit += {lt.primitive_size} + len(raw)", 2)
            self.w()

    def dispatch(self) -> None:
        header_cls = self.cls(self.s.header)
        decs = ", ".join(f"{naming.pascal(m.name)}Decoder" for m in self.s.messages)
        self.w()
        self.w(f"AnyDecoder = Union[{decs or 'Any'}]")
        self.w()
        self.w(f"DECODERS: dict[int, type[AnyDecoder]] = {{{', '.join(f'{m.id}: {naming.pascal(m.name)}Decoder' for m in self.s.messages)}}}")
        self.w(f"ENCODERS: dict[int, type[Any]] = {{{', '.join(f'{m.id}: {naming.pascal(m.name)}Encoder' for m in self.s.messages)}}}")
        self.w()
        self.w()
        self.w("def decode(buf: Buffer, offset: int = 0) -> AnyDecoder:")
        self.w('"""Read the message header at ``offset`` and wrap the decoder its templateId names."""', 1)
        self.w("_rt.check_bounds(buf, offset + HEADER_LENGTH, 'message header')", 1)
        self.w(f"h = {header_cls}().wrap(buf, offset)", 1)
        if self.s.header_constant("schemaId") is None:  # a constant schemaId carries nothing to check
            self.w("if h.schema_id != SCHEMA_ID:", 1)
            self.w('raise MessageError(f"message has schemaId={h.schema_id}, this module decodes schema id={SCHEMA_ID}")', 2)
        self.w("cls = DECODERS.get(h.template_id)", 1)
        self.w("if cls is None:", 1)
        self.w('raise MessageError(f"unknown templateId={h.template_id} for schema id={SCHEMA_ID}")', 2)
        self.w("_rt.check_bounds(buf, offset + HEADER_LENGTH + h.block_length, 'root block')", 1)
        self.w("return cls().wrap(buf, offset + HEADER_LENGTH, h.block_length, h.version)", 1)
        self.w()
        self.w()
        self.w("def set_strict_enums(enabled: bool) -> None:")
        self.w('"""Whether reading an enum value the schema does not know raises MessageError (on) or gives the', 1)
        self.w("enum's SBE_UNKNOWN member, the raw value staying readable as ``<field>_raw`` (off, the default: an", 1)
        self.w('older reader of a newer producer\'s values, as sbe-tool\'s decoders)."""', 1)
        self.w("global _STRICT_ENUMS", 1)
        self.w("_STRICT_ENUMS = enabled", 1)
        self.w()
        self.w()
        self.w("def set_check_order(enabled: bool) -> None:")
        self.w('"""Turn access-order checks of every generated class on or off (off is faster)."""', 1)
        self.w("for obj in list(globals().values()):", 1)
        self.w("if isinstance(obj, type) and 'check_order' in vars(obj):", 2)
        self.w("setattr(obj, 'check_order', enabled)", 3)


#: The value of every generated enum's SBE_UNKNOWN member: outside every primitive's range, so never on the wire.
UNKNOWN_VALUE = 2**64


def _unknown_name(t: EnumType) -> str:
    """The name of the enum member an unknown value reads as: SBE_UNKNOWN, unless a validValue has it."""
    name = "SBE_UNKNOWN"
    while name in {naming.constant_name(v.name) for v in t.values}:
        name += "_"
    return name


def _piecewise(steps: list[tuple[int, int]], version: str) -> str:
    """An expression of the ``version`` expression for ``(sinceVersion, value)`` steps (ir.block_needs, ir.tail_mins)."""
    expr = "0"
    for since, value in steps:
        expr = str(value) if since == 0 else f"({value} if {version} >= {since} else {expr})"
    return expr


def _may_be_empty(g: Group) -> bool:
    """Whether an entry of ``g`` can take no bytes: no field and no nested group or var data in version 0."""
    return not any(since == 0 for since, _ in block_needs(g.fields) + tail_mins(g.groups, g.data))


def row_columns(g: Group) -> list[tuple[str, int, EncodedType]] | None:
    """The columns of a group's ``rows()``/``put_rows()``: ``(attribute path, offset in the entry, type)`` of each
    stored numeric field and numeric member of a composite field, in wire order; None when the group has no
    such shape (nested groups or var data, other kinds of fields, fields or members with a sinceVersion)."""
    if g.groups or g.data:
        return None
    cols: list[tuple[str, int, EncodedType]] = []
    names = {_py(f) for f in g.fields}
    if names & {"rows", "put_rows"}:
        return None
    for f in g.fields:
        if f.presence == "constant":
            continue
        if f.since_version:
            return None
        t = f.type
        if isinstance(t, EncodedType) and t.length == 1 and t.primitive != "char":
            t = EncodedType(t.name, t.primitive, 1, f.presence, t.null_value)
            cols.append((_py(f), f.offset, t))
        elif isinstance(t, CompositeType):
            for m in t.members:
                mt = m.type
                if not isinstance(mt, EncodedType) or mt.since_version:
                    return None
                if mt.presence == "constant":
                    continue
                if mt.length != 1 or mt.primitive == "char":
                    return None
                cols.append((f"{_py(f)}.{_py(m)}", f.offset + m.offset, mt))
        else:
            return None
    return cols or None


class Leaf:
    """One position of a block's ``unpack()``/``pack()``: a stored field, or a stored member of a composite field
    (composites are walked down to their members)."""

    def __init__(self, path: tuple[str, ...], slot: _Slot, guarded: bool) -> None:
        self.path = path  # attribute names from the block: ("bid_price", "mantissa")
        self.name = ".".join(path)
        self.slot = slot  # the member's slot, its offset from the start of the block, its since the largest on the way
        self.guarded = guarded  # a composite on the way has a sinceVersion (it reads None in older versions)


def block_leaves(slots: list[_Slot]) -> list[Leaf]:
    """The values of a block's ``unpack()``/``pack()``, in schema order; constants take no position."""
    out: list[Leaf] = []

    def walk(sl: _Slot, path: tuple[str, ...], base: int, since: int, guarded: bool) -> None:
        if sl.presence == "constant":
            return
        since = max(since, sl.since)
        if isinstance(sl.t, CompositeType):
            for ms in _member_slots(sl.t):
                walk(ms, path + (ms.py,), base + sl.offset, since, guarded or bool(sl.since))
            return
        out.append(Leaf(path, _Slot(sl.json, sl.py, sl.t, sl.presence, base + sl.offset, since, sl.constant, sl.line,
                                    sl.doc), guarded))

    for sl in slots:
        walk(sl, (sl.py,), 0, 0, False)
    return out


def _has_empty(groups: list[Group]) -> bool:
    return any(_may_be_empty(g) or _has_empty(g.groups) for g in groups)


def _is_plain(sl: _Slot) -> bool:
    """Whether a decoder copies this field into an attribute at wrap(): numeric scalars and char arrays."""
    t = sl.t
    if not isinstance(t, EncodedType) or sl.presence == "constant":
        return False
    return t.length == 1 and t.primitive != "char" or t.length > 1 and t.primitive == "char"


def _default(typ: str) -> str:
    if "None" in typ:
        return "None"
    return {"float": "0.0", "str": '""'}.get(typ, "0")


def _versioned(t: CompositeType) -> bool:
    """Whether any member (at any depth) has a sinceVersion, so the acting version must be passed down."""
    for m in t.members:
        if getattr(m.type, "since_version", 0):
            return True
        if isinstance(m.type, CompositeType) and _versioned(m.type):
            return True
    return False


def _int_max(t: EncodedType) -> int:
    """Largest length a var data's length field allows (its type's range, or its maxValue)."""
    hi = INT_RANGE[t.primitive][1]
    if t.max_value is not None:
        hi = min(hi, int(t.max_value))
    return hi


def generate(schema: Schema, source: str = "?") -> str:
    """The Python module source for ``schema``; ``source`` names the schema file in the header."""
    gen = _Gen(schema, source)
    return gen.module()


def load_module(schema: Schema, name: str, source: str = "?") -> Any:
    """Generate the module for ``schema`` and import it in memory as ``name`` (tests, tooling, benchmarks)."""
    import sys
    import types

    code = generate(schema, source)
    module = types.ModuleType(name)
    module.__file__ = f"<tickline codegen {source}>"
    sys.modules[name] = module
    exec(compile(code, module.__file__, "exec"), module.__dict__)
    return module
