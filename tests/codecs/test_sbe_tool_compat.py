"""Schemas and bytes sbe-tool accepts that tickline refused or misread (issue 16 items 1-4), each on a small schema
written to show one class of difference.  Where sbe-tool and the SBE 1.0 text differ, tickline follows sbe-tool.
"""

from __future__ import annotations

import struct
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import pytest

from tickline.codecs import MessageError, load_schema, otf
from tickline.codecs.ir import Schema

from codecs_helpers import import_generated
from test_otf import run_cli

WARN = "schema warning (the schema author's, tickline worked around it): file=schema.xml "


def round_trip(schema: Schema, mod: ModuleType, fields: dict[str, Any]) -> bytes:
    """Encode ``fields`` with the on-the-fly codec and with the generated encoder: the same bytes, decoded back
    to the same fields by both decoders."""
    msg = schema.messages[0]
    wire = otf.encode(schema, {"header": otf.default_header(schema, msg), "message": msg.name, "fields": fields})
    encoder = getattr(mod, msg.name[:1].upper() + msg.name[1:] + "Encoder")
    assert encoder.from_dict(fields) == wire
    doc, used = otf.decode(schema, wire)
    assert (doc["fields"], used) == (fields, len(wire))
    assert mod.decode(wire).to_dict() == fields
    return wire


# -- item 1: schemas refused that sbe-tool accepts ------------------------------------------------------------------

NAMES = """<types>
<composite name="Px"><type name="wrap" primitiveType="int64"/><type name="_e" primitiveType="int8"/></composite>
<enum name="Side" encodingType="uint8"><validValue name="Buy">1</validValue></enum>
</types>
<sbe:message name="M" id="1">
<field name="header" id="1" type="uint32"/>
<field name="wrap" id="2" type="uint8"/>
<field name="_buf" id="3" type="uint8"/>
<field name="bidPrice" id="4" type="uint8"/>
<field name="bid_price" id="5" type="uint8"/>
<field name="px" id="6" type="Px"/>
<field name="side" id="7" type="Side"/>
<field name="sideRaw" id="8" type="uint8"/>
</sbe:message>"""


def test_names_that_clash_in_generated_code_are_mangled_with_warnings(write_schema: Callable[..., Path],
                                                                       tmp_path: Path) -> None:
    schema = load_schema(write_schema(NAMES))
    assert schema.warnings == [WARN + line for line in [
        "line=9 element=type name=wrap: name=wrap would collide with wrap in generated code; the generated property is wrap_",
        "line=9 element=type name=_e: name=_e would be private in generated code; the generated property is f_e",
        "line=13 element=field name=header: name=header would collide with header in generated code; the generated property is header_",
        "line=14 element=field name=wrap: name=wrap would collide with wrap in generated code; the generated property is wrap_",
        "line=15 element=field name=_buf: name=_buf would be private in generated code; the generated property is f_buf",
        "line=17 element=field name=bid_price: name=bid_price would collide with bid_price in generated code; "
        "the generated property is bid_price_",
        "line=20 element=field name=sideRaw: name=sideRaw would collide with side_raw in generated code; "
        "the generated property is side_raw_",
    ]]
    mod = import_generated(schema, tmp_path)
    fields = {"header": 1, "wrap": 2, "_buf": 3, "bidPrice": 4, "bid_price": 5, "px": {"wrap": -6, "_e": -7},
              "side": "Buy", "sideRaw": 8}
    wire = round_trip(schema, mod, fields)
    dec = mod.decode(wire)
    assert (dec.header_, dec.wrap_, dec.f_buf, dec.bid_price, dec.bid_price_, dec.side_raw, dec.side_raw_) == (1, 2, 3, 4, 5, 1, 8)
    assert (dec.px.wrap_, dec.px.f_e) == (-6, -7)


VAR_NO_LENGTH_0 = """<types>
<composite name="varString"><type name="length" primitiveType="uint16"/><type name="varData" primitiveType="char"/></composite>
</types>
<sbe:message name="M" id="1"><field name="a" id="1" type="uint8"/><data name="text" id="2" type="varString"/></sbe:message>"""


def test_var_data_member_without_length_0_is_the_variable_part(write_schema: Callable[..., Path], tmp_path: Path) -> None:
    schema = load_schema(write_schema(VAR_NO_LENGTH_0))
    assert schema.warnings == []
    wire = round_trip(schema, import_generated(schema, tmp_path), {"a": 1, "text": b"hello".hex()})
    assert wire == struct.pack("<HHHHB", 1, 1, 7, 0, 1) + struct.pack("<H", 5) + b"hello"


CONSTANT_HEADER = """<types>
<composite name="hdr">
<type name="blockLength" primitiveType="uint16"/><type name="templateId" primitiveType="uint16"/>
<type name="schemaId" primitiveType="uint16" presence="constant">3</type><type name="version" primitiveType="uint16" presence="constant">0</type>
</composite>
</types>
<sbe:message name="M" id="1"><field name="a" id="1" type="uint8"/><field name="b" id="2" type="uint8" sinceVersion="1"/></sbe:message>"""


def test_header_with_a_constant_schema_id_of_its_own(write_schema: Callable[..., Path], tmp_path: Path) -> None:
    # the schema's id is 7 and its version 1; the header fixes schemaId=3 and version=0 and carries neither
    schema = load_schema(write_schema(CONSTANT_HEADER, version=1, attrs=' headerType="hdr"'))
    mod = import_generated(schema, tmp_path)
    wire = struct.pack("<HH", 2, 1) + bytes([5, 9])  # blockLength, templateId, then a and b
    doc, used = otf.decode(schema, wire)
    assert doc == {"header": {"blockLength": 2, "templateId": 1, "schemaId": 3, "version": 0}, "message": "M",
                   "fields": {"a": 5, "b": None}}  # the header's constant version 0 is the acting version
    assert used == len(wire) and mod.decode(wire).to_dict() == doc["fields"]
    assert otf.encode(schema, doc) == wire[:-1] + b"\0"  # b is newer than the acting version: not written
    buf = bytearray(8)
    enc = mod.MEncoder().wrap_and_apply_header(buf)
    enc.a = 5
    assert bytes(buf[:4]) == struct.pack("<HH", 2, 1)  # nothing written for the constant members


# -- item 2: a newer message read with an older schema ---------------------------------------------------------------

OLD = """<sbe:message name="M" id="1"><field name="a" id="1" type="uint32"/>
<group name="g" id="2"><field name="x" id="3" type="uint8"/></group>
</sbe:message>"""
NEW = """<sbe:message name="M" id="1"><field name="a" id="1" type="uint32"/><field name="b" id="4" type="uint16" sinceVersion="1"/>
<group name="g" id="2"><field name="x" id="3" type="uint8"/><field name="y" id="5" type="uint32" sinceVersion="1"/></group>
<group name="h" id="6" sinceVersion="1"><field name="z" id="7" type="uint8"/></group>
<data name="e" id="8" type="varDataEncoding" sinceVersion="1"/>
</sbe:message>"""


def test_newer_message_with_an_older_schema_skips_what_it_does_not_know(
        write_schema: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    new = load_schema(write_schema(NEW, version=1, name="new.xml"))
    old_path = write_schema(OLD, version=0, name="old.xml")
    old = load_schema(old_path)
    fields = {"a": 1, "b": 2, "g": [{"x": 3, "y": 4}, {"x": 5, "y": 6}], "h": [{"z": 7}], "e": b"newer".hex()}
    wire = otf.encode(new, {"header": otf.default_header(new, new.messages[0]), "message": "M", "fields": fields})
    known = {"a": 1, "g": [{"x": 3}, {"x": 5}]}
    doc, used = otf.decode(old, wire)
    assert doc["fields"] == known and doc["header"]["version"] == 1
    assert used == 8 + 6 + 4 + 2 * 5  # header, the acting block, g's header and its two 5-byte entries
    assert import_generated(old, tmp_path).decode(wire).to_dict() == known
    (tmp_path / "m.bin").write_bytes(wire)
    rc, out, err = run_cli(["sbe-decode", str(old_path), str(tmp_path / "m.bin")], capsys, monkeypatch)
    assert (rc, err) == (0, "")
    assert otf.from_json(out)["fields"] == known
    # bytes after a message of the schema's own version are still not part of it
    same = otf.encode(old, {"header": otf.default_header(old, old.messages[0]), "message": "M", "fields": known})
    (tmp_path / "m.bin").write_bytes(same + b"\0")
    rc, out, err = run_cli(["sbe-decode", str(old_path), str(tmp_path / "m.bin")], capsys, monkeypatch)
    assert rc == 1 and "1 trailing bytes after the message" in err


# -- item 4: enum values the schema does not know --------------------------------------------------------------------

ENUMS = """<types>
<enum name="Side" encodingType="uint8"><validValue name="Buy">1</validValue><validValue name="Sell">2</validValue></enum>
<enum name="Kind" encodingType="char"><validValue name="A">A</validValue><validValue name="SBE_UNKNOWN">U</validValue></enum>
</types>
<sbe:message name="M" id="1"><field name="side" id="1" type="Side"/><field name="kind" id="2" type="Kind"/></sbe:message>"""


def test_unknown_enum_values_read_as_a_sentinel_and_keep_the_raw_value(
        write_schema: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_schema(ENUMS)
    schema = load_schema(path)
    mod = import_generated(schema, tmp_path)
    wire = struct.pack("<HHHH", 2, 1, 7, 0) + bytes([3, ord("Z")])  # a newer producer's Side=3 and Kind='Z'
    dec = mod.decode(wire)
    assert (dec.side, dec.side_raw, dec.kind, dec.kind_raw) == (mod.Side.SBE_UNKNOWN, 3, mod.Kind.SBE_UNKNOWN_, ord("Z"))
    assert mod.Kind.SBE_UNKNOWN == ord("U")  # a validValue of that name keeps it; the sentinel moves aside
    assert dec.to_dict() == {"side": 3, "kind": "Z"} == otf.decode(schema, wire)[0]["fields"]
    assert otf.encode(schema, otf.decode(schema, wire)[0]) == wire
    # strict mode is opt-in, in both codecs and in sbe-decode
    mod.set_strict_enums(True)
    with pytest.raises(MessageError, match=r"unknown Side value=3 in field side \(strict enums; read side_raw\)"):
        mod.decode(wire).side
    with pytest.raises(MessageError, match=r"unknown value=3 of enum Side at offset=8 \(strict enums\)"):
        otf.decode(schema, wire, strict_enums=True)
    (tmp_path / "m.bin").write_bytes(wire)
    rc, out, err = run_cli(["sbe-decode", "--strict-enums", str(path), str(tmp_path / "m.bin")], capsys, monkeypatch)
    assert rc == 1 and "unknown value=3 of enum Side" in err
    rc, out, err = run_cli(["sbe-decode", str(path), str(tmp_path / "m.bin")], capsys, monkeypatch)
    assert rc == 0 and otf.from_json(out)["fields"] == {"side": 3, "kind": "Z"}


# -- item 3: null values in arrays, chars and enums -------------------------------------------------------------------

NULLS = """<types>
<type name="OptInts" primitiveType="int32" length="3" presence="optional"/>
<type name="OptDoubles" primitiveType="double" length="2" presence="optional"/>
<type name="Ints" primitiveType="int32" length="2"/>
<type name="charNULL" primitiveType="char" presence="optional" nullValue="0"/>
<type name="u8NULL" primitiveType="uint8" presence="optional" nullValue="255"/>
<enum name="Code" encodingType="charNULL"><validValue name="Yes">Y</validValue></enum>
<enum name="Level" encodingType="u8NULL"><validValue name="Low">0</validValue></enum>
<composite name="Legs"><type name="qty" primitiveType="uint16" length="2" presence="optional"/></composite>
</types>
<sbe:message name="M" id="1">
<field name="ints" id="1" type="OptInts"/>
<field name="doubles" id="2" type="OptDoubles"/>
<field name="plain" id="3" type="Ints"/>
<field name="ch" id="4" type="charNULL"/>
<field name="code" id="5" type="Code"/>
<field name="level" id="6" type="Level"/>
<field name="legs" id="7" type="Legs"/>
</sbe:message>"""


def test_null_values_in_optional_arrays_chars_and_enums(write_schema: Callable[..., Path], tmp_path: Path) -> None:
    schema = load_schema(write_schema(NULLS))
    mod = import_generated(schema, tmp_path)
    fields = {"ints": [1, None, -3], "doubles": [None, 2.5], "plain": [-2**31, 0], "ch": None, "code": None, "level": None,
              "legs": {"qty": [None, 7]}}
    wire = round_trip(schema, mod, fields)
    nan = struct.pack("<d", float("nan"))
    assert wire[8:] == (struct.pack("<3i", 1, -2**31, -3) + nan + struct.pack("<d", 2.5) + struct.pack("<2i", -2**31, 0)
                        + bytes([0, 0, 255]) + struct.pack("<2H", 65535, 7))
    dec = mod.decode(wire)
    assert (dec.ints, dec.doubles, dec.plain, dec.ch, dec.code, dec.level, dec.legs.qty) == (
        (1, None, -3), (None, 2.5), (-2**31, 0), None, None, None, (None, 7))  # a required array has no null
    assert round_trip(schema, mod, dict(fields, ch="x", code="Yes", level="Low"))[8 + 36:8 + 39] == b"xY\0"
    buf = bytearray(len(wire))
    enc = mod.MEncoder().wrap_and_apply_header(buf)
    enc.ints, enc.doubles = (None, None, 4), (1.0, None)
    assert mod.decode(buf).ints == (None, None, 4) and mod.decode(buf).doubles == (1.0, None)
