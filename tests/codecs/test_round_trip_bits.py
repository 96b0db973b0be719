"""Issue 16 item 5 (a 365-byte message re-encoded with one byte different): two causes that do exactly that,
on a 365-byte Car message: a set bit no choice names (a newer producer's choice) was dropped by the JSON
form, and a float -NaN (sign bit set) came back as NaN.  Both codecs now keep those bits."""

from __future__ import annotations

import struct
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tickline.codecs import MessageError, load_schema, otf
from tickline.codecs.ir import Schema

from codecs_helpers import import_generated
from test_layout import FIELDS


@pytest.fixture(scope="module")
def car(tmp_path_factory: pytest.TempPathFactory, schemas_dir: Path, codec_kind: str) -> tuple[Schema, ModuleType]:
    schema = load_schema(schemas_dir / "example-schema.xml")
    return schema, import_generated(schema, tmp_path_factory.mktemp("bits"), kind=codec_kind)


def car_365(schema: Schema) -> bytearray:
    fields: dict[str, Any] = dict(FIELDS)
    short = otf.encode(schema, {"message": "Car", "fields": fields})
    fields["model"] = FIELDS["model"] + "x" * (365 - len(short))
    data = bytearray(otf.encode(schema, {"message": "Car", "fields": fields}))
    assert len(data) == 365
    return data


def assert_round_trips(schema: Schema, mod: ModuleType, data: bytes) -> dict[str, Any]:
    doc, used = otf.decode(schema, data)
    assert used == len(data)
    assert otf.encode(schema, otf.from_json(otf.to_json(doc))) == data
    generated = mod.decode(data).to_dict()
    assert generated == doc["fields"]
    assert mod.CarEncoder.from_dict(generated) == data
    return doc["fields"]


def test_a_set_bit_no_choice_names_survives_decode_and_encode(car: tuple[Schema, ModuleType]) -> None:
    schema, mod = car
    data = car_365(schema)
    extras = schema.message_by_name("Car").fields[6]
    assert extras.name == "extras" and extras.offset == 34
    data[8 + 34] |= 1 << 5 | 1 << 7  # OptionalExtras names bits 0..2 only
    fields = assert_round_trips(schema, mod, bytes(data))
    assert fields["extras"] == ["sunRoof", "cruiseControl", 5, 7]  # names first, then unnamed bit numbers
    assert int(mod.decode(bytes(data)).extras) == 0b1010_0101
    with pytest.raises(MessageError, match=r"Car.extras: bit=8 is out of range for set OptionalExtras of 8 bits"):
        otf.encode(schema, {"message": "Car", "fields": {**fields, "extras": [8]}})


def test_a_negative_nan_keeps_its_sign(car: tuple[Schema, ModuleType]) -> None:
    schema, mod = car
    data = car_365(schema)
    mpg = 8 + 45 + 4 + 2  # header, root block, fuelFigures dimensions, speed: the first entry's mpg
    assert struct.unpack_from("<f", data, mpg)[0] == pytest.approx(35.9)
    data[mpg:mpg + 4] = b"\x00\x00\xc0\xff"  # -NaN as a float: NaN (0x7fc00000) but for the sign byte
    fields = assert_round_trips(schema, mod, bytes(data))
    assert fields["fuelFigures"][0]["mpg"] == "-NaN"
    data[mpg:mpg + 4] = b"\x00\x00\xc0\x7f"
    assert assert_round_trips(schema, mod, bytes(data))["fuelFigures"][0]["mpg"] == "NaN"
