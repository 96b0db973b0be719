"""Fixtures for the SBE codec tests: the real-world schemas kept in tests/testdata/sbe-schemas and schema writers."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from tickline.codecs.ir import Schema
from tickline.codecs.schema import load_schema

from codecs_helpers import HEADER_TYPES, KINDS, SCHEMAS


@pytest.fixture(scope="session", params=KINDS)
def codec_kind(request: pytest.FixtureRequest) -> str:
    """Each test taking this runs against the pure-Python flyweights and the compiled (Cython) codecs."""
    return str(request.param)


@pytest.fixture(scope="session")
def schemas_dir() -> Path:
    assert (SCHEMAS / "example-schema.xml").is_file(), f"real SBE schemas not found at {SCHEMAS} (set TICKLINE_SBE_SCHEMAS)"
    return SCHEMAS


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


@pytest.fixture(scope="session")
def car_schema(schemas_dir: Path) -> Schema:
    return load_schema(schemas_dir / "example-schema.xml")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test of the compiled codecs may build them first (Cython, then the C compiler: about 5 s of CPU per
    schema, minutes of wall time on a loaded machine; cached by content afterwards): it gets a longer timeout."""
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if item.get_closest_marker("timeout") is not None:
            continue
        if "cython" in (params.get("codec_kind"), params.get("kind")) or item.module.__name__.endswith("test_compiled"):
            item.add_marker(pytest.mark.timeout(900))
