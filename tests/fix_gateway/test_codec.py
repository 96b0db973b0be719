import pytest

from tickline.fix_gateway.codec import (
    FixMessage, Frame, Framer, Garbled, GarbledMessage, Oversized, checksum, encode, parse, parse_checked,
)


def wire(s: str) -> bytes:
    return s.replace("|", "\x01").encode()


# A well-known example: the FIX 4.4 Heartbeat whose BodyLength/CheckSum we compute by hand below.
HB = "35=0|49=A|56=B|34=2|52=20240101-00:00:00.000|"


def test_encode_computes_body_length_and_checksum():
    out = encode("FIX.4.4", [(35, "0"), (49, "A"), (56, "B"), (34, 2), (52, "20240101-00:00:00.000")])
    body = wire(HB)
    head = wire(f"8=FIX.4.4|9={len(body)}|")
    assert out == head + body + b"10=%03d\x01" % (sum(head + body) % 256)
    assert out.startswith(b"8=FIX.4.4\x019=45\x0135=0\x01")


def test_encode_formats_bools_and_ints_and_rejects_missing_msgtype():
    out = encode("FIX.4.2", [(35, "A"), (108, 30), (141, True)])
    assert b"\x01108=30\x01141=Y\x01" in out
    with pytest.raises(ValueError, match="fault=local reason=first_field_not_MsgType tag=49"):
        encode("FIX.4.2", [(49, "A")])


def test_parse_roundtrip_keeps_order_and_repeats():
    raw = encode("FIX.4.4", [(35, "D"), (453, 2), (448, "X"), (448, "Y"), (55, "IBM")])
    m = parse_checked(raw)
    assert m.msg_type == "D"
    assert m.get_all(448) == ["X", "Y"]
    assert m[55] == "IBM" and m.get(999) is None
    assert m.raw == raw
    assert encode("FIX.4.4", [(t, v) for t, v in m.fields if t not in (8, 9, 10)]) == raw


def test_parse_data_field_containing_soh():
    raw = encode("FIX.4.4", [(35, "B"), (95, 5), (96, "a\x01b=c"), (58, "t")])
    m = parse_checked(raw)
    assert m[96] == "a\x01b=c" and m[58] == "t"


@pytest.mark.parametrize("text,reason", [
    ("8=FIX.4.4|9=5|35=0|bad|10=000|", "bad_field"),
    ("8=FIX.4.4|9=5|x=0|10=000|", "bad_field"),
    ("9=5|8=FIX.4.4|35=0|10=000|", "bad_field_order"),
])
def test_parse_rejects_malformed(text, reason):
    with pytest.raises(GarbledMessage, match=f"fault=remote reason={reason}"):
        parse(wire(text))


def test_parse_checked_detects_bad_checksum_and_length():
    raw = encode("FIX.4.4", [(35, "0"), (34, 1)])
    bad = raw[:-4] + b"%03d\x01" % ((checksum(raw[:-7]) + 1) % 256)
    with pytest.raises(GarbledMessage, match="reason=bad_checksum"):
        parse_checked(bad)


def frames(framer):
    return list(framer)


def test_framer_splits_stream_in_any_chunking():
    msgs = [encode("FIX.4.4", [(35, "0"), (34, i), (58, "x" * i)]) for i in range(1, 6)]
    stream = b"".join(msgs)
    for chunk in (1, 3, 7, 64, len(stream)):
        f = Framer(4096)
        got = []
        for i in range(0, len(stream), chunk):
            f.feed(stream[i:i + chunk])
            got.extend(frames(f))
        assert got == [Frame(m) for m in msgs], chunk


def test_framer_drops_bad_checksum_and_continues():
    good1 = encode("FIX.4.4", [(35, "0"), (34, 1)])
    bad = bytearray(encode("FIX.4.4", [(35, "0"), (34, 2)]))
    bad[-2] = ord("9") if bad[-2] != ord("9") else ord("8")
    good3 = encode("FIX.4.4", [(35, "0"), (34, 3)])
    f = Framer(4096)
    f.feed(good1 + bytes(bad) + good3)
    out = frames(f)
    assert out[0] == Frame(good1)
    assert isinstance(out[1], Garbled) and out[1].reason == "bad_checksum" and out[1].data == bytes(bad)
    assert out[2] == Frame(good3)


def test_framer_resyncs_after_wrong_body_length_and_junk():
    good = encode("FIX.4.4", [(35, "0"), (34, 7)])
    body_len = int(good.split(b"\x01")[1][2:])
    # declares one byte less: the trailer is not where BodyLength says
    wrong_len = good.replace(b"9=%d" % body_len, b"9=%d" % (body_len - 1), 1)
    f = Framer(4096)
    f.feed(b"junk" + wrong_len + good + good)
    out = frames(f)
    assert [type(o) for o in out] == [Garbled, Garbled, Frame, Frame]
    assert out[0].reason == "no_begin_string" and out[0].data == b"junk"
    assert out[1].reason == "bad_body_length"
    assert out[2] == Frame(good)


def test_framer_body_length_not_second():
    f = Framer(4096)
    good = encode("FIX.4.4", [(35, "0")])
    f.feed(wire("8=FIX.4.4|35=0|9=5|10=000|") + good)
    out = frames(f)
    assert isinstance(out[0], Garbled) and out[0].reason == "body_length_not_second"
    assert out[1] == Frame(good)


def test_framer_waits_for_truncated_message():
    good = encode("FIX.4.4", [(35, "0"), (34, 1)])
    f = Framer(4096)
    f.feed(good[:-3])
    assert f.next() is None and f.buffered == len(good) - 3
    f.feed(good[-3:])
    assert f.next() == Frame(good)


def test_framer_oversized_fails_stream():
    f = Framer(128)
    big = encode("FIX.4.4", [(35, "D"), (58, "x" * 200)])
    f.feed(big[:30])  # the header alone tells us it is too big
    out = f.next()
    assert out == Oversized(len(big), 128)
    f.feed(encode("FIX.4.4", [(35, "0")]))
    assert f.next() is None and f.failed
    f.reset()
    small = encode("FIX.4.4", [(35, "0")])
    f.feed(small)
    assert f.next() == Frame(small)


def test_fixmessage_accessors():
    m = FixMessage([(8, "FIX.4.4"), (9, "5"), (35, "0"), (34, "12"), (10, "000")])
    assert m.seq_num == 12 and m.get_int(34) == 12 and 35 in m and 99 not in m
    assert m.body_fields() == [(35, "0"), (34, "12")]
