"""One call per block (issue 16, compiled codecs faster than msgpack): ``unpack()`` returns every fixed field of a
decoder's block as a tuple, ``pack(*values)`` writes every fixed field of an encoder's block, in the order of
``UNPACK_NAMES``; the same values and bytes as field-by-field access, in both kinds of codecs.  The Hypothesis
runs over generated schemas (test_properties, test_compiled) hold them to field-by-field access too."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, Callable

import pytest

from tickline.codecs import MessageError, load_builtin, load_schema

from codecs_helpers import check_one_call, field_by_field, import_generated


@pytest.fixture(scope="module")
def md(tmp_path_factory: pytest.TempPathFactory, codec_kind: str) -> Any:
    return import_generated(load_builtin("market_data.xml"), tmp_path_factory.mktemp("md"), "market_data.xml", codec_kind)


@pytest.fixture(scope="module")
def orders(tmp_path_factory: pytest.TempPathFactory, codec_kind: str) -> Any:
    return import_generated(load_builtin("orders.xml"), tmp_path_factory.mktemp("orders"), "orders.xml", codec_kind)


def test_top_of_book_names_values_and_bytes(md: Any) -> None:
    assert md.TopOfBookDecoder.UNPACK_NAMES == md.TopOfBookEncoder.UNPACK_NAMES == (
        "symbol", "exchange_timestamp", "local_timestamp", "bid_price.mantissa", "bid_size", "ask_price.mantissa",
        "ask_size", "seq_num")  # the prices' constant exponents take no position
    buf = bytearray(128)
    enc = md.TopOfBookEncoder().wrap_and_apply_header(buf, 0)
    assert enc.pack("ESZ6", 1, 2, 675, 12, None, 7, 99) is enc
    dec = md.decode(buf)
    assert dec.unpack() == ("ESZ6", 1, 2, 675, 12, None, 7, 99)
    assert (dec.symbol, dec.bid_price.mantissa, dec.ask_price.mantissa, dec.seq_num) == ("ESZ6", 675, None, 99)
    # An older message (version 0, before seqNum) reads None there, as the field does.
    assert md.TopOfBookDecoder().wrap(buf, md.HEADER_LENGTH, 80, 0).unpack()[-1] is None
    schema = load_builtin("market_data.xml")
    check_one_call(md, next(m for m in schema.messages if m.name == "TopOfBook"), bytes(buf))


def test_group_entries_pack_and_unpack(md: Any) -> None:
    levels = [(100 - i, 10 + i, i) for i in range(5)]
    a, b = bytearray(1024), bytearray(1024)
    enc = md.OrderBookEncoder().wrap_and_apply_header(a, 0).pack("NQ", 1, 2, 3)
    g = enc.bids_count(len(levels))
    for row in levels:
        g.next().pack(*row)
    enc.asks_count(0)
    ref = md.OrderBookEncoder().wrap_and_apply_header(b, 0)
    ref.symbol, ref.exchange_timestamp, ref.local_timestamp, ref.seq_num = "NQ", 1, 2, 3
    ref.bids_count(len(levels)).put_rows(levels)
    ref.asks_count(0)
    assert a == b
    dec = md.decode(a)
    assert dec.unpack() == ("NQ", 1, 2, 3)
    bids = dec.bids()
    assert type(bids).UNPACK_NAMES == ("price.mantissa", "volume", "order_count")
    assert [e.unpack() for e in bids] == levels


def test_execution_report_enums_nulls_and_text(orders: Any) -> None:
    values = (7, 8, "C-1", "ESZ6", orders.Side.Sell, orders.ExecType.Trade, orders.OrdStatus.Filled, None, 5, None,
              1, 0, 1, 5, 123)
    buf = bytearray(256)
    orders.ExecutionReportEncoder().wrap_and_apply_header(buf, 0).pack(*values).put_text("done")
    dec = orders.decode(buf)
    assert dec.unpack() == values and dec.text() == "done"
    assert field_by_field(dec, dec.UNPACK_NAMES) == values
    assert type(dec.unpack()[4]) is orders.Side
    # Raw integers are taken as the setters take them.
    orders.ExecutionReportEncoder().wrap_and_apply_header(buf, 0).pack(*values[:4], 50, 70, 50, 99, *values[8:])
    assert orders.decode(buf).unpack()[4:8] == (orders.Side.Sell, orders.ExecType.Trade, orders.OrdStatus.Filled,
                                                 orders.RejectReason.Other)


def test_a_refused_value_writes_nothing(orders: Any) -> None:
    buf = bytearray(256)
    enc = orders.ExecutionReportEncoder().wrap_and_apply_header(buf, 0)
    enc.order_id = 42
    before = bytes(buf)
    good = [1, 2, "C", "S", 49, 70, 49, None, 1, 1, 1, 1, 1, 1, 1]
    for position, bad in ((14, -1), (0, 2**64), (10, "x")):
        values = list(good)
        values[position] = bad
        with pytest.raises(struct.error):
            enc.pack(*values)
        assert bytes(buf) == before
    with pytest.raises(MessageError, match="clOrdId: value='.*' is 21 bytes, longer than length=20"):
        enc.pack(*good[:2], "x" * 21, *good[3:])
    assert bytes(buf) == before
    with pytest.raises(TypeError):
        enc.pack(*good[:-1])  # one value per position, no default
    assert orders.decode(buf).order_id == 42


def test_pack_into_a_buffer_grown_too_short(md: Any) -> None:
    """The length is checked before anything is written (a committed claim has none), alike in both kinds."""
    buf = bytearray(128)
    enc = md.TopOfBookEncoder().wrap_and_apply_header(buf, 0)
    del buf[40:]
    with pytest.raises(MessageError, match="buffer too small: block needs 80 bytes, buffer length=40"):
        enc.pack("ESZ6", 1, 2, 3, 4, 5, 6, 7)
    assert buf == md.TopOfBookEncoder().wrap_and_apply_header(bytearray(128), 0).buffer[:40]


def test_a_field_named_pack_is_mangled(write_schema: Callable[..., Path], tmp_path: Path, codec_kind: str) -> None:
    path = write_schema('<sbe:message name="M" id="1"><field name="pack" id="1" type="uint8"/>'
                        '<field name="unpack" id="2" type="uint16"/></sbe:message>')
    schema = load_schema(path)
    assert any("name=pack" in w for w in schema.warnings)
    mod = import_generated(schema, tmp_path, "schema.xml", codec_kind)
    buf = bytearray(32)
    mod.MEncoder().wrap_and_apply_header(buf, 0).pack(3, 4)
    dec = mod.decode(buf)
    assert dec.UNPACK_NAMES == ("pack_", "unpack_") and dec.unpack() == (3, 4) == (dec.pack_, dec.unpack_)
