"""Batch decode (tickline.codecs.batch): many messages of one template into numpy columns.

Every value is held to an independent decoder of the same bytes: the generated flyweights for
tickline's market data, the on-the-fly decoder (otf) for every message of the real schemas.  Hostile
frames end in a MessageError naming the offset."""

from __future__ import annotations

import math
import struct
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tickline.codecs import Batch, BatchDecoder, MessageError, load_builtin, load_schema, otf
from tickline.codecs.batch import pack_frames
from tickline.codecs.ir import CompositeType, EncodedType, EnumType, Message, Schema, SetType, TypeDef, is_float

from codecs_helpers import SCHEMAS, import_generated
from codecs_strategies import block

MD = load_builtin("market_data.xml")
SYMBOLS = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789./", min_size=0, max_size=16)
U64 = st.integers(0, 2**64 - 2)
PRICE = st.one_of(st.none(), st.integers(-(2**63) + 1, 2**63 - 1))
TOB = st.tuples(SYMBOLS, U64, U64, PRICE, U64, PRICE, U64, st.integers(1, 2**64 - 2))


@pytest.fixture(scope="module")
def md(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    return import_generated(MD, tmp_path_factory.mktemp("batch"), "market_data.xml")


def tob(md: ModuleType, v: tuple[Any, ...], version: int = 1) -> bytes:
    symbol, ets, lts, bid, bsz, ask, asz, seq = v
    buf = bytearray(8 + md.TopOfBookEncoder.BLOCK_LENGTH)
    enc = md.TopOfBookEncoder().wrap_and_apply_header(buf, 0)
    enc.symbol = symbol
    enc.exchange_timestamp, enc.local_timestamp = ets, lts
    enc.bid_price.mantissa, enc.bid_size = bid, bsz
    enc.ask_price.mantissa, enc.ask_size = ask, asz
    enc.seq_num = seq
    if version == 0:  # what a version-0 producer writes: no seqNum, a 64-byte block
        struct.pack_into("<HH", buf, 0, 64, 1)
        struct.pack_into("<H", buf, 6, 0)
        return bytes(buf[:8 + 64])
    return bytes(buf)


def trade(md: ModuleType, i: int, side: int | None) -> bytes:
    buf = bytearray(8 + md.TradeEncoder.BLOCK_LENGTH)
    enc = md.TradeEncoder().wrap_and_apply_header(buf, 0)
    enc.symbol = f"T{i}"
    enc.trade_id = i
    enc.price.mantissa = 100 + i
    enc.quantity = 7 * i
    enc.aggressor_side = None if side is None else md.AggressorSide(side)
    enc.seq_num = i + 1
    return bytes(buf)


def assert_matches_flyweights(md: ModuleType, batch: Batch, messages: list[bytes]) -> None:
    """Each row of the batch equals the generated decoder's read of the same message."""
    assert batch.count == len(messages)
    dec = md.TopOfBookDecoder()
    nulls_bid = batch.null_mask("bid_price.mantissa")
    nulls_seq = batch.null_mask("seq_num")
    for i, m in enumerate(messages):
        bl, _, _, version = struct.unpack_from("<HHHH", m, 0)
        d = dec.wrap(m, 8, bl, version)
        assert batch["symbol"][i].decode("ascii") == d.symbol
        assert int(batch["exchange_timestamp"][i]) == d.exchange_timestamp
        assert int(batch["local_timestamp"][i]) == d.local_timestamp
        assert int(batch["bid_size"][i]) == d.bid_size and int(batch["ask_size"][i]) == d.ask_size
        assert (None if nulls_bid[i] else int(batch["bid_price.mantissa"][i])) == d.bid_price.mantissa
        assert int(batch["ask_price.mantissa"][i]) == (d.ask_price.mantissa if d.ask_price.mantissa is not None else -(2**63))
        assert (None if nulls_seq[i] else int(batch["seq_num"][i])) == d.seq_num
        assert int(batch.versions[i]) == version


def test_top_of_book_columns_dtypes_and_mappings() -> None:
    dec = BatchDecoder(MD, "TopOfBook")
    assert [c.name for c in dec.columns] == ["symbol", "exchange_timestamp", "local_timestamp", "bid_price.mantissa",
                                             "bid_size", "ask_price.mantissa", "ask_size", "seq_num"]
    assert dec.record_dtype.itemsize == 72
    trade_dec = BatchDecoder(MD, 3)
    empty = trade_dec.messages([])
    assert empty.count == 0 and empty["aggressor_side"].dtype == np.uint8 and empty["symbol"].dtype == np.dtype("S16")
    assert empty.enums == {"aggressor_side": {1: "Buy", 2: "Sell"}}
    assert empty.constants == {"price.exponent": -9}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(TOB, min_size=1, max_size=40))
def test_messages_and_frames_equal_the_flyweight_decode(md: ModuleType, values: list[tuple[Any, ...]]) -> None:
    messages = [tob(md, v) for v in values]
    dec = BatchDecoder(MD, "TopOfBook")
    by_list = dec.messages(messages)
    assert by_list.path == "uniform"
    assert_matches_flyweights(md, by_list, messages)
    frames = pack_frames(messages, session_id=5, stream_id=9)
    for copy, path in ((True, "scan"), (False, "uniform")):  # copies come from the scanner, views from a strided view
        by_frames = dec.frames(frames, copy=copy)
        assert by_frames.path == path
        assert_matches_flyweights(md, by_frames, messages)
        assert list(by_frames.offsets) == [128 * i for i in range(len(messages))]  # 32 + 80 bytes, 32-byte aligned
        assert by_frames.skipped == {"padding": 0, "other_template": 0, "fragmented": 0}


def padding_frame(length: int) -> bytes:
    return struct.pack("<iBBHiiiiq", length, 0, 0xC0, 0, 0, 0, 0, 0, 0) + bytes(length - 32)


def fragment_frame(payload: bytes, flags: int) -> bytes:
    f = struct.pack("<iBBHiiiiq", 32 + len(payload), 0, flags, 1, 0, 0, 0, 0, 0) + payload
    return f + bytes(-len(f) % 32)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.tuples(TOB, st.sampled_from(["tob", "tob0", "trade", "pad", "frag"])), min_size=1, max_size=40))
def test_mixed_frames_take_the_scan_path_and_skip_what_is_not_the_template(md: ModuleType,
                                                                          values: list[tuple[Any, str]]) -> None:
    frames = bytearray()
    kept: list[bytes] = []
    expect = {"padding": 0, "other_template": 0, "fragmented": 0}
    offsets = []
    for i, (v, kind) in enumerate(values):
        if kind in ("tob", "tob0"):
            m = tob(md, v, 0 if kind == "tob0" else 1)
            kept.append(m)
            offsets.append(len(frames))
            frames += pack_frames([m])
        elif kind == "trade":
            frames += pack_frames([trade(md, i, 1)])
            expect["other_template"] += 1
        elif kind == "pad":
            frames += padding_frame(64 + 32 * (i % 3))
            expect["padding"] += 1
        else:
            frames += fragment_frame(tob(md, v)[:40], 0x80)  # the first fragment of a message
            expect["fragmented"] += 1
    for copy in (True, False):
        batch = BatchDecoder(MD, "TopOfBook").frames(bytes(frames), copy=copy)
        assert batch.skipped == expect
        assert list(batch.offsets) == offsets
        assert_matches_flyweights(md, batch, kept)
        if any(k != "tob" for _, k in values):
            assert batch.path == "scan"  # views need one stride: mixed frames are copied by the scanner


def test_list_of_messages_of_other_templates_and_versions_is_gathered(md: ModuleType) -> None:
    v = ("ES", 1, 2, None, 3, 4, 5, 6)
    messages = [tob(md, v), trade(md, 1, 2), tob(md, v, version=0), tob(md, v)[:8] + tob(md, v)[8:] + b"\x01" * 5]
    batch = BatchDecoder(MD, "TopOfBook").messages(messages)
    assert batch.path == "gather" and batch.skipped["other_template"] == 1
    assert list(batch.offsets) == [0, 2, 3]
    assert list(batch.null_mask("seq_num")) == [False, True, False]
    assert_matches_flyweights(md, batch, [messages[0], messages[2], messages[3]])


def test_messages_all_of_an_older_version_read_the_newer_field_as_null(md: ModuleType) -> None:
    old = [tob(md, ("OLD", i, i, i, i, i, i, i + 1), version=0) for i in range(3)]
    for batch in (BatchDecoder(MD, "TopOfBook").messages(old), BatchDecoder(MD, "TopOfBook").frames(pack_frames(old))):
        assert batch.count == 3 and list(batch.versions) == [0, 0, 0]
        assert list(batch.null_mask("seq_num")) == [True] * 3
        assert_matches_flyweights(md, batch, old)


def test_enum_columns_keep_the_raw_value_and_the_null(md: ModuleType) -> None:
    messages = [trade(md, 1, 1), trade(md, 2, None), trade(md, 3, 2)]
    batch = BatchDecoder(MD, "Trade").frames(pack_frames(messages))
    assert list(batch["aggressor_side"]) == [1, 255, 2]
    assert list(batch.null_mask("aggressor_side")) == [False, True, False]
    assert [batch.enums["aggressor_side"].get(int(x)) for x in batch["aggressor_side"]] == ["Buy", None, "Sell"]
    dec = md.TradeDecoder()
    for i, m in enumerate(messages):
        d = dec.wrap(m, 8)
        assert (None if d.aggressor_side is None else d.aggressor_side.value) == (
            None if batch.null_mask("aggressor_side")[i] else int(batch["aggressor_side"][i]))


def test_copy_false_gives_zero_copy_views_of_uniform_frames(md: ModuleType) -> None:
    frames = pack_frames([tob(md, ("X", i, i, i, i, i, i, i + 1)) for i in range(100)])
    batch = BatchDecoder(MD, "TopOfBook").frames(frames, copy=False)
    assert batch.path == "uniform"
    assert np.shares_memory(batch["bid_size"], np.frombuffer(frames, np.uint8))
    assert list(batch["bid_size"]) == list(range(100))
    copied = BatchDecoder(MD, "TopOfBook").frames(frames)
    assert copied.path == "scan" and not np.shares_memory(copied["bid_size"], np.frombuffer(frames, np.uint8))
    # a view of a read-only buffer is read-only; a field newer than the frames' version is filled in a copy
    old = pack_frames([tob(md, ("X", i, i, i, i, i, i, i + 1)) for i in range(3)])
    for i in range(3):
        struct.pack_into("<H", old, 128 * i + 32 + 6, 0)  # version 0 with a 72-byte block: seqNum is not there
    before = bytes(old)
    views = BatchDecoder(MD, "TopOfBook").frames(bytes(old), copy=False)
    assert views.path == "uniform" and list(views.null_mask("seq_num")) == [True] * 3
    assert list(views["seq_num"]) == [2**64 - 1] * 3  # filled in a copy
    assert not views["bid_size"].flags.writeable and list(views["bid_size"]) == [0, 1, 2]
    writable = BatchDecoder(MD, "TopOfBook").frames(old, copy=False)
    assert list(writable["seq_num"]) == [2**64 - 1] * 3 and bytes(old) == before  # the caller's buffer untouched


def test_a_zero_frame_length_ends_the_frames(md: ModuleType) -> None:
    messages = [tob(md, ("A", i, 0, None, 0, None, 0, 1)) for i in range(5)]
    term = pack_frames(messages) + bytes(4096)  # the unwritten rest of a term
    for copy in (True, False):
        batch = BatchDecoder(MD, "TopOfBook").frames(term, copy=copy)
        assert batch.count == 5 and list(batch["exchange_timestamp"]) == [0, 1, 2, 3, 4]
    # and after a padding frame too (the scan path)
    batch = BatchDecoder(MD, "TopOfBook").frames(padding_frame(64) + pack_frames(messages) + bytes(100), copy=False)
    assert batch.path == "scan" and batch.count == 5 and batch.skipped["padding"] == 1


# -- hostile frames ---------------------------------------------------------------------------------------------------
def good_frames(md: ModuleType, n: int = 4) -> bytearray:
    return pack_frames([tob(md, ("H", i, i, i, i, i, i, i + 1)) for i in range(n)])


def expect_error(data: bytes, *texts: str) -> str:
    with pytest.raises(MessageError) as exc:
        BatchDecoder(MD, "TopOfBook").frames(data)
    text = str(exc.value)
    for t in texts:
        assert t in text, text
    assert "fault=peer" in text
    return text


def test_a_buffer_cut_inside_a_frame_names_its_offset(md: ModuleType) -> None:
    frames = good_frames(md)
    expect_error(bytes(frames[:128 * 2 + 100]), "offset=256", "frame runs past the end of the buffer")
    expect_error(bytes(frames[:128 * 2 + 20]), "offset=256", "buffer ends inside a frame header")
    expect_error(bytes(frames[:128 * 2 + 2]), "offset=256", "buffer ends inside a frame header")


def test_a_frame_length_past_the_buffer_or_below_a_header_names_its_offset(md: ModuleType) -> None:
    frames = good_frames(md)
    struct.pack_into("<i", frames, 128, 2**31 - 1)
    expect_error(bytes(frames), "offset=128", "frame runs past the end of the buffer")
    frames = good_frames(md)
    struct.pack_into("<i", frames, 384, -64)
    expect_error(bytes(frames), "offset=384", "frame length below the frame header length")
    frames = good_frames(md)
    struct.pack_into("<i", frames, 0, 31)
    expect_error(bytes(frames), "offset=0", "frame length below the frame header length")


def test_a_block_length_past_its_frame_or_too_short_for_its_version_names_the_offset(md: ModuleType) -> None:
    frames = good_frames(md)
    struct.pack_into("<H", frames, 128 + 32, 81)  # blockLength: 8 + 81 > 80 bytes of payload
    expect_error(bytes(frames), "offset=128", "root block runs past the end of its frame")
    frames = good_frames(md)
    struct.pack_into("<H", frames, 256 + 32, 70)  # version 1 needs 72 bytes
    expect_error(bytes(frames), "block too short", "offset=256", "blockLength=70", "version=1", "length=72")


def test_more_short_blocks_than_the_first_guess_holds_still_end_in_a_block_too_short(md: ModuleType) -> None:
    # 40-byte frames declaring an empty root block: twice as many fit as frames of a real TopOfBook, so the
    # scanner fills its first output and goes on into a second one before the block is refused
    frames = pack_frames([struct.pack("<HHHH", 0, 1, 100, 1)] * 50)
    expect_error(bytes(frames), "block too short", "offset=0", "blockLength=0")
    frames = pack_frames([tob(md, ("A", i, i, i, i, i, i, i + 1)) for i in range(40)])
    frames[40 * 128:] = b""
    frames += pack_frames([struct.pack("<HHHH", 0, 2, 100, 1)] * 200)  # other templates, same small size
    batch = BatchDecoder(MD, "TopOfBook").frames(bytes(frames))
    assert batch.count == 40 and batch.skipped["other_template"] == 200


def test_unknown_frame_type_and_a_frame_too_short_for_the_header(md: ModuleType) -> None:
    frames = good_frames(md)
    struct.pack_into("<H", frames, 128 + 6, 7)
    expect_error(bytes(frames), "offset=128", "unknown frame type")
    frames = good_frames(md) + struct.pack("<iBBHiiiiq", 36, 0, 0xC0, 1, 0, 0, 0, 0, 0) + b"\x01\x00\x01\x00" + bytes(28)
    expect_error(bytes(frames), "offset=512", "shorter than the SBE message header")


def test_messages_shorter_than_the_header_or_the_block(md: ModuleType) -> None:
    good = tob(md, ("A", 1, 1, 1, 1, 1, 1, 1))
    with pytest.raises(MessageError, match="index=1 length=5 header_length=8"):
        BatchDecoder(MD, "TopOfBook").messages([good, good[:5]])
    with pytest.raises(MessageError, match="root block runs past its end: message=TopOfBook index=2 length=60 blockLength=72"):
        BatchDecoder(MD, "TopOfBook").messages([good, good, good[:60]])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_frames_decode_or_raise_message_error_only(md: ModuleType, data: st.DataObject) -> None:
    frames = bytearray(good_frames(md, 6)) + padding_frame(64) + pack_frames([trade(md, 1, 1)])
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(0, len(frames) - 1))
        frames[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(frames)))
    try:
        batch = BatchDecoder(MD, "TopOfBook").frames(bytes(frames[:cut]))
    except MessageError as e:
        assert "offset=" in str(e) and "fault=peer" in str(e)
    else:
        assert batch.count <= 6 and all(0 <= int(o) < cut for o in batch.offsets)


# -- every message of the real schemas, against the on-the-fly decoder ---------------------------------------------------
def expected_columns(schema: Schema, message: Message, fields: dict[str, Any]) -> dict[str, Any]:
    """The otf JSON form of a root block as batch columns would hold it (raw enums and sets, None for null)."""
    out: dict[str, Any] = {}

    def walk(name: str, t: TypeDef, v: Any, presence: str) -> None:
        if presence == "constant" or getattr(t, "presence", "required") == "constant":
            return
        if isinstance(t, CompositeType):
            for m in t.members:
                walk(f"{name}.{m.py}", m.type, v[m.name], getattr(m.type, "presence", "required"))
        elif isinstance(t, EnumType):
            out[name] = None if v is None else v if isinstance(v, int) else next(x.value for x in t.values if x.name == v)
        elif isinstance(t, SetType):
            out[name] = sum(1 << (c if isinstance(c, int) else next(x.bit for x in t.choices if x.name == c)) for c in v)
        else:
            out[name] = v

    for f in message.fields:
        walk(f.py, f.type, fields[f.name], f.presence)
    return out


def same(batch: Batch, name: str, i: int, want: Any) -> None:
    col = batch[name]
    got = col[i]
    null = batch.null_mask(name)[i]
    if want is None:
        assert null, (name, got)
    elif col.dtype.kind == "S":
        # char data is NUL-padded: text ends at the first NUL on both sides (otf keeps a lone "\x00" char as
        # it is, a numpy bytes column reads it as b"")
        assert got.split(b"\0")[0].decode("latin-1") == want.split("\0")[0], (name, got, want)
    elif isinstance(want, list):
        for g, w in zip(got, want):
            if w is None:
                continue
            if isinstance(w, str) or isinstance(w, float):
                assert (math.isnan(float(g)) and str(w) in ("NaN", "-NaN")) or float(g) == float(w), (name, g, w)
            else:
                assert int(g) == w, (name, g, w)
    elif isinstance(want, str):  # a non-finite float
        assert (math.isnan(float(got)) and want in ("NaN", "-NaN")) or float(got) == float(want), (name, got, want)
    elif isinstance(want, float):
        assert float(got) == want, (name, got, want)
    else:
        assert int(got) == want and not null, (name, got, want)


REAL = ["example-schema.xml", "ilinkbinary.xml", "FixBinary.xml"]


def _every_message() -> list[Any]:
    params = []
    for file in REAL + ["market_data.xml", "orders.xml"]:
        schema = load_builtin(file) if file in ("market_data.xml", "orders.xml") else load_schema(SCHEMAS / file)
        params += [pytest.param(schema, m, id=f"{file}:{m.name}") for m in schema.messages]
    return params


@pytest.mark.parametrize("schema, message", _every_message())
def test_every_message_of_a_real_schema_equals_the_otf_decode(schema: Schema, message: Message) -> None:
    check_message(schema, message)


def check_message(schema: Schema, message: Message) -> None:
    strategy = block(message.fields, message.groups, message.data)

    @settings(max_examples=6, deadline=None, database=None)
    @given(docs=st.lists(strategy, min_size=1, max_size=3))
    def run(docs: list[dict[str, Any]]) -> None:
        for d in docs:  # the batch reads root blocks only: empty groups and var data keep the run short
            d.update({g.name: [] for g in message.groups})
            d.update({v.name: "" for v in message.data})
        encoded = [otf.encode(schema, {"message": message.name, "fields": d}) for d in docs]
        dec = BatchDecoder(schema, message.name)
        for batch in (dec.messages(encoded), dec.frames(pack_frames(encoded))):
            assert batch.count == len(encoded)
            for i, data in enumerate(encoded):
                fields = otf.decode(schema, data)[0]["fields"]
                for name, want in expected_columns(schema, message, fields).items():
                    same(batch, name, i, want)

    run()
