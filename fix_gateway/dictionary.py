"""FIX data dictionaries in QuickFIX's XML format, and message validation.

A dictionary is read once (``load_dictionary("FIX44")`` or a path) into
plain lookup tables: components are flattened into the messages that use
them, so validation is a walk over the message's fields with set lookups.

FIX 4.x uses one dictionary for everything.  FIXT.1.1 splits it: the
transport dictionary (FIXT11) holds header, trailer and session messages,
the application dictionary (FIX50SP2) the business messages; ``Validator``
takes both (the same object twice for FIX 4.x).

A failed check is a ``ValidationError`` carrying the SessionRejectReason
(373) and the offending tag (371), which is what the session puts in its
Reject (35=3).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .codec import FixMessage

__all__ = [
    "FieldDef",
    "GroupDef",
    "Layout",
    "MessageDef",
    "DataDictionary",
    "DictionaryError",
    "ValidationConfig",
    "ValidationError",
    "Validator",
    "load_dictionary",
    "spec_dir",
    "SessionRejectReason",
]


class SessionRejectReason:
    """Values of SessionRejectReason (373) the gateway sends."""

    INVALID_TAG_NUMBER = 0
    REQUIRED_TAG_MISSING = 1
    TAG_NOT_DEFINED_FOR_MESSAGE_TYPE = 2
    UNDEFINED_TAG = 3
    TAG_WITHOUT_VALUE = 4
    VALUE_INCORRECT = 5
    INCORRECT_DATA_FORMAT = 6
    COMPID_PROBLEM = 9
    SENDING_TIME_ACCURACY_PROBLEM = 10
    INVALID_MSGTYPE = 11
    TAG_APPEARS_MORE_THAN_ONCE = 13
    INCORRECT_NUM_IN_GROUP_COUNT = 16
    OTHER = 99


class DictionaryError(ValueError):
    """A dictionary file that can't be read (the user's input)."""


@dataclass(frozen=True)
class FieldDef:
    number: int
    name: str
    type: str
    values: frozenset[str] | None  # enum values, None when any value of the type goes


@dataclass
class Layout:
    """The fields allowed at one level (message body, or one group instance)."""

    fields: set[int] = field(default_factory=set)
    required: set[int] = field(default_factory=set)
    groups: dict[int, "GroupDef"] = field(default_factory=dict)  # counter tag -> group

    def all_tags(self) -> set[int]:
        return self.fields | set(self.groups)


@dataclass
class GroupDef:
    counter_tag: int
    delimiter_tag: int
    layout: Layout


@dataclass
class MessageDef:
    name: str
    msg_type: str
    category: str  # "admin" or "app"
    layout: Layout


@dataclass
class DataDictionary:
    begin_string: str  # "FIX.4.4", "FIXT.1.1", or "FIX.5.0SP2" for an application dictionary
    fields_by_number: dict[int, FieldDef]
    fields_by_name: dict[str, FieldDef]
    header: Layout
    trailer: Layout
    messages: dict[str, MessageDef]
    path: str = ""

    def field_name(self, tag: int) -> str:
        f = self.fields_by_number.get(tag)
        return f.name if f else str(tag)


def spec_dir() -> Path:
    """Where dictionaries are loaded by name: ``TICKLINE_FIX_SPEC_DIR``, or the
    ``fix_spec/`` folder the build installs beside the extension (QuickFIX's
    FIX42, FIX44, FIXT11 and FIX50SP2 dictionaries, with QuickFIX's licence,
    fetched from the pinned ``quickfix`` sdist: they are not part of this
    repository)."""
    env = os.environ.get("TICKLINE_FIX_SPEC_DIR")
    if env:
        return Path(env)
    ext = importlib.util.find_spec("tickline._aeron")
    if ext is None or ext.origin is None:
        raise DictionaryError("the FIX dictionaries come with the built package: fault=local tickline._aeron not found "
                              "(install tickline, or set TICKLINE_FIX_SPEC_DIR)")
    return Path(ext.origin).parent / "fix_spec"


def load_dictionary(name_or_path: str | os.PathLike[str]) -> DataDictionary:
    """Load a QuickFIX-format dictionary by name (``"FIX44"``) or file path.

    Results are cached per resolved path; dictionaries are read-only after load.
    Raises ``DictionaryError`` naming the file and what is wrong.
    """
    p = Path(name_or_path)
    if not p.suffix:
        p = spec_dir() / f"{name_or_path}.xml"
    return _load(str(p.resolve()))


@functools.lru_cache(maxsize=16)
def _load(path: str) -> DataDictionary:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        raise DictionaryError(f"cannot read FIX dictionary: fault=input path={path} error={e}") from None
    if root.tag != "fix":
        raise DictionaryError(f"not a FIX dictionary: fault=input path={path} root_element={root.tag}")
    kind = root.get("type", "FIX")
    major, minor, sp = root.get("major"), root.get("minor"), root.get("servicepack", "0")
    if kind == "FIXT":
        begin = f"FIXT.{major}.{minor}"
    elif major == "5":
        begin = f"FIX.{major}.{minor}" + (f"SP{sp}" if sp and sp != "0" else "")
    else:
        begin = f"FIX.{major}.{minor}"

    by_num: dict[int, FieldDef] = {}
    by_name: dict[str, FieldDef] = {}
    fields_el = root.find("fields")
    for f in (fields_el if fields_el is not None else []):
        try:
            num = int(f.get("number", ""))
        except ValueError:
            raise DictionaryError(f"bad field number: fault=input path={path} field={f.get('name')}") from None
        vals = [v.get("enum", "") for v in f.findall("value")]
        fd = FieldDef(num, f.get("name", ""), f.get("type", "STRING").upper(), frozenset(vals) if vals else None)
        by_num[num] = fd
        by_name[fd.name] = fd

    components: dict[str, ET.Element] = {}
    comps_el = root.find("components")
    for c in (comps_el if comps_el is not None else []):
        components[c.get("name", "")] = c

    def build(el: ET.Element, layout: Layout, required_here: bool, where: str, depth: int = 0) -> None:
        if depth > 50:
            raise DictionaryError(f"component nesting too deep: fault=input path={path} at={where}")
        for child in el:
            req = required_here and child.get("required") == "Y"
            name = child.get("name", "")
            if child.tag == "field":
                fd = by_name.get(name)
                if fd is None:
                    raise DictionaryError(f"undefined field: fault=input path={path} field={name} in={where}")
                layout.fields.add(fd.number)
                if req:
                    layout.required.add(fd.number)
            elif child.tag == "group":
                fd = by_name.get(name)
                if fd is None:
                    raise DictionaryError(f"undefined group counter: fault=input path={path} group={name} in={where}")
                g = Layout()
                build(child, g, True, f"{where}.{name}", depth + 1)
                first = _first_field(child, components, by_name)
                if first is None:
                    raise DictionaryError(f"empty group: fault=input path={path} group={name} in={where}")
                layout.groups[fd.number] = GroupDef(fd.number, first, g)
                if req:
                    layout.required.add(fd.number)
            elif child.tag == "component":
                comp = components.get(name)
                if comp is None:
                    raise DictionaryError(f"undefined component: fault=input path={path} component={name} in={where}")
                build(comp, layout, req, f"{where}.{name}", depth + 1)

    header, trailer = Layout(), Layout()
    h = root.find("header")
    if h is not None:
        build(h, header, True, "header")
    t = root.find("trailer")
    if t is not None:
        build(t, trailer, True, "trailer")
    messages: dict[str, MessageDef] = {}
    msgs_el = root.find("messages")
    for m in (msgs_el if msgs_el is not None else []):
        lay = Layout()
        build(m, lay, True, m.get("name", ""))
        mt = m.get("msgtype", "")
        messages[mt] = MessageDef(m.get("name", ""), mt, m.get("msgcat", "app"), lay)
    return DataDictionary(begin, by_num, by_name, header, trailer, messages, path)


def _first_field(el: ET.Element, components: dict[str, ET.Element], by_name: dict[str, FieldDef]) -> int | None:
    for child in el:
        if child.tag in ("field", "group"):
            fd = by_name.get(child.get("name", ""))
            return fd.number if fd else None
        if child.tag == "component":
            comp = components.get(child.get("name", ""))
            if comp is not None:
                return _first_field(comp, components, by_name)
    return None


_INT = re.compile(r"-?\d+\Z")
_UINT = re.compile(r"\d+\Z")
_FLOAT = re.compile(r"-?(\d+\.?\d*|\.\d+)\Z")
_TIMESTAMP = re.compile(r"\d{4}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])-([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d{1,9})?\Z")
_TIMEONLY = re.compile(r"([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d{1,9})?\Z")
_DATE = re.compile(r"\d{4}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])\Z")
_MONTHYEAR = re.compile(r"\d{4}(0[1-9]|1[0-2])((0[1-9]|[12]\d|3[01])|w[1-5])?\Z")

_TYPE_CHECKS: dict[str, Callable[[str], bool]] = {}
for _t in ("INT", "DAYOFMONTH"):
    _TYPE_CHECKS[_t] = lambda v: _INT.match(v) is not None
for _t in ("LENGTH", "SEQNUM", "NUMINGROUP", "TAGNUM"):
    _TYPE_CHECKS[_t] = lambda v: _UINT.match(v) is not None
for _t in ("FLOAT", "PRICE", "QTY", "AMT", "PRICEOFFSET", "PERCENTAGE"):
    _TYPE_CHECKS[_t] = lambda v: _FLOAT.match(v) is not None
_TYPE_CHECKS["CHAR"] = lambda v: len(v) == 1
_TYPE_CHECKS["BOOLEAN"] = lambda v: v in ("Y", "N")
_TYPE_CHECKS["UTCTIMESTAMP"] = lambda v: _TIMESTAMP.match(v) is not None
_TYPE_CHECKS["TZTIMESTAMP"] = lambda v: True
_TYPE_CHECKS["UTCTIMEONLY"] = lambda v: _TIMEONLY.match(v) is not None
for _t in ("UTCDATEONLY", "UTCDATE", "LOCALMKTDATE", "DATE"):
    _TYPE_CHECKS[_t] = lambda v: _DATE.match(v) is not None
_TYPE_CHECKS["MONTHYEAR"] = lambda v: _MONTHYEAR.match(v) is not None
_MULTI = {"MULTIPLEVALUESTRING", "MULTIPLECHARVALUE", "MULTIPLESTRINGVALUE"}


class ValidationError(Exception):
    """A received message that breaks the dictionary (the peer's fault)."""

    def __init__(self, reason: int, tag: int | None, text: str) -> None:
        self.reason = reason
        self.tag = tag
        self.text = text
        super().__init__(f"invalid FIX message: fault=remote reason={reason} tag={tag} {text}")


@dataclass(frozen=True)
class ValidationConfig:
    """Which checks run on received messages (per session).

    enabled: master switch; check_required: required fields present;
    check_types: values match the field's type; check_values: enum values;
    allow_unknown_fields: tags the dictionary does not define pass;
    allow_user_defined_fields: tags >= 5000 pass even when undefined.
    """

    enabled: bool = True
    check_required: bool = True
    check_types: bool = True
    check_values: bool = True
    allow_unknown_fields: bool = False
    allow_user_defined_fields: bool = True


_UNPLANNED = object()


def _ascii_uint(v: str) -> bool:
    return v.isdigit() and v.isascii()


def _ascii_int(v: str) -> bool:
    t = v[1:] if v[:1] == "-" else v
    return t.isdigit() and t.isascii()


def _ascii_float(v: str) -> bool:
    t = v[1:] if v[:1] == "-" else v
    return t.isascii() and t.replace(".", "", 1).isdigit()


_TIMESTAMP_HEAD = re.compile(r"\d{4}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])-([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)\Z")
_last_timestamp_head = ""


def _ascii_timestamp(v: str) -> bool:
    # The date-time part changes once a second: remember the last one that passed.
    global _last_timestamp_head
    head = v[:17]
    if head != _last_timestamp_head:
        if len(head) != 17 or not head.isascii() or _TIMESTAMP_HEAD.match(head) is None:
            return False
        _last_timestamp_head = head
    tail = v[17:]
    return not tail or (tail[0] == "." and 2 <= len(tail) <= 10 and tail[1:].isdigit() and tail[1:].isascii())


# Stricter-or-equal stand-ins for _TYPE_CHECKS, used only by _FastPlan: each
# accepts a subset of what its reference accepts (ASCII only), so a value they
# refuse goes to the walk, which decides with the reference check.
_FAST_TYPE_CHECKS: dict[str, Callable[[str], bool]] = {}
for _t in ("INT", "DAYOFMONTH"):
    _FAST_TYPE_CHECKS[_t] = _ascii_int
for _t in ("LENGTH", "SEQNUM", "NUMINGROUP", "TAGNUM"):
    _FAST_TYPE_CHECKS[_t] = _ascii_uint
for _t in ("FLOAT", "PRICE", "QTY", "AMT", "PRICEOFFSET", "PERCENTAGE"):
    _FAST_TYPE_CHECKS[_t] = _ascii_float
_FAST_TYPE_CHECKS["UTCTIMESTAMP"] = _ascii_timestamp


def _load_native_check() -> Callable[..., bool] | None:
    from .codec import NATIVE

    if not NATIVE:
        return None
    from tickline import _aeron

    return _aeron.fix_check_flat


_native_check_flat = _load_native_check()
# dictionary type -> the type code of cpp_ext/fixcodec.cpp's check (ASCII-only, never more
# permissive than _TYPE_CHECKS); a type with a reference check and no code here gets code 0
_NATIVE_TYPE_CODES = {"INT": 2, "DAYOFMONTH": 2, "LENGTH": 1, "SEQNUM": 1, "NUMINGROUP": 1, "TAGNUM": 1,
                      "FLOAT": 3, "PRICE": 3, "QTY": 3, "AMT": 3, "PRICEOFFSET": 3, "PERCENTAGE": 3,
                      "UTCTIMESTAMP": 4, "CHAR": 5, "BOOLEAN": 6}


class _FastPlan:
    """A precompiled check for the common case: a message without repeating
    groups, unknown, undefined-here or repeated tags, whose values all pass.

    ``accepts(fields)`` answers True only when ``Validator._validate_walk``
    would accept the message too; False means "not sure", and the walk then
    decides (and raises the precise error).  The set operations run in C; the
    Python loops visit only the fields that have a type or enum check.
    """

    __slots__ = ("allowed", "required", "enums", "typed", "multi", "checked", "required_tuple", "type_codes")

    def __init__(self, checks: dict[int, tuple[Callable[[str], bool] | None, frozenset[str] | None, bool]],
                 allowed: frozenset[int], required: frozenset[int], type_names: dict[int, str]) -> None:
        """``checks``: tag -> (type check, enum values, multi-valued), for the tags that have either;
        ``type_names``: tag -> dictionary type, for those tags."""
        self.allowed = allowed
        self.required = required
        self.required_tuple = tuple(required)
        # single-valued enums: the values that also pass the type check (one set lookup decides)
        self.enums = {t: frozenset(x for x in vals if chk is None or chk(x))
                      for t, (chk, vals, multi) in checks.items() if vals is not None and not multi}
        self.typed = {t: chk for t, (chk, vals, multi) in checks.items() if vals is None and chk is not None}
        self.multi = {t: c for t, c in checks.items() if c[1] is not None and c[2]}
        self.checked = frozenset(checks)
        self.type_codes = {t: (_NATIVE_TYPE_CODES.get(type_names[t], 0) if c[0] is not None and not c[2] else 0)
                           for t, c in checks.items() if t not in self.enums}

    def accepts(self, fields: list[tuple[int, str]], index: dict[int, str] | None = None) -> bool:
        """``index``: tag -> first value of ``fields``, when the parser built one."""
        if index is not None and _native_check_flat is not None:
            return bool(_native_check_flat(index, len(fields), self.allowed, self.required_tuple, self.enums,
                                           self.type_codes))
        by_tag = index if index is not None else dict(fields)
        if len(by_tag) != len(fields) or not self.allowed.issuperset(by_tag) or not by_tag.keys() >= self.required:
            return False
        if "" in by_tag.values():
            return False
        enums, typed = self.enums, self.typed
        for tag in self.checked.intersection(by_tag):
            v = by_tag[tag]
            ok_values = enums.get(tag)
            if ok_values is not None:
                if v not in ok_values:
                    return False
                continue
            check = typed.get(tag)
            if check is not None:
                if not check(v):
                    return False
                continue
            check, values, _ = self.multi[tag]
            if check is not None and not check(v):
                return False
            if not all(p in values for p in v.split(" ")):  # type: ignore[operator]
                return False
        return True


class Validator:
    """Checks messages against a transport and an application dictionary.

    Thread safe (read-only after construction).
    """

    def __init__(self, transport: DataDictionary, app: DataDictionary | None = None,
                 config: ValidationConfig = ValidationConfig()) -> None:
        self.transport = transport
        self.app = app or transport
        self.config = config
        self._top: dict[str, tuple[Layout, DataDictionary]] = {}  # msg type -> merged header+body+trailer
        self._checks: dict[tuple[int, int], tuple[Callable[[str], bool] | None, frozenset[str] | None, bool, str]] = {}
        self._fast: dict[str, object] = {}  # msg type -> _FastPlan, or None: the walk alone

    def validate(self, msg: FixMessage) -> None:
        """Raise ``ValidationError`` for the first problem found; return None if valid."""
        cfg = self.config
        if not cfg.enabled:
            return
        mt = msg.msg_type
        plan = self._fast.get(mt, _UNPLANNED)
        if plan is _UNPLANNED:
            plan = self._fast[mt] = self._plan(mt)
        if isinstance(plan, _FastPlan) and plan.accepts(msg.fields, msg._index):
            return
        self._validate_walk(msg, mt)

    def _plan(self, mt: str) -> "_FastPlan | None":
        """The precompiled check for a flat message of type ``mt`` (None: the walk does it all)."""
        if mt not in self.transport.messages and mt not in self.app.messages:
            return None  # the walk raises InvalidMsgType
        top, d = self._layout(mt)
        cfg = self.config
        checks: dict[int, tuple[Callable[[str], bool] | None, frozenset[str] | None, bool]] = {}
        type_names: dict[int, str] = {}
        for tag in top.fields:
            fd = self._field(tag, d)
            if tag in (8, 9, 10) or fd is None:  # the walk checks only that a value is there
                continue
            ref = _TYPE_CHECKS.get(fd.type) if cfg.check_types else None
            check = (_FAST_TYPE_CHECKS.get(fd.type) or ref) if ref is not None else None
            values = fd.values if cfg.check_values else None
            if check is not None or values is not None:
                checks[tag] = (check, values, fd.type in _MULTI)
                type_names[tag] = fd.type
        allowed = frozenset(t for t in top.fields if t not in top.groups)
        required = frozenset(top.required) if cfg.check_required else frozenset()
        return _FastPlan(checks, allowed, required, type_names)

    def _layout(self, mt: str) -> tuple[Layout, DataDictionary]:
        """Header + body + trailer of ``mt`` merged, and the dictionary its body comes from."""
        cached = self._top.get(mt)
        if cached is None:
            mdef = self.transport.messages.get(mt) or self.app.messages.get(mt)
            if mdef is None:
                raise ValidationError(SessionRejectReason.INVALID_MSGTYPE, 35, f"Invalid MsgType msg_type={mt}")
            body_dict = self.transport if mt in self.transport.messages else self.app
            header, trailer, body = self.transport.header, self.transport.trailer, mdef.layout
            top = Layout(header.fields | body.fields | trailer.fields,
                         header.required | body.required | trailer.required,
                         {**header.groups, **body.groups, **trailer.groups})
            cached = self._top[mt] = (top, body_dict)
        return cached

    def _validate_walk(self, msg: FixMessage, mt: str) -> None:
        """The reference check: a walk over the fields that raises the first problem found."""
        top, body_dict = self._layout(mt)
        fields = msg.fields
        end = self._walk(fields, 0, top, body_dict, in_group=False)
        if end != len(fields):  # only reachable through a group walk that stopped early
            t = fields[end][0]
            raise ValidationError(SessionRejectReason.TAG_NOT_DEFINED_FOR_MESSAGE_TYPE, t,
                                  f"Tag not defined for this message type tag={t} msg_type={mt}")

    def _field(self, tag: int, d: DataDictionary) -> FieldDef | None:
        return d.fields_by_number.get(tag) or self.transport.fields_by_number.get(tag)

    def _check_value(self, tag: int, value: str, d: DataDictionary) -> None:
        if value == "":
            raise ValidationError(SessionRejectReason.TAG_WITHOUT_VALUE, tag, f"Tag specified without a value tag={tag}")
        key = (id(d), tag)
        info = self._checks.get(key)
        if info is None:
            fd = self._field(tag, d)
            cfg = self.config
            if fd is None:
                info = (None, None, False, "")
            else:
                info = (_TYPE_CHECKS.get(fd.type) if cfg.check_types else None,
                        fd.values if cfg.check_values else None, fd.type in _MULTI, fd.type)
            self._checks[key] = info
        check, values, multi, ftype = info
        if check is not None and not check(value):
            raise ValidationError(SessionRejectReason.INCORRECT_DATA_FORMAT, tag,
                                  f"Incorrect data format for value tag={tag} type={ftype} value={value[:32]!r}")
        if values is not None:
            parts = value.split(" ") if multi else (value,)
            for p in parts:
                if p not in values:
                    raise ValidationError(SessionRejectReason.VALUE_INCORRECT, tag,
                                          f"Value is incorrect (out of range) for this tag tag={tag} value={p[:32]!r}")

    def _walk(self, fields: list[tuple[int, str]], i: int, layout: Layout, d: DataDictionary, in_group: bool) -> int:
        """Validate fields from ``i`` belonging to ``layout``; return the index of the first field that doesn't."""
        cfg = self.config
        seen: set[int] = set()
        n = len(fields)
        allowed = layout.fields
        while i < n:
            tag, value = fields[i]
            if tag in layout.groups:
                if tag in seen:
                    raise ValidationError(SessionRejectReason.TAG_APPEARS_MORE_THAN_ONCE, tag,
                                          f"Tag appears more than once tag={tag}")
                seen.add(tag)
                self._check_value(tag, value, d)
                if not _ascii_uint(value):  # the count shapes the rest of the walk: checked even with check_types off
                    raise ValidationError(SessionRejectReason.INCORRECT_DATA_FORMAT, tag,
                                          f"Incorrect data format for value tag={tag} type=NUMINGROUP value={value[:32]!r}")
                g = layout.groups[tag]
                count = int(value) if len(value) <= 18 else -1  # (no group has that many: a count mismatch)
                got = 0
                i += 1
                while i < n and fields[i][0] == g.delimiter_tag:
                    got += 1
                    start = i
                    # the delimiter starts the instance; the walk consumes the rest of it
                    i = self._walk(fields, i, g.layout, d, in_group=True)
                    if i == start:
                        break
                if got != count:
                    raise ValidationError(SessionRejectReason.INCORRECT_NUM_IN_GROUP_COUNT, tag,
                                          f"Incorrect NumInGroup count for repeating group tag={tag} declared={count} found={got}")
                continue
            if tag not in allowed:
                if in_group:
                    break
                known = self._field(tag, d) is not None
                if not known:
                    if cfg.allow_unknown_fields or (cfg.allow_user_defined_fields and tag >= 5000):
                        i += 1
                        continue
                    raise ValidationError(SessionRejectReason.INVALID_TAG_NUMBER, tag, f"Invalid tag number tag={tag}")
                if cfg.allow_unknown_fields:
                    i += 1
                    continue
                raise ValidationError(SessionRejectReason.TAG_NOT_DEFINED_FOR_MESSAGE_TYPE, tag,
                                      f"Tag not defined for this message type tag={tag}")
            if tag in seen:
                if in_group:
                    break  # a repeat of this level's tag: the next instance starts
                raise ValidationError(SessionRejectReason.TAG_APPEARS_MORE_THAN_ONCE, tag,
                                      f"Tag appears more than once tag={tag}")
            seen.add(tag)
            if tag not in (8, 9, 10):
                self._check_value(tag, value, d)
            i += 1
        if cfg.check_required:
            missing = layout.required - seen
            if missing:
                t = min(missing)
                raise ValidationError(SessionRejectReason.REQUIRED_TAG_MISSING, t,
                                      f"Required tag missing tag={t} name={d.field_name(t)}")
        return i
