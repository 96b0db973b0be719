"""Hypothesis strategies for values of any SBE block, in the JSON form of ``tickline sbe-decode``."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from tickline.codecs.ir import INT_RANGE, CompositeType, EncodedType, EnumType, Field, Group, SetType, TypeDef, VarData, is_float
from tickline.codecs.schema import py_encoding

_TEXT = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 -_.", max_size=24)


def _float(primitive: str, optional: bool) -> st.SearchStrategy[Any]:
    width = 32 if primitive == "float" else 64
    finite = st.floats(width=width, allow_nan=False, allow_infinity=False)
    special = st.sampled_from(["Infinity", "-Infinity"] + ([] if optional else ["NaN"]))
    s = st.one_of(finite, special)
    return st.one_of(st.none(), s) if optional else s


def _int(t: EncodedType, optional: bool) -> st.SearchStrategy[Any]:
    lo, hi = INT_RANGE[t.primitive]
    s = st.integers(lo, hi)
    if optional:
        null = int(t.null)
        return st.one_of(st.none(), s.filter(lambda v: v != null))
    return s


def value(t: TypeDef, presence: str, constant: Any = None) -> st.SearchStrategy[Any]:
    if presence == "constant" or getattr(t, "presence", "required") == "constant":
        if isinstance(t, EncodedType) and constant is None:
            constant = t.constant
        return st.just(constant)
    if isinstance(t, EnumType):
        return st.one_of(st.none(), st.sampled_from([v.name for v in t.values]))
    if isinstance(t, SetType):
        names = [c.name for c in t.choices]
        return st.lists(st.booleans(), min_size=len(names), max_size=len(names)).map(
            lambda bits: [n for n, b in zip(names, bits) if b])
    if isinstance(t, CompositeType):
        return st.fixed_dictionaries({
            m.name: value(m.type, getattr(m.type, "presence", "required"),
                          m.type.constant if isinstance(m.type, EncodedType) else None)
            for m in t.members
        })
    optional = presence == "optional"
    if t.primitive == "char":
        if t.length > 1:
            enc = py_encoding(t.character_encoding)
            return _TEXT.filter(lambda s: len(s.encode(enc)) <= t.length)
        chars = st.characters(min_codepoint=1, max_codepoint=255)
        return st.one_of(st.none(), chars) if optional else st.characters(min_codepoint=0, max_codepoint=255)
    scalar = _float(t.primitive, False) if is_float(t.primitive) else _int(t, False)
    if t.length > 1:
        return st.lists(scalar, min_size=t.length, max_size=t.length)
    return _float(t.primitive, optional) if is_float(t.primitive) else _int(t, optional)


def block(fields: list[Field], groups: list[Group], data: list[VarData], depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    parts: dict[str, st.SearchStrategy[Any]] = {}
    for f in fields:
        parts[f.name] = value(f.type, f.presence, f.constant)
    for g in groups:
        parts[g.name] = st.lists(block(g.fields, g.groups, g.data, depth + 1), max_size=3 if depth == 0 else 2)
    for d in data:
        if d.data_type.character_encoding:  # text in the JSON form; any bytes, invalid ones as lone surrogates
            enc = py_encoding(d.data_type.character_encoding)
            parts[d.name] = st.binary(max_size=24).map(lambda b, enc=enc: b.decode(enc, "surrogateescape"))
        else:
            parts[d.name] = st.binary(max_size=24).map(bytes.hex)
    return st.fixed_dictionaries(parts)
