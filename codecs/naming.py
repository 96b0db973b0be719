"""How schema names become Python names in generated code.

Names follow the schema: message and type names become classes as written
(first letter upper-cased), fields, groups and var data become PEP 8
``snake_case`` properties.  A name clash is the generator's problem, not the
schema author's (sbe-tool accepts these schemas): a Python keyword, a name the
flyweight uses itself (``header``, ``wrap``, ``_buf``...), a name that meets
another's snake_case form or a generated method (``fills_count`` of a group
``fills``) gets a trailing underscore (``header_``; a leading underscore
becomes ``f_``), and the parser records a warning.  See :func:`assign`.
"""

from __future__ import annotations

import keyword
import re

_CAMEL1 = re.compile(r"([A-Z]+)([A-Z][a-z])")
_CAMEL2 = re.compile(r"([a-z0-9])([A-Z])")

# Members every generated flyweight has; a field with one of these names would shadow it.
RESERVED_MEMBERS = frozenset({
    "wrap", "wrap_and_apply_header", "buffer", "offset", "limit", "encoded_length", "to_dict",
    "from_dict", "acting_version", "acting_block_length", "header", "count", "next", "reset",
    "check_order", "block_length", "template_id", "schema_id", "schema_version", "name",
    "sbe_block_length", "sbe_template_id", "sbe_schema_id", "sbe_schema_version", "apply_dict",
    "pack", "unpack",
})

# Module-level names of generated code that a type or message class must not take.
RESERVED_CLASSES = frozenset({
    "MessageHeaderDecoder", "MessageHeaderEncoder", "SCHEMA_ID", "SCHEMA_VERSION", "DECODERS", "ENCODERS",
    "IntEnum", "IntFlag", "Any", "Iterator", "Self", "struct", "decode", "AccessOrderError", "MessageError",
})


def snake(name: str) -> str:
    """``MDEntryType`` -> ``md_entry_type``, ``bidPrice`` -> ``bid_price``."""
    s = _CAMEL1.sub(r"\1_\2", name)
    s = _CAMEL2.sub(r"\1_\2", s)
    return s.replace("-", "_").lower()


def pascal(name: str) -> str:
    return name[:1].upper() + name[1:]


def constant_name(name: str) -> str:
    """Name of an enum member or set choice constant: as written, keyword-mangled."""
    return name + "_" if keyword.iskeyword(name) or name in ("name", "value", "mro") else name


def is_identifier(name: str) -> bool:
    return name.isidentifier() and name.isascii()


# Members every generated composite flyweight has (its private attributes start with "_").
RESERVED_COMPOSITE_MEMBERS = frozenset({"wrap"})


def derived(kind: str, py: str) -> set[str]:
    """Every attribute a generated class gets for one element: ``kind`` is field, enum (a field of an enum
    type: it also has ``<py>_raw``), group (``<py>_count``) or data (``put_<py>`` and ``_<py>_bytes``)."""
    extra = {"enum": {py + "_raw"}, "group": {py + "_count"}, "data": {"put_" + py, f"_{py}_bytes"}}
    return {py} | extra.get(kind, set())


def assign(items: list[tuple[str, str]], reserved: frozenset[str] = RESERVED_MEMBERS) -> list[tuple[str, str | None]]:
    """Python names for the elements of one block or composite, in schema order: ``items`` are
    ``(kind, schema name)`` (see :func:`derived`).  Returns ``(python name, why it was mangled or None)``;
    no two returned names, nor anything derived from them, collide with each other or with ``reserved``."""
    taken = set(reserved)
    out: list[tuple[str, str | None]] = []
    for kind, name in items:
        py, is_keyword = python_name(name)
        why = f"name={name} is a Python keyword" if is_keyword else None
        if py.startswith("_"):
            py = "f" + py
            why = f"name={name} would be private in generated code"
        while derived(kind, py) & taken:
            clash = sorted(derived(kind, py) & taken)[0]
            why = why or f"name={name} would collide with {clash} in generated code"
            py += "_"
        taken |= derived(kind, py)
        out.append((py, why))
    return out


def python_name(name: str) -> tuple[str, bool]:
    """The property name for a schema field name, and whether it had to be mangled."""
    s = snake(name)
    if keyword.iskeyword(s) or keyword.issoftkeyword(s):
        return s + "_", True
    return s, False
