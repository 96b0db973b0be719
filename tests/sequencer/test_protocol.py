"""The sequencer's own messages are exactly schemas/sequencer.xml (checked
through the on-the-fly codec, which knows only the schema), and their decoders
refuse every short or inconsistent message without reading past it."""

from __future__ import annotations

import random
import struct

import pytest

from tickline.codecs import load_builtin, otf
from tickline.sequencer import protocol as P

SCHEMA = load_builtin("sequencer.xml")


def test_each_message_is_the_schema_s_layout_both_ways():
    cases = [
        (P.encode_event_poll(3, 9), "EventPoll", {"after": 3, "maxEvents": 9}),
        (P.encode_venue_poll(-1, 256), "VenuePoll", {"after": -1, "maxOrders": 256}),
        (P.encode_sequenced(42, 1700, "CL-1"), "Sequenced", {"orderId": 42, "timestamp": 1700, "clOrdId": "CL-1"}),
        (P.encode_attach("fix:FIX.4.4:GW->C1"), "Attach", {"origin": "fix:FIX.4.4:GW->C1"}),
        (P.encode_batch(7, [(6, b"ab"), (7, b"xyz")]), "Batch",
         {"last": 7, "items": [{"seq": 6, "message": "6162"}, {"seq": 7, "message": "78797a"}]}),
    ]
    for data, name, fields in cases:
        doc, n = otf.decode(SCHEMA, data)
        assert (doc["message"], doc["fields"], n) == (name, fields, len(data))
        assert otf.encode(SCHEMA, doc) == data
    assert P.decode(cases[0][0]) == P.EventPoll(3, 9)
    assert P.decode(cases[2][0]) == P.Sequenced(42, 1700, "CL-1")
    assert P.decode(cases[3][0]) == P.Attach("fix:FIX.4.4:GW->C1")
    last, items = P.decode_batch(cases[4][0])
    assert last == 7 and [(s, bytes(m)) for s, m in items] == [(6, b"ab"), (7, b"xyz")]


def test_truncated_and_inconsistent_batches_are_refused_with_the_reason():
    good = P.encode_batch(2, [(1, b"a" * 10), (2, b"b" * 5)])
    for cut in range(len(good)):
        with pytest.raises(P.ProtocolError, match="fault=peer"):
            P.decode_batch(good[:cut])
    # an item that claims more bytes than the message has
    bad = bytearray(good)
    struct.pack_into("<I", bad, 8 + 8 + 4 + 8, 2**31)
    with pytest.raises(P.ProtocolError, match="longer than the message"):
        P.decode_batch(bytes(bad))
    # a count far beyond the bytes present: refused at the first missing item, not allocated up front
    bad = bytearray(good)
    struct.pack_into("<H", bad, 8 + 8 + 2, 65535)
    with pytest.raises(P.ProtocolError, match="truncated Batch item"):
        P.decode_batch(bytes(bad))


def test_random_bytes_never_escape_as_anything_but_a_protocol_error():
    rng = random.Random(3)
    seeds = [P.encode_batch(2, [(1, b"abc")]), P.encode_event_poll(1), P.encode_sequenced(1, 2, "x"), P.encode_attach("a")]
    for _ in range(3000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.getrandbits(8)
        data = bytes(data[: rng.randint(0, len(data))])
        for fn in (P.decode, P.decode_batch):
            try:
                fn(data)
            except P.ProtocolError:
                pass


def test_a_new_order_s_exact_form_is_the_codec_s_and_its_fields_read_in_one_unpack_are_the_decoder_s():
    from tickline.fix_gateway.bridge import NewOrder, OrdType, Side, TimeInForce
    from tickline.fix_gateway.sbe_orders import OrderCodec

    codec = OrderCodec()
    rnd = random.Random(5)
    for k in range(500):
        msg = NewOrder(f"id{k}"[:rnd.randint(0, 20)], rnd.choice(("", "A", "ACCOUNT12345")), rnd.choice(("X", "S" * 16)),
                       rnd.choice(list(Side)), rnd.choice(list(OrdType)), rnd.choice(list(TimeInForce)),
                       rnd.choice((None, -5, 0, 2**63 - 1, rnd.randrange(10**12))), rnd.choice((None, 7)),
                       rnd.randrange(2**64), rnd.randrange(2**64), rnd.choice((None, 9)))
        v, n = codec.encode(msg)
        data = bytes(v[:n])
        assert data[:8] == P.NEW_ORDER_HEAD and len(data) == P.NEW_ORDER_SIZE
        cl, names, side, ord_type, tif, price, qty = P.new_order_fields(data)
        got = (P.text(cl), P.text(names[:12]), P.text(names[12:]), side, ord_type, tif, price, qty)
        assert got == (msg.cl_ord_id, msg.account, msg.symbol, ord(msg.side.value), ord(msg.ord_type.value),
                       ord(msg.time_in_force.value), msg.price, msg.quantity)
        assert P.new_order_fields(memoryview(data)) == P.new_order_fields(data)
        # any other form is left to the decoder: another length, another header
        assert P.new_order_fields(data + b"\0") is None and P.new_order_fields(data[:-1]) is None
        other = bytearray(data)
        other[rnd.randrange(8)] ^= 1 << rnd.randrange(8)
        assert P.new_order_fields(bytes(other)) is None


def test_text_reads_only_the_form_the_decoder_reads_the_same_way():
    assert P.text(b"AB\0\0") == "AB" and P.text(b"\0\0") == "" and P.text(b"ABCD") == "ABCD"
    assert P.text(b"A\0B\0") is None  # the decoder stops at the first NUL: left to it
    assert P.text(b"A\x80\0\0") is None  # not ASCII: the decoder's escapes, left to it
