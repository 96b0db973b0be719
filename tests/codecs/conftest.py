"""Fixtures for the SBE codec tests: the shared real-world schemas, generated modules, schema writers."""

from __future__ import annotations

import importlib.util
import os
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Callable

import pytest

from tickline.codecs.gen_python import generate
from tickline.codecs.ir import Schema
from tickline.codecs.schema import load_schema

# The real schemas live next to the repository (../shared/sbe-schemas); TICKLINE_SBE_SCHEMAS overrides.
SHARED = Path(os.environ.get("TICKLINE_SBE_SCHEMAS", Path(__file__).resolve().parents[3] / "shared" / "sbe-schemas"))
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    assert (SHARED / "example-schema.xml").is_file(), f"real SBE schemas not found at {SHARED} (set TICKLINE_SBE_SCHEMAS)"
    return SHARED


def import_generated(schema: Schema, directory: Path, source: str = "test.xml") -> ModuleType:
    """Write the generated module to ``directory`` and import it from the file, as a user would."""
    name = f"tl_gen_{uuid.uuid4().hex[:12]}"
    path = directory / f"{name}.py"
    path.write_text(generate(schema, source), encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def write_schema(tmp_path: Path) -> Callable[..., Path]:
    """Write a schema file into tmp_path; ``body`` goes inside messageSchema after a standard header types block."""

    def write(body: str, *, name: str = "schema.xml", version: int = 0, attrs: str = "", raw: str | None = None,
              header: bool = True) -> Path:
        if raw is None:
            types = HEADER_TYPES if header else ""
            raw = (f'<?xml version="1.0" encoding="UTF-8"?>\n'
                   f'<sbe:messageSchema xmlns:sbe="http://fixprotocol.io/2016/sbe" package="t" id="7" '
                   f'version="{version}" byteOrder="littleEndian"{attrs}>\n{types}{body}\n</sbe:messageSchema>\n')
        path = tmp_path / name
        path.write_text(raw, encoding="utf-8")
        return path

    return write


HEADER_TYPES = """<types>
<composite name="messageHeader"><type name="blockLength" primitiveType="uint16"/><type name="templateId" primitiveType="uint16"/><type name="schemaId" primitiveType="uint16"/><type name="version" primitiveType="uint16"/></composite>
<composite name="groupSizeEncoding"><type name="blockLength" primitiveType="uint16"/><type name="numInGroup" primitiveType="uint16"/></composite>
<composite name="varDataEncoding"><type name="length" primitiveType="uint32"/><type name="varData" primitiveType="uint8" length="0"/></composite>
</types>
"""


@pytest.fixture(scope="session")
def car_schema(shared_dir: Path) -> Schema:
    return load_schema(shared_dir / "example-schema.xml")
