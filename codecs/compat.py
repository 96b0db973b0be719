"""Schema evolution check: can code generated from one schema read messages written with another?

:func:`check` compares an OLD and a NEW schema message by message (matched by templateId) in both
directions:

- ``new_by_old``: a message written with NEW, read by code generated from OLD (an old reader meets a
  newer producer: it must find everything it knows where it expects it, and skip the rest);
- ``old_by_new``: a message written with OLD, read by code generated from NEW (a new reader meets an
  older producer: everything NEW added must be newer than OLD's version, so it reads as null).

The rules are the SBE 1.0 evolution rules as sbe-tool's generated code and tickline's decoders apply
them: a reader takes the root block's length and the acting version from the message header and each
group's block length from its dimension header, so fields may be appended to a block (with a
``sinceVersion`` above the old schema's version), groups and var data may be appended at the end of the
message (an old reader stops where it knows to stop), enum values and set choices may be added with a
``sinceVersion`` (old readers see an unknown value, not an error).  Anything else that changes where or how
bytes are read is a break, reported with a ``kind`` and the path of what changed.

Pure: no I/O; the CLI (``tickline sbe-compat``) loads the files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tickline.codecs.ir import (
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
)

NEW_BY_OLD = "new_by_old"
OLD_BY_NEW = "old_by_new"
BOTH = (NEW_BY_OLD, OLD_BY_NEW)


@dataclass(frozen=True)
class Break:
    """One reason a direction breaks: ``kind`` is a stable word for CI rules, ``path`` names the element
    (``Message.group.field``), ``text`` says what happened."""

    kind: str
    path: str
    text: str
    directions: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": self.path, "text": self.text, "directions": list(self.directions)}


@dataclass
class MessageResult:
    name: str
    id: int
    status: str  # common | added | removed
    breaks: list[Break] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def ok(self, direction: str) -> bool:
        return not any(direction in b.directions for b in self.breaks)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "id": self.id, "status": self.status,
                NEW_BY_OLD: self.ok(NEW_BY_OLD), OLD_BY_NEW: self.ok(OLD_BY_NEW),
                "breaks": [b.to_dict() for b in self.breaks], "notes": self.notes}


@dataclass
class Report:
    old_version: int
    new_version: int
    schema_breaks: list[Break]
    messages: list[MessageResult]

    def ok(self, direction: str) -> bool:
        return (not any(direction in b.directions for b in self.schema_breaks)
                and all(m.ok(direction) for m in self.messages))

    @property
    def compatible(self) -> bool:
        return self.ok(NEW_BY_OLD) and self.ok(OLD_BY_NEW)

    def to_dict(self) -> dict[str, Any]:
        return {"compatible": self.compatible, NEW_BY_OLD: self.ok(NEW_BY_OLD), OLD_BY_NEW: self.ok(OLD_BY_NEW),
                "old_version": self.old_version, "new_version": self.new_version,
                "schema_breaks": [b.to_dict() for b in self.schema_breaks],
                "messages": [m.to_dict() for m in self.messages]}

    def format(self) -> str:
        def yes(ok: bool) -> str:
            return "ok" if ok else "BREAKS"

        lines = [f"schema version {self.old_version} -> {self.new_version}: "
                 f"NEW read by OLD {yes(self.ok(NEW_BY_OLD))}, OLD read by NEW {yes(self.ok(OLD_BY_NEW))}"]
        for b in self.schema_breaks:
            lines.append(f"  {b.kind} ({_dirs(b.directions)}): {b.text}")
        for m in self.messages:
            head = f"{m.name} id={m.id}"
            if m.status != "common":
                head += f" ({m.status})"
            lines.append(f"{head}: NEW read by OLD {yes(m.ok(NEW_BY_OLD))}, OLD read by NEW {yes(m.ok(OLD_BY_NEW))}")
            for b in m.breaks:
                lines.append(f"  {b.kind} ({_dirs(b.directions)}): {b.path}: {b.text}")
            for n in m.notes:
                lines.append(f"  note: {n}")
        return "\n".join(lines)


def _dirs(directions: tuple[str, ...]) -> str:
    names = {NEW_BY_OLD: "NEW read by OLD", OLD_BY_NEW: "OLD read by NEW"}
    return ", ".join(names[d] for d in directions)


def type_shape(t: TypeDef | None) -> Any:
    """What a reader depends on in a type: everything that changes the bytes' position, size or meaning
    (names of composite members too: generated code reads them by name)."""
    if t is None:
        return None
    if isinstance(t, EncodedType):
        return ("type", t.primitive, t.length, t.presence == "constant", t.constant if t.presence == "constant" else None,
                t.null if t.presence == "optional" else None)
    if isinstance(t, EnumType):
        return ("enum", t.primitive, t.presence == "constant")
    if isinstance(t, SetType):
        return ("set", t.primitive)
    return ("composite", t.size, tuple((m.name, m.offset, type_shape(m.type)) for m in t.members))


def _describe(t: TypeDef) -> str:
    if isinstance(t, EncodedType):
        s = t.primitive + (f"[{t.length}]" if t.length != 1 else "")
        return s + (f" constant={t.constant!r}" if t.presence == "constant" else "")
    if isinstance(t, EnumType):
        return f"enum {t.name}<{t.primitive}>"
    if isinstance(t, SetType):
        return f"set {t.name}<{t.primitive}>"
    return f"composite {t.name} ({t.size} bytes)"


class _Checker:
    def __init__(self, old: Schema, new: Schema) -> None:
        self.old, self.new = old, new
        self.breaks: list[Break] = []
        self.changed = False  # any layout difference, which needs a version bump to be told apart

    def add(self, kind: str, path: str, text: str, directions: tuple[str, ...]) -> None:
        self.breaks.append(Break(kind, path, text, directions))

    def newer(self, since: int) -> bool:
        """Whether an element NEW added is newer than every message OLD writes (so a NEW reader finds it null)."""
        return since > self.old.version

    # ---- fixed fields ---------------------------------------------------------------------------------

    def block(self, path: str, old_fields: list[Field], new_fields: list[Field], old_len: int, new_len: int) -> None:
        new_by_name = {f.name: f for f in new_fields}
        old_names = {f.name for f in old_fields}
        for of in old_fields:
            p = f"{path}.{of.name}"
            nf = new_by_name.get(of.name)
            if nf is None:
                self.changed = True
                if of.size:
                    self.add("field-removed", p, f"field removed (was at offset={of.offset}): OLD readers read "
                             "whatever NEW writes there", (NEW_BY_OLD,))
                continue
            if type_shape(of.type) != type_shape(nf.type):
                self.changed = True
                self.add("field-retyped", p, f"type changed from {_describe(of.type)} to {_describe(nf.type)}", BOTH)
                continue
            if of.size and of.offset != nf.offset:
                self.changed = True
                self.add("field-moved", p, f"offset changed from {of.offset} to {nf.offset}", BOTH)
            if of.presence == "constant" and nf.presence == "constant" and of.constant != nf.constant:
                self.changed = True
                self.add("field-retyped", p, f"constant value changed from {of.constant!r} to {nf.constant!r}", BOTH)
            elif of.presence != nf.presence and "constant" in (of.presence, nf.presence):
                self.changed = True
                self.add("field-retyped", p, f"presence changed from {of.presence} to {nf.presence}", BOTH)
            else:
                if of.presence == "optional" and nf.presence == "required":
                    self.changed = True
                    self.add("field-presence", p, "optional field made required: OLD writers may write its null value",
                             (OLD_BY_NEW,))
                self.values(p, of.type, nf.type)
        for nf in new_fields:
            if nf.name in old_names:
                continue
            self.changed = True
            p = f"{path}.{nf.name}"
            hit = [of.name for of in old_fields
                   if of.size and nf.size and of.offset < nf.offset + nf.size and nf.offset < of.offset + of.size]
            if hit:
                self.add("field-inserted", p, f"field added at offset={nf.offset} over OLD's field(s) {', '.join(hit)}: "
                         "OLD readers read its bytes as theirs", (NEW_BY_OLD,))
            if nf.presence != "constant" and not self.newer(nf.since_version):
                self.add("field-added-without-sinceVersion", p,
                         f"field added with sinceVersion={nf.since_version}, not above OLD version={self.old.version}: "
                         "NEW readers expect it in OLD messages, which lack it", (OLD_BY_NEW,))
        if new_len < old_len:
            self.changed = True
            self.add("block-shrunk", path, f"blockLength shrunk from {old_len} to {new_len}: OLD readers need "
                     f"{old_len} bytes", (NEW_BY_OLD,))
        elif new_len != old_len:
            self.changed = True

    def values(self, path: str, ot: TypeDef, nt: TypeDef) -> None:
        """Enum values and set choices: added ones must be newer than OLD, removed or renumbered ones break."""
        if isinstance(ot, EnumType) and isinstance(nt, EnumType):
            self.named(path, f"enum {nt.name}", "enum-value", "value",
                       {v.name: (v.value, v.since_version) for v in ot.values},
                       {v.name: (v.value, v.since_version) for v in nt.values})
            if ot.null_value != nt.null_value:
                self.changed = True
                self.add("enum-null-changed", path, f"enum {nt.name} null value changed from {ot.null_value} to "
                         f"{nt.null_value}", BOTH)
        elif isinstance(ot, SetType) and isinstance(nt, SetType):
            self.named(path, f"set {nt.name}", "set-choice", "bit",
                       {c.name: (c.bit, c.since_version) for c in ot.choices},
                       {c.name: (c.bit, c.since_version) for c in nt.choices})
        elif isinstance(ot, CompositeType) and isinstance(nt, CompositeType):
            for om in ot.members:
                nm = nt.member(om.name)
                if nm is not None:
                    self.values(f"{path}.{om.name}", om.type, nm.type)

    def named(self, path: str, what: str, kind: str, unit: str, old: dict[str, tuple[int, int]],
              new: dict[str, tuple[int, int]]) -> None:
        """Named numbers (an enum's values, a set's choice bits), as ``name -> (number, sinceVersion)``."""
        for name, (number, _) in old.items():
            if name not in new:
                self.changed = True
                self.add(f"{kind}-removed", path, f"{what} {name} ({unit} {number}) removed: OLD writers may still "
                         "send it", (OLD_BY_NEW,))
            elif new[name][0] != number:
                self.changed = True
                self.add(f"{kind}-changed", path, f"{what} {name} changed from {unit} {number} to {new[name][0]}", BOTH)
        for name, (number, since) in new.items():
            if name in old:
                continue
            self.changed = True
            if not self.newer(since):
                self.add(f"{kind}-added-without-sinceVersion", path,
                         f"{what} {name} ({unit} {number}) added with sinceVersion={since}, not above OLD "
                         f"version={self.old.version}", (NEW_BY_OLD,))

    # ---- groups and var data ----------------------------------------------------------------------------

    def rest(self, path: str, old_groups: list[Group], new_groups: list[Group], old_data: list[VarData],
             new_data: list[VarData], top: bool) -> None:
        """Groups then var data.  Only the message's end is open: an OLD reader stops after the last part it
        knows and skips the rest, but inside a group entry (``top`` false) it cannot tell where the next
        entry starts, and after OLD's last group comes OLD's var data."""
        self.parts(path, "group", [g.name for g in old_groups], [g.name for g in new_groups],
                   {g.name: g.since_version for g in new_groups},
                   open_end=top and not old_data)
        self.parts(path, "var data", [d.name for d in old_data], [d.name for d in new_data],
                   {d.name: d.since_version for d in new_data}, open_end=top)
        new_g = {g.name: g for g in new_groups}
        for og in old_groups:
            ng = new_g.get(og.name)
            if ng is not None:
                self.group(f"{path}.{og.name}", og, ng)
        new_d = {d.name: d for d in new_data}
        for od in old_data:
            nd = new_d.get(od.name)
            if nd is not None and type_shape(od.type) != type_shape(nd.type):
                self.changed = True
                self.add("var-data-retyped", f"{path}.{od.name}", f"length encoding changed from "
                         f"{_describe(od.type)} to {_describe(nd.type)}", BOTH)

    def parts(self, path: str, what: str, old: list[str], new: list[str], since: dict[str, int], open_end: bool) -> None:
        kind = "group" if what == "group" else "var-data"
        common_new = [n for n in new if n in old]
        common_old = [n for n in old if n in new]
        if common_new != common_old:
            self.changed = True
            self.add(f"{kind}-reordered", path, f"{what} order changed from {common_old} to {common_new}", BOTH)
        for name in old:
            if name not in new:
                self.changed = True
                self.add(f"{kind}-removed", f"{path}.{name}", f"{what} removed: OLD readers expect it in NEW "
                         "messages and NEW readers cannot skip it in OLD ones", BOTH)
        last_old = max((new.index(n) for n in common_new), default=-1)
        for i, name in enumerate(new):
            if name in old:
                continue
            self.changed = True
            p = f"{path}.{name}"
            if i < last_old:
                self.add(f"{kind}-inserted", p, f"{what} added before {what}s OLD knows: OLD readers read it as "
                         "theirs", (NEW_BY_OLD,))
            elif not open_end:
                where = "a group entry" if path.count(".") else "the message's groups, before OLD's var data"
                self.add(f"{kind}-added-not-at-end", p, f"{what} added inside {where}: OLD readers cannot skip it",
                         (NEW_BY_OLD,))
            if not self.newer(since[name]):
                self.add(f"{kind}-added-without-sinceVersion", p,
                         f"{what} added with sinceVersion={since[name]}, not above OLD version={self.old.version}: "
                         "NEW readers expect it in OLD messages", (OLD_BY_NEW,))

    def group(self, path: str, og: Group, ng: Group) -> None:
        if type_shape(og.dimension) != type_shape(ng.dimension):
            self.changed = True
            self.add("group-retyped", path, f"dimension changed from {_describe(og.dimension)} to "
                     f"{_describe(ng.dimension)}", BOTH)
        self.block(path, og.fields, ng.fields, og.block_length, ng.block_length)
        self.rest(path, og.groups, ng.groups, og.data, ng.data, top=False)

    def message(self, om: Message, nm: Message) -> None:
        if om.name != nm.name:
            self.changed = True
        self.block(om.name, om.fields, nm.fields, om.block_length, nm.block_length)
        self.rest(om.name, om.groups, nm.groups, om.data, nm.data, top=True)


def _schema_breaks(old: Schema, new: Schema) -> list[Break]:
    out: list[Break] = []
    if old.id != new.id:
        out.append(Break("schema-id-changed", "messageSchema", f"schema id changed from {old.id} to {new.id}: "
                         "readers refuse the other's messages", BOTH))
    if old.byte_order != new.byte_order:
        out.append(Break("byte-order-changed", "messageSchema", f"byteOrder changed from {old.byte_order} to "
                         f"{new.byte_order}", BOTH))
    if type_shape(old.header) != type_shape(new.header):
        out.append(Break("header-changed", "messageHeader", f"message header changed from {_describe(old.header)} "
                         f"to {_describe(new.header)}", BOTH))
    if new.version < old.version:
        out.append(Break("version-decreased", "messageSchema", f"version went down from {old.version} to "
                         f"{new.version}", BOTH))
    return out


def check(old: Schema, new: Schema) -> Report:
    """Compare two schemas; see the module doc for the rules and directions."""
    results: list[MessageResult] = []
    new_by_id = {m.id: m for m in new.messages}
    old_ids = {m.id for m in old.messages}
    for om in old.messages:
        nm = new_by_id.get(om.id)
        if nm is None:
            results.append(MessageResult(om.name, om.id, "removed", [Break(
                "message-removed", om.name, f"templateId={om.id} is not in NEW: NEW readers cannot read OLD's "
                "messages of it", (OLD_BY_NEW,))]))
            continue
        checker = _Checker(old, new)
        checker.message(om, nm)
        result = MessageResult(nm.name, nm.id, "common", checker.breaks)
        if om.name != nm.name:
            result.notes.append(f"renamed from {om.name}")
        if checker.changed and new.version <= old.version:
            # Without a higher version in NEW's header, a NEW reader cannot tell an OLD message from a NEW one,
            # and reads what NEW added (or moved) from OLD's bytes.
            result.breaks.append(Break("version-not-increased", nm.name,
                                       f"the message changed but the schema version stayed {new.version} "
                                       f"(OLD version={old.version})", (OLD_BY_NEW,)))
        results.append(result)
    for nm in new.messages:
        if nm.id not in old_ids:
            results.append(MessageResult(nm.name, nm.id, "added", notes=[
                f"templateId={nm.id} is new: OLD readers do not know it and skip it as an unknown template"]))
    return Report(old.version, new.version, _schema_breaks(old, new), results)
