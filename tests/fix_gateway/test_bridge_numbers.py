"""The bridge's integer fast paths for prices and quantities agree with its Decimal reference."""

import decimal

from hypothesis import given, settings, strategies as st

from tickline.fix_gateway.bridge import TranslationError, _new_order, _new_order_fast, _plain_mantissa, _price, _px, _qty, from_fix
from tickline.fix_gateway.codec import FixMessage


def decimal_px(m):
    return "0" if m is None else format(decimal.Decimal(m).scaleb(-9).normalize(), "f")


def decimal_price(v):
    """What _price did before the fast path (and still does for anything it declines)."""
    d = decimal.Decimal(v)
    if not d.is_finite():
        raise TranslationError("session", 6, 44, "")
    m = d.scaleb(9)
    if m != m.to_integral_value() or abs(m) >= 2 ** 63:
        raise TranslationError("business", 0, 44, "")
    return int(m)


def outcome(fn, *a):
    try:
        return fn(*a)
    except TranslationError as e:
        return ("error", e.kind)
    except decimal.InvalidOperation:
        return ("error", "session")


@given(st.integers(min_value=-(2 ** 63) + 1, max_value=2 ** 63 - 1))
@settings(max_examples=500)
def test_px_matches_decimal_formatting(m):
    assert _px(m) == decimal_px(m)


prices = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10 ** 11), max_value=10 ** 11).map(lambda d: format(d, "f")),
    st.from_regex(r"-?\d{1,12}(\.\d{0,12})?", fullmatch=True),
    st.sampled_from(["10.5", "0", "-0", "0.000000001", "1.0000000000", "9223372036.854775807", "9223372036.854775808",
                     "1e2", "+5", " 5", "5.", ".5", "-.5", "\u00b2", "1.2.3", ""]),
)


@given(prices)
@settings(max_examples=800)
def test_price_fast_path_matches_decimal(v):
    m = FixMessage([(8, "FIX.4.4"), (44, v)])
    assert outcome(_price, m, 44) == outcome(decimal_price, v), v
    fast = _plain_mantissa(v)
    if fast is not None:
        assert fast == decimal_price(v)


@given(st.one_of(st.from_regex(r"\d{1,22}", fullmatch=True), st.sampled_from(["0", "100", "100.0", "1e3", "-5", "18446744073709551616"])))
@settings(max_examples=500)
def test_qty_fast_path_matches_decimal(v):
    m = FixMessage([(8, "FIX.4.4"), (38, v)])
    d = decimal.Decimal(v)
    ref = int(d) if d == d.to_integral_value() and 0 < d < 2 ** 64 else ("error", "business")
    assert outcome(_qty, m, 38) == ref


# NewOrderSingle fields as a peer might send them: mostly plain, sometimes odd, sometimes absent.
_ABSENT = None
nos_fields = st.fixed_dictionaries({
    11: st.sampled_from(["O1", "X" * 20, "X" * 21, "", "\u00e9t\u00e9", _ABSENT]),
    1: st.sampled_from(["ACC", "", "A" * 12, "A" * 13, "\u00e9", _ABSENT]),
    55: st.sampled_from(["IBM", "S" * 16, "S" * 17, "", _ABSENT]),
    54: st.sampled_from(["1", "2", "5", "", _ABSENT]),
    40: st.sampled_from(["1", "2", "3", "4", "9", _ABSENT]),
    59: st.sampled_from(["0", "1", "3", "4", "6", "", "7", _ABSENT]),
    44: st.one_of(st.just(_ABSENT), prices),
    99: st.sampled_from([_ABSENT, _ABSENT, "10.5", "x"]),
    126: st.sampled_from([_ABSENT, _ABSENT, "", "20260102-12:00:00", "bad"]),
    38: st.sampled_from(["100", "0", "10.5", "1e3", "-5", "18446744073709551616", "18446744073709551615", "\u00b2", _ABSENT]),
    60: st.sampled_from(["20260101-12:00:00.123", "20260101-12:00:00", "20260101-12:00:00.123456", "2026-01-01", _ABSENT]),
})


@given(nos_fields)
@settings(max_examples=1500)
def test_new_order_fast_path_matches_checked_path(fields):
    now = 1767268800.25
    m = FixMessage([(8, "FIX.4.4"), (35, "D")] + [(t, v) for t, v in fields.items() if v is not _ABSENT])
    fast = _new_order_fast(m.index(), now)
    checked = outcome(_new_order, m, now)
    if fast is not None:
        assert fast == checked
    assert outcome(from_fix, m, now) == checked
