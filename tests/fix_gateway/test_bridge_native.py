"""The bridge's native fast paths (cpp_ext/fixbridge.cpp) agree with its Python reference.

The rule under test, as for the codec: a native function answers exactly what the
Python code answers, or None ("not mine") and the Python code decides; it never
accepts what the Python code refuses.  The extension's functions are called directly,
so these tests run whatever TICKLINE_FIX_NATIVE says.
"""

import datetime

import pytest
from hypothesis import given, settings, strategies as st

from tickline import _aeron
from tickline.fix_gateway.bridge import (
    _NATIVE_NOS_SPEC, ExecType, ExecutionReport, NewOrder, OrdStatus, OrdType, RejectReason, Side, TimeInForce,
    TranslationError, _new_order, _py_new_order_fast, to_fix,
)
from tickline.fix_gateway.codec import FixMessage, encode, py_encode

from test_bridge_numbers import nos_fields, prices  # the NewOrderSingle strategies (tests/fix_gateway on sys.path)

NOW = 1767268800.25


def native_new_order(fields, now=NOW):
    return _aeron.fix_new_order(_NATIVE_NOS_SPEC, FixMessage(fields).index(), now)


def checked(msg, now):
    try:
        return _new_order(msg, now)
    except TranslationError as e:
        return ("error", e.kind, e.reason, e.tag)


# -- NewOrderSingle -> NewOrder -------------------------------------------------------

def timestamps():
    """UTCTimestamps as peers write them, and some that only look like one."""
    good = st.builds(lambda d, frac: d.strftime("%Y%m%d-%H:%M:%S") + frac,
                     st.datetimes(min_value=datetime.datetime(1, 1, 1), max_value=datetime.datetime(9999, 12, 31)),
                     st.one_of(st.just(""), mostly(st.from_regex(r"\.[0-9]{1,9}", fullmatch=True),
                                                   st.from_regex(r"\.[0-9]{10,12}", fullmatch=True), 4)))
    odd = st.one_of(st.from_regex(r"[0-9]{8}-[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{0,3})?", fullmatch=True),  # hour 24, day 00...
                    st.sampled_from(["20260231-12:00:00", "20261231-23:59:60.999", "00000101-00:00:00", "2026010112:00:00",
                                     "20260101-12:00:00.", "20260101-12:00:00.1a", "20260101-12:00:00,1", " 0260101-12:00:00",
                                     "20260101-1\u00b2:00:00", "+0260101-12:00:00", "19700101-00:00:00.5"]))
    return mostly(good, odd, 3)


def mostly(plain, odd, one_in=10):
    """``odd`` once in ``one_in`` draws, else ``plain``: most generated values are ones the
    native path takes, so that a whole message often is."""
    return st.sampled_from(range(one_in)).flatmap(lambda i: odd if i == 0 else plain)


# odd values a peer might send, per tag (None: absent)
ODD = {11: ["X" * 21, "", "\u00e9t\u00e9", None], 1: ["A" * 13, "\u00e9"], 55: ["S" * 17, "", None],
       54: ["5", "", None], 40: ["3", "4", "9", None], 59: ["", "7"], 99: ["10.5", "x"], 126: ["20260102-12:00:00", "bad"]}

# NewOrderSingles: those of test_bridge_numbers, and mostly plain ones with an odd value here and there;
# with wider timestamps and quantities
orders = st.tuples(
    mostly(st.fixed_dictionaries({
        11: mostly(st.from_regex(r"[A-Za-z0-9-]{1,20}", fullmatch=True), st.sampled_from(ODD[11])),
        1: mostly(st.sampled_from(["ACC", "", None]), st.sampled_from(ODD[1])),
        55: mostly(st.just("IBM"), st.sampled_from(ODD[55])),
        54: mostly(st.sampled_from(["1", "2"]), st.sampled_from(ODD[54])),
        40: mostly(st.sampled_from(["1", "2"]), st.sampled_from(ODD[40])),
        59: mostly(st.sampled_from(["0", "1", "3", "4", "6", None]), st.sampled_from(ODD[59])),
        44: mostly(st.from_regex(r"-?[0-9]{1,9}(\.[0-9]{1,9})?", fullmatch=True), st.one_of(prices, st.none()), 4),
        99: mostly(st.none(), st.sampled_from(ODD[99])),
        126: mostly(st.sampled_from([None, ""]), st.sampled_from(ODD[126])),
    }), nos_fields, 3),
    st.one_of(st.none(), timestamps()),
    mostly(st.integers(min_value=1, max_value=10 ** 15).map(str),
           st.one_of(st.none(), st.from_regex(r"0{0,3}[0-9]{1,21}", fullmatch=True)), 4))


@given(orders, st.sampled_from([NOW, 1767268800, 0.5, 1e9 + 0.999999999]))
@settings(max_examples=1000)
def test_native_new_order_matches_the_checked_path(fields_ts_qty, now):
    fields, ts, qty = fields_ts_qty
    fields = dict(fields)
    if ts is not None:
        fields[60] = ts
    if qty is not None:
        fields[38] = qty
    body = [(t, v) for t, v in fields.items() if v is not None]
    msg = FixMessage([(8, "FIX.4.4"), (35, "D")] + body)
    native = _aeron.fix_new_order(_NATIVE_NOS_SPEC, msg.index(), now)
    ref = checked(msg, now)
    if native is not None:
        assert type(native) is NewOrder and native == ref
        assert [type(a) for a in native] == [type(a) for a in ref]  # Side, not "1"; int, not float
    py_fast = _py_new_order_fast(msg.index(), now)
    if py_fast is not None:
        assert py_fast == ref


@given(st.from_regex(r"[A-Z0-9]{1,20}", fullmatch=True), st.sampled_from(["1", "2"]), prices,
       st.integers(min_value=1, max_value=10 ** 19 - 1), timestamps())
@settings(max_examples=1000)
def test_native_new_order_takes_every_plain_order(cl, side, px, qty, ts):
    """A plain limit NewOrderSingle (what the gateway sees all day) is translated natively
    whenever the Python fast path takes it, unless its time has more than 9 decimals."""
    fields = [(11, cl), (55, "IBM"), (54, side), (38, str(qty)), (40, "2"), (44, px), (60, ts)]
    py_fast = _py_new_order_fast(FixMessage(fields).index(), NOW)
    native = native_new_order(fields)
    if py_fast is not None and is_calendar_time(ts):
        assert native == py_fast
    if native is not None:
        assert native == py_fast


def is_calendar_time(ts):
    """A real date and time of day, with at most 9 decimals."""
    try:
        datetime.datetime.strptime(ts[:17], "%Y%m%d-%H:%M:%S")
    except ValueError:
        return False
    frac = ts[17:]
    return frac == "" or (frac[0] == "." and 1 <= len(frac) - 1 <= 9 and frac[1:].isdigit() and frac.isascii())


def test_native_new_order_fields():
    o = native_new_order([(11, "O1"), (1, "ACC"), (55, "IBM"), (54, "2"), (60, "20260101-12:00:00.123"), (38, "100"),
                          (40, "2"), (44, "-10.25"), (59, "3")])
    assert o == NewOrder("O1", "ACC", "IBM", Side.SELL, OrdType.LIMIT, TimeInForce.IMMEDIATE_OR_CANCEL, -10_250_000_000,
                         None, 100, int(round(1767268800.123 * 1e9)), None)  # float seconds, as the checked path
    assert o.side is Side.SELL and o.time_in_force is TimeInForce.IMMEDIATE_OR_CANCEL
    # market order without price, no Account, no TimeInForce, no TransactTime: now
    o = native_new_order([(11, "M1"), (55, "IBM"), (54, "1"), (38, "5"), (40, "1")])
    assert o == NewOrder("M1", "", "IBM", Side.BUY, OrdType.MARKET, TimeInForce.DAY, None, None, 5, int(NOW * 1e9), None)


@pytest.mark.parametrize("change", [
    {44: None},                      # a limit order needs its price: the checked path names tag 44
    {40: "3"},                       # stop orders go to the checked path
    {99: "10"},                      # StopPx present
    {126: "20260102-12:00:00"},      # ExpireTime present
    {11: "X" * 21},                  # ClOrdID longer than the schema's 20
    {11: "\u00e9"},                  # not ASCII
    {1: "A" * 13},                   # Account longer than 12
    {38: "0"}, {38: "10.5"}, {38: "1e3"}, {38: "-5"}, {38: "\u00b2"},
    {44: "1.0000000001"}, {44: "1e2"}, {44: "5."}, {44: ".5"}, {44: "92233720368.5"},
    {60: "2026-01-01"}, {60: "20261301-12:00:00"}, {60: "20260101-12:00:00.1234567890"},
    {54: "5"}, {59: "7"}, {55: None}, {11: ""},
])
def test_native_new_order_declines_what_the_checked_path_must_decide(change):
    fields = dict([(11, "O1"), (1, "ACC"), (55, "IBM"), (54, "1"), (60, "20260101-12:00:00"), (38, "100"), (40, "2"),
                   (44, "10.5")])
    fields.update(change)
    assert native_new_order([(t, v) for t, v in fields.items() if v is not None]) is None


def test_native_new_order_bad_arguments_are_a_type_error():
    with pytest.raises(TypeError, match=r"fix_new_order\(spec: tuple, index: dict, now: float\)"):
        _aeron.fix_new_order(_NATIVE_NOS_SPEC, [(11, "O1")], NOW)
    with pytest.raises(TypeError, match=r"spec = \(type, dict, dict, dict, member, int, int, int\)"):
        _aeron.fix_new_order((NewOrder, {}, {}, {}, None, "20", 16, 12), {}, NOW)
    with pytest.raises(TypeError):
        _aeron.fix_new_order(_NATIVE_NOS_SPEC, {})


# -- ExecutionReport -> FIX body --------------------------------------------------------

mantissas = st.one_of(st.none(), st.integers(min_value=-(2 ** 63) + 1, max_value=2 ** 63 - 1),
                      st.sampled_from([0, 10_500_000_000, -1, 1, 187_250_000_000, 2 ** 63, -(2 ** 63)]))
quantities = mostly(st.integers(min_value=0, max_value=2 ** 63 - 1), st.sampled_from([0, 100, 2 ** 64, -(2 ** 63) - 1]), 4)
ids = mostly(st.integers(min_value=0, max_value=2 ** 63 - 1), st.sampled_from([2 ** 64, -1]), 4)
# ns since the epoch, with the millisecond rounding edges (x.9995 s rounds up to the next second)
times_ns = st.one_of(st.integers(min_value=0, max_value=253402300799 * 10 ** 9),
                     st.integers(min_value=0, max_value=4 * 10 ** 9).map(lambda s: s * 10 ** 9 + 999_500_000),
                     st.integers(min_value=0, max_value=4 * 10 ** 9).map(lambda s: s * 10 ** 9 + 500_000),
                     st.sampled_from([-1, 2 ** 63, 1767268800_000_000_000]))
text = st.one_of(st.just(""), mostly(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=12),
                                     st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=300), max_size=12), 4))
reports = st.builds(
    ExecutionReport, ids, ids, text.filter(bool), text.filter(bool), st.sampled_from(list(Side)),
    st.sampled_from(list(ExecType)), st.sampled_from(list(OrdStatus)), mantissas, mantissas, quantities, quantities,
    quantities, mantissas, times_ns, st.one_of(st.none(), st.sampled_from(list(RejectReason))), text, text)
# and reports with every value in range, as venues send them
small = st.integers(min_value=0, max_value=2 ** 63 - 1)
px = st.one_of(st.none(), st.integers(min_value=-(2 ** 63) + 1, max_value=2 ** 63 - 1))
latin1 = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=12)
plain_reports = st.builds(
    ExecutionReport, small, small, latin1.filter(bool), latin1.filter(bool), st.sampled_from(list(Side)),
    st.sampled_from([ExecType.NEW, ExecType.TRADE, ExecType.CANCELED]),
    st.sampled_from([s for s in OrdStatus if s is not OrdStatus.REPLACED]), px, px, small, small, small, px,
    st.integers(min_value=0, max_value=253402300799 * 10 ** 9), st.none(), latin1, latin1)

HEADER = [(35, "8"), (49, "GW"), (56, "CLIENT"), (34, 9), (52, "20260101-12:00:00.000")]


@given(st.one_of(reports, plain_reports), st.sampled_from(["FIX.4.2", "FIX.4.4", "FIXT.1.1"]))
@settings(max_examples=1000)
def test_native_report_body_is_what_to_fix_encodes(report, begin):
    body = _aeron.fix_execution_report_body(report, begin == "FIX.4.2")
    if body is None:
        return
    mt, fields = to_fix(report, begin, None)
    assert mt == "8"
    assert py_encode(begin, HEADER, body) == py_encode(begin, HEADER + fields)
    assert encode(begin, HEADER, body) == py_encode(begin, HEADER + fields)


def plain(exec_type, status, leaves, cum, **kw):
    r = ExecutionReport(42, 7, "O1", "IBM", Side.BUY, exec_type, status, 10_250_000_000, 10_250_000_000 if cum else None,
                        cum, leaves, cum, 10_250_000_000 if cum else None, 1767268800_123_456_789)
    return r._replace(**kw)


@pytest.mark.parametrize("report", [
    plain(ExecType.NEW, OrdStatus.NEW, 100, 0),
    plain(ExecType.TRADE, OrdStatus.PARTIALLY_FILLED, 60, 40),
    plain(ExecType.TRADE, OrdStatus.FILLED, 0, 100, text="done", orig_cl_ord_id="O0"),
    plain(ExecType.CANCELED, OrdStatus.CANCELED, 0, 0, orig_cl_ord_id="O0", price=None),
])
@pytest.mark.parametrize("begin", ["FIX.4.2", "FIX.4.4", "FIXT.1.1"])
def test_native_report_body_takes_plain_reports(report, begin):
    body = _aeron.fix_execution_report_body(report, begin == "FIX.4.2")
    assert body is not None
    assert encode(begin, HEADER, body) == py_encode(begin, HEADER + to_fix(report, begin, None)[1])


def test_native_report_body_wire_text():
    body = _aeron.fix_execution_report_body(plain(ExecType.TRADE, OrdStatus.FILLED, 0, 100), True)
    assert body == (b"37=42\x0117=7\x0120=0\x01150=2\x0139=2\x0111=O1\x0155=IBM\x0154=1\x0144=10.25\x0132=100\x01"
                    b"31=10.25\x01151=0\x0114=100\x016=10.25\x0160=20260101-12:00:00.123\x01")


@pytest.mark.parametrize("report", [
    plain(ExecType.REJECTED, OrdStatus.REJECTED, 0, 0, reject_reason=RejectReason.OTHER),  # 103 needs the dictionary
    plain(ExecType.REPLACED, OrdStatus.REPLACED, 100, 0),   # OrdStatus per version and dictionary
    plain(ExecType.NEW, OrdStatus.NEW, 100, 0, text="\u20ac"),  # not Latin-1: the encoder raises
    plain(ExecType.NEW, OrdStatus.NEW, 100, 0, order_id=2 ** 64),
    plain(ExecType.NEW, OrdStatus.NEW, 100, 0, price=2 ** 63),
    plain(ExecType.NEW, OrdStatus.NEW, 100, 0, transact_time=-1),
    plain(ExecType.NEW, OrdStatus.NEW, True, 0),            # a bool is Y/N to the encoder
    ("not", "a", "report"),
])
def test_native_report_body_declines_what_python_decides(report):
    assert _aeron.fix_execution_report_body(report, False) is None


def test_native_report_body_bad_arguments_are_a_type_error():
    with pytest.raises(TypeError, match=r"fix_execution_report_body\(report: ExecutionReport, fix42: bool\)"):
        _aeron.fix_execution_report_body(plain(ExecType.NEW, OrdStatus.NEW, 100, 0), 1)
