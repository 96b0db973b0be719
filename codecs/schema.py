"""Parse and validate an SBE XML schema into the IR (:mod:`tickline.codecs.ir`).

Entry points: :func:`load_schema` (a file; XIncludes next to it are allowed),
:func:`load_builtin` (one of tickline's own schemas) and :func:`parse_schema`
(a :class:`~tickline.codecs.safexml.Node` tree).

Every rule below raises :class:`SchemaError` naming file, line and element:

- unknown type references (field, ref, enum/set encodingType, dimensionType,
  var data type, headerType, valueRef);
- duplicate names (types, messages, members, fields/groups/data of one
  block, validValues, choices) and duplicate ids (messages, fields of one
  block, validValue values, choice bits);
- offsets that overlap (explicit ``offset`` before the end of the previous
  member) and ``blockLength`` attributes too small for the fields;
- fields after groups or var data, groups after var data;
- malformed or out-of-range ``nullValue``/``minValue``/``maxValue``/constant
  values, a ``nullValue`` on a type that is not optional;
- any ``sinceVersion`` greater than the schema's ``version``;
- names not valid as identifiers, and type or message names that would
  become the same class in generated code.

Warnings (errors with ``strict=True``): field, group, var data and composite
member names that would clash in generated code -- Python keywords, names the
flyweights use themselves (``header``, ``wrap``, private ``_x``), two names
with the same snake_case form, a name meeting a generated method
(``fills_count``).  sbe-tool accepts these; the generator mangles the name
(:func:`tickline.codecs.naming.assign`) and the JSON form keeps the schema's.

Also as sbe-tool: a var data type's ``varData`` member is the variable part
whatever ``length`` it declares, and a header may fix ``schemaId`` or
``version`` as constants different from the schema's (no schema id is then
checked when decoding; the constant version is the acting version).
"""

from __future__ import annotations

import importlib.resources
import os
import pathlib
import shutil
import tempfile
from collections.abc import Sequence

from tickline.codecs import naming
from tickline.codecs.errors import SchemaWarning
from tickline.codecs.ir import (
    INT_RANGE,
    PRIMITIVES,
    Choice,
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
    ValidValue,
    VarData,
    is_float,
)
from tickline.codecs.safexml import DEFAULT_LIMITS, Limits, Node, load

_TYPE_TAGS = ("type", "composite", "enum", "set")
# Composites referring to composites: bounds the resolver's recursion (real schemas nest 2 or 3 deep).
_MAX_TYPE_DEPTH = 64


def load_schema(path: str | os.PathLike[str], *, strict: bool = False, limits: Limits = DEFAULT_LIMITS) -> Schema:
    """Parse, lay out and validate the schema at ``path``.

    ``strict`` turns warnings into errors; ``limits`` caps what the file and its includes may
    cost to read (:class:`~tickline.codecs.safexml.Limits`).  Raises :class:`SchemaError`.
    Warnings are collected in ``Schema.warnings`` (one message each).
    """
    root = load(path, limits)
    return parse_schema(root, strict=strict)


def load_builtin(name: str, *, strict: bool = True) -> Schema:
    """Load one of tickline's own schemas from ``tickline.schemas`` (e.g. ``"market_data.xml"``)."""
    res = importlib.resources.files("tickline.schemas")
    if isinstance(res, pathlib.Path):
        return load_schema(res / name, strict=strict)
    # Zipped or otherwise virtual package: copy the XML next to each other first (XInclude needs a directory).
    with tempfile.TemporaryDirectory() as tmp:
        for entry in res.iterdir():
            if entry.name.endswith(".xml"):
                with entry.open("rb") as src, open(os.path.join(tmp, entry.name), "wb") as dst:
                    shutil.copyfileobj(src, dst)
        return load_schema(os.path.join(tmp, name), strict=strict)


def parse_schema(root: Node, *, strict: bool = False) -> Schema:
    return _SchemaParser(root, strict).parse()


def _int_attr(node: Node, key: str, default: int | None = None, *, minimum: int | None = 0) -> int:
    raw = node.get(key)
    if raw is None:
        if default is None:
            raise node.error(f"missing required attribute {key}")
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise node.error(f"attribute {key}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise node.error(f"attribute {key}={value} must be >= {minimum}")
    return value


def _req(node: Node, key: str) -> str:
    raw = node.get(key)
    if raw is None or raw.strip() == "":
        raise node.error(f"missing required attribute {key}")
    return raw.strip()


def _opt_int(node: Node, key: str) -> int | None:
    if node.get(key) is None:
        return None
    return _int_attr(node, key)


class _SchemaParser:
    def __init__(self, root: Node, strict: bool) -> None:
        self.root = root
        self.strict = strict
        self.file = root.file
        self.warnings: list[str] = []
        self.type_nodes: dict[str, Node] = {}
        self.types: dict[str, TypeDef] = {}
        self.resolving: list[str] = []
        self.version = 0

    # -- helpers ---------------------------------------------------------------------------

    def warn(self, node: Node, reason: str) -> None:
        if self.strict:
            raise node.error(reason + " (an error in strict mode)")
        self.warnings.append(str(SchemaWarning(reason, file=node.file, line=node.line, element=node.tag, name=node.get("name"))))

    def since(self, node: Node) -> int:
        v = _int_attr(node, "sinceVersion", 0)
        if v > self.version:
            raise node.error(f"sinceVersion={v} is greater than the schema version={self.version}")
        return v

    def name(self, node: Node) -> str:
        n = _req(node, "name")
        if not naming.is_identifier(n):
            raise node.error(f"name={n!r} is not usable as an identifier in generated code")
        return n

    # -- schema ----------------------------------------------------------------------------

    def parse(self) -> Schema:
        root = self.root
        if root.tag != "messageSchema":
            raise root.error("the root element must be messageSchema")
        schema_id = _int_attr(root, "id")
        self.version = _int_attr(root, "version", 0)
        byte_order = root.get("byteOrder", "littleEndian")
        if byte_order not in ("littleEndian", "bigEndian"):
            raise root.error(f"byteOrder={byte_order} must be littleEndian or bigEndian")
        for types_node in root.children:
            if types_node.tag != "types":
                continue
            for tn in types_node.children:
                if tn.tag not in _TYPE_TAGS:
                    raise tn.error(f"unexpected element inside types: {tn.tag}")
                n = self.name(tn)
                if n in self.type_nodes or n in PRIMITIVES:
                    other = self.type_nodes.get(n)
                    where = f" (first defined at line={other.line} file={other.file})" if other else " (a primitive type)"
                    raise tn.error(f"duplicate type name={n}{where}")
                self.type_nodes[n] = tn
        for n in self.type_nodes:
            self.resolve(n, self.type_nodes[n])
        header_name = root.get("headerType", "messageHeader") or "messageHeader"
        header = self.types.get(header_name)
        if not isinstance(header, CompositeType):
            raise root.error(f"headerType={header_name} does not name a composite type")
        for member in ("blockLength", "templateId", "schemaId", "version"):
            m = header.member(member)
            if m is None or not isinstance(m.type, EncodedType) or m.type.primitive not in INT_RANGE or m.type.length != 1:
                raise self.type_nodes[header_name].error(f"header composite needs an integer member {member}")
        for member, value, key in (("schemaId", schema_id, "id"), ("version", self.version, "version")):
            m = header.member(member)
            assert m is not None and isinstance(m.type, EncodedType)
            if value > INT_RANGE[m.type.primitive][1]:
                raise root.error(f"{key}={value} does not fit the header's {member} ({m.type.primitive})")
        self._check_class_names()
        messages: list[Message] = []
        seen_ids: dict[int, Node] = {}
        seen_classes: dict[str, Node] = {}  # the class name each message takes -> its element
        type_classes = {naming.pascal(k) for k, t in self.types.items() if not isinstance(t, EncodedType)}
        for mn in root.children:
            if mn.tag != "message":
                continue
            msg = self.message(mn, header)
            if msg.id in seen_ids:
                raise mn.error(f"duplicate message id={msg.id} (also at line={seen_ids[msg.id].line})")
            cls = naming.pascal(msg.name)
            if cls in seen_classes:
                raise mn.error(f"duplicate message name={msg.name} (as class {cls}, also at line={seen_classes[cls].line})")
            if cls in type_classes:
                raise mn.error(f"message name={msg.name} collides with a type of the same name in generated code")
            seen_ids[msg.id] = mn
            seen_classes[cls] = mn
            messages.append(msg)
        return Schema(
            package=root.get("package"), id=schema_id, version=self.version,
            semantic_version=root.get("semanticVersion"), byte_order=byte_order, header=header,
            types=self.types, messages=messages, description=root.get("description"),
            file=self.file, warnings=self.warnings,
        )

    def _check_class_names(self) -> None:
        seen: dict[str, str] = {}
        owners: dict[str, int] = {}  # class name -> id() of the type that takes it
        for n, t in self.types.items():
            if isinstance(t, EncodedType):
                continue
            cls = naming.pascal(n)
            if cls in naming.RESERVED_CLASSES or cls.endswith(("Decoder", "Encoder")):
                raise self.type_nodes[n].error(f"type name={n} would collide with a name in generated code (class {cls})")
            if cls in seen:
                raise self.type_nodes[n].error(f"type name={n} and name={seen[cls]} both become class {cls} in generated code")
            seen[cls] = n
            owners[cls] = id(t)
        # Enums, sets and composites defined inside a composite become classes too.
        for n, t in self.types.items():
            if isinstance(t, CompositeType):
                self._check_inline(n, t, seen, owners)

    def _check_inline(self, top: str, comp: CompositeType, seen: dict[str, str], owners: dict[str, int]) -> None:
        for m in comp.members:
            t = m.type
            if isinstance(t, EncodedType):
                continue
            cls = naming.pascal(t.name)
            if owners.get(cls, id(t)) != id(t):
                raise self.type_nodes[top].error(
                    f"type name={t.name} defined inside composite {comp.name} (line={t.line}) and type "
                    f"name={seen[cls]} both become class {cls} in generated code")
            if cls in naming.RESERVED_CLASSES or cls.endswith(("Decoder", "Encoder")):
                raise self.type_nodes[top].error(f"type name={t.name} would collide with a name in generated code (class {cls})")
            seen.setdefault(cls, t.name)
            owners[cls] = id(t)
            if isinstance(t, CompositeType):
                self._check_inline(top, t, seen, owners)

    # -- types -----------------------------------------------------------------------------

    def resolve(self, name: str, node: Node | None) -> TypeDef:
        if name in self.types:
            return self.types[name]
        if node is None:
            node = self.type_nodes.get(name)
            if node is None:
                prim = PRIMITIVES.get(name)
                if prim is None:
                    raise KeyError(name)
                return EncodedType(name=name, primitive=name)
        if name in self.resolving:
            raise node.error(f"type name={name} refers to itself (cycle: {' -> '.join(self.resolving + [name])})")
        if len(self.resolving) >= _MAX_TYPE_DEPTH:
            raise node.error(f"types nested deeper than {_MAX_TYPE_DEPTH} (a composite referring to a composite ... "
                             f"from {self.resolving[0]})")
        self.resolving.append(name)
        try:
            t = self.typedef(node)
        finally:
            self.resolving.pop()
        self.types[name] = t
        return t

    def lookup(self, node: Node, key: str) -> TypeDef:
        ref = _req(node, key)
        try:
            return self.resolve(ref, None)
        except KeyError:
            raise node.error(f"unknown type reference {key}={ref}") from None

    def typedef(self, node: Node) -> TypeDef:
        if node.tag == "type":
            return self.encoded(node)
        if node.tag == "composite":
            return self.composite(node)
        if node.tag == "enum":
            return self.enum(node)
        if node.tag == "set":
            return self.set(node)
        raise node.error(f"unexpected element {node.tag}")

    def number(self, node: Node, key: str, primitive: str, text: str) -> int | float:
        text = text.strip()
        if is_float(primitive):
            try:
                return float(text)
            except ValueError:
                raise node.error(f"{key}={text!r} is not a valid {primitive}") from None
        if primitive == "char" and len(text) == 1 and not text.isdigit():
            return ord(text)
        try:
            value = int(text, 0) if text.lower().startswith(("0x", "-0x")) else int(text)
        except ValueError:
            raise node.error(f"{key}={text!r} is not a valid {primitive}") from None
        lo, hi = INT_RANGE[primitive]
        if not lo <= value <= hi:
            raise node.error(f"{key}={value} is out of range for {primitive} [{lo}, {hi}]")
        return value

    def encoded(self, node: Node) -> EncodedType:
        name = self.name(node)
        prim = _req(node, "primitiveType")
        if prim not in PRIMITIVES:
            raise node.error(f"unknown primitiveType={prim}")
        length = _int_attr(node, "length", 1)
        presence = node.get("presence", "required")
        if presence not in ("required", "optional", "constant"):
            raise node.error(f"presence={presence} must be required, optional or constant")
        t = EncodedType(
            name=name, primitive=prim, length=length, presence=presence,
            character_encoding=node.get("characterEncoding"), since_version=self.since(node),
            deprecated=_opt_int(node, "deprecated"), semantic_type=node.get("semanticType"),
            description=node.get("description"), offset_attr=_opt_int(node, "offset"), line=node.line,
        )
        if t.character_encoding is not None:
            try:
                "".encode(_py_encoding(t.character_encoding))
            except LookupError:
                raise node.error(f"unknown characterEncoding={t.character_encoding}") from None
        for key in ("minValue", "maxValue", "nullValue"):
            raw = node.get(key)
            if raw is None:
                continue
            if key == "nullValue" and presence != "optional":
                raise node.error(f"nullValue={raw} given but presence={presence} (only optional types have a null value)")
            value = self.number(node, key, prim, raw)
            setattr(t, {"minValue": "min_value", "maxValue": "max_value", "nullValue": "null_value"}[key], value)
        if t.null_value is not None and not is_float(prim) and t.min_value is not None and t.max_value is not None:
            if t.min_value <= t.null_value <= t.max_value:
                raise node.error(f"nullValue={t.null_value} lies inside [minValue, maxValue]; it would be a valid value")
        if presence == "constant":
            t.constant = self.constant_value(node, t)
        return t

    def constant_value(self, node: Node, t: EncodedType) -> int | float | str:
        value_ref = node.get("valueRef")
        text = node.text
        if value_ref is not None:
            enum_t, vv = self.value_ref(node, value_ref)
            if t.primitive == "char":
                return chr(vv.value)
            return vv.value
        if t.primitive == "char":
            if text == "":
                raise node.error("constant char type has no value (put it in the element's text)")
            # sbe-tool accepts a longer constant on a length=1 char type (the Car example's fuel="Petrol").
            if t.length > 1 and len(text.encode(_py_encoding(t.character_encoding), errors="replace")) > t.length:
                raise node.error(f"constant value={text!r} is longer than length={t.length}")
            return text
        if text.strip() == "":
            raise node.error("constant type has no value (put it in the element's text)")
        if t.length != 1:
            raise node.error("constant arrays are supported for char types only")
        return self.number(node, "constant", t.primitive, text)

    def value_ref(self, node: Node, ref: str) -> tuple[EnumType, ValidValue]:
        if "." not in ref:
            raise node.error(f"valueRef={ref} must be EnumName.ValueName")
        enum_name, value_name = ref.split(".", 1)
        try:
            enum_t = self.resolve(enum_name, None)
        except KeyError:
            raise node.error(f"unknown type reference valueRef={ref}") from None
        if not isinstance(enum_t, EnumType):
            raise node.error(f"valueRef={ref} does not refer to an enum")
        for vv in enum_t.values:
            if vv.name == value_name:
                return enum_t, vv
        raise node.error(f"valueRef={ref}: enum {enum_name} has no validValue {value_name}")

    def encoding_primitive(self, node: Node, allowed: tuple[str, ...]) -> tuple[str, int | None]:
        enc = _req(node, "encodingType")
        if enc in PRIMITIVES:
            prim, null = enc, None
        else:
            try:
                et = self.resolve(enc, None)
            except KeyError:
                raise node.error(f"unknown type reference encodingType={enc}") from None
            if not isinstance(et, EncodedType) or et.length != 1:
                raise node.error(f"encodingType={enc} must be a primitive or a non-array type")
            prim = et.primitive
            null = int(et.null_value) if et.null_value is not None else None
        if prim not in allowed:
            raise node.error(f"encodingType={enc} ({prim}) is not allowed here; use one of {', '.join(allowed)}")
        return prim, null

    def enum(self, node: Node) -> EnumType:
        name = self.name(node)
        prim, null = self.encoding_primitive(node, ("char", "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64"))
        values: list[ValidValue] = []
        names: set[str] = set()
        raws: dict[int, str] = {}
        for vn in node.children:
            if vn.tag != "validValue":
                raise vn.error("only validValue elements may appear in an enum")
            vname = self.name(vn)
            text = vn.text.strip()
            if prim == "char":
                if len(text) != 1:
                    raise vn.error(f"char enum value={text!r} must be exactly one character")
                raw = ord(text)
                if raw > 0xFF:
                    raise vn.error(f"char enum value={text!r} is not a single byte")
            else:
                raw = int(self.number(vn, "value", prim, text))
            if vname in names:
                raise vn.error(f"duplicate validValue name={vname} in enum {name}")
            if raw in raws:
                raise vn.error(f"duplicate validValue value={text} in enum {name} (also {raws[raw]})")
            names.add(vname)
            raws[raw] = vname
            values.append(ValidValue(vname, raw, self.since(vn), _opt_int(vn, "deprecated"), vn.get("description")))
        if not values:
            raise node.error(f"enum {name} has no validValue")
        null_value = null if null is not None else int(PRIMITIVES[prim][4])
        if null_value in raws:
            raise node.error(f"validValue {raws[null_value]} uses the null value {null_value} of the encoding")
        presence = node.get("presence") or "required"
        return EnumType(name, prim, values, null_value, presence, self.since(node), _opt_int(node, "deprecated"),
                        node.get("description"), _opt_int(node, "offset"), node.line)

    def set(self, node: Node) -> SetType:
        name = self.name(node)
        prim, _null = self.encoding_primitive(node, ("uint8", "uint16", "uint32", "uint64"))
        bits = PRIMITIVES[prim][1] * 8
        choices: list[Choice] = []
        names: set[str] = set()
        used: dict[int, str] = {}
        for cn in node.children:
            if cn.tag != "choice":
                raise cn.error("only choice elements may appear in a set")
            cname = self.name(cn)
            try:
                bit = int(cn.text.strip())
            except ValueError:
                raise cn.error(f"choice bit={cn.text.strip()!r} is not an integer") from None
            if not 0 <= bit < bits:
                raise cn.error(f"choice bit={bit} is out of range for {prim} [0, {bits - 1}]")
            if cname in names:
                raise cn.error(f"duplicate choice name={cname} in set {name}")
            if bit in used:
                raise cn.error(f"duplicate choice bit={bit} in set {name} (also {used[bit]})")
            names.add(cname)
            used[bit] = cname
            choices.append(Choice(cname, bit, self.since(cn), _opt_int(cn, "deprecated"), cn.get("description")))
        return SetType(name, prim, choices, "required", self.since(node), _opt_int(node, "deprecated"),
                       node.get("description"), _opt_int(node, "offset"), node.line)

    def composite(self, node: Node) -> CompositeType:
        name = self.name(node)
        members: list[Member] = []
        seen: dict[str, Node] = {}
        offset = 0
        for mn in node.children:
            if mn.tag == "ref":
                mname = self.name(mn)
                t = self.lookup(mn, "type")
                explicit = _opt_int(mn, "offset")
            elif mn.tag in _TYPE_TAGS:
                mname = self.name(mn)
                t = self.typedef(mn)
                explicit = t.offset_attr
            else:
                raise mn.error(f"unexpected element {mn.tag} inside composite {name}")
            if mname in seen:
                raise mn.error(f"duplicate member name={mname} in composite {name}")
            seen[mname] = mn
            if explicit is not None:
                if explicit < offset:
                    raise mn.error(f"offset={explicit} overlaps the previous member, which ends at offset={offset}")
                offset = explicit
            members.append(Member(mname, t, offset))
            size = t.size
            if isinstance(t, EncodedType) and t.length == 0:
                size = 0
            offset += size
        if not members:
            raise node.error(f"composite {name} has no members")
        self.name_elements(members, ["enum" if isinstance(m.type, EnumType) else "member" for m in members], seen,
                           naming.RESERVED_COMPOSITE_MEMBERS)
        return CompositeType(name, members, offset, node.get("presence") or "required", self.since(node),
                             _opt_int(node, "deprecated"), node.get("description"), node.get("semanticType"),
                             _opt_int(node, "offset"), node.line)

    # -- messages ----------------------------------------------------------------------------

    def message(self, node: Node, header: CompositeType) -> Message:
        name = self.name(node)
        mid = _int_attr(node, "id")
        tid = header.member("templateId")
        assert tid is not None and isinstance(tid.type, EncodedType)
        if mid > INT_RANGE[tid.type.primitive][1]:
            raise node.error(f"id={mid} does not fit the header's templateId ({tid.type.primitive})")
        since = self.since(node)
        fields, groups, data, computed = self.block(node, since)
        block_length = self.block_length(node, computed)
        bl = header.member("blockLength")
        assert bl is not None and isinstance(bl.type, EncodedType)
        if block_length > INT_RANGE[bl.type.primitive][1]:
            raise node.error(f"blockLength={block_length} does not fit the header's blockLength ({bl.type.primitive})")
        return Message(name, mid, block_length, fields, groups, data, since, _opt_int(node, "deprecated"),
                       node.get("semanticType"), node.get("description"), node.line)

    def block_length(self, node: Node, computed: int) -> int:
        explicit = _opt_int(node, "blockLength")
        if explicit is None:
            return computed
        if explicit < computed:
            raise node.error(f"blockLength={explicit} is less than the fields need (computed={computed})")
        return explicit

    def block(self, node: Node, parent_since: int) -> tuple[list[Field], list[Group], list[VarData], int]:
        fields: list[Field] = []
        groups: list[Group] = []
        data: list[VarData] = []
        names: dict[str, Node] = {}
        ids: dict[int, Node] = {}
        stage = 0  # 0 fields, 1 groups, 2 data
        offset = 0
        for child in node.children:
            if child.tag not in ("field", "group", "data"):
                raise child.error(f"unexpected element {child.tag} inside {node.tag} (expected field, group or data)")
            cname = self.name(child)
            if cname in names:
                raise child.error(f"duplicate name={cname} in {node.tag} {node.get('name')} (also at line={names[cname].line})")
            names[cname] = child
            cid = _int_attr(child, "id")
            if cid in ids:
                raise child.error(f"duplicate id={cid} in {node.tag} {node.get('name')} (also name={ids[cid].get('name')})")
            ids[cid] = child
            since = self.since(child)
            if child.tag == "field":
                if stage == 1:
                    raise child.error("field after a group (fields must come before groups and var data)")
                if stage == 2:
                    raise child.error("field after var data (fields must come before groups and var data)")
                f = self.field(child, cname, cid, since)
                explicit = _opt_int(child, "offset")
                if explicit:  # sbe-tool treats offset="0" like no offset
                    if explicit < offset:
                        raise child.error(f"offset={explicit} overlaps the previous field, which ends at offset={offset}")
                    offset = explicit
                f.offset = offset
                offset += f.size
                fields.append(f)
            elif child.tag == "group":
                if stage == 2:
                    raise child.error("group after var data (groups must come before var data)")
                stage = 1
                groups.append(self.group(child, cname, cid, since))
            else:
                stage = 2
                data.append(self.var_data(child, cname, cid, since))
        elements: list[Field | Group | VarData] = [*fields, *groups, *data]
        kinds = ["enum" if isinstance(f.type, EnumType) else "field" for f in fields] + ["group"] * len(groups) + ["data"] * len(data)
        self.name_elements(elements, kinds, names, naming.RESERVED_MEMBERS)
        return fields, groups, data, offset

    def name_elements(self, elements: Sequence[Field | Group | VarData | Member], kinds: list[str],
                      nodes: dict[str, Node], reserved: frozenset[str]) -> None:
        """Give each element its name in generated code; a mangled name is a warning, never an error."""
        for el, (py, why) in zip(elements, naming.assign([(k, el.name) for k, el in zip(kinds, elements)], reserved)):
            el.py = py
            if why is not None:
                self.warn(nodes[el.name], f"{why}; the generated property is {py}")

    def field(self, node: Node, name: str, fid: int, since: int) -> Field:
        t = self.lookup(node, "type")
        if isinstance(t, EncodedType) and t.length == 0 or isinstance(t, CompositeType) and _is_var(t):
            raise node.error(f"type={node.get('type')} is variable length; use a data element, not a field")
        presence = node.get("presence")
        if presence is not None and presence not in ("required", "optional", "constant"):
            raise node.error(f"presence={presence} must be required, optional or constant")
        type_presence = getattr(t, "presence", "required")
        constant: int | float | str | None = None
        value_ref = node.get("valueRef")
        if presence == "constant" or type_presence == "constant":
            if value_ref is not None:
                enum_t, vv = self.value_ref(node, value_ref)
                if isinstance(t, EnumType):
                    if t is not enum_t:
                        raise node.error(f"valueRef={value_ref} names enum {enum_t.name} but the field's type is {t.name}")
                    constant = vv.name
                elif isinstance(t, EncodedType):
                    constant = chr(vv.value) if t.primitive == "char" else vv.value
                else:
                    raise node.error("valueRef on a field needs an enum or a primitive type")
            elif isinstance(t, EncodedType) and t.presence == "constant":
                constant = t.constant
            else:
                raise node.error("constant field needs valueRef=Enum.Value (or a constant type)")
            presence = "constant"
        elif value_ref is not None:
            raise node.error(f"valueRef={value_ref} given but presence is not constant")
        elif presence is None:
            presence = "required" if isinstance(t, (CompositeType, SetType)) else type_presence
        if presence == "optional" and isinstance(t, (CompositeType, SetType)):
            presence = "required"  # optional composites and sets are expressed by their members/bits
        return Field(name, fid, t, 0, presence, since, _opt_int(node, "deprecated"), constant,
                     node.get("semanticType"), node.get("description"), node.line)

    def group(self, node: Node, name: str, gid: int, since: int) -> Group:
        dim_name = node.get("dimensionType", "groupSizeEncoding") or "groupSizeEncoding"
        try:
            dim = self.resolve(dim_name, None)
        except KeyError:
            raise node.error(f"unknown type reference dimensionType={dim_name}") from None
        if not isinstance(dim, CompositeType):
            raise node.error(f"dimensionType={dim_name} must be a composite")
        for member in ("blockLength", "numInGroup"):
            m = dim.member(member)
            if m is None or not isinstance(m.type, EncodedType) or m.type.primitive not in INT_RANGE or m.type.primitive == "char":
                raise node.error(f"dimensionType={dim_name} needs an integer member {member}")
        fields, groups, data, computed = self.block(node, since)
        block_length = self.block_length(node, computed)
        return Group(name, gid, dim, block_length, fields, groups, data, since, _opt_int(node, "deprecated"),
                     node.get("description"), node.line)

    def var_data(self, node: Node, name: str, did: int, since: int) -> VarData:
        t = self.lookup(node, "type")
        # Like sbe-tool, the varData member is the variable part whatever length it declares (real schemas
        # often leave out length="0"); only the length member's type matters on the wire.
        if not isinstance(t, CompositeType) or t.member("length") is None or t.member("varData") is None:
            raise node.error(f"type={node.get('type')} must be a composite with members length and varData")
        data = t.member("varData")
        assert data is not None
        if not isinstance(data.type, EncodedType):
            raise node.error(f"type={t.name}: the varData member must be a primitive type")
        length = t.member("length")
        assert length is not None
        if not isinstance(length.type, EncodedType) or length.type.primitive not in ("uint8", "uint16", "uint32"):
            raise node.error(f"type={t.name}: the length member must be uint8, uint16 or uint32")
        return VarData(name, did, t, since, _opt_int(node, "deprecated"), node.get("description"), node.line)


def _is_var(t: CompositeType) -> bool:
    m = t.member("varData")
    return m is not None and isinstance(m.type, EncodedType) and m.type.length == 0 and t.member("length") is not None


_ENCODINGS = {"ASCII": "ascii", "US-ASCII": "ascii", "UTF-8": "utf-8", "UTF8": "utf-8", "ISO-8859-1": "latin-1"}


def py_encoding(name: str | None) -> str:
    """Python codec name for an SBE characterEncoding (US-ASCII when absent)."""
    if name is None:
        return "ascii"
    return _ENCODINGS.get(name.upper(), name)


_py_encoding = py_encoding
