"""What both SBE code generators share: the walk over the schema and everything both kinds of codecs write alike.

:mod:`tickline.codecs.gen_python` (pure-Python flyweights) and :mod:`tickline.codecs.gen_cython` (compiled
Cython codecs of the same API) each subclass :class:`BaseGen` and write only what is specific to their output:
how a field is read and written, the block classes' bodies, the module prelude.  Here, once for both:

- the walk: types registered as classes (one name per type), enums and sets, composites, then each message
  and its groups (nested group classes first), decoder then encoder, and the module's dispatch last;
- the shape of a block: its fixed fields as :class:`Slot`, the leaves of ``unpack()``/``pack()``
  (:func:`block_leaves`, composite fields walked down to their members), the columns of ``rows()``
  (:func:`row_columns`), the minimum sizes by version (:func:`piecewise`);
- naming and the member names a class may not repeat (:meth:`BaseGen.check_names`);
- the Python-level parts both emit alike: enum and set classes, property accessors, the JSON form
  (``_dict()``/``_apply()``), the order of group and var data accessors, ``_finished()``, and the docstrings
  of the one-call methods.

Not thread-safe: a generator instance writes one module.
"""

from __future__ import annotations

import math
import struct
import textwrap
from typing import Any

from tickline.codecs import ir, naming
from tickline.codecs.errors import SchemaError
from tickline.codecs.schema import py_encoding


class Slot:
    """A fixed-position value: a field of a block or a member of a composite."""

    def __init__(self, json_name: str, py: str, t: ir.TypeDef, presence: str, offset: int, since: int,
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


def field_slot(f: ir.Field) -> Slot:
    doc = f"id={f.id} offset={f.offset} type={getattr(f.type, 'name', '?')}"
    if f.since_version:
        doc += f" sinceVersion={f.since_version}"
    return Slot(f.name, py_name(f), f.type, f.presence, f.offset, f.since_version, f.constant, f.line, doc)


def py_name(el: ir.Field | ir.Group | ir.VarData | ir.Member) -> str:
    """An element's name in generated code: as the parser assigned it (naming.assign), else derived."""
    return el.py or naming.python_name(el.name)[0]


def member_slots(c: ir.CompositeType) -> list[Slot]:
    out = []
    for m in c.members:
        presence = getattr(m.type, "presence", "required")
        const = m.type.constant if isinstance(m.type, ir.EncodedType) else None
        if presence == "constant" and isinstance(m.type, ir.EnumType):
            presence = "required"  # a constant enum member without valueRef carries no value; treat as stored
        since = getattr(m.type, "since_version", 0)
        out.append(Slot(m.name, py_name(m), m.type, presence, m.offset, since, const, getattr(m.type, "line", 0),
                        f"offset={m.offset}"))
    return out


#: The value of every generated enum's SBE_UNKNOWN member: outside every primitive's range, so never on the wire.
UNKNOWN_VALUE = 2**64


def unknown_name(t: ir.EnumType) -> str:
    """The name of the enum member an unknown value reads as: SBE_UNKNOWN, unless a validValue has it."""
    name = "SBE_UNKNOWN"
    while name in {naming.constant_name(v.name) for v in t.values}:
        name += "_"
    return name


def piecewise(steps: list[tuple[int, int]], version: str) -> str:
    """An expression of the ``version`` expression for ``(sinceVersion, value)`` steps (ir.block_needs, ir.tail_mins)."""
    expr = "0"
    for since, value in steps:
        expr = str(value) if since == 0 else f"({value} if {version} >= {since} else {expr})"
    return expr


def may_be_empty(g: ir.Group) -> bool:
    """Whether an entry of ``g`` can take no bytes: no field and no nested group or var data in version 0."""
    return not any(since == 0 for since, _ in ir.block_needs(g.fields) + ir.tail_mins(g.groups, g.data))


def row_columns(g: ir.Group) -> list[tuple[str, int, ir.EncodedType]] | None:
    """The columns of a group's ``rows()``/``put_rows()``: ``(attribute path, offset in the entry, type)`` of each
    stored numeric field and numeric member of a composite field, in wire order; None when the group has no
    such shape (nested groups or var data, other kinds of fields, fields or members with a sinceVersion)."""
    if g.groups or g.data:
        return None
    cols: list[tuple[str, int, ir.EncodedType]] = []
    names = {py_name(f) for f in g.fields}
    if names & {"rows", "put_rows"}:
        return None
    for f in g.fields:
        if f.presence == "constant":
            continue
        if f.since_version:
            return None
        t = f.type
        if isinstance(t, ir.EncodedType) and t.length == 1 and t.primitive != "char":
            t = ir.EncodedType(t.name, t.primitive, 1, f.presence, t.null_value)
            cols.append((py_name(f), f.offset, t))
        elif isinstance(t, ir.CompositeType):
            for m in t.members:
                mt = m.type
                if not isinstance(mt, ir.EncodedType) or mt.since_version:
                    return None
                if mt.presence == "constant":
                    continue
                if mt.length != 1 or mt.primitive == "char":
                    return None
                cols.append((f"{py_name(f)}.{py_name(m)}", f.offset + m.offset, mt))
        else:
            return None
    return cols or None


class Leaf:
    """One position of a block's ``unpack()``/``pack()``: a stored field, or a stored member of a composite field
    (composites are walked down to their members)."""

    def __init__(self, path: tuple[str, ...], slot: Slot, guarded: bool) -> None:
        self.path = path  # attribute names from the block: ("bid_price", "mantissa")
        self.name = ".".join(path)
        self.slot = slot  # the member's slot, its offset from the start of the block, its since the largest on the way
        self.guarded = guarded  # a composite on the way has a sinceVersion (it reads None in older versions)


def block_leaves(slots: list[Slot]) -> list[Leaf]:
    """The values of a block's ``unpack()``/``pack()``, in schema order; constants take no position."""
    out: list[Leaf] = []

    def walk(sl: Slot, path: tuple[str, ...], base: int, since: int, guarded: bool) -> None:
        if sl.presence == "constant":
            return
        since = max(since, sl.since)
        if isinstance(sl.t, ir.CompositeType):
            for ms in member_slots(sl.t):
                walk(ms, path + (ms.py,), base + sl.offset, since, guarded or bool(sl.since))
            return
        out.append(Leaf(path, Slot(sl.json, sl.py, sl.t, sl.presence, base + sl.offset, since, sl.constant, sl.line,
                                   sl.doc), guarded))

    for sl in slots:
        walk(sl, (sl.py,), 0, 0, False)
    return out


def has_empty(groups: list[ir.Group]) -> bool:
    return any(may_be_empty(g) or has_empty(g.groups) for g in groups)


def is_plain(sl: Slot) -> bool:
    """Whether a decoder copies this field into an attribute at wrap(): numeric scalars and char arrays."""
    t = sl.t
    if not isinstance(t, ir.EncodedType) or sl.presence == "constant":
        return False
    return t.length == 1 and t.primitive != "char" or t.length > 1 and t.primitive == "char"


def has_versioned_member(t: ir.CompositeType) -> bool:
    """Whether any member (at any depth) has a sinceVersion, so the acting version must be passed down."""
    for m in t.members:
        if getattr(m.type, "since_version", 0):
            return True
        if isinstance(m.type, ir.CompositeType) and has_versioned_member(m.type):
            return True
    return False


def int_max(t: ir.EncodedType) -> int:
    """Largest length a var data's length field allows (its type's range, or its maxValue)."""
    hi = ir.INT_RANGE[t.primitive][1]
    if t.max_value is not None:
        hi = min(hi, int(t.max_value))
    return hi


class BaseGen:
    """The walk over a schema and the parts of a generated module both kinds of codecs write alike.

    Subclasses write the rest: ``module()`` (the prelude around :meth:`walk`'s lines), ``composite()``,
    ``block_class()``, ``getter_expr_lines()``, ``setter_lines()``, ``unpack_method()``, ``pack_method()``,
    ``message_methods()``, ``group_methods()``, ``group_accessor()``, ``data_accessor()`` and ``dispatch()``."""

    #: Whether generated signatures carry type annotations (the Cython generator, whose .pyx does not, clears it).
    ANNOTATE = True
    #: The expression that says whether access order is checked (a class attribute, or the compiled module's flag).
    CHECK_ORDER = "self.check_order"

    def __init__(self, schema: ir.Schema, source: str) -> None:
        self.s = schema
        self.source = source
        self.lines: list[str] = []
        self.classes: dict[int, str] = {}  # id(typedef) -> class name
        self.class_owner: dict[str, ir.TypeDef] = {}
        # Set while generating a decoder block or composite view: field -> (tuple expression, index expression).
        self._cache: dict[str, tuple[str, str]] | None = None
        self.str_caches: set[str] = set()
        self.bytes_caches: set[str] = set()
        self._is_message_ctx = True
        self._slot_views: dict[str, str] = {}
        self._plain: list[Slot] = []
        self._attr_views: set[str] = set()
        self._block_len = 0

    # -- the walk ------------------------------------------------------------------------------

    def walk(self) -> list[str]:
        """Every class and function of the module, in the order they are defined: enums and sets, composites,
        each message's classes, the dispatch.  Returns their lines; ``self.lines`` is left as it was, for the
        subclass's ``module()`` to write the prelude (which depends on what the body uses) before them."""
        s = self.s
        for t in s.types.values():
            self.register(t)
        self.register(s.header)
        body_start = len(self.lines)
        for name, t in list(self.class_owner.items()):
            if isinstance(t, ir.EnumType):
                self.enum(name, t)
            elif isinstance(t, ir.SetType):
                self.set(name, t)
        for name, t in list(self.class_owner.items()):
            if isinstance(t, ir.CompositeType):
                self.composite(name, t)
        for m in s.messages:
            self.message(m)
        self.dispatch()
        body = self.lines[body_start:]
        self.lines = self.lines[:body_start]
        return body

    def text(self) -> str:
        """The module's source from ``self.lines``."""
        return "\n".join(self.lines).rstrip() + "\n"

    def composite(self, name: str, t: ir.CompositeType) -> None:
        raise NotImplementedError

    def dispatch(self) -> None:
        raise NotImplementedError

    def block_class(self, base: str, role: str, label: str, slots: list[Slot], groups: list[ir.Group],
                    data: list[ir.VarData], msg: ir.Message | None, group: ir.Group | None) -> None:
        raise NotImplementedError

    def getter_expr_lines(self, slot: Slot, versioned: bool, raw: bool = False) -> list[str]:
        raise NotImplementedError

    def setter_lines(self, slot: Slot, raw: bool = False) -> list[str]:
        raise NotImplementedError

    def unpack_method(self, leaves: list[Leaf]) -> None:
        raise NotImplementedError

    def pack_method(self, name: str, leaves: list[Leaf], block: int) -> None:
        raise NotImplementedError

    def group_accessor(self, base: str, label: str, dec: bool, i: int, g: ir.Group, elems: list[tuple[str, Any]]) -> None:
        raise NotImplementedError

    def data_accessor(self, dec: bool, i: int, d: ir.VarData, elems: list[tuple[str, Any]]) -> None:
        raise NotImplementedError

    # -- helpers -------------------------------------------------------------------------------

    def w(self, text: str = "", indent: int = 0) -> None:
        self.lines.append(("    " * indent + text) if text else "")

    def cls(self, t: ir.TypeDef) -> str:
        return self.classes[id(t)]

    def register(self, t: ir.TypeDef) -> None:
        if isinstance(t, ir.EncodedType) or id(t) in self.classes:
            return
        name = naming.pascal(t.name)
        other = self.class_owner.get(name)
        if other is not None and other is not t:
            raise SchemaError(f"two different types named {t.name} would both become class {name}",
                              file=self.s.file, line=t.line, element=type(t).__name__)
        self.classes[id(t)] = name
        self.class_owner[name] = t
        if isinstance(t, ir.CompositeType):
            for m in t.members:
                self.register(m.type)

    def py_type(self, slot: Slot) -> str:
        t = slot.t
        if slot.presence == "constant":
            if isinstance(t, ir.EnumType):
                return self.cls(t)
            assert isinstance(t, ir.EncodedType)
            return "str" if t.primitive == "char" else ("float" if ir.is_float(t.primitive) else "int")
        if isinstance(t, ir.EnumType):
            return f"{self.cls(t)} | None"
        if isinstance(t, ir.SetType):
            return self.cls(t)
        if isinstance(t, ir.CompositeType):
            if self._cache is not None and slot.py in self._slot_views:
                return self._slot_views[slot.py]
            return self.cls(t)
        base = "str" if t.primitive == "char" else ("float" if ir.is_float(t.primitive) else "int")
        if t.length > 1 and t.primitive != "char":
            return f"tuple[{base}{' | None' if slot.presence == 'optional' else ''}, ...]"
        if t.length > 1:
            return base  # char arrays: "" when empty, never None (the JSON form's rule)
        return base + (" | None" if slot.presence == "optional" else "")

    def null_literal(self, value: int | float) -> str:
        if isinstance(value, float) and math.isnan(value):
            return "math.nan"
        return repr(value)

    def enum(self, name: str, t: ir.EnumType) -> None:
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
        self.w(f"{unknown_name(t)} = {UNKNOWN_VALUE}  # a value read that is none of the above (see the field's _raw)", 1)
        self.w()
        self.w()
        self.w(f"_{name}_NAMES: dict[int, str] = {{{', '.join(f'{v.value}: {v.name!r}' for v in t.values)}}}")
        self.w(f"_{name}_MEMBERS: dict[int, {name}] = {{m.value: m for m in {name}}}  # faster than calling the enum")
        self.w(f"_{name}_VALUES: dict[str, int] = {{{', '.join(f'{v.name!r}: {v.value}' for v in t.values)}}}")
        self.w()

    def set(self, name: str, t: ir.SetType) -> None:
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

    def enum_tail(self, slot: Slot, t: ir.EnumType) -> list[str]:
        c = self.cls(t)
        return [f"m = _{c}_MEMBERS.get(v)", "if m is None:", f"    if v == {t.null_value}:", "        return None",
                "    if _STRICT_ENUMS:",
                f'        raise MessageError(f"unknown {t.name} value={{v}} in field {slot.json} (strict enums; read {slot.py}_raw)")',
                f"    return {c}.{unknown_name(t)}", "return m"]

    def str_cache(self, enc: str) -> str:
        """Module-level bytes -> str cache for decoded char arrays (symbols repeat; decoding them does not need to)."""
        name = "_STRS_" + "".join(c if c.isalnum() else "_" for c in enc.upper())
        self.str_caches.add(name)
        return name

    def text_bytes_lines(self, t: ir.EncodedType, json_name: str, value: str, raw: str) -> list[str]:
        """Statements turning the text ``value`` into ``raw``, the bytes of char array ``t`` (through the module's
        str -> bytes cache), refusing a text longer than the array."""
        enc = py_encoding(t.character_encoding)
        cache = self.bytes_cache(enc)
        return [f"{raw} = {cache}.get({value})", f"if {raw} is None:", f"    {raw} = _rt.encode_str({value}, {enc!r}, {cache})",
                f"if len({raw}) > {t.length}:",
                f'    raise MessageError(f"{json_name}: value={{{value}!r}} is {{len({raw})}} bytes, longer than length={t.length}")']


    def _ann(self, text: str) -> str:
        return text if self.ANNOTATE else ""

    def slot_accessors(self, slot: Slot, versioned: bool, writable: bool) -> None:
        rtype = self.py_type(slot)
        if versioned and slot.since and "None" not in rtype:
            rtype += " | None"
        self.w("@property", 1)
        self.w(f"def {slot.py}(self){self._ann(' -> ' + rtype)}:", 1)
        self.w(f'"""{slot.json}: {slot.doc}."""', 2)
        for line in self.getter_expr_lines(slot, versioned):
            self.w(line, 2)
        self.w()
        settable = slot.presence != "constant" and not isinstance(slot.t, ir.CompositeType)
        if writable and settable:
            vtype = self.py_type(slot)
            self.w(f"@{slot.py}.setter", 1)
            self.w(f"def {slot.py}(self, value{self._ann(': ' + vtype)}){self._ann(' -> None')}:", 1)
            for line in self.setter_lines(slot):
                self.w(line, 2)
            self.w()
        if isinstance(slot.t, ir.EnumType) and slot.presence != "constant":
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

    def json_expr(self, slot: Slot) -> str:
        t = slot.t
        if slot.presence == "constant":
            return repr(slot.constant)
        if isinstance(t, ir.EnumType):
            c = self.cls(t)
            return f"_rt.enum_json(self.{slot.py}_raw, {t.null_value}, _{c}_NAMES, {t.primitive == 'char'})"
        if isinstance(t, ir.SetType):
            return f"_rt.set_json(self.{slot.py}, _{self.cls(t)}_CHOICES)"
        if isinstance(t, ir.CompositeType):
            if slot.since:
                return f"None if self._acting_version < {slot.since} else self.{slot.py}._dict()"
            return f"self.{slot.py}._dict()"
        if ir.is_float(t.primitive):
            if t.length > 1:
                return f"None if (v := self.{slot.py}) is None else [_rt.fj(x) for x in v]"
            return f"_rt.fj(self.{slot.py})"
        if t.length > 1 and t.primitive != "char":
            return f"None if (v := self.{slot.py}) is None else list(v)"
        return f"self.{slot.py}"

    def apply_lines(self, slot: Slot) -> list[str]:
        t = slot.t
        key = f"d[{slot.json!r}]"
        if slot.presence == "constant":
            return []
        if isinstance(t, ir.EnumType):
            c = self.cls(t)
            return [f"self.{slot.py}_raw = _rt.enum_from_json({key}, {t.null_value}, _{c}_VALUES, {t.primitive == 'char'})"]
        if isinstance(t, ir.SetType):
            return [f"self.{slot.py} = {self.cls(t)}(_rt.set_from_json({key}, _{self.cls(t)}_CHOICES, {8 * t.size}))"]
        if isinstance(t, ir.CompositeType):
            return [f"self.{slot.py}._apply({key})"]
        if ir.is_float(t.primitive):
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

    def dict_methods(self, slots: list[Slot], groups: list[ir.Group], data: list[ir.VarData], versioned: bool,
                     decoder: bool = True, encoder: bool = True, prefix: str = "") -> None:
        if decoder:
            self.w("def _dict(self) -> dict[str, Any]:", 1)
            self.w("out: dict[str, Any] = {}", 2)
            if any("v :=" in self.json_expr(sl) for sl in slots):
                self.w("v: Any", 2)
            for sl in slots:
                self.w(f"out[{sl.json!r}] = {self.json_expr(sl)}", 2)
            for g in groups:
                self.w(f"out[{g.name!r}] = [e._dict() for e in self.{py_name(g)}()]", 2)
            for d in data:
                # The JSON form (otf.var_data_to_json): text when the data has a characterEncoding, else hex.
                if d.data_type.character_encoding:
                    enc = py_encoding(d.data_type.character_encoding)
                    self.w(f"out[{d.name!r}] = self._{py_name(d)}_bytes().decode({enc!r}, 'surrogateescape')", 2)
                else:
                    self.w(f"out[{d.name!r}] = self._{py_name(d)}_bytes().hex()", 2)
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
                py = py_name(g)
                self.w(f"g_{py} = self.{py}_count(len(d[{g.name!r}]))", 2)
                self.w(f"for e_{py} in d[{g.name!r}]:", 2)
                self.w(f"g_{py}.next()._apply(e_{py})", 3)
                n += 1
            for dd in data:
                py = py_name(dd)
                if dd.data_type.character_encoding:
                    enc = py_encoding(dd.data_type.character_encoding)
                    self.w(f"self.put_{py}(d[{dd.name!r}].encode({enc!r}, 'surrogateescape'))", 2)
                else:
                    self.w(f"self.put_{py}(bytes.fromhex(d[{dd.name!r}]))", 2)
                n += 1
            if n == 0:
                self.w("return None", 2)
            self.w()

    def check_names(self, cls: str, names: list[tuple[str, int]]) -> None:
        seen: set[str] = set()
        for n, line in names:
            if n in seen or n in naming.RESERVED_MEMBERS:
                raise SchemaError(f"generated member {n} of class {cls} collides with another member",
                                  file=self.s.file, line=line, element="field")
            seen.add(n)

    def message(self, m: ir.Message) -> None:
        name = naming.pascal(m.name)
        self.block_classes(name, m.name, m.fields, m.groups, m.data, m, None)

    def block_classes(self, cls: str, label: str, fields: list[ir.Field], groups: list[ir.Group], data: list[ir.VarData],
                      msg: ir.Message | None, group: ir.Group | None) -> None:
        # Nested group classes first, so annotations can name them without quotes at definition time.
        for g in groups:
            self.block_classes(cls + naming.pascal(g.name), f"{label}.{g.name}", g.fields, g.groups, g.data, None, g)
        slots = [field_slot(f) for f in fields]
        names = [(sl.py, sl.line) for sl in slots]
        names += [(sl.py + "_raw", sl.line) for sl in slots if isinstance(sl.t, ir.EnumType)]
        for g in groups:
            py = py_name(g)
            names += [(py, g.line), (py + "_count", g.line)]
        for d in data:
            py = py_name(d)
            names += [(py, d.line), ("put_" + py, d.line)]
        self.check_names(cls, names)
        for role in ("Decoder", "Encoder"):
            self.block_class(cls, role, label, slots, groups, data, msg, group)

    #: How a block class's _finished() is declared and reads its open group's (the Cython generator's differ).
    FINISHED_DEF = "def _finished(self) -> bool:"

    FINISHED_OPEN = "bool(self._open._finished())"

    def block_body(self, name: str, base: str, label: str, dec: bool, slots: list[Slot], groups: list[ir.Group],
                   data: list[ir.VarData], msg: ir.Message | None, group: ir.Group | None) -> None:
        """A message or group class after its constructor: the message's or group's own methods, the field
        accessors (those :meth:`own_accessor` does not write), then :meth:`block_tail`."""
        elems = [("group", g) for g in groups] + [("data", d) for d in data]
        if msg is not None:
            self.message_methods(name, dec, msg)
        else:
            assert group is not None
            self.group_methods(name, dec, group, elems)
        for sl in slots:
            if self.own_accessor(sl):
                continue
            self.slot_accessors(sl, versioned=dec, writable=not dec)
        self.block_tail(base, label, dec, elems, slots, groups, data, msg is None)

    def own_accessor(self, sl: Slot) -> bool:
        """Whether the block class being written reads field ``sl`` its own way (no property from
        :meth:`slot_accessors`); writes what it needs instead."""
        return False

    def message_methods(self, name: str, dec: bool, msg: ir.Message) -> None:
        raise NotImplementedError

    def group_methods(self, name: str, dec: bool, g: ir.Group, elems: list[tuple[str, Any]]) -> None:
        raise NotImplementedError

    def block_tail(self, base: str, label: str, dec: bool, elems: list[tuple[str, Any]], slots: list[Slot],
                   groups: list[ir.Group], data: list[ir.VarData], is_group: bool) -> None:
        """The end of a block class: group and var data accessors in schema order, _finished(), the JSON form."""
        for i, (kind, el) in enumerate(elems):
            if kind == "group":
                assert isinstance(el, ir.Group)
                self.group_accessor(base, label, dec, i, el, elems)
            else:
                assert isinstance(el, ir.VarData)
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

    def header_bytes(self, msg: ir.Message) -> bytes:
        """The message header for ``msg`` followed by its zeroed root block, precomputed."""
        out = bytearray(self.s.header.size + msg.block_length)
        values = {"blockLength": msg.block_length, "templateId": msg.id, "schemaId": self.s.id, "version": self.s.version}
        for m in self.s.header.members:
            if m.name in values and isinstance(m.type, ir.EncodedType) and m.type.presence != "constant":
                struct.pack_into(self.s.endian + ir.PRIMITIVES[m.type.primitive][0], out, m.offset, values[m.name])
        return bytes(out)

    def _order_check(self, i: int, what: str, elems: list[tuple[str, Any]], where: str) -> None:
        """Statements of a group or var data accessor refusing a visit out of schema order (the ``i``-th of ``elems``)."""
        self.w(f"if {self.CHECK_ORDER} and (self._step != {i} or not (self._open is None or self._open._finished())):", 2)
        names = tuple(e.name for _, e in elems)
        self.w(f"raise _rt.order_error({where!r}, _rt.expected({names!r}, self._step, self._open), {what!r})", 3)

    # -- pieces of the block and composite classes both kinds write alike ------------------------

    def composite_head(self, t: ir.CompositeType) -> None:
        """A composite class's docstring and ENCODED_LENGTH (after its ``class`` line)."""
        self.w(f'"""composite {t.name}: {t.size} bytes; a flyweight, wrap() it over a buffer."""', 1)
        self.w()
        self.w(f"ENCODED_LENGTH = {t.size}", 1)

    def composite_tail(self, name: str, slots: list[Slot]) -> None:
        """A composite class's member accessors, JSON form and repr."""
        for sl in slots:
            self.slot_accessors(sl, versioned=True, writable=True)
        self.dict_methods(slots, [], [], versioned=True)
        self.w(f"def __repr__(self){self._ann(' -> str')}:", 1)
        self.w(f'return f"{name}({{self._dict()!r}})"', 2)
        self.w()

    def assign_lines(self, names: list[str], indent: int = 2) -> None:
        """``self._<name> = <name>`` for each of ``names`` (a wrap() taking its arguments)."""
        for n in names:
            self.w(f"self._{n} = {n}", indent)

    def restart_lines(self, indent: int = 2) -> None:
        """The end of a wrap() or next(): no group or var data visited yet in the new block."""
        self.w("self._step = 0", indent)
        self.w("self._open = None", indent)
        self.w("return self", indent)
        self.w()

    def block_doc(self, role: str, label: str, msg: ir.Message | None, group: ir.Group | None, about: list[str]) -> None:
        """A message or group class's docstring; ``about`` are a message class's lines after its first."""
        if msg is not None:
            self.w(f'"""{role} flyweight for message {msg.name} (templateId={msg.id}, blockLength={msg.block_length}).', 1)
            self.w()
            for line in about:
                self.w(line, 1)
            self.w('"""', 1)
        else:
            assert group is not None
            self.w(f'"""{role} for repeating group {label} (id={group.id}, blockLength={group.block_length})."""', 1)

    def emit(self, code: str, indent: int = 1) -> None:
        """Write ``code``, lines of generated code as one piece (dedented, then indented by ``indent`` levels; the
        first and last line breaks dropped), followed by a blank line."""
        for line in textwrap.dedent(code).strip("\n").split("\n"):
            self.w(line, indent)
        self.w()

    def decoder_tail(self, name: str) -> None:
        """A message decoder's acting_version, to_dict() and repr."""
        self.emit(f"""
            @property
            def acting_version(self){self._ann(' -> int')}:
                return self._acting_version

            def to_dict(self){self._ann(' -> dict[str, Any]')}:
                \"\"\"All fields in the ``sbe-decode`` JSON form (decodes a fresh copy of the flyweight).\"\"\"
                return {name}().wrap(self._buf, self._offset, self._acting_block_length, self._acting_version)._dict()

            def __repr__(self){self._ann(' -> str')}:
                return f"{name}({{self.to_dict()!r}})"
            """)

    def from_dict_method(self, end: str) -> None:
        """A message encoder's from_dict(); ``end`` is the expression of the message's end in ``buf``."""
        self.emit(f"""
            @classmethod
            def from_dict(cls, fields{self._ann(': dict[str, Any]')}){self._ann(' -> bytes')}:
                \"\"\"Encode a message (header included) from the ``sbe-decode`` JSON form of its fields.\"\"\"
                size = 256
                while True:
                    buf = bytearray(size)
                    try:
                        enc = cls().wrap_and_apply_header(buf, 0)
                        enc._apply(fields)
                        return bytes(buf[:{end}])
                    except (struct.error, IndexError, MessageError) as exc:
                        if size > 1 << 26 or 'buffer too small' not in str(exc) and not isinstance(exc, (struct.error, IndexError)):
                            raise
                        size *= 4
            """)

    def position_methods(self) -> None:
        """A message class's encoded_length and buffer."""
        self.emit(f"""
            @property
            def encoded_length(self){self._ann(' -> int')}:
                \"\"\"Bytes from the root block to the current position (the whole message once everything is visited).\"\"\"
                return self._limit - self._offset

            @property
            def buffer(self){self._ann(' -> Buffer')}:
                return self._buf
            """)

    def group_wrap_body(self) -> None:
        """The body of a group class's _wrap(msg, count, block_length, acting_version), and its count property."""
        self.w("self._msg = msg", 2)
        self.w("self._buf = msg._buf", 2)
        self.assign_lines(["count"])
        self.w("self._index = 0", 2)
        self.assign_lines(["block_length", "acting_version"])
        self.restart_lines()
        self.w("@property", 1)
        self.w(f"def count(self){self._ann(' -> int')}:", 1)
        self.w("return self._count", 2)
        self.w()

    def next_checks(self, g: ir.Group, elems: list[tuple[str, Any]]) -> None:
        """A group class's next() refusing to move past the last entry, or on before the entry is fully visited."""
        self.w("if self._index >= self._count:", 2)
        self.w(f'raise MessageError(f"group {g.name}: no more entries (count={{self._count}})")', 3)
        self.w(f"if {self.CHECK_ORDER} and self._index > 0 and not (self._step == {len(elems)} and "
               "(self._open is None or self._open._finished())):", 2)
        self.w(f'raise _rt.order_error("group {g.name}", "all groups and var data of the entry", "next()")', 3)

    def next_tail(self) -> None:
        """The end of a group class's next()."""
        self.w("self._index += 1", 2)
        self.restart_lines()

    def len_method(self) -> None:
        self.w(f"def __len__(self){self._ann(' -> int')}:", 1)
        self.w("return self._count", 2)
        self.w()

    GROUP_DEC_DOC = "Repeating group {name} (id={id}); iterate it fully before the next group or var data."
    GROUP_ENC_DOC = "Start group {name} (id={id}) with ``count`` entries; call ``next()`` before each entry."

    def group_doc(self, g: ir.Group, dec: bool) -> None:
        doc = self.GROUP_DEC_DOC if dec else self.GROUP_ENC_DOC
        self.w(f'"""{doc.format(name=g.name, id=g.id)}"""', 2)

    def group_entry_checks(self, label: str, g: ir.Group) -> None:
        """A group decoder's check of the entries' block length against the fields its version has, and the
        statement of ``entry``, the fewest bytes one entry takes (to bound the count by the bytes present)."""
        what = f"{label}.{g.name}"
        if ir.block_needs(g.fields):
            need = piecewise(ir.block_needs(g.fields), "self._acting_version")
            self.w(f"if block_length < {need}:", 2)
            self.w(f"raise _rt.short_block({'group=' + what!r}, msg._limit, block_length, self._acting_version, {need})", 3)
        tail = piecewise(ir.tail_mins(g.groups, g.data), "self._acting_version")
        self.w("entry = block_length" + (f" + {tail}" if tail != "0" else ""), 2)

    def data_visit(self, i: int) -> None:
        """A var data accessor marking itself visited (the ``i``-th of the block's groups and var data)."""
        self.w(f"self._step = {i + 1}", 2)
        self.w("self._open = None", 2)

    def decoder_maps(self, annotate: bool) -> None:
        """The module's DECODERS and ENCODERS, by templateId."""
        msgs = self.s.messages
        decs = ", ".join(f"{m.id}: {naming.pascal(m.name)}Decoder" for m in msgs)
        encs = ", ".join(f"{m.id}: {naming.pascal(m.name)}Encoder" for m in msgs)
        self.w(f"DECODERS{': dict[int, type[AnyDecoder]]' if annotate else ''} = {{{decs}}}")
        self.w(f"ENCODERS{': dict[int, type[Any]]' if annotate else ''} = {{{encs}}}")

    #: The docstrings of the methods both kinds of codecs have.
    DOCS = {
        "wrap_decoder": "Wrap the root block at ``offset`` (just after the header); block length and version come from the header.",
        "wrap_encoder": "Wrap the root block at ``offset`` and clear it (unwritten bytes are zero).",
        "wrap_and_apply_header": "Write the message header at ``offset``, then wrap the root block after it.",
        "next": "Move to the next entry (the previous entry's groups and var data must have been visited).",
        "decode": "Read the message header at ``offset`` and wrap the decoder its templateId names.",
    }

    #: set_strict_enums()'s docstring, the part both kinds share (the second line goes on "(off, the default").
    STRICT_ENUMS_DOC = ("Whether reading an enum value the schema does not know raises MessageError (on) or gives the",
                        "enum's SBE_UNKNOWN member, the raw value staying readable as ``<field>_raw`` (off, the default")

    def doc(self, key: str, indent: int = 2) -> None:
        """A method's docstring from :attr:`DOCS`."""
        self.w(f'"""{self.DOCS[key]}"""', indent)

    def data_doc(self, d: ir.VarData, dec: bool) -> None:
        """A var data accessor's docstring."""
        self.w(f'"""Var data {d.name} (id={d.id}), read in schema order."""' if dec else
               f'"""Write var data {d.name} (id={d.id}), in schema order."""', 2)

    def module_function(self, signature: str, doc: list[str], body: list[str]) -> None:
        """A module-level function after two blank lines: ``def`` + ``signature``, its docstring (``doc``, one
        string a line) and ``body`` (its lines, indented relative to the function's)."""
        self.w()
        self.w()
        self.w(f"def {signature}:")
        for k, line in enumerate(doc):
            self.w(('"""' if k == 0 else "") + line + ('"""' if k == len(doc) - 1 else ""), 1)
        for line in body:
            self.w(line, 1)

    # -- pieces of field accessors both kinds write alike -------------------------------------------

    def getter_prelude(self, slot: Slot, versioned: bool, raw: bool) -> tuple[list[str], bool]:
        """A getter's first lines: None before the field's sinceVersion, and a constant's value.  Returns the
        lines and whether they are the whole getter (a constant, read other than raw)."""
        lines: list[str] = []
        if versioned and slot.since:
            lines.append(f"if self._acting_version < {slot.since}:")
            lines.append("    return None")
        if slot.presence == "constant" and not raw:
            t = slot.t
            if isinstance(t, ir.EnumType):
                lines.append(f"return {self.cls(t)}.{naming.constant_name(str(slot.constant))}")
            else:
                lines.append(f"return {slot.constant!r}")
            return lines, True
        return lines, False

    def or_null(self, t: ir.EncodedType, value: str, converted: str) -> str:
        """The value written for an optional field: its null value when ``value`` is None, else ``converted``."""
        null_lit = self.null_literal(t.null) if t.primitive != "char" else repr(t.null)
        return f"{null_lit} if {value} is None else {converted}"

    def bytes_cache(self, enc: str) -> str:
        """Module-level str -> bytes cache for encoded char arrays (the writer's side of :meth:`str_cache`)."""
        name = "_BYTES_" + "".join(c if c.isalnum() else "_" for c in enc.upper())
        self.bytes_caches.add(name)
        return name

    def array_length_check(self, k: int, t: ir.EncodedType, json_name: str) -> None:
        """pack()'s refusal of the ``k``-th value, an array field's, when it has not ``t.length`` items."""
        self.w(f"if len(a{k}) != {t.length}:", 2)
        self.w(f'raise struct.error(f"pack expected {t.length} items for {json_name} (got {{len(a{k})}})")', 3)

    # -- groups and var data -------------------------------------------------------------------------

    #: How a group or var data accessor declares ``msg``, the message (a format of :attr:`msg_ref`).
    MSG_DECL = "msg = {}"
    #: How a group accessor returns the group it opened.
    OPEN_RETURN = "return self._open  # type: ignore[no-any-return]"

    def msg_decl(self) -> None:
        self.w(self.MSG_DECL.format(self.msg_ref), 2)

    def enter_group(self, i: int) -> None:
        """A group accessor taking the message and marking the group (the ``i``-th of the block's groups and var
        data) visited."""
        self.msg_decl()
        self.w(f"self._step = {i + 1}", 2)

    def open_group(self, group: str, count: str, block_length: str, version: str, indent: int = 2) -> None:
        """A group accessor's end: wrap the group's flyweight ``group`` over its entries and return it."""
        self.w(f"self._open = {group}._wrap(msg, {count}, {block_length}, {version})", indent)
        self.w(self.OPEN_RETURN, indent)

    def older_than_group(self, g: ir.Group, group: str) -> None:
        """A group decoder's empty group when the message is older than the group."""
        if g.since_version:
            self.w(f"if self._acting_version < {g.since_version}:", 2)
            self.open_group(group, "0", str(g.block_length), "self._acting_version", 3)

    @property
    def msg_ref(self) -> str:
        """How a block class reaches the message, which owns the read/write position: itself, or a group's
        ``self._msg``."""
        return "self" if self._is_message_ctx else "self._msg"

    @staticmethod
    def group_dimensions(g: ir.Group) -> tuple[ir.Member, ir.Member]:
        """The blockLength and numInGroup members of a group's dimension composite (the parser checked them)."""
        bl = g.dimension.member("blockLength")
        n = g.dimension.member("numInGroup")
        assert bl is not None and n is not None
        assert isinstance(bl.type, ir.EncodedType) and isinstance(n.type, ir.EncodedType)
        return bl, n
