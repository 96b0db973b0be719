"""Orders, positions and the book-keeping that keeps them from execution reports.

``Order`` is the handle ``Strategy.buy/sell/replace`` return: a mutable value
the runner updates as reports arrive (status, order id, fills).  ``Position``
is one symbol's net quantity, cost and realized PnL, in the schema's integer
units (prices are mantissas of 10^-9; PnL is mantissa x quantity), with float
views.  ``OrderBookkeeping`` is sans-IO: ``new/cancel/replace`` encode the
request (``schemas/orders.xml``) into bytes for the gateway, ``on_report(buf)``
checks and applies one ExecutionReport / OrderReject and returns what
happened, for the runner to call the strategy with.

Rules (the order's state table):

- SUBMITTED --New--> ACCEPTED --Trade--> PARTIALLY_FILLED / FILLED;
  SUBMITTED --Trade--> (a venue that fills on arrival without an ack) same;
  any open state --Canceled--> CANCELED; --Rejected--> REJECTED;
  --Replaced--> stays open under the new ClOrdId with the new price/quantity.
- An OrderReject (a refused cancel or replace) leaves the order as it was and
  clears the pending request.
- A fill whose cumQuantity is not above what the order has already filled is
  a duplicate (a report delivered twice, e.g. across a failover) and is
  ignored; a fill is applied as cumQuantity minus what was filled, so a
  skipped report cannot make the position drift from the venue's.
- A fill that would take cumQuantity beyond the order's quantity is refused
  as malformed (``fault=peer``).
- Reports for a ClOrdId this strategy never sent (or ended long ago: the last
  ``recent`` ended orders are remembered) are counted, logged, and ignored.
- Bytes that are not a well-formed report are counted and logged with
  ``fault=peer``; they never raise.
"""

from __future__ import annotations

import collections
import enum
import logging
import struct
from typing import Any, Iterator

from tickline.feed import sbe
from tickline.fix_gateway.sbe_orders import NEW_ORDER

__all__ = ["Order", "OrderStatus", "Position", "OrderBookkeeping", "ClOrdIdGenerator", "ReportEvent"]

log = logging.getLogger("tickline.strategy")

_HEADER = struct.Struct("<HHHH")
#: a NewOrder in its exact form, header and block, from the schema's one definition: header, clOrdId, account,
#: symbol, side, ordType, timeInForce, price, stopPrice, quantity, transactTime, expireTime
_NEW_ORDER = NEW_ORDER.struct()
_PACK_NEW = _NEW_ORDER.pack
_NULL_PRICE, _NULL_U64 = NEW_ORDER.null("price.mantissa"), NEW_ORDER.null("expire_time")
_CL_LEN, _SYMBOL_LEN = NEW_ORDER.leaf("cl_ord_id").size, NEW_ORDER.leaf("symbol").size
if NEW_ORDER.names != ("cl_ord_id", "account", "symbol", "side", "ord_type", "time_in_force", "price.mantissa",
                       "stop_price.mantissa", "quantity", "transact_time", "expire_time"):
    raise RuntimeError(f"orders.xml's NewOrder fields changed; _pack_new writes the old ones: names={NEW_ORDER.names} fault=ours")
_MAX_SYMBOLS = 1024  # symbols whose bytes are remembered
_U32 = struct.Struct("<I")
_B36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LOW2 = tuple(a + b for a in _B36 for b in _B36)  # 0..1295 as two base-36 digits, zero-padded


def _base36(n: int) -> str:
    digits = []
    while True:
        n, r = divmod(n, 36)
        digits.append(_B36[r])
        if not n:
            return "".join(reversed(digits))


class OrderStatus(enum.Enum):
    DENIED = "denied"  # refused before sending (e.g. the send queue was full): never reached the venue
    SUBMITTED = "submitted"  # sent (or queued to send), no answer yet
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"


_OPEN = frozenset((OrderStatus.SUBMITTED, OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED))
_SUBMITTED = OrderStatus.SUBMITTED  # (an Enum class attribute is a lookup through the metaclass: ten times a global's)


class Order:
    """One order, as this strategy knows it.  Read its attributes; the runner writes them.

    ``price`` is a mantissa (None for a market order); ``avg_price`` a float
    mantissa (None before the first fill); ``order_id`` the sequencer's global
    sequence once acknowledged.  ``pending_cancel`` / ``pending_replace``
    (the requested (price, quantity)) are set while a request is in flight.
    ``tag`` is free for the strategy's own use.
    """

    __slots__ = ("cl_ord_id", "symbol", "side", "price", "quantity", "ord_type", "time_in_force", "status",
                 "order_id", "filled", "notional", "reason", "pending_cancel", "pending_replace", "sent_ns",
                 "cl_ord_ids", "tag")

    def __init__(self, cl_ord_id: str, symbol: str, side: Any, price: int | None, quantity: int, ord_type: Any,
                 time_in_force: Any, sent_ns: int) -> None:
        self.cl_ord_id = cl_ord_id
        self.symbol = symbol
        self.side = side
        self.price = price
        self.quantity = quantity
        self.ord_type = ord_type
        self.time_in_force = time_in_force
        self.status = _SUBMITTED
        self.order_id: int | None = None
        self.filled = 0
        self.notional = 0  # sum of last quantity x last price (mantissa)
        self.reason = ""
        self.pending_cancel = False
        self.pending_replace: tuple[int | None, int] | None = None
        self.sent_ns = sent_ns
        # every ClOrdId the order went by (its own, then its requests'): a tuple, which the cyclic GC
        # stops tracking, not a list it would walk on every collection while the order is open
        self.cl_ord_ids: tuple[str, ...] = (cl_ord_id,)
        self.tag: Any = None

    @property
    def is_open(self) -> bool:
        return self.status in _OPEN

    @property
    def leaves(self) -> int:
        return self.quantity - self.filled if self.status in _OPEN else 0

    @property
    def avg_price(self) -> float | None:
        return self.notional / self.filled if self.filled else None

    @property
    def is_buy(self) -> bool:
        return self.side == 49  # Side.Buy ('1')

    def __repr__(self) -> str:
        side = "buy" if self.is_buy else "sell"
        return (f"Order({self.cl_ord_id} {side} {self.quantity} {self.symbol} @ {self.price} status={self.status.value} "
                f"filled={self.filled} order_id={self.order_id})")


class Position:
    """Net position in one symbol.  ``quantity`` is signed (long > 0); ``cost`` is the mantissa x
    quantity paid for the open quantity; ``realized`` the closed PnL in mantissa x quantity."""

    __slots__ = ("symbol", "quantity", "cost", "realized", "bought", "sold")

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.quantity = 0
        self.cost = 0
        self.realized = 0
        self.bought = 0
        self.sold = 0

    def apply_fill(self, buy: bool, quantity: int, price: int) -> None:
        q = self.quantity
        if buy:
            self.bought += quantity
        else:
            self.sold += quantity
        signed = quantity if buy else -quantity
        if q == 0 or (q > 0) == buy:  # opening or adding
            self.cost += price * quantity
            self.quantity = q + signed
            return
        closing = min(quantity, abs(q))
        removed = self.cost * closing // abs(q)
        self.realized += (price * closing - removed) if q > 0 else (removed - price * closing)
        self.cost -= removed
        self.quantity = q + signed
        if quantity > closing:  # flipped through zero: the rest opens at this price
            self.cost = price * (quantity - closing)

    @property
    def avg_price(self) -> float | None:
        """Average entry price of the open quantity (mantissa), None when flat."""
        return self.cost / abs(self.quantity) if self.quantity else None

    def unrealized(self, mark: int | None) -> int:
        """Open PnL at ``mark`` (a price mantissa), mantissa x quantity; 0 without a mark."""
        if mark is None or not self.quantity:
            return 0
        return (mark * self.quantity - self.cost) if self.quantity > 0 else (self.cost - mark * -self.quantity)

    @property
    def realized_pnl(self) -> float:
        """Realized PnL in price units (``realized / 1e9``)."""
        return self.realized / 1e9

    def __repr__(self) -> str:
        return f"Position({self.symbol} qty={self.quantity} avg={self.avg_price} realized={self.realized_pnl})"


class ClOrdIdGenerator:
    """ClOrdIds unique per strategy across restarts: ``PREFIX-COUNTER`` (<= 20 characters).

    The counter is base 36 and starts at ``seed``, by default the wall clock in
    microseconds when the strategy starts, so a restarted strategy starts above
    every id it used before unless it sent more than one order per microsecond
    on average (pass the last id's counter + 1 recovered from the cluster as
    ``seed`` to be exact).  ``prefix``: 1-8 characters of [A-Za-z0-9_].
    """

    def __init__(self, prefix: str, seed: int) -> None:
        if not (0 < len(prefix) <= 8 and prefix.replace("_", "").isalnum() and prefix.isascii()):
            raise ValueError(f"cl_ord_id prefix must be 1-8 characters of [A-Za-z0-9_]: prefix={prefix!r} fault=user")
        if seed < 0:
            raise ValueError(f"cl_ord_id seed must be >= 0: seed={seed} fault=user")
        self.prefix = prefix + "-"
        self.counter = seed
        self.width = 20 - len(self.prefix)
        # the id without its last two digits changes once every 36**2 ids: kept, so that an id
        # is one division, one table lookup and one concatenation (it is made once per order)
        self._high = -1
        self._head = ""

    def counter_of(self, cl_ord_id: str) -> int | None:
        """The counter of one of this generator's ids (None: another prefix, or not base 36)."""
        if not cl_ord_id.startswith(self.prefix):
            return None
        try:
            return int(cl_ord_id[len(self.prefix):], 36)
        except ValueError:
            return None

    def skip_past(self, cl_ord_id: str) -> None:
        """Never hand out ``cl_ord_id`` or anything below it (an id recovered after a restart)."""
        n = self.counter_of(cl_ord_id)
        if n is not None and n >= self.counter:
            self.counter = n + 1

    def __call__(self) -> str:
        n = self.counter
        self.counter = n + 1
        high, low = divmod(n, 1296)
        if high != self._high:
            digits = _base36(high) if high else ""
            if len(digits) + 2 > self.width:
                raise OverflowError(f"cl_ord_id counter too large for 20 characters: prefix={self.prefix} fault=ours")
            self._high, self._head = high, self.prefix + digits
        return self._head + (_LOW2[low] if high else _B36[low] if low < 36 else _LOW2[low])


class ReportEvent:
    """What a report did: ``kind`` is ack | fill | cancel | replace | reject; ``order`` the handle;
    ``report`` the checked flyweight (ExecutionReportDecoder, or OrderRejectDecoder for a refused
    cancel/replace) valid only until the next report is read; ``last_quantity``/``last_price`` for fills."""

    __slots__ = ("kind", "order", "report", "last_quantity", "last_price")

    def __init__(self) -> None:
        self.kind = ""
        self.order: Order | None = None
        self.report: Any = None
        self.last_quantity = 0
        self.last_price = 0


class OrderBookkeeping:
    """Sans-IO order state for one strategy (see the module doc).  Not thread safe."""

    def __init__(self, account: str, next_cl_ord_id: ClOrdIdGenerator, *, recent: int = 10_000) -> None:
        m = self.m = sbe.orders()
        try:
            raw = account.encode("ascii")
        except UnicodeEncodeError:
            raw = b""
        if not 0 < len(raw) <= 12:
            raise ValueError(f"account must be 1-12 ASCII characters: account={account!r} fault=user")
        self.account = account
        self.next_cl_ord_id = next_cl_ord_id
        self.Side, self.OrdType, self.TimeInForce = m.Side, m.OrdType, m.TimeInForce
        self._buf = bytearray(256)
        self._view = memoryview(self._buf)
        self._new = m.NewOrderEncoder()
        self._new_head = NEW_ORDER.head
        self._account_raw = raw
        self._symbols: dict[str, bytes] = {}  # symbol -> its ASCII bytes, for _pack_new
        # enum member -> its wire byte (what the encoder's setters write: int(member))
        self._enum_byte: dict[Any, int] = {v: int(v) for cls in (m.Side, m.OrdType, m.TimeInForce) for v in cls
                                           if 0 < int(v) < 128}
        self._cancel = m.CancelOrderEncoder()
        self._replace = m.ReplaceOrderEncoder()
        self._er = m.ExecutionReportDecoder()
        self._rej = m.OrderRejectDecoder()
        self._er_tid, self._rej_tid = m.ExecutionReportDecoder.TEMPLATE_ID, m.OrderRejectDecoder.TEMPLATE_ID
        self._er_block, self._rej_block = m.ExecutionReportDecoder.BLOCK_LENGTH, m.OrderRejectDecoder.BLOCK_LENGTH
        self.live: dict[str, Order] = {}  # every ClOrdId of an open order (its current one and requests in flight)
        self.recent: collections.OrderedDict[str, Order] = collections.OrderedDict()
        self.recent_limit = recent
        self.positions: dict[str, Position] = {}
        self.event = ReportEvent()
        self.counters = {"reports": 0, "malformed": 0, "unknown": 0, "duplicate_fills": 0, "fills": 0, "adopted": 0}
        self._exec = {int(v): v for v in m.ExecType}
        self._status = frozenset(int(v) for v in m.OrdStatus)
        self._sides = frozenset(int(v) for v in m.Side)
        self._reasons = frozenset(int(v) for v in m.RejectReason) | {255}

    # -- requests: each returns the encoded message (a view into a scratch buffer, valid until the next
    # call; a NewOrder in its exact form is its own bytes)

    def new(self, symbol: str, side: Any, quantity: int, price: int | None, ord_type: Any, tif: Any,
            now_ns: int) -> tuple[Order, bytes | memoryview]:
        cl = self.next_cl_ord_id()
        msg: bytes | memoryview | None = self._pack_new(cl, symbol, side, quantity, price, ord_type, tif, now_ns)
        if msg is None:
            msg = self._view[:self._encode_new(cl, symbol, side, quantity, price, ord_type, tif, now_ns)]
        order = Order(cl, symbol, side, price, quantity, ord_type, tif, now_ns)
        self.live[cl] = order
        return order, msg

    def _pack_new(self, cl: str, symbol: str, side: Any, quantity: int, price: int | None, ord_type: Any, tif: Any,
                  now_ns: int) -> bytes | None:
        """The NewOrder in one ``pack`` (header and block: the bytes the encoder writes field by field;
        bytes of its own, which the gateway sends without another copy); None when a value is not one
        this form takes as is (then :meth:`_encode_new`, which writes it or raises as the encoder does)."""
        raw_sym = self._symbols.get(symbol) if type(symbol) is str else None
        if raw_sym is None:
            if type(symbol) is not str or not symbol.isascii() or len(symbol) > _SYMBOL_LEN:
                return None
            raw_sym = symbol.encode()
            if len(self._symbols) < _MAX_SYMBOLS:
                self._symbols[symbol] = raw_sym
        b_of = self._enum_byte
        sb, tb, fb = b_of.get(side), b_of.get(ord_type), b_of.get(tif)
        if sb is None or tb is None or fb is None or len(cl) > _CL_LEN or not cl.isascii():
            return None
        try:
            return _PACK_NEW(self._new_head, cl.encode(), self._account_raw, raw_sym, sb, tb, fb,
                             _NULL_PRICE if price is None else price, _NULL_PRICE, quantity, now_ns, _NULL_U64)
        except struct.error:  # a number out of its field's range: the encoder says which
            return None

    def _encode_new(self, cl: str, symbol: str, side: Any, quantity: int, price: int | None, ord_type: Any, tif: Any,
                    now_ns: int) -> int:
        e = self._new.wrap_and_apply_header(self._buf, 0)
        e.cl_ord_id = cl
        e.account = self.account
        e.symbol = symbol
        e.side = side
        e.ord_type = ord_type
        e.time_in_force = tif
        e.price.mantissa = price
        e.stop_price.mantissa = None
        e.quantity = quantity
        e.transact_time = now_ns
        e.expire_time = None
        return self.m.HEADER_LENGTH + e.encoded_length

    def cancel(self, order: Order, now_ns: int) -> memoryview:
        e = self._request(self._cancel, order)
        e.transact_time = now_ns
        order.pending_cancel = True
        return self._view[:self.m.HEADER_LENGTH + e.encoded_length]

    def replace(self, order: Order, price: int | None, quantity: int, now_ns: int) -> memoryview:
        e = self._request(self._replace, order)
        e.ord_type = order.ord_type
        e.time_in_force = order.time_in_force
        e.price.mantissa = price
        e.quantity = quantity
        e.transact_time = now_ns
        order.pending_replace = (price, quantity)
        return self._view[:self.m.HEADER_LENGTH + e.encoded_length]

    def _request(self, encoder: Any, order: Order) -> Any:
        """A cancel or replace of ``order`` under a new ClOrdId: the fields both carry."""
        cl = self.next_cl_ord_id()
        e = encoder.wrap_and_apply_header(self._buf, 0)
        e.cl_ord_id = cl
        e.orig_cl_ord_id = order.cl_ord_id
        e.symbol = order.symbol
        e.side = order.side
        order.cl_ord_ids += (cl,)
        self.live[cl] = order
        return e

    def adopt(self, buf: Any) -> Order | None:
        """Recovery after a restart: take over the open order one ExecutionReport describes (its
        ordStatus, price, cumQuantity + leavesQuantity, avgPrice), if its ClOrdId is one of this
        strategy's (its prefix).  No position change (positions are restored as a whole: see
        ``restore_position``) and no callback.  None for anything else (counted, logged)."""
        b = self.m
        n = len(buf)
        if n < 8 + self._er_block + 4:
            self._malformed(f"recovered report too short: length={n}")
            return None
        block_length, tid, schema_id, version = _HEADER.unpack_from(buf, 0)
        if (schema_id, tid) != (b.SCHEMA_ID, self._er_tid) or block_length < self._er_block or 8 + block_length > n:
            self._malformed(f"recovered report is not an ExecutionReport: schema_id={schema_id} template_id={tid}")
            return None
        d = self._er.wrap(buf, 8, block_length, version)
        status = {int(b.OrdStatus.New): OrderStatus.ACCEPTED, int(b.OrdStatus.PartiallyFilled): OrderStatus.PARTIALLY_FILLED,
                  int(b.OrdStatus.Replaced): OrderStatus.ACCEPTED}.get(d.ord_status_raw)
        if status is None or d.side_raw not in self._sides or d.leaves_quantity == 0:
            self.counters["unknown"] += 1  # not an open order: nothing to take over
            return None
        cl = d.cl_ord_id
        if cl in self.live:  # the same order reported twice: taken over once
            return None
        if self.next_cl_ord_id.counter_of(cl) is None:
            self.counters["unknown"] += 1
            log.warning("recovered order is not this strategy's: fault=peer cl_ord_id=%s prefix=%s", cl,
                        self.next_cl_ord_id.prefix)
            return None
        side = b.Side(d.side_raw)
        price = d.price.mantissa
        order = Order(cl, d.symbol, side, price, d.cum_quantity + d.leaves_quantity,
                      b.OrdType.Market if price is None else b.OrdType.Limit, b.TimeInForce.Day, d.transact_time)
        order.status = status
        order.order_id = d.order_id
        order.filled = d.cum_quantity
        order.notional = (d.avg_price.mantissa or 0) * d.cum_quantity
        self.live[cl] = order
        self.next_cl_ord_id.skip_past(cl)
        self.counters["adopted"] += 1
        return order

    def restore_position(self, symbol: str, quantity: int, cost: int, realized: int = 0) -> Position:
        """Recovery after a restart: one symbol's position as the order path knows it (signed
        quantity, cost of the open quantity and realized PnL, both mantissa x quantity)."""
        p = self.position(symbol)
        p.quantity, p.cost, p.realized = quantity, cost, realized
        return p

    def deny(self, order: Order, reason: str) -> None:
        """The request for ``order`` never left (e.g. the send queue was full)."""
        order.status = OrderStatus.DENIED
        order.reason = reason
        self._end(order)

    # -- reports ---------------------------------------------------------------------------------

    def position(self, symbol: str) -> Position:
        p = self.positions.get(symbol)
        if p is None:
            p = self.positions[symbol] = Position(symbol)
        return p

    def open_orders(self) -> Iterator[Order]:
        seen: set[int] = set()
        for o in self.live.values():
            if id(o) not in seen:
                seen.add(id(o))
                yield o

    def on_report(self, buf: Any) -> ReportEvent | None:
        """Check and apply one encoded report; the event (reused between calls), or None when it
        changed nothing (malformed, unknown order, duplicate fill)."""
        self.counters["reports"] += 1
        n = len(buf)
        if n < 8:
            return self._malformed(f"shorter than the message header: length={n}")
        block_length, tid, schema_id, version = _HEADER.unpack_from(buf, 0)
        if schema_id != self.m.SCHEMA_ID:
            return self._malformed(f"not an orders.xml message: schema_id={schema_id}")
        if tid == self._er_tid:
            need, dec = self._er_block, self._er
        elif tid == self._rej_tid:
            need, dec = self._rej_block, self._rej
        else:
            return self._malformed(f"not a report: template_id={tid}")
        end = 8 + block_length
        if block_length < need or end + 4 > n:
            return self._malformed(f"bad block: template_id={tid} block_length={block_length} length={n}")
        text_length = _U32.unpack_from(buf, end)[0]
        if end + 4 + text_length > n:
            return self._malformed(f"truncated text: template_id={tid} text_length={text_length} length={n}")
        if text_length:
            try:
                bytes(buf[end + 4:end + 4 + text_length]).decode("utf-8")
            except UnicodeDecodeError:
                return self._malformed(f"text is not UTF-8: template_id={tid}")
        d = dec.wrap(buf, 8, block_length, version)
        if tid == self._er_tid:
            if (d.exec_type_raw not in self._exec or d.ord_status_raw not in self._status
                    or d.side_raw not in self._sides or d.reject_reason_raw not in self._reasons):
                return self._malformed(f"bad enum value: exec_type={d.exec_type_raw} ord_status={d.ord_status_raw} "
                                       f"side={d.side_raw} reject_reason={d.reject_reason_raw}")
            return self._execution_report(d)
        if d.ord_status_raw not in self._status or d.response_to_raw not in (49, 50) \
                or d.reject_reason_raw not in self._reasons:
            return self._malformed(f"bad enum value: ord_status={d.ord_status_raw} response_to={d.response_to_raw} "
                                   f"reject_reason={d.reject_reason_raw}")
        return self._order_reject(d)

    def _find(self, cl: str) -> Order | None:
        order = self.live.get(cl)
        if order is None:
            order = self.recent.get(cl)
            if order is None:
                self.counters["unknown"] += 1
                log.warning("report for an order this strategy does not know: fault=peer cl_ord_id=%s", cl)
        return order

    def _execution_report(self, d: Any) -> ReportEvent | None:
        order = self._find(d.cl_ord_id)
        if order is None:
            return None
        ev = self.event
        ev.order, ev.report, ev.last_quantity, ev.last_price = order, d, 0, 0
        et = self._exec[d.exec_type_raw].name
        if not order.is_open:
            if et == "Trade" and d.cum_quantity > order.filled:
                pass  # a fill after a cancel crossed it on the wire: it happened, apply it
            else:
                self.counters["duplicate_fills" if et == "Trade" else "unknown"] += 1
                return None
        if d.order_id:
            order.order_id = d.order_id
        if et == "New":
            if order.status is not OrderStatus.SUBMITTED:
                return None  # a repeated ack
            order.status = OrderStatus.ACCEPTED
            ev.kind = "ack"
            return ev
        if et == "Trade":
            last = d.cum_quantity - order.filled
            if last <= 0:
                self.counters["duplicate_fills"] += 1
                return None
            if d.cum_quantity > order.quantity:  # more than was ever ordered: refuse, keep the position true
                return self._malformed(f"fill beyond the order's quantity: cl_ord_id={order.cl_ord_id} "
                                       f"cum_quantity={d.cum_quantity} quantity={order.quantity}")
            if last != d.last_quantity:
                log.warning("fill quantity disagrees with the cumulative quantity: fault=peer cl_ord_id=%s "
                            "last_quantity=%d cum_quantity=%d filled_before=%d", order.cl_ord_id, d.last_quantity,
                            d.cum_quantity, order.filled)
            px = d.last_price.mantissa
            if px is None:
                px = order.price or 0
            order.filled = d.cum_quantity
            order.notional += last * px
            self.position(order.symbol).apply_fill(order.is_buy, last, px)
            self.counters["fills"] += 1
            if order.filled >= order.quantity or d.leaves_quantity == 0:
                order.status = OrderStatus.FILLED
                self._end(order)
            elif order.is_open:
                order.status = OrderStatus.PARTIALLY_FILLED
            ev.kind, ev.last_quantity, ev.last_price = "fill", last, px
            return ev
        if et == "Canceled":
            order.status = OrderStatus.CANCELED
            order.pending_cancel = False
            order.reason = d.text()
            self._end(order)
            ev.kind = "cancel"
            return ev
        if et == "Replaced":
            price, qty = order.pending_replace or (d.price.mantissa, d.cum_quantity + d.leaves_quantity)
            order.cl_ord_id = d.cl_ord_id
            order.price = d.price.mantissa if d.price.mantissa is not None else price
            order.quantity = d.cum_quantity + d.leaves_quantity if d.leaves_quantity or d.cum_quantity else qty
            order.pending_replace = None
            if order.status is OrderStatus.SUBMITTED:
                order.status = OrderStatus.ACCEPTED
            ev.kind = "replace"
            return ev
        # Rejected
        order.status = OrderStatus.REJECTED
        order.reason = d.text()
        self._end(order)
        ev.kind = "reject"
        return ev

    def _order_reject(self, d: Any) -> ReportEvent | None:
        order = self._find(d.cl_ord_id)
        if order is None:
            return None
        if d.response_to_raw == 49:
            order.pending_cancel = False
        else:
            order.pending_replace = None
        ev = self.event
        ev.kind, ev.order, ev.report, ev.last_quantity, ev.last_price = "reject", order, d, 0, 0
        return ev

    def _end(self, order: Order) -> None:
        for cl in order.cl_ord_ids:
            self.live.pop(cl, None)
            self.recent[cl] = order
        while len(self.recent) > self.recent_limit:
            self.recent.popitem(last=False)

    def _malformed(self, reason: str) -> None:
        c = self.counters
        c["malformed"] += 1
        if c["malformed"] <= 10 or c["malformed"] % 1000 == 0:
            log.warning("malformed order report: fault=peer %s count=%d", reason, c["malformed"])
        return None
