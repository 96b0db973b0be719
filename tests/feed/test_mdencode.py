"""The native TopOfBook batch encoder (cpp_ext/mdencode.cpp) against the Python reference and the codec.

``_aeron.encode_top_of_book_batch`` must write, byte for byte, what
``MarketDataEncoder.encode_top_of_book`` (the struct layout) writes, and that is
held to the generated codec of ``schemas/market_data.xml``; every bad argument
is a ValueError naming it, and a refused call writes nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from array import array
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickline import _aeron
from tickline.feed import MarketDataEncoder, MarketDataPublisher, price, sbe
from tickline.feed.publisher import TopOfBookBatch
from tickline.strategy.testing import run_until

encode = _aeron.encode_top_of_book_batch
MSG = 80
NULL = -(2**63)
U64 = 2**64 - 1

symbols_st = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=127), min_size=1, max_size=16)
row_st = st.tuples(symbols_st, st.one_of(st.none(), st.integers(-(2**63) + 1, 2**63 - 1)), st.integers(0, U64),
                   st.one_of(st.none(), st.integers(-(2**63) + 1, 2**63 - 1)), st.integers(0, U64),
                   st.integers(0, U64), st.integers(0, U64))


def reference(rows: list[tuple[Any, ...]], first_seq: int) -> bytes:
    enc = MarketDataEncoder()
    out = bytearray(MSG * len(rows))
    for i, (symbol, bid, bid_size, ask, ask_size, ts, local_ts) in enumerate(rows):
        enc.encode_top_of_book(out, i * MSG, first_seq + i, symbol, bid, bid_size, ask, ask_size, ts, local_ts)
    return bytes(out)


def columns(rows: list[tuple[Any, ...]]) -> list[Any]:
    """bid, bid_size, ask, ask_size, exchange_ts, local_ts as the 8-byte arrays the encoder reads."""
    return [array("q", [NULL if r[1] is None else r[1] for r in rows]), array("Q", [r[2] for r in rows]),
            array("q", [NULL if r[3] is None else r[3] for r in rows]), array("Q", [r[4] for r in rows]),
            array("Q", [r[5] for r in rows]), array("Q", [r[6] for r in rows])]


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(row_st, max_size=40), first_seq=st.integers(1, 2**64 - 41), pad=st.integers(0, 24))
def test_native_bytes_equal_the_python_reference(rows: list[tuple[Any, ...]], first_seq: int, pad: int) -> None:
    want = reference(rows, first_seq)
    n = len(rows)
    # per-message symbols, at an offset, the bytes around untouched
    buf = bytearray(b"\xaa" * (pad + n * MSG + 8))
    assert encode(buf, pad, n, [r[0] for r in rows], None, *columns(rows), first_seq) == n * MSG
    assert bytes(buf[pad:pad + n * MSG]) == want
    assert buf[:pad] == b"\xaa" * pad and buf[pad + n * MSG:] == b"\xaa" * 8
    # a symbol table and int64 ids
    table = sorted({r[0] for r in rows})
    ids = array("q", [table.index(r[0]) for r in rows])
    buf2 = bytearray(n * MSG)
    encode(buf2, 0, n, table, ids, *columns(rows), first_seq)
    assert bytes(buf2) == want


@settings(max_examples=60, deadline=None)
@given(row=row_st, n=st.integers(0, 12), first_seq=st.integers(1, 2**40))
def test_ints_stand_for_every_message(row: tuple[Any, ...], n: int, first_seq: int) -> None:
    symbol, bid, bid_size, ask, ask_size, ts, local_ts = row
    buf = bytearray(n * MSG)
    encode(buf, 0, n, ["X", symbol], 1, NULL if bid is None else bid, bid_size, NULL if ask is None else ask,
           ask_size, ts, local_ts, first_seq)
    assert bytes(buf) == reference([row] * n, first_seq)


def test_native_bytes_equal_the_generated_codec_with_the_header() -> None:
    m = sbe.md()
    buf = bytearray(2 * MSG)
    encode(buf, 0, 2, ["ESZ6", "NQZ6"], None, array("q", [price(100), NULL]), array("q", [3, 0]),
           array("q", [NULL, price(20000)]), array("q", [0, 4]), 11, 12, 7)
    assert bytes(buf[:MSG]) == m.TopOfBookEncoder.from_dict({
        "symbol": "ESZ6", "exchangeTimestamp": 11, "localTimestamp": 12, "bidPrice": {"mantissa": price(100), "exponent": -9},
        "bidSize": 3, "askPrice": {"mantissa": None, "exponent": -9}, "askSize": 0, "seqNum": 7})
    d = m.decode(bytes(buf[MSG:]))
    assert (d.symbol, d.bid_price.mantissa, d.ask_price.mantissa, d.ask_size, d.seq_num, d.acting_version) == \
        ("NQZ6", None, price(20000), 4, 8, 1)
    assert bytes(buf[:8]) == bytes.fromhex("4800 0100 6400 0100")  # blockLength 72, template 1, schema 100, version 1


def good(n: int = 2) -> list[Any]:
    return [bytearray(n * MSG), 0, n, ["ESZ6"], 0, array("q", [1] * n), array("q", [2] * n), array("q", [3] * n),
            array("q", [4] * n), array("q", [5] * n), 6, 1]


NAMES = ["buffer", "offset", "count", "symbols", "symbol_ids", "bid", "bid_size", "ask", "ask_size", "exchange_ts",
         "local_ts", "first_seq"]

BAD = [
    ("bid", array("q", [1]), "reason=length_mismatch length=1 count=2"),
    ("ask_size", array("q", [1, 2, 3]), "reason=length_mismatch length=3 count=2"),
    ("symbol_ids", array("q", [0]), "reason=length_mismatch"),
    ("exchange_ts", array("d", [1.0, 2.0]), "reason=not_a_1d_int64_buffer format=d"),
    ("bid", array("i", [1, 2]), "reason=not_a_1d_int64_buffer"),
    ("bid", bytearray(16), "reason=not_a_1d_int64_buffer format=B"),
    ("bid", memoryview(array("q", [1, 2, 3, 4]))[::2], "reason=unusable_buffer"),
    ("count", -1, "reason=negative"),
    ("offset", -80, "reason=negative"),
    ("count", 2**62, "reason=too_large"),  # count * 80 wraps a 64-bit size: refused, not wrapped
    ("count", 2**70, "reason=too_large"),
    ("count", 2**40, "argument=buffer reason=too_small offset=0 count=1099511627776"),
    ("offset", 2**63 - 1, "argument=buffer reason=too_small"),
    ("buffer", bytearray(2 * MSG - 1), "reason=too_small"),
    ("buffer", b"\0" * (2 * MSG), "reason=unusable_buffer"),  # read-only
    ("bid_size", array("q", [1, -1]), "reason=negative range=uint64 index=1"),
    ("local_ts", -5, "reason=negative"),
    ("local_ts", 2**64, "reason=out_of_range"),
    ("bid", 2**63, "reason=out_of_range range=int64"),
    ("ask", array("Q", [0, 2**63]), "reason=out_of_range range=int64 index=1"),
    ("symbols", ["A" * 17], "reason=symbol_length length=17 allowed=1..16 index=0"),
    ("symbols", [""], "reason=symbol_length length=0"),
    ("symbols", ["ESZ6", "é"], "reason=not_ascii_text index=1"),
    ("symbols", [b"ESZ6"], "reason=not_ascii_text index=0"),
    ("symbol_ids", 1, "reason=out_of_range value=1 symbols=1"),
    ("symbol_ids", array("q", [0, -1]), "reason=out_of_range value=-1 symbols=1 index=1"),
    ("first_seq", 0, "reason=below_1"),
    ("first_seq", 2**64 - 1, "reason=sequence_overflow"),
    ("first_seq", 2**64, "reason=out_of_range"),
]


@pytest.mark.parametrize("name,value,detail", BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_bad_arguments_raise_value_error_naming_the_argument_and_write_nothing(name: str, value: Any,
                                                                                detail: str) -> None:
    args = good()
    args[NAMES.index(name)] = value
    out = args[0]
    before = bytes(out)
    with pytest.raises(ValueError) as e:
        encode(*args)
    named = detail if detail.startswith("argument=") else f"argument={name} {detail}"
    assert named in str(e.value) and "fault=user" in str(e.value)
    assert bytes(out) == before


def test_per_message_symbols_must_match_count_and_types_are_checked() -> None:
    args = good()
    args[3], args[4] = ["ESZ6"], None
    with pytest.raises(ValueError, match="argument=symbols reason=length_mismatch length=1 count=2"):
        encode(*args)
    args = good()
    args[5] = "1"
    with pytest.raises(TypeError, match="argument=bid reason=not_int_or_buffer"):
        encode(*args)
    args = good()
    args[3] = 5
    with pytest.raises(TypeError, match="argument=symbols reason=not_a_sequence"):
        encode(*args)
    with pytest.raises(TypeError, match="takes 12 positional arguments"):
        encode(*good()[:11])


def test_a_zero_count_writes_nothing() -> None:
    assert encode(bytearray(0), 0, 0, [], None, array("q"), 0, array("q"), 0, 0, 0, 5) == 0


def test_the_publisher_sends_the_same_bytes_native_and_python(aeron: Any) -> None:
    got: dict[bool, list[bytes]] = {}
    rows = [("ESZ6", price(100), 1, price(101), 2), ("NQZ6", None, 0, price(20000), 3), ("ESZ6", 5, 2**64 - 1, 6, 7)]
    for native in (True, False):
        sub = aeron.add_subscription("aeron:ipc", 1101 + native)
        pub = aeron.add_exclusive_publication("aeron:ipc", 1101 + native)
        run_until(lambda: None, lambda: pub.is_connected)
        p = MarketDataPublisher(pub, clock_ns=lambda: 42, native=native, initial_seq=9)
        batch = TopOfBookBatch(rows)
        assert p.publish_batch(batch) == 3
        assert p.publish_batch(batch, start=2) == 1  # a retry of the rest: numbered on
        frames: list[bytes] = []
        run_until(lambda: sub.poll(lambda buf, hdr: frames.append(bytes(buf)), 10), lambda: len(frames) == 4)
        got[native] = frames
        assert p.next_seq == 13 and p.published == 4
        pub.close()
        sub.close()
    assert got[True] == got[False]
    assert [sbe.md().decode(f).seq_num for f in got[True]] == [9, 10, 11, 12]
    with pytest.raises(ValueError, match="start must be in 0..3: start=4 fault=user"):
        MarketDataPublisher(pub, native=True).publish_batch(TopOfBookBatch(rows), start=4)


def test_tickline_feed_native_0_selects_the_python_reference() -> None:
    code = ("from tickline.feed import publisher as p; "
            "print(p.NATIVE, p.MarketDataPublisher(None).native, p.MarketDataPublisher(None, native=True).native)")
    for value, want in (("0", "False False True"), ("1", "True True True")):
        out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "TICKLINE_FEED_NATIVE": value},
                             capture_output=True, text=True, check=True, timeout=60)
        assert out.stdout.strip() == want


encode_rows = _aeron.encode_top_of_book_rows


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(row_st, max_size=40), first_seq=st.integers(1, 2**64 - 41), local_ts=st.integers(0, U64),
       pad=st.integers(0, 24))
def test_native_rows_equal_the_python_reference(rows: list[tuple[Any, ...]], first_seq: int, local_ts: int,
                                                pad: int) -> None:
    quotes = [r[:6] for r in rows]  # (symbol, bid, bid_size, ask, ask_size, exchange_ts)
    n = len(rows)
    buf = bytearray(b"\xaa" * (pad + n * MSG + 8))
    assert encode_rows(buf, pad, quotes, local_ts, first_seq) == n * MSG
    assert bytes(buf[pad:pad + n * MSG]) == reference([q + (local_ts,) for q in quotes], first_seq)
    assert buf[:pad] == b"\xaa" * pad and buf[pad + n * MSG:] == b"\xaa" * 8


class Captured:
    """A publication that takes at most ``room`` messages per offer_batch and keeps their bytes."""

    def __init__(self, room: int = 1 << 30) -> None:
        self.room = room
        self.frames: list[bytes] = []

    def offer_batch(self, views: Any) -> int:
        take = list(views)[:self.room]
        self.frames += [bytes(v) for v in take]
        return len(take)


class Framed(Captured):
    """A publication with ``offer_frames`` (what ``Publication`` has): at most ``room`` frames a call."""

    def offer_batch(self, views: Any) -> int:
        raise AssertionError("offer_batch used although offer_frames is there")

    def offer_frames(self, buf: Any, offset: int, frame_length: int, count: int) -> int:
        take = min(count, self.room)
        self.frames += [bytes(buf[offset + i * frame_length:offset + (i + 1) * frame_length]) for i in range(take)]
        return take


@settings(max_examples=40, deadline=None)
@given(batches=st.lists(st.lists(row_st, min_size=1, max_size=12), max_size=4), room=st.integers(0, 8),
       native=st.booleans())
def test_offer_frames_publishes_the_same_messages_as_offer_batch(batches: list[list[tuple[Any, ...]]], room: int,
                                                                 native: bool) -> None:
    # Both batch calls, retried from where a refusal stopped (room frames a call), through a
    # publication with offer_frames and through one with only offer_batch: the same frames,
    # numbers and counters.
    sent = {}
    for pub in (Framed(room), Captured(room)):
        md = MarketDataPublisher(pub, clock_ns=lambda: 77, native=native, initial_seq=3)
        done = []
        for rows in batches:
            done.append(md.offer_top_of_book_batch([r[:6] for r in rows]))
            tob = TopOfBookBatch([r[:5] for r in rows])
            start = 0
            for _ in range(3):
                start += md.publish_batch(tob, start)
                done.append(start)
        sent[type(pub)] = (pub.frames, done, md.next_seq, md.published, md.back_pressured)
    assert sent[Framed] == sent[Captured]
    assert sent[Framed][3] == len(sent[Framed][0])  # published counts exactly the frames that went


@settings(max_examples=60, deadline=None)
@given(batches=st.lists(st.lists(row_st, max_size=12), max_size=5), room=st.integers(0, 8))
def test_offer_top_of_book_batch_native_and_python_publish_the_same_bytes(batches: list[list[tuple[Any, ...]]],
                                                                           room: int) -> None:
    sent = {}
    for native in (True, False):
        pub = Captured(room)
        md = MarketDataPublisher(pub, clock_ns=lambda: 77, native=native, initial_seq=3)
        done = [md.offer_top_of_book_batch([r[:6] for r in rows]) for rows in batches]
        sent[native] = (pub.frames, done, md.next_seq, md.published, md.back_pressured)
    assert sent[True] == sent[False]
    assert sent[True][2] == 3 + sum(sent[True][1])  # numbered only for what went out


BAD_ROWS = [
    ([("ESZ6", 1, 1, 2)], "argument=rows reason=not_a_6_tuple type=tuple index=0"),
    ([("ESZ6", 1, 1, 2, 1, 0), "ESZ6"], "argument=rows reason=not_a_6_tuple type=str index=1"),
    ([("ESZ6", 1, None, 2, 1, 0)], "argument=rows reason=not_int type=NoneType field=bid_size index=0"),
    ([("ESZ6", 1, 1, 2, -1, 0)], "argument=rows reason=negative range=uint64 field=ask_size index=0"),
    ([("ESZ6", 2**63, 1, 2, 1, 0)], "argument=rows reason=out_of_range range=int64 field=bid index=0"),
    ([("ESZ6", 1, 1, 2, 1, 2**64)], "argument=rows reason=out_of_range range=uint64 field=exchange_ts index=0"),
    ([("ESZ6", 1.5, 1, 2, 1, 0)], "argument=rows reason=not_int type=float field=bid index=0"),
    ([("A" * 17, 1, 1, 2, 1, 0)], "argument=rows reason=symbol_length length=17 allowed=1..16 index=0"),
    ([("ESZ6", 1, 1, 2, 1, 0)] * 3, "argument=buffer reason=too_small offset=0 count=3"),
]


@pytest.mark.parametrize("rows,detail", BAD_ROWS, ids=[str(i) for i in range(len(BAD_ROWS))])
def test_bad_rows_raise_value_error_naming_the_row_and_write_nothing(rows: list[Any], detail: str) -> None:
    buf = bytearray(2 * MSG)
    with pytest.raises(ValueError) as e:
        encode_rows(buf, 0, rows, 0, 1)
    assert detail in str(e.value) and "fault=user" in str(e.value)
    assert buf == bytearray(2 * MSG)


def test_rows_arguments_are_checked() -> None:
    buf = bytearray(MSG)
    row = [("ESZ6", 1, 1, 2, 1, 0)]
    for args, detail in (((buf, -1, row, 0, 1), "argument=offset reason=negative"),
                         ((buf, 0, row, -1, 1), "argument=local_ts reason=negative"),
                         ((buf, 0, row, 0, 0), "argument=first_seq reason=below_1"),
                         ((buf, 0, row * 2, 0, 2**64 - 1), "argument=first_seq reason=sequence_overflow"),
                         ((bytes(MSG), 0, row, 0, 1), "argument=buffer reason=unusable_buffer")):
        with pytest.raises(ValueError, match=detail):
            encode_rows(*args)
    with pytest.raises(TypeError, match="argument=rows reason=not_a_sequence"):
        encode_rows(buf, 0, 5, 0, 1)
    with pytest.raises(ValueError, match="argument=rows"):  # through the publisher: nothing offered, no number used
        pub = Captured()
        md = MarketDataPublisher(pub, native=True)
        md.offer_top_of_book_batch([("ESZ6", 1, 1, 2, 1, 0), ("ESZ6", 1, -1, 2, 1, 0)])
    assert pub.frames == [] and md.next_seq == 1
