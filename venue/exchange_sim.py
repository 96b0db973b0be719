"""A simulated venue: price-time priority matching per symbol, plus per-symbol
``auto-fill`` (ack, then fill at the limit price), ``fill-only`` (the fill
at the limit price and no ack, as venues report an order filled on arrival)
and ``rest`` (orders rest until cancelled) modes.

``ExchangeSim`` speaks the bridge's order messages (``NewOrder``,
``CancelOrder``, ``ReplaceOrder`` in; ``ExecutionReport``, ``OrderReject``
out) and is both an ``OrderSink`` and an ``ExecutionSource``, so it runs
in-process behind a ``FixBridge``, and behind Aeron streams as the
``tickline exchange-sim`` service (``exchange_service.py``).

Duplicate ClOrdIDs: a NewOrder whose (session, ClOrdID) names a live order, or one of the
last ``duplicate_window`` orders that ended (filled, canceled, rejected, or replaced away
from that ClOrdID), is rejected with DUPLICATE_ORDER; so is a replace to such a ClOrdID (an OrderCancelReject,
the order stays as it was).  Older ended orders are forgotten, so a
long-running venue keeps at most ``duplicate_window`` ended ClOrdIDs besides its live orders
(real venues scope uniqueness to a trading day; a window bounded by count is what a simulator
running for days can afford).  A cancel or replace of a forgotten order is answered with an
OrderCancelReject "unknown order", as for any order that is not live.

Resends (``replay_resends=True``, for a participant whose ClOrdIDs are unique for good, as the
sequencer's global sequence numbers are): a NewOrder, CancelOrder or ReplaceOrder whose
(session, ClOrdID) the venue has seen is not executed again and not rejected: it is answered
with every report that ClOrdID has had so far, as they were (same OrderID and ExecID: the
receiver drops the ones it has by ExecID, as a FIX client does a PossResend's).  So a gateway
that restarts without knowing what its predecessor sent resends every order it has no end for
and learns each one's current state, fills it missed included, with nothing executed twice.
The reports of the last ``duplicate_window`` ClOrdIDs are kept for this (a resend of an older
one is answered as a duplicate, as without replay).

Deterministic: no clock is read; ``clock_ns`` is injected. Not thread safe.
"""

from __future__ import annotations

import bisect
import collections
from dataclasses import dataclass, field
from typing import Callable

from tickline.fix_gateway.bridge import (
    CancelOrder, CxlRejResponseTo, ExecType, ExecutionReport, NewOrder, OrdStatus, OrdType, OrderReject,
    OrderRequest, RejectReason, ReplaceOrder, Side, TimeInForce, VenueReport,
)
from tickline.fix_gateway.config import ConfigError

__all__ = ["ExchangeSim", "MODES"]

MODES = ("match", "auto-fill", "fill-only", "rest")
DEFAULT_DUPLICATE_WINDOW = 100_000
_DONE = frozenset((OrdStatus.CANCELED, OrdStatus.REJECTED, OrdStatus.FILLED))  # leaves is 0 on these reports
_STOPS = frozenset((OrdType.STOP, OrdType.STOP_LIMIT))
_AT_LIMIT = frozenset(("auto-fill", "fill-only"))  # modes that fill every order at its limit price


class _Order:
    """A live order's state (mutable).  A slotted class: one is made per order, and a
    dataclass's generated __init__ with defaults costs about twice as much."""

    __slots__ = ("order_id", "session_id", "cl_ord_id", "symbol", "side", "ord_type", "tif", "price", "quantity",
                 "cum", "notional", "orig_cl_ord_id")

    def __init__(self, order_id: int, session_id: str, cl_ord_id: str, symbol: str, side: Side, ord_type: OrdType,
                 tif: TimeInForce, price: int | None, quantity: int) -> None:
        self.order_id = order_id
        self.session_id = session_id
        self.cl_ord_id = cl_ord_id
        self.symbol = symbol
        self.side = side
        self.ord_type = ord_type
        self.tif = tif
        self.price = price
        self.quantity = quantity
        self.cum = 0
        self.notional = 0  # sum of last_qty * last_price (mantissa), for AvgPx
        self.orig_cl_ord_id = ""

    @property
    def leaves(self) -> int:
        return self.quantity - self.cum

    def avg(self) -> int | None:
        return self.notional // self.cum if self.cum else None

    def __repr__(self) -> str:
        return "_Order(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__) + ")"


@dataclass
class _Book:
    # price -> FIFO of orders; prices kept sorted ascending in lists
    bids: dict[int, collections.deque[_Order]] = field(default_factory=dict)
    asks: dict[int, collections.deque[_Order]] = field(default_factory=dict)
    bid_prices: list[int] = field(default_factory=list)
    ask_prices: list[int] = field(default_factory=list)

    def side(self, side: Side) -> tuple[dict[int, collections.deque[_Order]], list[int]]:
        return (self.bids, self.bid_prices) if side is Side.BUY else (self.asks, self.ask_prices)

    def add(self, o: _Order) -> None:
        levels, prices = self.side(o.side)
        assert o.price is not None
        if o.price not in levels:
            levels[o.price] = collections.deque()
            bisect.insort(prices, o.price)
        levels[o.price].append(o)

    def remove(self, o: _Order) -> None:
        levels, prices = self.side(o.side)
        assert o.price is not None
        q = levels.get(o.price)
        if q is None:
            return
        try:
            q.remove(o)
        except ValueError:
            return
        if not q:
            del levels[o.price]
            prices.remove(o.price)

    def best_opposite(self, side: Side) -> int | None:
        if side is Side.BUY:
            return self.ask_prices[0] if self.ask_prices else None
        return self.bid_prices[-1] if self.bid_prices else None


class _Emitter:
    """``deque.append`` of (session, report) as ``ExchangeSim._emit`` (the fill-at-limit path with replay on)."""

    __slots__ = ("venue", "sid")

    def __init__(self, venue: "ExchangeSim", sid: str) -> None:
        self.venue, self.sid = venue, sid

    def append(self, item: tuple[str, VenueReport]) -> None:
        self.venue._emit(item[0], item[1])


class ExchangeSim:
    """The venue.  ``modes`` maps symbol -> match | auto-fill | rest (``default_mode`` otherwise)."""

    def __init__(self, clock_ns: Callable[[], int], modes: dict[str, str] | None = None,
                 default_mode: str = "match", duplicate_window: int = DEFAULT_DUPLICATE_WINDOW,
                 first_id: int = 1, replay_resends: bool = False) -> None:
        """``first_id``: the first OrderID and ExecID; a venue restarted in the same role passes
        one above every id it issued before (``remember`` restores its duplicate window)."""
        for sym, m in {**(modes or {}), "*": default_mode}.items():
            if m not in MODES:
                raise ConfigError(f"bad venue mode: fault=config key=modes symbol={sym} value={m!r} allowed={'|'.join(MODES)}")
        if not isinstance(duplicate_window, int) or duplicate_window < 0:
            raise ConfigError(f"duplicate_window must be a whole number >= 0: fault=config key=duplicate_window "
                              f"value={duplicate_window!r}")
        self.clock_ns = clock_ns
        self.modes = dict(modes or {})
        self.default_mode = default_mode
        self.books: dict[str, _Book] = {}
        self.live: dict[tuple[str, str], _Order] = {}  # (session, ClOrdID) -> live order
        # (session, ClOrdID) of the last ``duplicate_window`` ended orders, oldest first, and the
        # same keys as a set for the lookup; live orders are found in ``live``
        self.duplicate_window = duplicate_window
        self._ended: collections.deque[tuple[str, str]] = collections.deque()
        self._ended_set: set[tuple[str, str]] = set()
        self._next_order_id = first_id
        self._next_exec_id = first_id
        self._out: collections.deque[tuple[str, VenueReport]] = collections.deque()
        # replay_resends: (session, ClOrdID) -> the reports it has had, the last duplicate_window keys
        self._history: dict[tuple[str, str], list[VenueReport]] | None = {} if replay_resends else None
        self.replayed = 0  # resent requests answered from _history (executed once, before)

    # -- OrderSink / ExecutionSource ------------------------------------------

    def offer(self, session_id: str, request: OrderRequest) -> bool:
        if self._history is not None:
            done = self._history.get((session_id, request.cl_ord_id))
            if done is not None:
                self.replayed += 1
                self._out.extend((session_id, rep) for rep in done)
                return True
        if isinstance(request, NewOrder):
            self._new(session_id, request)
        elif isinstance(request, CancelOrder):
            self._cancel(session_id, request)
        else:
            self._replace(session_id, request)
        return True

    def poll(self, handler: Callable[[str | None, VenueReport], bool | None], limit: int) -> int:
        """Hand out up to ``limit`` reports in order.  A handler that returns False
        could not take the report: it stays first in line and the poll stops."""
        n = 0
        while self._out and n < limit:
            sid, rep = self._out[0]
            if handler(sid, rep) is False:
                break
            self._out.popleft()
            n += 1
        return n

    @property
    def pending(self) -> int:
        """Reports waiting to be polled."""
        return len(self._out)

    @property
    def tracked_cl_ord_ids(self) -> int:
        """How many (session, ClOrdID) keys the venue holds: live orders plus the ended window."""
        return len(self.live) + len(self._ended_set)

    def is_known(self, session_id: str, cl_ord_id: str) -> bool:
        """Whether a NewOrder with this ClOrdID would be rejected as a duplicate now."""
        key = (session_id, cl_ord_id)
        return key in self.live or key in self._ended_set

    def remember(self, session_id: str, cl_ord_id: str) -> None:
        """Count (session, ClOrdID) as an order that ended (restoring state after a restart)."""
        self._ended_key((session_id, cl_ord_id))

    # -- internals ------------------------------------------------------------

    def _ended_key(self, key: tuple[str, str]) -> None:
        """Remember an ended order's key for duplicate detection, forgetting the oldest beyond the window."""
        if self.duplicate_window == 0 or key in self._ended_set:
            return
        ended = self._ended
        if len(ended) >= self.duplicate_window:
            self._ended_set.discard(ended.popleft())
        ended.append(key)
        self._ended_set.add(key)

    def _emit(self, sid: str, rep: VenueReport) -> None:
        self._out.append((sid, rep))
        h = self._history
        if h is not None:
            key = (sid, rep.cl_ord_id)
            reports = h.get(key)
            if reports is None:
                h[key] = reports = []
                while len(h) > max(1, self.duplicate_window):
                    del h[next(iter(h))]  # the oldest ClOrdID's reports (dicts keep insertion order)
            reports.append(rep)

    def mode(self, symbol: str) -> str:
        return self.modes.get(symbol, self.default_mode)

    def _report(self, o: _Order, exec_type: ExecType, status: OrdStatus, cl_ord_id: str | None = None,
                last_qty: int = 0, last_px: int | None = None, reason: RejectReason | None = None, text: str = "") -> None:
        eid = self._next_exec_id
        self._next_exec_id = eid + 1
        cum = o.cum
        leaves = 0 if status in _DONE else o.quantity - cum
        self._emit(o.session_id, ExecutionReport(
            o.order_id, eid, cl_ord_id or o.cl_ord_id, o.symbol, o.side, exec_type, status, o.price, last_px, last_qty,
            leaves, cum, o.notional // cum if cum else None, self.clock_ns(), reason, text, o.orig_cl_ord_id))

    def _reject_new(self, sid: str, r: NewOrder, reason: RejectReason, text: str) -> None:
        o = _Order(0, sid, r.cl_ord_id, r.symbol, r.side, r.ord_type, r.time_in_force, r.price, r.quantity)
        self._report(o, ExecType.REJECTED, OrdStatus.REJECTED, reason=reason, text=text)

    def _new(self, sid: str, r: NewOrder) -> None:
        key = (sid, r.cl_ord_id)
        if key in self.live or key in self._ended_set:
            self._reject_new(sid, r, RejectReason.DUPLICATE_ORDER, f"duplicate ClOrdID cl_ord_id={r.cl_ord_id}")
            return
        mode = self.modes.get(r.symbol, self.default_mode)
        if r.ord_type in _STOPS:
            self._ended_key(key)
            self._reject_new(sid, r, RejectReason.BROKER_OPTION, f"unsupported order type ord_type={r.ord_type.value}")
            return
        if mode in _AT_LIMIT:
            self._ended_key(key)
            if r.price is None:
                self._reject_new(sid, r, RejectReason.INVALID_PRICE, f"{mode} venue needs a limit price")
            else:
                self._fill_at_limit(sid, r, mode == "auto-fill")
            return
        oid = self._next_order_id
        self._next_order_id = oid + 1
        o = _Order(oid, sid, r.cl_ord_id, r.symbol, r.side, r.ord_type, r.time_in_force, r.price, r.quantity)
        self._report(o, ExecType.NEW, OrdStatus.NEW)
        book = self.books.setdefault(r.symbol, _Book())
        if mode == "match":
            if o.tif is TimeInForce.FILL_OR_KILL and self._available(book, o) < o.quantity:
                self._report(o, ExecType.CANCELED, OrdStatus.CANCELED, text="fill or kill: not enough liquidity")
                self._ended_key(key)
                return
            self._match(book, o)
            if o.leaves == 0:
                self._ended_key(key)
                return
        if o.ord_type is OrdType.MARKET or o.tif in (TimeInForce.IMMEDIATE_OR_CANCEL, TimeInForce.FILL_OR_KILL):
            self._report(o, ExecType.CANCELED, OrdStatus.CANCELED, text="unfilled remainder canceled")
            self._ended_key(key)
            return
        book.add(o)
        self.live[(sid, o.cl_ord_id)] = o

    def _fill_at_limit(self, sid: str, r: NewOrder, ack: bool) -> None:
        """auto-fill (``ack``) and fill-only: the whole quantity fills at the limit price at once.
        The reports are the ones ``_report`` and ``_fill`` would make for an ``_Order`` (an ack,
        then the fill, or the fill alone), made straight from the request: these modes serve
        benchmarks and load tests, where the venue's cost per order counts."""
        oid = self._next_order_id
        self._next_order_id = oid + 1
        eid = self._next_exec_id
        cl, sym, side, px, qty = r.cl_ord_id, r.symbol, r.side, r.price, r.quantity
        out = self._out if self._history is None else _Emitter(self, sid)
        if ack:
            out.append((sid, ExecutionReport(oid, eid, cl, sym, side, ExecType.NEW, OrdStatus.NEW, px, None, 0, qty, 0,
                                             None, self.clock_ns(), None, "", "")))
            eid += 1
        out.append((sid, ExecutionReport(oid, eid, cl, sym, side, ExecType.TRADE, OrdStatus.FILLED, px, px, qty, 0, qty,
                                         px, self.clock_ns(), None, "", "")))  # AvgPx: (qty * px) // qty
        self._next_exec_id = eid + 1

    def _crosses(self, o: _Order, px: int) -> bool:
        if o.ord_type is OrdType.MARKET:
            return True
        assert o.price is not None
        return px <= o.price if o.side is Side.BUY else px >= o.price

    def _available(self, book: _Book, o: _Order) -> int:
        levels, prices = book.side(Side.SELL if o.side is Side.BUY else Side.BUY)
        total = 0
        for px in (prices if o.side is Side.BUY else reversed(prices)):
            if not self._crosses(o, px):
                break
            total += sum(r.leaves for r in levels[px])
        return total

    def _fill(self, o: _Order, qty: int, px: int) -> None:
        o.cum += qty
        o.notional += qty * px
        status = OrdStatus.FILLED if o.cum == o.quantity else OrdStatus.PARTIALLY_FILLED
        self._report(o, ExecType.TRADE, status, last_qty=qty, last_px=px)

    def _match(self, book: _Book, o: _Order) -> None:
        while o.leaves > 0:
            px = book.best_opposite(o.side)
            if px is None or not self._crosses(o, px):
                return
            levels, _ = book.side(Side.SELL if o.side is Side.BUY else Side.BUY)
            resting = levels[px][0]
            qty = min(o.leaves, resting.leaves)
            self._fill(o, qty, px)  # the resting order's price: price-time priority
            self._fill(resting, qty, px)
            if resting.leaves == 0:
                book.remove(resting)
                key = (resting.session_id, resting.cl_ord_id)
                self.live.pop(key, None)
                self._ended_key(key)

    def _cancel(self, sid: str, r: CancelOrder) -> None:
        o = self.live.get((sid, r.orig_cl_ord_id))
        if o is None:
            self._emit(sid, OrderReject(None, r.cl_ord_id, r.orig_cl_ord_id, OrdStatus.REJECTED,
                                               CxlRejResponseTo.CANCEL, RejectReason.UNKNOWN_ORDER, self.clock_ns(),
                                               f"unknown order orig_cl_ord_id={r.orig_cl_ord_id}"))
            return
        self.books[o.symbol].remove(o)
        del self.live[(sid, r.orig_cl_ord_id)]
        self._ended_key((sid, r.orig_cl_ord_id))
        o.orig_cl_ord_id = o.cl_ord_id
        o.cl_ord_id = r.cl_ord_id
        self._report(o, ExecType.CANCELED, OrdStatus.CANCELED)

    def _replace(self, sid: str, r: ReplaceOrder) -> None:
        o = self.live.get((sid, r.orig_cl_ord_id))
        status = OrdStatus.REJECTED
        if o is None or r.quantity <= o.cum or r.side is not o.side or (r.ord_type is OrdType.LIMIT and r.price is None):
            reason = RejectReason.UNKNOWN_ORDER if o is None else RejectReason.BROKER_OPTION
            if o is not None:
                status = OrdStatus.PARTIALLY_FILLED if o.cum else OrdStatus.NEW
            self._emit(sid, OrderReject(o.order_id if o else None, r.cl_ord_id, r.orig_cl_ord_id, status,
                                        CxlRejResponseTo.REPLACE, reason, self.clock_ns(),
                                        "unknown order" if o is None else "replace not allowed"))
            return
        if self.is_known(sid, r.cl_ord_id):
            # the order would go on under a ClOrdID another order holds (or held):
            # that order's key, and with it its cancels and replaces, would be lost
            self._emit(sid, OrderReject(o.order_id, r.cl_ord_id, r.orig_cl_ord_id,
                                        OrdStatus.PARTIALLY_FILLED if o.cum else OrdStatus.NEW,
                                        CxlRejResponseTo.REPLACE, RejectReason.DUPLICATE_ORDER, self.clock_ns(),
                                        f"duplicate ClOrdID cl_ord_id={r.cl_ord_id}"))
            return
        book = self.books[o.symbol]
        loses_priority = r.price != o.price or r.quantity > o.quantity
        if loses_priority:
            book.remove(o)
        del self.live[(sid, o.cl_ord_id)]
        self._ended_key((sid, o.cl_ord_id))  # the order goes on under the new ClOrdID
        o.orig_cl_ord_id, o.cl_ord_id = o.cl_ord_id, r.cl_ord_id
        o.price, o.quantity, o.ord_type, o.tif = r.price, r.quantity, r.ord_type, r.time_in_force
        self.live[(sid, o.cl_ord_id)] = o
        self._report(o, ExecType.REPLACED, OrdStatus.REPLACED)
        if loses_priority:
            if self.mode(o.symbol) == "match":
                self._match(book, o)
            if o.leaves > 0:
                book.add(o)
            else:
                del self.live[(sid, o.cl_ord_id)]
                self._ended_key((sid, o.cl_ord_id))

    def book_top(self, symbol: str) -> tuple[int | None, int, int | None, int]:
        """(best bid, its quantity, best ask, its quantity) of ``symbol``'s book; None: an empty side."""
        book = self.books.get(symbol)
        if book is None:
            return None, 0, None, 0
        bid = book.bid_prices[-1] if book.bid_prices else None
        ask = book.ask_prices[0] if book.ask_prices else None
        bq = sum(o.leaves for o in book.bids[bid]) if bid is not None else 0
        aq = sum(o.leaves for o in book.asks[ask]) if ask is not None else 0
        return bid, bq, ask, aq
