"""``tickline sbe-compat``: one schema pair per kind of break, and a compatible evolution that passes.

Each NEW schema is the OLD one (``BASE``) with one edit; the test asserts exactly which breaks are found,
in which direction, and (for the compatible pair) that real bytes written with one schema decode with
the other.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest

import tickline.cli
from tickline.codecs import compat, load_schema, otf

TYPES = """<types>
<enum name="Side" encodingType="uint8"><validValue name="Buy">1</validValue><validValue name="Sell">2</validValue>{enum_extra}</enum>
<set name="Flags" encodingType="uint8">{choices}</set>
</types>"""

BASE = """{types}
<sbe:message name="Order" id="1"{msg_attrs}>
{fields}
{groups}
{data}
</sbe:message>"""

FIELDS = ('<field name="id" id="1" type="uint64"/>\n<field name="price" id="2" type="int64"/>\n'
          '<field name="side" id="3" type="Side"/>')
FILLS = '<group name="fills" id="10" dimensionType="groupSizeEncoding"><field name="qty" id="11" type="uint32"/></group>'
LEGS = '<group name="legs" id="12" dimensionType="groupSizeEncoding"><field name="ratio" id="13" type="uint16"/></group>'
NOTE = '<data name="note" id="20" type="varDataEncoding"/>'


CHOICES = '<choice name="Urgent">0</choice><choice name="Hidden">1</choice>'


def body(*, fields: str = FIELDS, groups: str = FILLS + "\n" + LEGS, data: str = NOTE, enum_extra: str = "",
         msg_attrs: str = "", choices: str = CHOICES) -> str:
    return BASE.format(types=TYPES.format(enum_extra=enum_extra, choices=choices), fields=fields, groups=groups,
                       data=data, msg_attrs=msg_attrs)


# (name, NEW's version, NEW's body, {kind: directions} expected)
CASES = [
    ("field-moved", 2,
     body(fields='<field name="id" id="1" type="uint64"/>\n<field name="ts" id="4" type="uint64" sinceVersion="2"/>\n'
                 '<field name="price" id="2" type="int64"/>\n<field name="side" id="3" type="Side"/>'),
     {"field-moved": ["new_by_old", "old_by_new"], "field-inserted": ["new_by_old"]}),
    ("field-retyped", 2,
     body(fields='<field name="id" id="1" type="uint64"/>\n<field name="price" id="2" type="int64"/>\n'
                 '<field name="side" id="3" type="uint16"/>'),
     {"field-retyped": ["new_by_old", "old_by_new"]}),
    ("block-shrunk", 2, body(msg_attrs=''),  # OLD says blockLength=32 (see test), NEW has the computed 17
     {"block-shrunk": ["new_by_old"]}),
    ("field-added-without-sinceVersion", 2,
     body(fields=FIELDS + '\n<field name="qty" id="5" type="uint32"/>'),
     {"field-added-without-sinceVersion": ["old_by_new"]}),
    ("group-reordered", 2, body(groups=LEGS + "\n" + FILLS),
     {"group-reordered": ["new_by_old", "old_by_new"]}),
    ("group-added-before-var-data", 2,
     body(groups=FILLS + "\n" + LEGS + '\n<group name="allocs" id="14" dimensionType="groupSizeEncoding" sinceVersion="2">'
          '<field name="acct" id="15" type="uint32"/></group>'),
     {"group-added-not-at-end": ["new_by_old"]}),
    ("group-field-added-without-sinceVersion", 2,
     body(groups='<group name="fills" id="10" dimensionType="groupSizeEncoding"><field name="qty" id="11" type="uint32"/>'
                 '<field name="px" id="16" type="int64"/></group>\n' + LEGS),
     {"field-added-without-sinceVersion": ["old_by_new"]}),
    ("enum-value-removed", 2,
     body().replace('<validValue name="Sell">2</validValue>', ''),
     {"enum-value-removed": ["old_by_new"]}),
    ("enum-value-added-without-sinceVersion", 2,
     body(enum_extra='<validValue name="Cross">3</validValue>'),
     {"enum-value-added-without-sinceVersion": ["new_by_old"]}),
    ("field-removed", 2,
     body(fields='<field name="id" id="1" type="uint64"/>\n<field name="side" id="3" type="Side"/>'),
     {"field-removed": ["new_by_old"], "field-moved": ["new_by_old", "old_by_new"], "block-shrunk": ["new_by_old"]}),
    ("var-data-added-inside-a-group-entry", 2,
     body(groups='<group name="fills" id="10" dimensionType="groupSizeEncoding"><field name="qty" id="11" type="uint32"/>'
                 '<data name="venue" id="17" type="varDataEncoding" sinceVersion="2"/></group>\n' + LEGS),
     {"var-data-added-not-at-end": ["new_by_old"]}),
    ("var-data-removed", 2, body(data=""),
     {"var-data-removed": ["new_by_old", "old_by_new"]}),
    ("version-not-increased", 1, body(msg_attrs=' blockLength="40"'),
     {"version-not-increased": ["old_by_new"]}),
]


@pytest.mark.parametrize("name,version,new_body,expected", CASES, ids=[c[0] for c in CASES])
def test_each_break_is_found_with_its_direction(write_schema: Callable[..., Path], name: str, version: int,
                                                new_body: str, expected: dict[str, list[str]]) -> None:
    old_body = body(msg_attrs=' blockLength="32"') if name == "block-shrunk" else body()
    old = load_schema(write_schema(old_body, name="old.xml", version=1))
    new = load_schema(write_schema(new_body, name="new.xml", version=version))
    report = compat.check(old, new)
    assert not report.compatible
    assert report.schema_breaks == []
    [msg] = report.messages
    found = {b.kind: list(b.directions) for b in msg.breaks}
    assert found == expected, msg.breaks
    for direction in ("new_by_old", "old_by_new"):
        assert msg.ok(direction) == (not any(direction in d for d in expected.values()))


def compatible_new() -> str:
    return body(fields=FIELDS + '\n<field name="qty" id="5" type="uint32" sinceVersion="2"/>',
                enum_extra='<validValue name="Cross" sinceVersion="2">3</validValue>',
                data=NOTE + '\n<data name="memo" id="21" type="varDataEncoding" sinceVersion="2"/>')


@pytest.mark.parametrize("choices,expected", [
    ('<choice name="Urgent">0</choice>', {"set-choice-removed": ["old_by_new"]}),
    ('<choice name="Urgent">0</choice><choice name="Hidden">2</choice>', {"set-choice-changed": ["new_by_old", "old_by_new"]}),
    (CHOICES + '<choice name="Iceberg">2</choice>', {"set-choice-added-without-sinceVersion": ["new_by_old"]}),
    (CHOICES + '<choice name="Iceberg" sinceVersion="2">2</choice>', {}),
])
def test_set_choices(write_schema: Callable[..., Path], choices: str, expected: dict[str, list[str]]) -> None:
    flags = FIELDS + '\n<field name="flags" id="6" type="Flags"/>'
    old = load_schema(write_schema(body(fields=flags), name="old.xml", version=1))
    new = load_schema(write_schema(body(fields=flags, choices=choices), name="new.xml", version=2))
    [msg] = compat.check(old, new).messages
    assert {b.kind: list(b.directions) for b in msg.breaks} == expected
    if expected:
        assert "Order.flags" in {b.path for b in msg.breaks}


def test_fields_and_data_appended_with_sinceVersion_and_a_bumped_version_pass(write_schema: Callable[..., Path]) -> None:
    old = load_schema(write_schema(body(), name="old.xml", version=1))
    new = load_schema(write_schema(compatible_new(), name="new.xml", version=2))
    report = compat.check(old, new)
    assert report.compatible, report.format()
    assert report.messages[0].breaks == []

    # And the claim holds on real bytes: NEW's message read with OLD, OLD's read with NEW.
    new_doc = {"header": otf.default_header(new, new.messages[0]), "message": "Order",
               "fields": {"id": 7, "price": -5, "side": "Cross", "qty": 9, "fills": [{"qty": 1}], "legs": [],
                          "note": "6869", "memo": "ff"}}
    as_old, used = otf.decode(old, otf.encode(new, new_doc))
    assert as_old["fields"] == {"id": 7, "price": -5, "side": 3, "fills": [{"qty": 1}], "legs": [], "note": "6869"}
    old_doc = {"header": otf.default_header(old, old.messages[0]), "message": "Order",
               "fields": {"id": 7, "price": -5, "side": "Sell", "fills": [], "legs": [{"ratio": 2}], "note": ""}}
    as_new, _ = otf.decode(new, otf.encode(old, old_doc))
    assert as_new["fields"] == {**old_doc["fields"], "qty": None, "memo": ""}


def test_schema_level_breaks_and_added_removed_messages(write_schema: Callable[..., Path]) -> None:
    old = load_schema(write_schema(body() + '\n<sbe:message name="Cancel" id="2"><field name="id" id="1" type="uint64"/>'
                                   '</sbe:message>', name="old.xml", version=1))
    new_text = body() + '\n<sbe:message name="Amend" id="3"><field name="id" id="1" type="uint64"/></sbe:message>'
    new = load_schema(write_schema(new_text, name="new.xml", version=0))
    report = compat.check(old, new)
    assert [b.kind for b in report.schema_breaks] == ["version-decreased"]
    status = {m.name: (m.status, m.ok("new_by_old"), m.ok("old_by_new")) for m in report.messages}
    assert status == {"Order": ("common", True, True), "Cancel": ("removed", True, False),
                      "Amend": ("added", True, True)}


def test_cli_exit_status_and_json(write_schema: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    old = write_schema(body(), name="old.xml", version=1)
    good = write_schema(compatible_new(), name="good.xml", version=2)
    bad = write_schema(body(fields=FIELDS + '\n<field name="qty" id="5" type="uint32"/>'), name="bad.xml", version=2)
    assert tickline.cli.main(["sbe-compat", str(old), str(good)]) == 0
    assert "Order id=1: NEW read by OLD ok, OLD read by NEW ok" in capsys.readouterr().out
    assert tickline.cli.main(["sbe-compat", str(old), str(bad), "--json"]) == 3
    doc = json.loads(capsys.readouterr().out)
    assert (doc["compatible"], doc["new_by_old"], doc["old_by_new"]) == (False, True, False)
    assert doc["messages"][0]["breaks"][0]["kind"] == "field-added-without-sinceVersion"
    assert doc["messages"][0]["breaks"][0]["path"] == "Order.qty"
    # A CI that only needs old readers to keep working asks for that direction alone.
    assert tickline.cli.main(["sbe-compat", str(old), str(bad), "--direction", "new-by-old"]) == 0
    capsys.readouterr()
    assert tickline.cli.main(["sbe-compat", str(old), str(old.parent / "missing.xml")]) == 1
    assert "missing.xml" in capsys.readouterr().err


def test_sbe_tools_extension_schema_is_compatible_and_real_schemas_with_themselves(schemas_dir: Path,
                                                                                   tmp_path: Path) -> None:
    from test_layout import write_extension

    old = load_schema(schemas_dir / "example-schema.xml")
    report = compat.check(old, load_schema(write_extension(schemas_dir, tmp_path)))
    assert report.compatible, report.format()
    for name in ("FixBinary.xml", "ilinkbinary.xml"):
        schema = load_schema(schemas_dir / name)
        assert compat.check(schema, schema).compatible
