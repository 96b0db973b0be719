"""The intermediate representation (IR) of an SBE schema.

The parser (:mod:`tickline.codecs.schema`) builds it, with every offset and
block length already computed and validated; the Python generator and the
on-the-fly codec (:mod:`tickline.codecs.otf`) only read it.  Nothing here
knows about XML.

Layout rules (FIX SBE 1.0, as sbe-tool applies them): a block's fields are
placed in order, each at its explicit ``offset`` or right after the previous
one, with no implicit padding; constant fields take no space; a block's
length is the larger of the ``blockLength`` attribute and the computed end.
After the root block come the groups (each: dimension header, then
``numInGroup`` blocks, each block followed by that entry's nested groups and
var data), then the var data fields (length prefix, then bytes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Union

# name -> (struct code, size, min, max, null)
PRIMITIVES: dict[str, tuple[str, int, float, float, float]] = {
    "char": ("B", 1, 0x20, 0x7E, 0),
    "int8": ("b", 1, -(2**7) + 1, 2**7 - 1, -(2**7)),
    "int16": ("h", 2, -(2**15) + 1, 2**15 - 1, -(2**15)),
    "int32": ("i", 4, -(2**31) + 1, 2**31 - 1, -(2**31)),
    "int64": ("q", 8, -(2**63) + 1, 2**63 - 1, -(2**63)),
    "uint8": ("B", 1, 0, 2**8 - 2, 2**8 - 1),
    "uint16": ("H", 2, 0, 2**16 - 2, 2**16 - 1),
    "uint32": ("I", 4, 0, 2**32 - 2, 2**32 - 1),
    "uint64": ("Q", 8, 0, 2**64 - 2, 2**64 - 1),
    "float": ("f", 4, -math.inf, math.inf, math.nan),
    "double": ("d", 8, -math.inf, math.inf, math.nan),
}

# Full representable range of each integer primitive (what the wire can hold).
INT_RANGE: dict[str, tuple[int, int]] = {
    "char": (0, 255),
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint8": (0, 2**8 - 1),
    "uint16": (0, 2**16 - 1),
    "uint32": (0, 2**32 - 1),
    "uint64": (0, 2**64 - 1),
}

Scalar = Union[int, float, str]


def is_float(primitive: str) -> bool:
    return primitive in ("float", "double")


def block_needs(fields: list[Field]) -> list[tuple[int, int]]:
    """How long a block must be to hold the fields of each version: ``(sinceVersion, bytes)`` steps,
    ascending; a block of acting version ``v`` needs the bytes of the last step with sinceVersion <= v
    (none: 0).  Constant fields take no bytes."""
    steps: list[tuple[int, int]] = []
    need = 0
    for since in sorted({f.since_version for f in fields}):
        need = max([need] + [f.offset + f.size for f in fields if f.since_version == since])
        if need and (not steps or steps[-1][1] < need):
            steps.append((since, need))
    return steps


def tail_mins(groups: list[Group], data: list[VarData]) -> list[tuple[int, int]]:
    """The fewest bytes the groups and var data after a block take, as ``(sinceVersion, bytes)`` steps like
    :func:`block_needs`: each group's dimension header (no entries) and each var data's length prefix (no bytes)."""
    parts = [(g.since_version, g.dimension.size) for g in groups] + [(d.since_version, d.length_type.primitive_size) for d in data]
    steps: list[tuple[int, int]] = []
    total = 0
    for since in sorted({p[0] for p in parts}):
        total += sum(size for s, size in parts if s == since)
        if total:
            steps.append((since, total))
    return steps


def tail_min(groups: list[Group], data: list[VarData], version: int) -> int:
    """The fewest bytes the groups and var data after a block take at acting ``version``."""
    return _at(tail_mins(groups, data), version)


def _at(steps: list[tuple[int, int]], version: int) -> int:
    value = 0
    for since, n in steps:
        if since <= version:
            value = n
    return value


def block_need(fields: list[Field], version: int) -> int:
    """Bytes a block of acting ``version`` must have: the end of its last field that exists at that version."""
    return _at(block_needs(fields), version)


@dataclass
class EncodedType:
    """A ``<type>``: one primitive, or a fixed array of them (``length``)."""

    name: str
    primitive: str
    length: int = 1  # 0 only for the varData member of a var data composite
    presence: str = "required"  # required | optional | constant
    null_value: int | float | None = None  # None: the primitive's null
    min_value: int | float | None = None
    max_value: int | float | None = None
    constant: Scalar | None = None  # decoded constant (str for char types)
    character_encoding: str | None = None
    since_version: int = 0
    deprecated: int | None = None
    semantic_type: str | None = None
    description: str | None = None
    offset_attr: int | None = None  # explicit offset inside a composite
    line: int = 0

    @property
    def primitive_size(self) -> int:
        return PRIMITIVES[self.primitive][1]

    @property
    def size(self) -> int:
        """Bytes on the wire (0 for constants)."""
        if self.presence == "constant":
            return 0
        return self.primitive_size * self.length

    @property
    def is_char_array(self) -> bool:
        return self.primitive == "char" and self.length > 1

    @property
    def null(self) -> int | float:
        if self.null_value is not None:
            return self.null_value
        return PRIMITIVES[self.primitive][4]


@dataclass
class ValidValue:
    name: str
    value: int  # raw wire value (ord() for char enums)
    since_version: int = 0
    deprecated: int | None = None
    description: str | None = None


@dataclass
class EnumType:
    name: str
    primitive: str  # char or an unsigned/signed integer primitive
    values: list[ValidValue]
    null_value: int  # raw value that means "no value"
    presence: str = "required"
    since_version: int = 0
    deprecated: int | None = None
    description: str | None = None
    offset_attr: int | None = None
    line: int = 0

    @property
    def size(self) -> int:
        return 0 if self.presence == "constant" else PRIMITIVES[self.primitive][1]

    def by_value(self) -> dict[int, ValidValue]:
        return {v.value: v for v in self.values}


@dataclass
class Choice:
    name: str
    bit: int
    since_version: int = 0
    deprecated: int | None = None
    description: str | None = None


@dataclass
class SetType:
    name: str
    primitive: str  # uint8..uint64
    choices: list[Choice]
    presence: str = "required"
    since_version: int = 0
    deprecated: int | None = None
    description: str | None = None
    offset_attr: int | None = None
    line: int = 0

    @property
    def size(self) -> int:
        return PRIMITIVES[self.primitive][1]


@dataclass
class Member:
    """A member of a composite, at its computed offset inside the composite."""

    name: str
    type: TypeDef
    offset: int
    py: str = ""  # the name in generated code (naming.assign); "" until the parser sets it


@dataclass
class CompositeType:
    name: str
    members: list[Member]
    size: int
    presence: str = "required"
    since_version: int = 0
    deprecated: int | None = None
    description: str | None = None
    semantic_type: str | None = None
    offset_attr: int | None = None
    line: int = 0

    def member(self, name: str) -> Member | None:
        for m in self.members:
            if m.name == name:
                return m
        return None


TypeDef = Union[EncodedType, CompositeType, EnumType, SetType]


@dataclass
class Field:
    """A fixed-size field of a message's or group's block."""

    name: str
    id: int
    type: TypeDef
    offset: int
    presence: str  # effective presence: required | optional | constant
    since_version: int = 0
    deprecated: int | None = None
    constant: Scalar | None = None  # for constant fields: the value (enum name for enum types)
    semantic_type: str | None = None
    description: str | None = None
    line: int = 0
    py: str = ""  # the name in generated code (naming.assign)

    @property
    def size(self) -> int:
        if self.presence == "constant":
            return 0
        return self.type.size

    @property
    def null(self) -> int | float:
        """The raw null value of a scalar field (optional presence)."""
        t = self.type
        if isinstance(t, EncodedType):
            return t.null
        if isinstance(t, EnumType):
            return t.null_value
        raise TypeError(f"no single null value for {type(t).__name__}")


@dataclass
class VarData:
    name: str
    id: int
    type: CompositeType  # members "length" and "varData"
    since_version: int = 0
    deprecated: int | None = None
    description: str | None = None
    line: int = 0
    py: str = ""  # the name in generated code (naming.assign)

    @property
    def length_type(self) -> EncodedType:
        m = self.type.member("length")
        assert m is not None and isinstance(m.type, EncodedType)
        return m.type

    @property
    def data_type(self) -> EncodedType:
        m = self.type.member("varData")
        assert m is not None and isinstance(m.type, EncodedType)
        return m.type

    @property
    def is_text(self) -> bool:
        dt = self.data_type
        return dt.character_encoding is not None or dt.primitive == "char"


@dataclass
class Group:
    name: str
    id: int
    dimension: CompositeType  # members "blockLength" and "numInGroup"
    block_length: int
    fields: list[Field] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    data: list[VarData] = field(default_factory=list)
    since_version: int = 0
    deprecated: int | None = None
    description: str | None = None
    line: int = 0
    py: str = ""  # the name in generated code (naming.assign)


@dataclass
class Message:
    name: str
    id: int
    block_length: int
    fields: list[Field] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    data: list[VarData] = field(default_factory=list)
    since_version: int = 0
    deprecated: int | None = None
    semantic_type: str | None = None
    description: str | None = None
    line: int = 0


@dataclass
class Schema:
    package: str | None
    id: int
    version: int
    semantic_version: str | None
    byte_order: str  # littleEndian | bigEndian
    header: CompositeType
    types: dict[str, TypeDef]
    messages: list[Message]
    description: str | None = None
    file: str = "?"
    warnings: list[str] = field(default_factory=list)

    @property
    def endian(self) -> str:
        """The struct module's byte-order prefix."""
        return "<" if self.byte_order == "littleEndian" else ">"

    def header_constant(self, member: str) -> Scalar | None:
        """The value of a header member the schema fixes as a constant (it takes no bytes), else None.
        sbe-tool accepts a constant ``schemaId`` or ``version`` that differs from the schema's own: such
        a header carries no schema id to check, and its constant version is the acting version."""
        m = self.header.member(member)
        if m is not None and isinstance(m.type, EncodedType) and m.type.presence == "constant":
            return m.type.constant
        return None

    def message_by_id(self, template_id: int) -> Message:
        for m in self.messages:
            if m.id == template_id:
                return m
        raise KeyError(template_id)

    def message_by_name(self, name: str) -> Message:
        for m in self.messages:
            if m.name == name:
                return m
        raise KeyError(name)
