"""Hostile SBE bytes (issue 14 items 12 and 13): short blocks and amplifying group counts are errors that name
where they are, in the on-the-fly decoder, its JSON printer (``tickline sbe-decode``) and the generated flyweights.

Each input here is the exact shape of the finding: the Car message with its root block length set to 0 or 4 or
its fuelFigures block length set to 2; and nested groups of block length 0 whose counts of 65535 turned 192 bytes
into 700 MB and 5 s of work (512 bytes: MemoryError).
"""

from __future__ import annotations

import struct
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import pytest

from tickline.codecs import MessageError, load_schema, otf
from tickline.codecs.ir import Schema
from tickline.codecs.runtime import MAX_EMPTY_ENTRIES

from codecs_helpers import HEADER_TYPES, import_generated
from test_layout import hand_encoded_car
from test_otf import run_cli

FUEL_DIM = 8 + 45  # the fuelFigures dimension header follows the header and the 45-byte root block


def decode_both(schema: Schema, mod: ModuleType, data: bytes) -> list[str]:
    """The errors the on-the-fly decoder and the generated module (decoding fully) give for ``data``."""
    errors = []
    for decode in (lambda: otf.decode(schema, data), lambda: mod.decode(data).to_dict()):
        with pytest.raises(MessageError) as info:
            decode()
        errors.append(str(info.value))
    return errors


@pytest.fixture(scope="module")
def car_mod(car_schema: Schema, tmp_path_factory: pytest.TempPathFactory, codec_kind: str) -> ModuleType:
    return import_generated(car_schema, tmp_path_factory.mktemp("car"), kind=codec_kind)


# -- item 12: a block shorter than the fields of its acting version ---------------------------------------

@pytest.mark.parametrize("block_length", [0, 4, 44])
def test_short_root_block_is_an_error(car_schema: Schema, car_mod: ModuleType, block_length: int) -> None:
    wire = bytearray(hand_encoded_car())
    struct.pack_into("<H", wire, 0, block_length)
    expected = f"block too short: message=Car offset=8 blockLength={block_length} but version=0 has fields up to length=45 (fault=peer)"
    assert decode_both(car_schema, car_mod, bytes(wire)) == [expected, expected]


def test_short_group_block_is_an_error(car_schema: Schema, car_mod: ModuleType) -> None:
    wire = bytearray(hand_encoded_car())
    assert struct.unpack_from("<HH", wire, FUEL_DIM) == (6, 2)
    struct.pack_into("<H", wire, FUEL_DIM, 2)
    expected = (f"block too short: group=Car.fuelFigures offset={FUEL_DIM + 4} blockLength=2 but version=0 has fields "
                "up to length=6 (fault=peer)")
    assert decode_both(car_schema, car_mod, bytes(wire)) == [expected, expected]
    # the flyweight raises where the group is opened, before any entry is read
    dec = car_mod.decode(bytes(wire))
    with pytest.raises(MessageError, match="group=Car.fuelFigures"):
        dec.fuel_figures()


def test_short_nested_group_block_is_an_error(car_schema: Schema, car_mod: ModuleType) -> None:
    wire = bytearray(hand_encoded_car())
    at = wire.index(struct.pack("<HH", 6, 2), FUEL_DIM + 4)  # performanceFigures[0].acceleration's header
    struct.pack_into("<H", wire, at, 5)
    expected = (f"block too short: group=Car.performanceFigures.acceleration offset={at + 4} blockLength=5 but version=0 "
                "has fields up to length=6 (fault=peer)")
    assert decode_both(car_schema, car_mod, bytes(wire)) == [expected, expected]


VERSIONED = """<sbe:message name="V" id="1">
<field name="a" id="1" type="uint32"/>
<field name="b" id="2" type="uint32" sinceVersion="1"/>
<group name="g" id="3"><field name="x" id="4" type="uint16"/><field name="y" id="5" type="uint16" sinceVersion="2"/></group>
</sbe:message>"""


def v_message(version: int, root: int, group: int) -> bytes:
    return (struct.pack("<HHHH", root, 1, 7, version) + bytes(root) + struct.pack("<HH", group, 1) + bytes(group))


def test_a_block_needs_only_the_fields_of_its_version(write_schema: Callable[..., Path], tmp_path: Path, codec_kind: str) -> None:
    schema = load_schema(write_schema(VERSIONED, version=2))
    mod = import_generated(schema, tmp_path, kind=codec_kind)
    # an older producer's shorter blocks are fine: the newer fields read as null
    for data in (v_message(0, 4, 2), v_message(1, 8, 2)):
        doc, used = otf.decode(schema, data)
        assert used == len(data)
        assert mod.decode(data).to_dict() == doc["fields"]
    assert otf.decode(schema, v_message(0, 4, 2))[0]["fields"] == {"a": 0, "b": None, "g": [{"x": 0, "y": None}]}
    # the same lengths are too short for the version the header claims
    assert decode_both(schema, mod, v_message(1, 4, 2)) == [
        "block too short: message=V offset=8 blockLength=4 but version=1 has fields up to length=8 (fault=peer)"] * 2
    assert decode_both(schema, mod, v_message(2, 8, 2)) == [
        "block too short: group=V.g offset=20 blockLength=2 but version=2 has fields up to length=4 (fault=peer)"] * 2


def test_short_root_block_through_sbe_decode(car_schema: Schema, tmp_path: Path, schemas_dir: Path,
                                             capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    wire = bytearray(hand_encoded_car())
    struct.pack_into("<H", wire, 0, 0)
    (tmp_path / "m.bin").write_bytes(bytes(wire))
    rc, out, err = run_cli(["sbe-decode", str(schemas_dir / "example-schema.xml"), str(tmp_path / "m.bin")], capsys, monkeypatch)
    assert (rc, out) == (1, b"")
    assert "block too short: message=Car offset=8 blockLength=0 but version=0 has fields up to length=45" in err


# -- item 13: counts the bytes cannot hold, and entries that take no bytes ----------------------------------

# Groups whose fields are newer than version 0: a version-0 producer writes them with block length 0, legally.
NESTED = """<sbe:message name="N" id="1">
<group name="outer" id="2"><field name="a" id="3" type="uint32" sinceVersion="1"/>
<group name="inner" id="4"><field name="b" id="5" type="uint32" sinceVersion="1"/></group>
</group>
</sbe:message>"""


def nested_message(outer: int, inner_counts: list[int]) -> bytes:
    """Header, empty root block, outer dimensions (block length 0), then each outer entry's inner dimensions."""
    out = struct.pack("<HHHH", 0, 1, 7, 0) + struct.pack("<HH", 0, outer)
    return out + b"".join(struct.pack("<HH", 0, n) for n in inner_counts)


def write_nested(directory: Path) -> Path:
    path = directory / "nested.xml"
    path.write_text('<?xml version="1.0" encoding="UTF-8"?>\n<sbe:messageSchema xmlns:sbe="http://fixprotocol.io/2016/sbe" '
                    f'package="t" id="7" version="1" byteOrder="littleEndian">\n{HEADER_TYPES}{NESTED}\n</sbe:messageSchema>\n')
    return path


@pytest.fixture(scope="module")
def nested(tmp_path_factory: pytest.TempPathFactory, codec_kind: str) -> tuple[Schema, ModuleType]:
    directory = tmp_path_factory.mktemp("nested")
    schema = load_schema(write_nested(directory))
    return schema, import_generated(schema, directory, kind=codec_kind)


@pytest.mark.parametrize("size", [192, 512])
def test_empty_nested_entries_are_bounded(nested: tuple[Schema, ModuleType], size: int) -> None:
    schema, mod = nested
    outer = (size - 12) // 4  # every byte after the outer header is an inner header claiming 65535 empty entries
    data = nested_message(outer, [65535] * outer)
    assert len(data) == size
    expected = (f"too many empty group entries: group=N.outer.inner offset=20 numInGroup=65535 entries take no bytes, "
                f"and one message may hold at most {MAX_EMPTY_ENTRIES} of them (fault=peer)")
    assert decode_both(schema, mod, data) == [expected, expected]
    # iterating the flyweights by hand stops at the same place
    entries = 0
    with pytest.raises(MessageError, match="too many empty group entries"):
        for o in mod.decode(data).outer():
            for _ in o.inner():
                entries += 1
    assert entries == MAX_EMPTY_ENTRIES


@pytest.mark.parametrize("size", [192, 512])
def test_count_the_bytes_cannot_hold_is_refused_before_any_work(nested: tuple[Schema, ModuleType], size: int) -> None:
    schema, mod = nested
    inner = (size - 12) // 4
    data = nested_message(65535, [65535] * inner)
    assert len(data) == size
    expected = (f"group count too large: group=N.outer offset=12 numInGroup=65535 entries of at least 4 bytes need "
                f"{65535 * 4} but {size - 12} bytes remain (fault=peer)")
    assert decode_both(schema, mod, data) == [expected, expected]
    with pytest.raises(MessageError, match="group count too large"):
        mod.decode(data).outer()


def test_the_allowance_of_empty_entries_is_exact(nested: tuple[Schema, ModuleType]) -> None:
    schema, mod = nested
    data = nested_message(2, [MAX_EMPTY_ENTRIES - 1, 1])
    doc, used = otf.decode(schema, data)
    assert used == len(data)
    outer = doc["fields"]["outer"]
    assert [len(o["inner"]) for o in outer] == [MAX_EMPTY_ENTRIES - 1, 1] and outer[1]["inner"] == [{"b": None}]
    assert mod.decode(data).to_dict() == doc["fields"]
    errors = decode_both(schema, mod, nested_message(2, [MAX_EMPTY_ENTRIES - 1, 2]))
    assert errors == [f"too many empty group entries: group=N.outer.inner offset=20 numInGroup=2 entries take no bytes, "
                      f"and one message may hold at most {MAX_EMPTY_ENTRIES} of them (fault=peer)"] * 2


def test_car_count_beyond_the_buffer_is_refused(car_schema: Schema, car_mod: ModuleType) -> None:
    wire = bytearray(hand_encoded_car())
    struct.pack_into("<H", wire, FUEL_DIM + 2, 65535)
    room = len(wire) - FUEL_DIM - 4
    expected = (f"group count too large: group=Car.fuelFigures offset={FUEL_DIM + 4} numInGroup=65535 entries of at least "
                f"10 bytes need {65535 * 10} but {room} bytes remain (fault=peer)")
    assert decode_both(car_schema, car_mod, bytes(wire)) == [expected, expected]


def test_nested_amplification_through_sbe_decode(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_nested(tmp_path)
    data = nested_message(45, [65535] * 45)
    (tmp_path / "m.bin").write_bytes(data)
    rc, out, err = run_cli(["sbe-decode", "--all", str(path), str(tmp_path / "m.bin")], capsys, monkeypatch)
    assert (rc, out) == (1, b"")
    assert "too many empty group entries: group=N.outer.inner" in err
