"""Property-based round trips over generated schemas: every primitive type, every presence, arrays, enums,
sets, composites, nested groups, var data, both byte orders.

For each random schema: the on-the-fly codec round-trips bytes -> JSON form -> identical bytes, and the
generated flyweights encode exactly the same bytes and decode exactly the same values.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tickline.codecs import load_schema, otf
from tickline.codecs.ir import INT_RANGE

import codecs_strategies
from codecs_helpers import HEADER_TYPES, check_one_call, import_generated

PRIMS = ["char", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float", "double"]


SIZE = {"char": 1, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "int32": 4, "uint32": 4, "float": 4,
        "int64": 8, "uint64": 8, "double": 8}


@st.composite
def encoded_type(draw: st.DrawFn, name: str) -> tuple[str, int]:
    prim = draw(st.sampled_from(PRIMS))
    presence = draw(st.sampled_from(["required", "optional", "constant"]))
    if presence == "constant":
        if prim == "char":
            length = draw(st.integers(1, 4))
            text = draw(st.text(alphabet="ABCXYZ09", min_size=1, max_size=length))
            return f'<type name="{name}" primitiveType="char" length="{length}" presence="constant">{text}</type>', 0
        if prim in ("float", "double"):
            value: Any = draw(st.sampled_from(["1.5", "-0.25", "3"]))
        else:
            lo, hi = INT_RANGE[prim]
            value = draw(st.integers(lo, hi))
        return f'<type name="{name}" primitiveType="{prim}" presence="constant">{value}</type>', 0
    length = draw(st.sampled_from([1, 1, 1, 2, 5]))
    extra = ""
    if presence == "optional" and prim not in ("char", "float", "double") and draw(st.booleans()):
        lo, hi = INT_RANGE[prim]
        extra = f' nullValue="{draw(st.sampled_from([lo, hi]))}"'
    if prim == "char" and length > 1 and draw(st.booleans()):
        extra += ' characterEncoding="ISO-8859-1"'
    return f'<type name="{name}" primitiveType="{prim}" length="{length}" presence="{presence}"{extra}/>', SIZE[prim] * length


@st.composite
def enum_type(draw: st.DrawFn, name: str) -> tuple[str, int]:
    enc = draw(st.sampled_from(["char", "uint8", "int16", "uint32"]))
    n = draw(st.integers(1, 4))
    if enc == "char":
        values = draw(st.lists(st.sampled_from("ABCDEFGH123"), min_size=n, max_size=n, unique=True))
    else:
        values = [str(v) for v in draw(st.lists(st.integers(0, 100), min_size=n, max_size=n, unique=True))]
    vv = "".join(f'<validValue name="V{i}">{v}</validValue>' for i, v in enumerate(values))
    return f'<enum name="{name}" encodingType="{enc}">{vv}</enum>', SIZE[enc]


@st.composite
def set_type(draw: st.DrawFn, name: str) -> tuple[str, int]:
    enc = draw(st.sampled_from(["uint8", "uint16", "uint32", "uint64"]))
    bits = {"uint8": 8, "uint16": 16, "uint32": 32, "uint64": 64}[enc]
    chosen = draw(st.lists(st.integers(0, bits - 1), min_size=1, max_size=4, unique=True))
    return (f'<set name="{name}" encodingType="{enc}">' + "".join(f'<choice name="c{b}">{b}</choice>' for b in chosen)
            + "</set>", SIZE[enc])


@st.composite
def schema_text(draw: st.DrawFn) -> str:
    types: list[str] = []
    sizes: dict[str, int] = {"uint16": 2, "double": 8, "char": 1}
    for prefix, make, lo, hi in (("T", encoded_type, 1, 5), ("E", enum_type, 0, 2), ("S", set_type, 0, 2)):
        for i in range(draw(st.integers(lo, hi))):
            xml, size = draw(make(f"{prefix}{i}"))
            types.append(xml)
            sizes[f"{prefix}{i}"] = size
    for i in range(draw(st.integers(0, 2))):
        members = []
        end = 0
        for j in range(draw(st.integers(1, 3))):
            ref = draw(st.sampled_from(sorted(sizes)))
            if draw(st.integers(0, 3)) == 0:
                end += draw(st.integers(1, 3))  # an explicit offset leaving a gap
                members.append(f'<ref name="m{j}" type="{ref}" offset="{end}"/>')
            else:
                members.append(f'<ref name="m{j}" type="{ref}"/>')
            end += sizes[ref]
        types.append(f'<composite name="C{i}">{"".join(members)}</composite>')
        sizes[f"C{i}"] = end
    names = sorted(sizes)

    def fields(prefix: str, n: int, start: int) -> tuple[str, int]:
        out = []
        fid = start
        end = 0
        for k in range(n):
            ref = draw(st.sampled_from(names))
            presence = ' presence="optional"' if ref in ("uint16", "double", "char") and draw(st.booleans()) else ""
            offset = ""
            if draw(st.integers(0, 5)) == 0:
                end += draw(st.integers(1, 3))
                offset = f' offset="{end}"'
            end += sizes[ref]
            out.append(f'<field name="{prefix}f{k}" id="{fid}" type="{ref}"{presence}{offset}/>')
            fid += 1
        return "".join(out), fid

    def data(prefix: str, n: int, start: int) -> str:
        return "".join(f'<data name="{prefix}d{k}" id="{start + k}" type="varDataEncoding"/>' for k in range(n))

    body, fid = fields("", draw(st.integers(0, 5)), 1)
    for g in range(draw(st.integers(0, 2))):
        gbody, fid = fields(f"g{g}", draw(st.integers(0, 3)), fid)
        if draw(st.booleans()):
            nested, fid = fields(f"g{g}n", draw(st.integers(1, 2)), fid)
            gbody += f'<group name="g{g}n" id="{fid}">{nested}</group>'
            fid += 1
        gbody += data(f"g{g}", draw(st.integers(0, 1)), fid)
        fid += 2
        body += f'<group name="g{g}" id="{fid}">{gbody}</group>'
        fid += 1
    body += data("", draw(st.integers(0, 2)), fid)
    order = draw(st.sampled_from(["littleEndian", "bigEndian"]))
    return (f'<?xml version="1.0"?>\n<sbe:messageSchema xmlns:sbe="http://fixprotocol.io/2016/sbe" package="p" id="9" '
            f'version="0" byteOrder="{order}">\n{HEADER_TYPES}<types>{"".join(types)}</types>\n'
            f'<sbe:message name="Msg" id="1">{body}</sbe:message>\n</sbe:messageSchema>\n')


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=schema_text(), data=st.data())
def test_generated_schemas_round_trip(tmp_path: Path, text: str, data: st.DataObject) -> None:
    path = tmp_path / f"s_{uuid.uuid4().hex[:8]}.xml"
    path.write_text(text)
    schema = load_schema(path)
    msg = schema.messages[0]
    mod = import_generated(schema, tmp_path, path.name)
    for _ in range(3):
        fields = data.draw(codecs_strategies.block(msg.fields, msg.groups, msg.data))
        doc = {"header": otf.default_header(schema, msg), "message": "Msg", "fields": fields}
        wire = otf.encode(schema, doc)
        decoded, used = otf.decode(schema, wire)
        assert used == len(wire)
        assert otf.encode(schema, decoded) == wire
        assert mod.MsgEncoder.from_dict(decoded["fields"]) == wire
        assert mod.decode(wire).to_dict() == decoded["fields"]
        check_one_call(mod, msg, wire)  # unpack()/pack(): the values and bytes of field-by-field access
        assert otf.decode(schema, otf.encode(schema, otf.from_json(otf.to_json(decoded))))[0] == decoded
