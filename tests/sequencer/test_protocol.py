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
