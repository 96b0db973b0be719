"""Layout of the SBE reference Car example against offsets computed by hand from the spec (FIX SBE 1.0).

Root block (no padding, fields in order, constants take no space):
  serialNumber uint64 @0, modelYear uint16 @8, available uint8 enum @10, code char enum @11,
  someNumbers uint32[4] @12..28, vehicleCode char[6] @28..34, extras uint8 set @34,
  discountedModel constant (0 bytes) @35, engine composite @35..45  -> blockLength 45.
Engine: capacity uint16 @0, numCylinders uint8 @2, maxRpm constant, manufacturerCode char[3] @3,
  fuel constant, efficiency int8 @6, boosterEnabled uint8 @7, booster{BoostType char @8, horsePower uint8 @9} -> 10.
Groups: fuelFigures {speed uint16 @0, mpg float @2} -> 6, performanceFigures {octaneRating uint8 @0} -> 1,
  acceleration {mph uint16 @0, seconds float @2} -> 6; dimension header groupSizeEncoding = 4 bytes.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest

from tickline.codecs import otf
from tickline.codecs.ir import CompositeType, Schema
from tickline.codecs.schema import load_schema

from codecs_helpers import import_generated

FIELDS: dict[str, Any] = {
    "serialNumber": 1234, "modelYear": 2013, "available": "T", "code": "A", "someNumbers": [1, 2, 3, 4],
    "vehicleCode": "abcdef", "extras": ["sunRoof", "cruiseControl"], "discountedModel": "C",
    "engine": {"capacity": 2000, "numCylinders": 4, "maxRpm": 9000, "manufacturerCode": "123", "fuel": "Petrol",
               "efficiency": 35, "boosterEnabled": "T", "booster": {"BoostType": "NITROUS", "horsePower": 200}},
    "fuelFigures": [{"speed": 30, "mpg": 35.900001525878906, "usageDescription": "Urban Cycle"},
                    {"speed": 55, "mpg": 49.0, "usageDescription": "Combined Cycle"}],
    "performanceFigures": [{"octaneRating": 95, "acceleration": [{"mph": 30, "seconds": 4.0}, {"mph": 60, "seconds": 7.5}]},
                           {"octaneRating": 99, "acceleration": []}],
    "manufacturer": "Honda", "model": "Civic VTi", "activationCode": "abcdef",
}


def hand_encoded_car() -> bytes:
    """The Car message built byte by byte with struct, following the offsets in the module docstring."""
    out = struct.pack("<HHHH", 45, 1, 1, 0)
    root = bytearray(45)
    struct.pack_into("<Q", root, 0, 1234)
    struct.pack_into("<H", root, 8, 2013)
    root[10] = 1  # BooleanType.T
    root[11] = ord("A")
    struct.pack_into("<4I", root, 12, 1, 2, 3, 4)
    root[28:34] = b"abcdef"
    root[34] = 0b101  # sunRoof (bit 0) | cruiseControl (bit 2)
    struct.pack_into("<HB3sbBcB", root, 35, 2000, 4, b"123", 35, 1, b"N", 200)
    out += bytes(root)
    out += struct.pack("<HH", 6, 2)
    for speed, mpg, text in ((30, 35.9, b"Urban Cycle"), (55, 49.0, b"Combined Cycle")):
        out += struct.pack("<Hf", speed, mpg) + struct.pack("<I", len(text)) + text
    out += struct.pack("<HH", 1, 2)
    out += struct.pack("<B", 95) + struct.pack("<HH", 6, 2) + struct.pack("<Hf", 30, 4.0) + struct.pack("<Hf", 60, 7.5)
    out += struct.pack("<B", 99) + struct.pack("<HH", 6, 0)
    for text in (b"Honda", b"Civic VTi", b"abcdef"):
        out += struct.pack("<I", len(text)) + text
    return out


def test_car_root_offsets_and_block_length(car_schema: Schema) -> None:
    car = car_schema.message_by_name("Car")
    assert car.block_length == 45
    assert [(f.name, f.offset, f.size) for f in car.fields] == [
        ("serialNumber", 0, 8), ("modelYear", 8, 2), ("available", 10, 1), ("code", 11, 1),
        ("someNumbers", 12, 16), ("vehicleCode", 28, 6), ("extras", 34, 1), ("discountedModel", 35, 0),
        ("engine", 35, 10),
    ]


def test_car_composite_and_group_layout(car_schema: Schema) -> None:
    engine = car_schema.types["Engine"]
    assert isinstance(engine, CompositeType)
    assert engine.size == 10
    live = [(m.name, m.offset) for m in engine.members if getattr(m.type, "presence", "required") != "constant"]
    assert live == [("capacity", 0), ("numCylinders", 2), ("manufacturerCode", 3), ("efficiency", 6),
                    ("boosterEnabled", 7), ("booster", 8)]
    car = car_schema.message_by_name("Car")
    fuel, perf = car.groups
    assert (fuel.block_length, [(f.name, f.offset) for f in fuel.fields]) == (6, [("speed", 0), ("mpg", 2)])
    assert [d.name for d in fuel.data] == ["usageDescription"]
    assert perf.block_length == 1 and perf.groups[0].block_length == 6
    assert fuel.dimension.size == 4 and car_schema.header.size == 8
    assert [d.name for d in car.data] == ["manufacturer", "model", "activationCode"]


def test_car_bytes_match_hand_encoding_otf(car_schema: Schema) -> None:
    doc = {"header": otf.default_header(car_schema, car_schema.messages[0]), "message": "Car", "fields": FIELDS}
    assert otf.encode(car_schema, doc) == hand_encoded_car()
    decoded, used = otf.decode(car_schema, hand_encoded_car())
    assert used == len(hand_encoded_car())
    assert decoded == doc


def test_car_bytes_match_hand_encoding_generated(car_schema: Schema, tmp_path: Path, codec_kind: str) -> None:
    mod = import_generated(car_schema, tmp_path, kind=codec_kind)
    buf = bytearray(512)
    e = mod.CarEncoder().wrap_and_apply_header(buf, 0)
    e.serial_number = 1234
    e.model_year = 2013
    e.available = mod.BooleanType.T
    e.code = mod.Model.A
    e.some_numbers = (1, 2, 3, 4)
    e.vehicle_code = "abcdef"
    e.extras = mod.OptionalExtras.sunRoof | mod.OptionalExtras.cruiseControl
    eng = e.engine
    eng.capacity = 2000
    eng.num_cylinders = 4
    eng.manufacturer_code = "123"
    eng.efficiency = 35
    eng.booster_enabled = mod.BooleanType.T
    eng.booster.boost_type = mod.BoostType.NITROUS
    eng.booster.horse_power = 200
    ff = e.fuel_figures_count(2)
    for speed, mpg, text in ((30, 35.9, "Urban Cycle"), (55, 49.0, "Combined Cycle")):
        ff.next()
        ff.speed = speed
        ff.mpg = mpg
        ff.put_usage_description(text)
    pf = e.performance_figures_count(2)
    pf.next().octane_rating = 95
    acc = pf.acceleration_count(2)
    acc.next().mph = 30
    acc.seconds = 4.0
    acc.next().mph = 60
    acc.seconds = 7.5
    pf.next().octane_rating = 99
    pf.acceleration_count(0)
    e.put_manufacturer("Honda")
    e.put_model("Civic VTi")
    e.put_activation_code("abcdef")
    assert bytes(buf[:8 + e.encoded_length]) == hand_encoded_car()
    assert mod.CarEncoder.from_dict(FIELDS) == hand_encoded_car()


def test_car_generated_decoder_reads_hand_encoding(car_schema: Schema, tmp_path: Path, codec_kind: str) -> None:
    mod = import_generated(car_schema, tmp_path, kind=codec_kind)
    d = mod.decode(hand_encoded_car())
    assert isinstance(d, mod.CarDecoder)
    assert (d.serial_number, d.model_year, d.available, d.code, d.some_numbers) == (1234, 2013, mod.BooleanType.T, mod.Model.A, (1, 2, 3, 4))
    assert d.vehicle_code == "abcdef" and d.discounted_model is mod.Model.C
    assert d.extras == mod.OptionalExtras.sunRoof | mod.OptionalExtras.cruiseControl
    assert (d.engine.capacity, d.engine.max_rpm, d.engine.fuel, d.engine.booster.boost_type) == (2000, 9000, "Petrol", mod.BoostType.NITROUS)
    assert [(f.speed, f.mpg, f.usage_description()) for f in d.fuel_figures()] == [
        (30, pytest.approx(35.9, rel=1e-6), "Urban Cycle"), (55, 49.0, "Combined Cycle")]
    perf = d.performance_figures()
    assert perf.count == 2
    assert [(p.octane_rating, [(a.mph, a.seconds) for a in p.acceleration()]) for p in perf] == [
        (95, [(30, 4.0), (60, 7.5)]), (99, [])]
    assert (d.manufacturer(), d.model(), d.activation_code()) == ("Honda", "Civic VTi", "abcdef")
    assert d.encoded_length == len(hand_encoded_car()) - 8
    assert d.to_dict() == FIELDS


# -- the extension version: version 1 adds a root field, a group entry field and a trailing var data -------

def write_extension(schemas: Path, tmp: Path) -> Path:
    base = (schemas / "example-schema.xml").read_text()
    common = (schemas / "common-types.xml").read_text().split("?>", 1)[1]
    text = base.replace('<xi:include href="common-types.xml"/>', common).replace('version="0"', 'version="1"')
    text = text.replace('<field name="engine" id="9" type="Engine"/>',
                        '<field name="engine" id="9" type="Engine"/>\n'
                        '        <field name="cupHolderCount" id="100" type="uint8" presence="optional" sinceVersion="1"/>')
    text = text.replace('<field name="mpg" id="12" type="float"/>',
                        '<field name="mpg" id="12" type="float"/>\n'
                        '            <field name="co2" id="101" type="uint8" sinceVersion="1"/>')
    text = text.replace('<data name="activationCode" id="20" type="varAsciiEncoding"/>',
                        '<data name="activationCode" id="20" type="varAsciiEncoding"/>\n'
                        '        <data name="notes" id="102" type="varStringEncoding" sinceVersion="1"/>')
    path = tmp / "example-extension-schema.xml"
    path.write_text(text)
    return path


def extension_fields() -> dict[str, Any]:
    fields = dict(FIELDS)
    fields["cupHolderCount"] = 3
    fields["fuelFigures"] = [dict(f, co2=77) for f in FIELDS["fuelFigures"]]
    fields = {k: fields[k] for k in [*list(FIELDS)[:9], "cupHolderCount", *list(FIELDS)[9:]]}
    fields["notes"] = "v1 only"
    return fields


def test_extension_layout(schemas_dir: Path, tmp_path: Path) -> None:
    ext = load_schema(write_extension(schemas_dir, tmp_path))
    car = ext.message_by_name("Car")
    assert car.block_length == 46 and car.fields[-1].offset == 45
    assert car.groups[0].block_length == 7 and car.groups[0].fields[-1].offset == 6
    doc = {"header": otf.default_header(ext, car), "message": "Car", "fields": extension_fields()}
    wire = otf.encode(ext, doc)
    # hand check: the root block grew by one byte (cupHolderCount=3 at 8+45) and each fuel figure by one (co2=77)
    assert struct.unpack_from("<HHHH", wire, 0) == (46, 1, 1, 1)
    assert wire[8 + 45] == 3
    assert struct.unpack_from("<HH", wire, 8 + 46) == (7, 2)
    assert struct.unpack_from("<HfB", wire, 8 + 46 + 4) == (30, pytest.approx(35.9, rel=1e-6), 77)


def test_old_decoder_reads_new_message(car_schema: Schema, schemas_dir: Path, tmp_path: Path, codec_kind: str) -> None:
    ext = load_schema(write_extension(schemas_dir, tmp_path))
    doc = {"header": otf.default_header(ext, ext.messages[0]), "message": "Car", "fields": extension_fields()}
    wire = otf.encode(ext, doc)
    old_doc, used = otf.decode(car_schema, wire)  # the v0 schema skips the unknown block bytes
    assert old_doc["fields"] == FIELDS
    assert used == len(wire) - (4 + 7)  # the v1 var data at the end is unknown to v0
    old = import_generated(car_schema, tmp_path, kind=codec_kind)
    assert old.decode(wire).to_dict() == FIELDS


def test_new_decoder_reads_old_message(car_schema: Schema, schemas_dir: Path, tmp_path: Path, codec_kind: str) -> None:
    ext = load_schema(write_extension(schemas_dir, tmp_path))
    wire = hand_encoded_car()
    new_doc, used = otf.decode(ext, wire)
    assert used == len(wire)
    expected = extension_fields()
    expected["cupHolderCount"] = None
    expected["fuelFigures"] = [dict(f, co2=None) for f in FIELDS["fuelFigures"]]
    expected["notes"] = ""
    assert new_doc["fields"] == expected
    assert otf.encode(ext, new_doc) == wire  # acting version 0: the v0 bytes again
    new = import_generated(ext, tmp_path, kind=codec_kind)
    d = new.decode(wire)
    assert d.acting_version == 0 and d.cup_holder_count is None
    assert [(f.co2, f.usage_description()) for f in d.fuel_figures()] == [(None, "Urban Cycle"), (None, "Combined Cycle")]
    assert d.to_dict() == expected
