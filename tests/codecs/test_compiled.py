"""The compiled (Cython) codecs held to the pure-Python flyweights, and their memory rules (issue 16, compiled codecs).

The other codec tests run against both kinds through the ``codec_kind`` fixture; here Hypothesis generates
schemas (every primitive, presence, arrays, enums, sets, composites, nested groups, var data, both byte orders)
and asserts that both kinds encode the same bytes and decode the same values, and that hostile bytes (cut
short or corrupted) end the same way in both: the same values or the same error class.
"""

from __future__ import annotations

import math
import mmap
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tickline.codecs import MessageError, cli, load_builtin, load_schema, otf

import codecs_strategies
from codecs_helpers import check_one_call, import_generated
from test_properties import schema_text


def same(a: Any, b: Any) -> bool:
    """Equal values, a NaN being equal to a NaN of the same sign, element by element in tuples (an array of
    floats: two NaN objects are not ==, so neither are the tuples holding them)."""
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return math.copysign(1.0, a) == math.copysign(1.0, b)
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return bool(a == b)


def outcome(fn: Any) -> Any:
    """What a decode gives: its values, or the class of the error it raised."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 -- the class is what is compared
        return ("raised", type(exc).__name__)


# Each example builds a module (seconds of CPU, about a minute of wall time on a loaded machine): few examples,
# each checked deeply.
@pytest.mark.timeout(1800)
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=schema_text(), data=st.data())
def test_compiled_and_python_codecs_agree(tmp_path: Path, text: str, data: st.DataObject) -> None:
    path = tmp_path / f"s_{uuid.uuid4().hex[:8]}.xml"
    path.write_text(text)
    schema = load_schema(path)
    msg = schema.messages[0]
    py = import_generated(schema, tmp_path, path.name, kind="python")
    cy = import_generated(schema, tmp_path, path.name, kind="cython")
    for _ in range(3):
        fields = data.draw(codecs_strategies.block(msg.fields, msg.groups, msg.data))
        decoded = otf.decode(schema, otf.encode(schema, {"header": otf.default_header(schema, msg), "message": "Msg",
                                                         "fields": fields}))[0]["fields"]
        wire = py.MsgEncoder.from_dict(decoded)
        assert cy.MsgEncoder.from_dict(decoded) == wire
        assert cy.decode(wire).to_dict() == py.decode(wire).to_dict() == decoded
        # Field by field through the properties, not only through to_dict().
        dp, dc = py.decode(wire), cy.decode(wire)
        for f in msg.fields:
            vp, vc = getattr(dp, f.py), getattr(dc, f.py)
            assert same(vp._dict() if hasattr(vp, "_dict") else vp, vc._dict() if hasattr(vc, "_dict") else vc), f.name
        # One call per block: unpack() reads what the fields read, pack() writes what assigning them writes, alike
        # in both kinds.
        assert same(check_one_call(cy, msg, wire), check_one_call(py, msg, wire))
        # Hostile bytes: every cut, and corrupted bytes, end the same way in both.
        for cut in range(len(wire)):
            short = wire[:cut]
            assert outcome(lambda: cy.decode(short).to_dict()) == outcome(lambda: py.decode(short).to_dict()), cut
        for _ in range(4):
            bad = bytearray(wire)
            i = data.draw(st.integers(0, len(bad) - 1))
            bad[i] = data.draw(st.integers(0, 255))
            assert outcome(lambda: cy.decode(bytes(bad)).to_dict()) == outcome(lambda: py.decode(bytes(bad)).to_dict())


@pytest.fixture(scope="module")
def md() -> ModuleType:
    return import_generated(load_builtin("market_data.xml"), Path("."), "market_data.xml", kind="cython")


def test_no_pointer_outlives_a_resized_buffer(md: ModuleType) -> None:
    """A flyweight takes the buffer for each call only: the owner may shrink between calls, and the next call
    sees the new length (an error naming it) instead of writing or reading freed memory."""
    buf = bytearray(4096)
    enc = md.OrderBookEncoder().wrap_and_apply_header(buf, 0)
    enc.symbol = "ESZ6"
    del buf[16:]  # the bytearray reallocates: no export of it was kept, so this is allowed
    with pytest.raises(MessageError, match="buffer too small: field needs 32 bytes, buffer length=16"):
        enc.exchange_timestamp = 1
    with pytest.raises(MessageError, match="buffer too small: block needs 52 bytes, buffer length=16"):
        enc.bids_count(1)
    wire = md.OrderBookEncoder.from_dict({"symbol": "ESZ6", "exchangeTimestamp": 1, "localTimestamp": 2, "seqNum": 3,
                                          "bids": [{"price": {"mantissa": 5, "exponent": -9}, "volume": 1, "orderCount": 1}],
                                          "asks": []})
    data = bytearray(wire)
    bids = md.decode(data).bids()  # the count is checked against the bytes present here
    del data[50:]
    with pytest.raises(MessageError, match="buffer too small: group entry needs 72 bytes, buffer length=50"):
        bids.next()


def test_a_released_view_is_refused(md: ModuleType) -> None:
    backing = bytearray(256)
    view = memoryview(backing)
    enc = md.TopOfBookEncoder().wrap_and_apply_header(view, 0)
    enc.bid_size = 3
    view.release()
    with pytest.raises(ValueError, match="released"):
        enc.bid_size = 4
    with pytest.raises(ValueError, match="released"):
        md.decode(view)
    assert md.decode(backing).bid_size == 3


def test_a_decoder_reads_its_copy_and_views_keep_it_alive(md: ModuleType) -> None:
    wire = md.TopOfBookEncoder.from_dict({"symbol": "ESZ6", "exchangeTimestamp": 1, "localTimestamp": 2,
                                          "bidPrice": {"mantissa": 7, "exponent": -9}, "bidSize": 3,
                                          "askPrice": {"mantissa": None, "exponent": -9}, "askSize": 4, "seqNum": 5})
    mm = mmap.mmap(-1, len(wire))
    mm[:] = wire
    dec = md.decode(mm)
    price = dec.bid_price
    mm.close()  # allowed: no export of the mmap is held between calls
    del dec
    assert (price.mantissa, price.exponent) == (7, -9)  # the view reads the decoder's copy, which it keeps alive
    with pytest.raises(AttributeError, match="read-only"):
        price.mantissa = 8


def test_offsets_and_counts_cannot_overflow(md: ModuleType) -> None:
    buf = bytearray(64)
    for offset in (-1, 2**62, 2**63 - 1):
        with pytest.raises((MessageError, OverflowError)):
            md.TopOfBookEncoder().wrap_and_apply_header(buf, offset)
        with pytest.raises((MessageError, OverflowError)):
            md.decode(buf, offset)
    with pytest.raises(OverflowError):
        md.decode(buf, 2**64)
    # The refusals above are what they say, also in the sanitizer build (their messages once added offsets in C:
    # signed overflow, reported by UBSan for 2**63 - 1).
    with pytest.raises(MessageError, match=f"needs {2**63 - 1 + 80} bytes, buffer length=64"):
        md.TopOfBookEncoder().wrap_and_apply_header(buf, 2**63 - 1)


def test_values_that_do_not_fit_raise_struct_error_as_the_python_codecs(md: ModuleType) -> None:
    import struct

    enc = md.TopOfBookEncoder().wrap_and_apply_header(bytearray(128), 0)
    for bad in (-1, 2**64, "x", 1.5):
        with pytest.raises(struct.error):
            enc.bid_size = bad


def test_codegen_cython_builds_an_importable_module(tmp_path: Path, schemas_dir: Path) -> None:
    import argparse
    import importlib.util
    import sysconfig

    args = argparse.Namespace(schema=str(schemas_dir / "example-schema.xml"), lang="cython", output=str(tmp_path),
                              module="car_cy", strict=False, build=True)
    assert cli.cmd_codegen(args) == 0
    assert (tmp_path / "car_cy.pyx").is_file()
    so = tmp_path / f"car_cy{sysconfig.get_config_var('EXT_SUFFIX')}"
    spec = importlib.util.spec_from_file_location("car_cy", so)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.COMPILED is True and mod.CarDecoder.BLOCK_LENGTH == 45


def test_python_code_run_by_a_write_cannot_free_the_bytes_it_writes(md: ModuleType) -> None:
    """A bytearray's bytes are touched without a buffer export where no Python code runs in between (a field, a
    wrap, pack()): values are converted first, then the length is checked; put_rows(), which converts values while
    it writes, holds an export, so the bytearray cannot be resized under it."""
    buf = bytearray(256)
    enc = md.TopOfBookEncoder().wrap_and_apply_header(buf, 0)

    class Shrinks:
        def __index__(self) -> int:
            del buf[20:]
            return 1

    with pytest.raises(MessageError, match="buffer too small: field needs 56 bytes, buffer length=20"):
        enc.bid_size = Shrinks()
    buf.extend(bytes(236))
    with pytest.raises(MessageError, match="buffer too small: block needs 80 bytes, buffer length=20"):
        enc.pack("ESZ6", 1, 2, 3, Shrinks(), 5, 6, 7)
    book = bytearray(1024)
    rows = md.OrderBookEncoder().wrap_and_apply_header(book, 0).bids_count(2)

    class Resizes:
        def __index__(self) -> int:
            del book[60:]
            return 1

    with pytest.raises(BufferError):
        rows.put_rows([(1, Resizes(), 1), (2, 2, 2)])
    assert len(book) == 1024
