"""The on-the-fly codec and the JSON form of ``tickline sbe-decode`` / ``sbe-encode`` (issue 3's rules)."""

from __future__ import annotations

import argparse
import io
import json
import math
import struct
from pathlib import Path
from typing import Any, Callable

import pytest

from tickline.codecs import MessageError, cli, load_schema, otf
from tickline.codecs.ir import Schema

BODY = """<types>
<type name="OptU64" primitiveType="uint64" presence="optional"/>
<type name="OptF" primitiveType="float" presence="optional"/>
<type name="Sym" primitiveType="char" length="8"/>
<type name="Lat1" primitiveType="char" length="4" characterEncoding="ISO-8859-1"/>
<type name="Nums" primitiveType="int16" length="3"/>
<type name="Ch" primitiveType="char"/>
<type name="Pi" primitiveType="double" presence="constant">3.5</type>
<enum name="Color" encodingType="uint8"><validValue name="Red">1</validValue><validValue name="Blue" sinceVersion="1">2</validValue></enum>
<set name="Flags" encodingType="uint16"><choice name="b3">3</choice><choice name="b0">0</choice></set>
<composite name="Px"><type name="m" primitiveType="int64"/><type name="e" primitiveType="int8" presence="constant">-2</type></composite>
</types>
<sbe:message name="All" id="3">
<field name="u64" id="1" type="uint64"/>
<field name="optU64" id="2" type="OptU64"/>
<field name="f" id="3" type="float"/>
<field name="d" id="4" type="double"/>
<field name="optF" id="5" type="OptF"/>
<field name="sym" id="6" type="Sym" offset="40"/>
<field name="lat1" id="7" type="Lat1"/>
<field name="nums" id="8" type="Nums"/>
<field name="ch" id="9" type="Ch"/>
<field name="pi" id="10" type="Pi"/>
<field name="color" id="11" type="Color"/>
<field name="optColor" id="12" type="Color" presence="optional"/>
<field name="flags" id="13" type="Flags"/>
<field name="px" id="14" type="Px"/>
<field name="newer" id="15" type="uint32" sinceVersion="1"/>
<group name="g" id="16"><field name="x" id="17" type="uint8"/><data name="inner" id="18" type="varDataEncoding"/></group>
<group name="newerGroup" id="19" sinceVersion="1"><field name="y" id="20" type="uint8"/></group>
<data name="blob" id="21" type="varDataEncoding"/>
<data name="newerData" id="22" type="varDataEncoding" sinceVersion="1"/>
</sbe:message>"""

FIELDS: dict[str, Any] = {
    "u64": 2**64 - 1, "optU64": None, "f": 0.10000000149011612, "d": -0.0, "optF": None, "sym": "ESZ6",
    "lat1": "caf\u00e9", "nums": [-32768, 0, 32767], "ch": "Z", "pi": 3.5, "color": "Red", "optColor": None,
    "flags": ["b3", "b0"], "px": {"m": -12345, "e": -2}, "newer": 7,
    "g": [{"x": 1, "inner": "00ff"}, {"x": 2, "inner": ""}], "newerGroup": [{"y": 9}], "blob": "deadbeef", "newerData": "01",
}


@pytest.fixture
def schema(write_schema: Callable[..., Path]) -> Schema:
    return load_schema(write_schema(BODY, version=1))


def doc_for(schema: Schema, fields: dict[str, Any], version: int = 1) -> dict[str, Any]:
    header = otf.default_header(schema, schema.messages[0])
    header["version"] = version
    return {"header": header, "message": "All", "fields": fields}


def test_layout_leaves_gaps_zero(schema: Schema) -> None:
    msg = schema.messages[0]
    assert [(f.name, f.offset) for f in msg.fields][:7] == [("u64", 0), ("optU64", 8), ("f", 16), ("d", 20),
                                                           ("optF", 28), ("sym", 40), ("lat1", 48)]
    wire = otf.encode(schema, doc_for(schema, FIELDS))
    assert wire[8 + 32:8 + 40] == bytes(8)  # the gap before sym's explicit offset is never written
    assert wire[8 + 40:8 + 48] == b"ESZ6\0\0\0\0"  # char arrays are NUL padded


def test_json_text_is_exactly_the_documented_form(schema: Schema) -> None:
    wire = otf.encode(schema, doc_for(schema, FIELDS))
    decoded, used = otf.decode(schema, wire)
    assert used == len(wire)
    text = otf.to_json(decoded, indent=None)
    assert text.startswith('{"header": {"blockLength": %d, "templateId": 3, "schemaId": 7, "version": 1}, '
                           '"message": "All", "fields": {"u64": 18446744073709551615, "optU64": null, '
                           '"f": 0.10000000149011612, "d": -0.0, "optF": null, "sym": "ESZ6", "lat1": "caf\u00e9", '
                           '"nums": [-32768, 0, 32767], "ch": "Z", "pi": 3.5, "color": "Red", "optColor": null, '
                           '"flags": ["b3", "b0"], "px": {"m": -12345, "e": -2}, "newer": 7, '
                           '"g": [{"x": 1, "inner": "00ff"}, {"x": 2, "inner": ""}], "newerGroup": [{"y": 9}], '
                           '"blob": "deadbeef", "newerData": "01"}}' % schema.messages[0].block_length)
    assert json.loads(text) == decoded
    assert otf.encode(schema, json.loads(text)) == wire


def test_float_is_its_exact_value_widened(schema: Schema) -> None:
    fields = dict(FIELDS, f=0.1)  # 0.1 is not a float32; the wire keeps the nearest one
    decoded, _ = otf.decode(schema, otf.encode(schema, doc_for(schema, fields)))
    assert decoded["fields"]["f"] == struct.unpack("<f", struct.pack("<f", 0.1))[0] == 0.10000000149011612


@pytest.mark.parametrize("name,value", [("f", "NaN"), ("f", "Infinity"), ("d", "-Infinity"), ("optF", "Infinity")])
def test_non_finite_floats_are_strings(schema: Schema, name: str, value: str) -> None:
    decoded, _ = otf.decode(schema, otf.encode(schema, doc_for(schema, dict(FIELDS, **{name: value}))))
    assert decoded["fields"][name] == value


def test_optional_float_nan_is_null_and_required_enum_null_is_null(schema: Schema) -> None:
    wire = bytearray(otf.encode(schema, doc_for(schema, FIELDS)))
    msg = schema.messages[0]
    color = next(f for f in msg.fields if f.name == "color")
    wire[8 + color.offset] = 255  # the uint8 null value, written raw
    decoded, _ = otf.decode(schema, bytes(wire))
    assert decoded["fields"]["optF"] is None and decoded["fields"]["color"] is None
    assert math.isnan(struct.unpack_from("<f", wire, 8 + 28)[0])  # optional float null is NaN on the wire


def test_char_array_stops_at_first_nul(schema: Schema) -> None:
    wire = bytearray(otf.encode(schema, doc_for(schema, FIELDS)))
    wire[8 + 40:8 + 48] = b"AB\0CDEFG"
    decoded, _ = otf.decode(schema, bytes(wire))
    assert decoded["fields"]["sym"] == "AB"
    wire[8 + 40:8 + 48] = bytes(8)
    assert otf.decode(schema, bytes(wire))[0]["fields"]["sym"] == ""


def test_unknown_enum_value_is_kept_raw(schema: Schema) -> None:
    wire = bytearray(otf.encode(schema, doc_for(schema, FIELDS)))
    color = next(f for f in schema.messages[0].fields if f.name == "color")
    wire[8 + color.offset] = 42
    decoded, _ = otf.decode(schema, bytes(wire))
    assert decoded["fields"]["color"] == 42
    assert otf.encode(schema, decoded) == bytes(wire)


def test_older_acting_version_reads_null_empty_and_empty(schema: Schema) -> None:
    old_fields = {k: v for k, v in FIELDS.items()}
    old_fields.update(newer=None, newerGroup=[], newerData="")
    doc = doc_for(schema, old_fields, version=0)
    wire = otf.encode(schema, doc)
    decoded, used = otf.decode(schema, wire)
    assert used == len(wire)
    assert decoded["fields"]["newer"] is None and decoded["fields"]["newerGroup"] == [] and decoded["fields"]["newerData"] == ""
    assert decoded == doc


def test_encode_errors_say_what_and_where(schema: Schema) -> None:
    with pytest.raises(MessageError, match=r"All.u64: value=-1 is out of range for uint64 \[0, 18446744073709551615\]"):
        otf.encode(schema, doc_for(schema, dict(FIELDS, u64=-1)))
    with pytest.raises(MessageError, match=r"All.sym: value='TOOLONGSYM' is 10 bytes, longer than length=8"):
        otf.encode(schema, doc_for(schema, dict(FIELDS, sym="TOOLONGSYM")))
    with pytest.raises(MessageError, match=r"All.color: value='Green' is not a validValue of enum Color"):
        otf.encode(schema, doc_for(schema, dict(FIELDS, color="Green")))
    with pytest.raises(MessageError, match="All: missing field name=u64"):
        otf.encode(schema, doc_for(schema, {k: v for k, v in FIELDS.items() if k != "u64"}))


def test_decode_errors_say_what_and_where(schema: Schema) -> None:
    wire = otf.encode(schema, doc_for(schema, FIELDS))
    with pytest.raises(MessageError, match=r"message truncated: var data newerData needs bytes \[\d+, \d+\) but the buffer has length=\d+"):
        otf.decode(schema, wire[:-1])
    bad = bytearray(wire)
    struct.pack_into("<H", bad, 2, 99)
    with pytest.raises(MessageError, match="unknown templateId=99 for schema id=7"):
        otf.decode(schema, bytes(bad))


# -- the CLI ----------------------------------------------------------------------------------------------

def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, bytes, str]:
    parser = argparse.ArgumentParser(prog="tickline")
    sub = parser.add_subparsers()
    cli.register(sub)
    args = parser.parse_args(argv)
    out = io.BytesIO()

    wrapper = io.TextIOWrapper(out, encoding="utf-8", write_through=True)
    monkeypatch.setattr("sys.stdout", wrapper)
    rc = args.func(args)
    wrapper.flush()
    return rc, out.getvalue(), capsys.readouterr().err


def test_cli_decode_then_encode_round_trips_bytes(schema: Schema, tmp_path: Path, write_schema: Callable[..., Path],
                                                  capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    schema_path = tmp_path / "schema.xml"
    wire = otf.encode(schema, doc_for(schema, FIELDS))
    (tmp_path / "m.bin").write_bytes(wire)
    rc, out, err = run_cli(["sbe-decode", str(schema_path), str(tmp_path / "m.bin")], capsys, monkeypatch)
    assert (rc, err) == (0, "")
    assert json.loads(out) == doc_for(schema, FIELDS)
    (tmp_path / "m.json").write_bytes(out)
    rc, out2, err = run_cli(["sbe-encode", str(schema_path), str(tmp_path / "m.json")], capsys, monkeypatch)
    assert (rc, err, out2) == (0, "", wire)


def test_cli_decode_all_and_trailing_bytes(schema: Schema, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    wire = otf.encode(schema, doc_for(schema, FIELDS))
    (tmp_path / "two.bin").write_bytes(wire + wire)
    rc, out, err = run_cli(["sbe-decode", str(tmp_path / "schema.xml"), str(tmp_path / "two.bin")], capsys, monkeypatch)
    assert rc == 1 and out == b""
    assert err.strip() == (f"message error (the input's fault): file={tmp_path / 'two.bin'} {len(wire)} trailing bytes "
                           f"after the message at offset={len(wire)}; use --all for several messages")
    rc, out, err = run_cli(["sbe-decode", "--all", str(tmp_path / "schema.xml"), str(tmp_path / "two.bin")], capsys, monkeypatch)
    assert rc == 0 and json.loads(out) == [doc_for(schema, FIELDS)] * 2
    (tmp_path / "two.json").write_bytes(out)
    rc, out, err = run_cli(["sbe-encode", str(tmp_path / "schema.xml"), str(tmp_path / "two.json")], capsys, monkeypatch)
    assert rc == 0 and out == wire + wire


def test_cli_reports_bad_schema(tmp_path: Path, write_schema: Callable[..., Path],
                                capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_schema('<sbe:message name="M" id="1">\n<field name="a" id="1" type="Nope"/>\n</sbe:message>')
    (tmp_path / "m.bin").write_bytes(b"")
    rc, out, err = run_cli(["sbe-decode", str(path), str(tmp_path / "m.bin")], capsys, monkeypatch)
    assert rc == 1 and out == b""
    assert err.strip() == ("schema error (the schema author's fault, fix the schema): file=schema.xml line=9 "
                           "element=field name=a: unknown type reference type=Nope")


def test_invalid_bytes_in_a_char_array_survive_json(schema: Schema) -> None:
    wire = bytearray(otf.encode(schema, doc_for(schema, FIELDS)))
    wire[8 + 40:8 + 48] = b"AB\xff\x80\0\0\0\0"  # not US-ASCII
    decoded, _ = otf.decode(schema, bytes(wire))
    text = otf.to_json(decoded)
    text.encode("utf-8")  # printable as UTF-8
    assert '"sym": "AB\\udcff\\udc80"' in text
    assert otf.encode(schema, otf.from_json(text)) == bytes(wire)


def test_truncated_input_gets_a_message_error(car_schema: Schema, tmp_path: Path) -> None:
    from codecs_helpers import import_generated
    from test_layout import hand_encoded_car

    mod = import_generated(car_schema, tmp_path)
    wire = hand_encoded_car()
    for cut in range(len(wire)):
        with pytest.raises(MessageError):
            otf.decode(car_schema, wire[:cut])
        with pytest.raises(MessageError):
            mod.decode(wire[:cut]).to_dict()


def test_garbled_input_gets_a_message_error_or_a_value(car_schema: Schema, tmp_path: Path) -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from codecs_helpers import import_generated
    from test_layout import hand_encoded_car

    mod = import_generated(car_schema, tmp_path)
    wire = hand_encoded_car()

    positions = [0, 1, 6, 7, *range(8, len(wire))]  # blockLength, version and the body; the ids stay

    @settings(max_examples=200, deadline=None)
    @given(flips=st.lists(st.tuples(st.sampled_from(positions), st.integers(0, 255)), min_size=1, max_size=4))
    def check(flips: list[tuple[int, int]]) -> None:
        data = bytearray(wire)
        for pos, value in flips:
            data[pos] = value
        try:
            doc, used = otf.decode(car_schema, bytes(data))
            assert used <= len(data)
        except MessageError:
            pass
        try:
            mod.decode(bytes(data)).to_dict()
        except MessageError:
            pass

    check()


def test_encoding_wrong_json_gets_a_message_error(car_schema: Schema) -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from test_layout import FIELDS

    junk = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=8),
                        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                        max_leaves=6)
    names = sorted(FIELDS) + ["blockLength", "version", "templateId"]

    @settings(max_examples=300, deadline=None)
    @given(replacements=st.dictionaries(st.sampled_from(names), junk, min_size=1, max_size=3))
    def check(replacements: dict[str, Any]) -> None:
        fields = dict(FIELDS)
        header = otf.default_header(car_schema, car_schema.messages[0])
        for key, value in replacements.items():
            (header if key in header else fields)[key] = value
        try:
            otf.encode(car_schema, {"header": header, "message": "Car", "fields": fields})
        except MessageError:
            pass

    check()
