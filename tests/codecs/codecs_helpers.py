"""Helpers shared by the codec tests (a uniquely named module: other test folders have their own conftest)."""

from __future__ import annotations

import importlib.util
import math
import os
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

from tickline.codecs.gen_python import generate
from tickline.codecs.ir import Schema

# The real-world schemas the tests use are kept in the repository (tests/testdata/sbe-schemas, see its README);
# TICKLINE_SBE_SCHEMAS points the tests at another directory holding files of the same names.
SCHEMAS = Path(os.environ.get("TICKLINE_SBE_SCHEMAS") or Path(__file__).resolve().parents[1] / "testdata" / "sbe-schemas")


#: The two kinds of generated codecs the codec tests run against (the ``codec_kind`` fixture).
KINDS = ["python", "cython"]


def import_generated(schema: Schema, directory: Path, source: str = "test.xml", kind: str = "python") -> ModuleType:
    """Write the generated module to ``directory`` and import it from the file, as a user would.

    ``kind="cython"``: the compiled codecs instead, built with -O0 (quick to compile; the code is the same)
    and cached by content in TICKLINE_CYTHON_CACHE (default ~/.cache/tickline/cython)."""
    if kind == "cython":
        from tickline.codecs import gen_cython

        return gen_cython.load_module(schema, source, opt=os.environ.get("TICKLINE_CYTHON_OPT", "-O0"))  # type: ignore[no-any-return]
    assert kind == "python", kind
    name = f"tl_gen_{uuid.uuid4().hex[:12]}"
    path = directory / f"{name}.py"
    path.write_text(generate(schema, source), encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


HEADER_TYPES = """<types>
<composite name="messageHeader"><type name="blockLength" primitiveType="uint16"/><type name="templateId" primitiveType="uint16"/><type name="schemaId" primitiveType="uint16"/><type name="version" primitiveType="uint16"/></composite>
<composite name="groupSizeEncoding"><type name="blockLength" primitiveType="uint16"/><type name="numInGroup" primitiveType="uint16"/></composite>
<composite name="varDataEncoding"><type name="length" primitiveType="uint32"/><type name="varData" primitiveType="uint8" length="0"/></composite>
</types>
"""


def _same(a: object, b: object) -> bool:
    """Equal values, a NaN equal to a NaN of the same sign, element by element in tuples."""
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return math.copysign(1.0, a) == math.copysign(1.0, b)
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and bool(a == b) or (a is None and b is None)


def field_by_field(dec: object, names: tuple[str, ...]) -> tuple[object, ...]:
    """What reading each of ``names`` (``price.mantissa``: the composite, then its member) gives, None when a
    composite on the way reads None."""
    out = []
    for name in names:
        obj: object = dec
        for part in name.split("."):
            obj = None if obj is None else getattr(obj, part)
        out.append(obj)
    return tuple(out)


def check_one_call(module: ModuleType, msg: Any, wire: bytes) -> tuple[object, ...]:
    """A generated module's ``unpack()``/``pack()`` against field-by-field reads and assignments on one message
    ``msg`` (its IR): the same values from unpack() (the root block, and the entries of a first group without
    nested groups or var data), and the same root block bytes from pack() as from assigning each field (and
    from from_dict()).  Returns the unpacked root values."""
    name = msg.name[0].upper() + msg.name[1:]
    dec_cls, enc_cls = getattr(module, name + "Decoder"), getattr(module, name + "Encoder")
    names = dec_cls.UNPACK_NAMES
    assert enc_cls.UNPACK_NAMES == names
    dec = module.decode(wire)
    values = dec.unpack()
    expected = field_by_field(module.decode(wire), names)
    assert _same(values, expected), (names, values, expected)
    if msg.groups and not msg.groups[0].groups and not msg.groups[0].data:
        g = msg.groups[0].py
        for entry, other in zip(getattr(dec, g)(), getattr(module.decode(wire), g)()):
            assert _same(entry.unpack(), field_by_field(other, entry.UNPACK_NAMES))
    hl, bl = module.HEADER_LENGTH, dec_cls.BLOCK_LENGTH
    by_field = bytearray(hl + bl)
    enc = enc_cls().wrap_and_apply_header(by_field, 0)
    for path, value in zip(names, values):
        *parents, last = path.split(".")
        obj = enc
        for part in parents:
            obj = getattr(obj, part)
        setattr(obj, last, value)
    packed = bytearray(hl + bl)
    assert enc_cls().wrap_and_apply_header(packed, 0).pack(*values) is not None
    assert packed == by_field == wire[:hl + bl]
    return values
