"""The native fast paths (cpp_ext/fixcodec.cpp) agree with the Python reference codec.

The rule under test: a native function either answers exactly what the
reference answers, or answers None ("not mine") and the reference decides;
it never accepts what the reference refuses.
"""

import datetime

import pytest
from hypothesis import given, settings, strategies as st

from tickline import _aeron
from tickline.fix_gateway import codec
from tickline.fix_gateway.codec import (
    Frame, Framer, Garbled, GarbledMessage, Oversized, encode, parse, py_encode, py_parse,
)
from tickline.fix_gateway.session import py_parse_utc_timestamp, py_utc_timestamp

pytestmark = pytest.mark.skipif(not codec.NATIVE, reason="native FIX codec disabled (TICKLINE_FIX_NATIVE=0)")


def wire(s: str) -> bytes:
    return s.replace("|", "\x01").encode("latin-1")


NOS = [(35, "D"), (49, "CLIENT"), (56, "GW"), (34, 12), (52, "20260101-12:00:00.000"), (11, "ORD-1"),
       (55, "AAPL"), (54, "1"), (38, 100), (40, "2"), (44, "187.25")]

tags = st.integers(min_value=1, max_value=99999).filter(lambda t: t not in codec.DATA_LENGTH_TAGS)
text_values = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255, blacklist_characters="\x01"),
                      min_size=0, max_size=30)
values = st.one_of(text_values, st.integers(min_value=-(2 ** 70), max_value=2 ** 70), st.booleans(),
                   st.floats(allow_nan=False, allow_infinity=False), st.binary(max_size=10).filter(lambda b: b"\x01" not in b))
bodies = st.lists(st.tuples(tags, values), max_size=12).map(lambda fs: [(35, "D")] + fs)


def reference_parse(frame: bytes):
    try:
        return py_parse(frame)
    except GarbledMessage as e:
        return e.reason
    except ValueError:
        return "ValueError"


@given(bodies, st.sampled_from(["FIX.4.2", "FIX.4.4", "FIXT.1.1"]))
@settings(max_examples=300)
def test_encode_matches_reference(fields, begin):
    assert encode(begin, fields) == py_encode(begin, fields)
    assert encode(begin, tuple(fields)) == py_encode(begin, fields)
    assert encode(begin, iter(fields)) == py_encode(begin, fields)  # not a list: the reference takes it


@given(bodies, bodies, st.sampled_from(["FIX.4.2", "FIX.4.4", "FIXT.1.1"]))
@settings(max_examples=300)
def test_encode_with_an_encoded_body_matches_reference(fields, more, begin):
    """``body`` (fields already encoded) goes after ``fields``, as if they had been listed there."""
    body = py_encode(begin, more).split(b"\x0135=D\x01", 1)[1].rsplit(b"10=", 1)[0]
    assert encode(begin, fields, body) == py_encode(begin, fields, body)
    assert py_encode(begin, fields, body) == py_encode(begin, fields + more[1:])
    with pytest.raises(TypeError, match="body: bytes"):
        _aeron.fix_encode(begin, fields, "37=1\x01")


def test_encode_native_declines_what_it_does_not_know():
    assert _aeron.fix_encode("FIX.4.4", [(49, "A")]) is None  # MsgType not first: the reference raises
    assert _aeron.fix_encode("FIX.4.4", []) is None
    assert _aeron.fix_encode("FIX.4.4", [(35, "D"), (141, True)]) is None  # bool -> Y/N in the reference
    assert _aeron.fix_encode("FIX.4.4", [(35, "D"), (58, "\u20ac")]) is None  # not latin-1
    assert _aeron.fix_encode("FIX.4.4", [(35, "D"), (38, 2 ** 80)]) is None
    with pytest.raises(ValueError, match="first_field_not_MsgType"):
        encode("FIX.4.4", [(49, "A")])
    with pytest.raises(UnicodeEncodeError):
        encode("FIX.4.4", [(35, "D"), (58, "\u20ac")])


@given(bodies)
@settings(max_examples=300)
def test_parse_roundtrip_matches_reference(fields):
    raw = py_encode("FIX.4.4", fields)
    native, ref = parse(raw), py_parse(raw)
    assert native.fields == ref.fields and native.raw == raw
    for t, _ in ref.fields:
        assert native.get(t) == ref.get(t)


@given(st.binary(max_size=120))
@settings(max_examples=500)
def test_parse_garbage_never_accepted_wrongly(junk):
    for frame in (junk, b"8=FIX.4.4\x019=5\x0135=D\x01" + junk + b"\x0110=000\x01"):
        r = _aeron.fix_split(frame)
        ref = reference_parse(frame)
        if r is not None:
            assert not isinstance(ref, str), f"native accepted what the reference refuses: {ref}"
            assert r[0] == ref.fields
        got = parse(frame) if not isinstance(ref, str) else ref
        assert (got.fields if not isinstance(got, str) else got) == (ref.fields if not isinstance(ref, str) else ref)


@pytest.mark.parametrize("text,reason", [
    ("8=FIX.4.4|9=5|35=0|bad|10=000|", "bad_field"),
    ("8=FIX.4.4|9=5|x=0|10=000|", "bad_field"),
    ("9=5|8=FIX.4.4|35=0|10=000|", "bad_field_order"),
    ("8=FIX.4.4|9=5|35=0|10=000", "no_trailing_soh"),
    ("8=FIX.4.4|9=5|35=0||10=000|", "bad_field"),
    ("8=FIX.4.4|9=5|35=0|\xb2=1|10=000|", "bad_field"),  # a latin-1 superscript two is not a digit for int()
    ("8=FIX.4.4|9=5|35=0|10=000|", None),
])
def test_parse_bad_input_same_error(text, reason):
    frame = wire(text)
    if reason is None:
        assert parse(frame).fields == py_parse(frame).fields
        return
    assert _aeron.fix_split(frame) is None
    with pytest.raises(GarbledMessage, match=f"reason={reason}"):
        parse(frame)


def test_data_fields_go_to_the_reference():
    raw = py_encode("FIX.4.4", [(35, "B"), (95, 5), (96, "a\x01b=c"), (58, "t")])
    assert _aeron.fix_split(raw) is None
    assert parse(raw)[96] == "a\x01b=c"


def reference_frames(stream: bytes, max_size: int, chunk: int):
    f = Framer(max_size)
    out = []
    for i in range(0, len(stream), chunk):
        f.feed(stream[i:i + chunk])
        for item in f:
            out.append(item)
    return out


def fast_frames(stream: bytes, max_size: int, chunk: int):
    """What Session.receive_data does: next_message() first, then next()."""
    f = Framer(max_size)
    out = []
    for i in range(0, len(stream), chunk):
        f.feed(stream[i:i + chunk])
        while True:
            m = f.next_message()
            if m is not None:
                out.append(Frame(m.raw))
                continue
            item = f.next()
            if item is None:
                break
            out.append(item)
    return out


good = py_encode("FIX.4.4", NOS)
pieces = st.sampled_from([
    good,
    good[:-4] + b"%03d\x01" % ((int(good[-4:-1]) + 1) % 256),  # bad CheckSum
    good.replace(b"9=", b"9=1", 1),  # bad BodyLength
    good[:40],  # truncated
    b"junk\x01",
    b"8=FI",
    b"8=FIX.4.4\x019=99999\x01",  # oversized for the smaller maximum
    b"8=FIX.4.4\x019=x\x0135=0\x0110=000\x01",
    b"8=FIX.4.4\x0135=0\x019=5\x0110=000\x01",  # BodyLength not second
])


@given(st.lists(pieces, min_size=1, max_size=8), st.sampled_from([1, 7, 64, 100_000]), st.sampled_from([200, 1 << 20]))
@settings(max_examples=300)
def test_framer_fast_path_matches_reference(parts, chunk, max_size):
    stream = b"".join(parts)
    assert fast_frames(stream, max_size, chunk) == reference_frames(stream, max_size, chunk)


def test_framer_fast_path_bad_input_cases():
    bad_sum = good[:-4] + b"%03d\x01" % ((int(good[-4:-1]) + 1) % 256)
    f = Framer(1 << 20)
    f.feed(bad_sum + good)
    assert f.next_message() is None
    assert isinstance(f.next(), Garbled)
    m = f.next_message()
    assert m is not None and m.raw == good and m.fields == py_parse(good).fields
    f = Framer(100)
    f.feed(good)
    assert f.next_message() is None
    assert isinstance(f.next(), Oversized)
    f = Framer()
    f.feed(good[:-1])
    assert f.next_message() is None and f.next() is None
    f.feed(good[-1:])
    assert f.next_message().raw == good


# -- UTCTimestamps (session.utc_timestamp / parse_utc_timestamp) ------------------------------

seconds = st.one_of(
    st.floats(min_value=0, max_value=253402300799.9994, allow_nan=False),
    st.integers(min_value=0, max_value=253402300799),
    st.integers(min_value=0, max_value=4 * 10 ** 9).map(lambda s: s + 0.9995),  # rounds up into the next second
    st.integers(min_value=0, max_value=4 * 10 ** 9).map(lambda s: s + 0.0005),
    st.sampled_from([1767268800.0, 1767268799.9999999, 0.0, 951782399.9996]))


@given(seconds)
@settings(max_examples=1000)
def test_utc_timestamp_matches_reference(now):
    native = _aeron.fix_utc_timestamp(now)
    assert native is not None and native == py_utc_timestamp(now)


def test_utc_timestamp_native_declines_what_python_formats():
    for now in (-1.0, -0.5, 253402300800.0, float("inf"), float("nan"), 2 ** 80, "x"):
        assert _aeron.fix_utc_timestamp(now) is None
    with pytest.raises(TypeError, match=r"fix_utc_timestamp\(now: float\)"):
        _aeron.fix_utc_timestamp()


stamps = st.one_of(
    st.builds(lambda d, frac: d.strftime("%Y%m%d-%H:%M:%S") + frac,
              st.datetimes(min_value=datetime.datetime(1000, 1, 1)),
              st.one_of(st.just(""), st.from_regex(r"\.[0-9]{1,16}", fullmatch=True))),
    st.from_regex(r"[0-9]{8}-[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{0,3})?", fullmatch=True),
    st.from_regex(r"\d{8}-\d\d:\d\d:\d\d(\.\d{0,3})?", fullmatch=True),
    st.text(max_size=24))


@given(stamps)
@settings(max_examples=1500)
def test_parse_utc_timestamp_matches_reference(s):
    native = _aeron.fix_parse_utc_timestamp(s)
    if native is not None:
        assert native == py_parse_utc_timestamp(s)


@pytest.mark.parametrize("s,expected", [
    ("20260101-12:00:00", 1767268800.0),
    ("20260101-12:00:00.5", 1767268800.5),
    ("20260231-00:00:00", 1772496000.0),       # Feb 31st: counted on, as calendar.timegm does
    ("20261231-23:59:60.999", 1798761600.999),  # a leap second
])
def test_parse_utc_timestamp_native_values(s, expected):
    assert _aeron.fix_parse_utc_timestamp(s) == expected == py_parse_utc_timestamp(s)


@pytest.mark.parametrize("s", ["20260101-24:00:00", "20261301-12:00:00", "20260100-12:00:00", "2026-01-01",
                               "20260101-12:00:00.", "20260101-12:00:00.1234567890123456", "20260101 12:00:00",
                               "2026\u00b20101-12:00:00"])
def test_parse_utc_timestamp_native_declines_the_rest(s):
    assert _aeron.fix_parse_utc_timestamp(s) is None
