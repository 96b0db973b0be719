"""The NewOrder's exact form (``sbe_orders.NEW_ORDER``, derived from schemas/orders.xml) against the
generated codec, field by field: what the codec writes, the exact-form struct reads as the same values,
and what the struct writes, the codec reads as the same values (Hypothesis over every field's range).
The sequencer's one-unpack reader and the strategy SDK's one-pack writer use this form; they are
held to the codec here too."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickline.codecs import load_builtin
from tickline.codecs.exact import ExactForm, exact_text
from tickline.feed import sbe
from tickline.fix_gateway.sbe_orders import NEW_ORDER, OrderCodec, sbe_module

M = sbe.orders()
I64, U64 = (-(2 ** 63) + 1, 2 ** 63 - 1), (0, 2 ** 64 - 2)


def _chars(n: int) -> st.SearchStrategy[str]:
    return st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=n)


def _enum(cls: type) -> st.SearchStrategy:
    return st.sampled_from([v for v in cls if 0 < int(v) < 255])


#: every NewOrder value as the generated classes take them (the positions of UNPACK_NAMES)
VALUES = st.tuples(
    _chars(20), _chars(12), _chars(16), _enum(M.Side), _enum(M.OrdType), _enum(M.TimeInForce),
    st.none() | st.integers(*I64), st.none() | st.integers(*I64), st.integers(*U64), st.integers(*U64),
    st.none() | st.integers(*U64))


def _raw(values: tuple) -> tuple:
    """The same values as the exact form's struct holds them: padded bytes, enum bytes, null values."""
    out = []
    for lf, v in zip(NEW_ORDER.leaves, values):
        if lf.code.endswith("s"):
            out.append(v.encode("ascii").ljust(lf.size, b"\0"))
        elif v is None:
            out.append(lf.null)
        else:
            out.append(int(v))
    return tuple(out)


def test_the_form_is_the_generated_codecs_block():
    assert NEW_ORDER.names == M.NewOrderDecoder.UNPACK_NAMES == M.NewOrderEncoder.UNPACK_NAMES
    assert NEW_ORDER.size == M.HEADER_LENGTH + M.NewOrderEncoder.BLOCK_LENGTH == NEW_ORDER.struct().size
    head = bytes(M.NewOrderEncoder().wrap_and_apply_header(bytearray(NEW_ORDER.size), 0).buffer[:M.HEADER_LENGTH])
    assert NEW_ORDER.head == head
    # the leaves tile the block: each starts where the previous ended (orders.xml has no gaps)
    ends = [len(NEW_ORDER.head)] + [lf.offset + lf.size for lf in NEW_ORDER.leaves]
    assert [lf.offset for lf in NEW_ORDER.leaves] == ends[:-1] and ends[-1] == NEW_ORDER.size


@settings(max_examples=300, deadline=None)
@given(VALUES)
def test_codec_writes_what_the_exact_form_reads(values):
    buf = bytearray(NEW_ORDER.size)
    M.NewOrderEncoder().wrap_and_apply_header(buf, 0).pack(*values)
    head, *raw = NEW_ORDER.struct().unpack(bytes(buf))
    assert head == NEW_ORDER.head
    assert tuple(raw) == _raw(values)
    # each leaf alone, by its own offset: the names point at the right bytes
    for lf, want in zip(NEW_ORDER.leaves, _raw(values)):
        assert NEW_ORDER.struct(lf.name, head=False).unpack_from(buf, len(NEW_ORDER.head)) == (want,)


@settings(max_examples=300, deadline=None)
@given(VALUES)
def test_exact_form_writes_what_the_codec_reads(values):
    data = NEW_ORDER.struct().pack(NEW_ORDER.head, *_raw(values))
    d = M.NewOrderDecoder().wrap(data, M.HEADER_LENGTH)
    assert d.unpack() == values
    # and the gateway's decoder (its own generated module) reads the same order
    o = OrderCodec().decode(data)
    assert (o.cl_ord_id, o.account, o.symbol, o.price, o.quantity) == (values[0], values[1], values[2], values[6], values[8])


@settings(max_examples=200, deadline=None)
@given(VALUES)
def test_sequencer_reader_and_renumbering_agree_with_the_codec(values):
    from tickline.sequencer import protocol as P

    buf = bytearray(NEW_ORDER.size)
    M.NewOrderEncoder().wrap_and_apply_header(buf, 0).pack(*values)
    data = bytes(buf)
    cl, names, side, ord_type, tif, price, qty = P.new_order_fields(data)
    assert P.text(cl) == values[0]
    assert (P.text(names[:P.ACCOUNT_LEN]), P.text(names[P.ACCOUNT_LEN:])) == (values[1], values[2])
    assert (side, ord_type, tif) == (int(values[3]), int(values[4]), int(values[5]))
    assert (price, qty) == (values[6], values[8])
    codec = OrderCodec()
    renumbered = codec.renumbered_new_order(data, "42")
    want, n = codec.encode(codec.decode(data)._replace(cl_ord_id="42"))
    assert renumbered == bytes(want[:n])


@settings(max_examples=200, deadline=None)
@given(VALUES)
def test_strategy_writer_agrees_with_the_codec(values):
    from tickline.strategy.orders import OrderBookkeeping

    cl, account, symbol, side, ord_type, tif, price, _stop, qty, now, _expire = values
    books = OrderBookkeeping(account or "A", lambda: cl)
    _order, msg = books.new(symbol, side, qty, price, ord_type, tif, now)
    d = M.NewOrderDecoder().wrap(bytes(msg), M.HEADER_LENGTH)
    assert d.unpack() == (cl, account or "A", symbol, side, ord_type, tif, price, None, qty, now, None)
    assert bytes(msg[:len(NEW_ORDER.head)]) == NEW_ORDER.head


def test_picks_are_checked():
    with pytest.raises(ValueError, match="offset order"):
        NEW_ORDER.struct("symbol", "account")
    with pytest.raises(ValueError, match="adjacent char arrays"):
        NEW_ORDER.struct(("cl_ord_id", "symbol"))
    with pytest.raises(KeyError, match="field=nope"):
        NEW_ORDER.struct("nope")
    joined = NEW_ORDER.struct(("account", "symbol"), head=False)
    assert joined.format == "<20x28s43x"


def test_the_derived_structs_are_the_hand_written_ones_they_replace():
    """Same formats as the hand layouts before (so the same CPU per order), now from the schema."""
    from tickline.sequencer import protocol as P
    from tickline.strategy import orders

    import random

    rng = random.Random(5)
    for derived, hand in ((P._NEW_ORDER_FIELDS, struct.Struct("<8s20s28s3Bq8xQ16x")),
                          (orders._NEW_ORDER, struct.Struct("<8s20s12s16s3BqqQQQ"))):
        assert derived.size == hand.size
        for _ in range(50):
            data = rng.randbytes(hand.size)
            assert derived.unpack(data) == hand.unpack(data)
    assert (P.NEW_ORDER_SIZE, P.ACCOUNT_LEN, P.CL_ORD_ID_SPAN) == (99, 12, (8, 28))


def test_a_schema_change_moves_the_form(tmp_path):
    """A field added to NewOrder's block (a schema change): the form follows, and still matches the
    codec generated from the changed schema."""
    import importlib.resources
    import types

    from tickline.codecs.gen_python import generate
    from tickline.codecs.schema import load_schema

    res = importlib.resources.files("tickline.schemas")
    for name in ("common.xml", "orders.xml"):
        (tmp_path / name).write_text(res.joinpath(name).read_text())
    xml = (tmp_path / "orders.xml").read_text()
    anchor = '<field name="clOrdId" id="11" type="ClOrdId"/>'
    assert xml.count(anchor) >= 1
    xml = xml.replace(anchor, anchor + '<field name="desk" id="9001" type="uint32"/>', 1)
    (tmp_path / "orders.xml").write_text(xml)
    schema = load_schema(tmp_path / "orders.xml")
    after = ExactForm(schema, "NewOrder")
    assert after.span("cl_ord_id") == NEW_ORDER.span("cl_ord_id")
    assert after.span("desk") == (NEW_ORDER.span("account")[0], NEW_ORDER.span("account")[0] + 4)
    assert after.span("account")[0] == NEW_ORDER.span("account")[0] + 4
    assert after.size == NEW_ORDER.size + 4 and struct.unpack("<H", after.head[:2]) == (NEW_ORDER.size + 4 - 8,)
    assert after.struct().format.startswith("<8s20sI12s")
    mod = types.ModuleType("changed_orders")
    exec(compile(generate(schema, "orders.xml"), "<changed orders.xml>", "exec"), mod.__dict__)
    assert after.names == mod.NewOrderEncoder.UNPACK_NAMES
    buf = bytearray(after.size)
    values = ("C1", 7, "ACC", "ESZ6", mod.Side.Buy, mod.OrdType.Limit, mod.TimeInForce.Day, 5, None, 3, 9, None)
    mod.NewOrderEncoder().wrap_and_apply_header(buf, 0).pack(*values)
    assert after.struct().unpack(bytes(buf))[:3] == (after.head, b"C1".ljust(20, b"\0"), 7)


def test_exact_text():
    assert exact_text(b"ES\0\0") == "ES"
    assert exact_text(b"ES") == "ES"
    assert exact_text(b"E\0S\0") is None  # bytes after the NUL: the decoder reads it differently
    assert exact_text(b"\xe9S\0\0") is None  # not ASCII
    assert sbe_module().NewOrderDecoder.UNPACK_NAMES == NEW_ORDER.names
