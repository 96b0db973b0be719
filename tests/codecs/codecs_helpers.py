"""Helpers shared by the codec tests (a uniquely named module: other test folders have their own conftest)."""

from __future__ import annotations

import importlib.util
import os
import sys
import uuid
from pathlib import Path
from types import ModuleType

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
