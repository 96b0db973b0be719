"""The JSON form a schema author reads and writes: text var data as text, and ``sbe-encode`` filling the header."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, Callable

import pytest

import tickline.cli
from tickline.codecs import MessageError, load_schema, otf

from codecs_helpers import import_generated

TEXT_TYPES = """<types>
<composite name="utf8Data"><type name="length" primitiveType="uint16"/><type name="varData" primitiveType="uint8" length="0" characterEncoding="UTF-8"/></composite>
<composite name="latinData"><type name="length" primitiveType="uint8"/><type name="varData" primitiveType="uint8" characterEncoding="ISO-8859-1"/></composite>
</types>
<sbe:message name="Note" id="3">
<field name="n" id="1" type="uint32"/>
<field name="extra" id="2" type="uint16" sinceVersion="1"/>
<data name="text" id="10" type="utf8Data"/>
<data name="label" id="11" type="latinData"/>
<data name="blob" id="12" type="varDataEncoding"/>
</sbe:message>"""


def wire(n: int, text: bytes, label: bytes, blob: bytes, version: int = 1, block_length: int = 6) -> bytes:
    return (struct.pack("<HHHH", block_length, 3, 7, version) + struct.pack("<I", n) + bytes(block_length - 4)
            + struct.pack("<H", len(text)) + text + struct.pack("<B", len(label)) + label
            + struct.pack("<I", len(blob)) + blob)


def test_text_var_data_reads_as_text_and_binary_as_hex(write_schema: Callable[..., Path], tmp_path: Path) -> None:
    schema = load_schema(write_schema(TEXT_TYPES, version=1))
    data = wire(5, "größe €".encode(), b"caf\xe9", b"\x00\xff")
    doc, used = otf.decode(schema, data)
    assert used == len(data)
    assert doc["fields"] == {"n": 5, "extra": 0, "text": "größe €", "label": "café", "blob": "00ff"}
    assert otf.encode(schema, doc) == data
    mod = import_generated(schema, tmp_path)
    assert mod.decode(data).to_dict() == doc["fields"]  # the generated codec's JSON form is the same
    assert mod.NoteEncoder.from_dict(doc["fields"]) == data


def test_text_var_data_that_is_not_valid_text_still_round_trips(write_schema: Callable[..., Path], tmp_path: Path) -> None:
    schema = load_schema(write_schema(TEXT_TYPES, version=1))
    data = wire(1, b"ok\xff\xfe", b"", b"")  # not UTF-8: kept as lone surrogates, printed \\u-escaped
    doc, _ = otf.decode(schema, data)
    assert doc["fields"]["text"] == "ok\udcff\udcfe"
    text = otf.to_json(doc)
    text.encode("utf-8")  # the printed JSON is valid UTF-8
    assert otf.encode(schema, otf.from_json(text)) == data
    assert import_generated(schema, tmp_path).NoteEncoder.from_dict(doc["fields"]) == data


def test_text_var_data_refuses_hex_lists_and_unrepresentable_text(write_schema: Callable[..., Path]) -> None:
    schema = load_schema(write_schema(TEXT_TYPES, version=1))
    base: dict[str, Any] = {"message": "Note", "fields": {"n": 1, "extra": 0, "text": "", "label": "", "blob": ""}}
    with pytest.raises(MessageError, match=r"var data name=label must be a string, got value=\[1\]"):
        otf.encode(schema, {**base, "fields": {**base["fields"], "label": [1]}})
    with pytest.raises(MessageError, match=r"var data name=label value='€' is not representable in characterEncoding=ISO-8859-1"):
        otf.encode(schema, {**base, "fields": {**base["fields"], "label": "€"}})
    with pytest.raises(MessageError, match="var data name=blob is not valid hex"):
        otf.encode(schema, {**base, "fields": {**base["fields"], "blob": "zz"}})


def test_sbe_encode_fills_the_header_left_out(write_schema: Callable[..., Path], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = write_schema(TEXT_TYPES, version=1)
    schema = load_schema(path)
    fields = {"n": 9, "extra": 2, "text": "hi", "label": "", "blob": "ab"}
    # Written with the header as sbe-decode prints it, and without: the same bytes.
    (tmp_path / "full.json").write_text(json.dumps({"header": otf.default_header(schema, schema.messages[0]),
                                                    "message": "Note", "fields": fields}))
    (tmp_path / "bare.json").write_text(json.dumps({"message": "Note", "fields": fields}))
    assert tickline.cli.main(["sbe-encode", str(path), str(tmp_path / "full.json"), "-o", str(tmp_path / "full.bin")]) == 0
    assert tickline.cli.main(["sbe-encode", str(path), str(tmp_path / "bare.json"), "-o", str(tmp_path / "bare.bin")]) == 0
    expected = wire(9, b"hi", b"", b"\xab")
    expected = expected[:12] + struct.pack("<H", 2) + expected[14:]  # extra=2
    assert (tmp_path / "bare.bin").read_bytes() == (tmp_path / "full.bin").read_bytes() == expected
    # A partial header keeps what it gives; an older version gets that version's root block length.
    old = otf.encode(schema, {"header": {"version": 0}, "message": "Note",
                              "fields": {"n": 9, "text": "hi", "label": "", "blob": "ab"}})
    assert old == wire(9, b"hi", b"", b"\xab", version=0, block_length=4)
    assert otf.decode(schema, old)[0]["fields"]["extra"] is None
    (tmp_path / "bad.json").write_text(json.dumps({"header": {"blockLength": -1}, "message": "Note", "fields": fields}))
    assert tickline.cli.main(["sbe-encode", str(path), str(tmp_path / "bad.json")]) == 1
    assert "header blockLength=-1 must be a non-negative integer" in capsys.readouterr().err


def test_sbe_decode_prints_text_var_data_as_text(schemas_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from test_layout import hand_encoded_car

    (tmp_path / "car.bin").write_bytes(hand_encoded_car())
    assert tickline.cli.main(["sbe-decode", str(schemas_dir / "example-schema.xml"), str(tmp_path / "car.bin")]) == 0
    out = capsys.readouterr().out
    assert '"manufacturer": "Honda"' in out and '"usageDescription": "Urban Cycle"' in out
    (tmp_path / "car.json").write_text(out)
    assert tickline.cli.main(["sbe-encode", str(schemas_dir / "example-schema.xml"), str(tmp_path / "car.json"),
                              "-o", str(tmp_path / "again.bin")]) == 0
    assert (tmp_path / "again.bin").read_bytes() == hand_encoded_car()
