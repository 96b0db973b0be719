"""Testing helpers: ``SimulatedVenue`` (an in-process ``OrderGateway``), ``ManualClock``, ``run_until``.

``SimulatedVenue`` is a tiny matcher for tests and for trying a strategy out
without a cluster (``[strategy.gateway] kind = "simulated"``).  It speaks the
gateway contract exactly: ``send`` takes encoded NewOrder / CancelOrder /
ReplaceOrder messages, ``poll`` hands back encoded ExecutionReport /
OrderReject messages.  Rules:

- every NewOrder is acknowledged (ExecType New) with the next order id (1, 2, ...);
- a limit buy at or above the venue's ask (a sell at or below its bid), or a
  market order when there is a quote, fills at the ask (bid), up to
  ``fill_quantity`` per match (None: all of it);
- the rest rests; ``set_market(symbol, bid, ask)`` (or ``on_top_of_book`` with a
  flyweight) moves the venue's quote and fills resting orders it crosses;
- a market order with no quote on the side it takes is rejected (ExecType Rejected);
- cancel and replace of a resting order are answered Canceled / Replaced;
  of an unknown or finished one, OrderReject (UnknownOrder);
- ``recover(account)``: what a restarted strategy takes over (``StrategyRunner.restore``):
  an ExecutionReport per resting order of the account, and its positions;
- ``refuse_next(n)``: the next ``n`` sends return False (back pressure);
- ``follow_market_data=True``: a ``StrategyRunner`` using this venue passes it
  every top of book before the strategy sees it (what ``kind = "simulated"``
  does), so the venue trades against the quotes the strategy sees.

Deterministic: time comes from ``clock_ns``.  Not thread safe.
"""

from __future__ import annotations

import collections
import struct
import time
from typing import Any, Callable

from tickline.feed import sbe

from .orders import Position

__all__ = ["SimulatedVenue", "ManualClock", "run_until"]

_HEADER = struct.Struct("<HHHH")


def run_until(step: Callable[[], object], done: Callable[[], bool], timeout: float = 10.0) -> None:
    """Call ``step`` (a duty cycle) until ``done()``; AssertionError after ``timeout`` wall-clock seconds,
    so a test fails instead of hanging."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached in time: timeout_s={timeout}")
        step()


class ManualClock:
    """A clock tests move by hand: ``time_ns()`` returns ``now``; ``advance(ns)``."""

    def __init__(self, now: int = 1_700_000_000_000_000_000) -> None:
        self.now = now

    def time_ns(self) -> int:
        return self.now

    def advance(self, ns: int) -> int:
        self.now += ns
        return self.now


class _Resting:
    __slots__ = ("order_id", "cl_ord_id", "symbol", "buy", "price", "quantity", "cum", "notional", "account")

    def __init__(self, order_id: int, cl_ord_id: str, symbol: str, buy: bool, price: int | None, quantity: int,
                 account: str = "") -> None:
        self.order_id, self.cl_ord_id, self.symbol, self.buy, self.account = order_id, cl_ord_id, symbol, buy, account
        self.price, self.quantity, self.cum, self.notional = price, quantity, 0, 0


class SimulatedVenue:
    """An in-process ``OrderGateway`` with a tiny matcher (see the module doc)."""

    def __init__(self, clock_ns: Callable[[], int] = time.time_ns, *, fill_quantity: int | None = None,
                 follow_market_data: bool = False) -> None:
        m = self.m = sbe.orders()
        self.follow_market_data = follow_market_data
        self.clock_ns = clock_ns
        self.fill_quantity = fill_quantity
        self.market: dict[str, tuple[int | None, int | None]] = {}
        self.resting: dict[str, _Resting] = {}  # cl_ord_id -> order
        self.out: collections.deque[bytes] = collections.deque()
        self.received: list[Any] = []  # (template name, cl_ord_id) of every request taken
        self.positions: dict[tuple[str, str], Position] = {}  # (account, symbol) -> the venue's view
        self._refuse = 0
        self._next_order_id = 1
        self._next_exec_id = 1
        self._buf = bytearray(512)
        self._er = m.ExecutionReportEncoder()
        self._rej = m.OrderRejectEncoder()
        self._dec = {c.TEMPLATE_ID: c() for c in (m.NewOrderDecoder, m.CancelOrderDecoder, m.ReplaceOrderDecoder)}

    # -- OrderGateway ----------------------------------------------------------------------------

    def send(self, message: bytes | memoryview) -> bool:
        if self._refuse:
            self._refuse -= 1
            return False
        block_length, tid, schema_id, version = _HEADER.unpack_from(message, 0)
        d = self._dec.get(tid)
        if schema_id != self.m.SCHEMA_ID or d is None:
            raise ValueError(f"not an order request: schema_id={schema_id} template_id={tid} fault=user")
        d.wrap(message, 8, block_length, version)
        self.received.append((d.NAME, d.cl_ord_id))
        if tid == 1:
            self._new(d)
        elif tid == 2:
            self._cancel(d)
        else:
            self._replace(d)
        return True

    def poll(self, handler: Callable[[memoryview], None], limit: int) -> int:
        n = 0
        while self.out and n < limit:
            handler(memoryview(self.out.popleft()))
            n += 1
        return n

    def recover(self, account: str) -> tuple[list[bytes], dict[str, tuple[int, int, int]]]:
        reports = [self._encode(o, "New", "PartiallyFilled" if o.cum else "New")
                   for o in self.resting.values() if o.account == account]
        positions = {sym: (p.quantity, p.cost, p.realized) for (acct, sym), p in self.positions.items() if acct == account}
        return reports, positions

    def refuse_next(self, n: int) -> None:
        self._refuse = n

    # -- the market ------------------------------------------------------------------------------

    def set_market(self, symbol: str, bid: int | None, ask: int | None) -> None:
        self.market[symbol] = (bid, ask)
        for o in list(self.resting.values()):
            if o.symbol == symbol:
                self._match(o)

    def on_top_of_book(self, tob: Any) -> None:
        self.set_market(tob.symbol, tob.bid_price.mantissa, tob.ask_price.mantissa)

    # -- matching --------------------------------------------------------------------------------

    def _new(self, d: Any) -> None:
        buy = d.side_raw == 49
        o = _Resting(self._next_order_id, d.cl_ord_id, d.symbol, buy, d.price.mantissa, d.quantity, d.account)
        self._next_order_id += 1
        bid, ask = self.market.get(o.symbol, (None, None))
        if o.price is None and (ask if buy else bid) is None:
            self._report(o, "Rejected", "Rejected", reason="Other", text="no market to take")
            return
        self._report(o, "New", "New")
        self.resting[o.cl_ord_id] = o
        self._match(o)

    def _match(self, o: _Resting) -> None:
        bid, ask = self.market.get(o.symbol, (None, None))
        px = ask if o.buy else bid
        if px is None or (o.price is not None and (px > o.price if o.buy else px < o.price)):
            return
        qty = o.quantity - o.cum
        if self.fill_quantity is not None:
            qty = min(qty, self.fill_quantity)
        o.cum += qty
        o.notional += qty * px
        key = (o.account, o.symbol)
        if key not in self.positions:
            self.positions[key] = Position(o.symbol)
        self.positions[key].apply_fill(o.buy, qty, px)
        done = o.cum >= o.quantity
        if done:
            del self.resting[o.cl_ord_id]
        self._report(o, "Trade", "Filled" if done else "PartiallyFilled", last=(px, qty))

    def _cancel(self, d: Any) -> None:
        o = self.resting.pop(d.orig_cl_ord_id, None)
        if o is None:
            self._reject(d, "Cancel")
            return
        o.cl_ord_id = d.cl_ord_id
        self._report(o, "Canceled", "Canceled", leaves=0)

    def _replace(self, d: Any) -> None:
        o = self.resting.get(d.orig_cl_ord_id)
        if o is None or d.quantity <= o.cum:
            self._reject(d, "Replace")
            return
        del self.resting[o.cl_ord_id]
        o.cl_ord_id, o.price, o.quantity = d.cl_ord_id, d.price.mantissa, d.quantity
        self.resting[o.cl_ord_id] = o
        self._report(o, "Replaced", "Replaced")
        self._match(o)

    def _report(self, o: _Resting, exec_type: str, status: str, *, last: tuple[int, int] | None = None,
                leaves: int | None = None, reason: str | None = None, text: str = "") -> None:
        self.out.append(self._encode(o, exec_type, status, last=last, leaves=leaves, reason=reason, text=text))

    def _encode(self, o: _Resting, exec_type: str, status: str, *, last: tuple[int, int] | None = None,
                leaves: int | None = None, reason: str | None = None, text: str = "") -> bytes:
        m = self.m
        e = self._er.wrap_and_apply_header(self._buf, 0)
        e.order_id = o.order_id
        e.exec_id = self._next_exec_id
        self._next_exec_id += 1
        e.cl_ord_id = o.cl_ord_id
        e.symbol = o.symbol
        e.side = m.Side.Buy if o.buy else m.Side.Sell
        e.exec_type = m.ExecType[exec_type]
        e.ord_status = m.OrdStatus[status]
        e.reject_reason = None if reason is None else m.RejectReason[reason]
        e.price.mantissa = o.price
        e.last_price.mantissa = last[0] if last else None
        e.last_quantity = last[1] if last else 0
        e.leaves_quantity = (o.quantity - o.cum) if leaves is None and status != "Rejected" else 0
        e.cum_quantity = o.cum
        e.avg_price.mantissa = o.notional // o.cum if o.cum else None
        e.transact_time = self.clock_ns()
        e.put_text(text)
        return bytes(self._buf[:m.HEADER_LENGTH + e.encoded_length])

    def _reject(self, d: Any, response_to: str) -> None:
        m = self.m
        known = self.resting.get(d.orig_cl_ord_id)
        e = self._rej.wrap_and_apply_header(self._buf, 0)
        e.order_id = known.order_id if known else None
        e.cl_ord_id = d.cl_ord_id
        e.orig_cl_ord_id = d.orig_cl_ord_id
        e.ord_status = m.OrdStatus.Rejected
        e.response_to = m.CxlRejResponseTo[response_to]
        e.reject_reason = m.RejectReason.UnknownOrder if known is None else m.RejectReason.Other
        e.transact_time = self.clock_ns()
        e.put_text("unknown order" if known is None else "quantity at or below what is filled")
        self.out.append(bytes(self._buf[:m.HEADER_LENGTH + e.encoded_length]))
