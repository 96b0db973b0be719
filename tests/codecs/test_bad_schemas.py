"""Every bad-schema rule, with the exact error: file, line, element and whose fault it is.

Schemas come from the ``write_schema`` fixture: line 1 is the XML declaration, line 2 messageSchema,
lines 3-7 the standard header types, so the test body starts on line 8.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from tickline.codecs import SchemaError, load_schema
from tickline.codecs.gen_python import generate

PREFIX = "schema error (the schema author's fault, fix the schema): file=schema.xml "
WARN = "schema warning (the schema author's, tickline worked around it): file=schema.xml "

M = '<sbe:message name="M" id="1">'
END = "</sbe:message>"

CASES = [
    # -- unknown type references ---------------------------------------------------------------------------
    ("unknown-field-type", f'{M}\n<field name="a" id="1" type="Nope"/>\n{END}', 0,
     "line=9 element=field name=a: unknown type reference type=Nope"),
    ("unknown-ref", '<types>\n<composite name="C"><ref name="x" type="Nope"/></composite>\n</types>', 0,
     "line=9 element=ref name=x: unknown type reference type=Nope"),
    ("unknown-enum-encoding", '<types>\n<enum name="E" encodingType="Nope"><validValue name="A">1</validValue></enum>\n</types>', 0,
     "line=9 element=enum name=E: unknown type reference encodingType=Nope"),
    ("unknown-dimension", f'{M}\n<group name="g" id="1" dimensionType="Nope"/>\n{END}', 0,
     "line=9 element=group name=g: unknown type reference dimensionType=Nope"),
    ("unknown-data-type", f'{M}\n<data name="d" id="1" type="Nope"/>\n{END}', 0,
     "line=9 element=data name=d: unknown type reference type=Nope"),
    ("unknown-valueRef", '<types>\n<enum name="E" encodingType="uint8"><validValue name="A">1</validValue></enum>\n</types>\n'
     f'{M}\n<field name="a" id="1" type="E" presence="constant" valueRef="E.B"/>\n{END}', 0,
     "line=12 element=field name=a: valueRef=E.B: enum E has no validValue B"),
    ("unknown-headerType", "", 0, "line=2 element=messageSchema: headerType=hdr does not name a composite type"),
    # -- duplicates ----------------------------------------------------------------------------------------------
    ("duplicate-message-id", f'{M}{END}\n<sbe:message name="N" id="1"/>', 0,
     "line=9 element=message name=N: duplicate message id=1 (also at line=8)"),
    ("duplicate-message-name", f'{M}{END}\n<sbe:message name="M" id="2"/>', 0,
     "line=9 element=message name=M: duplicate message name=M (as class M, also at line=8)"),
    ("message-names-same-class", f'{M}{END}\n<sbe:message name="m" id="2"/>', 0,
     "line=9 element=message name=m: duplicate message name=m (as class M, also at line=8)"),
    ("message-name-is-a-type-class", '<types>\n<enum name="m" encodingType="uint8"><validValue name="A">1</validValue></enum>\n'
     f'</types>\n{M}{END}', 0,
     "line=11 element=message name=M: message name=M collides with a type of the same name in generated code"),
    ("duplicate-type-name", '<types>\n<type name="T" primitiveType="uint8"/>\n<type name="T" primitiveType="uint16"/>\n</types>', 0,
     "line=10 element=type name=T: duplicate type name=T (first defined at line=9 file=schema.xml)"),
    ("duplicate-field-name", f'{M}\n<field name="a" id="1" type="uint8"/>\n<field name="a" id="2" type="uint8"/>\n{END}', 0,
     "line=10 element=field name=a: duplicate name=a in message M (also at line=9)"),
    ("duplicate-field-id", f'{M}\n<field name="a" id="1" type="uint8"/>\n<field name="b" id="1" type="uint8"/>\n{END}', 0,
     "line=10 element=field name=b: duplicate id=1 in message M (also name=a)"),
    ("duplicate-validValue", '<types>\n<enum name="E" encodingType="uint8">\n<validValue name="A">1</validValue>\n'
     '<validValue name="B">1</validValue>\n</enum>\n</types>', 0,
     "line=11 element=validValue name=B: duplicate validValue value=1 in enum E (also A)"),
    ("duplicate-choice-bit", '<types>\n<set name="S" encodingType="uint8">\n<choice name="a">0</choice>\n'
     '<choice name="b">0</choice>\n</set>\n</types>', 0,
     "line=11 element=choice name=b: duplicate choice bit=0 in set S (also a)"),
    # -- offsets and block lengths ------------------------------------------------------------------------------------
    ("overlapping-field-offset", f'{M}\n<field name="a" id="1" type="uint32"/>\n<field name="b" id="2" type="uint8" offset="2"/>\n{END}', 0,
     "line=10 element=field name=b: offset=2 overlaps the previous field, which ends at offset=4"),
    ("overlapping-member-offset", '<types>\n<composite name="C">\n<type name="a" primitiveType="uint64"/>\n'
     '<type name="b" primitiveType="uint8" offset="7"/>\n</composite>\n</types>', 0,
     "line=11 element=type name=b: offset=7 overlaps the previous member, which ends at offset=8"),
    ("blockLength-too-small", '<sbe:message name="M" id="1" blockLength="4">\n<field name="a" id="1" type="uint64"/>\n' + END, 0,
     "line=8 element=message name=M: blockLength=4 is less than the fields need (computed=8)"),
    # -- ordering ----------------------------------------------------------------------------------------------------------
    ("field-after-group", f'{M}\n<group name="g" id="1"><field name="x" id="2" type="uint8"/></group>\n'
     f'<field name="a" id="3" type="uint8"/>\n{END}', 0,
     "line=10 element=field name=a: field after a group (fields must come before groups and var data)"),
    ("group-after-data", f'{M}\n<data name="d" id="1" type="varDataEncoding"/>\n<group name="g" id="2"/>\n{END}', 0,
     "line=10 element=group name=g: group after var data (groups must come before var data)"),
    ("field-after-data", f'{M}\n<data name="d" id="1" type="varDataEncoding"/>\n<field name="a" id="3" type="uint8"/>\n{END}', 0,
     "line=10 element=field name=a: field after var data (fields must come before groups and var data)"),
    # -- values ------------------------------------------------------------------------------------------------------------
    ("nullValue-out-of-range", '<types>\n<type name="T" primitiveType="uint8" presence="optional" nullValue="300"/>\n</types>', 0,
     "line=9 element=type name=T: nullValue=300 is out of range for uint8 [0, 255]"),
    ("nullValue-not-a-number", '<types>\n<type name="T" primitiveType="int32" presence="optional" nullValue="abc"/>\n</types>', 0,
     "line=9 element=type name=T: nullValue='abc' is not a valid int32"),
    ("nullValue-on-required", '<types>\n<type name="T" primitiveType="int32" nullValue="0"/>\n</types>', 0,
     "line=9 element=type name=T: nullValue=0 given but presence=required (only optional types have a null value)"),
    ("nullValue-inside-range", '<types>\n<type name="T" primitiveType="uint8" presence="optional" minValue="0" maxValue="10" nullValue="5"/>\n</types>', 0,
     "line=9 element=type name=T: nullValue=5 lies inside [minValue, maxValue]; it would be a valid value"),
    ("enum-value-out-of-range", '<types>\n<enum name="E" encodingType="uint8">\n<validValue name="A">256</validValue>\n</enum>\n</types>', 0,
     "line=10 element=validValue name=A: value=256 is out of range for uint8 [0, 255]"),
    ("char-enum-value", '<types>\n<enum name="E" encodingType="char">\n<validValue name="A">AB</validValue>\n</enum>\n</types>', 0,
     "line=10 element=validValue name=A: char enum value='AB' must be exactly one character"),
    ("choice-bit-out-of-range", '<types>\n<set name="S" encodingType="uint8">\n<choice name="a">8</choice>\n</set>\n</types>', 0,
     "line=10 element=choice name=a: choice bit=8 is out of range for uint8 [0, 7]"),
    ("constant-without-value", f'{M}\n<field name="a" id="1" type="uint8" presence="constant"/>\n{END}', 0,
     "line=9 element=field name=a: constant field needs valueRef=Enum.Value (or a constant type)"),
    ("unknown-primitive", '<types>\n<type name="T" primitiveType="uint128"/>\n</types>', 0,
     "line=9 element=type name=T: unknown primitiveType=uint128"),
    # -- versions ----------------------------------------------------------------------------------------------------------
    ("field-sinceVersion", f'{M}\n<field name="a" id="1" type="uint8" sinceVersion="3"/>\n{END}', 2,
     "line=9 element=field name=a: sinceVersion=3 is greater than the schema version=2"),
    ("message-sinceVersion", '<sbe:message name="M" id="1" sinceVersion="1"/>', 0,
     "line=8 element=message name=M: sinceVersion=1 is greater than the schema version=0"),
    ("validValue-sinceVersion", '<types>\n<enum name="E" encodingType="uint8">\n<validValue name="A" sinceVersion="5">1</validValue>\n</enum>\n</types>', 4,
     "line=10 element=validValue name=A: sinceVersion=5 is greater than the schema version=4"),
    # -- names that collide in generated code -------------------------------------------------------------------------
    ("type-class-collision", '<types>\n<composite name="carDecoder"><type name="a" primitiveType="uint8"/></composite>\n</types>', 0,
     "line=9 element=composite name=carDecoder: type name=carDecoder would collide with a name in generated code (class CarDecoder)"),
    ("type-case-collision", '<types>\n<enum name="side" encodingType="uint8"><validValue name="A">1</validValue></enum>\n'
     '<enum name="Side" encodingType="uint8"><validValue name="A">1</validValue></enum>\n</types>', 0,
     "line=10 element=enum name=Side: type name=Side and name=side both become class Side in generated code"),
    ("inline-type-collision", '<types>\n<enum name="Side" encodingType="uint8"><validValue name="A">1</validValue></enum>\n'
     '<composite name="C"><enum name="side" encodingType="char"><validValue name="B">B</validValue></enum></composite>\n</types>', 0,
     "line=10 element=composite name=C: type name=side defined inside composite C (line=10) and type name=Side both "
     "become class Side in generated code"),
    ("not-an-identifier", f'{M}\n<field name="bid-price" id="1" type="uint8"/>\n{END}', 0,
     "line=9 element=field name=bid-price: name='bid-price' is not usable as an identifier in generated code"),
    # -- structure -----------------------------------------------------------------------------------------------------
    ("var-type-as-field", f'{M}\n<field name="a" id="1" type="varDataEncoding"/>\n{END}', 0,
     "line=9 element=field name=a: type=varDataEncoding is variable length; use a data element, not a field"),
    ("data-not-var", f'{M}\n<data name="d" id="1" type="groupSizeEncoding"/>\n{END}', 0,
     "line=9 element=data name=d: type=groupSizeEncoding must be a composite with members length and varData"),
    ("missing-id", f'{M}\n<field name="a" type="uint8"/>\n{END}', 0,
     "line=9 element=field name=a: missing required attribute id"),
    ("bad-byteOrder", "", 0, "line=2 element=messageSchema: byteOrder=middleEndian must be littleEndian or bigEndian"),
]


@pytest.mark.parametrize("body,version,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_schema_is_rejected_with_location(write_schema: Callable[..., Path], body: str, version: int, expected: str) -> None:
    attrs = ' headerType="hdr"' if "headerType=hdr" in expected else ""
    path = write_schema(body, version=version, attrs=attrs)
    if "byteOrder=middleEndian" in expected:
        path = write_schema("", raw=path.read_text().replace('byteOrder="littleEndian"', 'byteOrder="middleEndian"'))
    with pytest.raises(SchemaError) as info:
        load_schema(path)
    assert str(info.value) == PREFIX + expected


def test_every_rule_in_the_module_docstring_has_a_case() -> None:
    names = {c[0] for c in CASES}
    for rule in ("unknown-field-type", "duplicate-message-id", "duplicate-field-name", "overlapping-field-offset",
                 "field-after-group", "group-after-data", "nullValue-out-of-range", "field-sinceVersion", "type-class-collision"):
        assert rule in names


def test_python_keyword_is_a_warning_then_an_error_in_strict_mode(write_schema: Callable[..., Path]) -> None:
    path = write_schema(f'{M}\n<field name="class" id="1" type="uint8"/>\n{END}')
    schema = load_schema(path)
    assert schema.warnings == [
        "schema warning (the schema author's, tickline worked around it): file=schema.xml line=9 element=field "
        "name=class: name=class is a Python keyword; the generated property is class_"]
    assert "def class_(self) -> int:" in generate(schema)
    with pytest.raises(SchemaError) as info:
        load_schema(path, strict=True)
    assert str(info.value) == (PREFIX + "line=9 element=field name=class: name=class is a Python keyword; "
                               "the generated property is class_ (an error in strict mode)")


def test_generated_member_collision_is_mangled_with_a_warning(write_schema: Callable[..., Path]) -> None:
    # a group "fills" makes the encoder method fills_count(); a field named fillsCount takes that name first.
    path = write_schema(f'{M}\n<field name="fillsCount" id="1" type="uint8"/>\n'
                        f'<group name="fills" id="2"><field name="x" id="3" type="uint8"/></group>\n{END}')
    schema = load_schema(path)
    assert schema.warnings == [WARN + "line=10 element=group name=fills: name=fills would collide with fills_count in "
                               "generated code; the generated property is fills_"]
    text = generate(schema)
    assert "def fills_count(self, count: int)" not in text and "def fills__count(self, count: int)" in text
    with pytest.raises(SchemaError, match="name=fills would collide with fills_count in generated code; the generated "
                                          r"property is fills_ \(an error in strict mode\)"):
        load_schema(path, strict=True)


def test_mutated_schemas_give_schema_errors_never_crashes(schemas_dir: Path, tmp_path: Path) -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    common = (schemas_dir / "common-types.xml").read_text().split("?>", 1)[1]
    text = (schemas_dir / "example-schema.xml").read_text().replace('<xi:include href="common-types.xml"/>', common)
    values = st.sampled_from(["", "-1", "0", "99999999999999999999", "x", "uint8", "char", "Model.Z", "optional",
                              "constant", "BooleanType", "groupSizeEncoding", "1.5", "Car"])

    @settings(max_examples=300, deadline=None)
    @given(edits=st.lists(st.tuples(st.integers(0, len(text) - 1), values), min_size=1, max_size=3))
    def check(edits: list[tuple[int, str]]) -> None:
        mutated = text
        for pos, value in edits:
            # replace the attribute value (or text) that starts after position pos
            start = mutated.find('"', pos)
            end = mutated.find('"', start + 1)
            if start < 0 or end < 0:
                continue
            mutated = mutated[:start + 1] + value + mutated[end:]
        path = tmp_path / "mutated.xml"
        path.write_text(mutated)
        try:
            schema = load_schema(path)
        except SchemaError as exc:
            assert "file=mutated.xml line=" in str(exc)
            return
        generate(schema)  # a schema that loads also generates

    check()
