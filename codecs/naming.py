"""How schema names become Python names in generated code.

Names follow the schema: message and type names become classes as written
(first letter upper-cased), fields, groups and var data become PEP 8
``snake_case`` properties.  Two schema names that map to the same Python name,
or a name that would shadow the flyweight's own members, are schema errors;
a Python keyword gets a trailing underscore and a warning.
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


def python_name(name: str) -> tuple[str, bool]:
    """The property name for a schema field name, and whether it had to be mangled."""
    s = snake(name)
    if keyword.iskeyword(s) or keyword.issoftkeyword(s):
        return s + "_", True
    return s, False
