"""FIX <-> order-entry bridge.

Translates NewOrderSingle / OrderCancelRequest / OrderCancelReplaceRequest
into the order messages of ``schemas/orders.xml`` (as named tuples,
field for field), and ExecutionReport / OrderReject back into
FIX that is valid for the session's version (ExecTransType only on 4.2; a
fill is ExecType 2 or 1 on 4.2 and F from 4.4 on; OrderID, ExecID, CumQty,
LeavesQty, AvgPx always present).

The transport is behind two small interfaces so Aeron plugs in later:

- ``OrderSink.offer(session_id, request) -> bool``: take an order request
  (False = back pressure: the order is refused on the FIX side, never
  dropped);
- ``ExecutionSource.poll(handler, limit) -> int``: hand out execution
  reports and order rejects, ``handler(session_id | None, report)``.

A message that can't be translated is answered on the FIX side
(BusinessMessageReject for business problems, a session Reject for
malformed fields) and reported through ``on_reject``.
"""

from __future__ import annotations

import collections
import decimal
import enum
import functools
import logging
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Protocol, Union

from .codec import NATIVE, FieldValue, FixMessage
from .dictionary import DataDictionary, SessionRejectReason, load_dictionary
from .session import ApplicationMessage, Event, parse_utc_timestamp, utc_timestamp

_log = logging.getLogger("tickline.fix_gateway")

__all__ = [
    "Side", "OrdType", "TimeInForce", "ExecType", "OrdStatus", "RejectReason", "CxlRejResponseTo",
    "NewOrder", "CancelOrder", "ReplaceOrder", "ExecutionReport", "OrderReject", "OrderRequest", "VenueReport",
    "OrderSink", "ExecutionSource", "TranslationError", "from_fix", "to_fix", "FixBridge", "PRICE_SCALE",
    "BusinessRejectReason",
]

PRICE_SCALE = 10 ** 9  # schemas/common.xml: Price mantissa * 10^-9
CLORDID_LEN, SYMBOL_LEN, ACCOUNT_LEN = 20, 16, 12  # the char[] lengths of schemas/orders.xml


class Side(str, enum.Enum):
    BUY = "1"
    SELL = "2"


class OrdType(str, enum.Enum):
    MARKET = "1"
    LIMIT = "2"
    STOP = "3"
    STOP_LIMIT = "4"


class TimeInForce(str, enum.Enum):
    DAY = "0"
    GOOD_TILL_CANCEL = "1"
    IMMEDIATE_OR_CANCEL = "3"
    FILL_OR_KILL = "4"
    GOOD_TILL_DATE = "6"


class ExecType(str, enum.Enum):
    NEW = "0"
    CANCELED = "4"
    REPLACED = "5"
    REJECTED = "8"
    TRADE = "F"


class OrdStatus(str, enum.Enum):
    NEW = "0"
    PARTIALLY_FILLED = "1"
    FILLED = "2"
    CANCELED = "4"
    REPLACED = "5"
    REJECTED = "8"


class RejectReason(enum.IntEnum):
    BROKER_OPTION = 0
    UNKNOWN_SYMBOL = 1
    EXCHANGE_CLOSED = 2
    EXCEEDS_LIMIT = 3
    TOO_LATE_TO_CANCEL = 4
    UNKNOWN_ORDER = 5
    DUPLICATE_ORDER = 6
    INVALID_PRICE = 7
    INVALID_QUANTITY = 8
    OTHER = 99


class CxlRejResponseTo(str, enum.Enum):
    CANCEL = "1"
    REPLACE = "2"


class BusinessRejectReason:
    """BusinessRejectReason (380)."""

    OTHER = 0
    UNKNOWN_ID = 1
    UNSUPPORTED_MESSAGE_TYPE = 3
    APPLICATION_NOT_AVAILABLE = 4
    CONDITIONALLY_REQUIRED_FIELD_MISSING = 5


# The order messages are NamedTuples: immutable and compared field for field like the frozen
# dataclasses they replaced, but made with one tuple allocation (a frozen dataclass's __init__
# calls object.__setattr__ per field: ~1.7 us for an ExecutionReport against ~0.4 us), and a
# handler may unpack one in a single step.  Being tuples, they also compare equal to a plain
# tuple of the same values; each type has its own field count, so two of different types never do.


class NewOrder(NamedTuple):
    cl_ord_id: str
    account: str
    symbol: str
    side: Side
    ord_type: OrdType
    time_in_force: TimeInForce
    price: int | None  # mantissa, 10^-9
    stop_price: int | None
    quantity: int
    transact_time: int  # ns since the epoch
    expire_time: int | None = None


class CancelOrder(NamedTuple):
    cl_ord_id: str
    orig_cl_ord_id: str
    symbol: str
    side: Side
    transact_time: int


class ReplaceOrder(NamedTuple):
    cl_ord_id: str
    orig_cl_ord_id: str
    symbol: str
    side: Side
    ord_type: OrdType
    time_in_force: TimeInForce
    price: int | None
    quantity: int
    transact_time: int


class ExecutionReport(NamedTuple):
    order_id: int
    exec_id: int
    cl_ord_id: str
    symbol: str
    side: Side
    exec_type: ExecType
    ord_status: OrdStatus
    price: int | None
    last_price: int | None
    last_quantity: int
    leaves_quantity: int
    cum_quantity: int
    avg_price: int | None
    transact_time: int
    reject_reason: RejectReason | None = None
    text: str = ""
    orig_cl_ord_id: str = ""  # not on the SBE message; the bridge fills it in for cancels/replaces


class OrderReject(NamedTuple):
    order_id: int | None
    cl_ord_id: str
    orig_cl_ord_id: str
    ord_status: OrdStatus
    response_to: CxlRejResponseTo
    reject_reason: RejectReason
    transact_time: int
    text: str = ""


OrderRequest = Union[NewOrder, CancelOrder, ReplaceOrder]
VenueReport = Union[ExecutionReport, OrderReject]


def refusal_text(failure: str) -> str:
    """The Text (58) of the BusinessMessageReject for an order the venue's stream did not take,
    naming the cause (``failure``: the sink's ``last_failure``, an ``OfferResult`` name)."""
    if failure == "NOT_CONNECTED":
        return "order entry not connected: no venue subscribed (NOT_CONNECTED)"
    if failure in ("", "BACK_PRESSURED", "ADMIN_ACTION"):
        return "order entry back pressured, retry"
    return f"order entry unavailable ({failure})"


class OrderSink(Protocol):
    def offer(self, session_id: str, request: OrderRequest) -> bool: ...


class ExecutionSource(Protocol):
    def poll(self, handler: Callable[[str | None, VenueReport], None], limit: int) -> int: ...


class TranslationError(Exception):
    """A FIX message the bridge can't translate (the peer's fault).

    ``kind`` is "business" (answer with BusinessMessageReject, ``reason`` is
    380) or "session" (answer with Reject, ``reason`` is 373).
    """

    def __init__(self, kind: str, reason: int, tag: int | None, text: str) -> None:
        self.kind, self.reason, self.tag, self.text = kind, reason, tag, text
        super().__init__(f"untranslatable FIX message: fault=remote kind={kind} reason={reason} tag={tag} {text}")


# -- FIX -> orders -------------------------------------------------------------


def _req(msg: FixMessage, tag: int) -> str:
    v = msg.get(tag)
    if v is None or v == "":
        raise TranslationError("session", SessionRejectReason.REQUIRED_TAG_MISSING, tag, f"Required tag missing tag={tag}")
    return v


def _text(msg: FixMessage, tag: int, max_len: int, required: bool = True) -> str:
    v = _req(msg, tag) if required else (msg.get(tag) or "")
    if len(v) > max_len or not v.isascii():
        raise TranslationError("business", BusinessRejectReason.OTHER, tag,
                               f"value does not fit the order schema tag={tag} max_len={max_len} len={len(v)}")
    return v


def _enum(msg: FixMessage, tag: int, cls: type[enum.Enum], default: str | None = None) -> enum.Enum:
    v = msg.get(tag) or default
    if v is None:
        raise TranslationError("session", SessionRejectReason.REQUIRED_TAG_MISSING, tag, f"Required tag missing tag={tag}")
    member = cls._value2member_map_.get(v)  # what cls(v) finds first, without the metaclass call
    if member is not None:
        return member
    try:
        return cls(v)
    except ValueError:
        raise TranslationError("business", BusinessRejectReason.OTHER, tag,
                               f"unsupported value tag={tag} value={v!r} supported={','.join(str(m.value) for m in cls)}") from None


def _decimal(msg: FixMessage, tag: int) -> decimal.Decimal | None:
    v = msg.get(tag)
    if v is None:
        return None
    try:
        d = decimal.Decimal(v)
    except decimal.InvalidOperation:
        raise TranslationError("session", SessionRejectReason.INCORRECT_DATA_FORMAT, tag,
                               f"Incorrect data format for value tag={tag} value={v[:32]!r}") from None
    if not d.is_finite():
        raise TranslationError("session", SessionRejectReason.INCORRECT_DATA_FORMAT, tag, f"Incorrect data format for value tag={tag}")
    return d


def _plain_mantissa(v: str) -> int | None:
    """The price mantissa (10^-9) of a plain ASCII decimal with at most 9 decimals ("187.25",
    "-0.5"), the same int the Decimal path computes; None for anything else (that path decides)."""
    t = v[1:] if v[:1] == "-" else v
    whole, dot, frac = t.partition(".")
    if (len(whole) > 19 or not (whole.isdigit() and whole.isascii()) or len(frac) > 9
            or (dot and not (frac.isdigit() and frac.isascii()))):
        return None  # (more than 19 digits can't fit; int() would even refuse past 4300)
    m = int(whole) * PRICE_SCALE + (int(frac.ljust(9, "0")) if frac else 0)
    if m >= 2 ** 63:
        return None
    return -m if t is not v else m


def _price(msg: FixMessage, tag: int) -> int | None:
    v = msg.get(tag)
    if v is not None:
        m = _plain_mantissa(v)
        if m is not None:
            return m
    d = _decimal(msg, tag)
    if d is None:
        return None
    m = d.scaleb(9)
    if m != m.to_integral_value() or abs(m) >= 2 ** 63:
        raise TranslationError("business", BusinessRejectReason.OTHER, tag,
                               f"price does not fit the order schema tag={tag} value={msg.get(tag)!r} max_decimals=9")
    return int(m)


def _qty(msg: FixMessage, tag: int) -> int:
    v = msg.get(tag)
    if v is not None and len(v) <= 20 and v.isdigit() and v.isascii():
        q = int(v)
        if 0 < q < 2 ** 64:
            return q
    d = _decimal(msg, tag)
    if d is None:
        raise TranslationError("session", SessionRejectReason.REQUIRED_TAG_MISSING, tag, f"Required tag missing tag={tag}")
    if d != d.to_integral_value() or d <= 0 or d >= 2 ** 64:
        raise TranslationError("business", BusinessRejectReason.OTHER, tag,
                               f"quantity must be a positive whole number tag={tag} value={msg.get(tag)!r}")
    return int(d)


def _time_ns(msg: FixMessage, tag: int, now: float, required: bool = False) -> int:
    v = msg.get(tag)
    if v is None:
        if required:
            raise TranslationError("session", SessionRejectReason.REQUIRED_TAG_MISSING, tag, f"Required tag missing tag={tag}")
        return int(now * 1e9)
    t = parse_utc_timestamp(v)
    if t is None:
        raise TranslationError("session", SessionRejectReason.INCORRECT_DATA_FORMAT, tag,
                               f"Incorrect data format for value tag={tag} value={v[:32]!r}")
    return int(round(t * 1e9))


def _limit_price(msg: FixMessage, ord_type: OrdType) -> int | None:
    price = _price(msg, 44)
    if ord_type in (OrdType.LIMIT, OrdType.STOP_LIMIT) and price is None:
        raise TranslationError("business", BusinessRejectReason.CONDITIONALLY_REQUIRED_FIELD_MISSING, 44,
                               f"Conditionally required field missing tag=44 ord_type={ord_type.value}")
    return price


_SIDE = {m._value_: m for m in Side}
_LIMIT_OR_MARKET = {OrdType.MARKET._value_: OrdType.MARKET, OrdType.LIMIT._value_: OrdType.LIMIT}
_TIF = {m._value_: m for m in TimeInForce}


def _py_new_order_fast(idx: dict[int, str], now: float) -> NewOrder | None:
    """The NewOrder of a plain NewOrderSingle (market or limit, no StopPx or ExpireTime, every
    value well formed), read straight from the tag index; None for anything else, which
    ``_new_order`` then translates or refuses with the error naming the field.  For the
    messages it takes it gives exactly what ``_new_order`` gives (test_bridge_numbers.py runs
    both on generated messages).  ``_new_order_fast`` is the native version of this function
    (cpp_ext/fixbridge.cpp) when the extension is there, else this one."""
    g = idx.get
    cl, sym, acct = g(11), g(55), g(1) or ""
    side, ord_type, tif = _SIDE.get(g(54)), _LIMIT_OR_MARKET.get(g(40)), _TIF.get(g(59) or "0")
    if (not cl or not sym or side is None or ord_type is None or tif is None or 99 in idx or g(126)
            or len(cl) > CLORDID_LEN or len(sym) > SYMBOL_LEN or len(acct) > ACCOUNT_LEN
            or not (cl + sym + acct).isascii()):
        return None
    px = g(44)
    if px is None:
        if ord_type is OrdType.LIMIT:
            return None
        price = None
    else:
        price = _plain_mantissa(px)
        if price is None:
            return None
    q = g(38)
    if q is None or len(q) > 20 or not (q.isdigit() and q.isascii()):
        return None
    qty = int(q)
    if not 0 < qty < 2 ** 64:
        return None
    ts = g(60)
    if ts is None:
        tt = int(now * 1e9)
    else:
        t = parse_utc_timestamp(ts)
        if t is None:
            return None
        tt = int(round(t * 1e9))
    return NewOrder(cl, acct, sym, side, ord_type, tif, price, None, qty, tt, None)


def _load_native() -> tuple[Any, Any]:
    if not NATIVE:  # TICKLINE_FIX_NATIVE=0, or no extension: the Python code alone
        return None, None
    from tickline import _aeron

    return _aeron.fix_new_order, _aeron.fix_execution_report_body


_native_new_order, _native_er_body = _load_native()
# What fix_new_order needs to know of the order schema, in the order it reads it
_NATIVE_NOS_SPEC = (NewOrder, _SIDE, _LIMIT_OR_MARKET, _TIF, OrdType.MARKET, CLORDID_LEN, SYMBOL_LEN, ACCOUNT_LEN)
_new_order_fast: Callable[[dict[int, str], float], NewOrder | None] = (
    _py_new_order_fast if _native_new_order is None else functools.partial(_native_new_order, _NATIVE_NOS_SPEC))


def _new_order(msg: FixMessage, now: float) -> NewOrder:
    """The checked translation of any NewOrderSingle; raises ``TranslationError``."""
    ord_type = _enum(msg, 40, OrdType)
    stop = _price(msg, 99)
    if ord_type in (OrdType.STOP, OrdType.STOP_LIMIT) and stop is None:
        raise TranslationError("business", BusinessRejectReason.CONDITIONALLY_REQUIRED_FIELD_MISSING, 99,
                               f"Conditionally required field missing tag=99 ord_type={ord_type.value}")
    expire = _time_ns(msg, 126, now) if msg.get(126) else None
    return NewOrder(_text(msg, 11, CLORDID_LEN), _text(msg, 1, ACCOUNT_LEN, required=False),
                    _text(msg, 55, SYMBOL_LEN), _enum(msg, 54, Side), ord_type,  # type: ignore[arg-type]
                    _enum(msg, 59, TimeInForce, "0"), _limit_price(msg, ord_type), stop,  # type: ignore[arg-type]
                    _qty(msg, 38), _time_ns(msg, 60, now), expire)


def from_fix(msg: FixMessage, now: float) -> OrderRequest:
    """Translate one application message; raises ``TranslationError``."""
    mt = msg.msg_type
    if mt == "D":
        return _new_order_fast(msg.index(), now) or _new_order(msg, now)
    if mt == "F":
        return CancelOrder(_text(msg, 11, CLORDID_LEN), _text(msg, 41, CLORDID_LEN), _text(msg, 55, SYMBOL_LEN),
                           _enum(msg, 54, Side), _time_ns(msg, 60, now))  # type: ignore[arg-type]
    if mt == "G":
        ord_type = _enum(msg, 40, OrdType)
        return ReplaceOrder(_text(msg, 11, CLORDID_LEN), _text(msg, 41, CLORDID_LEN), _text(msg, 55, SYMBOL_LEN),
                            _enum(msg, 54, Side), ord_type, _enum(msg, 59, TimeInForce, "0"),  # type: ignore[arg-type]
                            _limit_price(msg, ord_type), _qty(msg, 38), _time_ns(msg, 60, now))  # type: ignore[arg-type]
    raise TranslationError("business", BusinessRejectReason.UNSUPPORTED_MESSAGE_TYPE, 35,
                           f"Unsupported Message Type msg_type={mt}")


# -- orders -> FIX -------------------------------------------------------------

# Preference lists: the first value the session's dictionary allows is used.
_ORD_REJ_REASON = {  # OrdRejReason (103) on an ExecutionReport
    RejectReason.BROKER_OPTION: ["0"], RejectReason.UNKNOWN_SYMBOL: ["1"], RejectReason.EXCHANGE_CLOSED: ["2"],
    RejectReason.EXCEEDS_LIMIT: ["3"], RejectReason.TOO_LATE_TO_CANCEL: ["4"], RejectReason.UNKNOWN_ORDER: ["5"],
    RejectReason.DUPLICATE_ORDER: ["6"], RejectReason.INVALID_PRICE: ["99", "0"],
    RejectReason.INVALID_QUANTITY: ["13", "99", "0"], RejectReason.OTHER: ["99", "0"],
}
_CXL_REJ_REASON = {  # CxlRejReason (102) on an OrderCancelReject
    RejectReason.TOO_LATE_TO_CANCEL: ["0"], RejectReason.UNKNOWN_ORDER: ["1"], RejectReason.BROKER_OPTION: ["2"],
    RejectReason.DUPLICATE_ORDER: ["6", "99", "2"],
}


def _pick(d: DataDictionary | None, tag: int, prefs: list[str]) -> str:
    if d is None:
        return prefs[0]
    f = d.fields_by_number.get(tag)
    allowed = f.values if f is not None else None
    for v in prefs:
        if allowed is None or v in allowed:
            return v
    return prefs[-1]


def _allows(d: DataDictionary | None, tag: int, value: str) -> bool:
    f = d.fields_by_number.get(tag) if d is not None else None
    return f is None or f.values is None or value in f.values


_last_px: tuple[int | None, str] = (None, "0")


def _px(m: int | None) -> str:
    """A price mantissa (10^-9) as FIX text without trailing zeros: 10500000000 -> "10.5"."""
    global _last_px
    if m == _last_px[0]:  # an ExecutionReport's Price, LastPx and AvgPx are often the same
        return _last_px[1]
    if m is None:
        return "0"
    whole, frac = divmod(abs(m), PRICE_SCALE)
    text = f"{whole}.{frac:09d}".rstrip("0").rstrip(".") if frac else str(whole)
    text = "-" + text if m < 0 else text
    _last_px = (m, text)
    return text


def _ts(ns: int) -> str:
    return utc_timestamp(ns / 1e9)


def to_fix(report: VenueReport, begin_string: str, app_dictionary: DataDictionary | None = None) -> tuple[str, list[tuple[int, FieldValue]]]:
    """(MsgType, body fields) of the FIX message for ``report`` in ``begin_string``'s version."""
    v42 = begin_string == "FIX.4.2"
    if isinstance(report, ExecutionReport):
        (order_id, exec_id, cl_ord_id, symbol, side, r_exec_type, r_status, price, last_price, last_quantity,
         leaves, cum, avg_price, transact_time, reject_reason, text, orig_cl_ord_id) = report
        exec_type = r_exec_type._value_  # _value_: the member's value without Enum.value's descriptor call
        trade = r_exec_type is ExecType.TRADE
        if trade and v42:
            exec_type = "2" if leaves == 0 else "1"  # 4.2: Fill / Partial fill
        status = r_status._value_
        if status == "5" and (begin_string == "FIX.4.4" or not _allows(app_dictionary, 39, "5")):
            # OrdStatus Replaced is gone from 4.4: report the replaced order's own state
            status = "0" if cum == 0 else ("2" if leaves == 0 else "1")
        if v42:  # ExecTransType=New: 4.2 only
            f: list[tuple[int, FieldValue]] = [(37, str(order_id)), (17, str(exec_id)), (20, "0"), (150, exec_type),
                                               (39, status), (11, cl_ord_id)]
        else:
            f = [(37, str(order_id)), (17, str(exec_id)), (150, exec_type), (39, status), (11, cl_ord_id)]
        if orig_cl_ord_id:
            f.append((41, orig_cl_ord_id))
        f.append((55, symbol))
        f.append((54, side._value_))
        if price is not None:
            f.append((44, _px(price)))
        if trade:
            f.append((32, last_quantity))
            f.append((31, _px(last_price)))
        f += [(151, leaves), (14, cum), (6, _px(avg_price)), (60, utc_timestamp(transact_time / 1e9))]
        if r_exec_type is ExecType.REJECTED:
            f.append((103, _pick(app_dictionary, 103, _ORD_REJ_REASON.get(reject_reason or RejectReason.OTHER, ["0"]))))
        if text:
            f.append((58, text))
        return "8", f
    j = report
    f = [(37, str(j.order_id) if j.order_id is not None else "NONE"), (11, j.cl_ord_id), (41, j.orig_cl_ord_id),
         (39, j.ord_status.value), (434, j.response_to.value),
         (102, _pick(app_dictionary, 102, _CXL_REJ_REASON.get(j.reject_reason, ["99", "2"])))]
    if not v42:
        f.append((60, _ts(j.transact_time)))
    if j.text:
        f.append((58, j.text))
    return "9", f


# -- the bridge -------------------------------------------------------------------


@dataclass(frozen=True)
class BridgeReject:
    """Reported for every FIX message the bridge refused (and answered on the FIX side)."""

    session_id: str
    msg_type: str
    seq_num: int
    kind: str
    reason: int
    tag: int | None
    text: str


class FixBridge:
    """Connects an acceptor/initiator to an ``OrderSink`` and an ``ExecutionSource``.

    Wire it as the endpoint's ``on_event`` (``endpoint.on_event = bridge.on_event``)
    and run it as an agent next to the endpoint (``CompositeAgent([endpoint, bridge])``):
    ``do_work`` polls the execution source and hands FIX messages to the sessions' send path (stored,
    then written by the endpoint in its duty cycle).
    Not thread safe: run on the endpoint's thread.
    """

    def __init__(self, endpoint, sink: OrderSink, source: ExecutionSource,
                 clock: Callable[[], float], on_reject: Callable[[BridgeReject], None] | None = None,
                 on_other_event: Callable[[str, Event], None] | None = None, poll_limit: int = 64) -> None:
        self.endpoint = endpoint
        self.sink = sink
        self.source = source
        self.clock = clock
        self.on_reject = on_reject or (lambda r: None)
        # None when not given: the per-order hot path then skips the call
        self.on_other_event = on_other_event
        self.poll_limit = poll_limit
        # ClOrdID -> session id, for reports that don't name one; ClOrdID of a cancel/replace ->
        # OrigClOrdID.  Both hold only requests still open at the venue: a terminal report
        # (filled, canceled, rejected; an OrderCancelReject for the cancel/replace's own ClOrdID;
        # a Replaced report for the replaced ClOrdID) drops its entries once it has been sent.
        # A late cancel needs nothing kept here: it gets its own entry and the venue answers
        # it with an OrderCancelReject "unknown order", routed by that entry.
        self.routes: dict[str, str] = {}
        self.orig: dict[str, str] = {}
        self.unroutable: collections.deque[VenueReport] = collections.deque(maxlen=1024)
        # session id -> (session, BeginString, application dictionary, is FIX 4.2) that to_fix needs for it
        self._shapes: dict[str, tuple[object, str, DataDictionary | None, bool]] = {}
        self.rejects = 0
        self.possdup_ignored = 0  # PossDup NewOrderSingles the venue had seen: not sent again
        # whether the venue has seen (session, ClOrdID): an in-process venue can tell; a venue
        # behind a stream decides duplicates itself
        self._known: Callable[[str, str], bool] | None = getattr(sink, "is_known", None)
        self.reports_refused = 0  # venue reports that could not be written as FIX (see _deliver)
        # ClOrdID -> session of NewOrderSingles re-sent by the peer (PossDupFlag or PossResend=Y)
        # and passed on to a venue that decides duplicates itself: its DuplicateOrder reject of
        # one means it has the order, whose own reports are the answer, so that reject is not
        # passed on (the order is not rejected).  Bounded: the oldest are forgotten.
        self._resent: collections.OrderedDict[str, str] = collections.OrderedDict()
        self.resent_duplicates_ignored = 0

    def role_name(self) -> str:
        return "fix-bridge"

    def on_start(self) -> None:
        pass

    def on_close(self) -> None:
        pass

    def on_event(self, session_id: str, event: Event) -> None:
        if event.__class__ is not ApplicationMessage:
            if self.on_other_event is not None:
                self.on_other_event(session_id, event)
            return
        msg = event.message  # type: ignore[union-attr]
        now = self.clock()
        try:
            req = (msg.msg_type == "D" and _new_order_fast(msg.index(), now)) or from_fix(msg, now)
        except TranslationError as e:
            self._refuse(session_id, msg, e)
            return
        cl = req.cl_ord_id
        if event.poss_dup and req.__class__ is NewOrder and self._known is not None and self._known(session_id, cl):  # type: ignore[union-attr]
            # PossDupFlag=Y: the peer is not sure it sent this before; the venue has seen the
            # ClOrdID (live, ended, or remembered across a restart), so it is not executed again.
            # Its reports went out when it was first executed (a ResendRequest gets them again).
            self.possdup_ignored += 1
            if self.on_other_event is not None:
                self.on_other_event(session_id, event)
            return
        if cl in self.routes:
            if (req.__class__ is NewOrder and self.routes[cl] == session_id and cl not in self.orig
                    and (event.poss_dup or msg.get(97) == "Y")):
                # a re-send (PossDupFlag / PossResend) of an order open through this session: the
                # venue has it, and its reports are the answer; not sent again, not refused
                self.possdup_ignored += 1
                if self.on_other_event is not None:
                    self.on_other_event(session_id, event)
                return
            # Reports carry no session: a second open request under one ClOrdID would take over
            # the route of the first, and its reports would go to the wrong session.  Refused here,
            # before the venue sees it; the open order keeps its route.
            self._refuse(session_id, msg, TranslationError(
                "business", BusinessRejectReason.OTHER, 11,
                f"duplicate ClOrdID: an order or request with ClOrdID {cl} is open"))
            return
        if not self.sink.offer(session_id, req):
            self._refuse(session_id, msg, TranslationError("business", BusinessRejectReason.APPLICATION_NOT_AVAILABLE,
                                                           None, refusal_text(getattr(self.sink, "last_failure", ""))))
            return
        self.routes[cl] = session_id
        if req.__class__ is NewOrder and (event.poss_dup or msg.get(97) == "Y"):
            self._resent[cl] = session_id
            if len(self._resent) > _MAX_RESENT:
                self._resent.popitem(last=False)
        if req.__class__ is not NewOrder:
            self.orig[cl] = req.orig_cl_ord_id  # type: ignore[union-attr]
        if self.on_other_event is not None:
            self.on_other_event(session_id, event)
        # A venue that answered at once (in-process) has its reports sent in this duty cycle
        # rather than after one more trip round the agents' loop.
        self.source.poll(self._deliver, self.poll_limit)

    def _refuse(self, session_id: str, msg: FixMessage, e: TranslationError) -> None:
        seq = msg.seq_num or 0
        session = self.endpoint.session(session_id)
        if e.kind == "business":
            f: list[tuple[int, FieldValue]] = [(45, seq), (372, msg.msg_type)]
            if msg.get(11):
                f.append((379, msg[11]))
            f += [(380, e.reason), (58, e.text)]
            session.send("j", f, self.clock())
        else:
            f = [(45, seq)]
            if e.tag is not None:
                f.append((371, e.tag))
            f += [(372, msg.msg_type), (373, e.reason), (58, e.text)]
            session.send_reject(f, self.clock())
        self.rejects += 1
        self.on_reject(BridgeReject(session_id, msg.msg_type, seq, e.kind, e.reason, e.tag, e.text))

    def _deliver(self, session_id: str | None, report: VenueReport) -> None:
        """Translate ``report`` and hand it straight to its session's send path (stored, then
        queued for the socket; the endpoint writes it in this duty cycle or the next).  The
        bridge runs on the endpoint's thread, so it needs neither ``submit``'s queue nor its copy."""
        cl = report.cl_ord_id
        routes = self.routes
        sid = session_id or routes.get(cl)
        entry = self.endpoint.entries.get(sid) if sid is not None else None
        if entry is None:
            self.unroutable.append(report)
            return
        session = entry.session
        if "\x01" in report.text:
            # free text from the venue goes into Text(58), where SOH would end the field and make
            # the rest of the text read as fields of its own: it is written as a space
            report = report._replace(text=report.text.replace("\x01", " "))
        try:
            self._send_report(sid, session, report)  # type: ignore[arg-type]
        except ValueError as e:  # another field the venue sent can't be FIX (SOH in a ClOrdID, a symbol)
            self.reports_refused += 1
            self.unroutable.append(report)
            _log.warning("venue report not sendable: fault=remote session=%s cl_ord_id=%r error=%s", sid, cl[:64], e)

    def _send_report(self, sid: str, session: Any, report: VenueReport) -> None:
        cl = report.cl_ord_id
        routes = self.routes
        shape = self._shapes.get(sid)  # type: ignore[arg-type]
        if shape is None or shape[0] is not session:  # first report, or the session was replaced
            begin = session.config.begin_string
            shape = self._shapes[sid] = (session, begin, _app_dict(session), begin == "FIX.4.2")  # type: ignore[index]
        if self._resent and report.__class__ is ExecutionReport and self._resent.pop(cl, None) is not None:
            if report.exec_type is ExecType.REJECTED and report.reject_reason is RejectReason.DUPLICATE_ORDER:
                self.resent_duplicates_ignored += 1  # the venue has it: its reports, not this, are the answer
                routes.pop(cl, None)
                return
        if report.__class__ is ExecutionReport:
            orig = self.orig.get(cl)
            if orig is not None and not report.orig_cl_ord_id:  # type: ignore[union-attr]
                report = report._replace(orig_cl_ord_id=orig)  # type: ignore[union-attr]
            # the fields to_fix gives, encoded natively when the report is a plain one
            body = _native_er_body(report, shape[3]) if _native_er_body is not None else None
            if body is not None:
                session.send("8", (), self.clock(), body)
            else:
                mt, fields = to_fix(report, shape[1], shape[2])
                session.send(mt, fields, self.clock())
            st = report.ord_status  # type: ignore[union-attr]
            if st in _TERMINAL:
                # (a venue's duplicate-ClOrdID reject concerns an order that has ended: the bridge
                # refuses a ClOrdID that is open through it before the venue sees it)
                routes.pop(cl, None)
                prior = self.orig.pop(cl, None) or report.orig_cl_ord_id  # type: ignore[union-attr]
                if prior:  # the order a cancel named (or a replaced order's former ClOrdID)
                    routes.pop(prior, None)
                    self.orig.pop(prior, None)
            elif report.exec_type is ExecType.REPLACED:  # type: ignore[union-attr]
                prior = report.orig_cl_ord_id  # type: ignore[union-attr]
                if prior:  # the order goes on under its new ClOrdID
                    routes.pop(prior, None)
                    self.orig.pop(prior, None)
        else:
            mt, fields = to_fix(report, shape[1], shape[2])
            session.send(mt, fields, self.clock())
            routes.pop(cl, None)  # the cancel/replace request is answered; its order is untouched
            self.orig.pop(cl, None)

    def do_work(self) -> int:
        return self.source.poll(self._deliver, self.poll_limit)


_TERMINAL = frozenset((OrdStatus.FILLED, OrdStatus.CANCELED, OrdStatus.REJECTED))
_MAX_RESENT = 4096


def _app_dict(session) -> DataDictionary | None:
    v = session.validator
    if v is not None:
        return v.app
    c = session.config
    name = c.app_dictionary or c.transport_dictionary
    return load_dictionary(name) if name else None
