"""Schemas and JSON that cost too much to read (issue 14 item 14): each ends in a SchemaError or MessageError that
says which limit, never a RecursionError traceback or a load that runs for a minute.

The inputs are the finding's shapes: an XInclude fan-out of 10 includes per file over 6 levels, 200k nested elements,
3,000 nested groups, deeply nested JSON given to ``sbe-encode``; and a schema of 10,000 messages, which must load
(its duplicate-name check was quadratic).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from tickline.codecs import SchemaError, load_schema, otf
from tickline.codecs.gen_python import generate
from tickline.codecs.safexml import DEFAULT_LIMITS, Limits

from codecs_helpers import HEADER_TYPES, import_generated
from test_otf import run_cli

XI = 'xmlns:xi="http://www.w3.org/2001/XInclude"'


def schema_text(body: str, *, attrs: str = "") -> str:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<sbe:messageSchema xmlns:sbe="http://fixprotocol.io/2016/sbe" '
            f'package="t" id="7" version="0" byteOrder="littleEndian"{attrs}>\n{HEADER_TYPES}{body}\n</sbe:messageSchema>\n')


def test_xinclude_fan_out_is_capped_by_files_read(tmp_path: Path) -> None:
    # 10 includes per file, 6 levels: a million reads of 7 small files (65 s and 1.2 GB before the cap)
    includes = lambda level: "".join(f'<xi:include href="f{level}.xml"/>' for _ in range(10))  # noqa: E731
    for level in range(1, 7):
        inner = includes(level + 1) if level < 6 else ""
        (tmp_path / f"f{level}.xml").write_text(f'<types {XI}>{inner}</types>\n')
    (tmp_path / "schema.xml").write_text(schema_text(includes(1), attrs=" " + XI))
    with pytest.raises(SchemaError) as info:
        load_schema(tmp_path / "schema.xml")
    assert f"too many files: more than max_files={DEFAULT_LIMITS.max_files} read for one schema" in str(info.value)
    assert "element=include" in str(info.value)


def test_total_elements_are_capped(tmp_path: Path) -> None:
    path = tmp_path / "schema.xml"
    path.write_text(schema_text("<types>" + "<x/>" * DEFAULT_LIMITS.max_elements + "</types>"))
    with pytest.raises(SchemaError) as info:
        load_schema(path)
    assert f"element=x: too many elements: more than max_elements={DEFAULT_LIMITS.max_elements}" in str(info.value)


def test_limits_can_be_raised_or_lowered_and_depth_counts_through_includes(tmp_path: Path) -> None:
    # common.xml alone is 4 deep (types, composite, composite, type); included into messageSchema it is 5 deep
    (tmp_path / "common.xml").write_text('<types><composite name="Outer"><composite name="Inner">'
                                         '<type name="v" primitiveType="uint8"/></composite></composite></types>\n')
    path = tmp_path / "schema.xml"
    path.write_text(schema_text('<xi:include href="common.xml"/>', attrs=" " + XI))
    assert "Outer" in load_schema(path).types
    assert "Outer" in load_schema(path, limits=Limits(max_depth=5)).types
    with pytest.raises(SchemaError, match="file=common.xml line=1 element=type name=v: elements nested deeper than max_depth=4"):
        load_schema(path, limits=Limits(max_depth=4))
    with pytest.raises(SchemaError, match="too many files: more than max_files=1 "):
        load_schema(path, limits=Limits(max_files=1))
    with pytest.raises(SchemaError, match="too large: the schema and its includes exceed max_bytes=600"):
        load_schema(path, limits=Limits(max_bytes=600))
    # schema.xml has 14 elements (with the include), common.xml 4 more
    assert "Outer" in load_schema(path, limits=Limits(max_elements=18)).types
    with pytest.raises(SchemaError, match="file=common.xml line=1 element=type name=v: too many elements: more than max_elements=17 "):
        load_schema(path, limits=Limits(max_elements=17))


def test_200k_nested_elements_are_a_schema_error(tmp_path: Path) -> None:
    path = tmp_path / "schema.xml"
    path.write_text(schema_text("<a>" * 200_000 + "</a>" * 200_000))
    with pytest.raises(SchemaError) as info:
        load_schema(path)
    assert f"element=a: elements nested deeper than max_depth={DEFAULT_LIMITS.max_depth}" in str(info.value)


def test_3000_nested_groups_are_a_schema_error(tmp_path: Path) -> None:
    groups = "".join(f'<group name="g{i}" id="{i + 2}">' for i in range(3000)) + "</group>" * 3000
    path = tmp_path / "schema.xml"
    path.write_text(schema_text(f'<sbe:message name="M" id="1">{groups}</sbe:message>'))
    with pytest.raises(SchemaError) as info:
        load_schema(path)
    assert "element=group name=g" in str(info.value) and "elements nested deeper than max_depth=" in str(info.value)


def test_3000_composites_referring_to_each_other_are_a_schema_error(tmp_path: Path) -> None:
    chain = "".join(f'<composite name="C{i}"><ref name="next" type="C{i + 1}"/></composite>' for i in range(3000))
    path = tmp_path / "schema.xml"
    path.write_text(schema_text(f'<types>{chain}<composite name="C3000"><type name="v" primitiveType="uint8"/></composite></types>'))
    with pytest.raises(SchemaError) as info:
        load_schema(path)
    assert "types nested deeper than 64 (a composite referring to a composite ... from C0)" in str(info.value)


def test_groups_nested_within_the_limit_work_end_to_end(tmp_path: Path) -> None:
    depth = DEFAULT_LIMITS.max_depth - 4  # messageSchema, message, groups, the innermost field
    groups = "".join(f'<group name="g{i}" id="{i + 2}">' for i in range(depth)) + '<field name="x" id="1" type="uint8"/>'
    groups += "</group>" * depth
    path = tmp_path / "schema.xml"
    path.write_text(schema_text(f'<sbe:message name="M" id="1">{groups}</sbe:message>'))
    schema = load_schema(path)
    fields: dict[str, object] = {"x": 7}
    for i in reversed(range(depth)):
        fields = {f"g{i}": [fields]}
    doc = {"header": otf.default_header(schema, schema.messages[0]), "message": "M", "fields": fields}
    wire = otf.encode(schema, doc)
    assert otf.decode(schema, wire) == (doc, len(wire))
    assert import_generated(schema, tmp_path).decode(wire).to_dict() == fields


def test_deeply_nested_json_to_sbe_encode_is_a_message_error(tmp_path: Path, write_schema: Callable[..., Path],
                                                             capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_schema('<sbe:message name="M" id="1"><field name="a" id="1" type="uint8"/></sbe:message>')
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    rc, out, err = run_cli(["sbe-encode", str(path), str(tmp_path / "deep.json")], capsys, monkeypatch)
    assert (rc, out) == (1, b"")
    assert err.strip() == (f"message error (the input's fault): file={tmp_path / 'deep.json'}: JSON nested too deeply "
                           "(arrays/objects nested beyond Python's recursion limit)")
    (tmp_path / "bad.json").write_text('{"header": ')
    rc, out, err = run_cli(["sbe-encode", str(path), str(tmp_path / "bad.json")], capsys, monkeypatch)
    assert rc == 1 and "not valid JSON: Expecting value: line 1 column 12" in err


def test_a_schema_of_10000_messages_loads_and_still_refuses_duplicates(tmp_path: Path) -> None:
    # The duplicate-name check built a set of every earlier message's name per message (47 s for 10,000).
    body = "\n".join(f'<sbe:message name="M{i}" id="{i + 1}"><field name="a" id="1" type="uint8"/></sbe:message>'
                     for i in range(10_000))
    path = tmp_path / "schema.xml"
    path.write_text(schema_text(body))
    schema = load_schema(path)
    assert len(schema.messages) == 10_000 and schema.messages[-1].name == "M9999"
    assert f"class M9999Decoder:" in generate(schema)
    # the check is the same: another message whose class would be M5000, anywhere in the list
    path.write_text(schema_text(body + '\n<sbe:message name="m5000" id="10001"/>'))
    with pytest.raises(SchemaError) as info:
        load_schema(path)
    assert str(info.value).endswith(f"line={8 + 10_000} element=message name=m5000: duplicate message name=m5000 "
                                    f"(as class M5000, also at line={8 + 5000})")
