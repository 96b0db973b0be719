"""A message's *exact form* as ``struct`` formats derived from the schema's IR.

The exact form of a message is its header (as every encoder writes it: this
template's blockLength, templateId, the schema's id and version) followed by its
root block and nothing after: no groups, no var data.  Code that reads or writes
such a message on a hot path can do it in one ``struct`` call; this module builds
that call's format from the parsed schema, so a schema change moves the format
with it instead of leaving a hand-written layout behind.

``ExactForm(schema, "NewOrder").struct()`` packs/unpacks the header (one bytes
value) and every leaf of the block, in the order of the generated classes'
``UNPACK_NAMES`` (composite fields walked down to their members, constants left
out); ``struct("cl_ord_id", ("account", "symbol"), head=False)`` reads only the
named leaves from the block's start (``unpack_from(data, len(form.head))``), a
tuple of adjacent char arrays as one bytes value.  Values are raw wire values:
enums as their encoding (a char enum's byte as an int), char arrays as bytes
padded with NULs, nulls as the null value (:meth:`ExactForm.null`).

Nothing here checks values: ``struct`` truncates a longer bytes value and raises
``struct.error`` for a number out of its primitive's range.  Immutable; safe to
share between threads.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Sequence, Union

from .ir import PRIMITIVES, CompositeType, EncodedType, EnumType, Schema, SetType

__all__ = ["ExactForm", "Leaf", "exact_text"]


@dataclass(frozen=True)
class Leaf:
    """One value of a block: ``name`` as in ``UNPACK_NAMES``, ``offset`` from the message's start
    (header included), ``size`` in bytes, ``code`` its struct code, ``null`` its raw null value
    (None for a char array or a set)."""

    name: str
    offset: int
    size: int
    code: str
    null: int | float | None


def exact_text(raw: bytes) -> str | None:
    """A char array in the form every encoder writes (ASCII text, then only NULs) as a decoder
    reads it; None for any other form (then decode the message)."""
    t = raw.rstrip(b"\0")
    # (``0 in t`` is a memchr; ``b"\0" in t`` a general search, ten times as long on a ClOrdId)
    return t.decode("ascii") if t.isascii() and 0 not in t else None


def _leaves(prefix: str, t: CompositeType, base: int, out: list[Leaf]) -> None:
    for m in t.members:
        _leaf(f"{prefix}.{m.py or m.name}", m.type, base + m.offset, out)


def _leaf(name: str, t: object, offset: int, out: list[Leaf]) -> None:
    if isinstance(t, CompositeType):
        _leaves(name, t, offset, out)
        return
    if isinstance(t, EncodedType):
        if t.presence == "constant":
            return
        code, size = PRIMITIVES[t.primitive][:2]
        if t.length != 1:
            if t.primitive != "char":
                raise ValueError(f"no exact form for an array of {t.primitive}: field={name} fault=ours")
            out.append(Leaf(name, offset, t.length, f"{t.length}s", None))
            return
        out.append(Leaf(name, offset, size, code, t.null))
        return
    if isinstance(t, EnumType):
        code, size = PRIMITIVES[t.primitive][:2]
        out.append(Leaf(name, offset, size, code, t.null_value))
        return
    if isinstance(t, SetType):
        code, size = PRIMITIVES[t.primitive][:2]
        out.append(Leaf(name, offset, size, code, None))
        return
    raise ValueError(f"no exact form for type={type(t).__name__}: field={name} fault=ours")


class ExactForm:
    """One message's exact form (see the module doc).

    ``head``: the header bytes; ``size``: header plus block length; ``leaves``: every value of the
    block, in offset order; ``names``: their names (the generated classes' ``UNPACK_NAMES``)."""

    def __init__(self, schema: Schema, message: str) -> None:
        msg = schema.message_by_name(message)
        hvalues = {"blockLength": msg.block_length, "templateId": msg.id, "schemaId": schema.id, "version": schema.version}
        hsize = schema.header.size
        head = bytearray(hsize)
        for m in schema.header.members:
            found: list[Leaf] = []
            _leaf(m.name, m.type, m.offset, found)
            for lf in found:  # none for a constant member
                if lf.name not in hvalues:
                    raise ValueError(f"no exact form for a header member the message does not fix: member={lf.name} fault=ours")
                struct.pack_into(schema.endian + lf.code, head, lf.offset, hvalues[lf.name])
        leaves: list[Leaf] = []
        for f in msg.fields:
            if f.presence != "constant":
                _leaf(f.py or f.name, f.type, hsize + f.offset, leaves)
        self.message = message
        self.endian = schema.endian
        self.head = bytes(head)
        self.size = hsize + msg.block_length
        self.leaves = tuple(leaves)
        self.names = tuple(lf.name for lf in leaves)
        self._by_name = {lf.name: lf for lf in leaves}

    def leaf(self, name: str) -> Leaf:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no such field in the exact form: message={self.message} field={name}") from None

    def span(self, name: str) -> tuple[int, int]:
        """(start, end) of a value in the message, header included."""
        lf = self.leaf(name)
        return lf.offset, lf.offset + lf.size

    def null(self, name: str) -> int | float | None:
        return self.leaf(name).null

    def struct(self, *picks: Union[str, Sequence[str]], head: bool = True) -> struct.Struct:
        """A struct over the message (``head``: from its first byte, the header one bytes value) or
        over its block only (``head=False``: use ``unpack_from(data, len(form.head))``), covering
        its whole length.  ``picks``: the values it reads or writes, in offset order (none: every
        leaf); a tuple of adjacent char arrays is one bytes value; the rest is padding."""
        start = 0 if head else len(self.head)
        fmt = [self.endian]
        if head:
            fmt.append(f"{len(self.head)}s")
        pos = len(self.head)
        for p in picks or self.names:
            group = [self.leaf(n) for n in ((p,) if isinstance(p, str) else p)]
            first, last = group[0], group[-1]
            if first.offset < pos:
                raise ValueError(f"picks out of offset order or overlapping: message={self.message} field={first.name} fault=ours")
            if len(group) > 1:
                if any(lf.code[-1] != "s" for lf in group) or any(
                        a.offset + a.size != b.offset for a, b in zip(group, group[1:])):
                    raise ValueError(f"a joined pick must be adjacent char arrays: message={self.message} "
                                     f"fields={'+'.join(lf.name for lf in group)} fault=ours")
                code = f"{last.offset + last.size - first.offset}s"
            else:
                code = first.code
            if first.offset > pos:
                fmt.append(f"{first.offset - pos}x")
            fmt.append(code)
            pos = last.offset + last.size
        if pos < self.size:
            fmt.append(f"{self.size - pos}x")
        st = struct.Struct("".join(fmt))
        assert st.size == self.size - start
        return st
