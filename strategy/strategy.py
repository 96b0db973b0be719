"""The ``Strategy`` base class: what a strategy author subclasses.

    from dataclasses import dataclass
    from tickline.strategy import Strategy

    class Dip(Strategy):
        @dataclass(frozen=True)
        class Params:                     # [strategy.params], validated at start
            size: int = 1

        def on_top_of_book(self, tob):    # a TopOfBookDecoder flyweight, valid during the call
            if tob.ask_price.mantissa is not None and not self.open_orders(tob.symbol):
                self.buy(tob.symbol, self.params.size, price=tob.ask_price.mantissa)

        def on_fill(self, order, report):
            self.log.info("filled %s, position %s", order, self.position(order.symbol))

Callbacks (each a no-op here; override what you need):

- ``on_start()`` / ``on_stop()``: once, on the runner's thread, before the
  first and after the last duty cycle;
- ``on_top_of_book(tob)``, ``on_trade(trade)``, ``on_book(book)``: decoded
  flyweights of ``schemas/market_data.xml`` (generated codecs; attributes such
  as ``tob.bid_price.mantissa``, ``trade.aggressor_side``; groups with
  ``book.bids()`` then ``book.asks()``), only for the configured symbols, valid
  only during the call;
- ``on_ack(order, report)``, ``on_fill(order, report)`` (``report.last_quantity``
  / ``report.last_price.mantissa``), ``on_cancel``, ``on_replace``: the order
  handle (already updated) and the ExecutionReport flyweight;
- ``on_reject(order, report)``: an ExecutionReport with ExecType Rejected (the
  order is REJECTED) or an OrderReject (a cancel or replace refused; the order
  stays as it was); ``report.reject_reason`` and ``report.text()`` say why;
- ``on_timer(name, now_ns)``: a timer set with ``set_timer``;
- ``on_gap(source, first, last)``: market-data sequence numbers never seen.

Actions: ``buy``/``sell`` return an ``Order`` handle at once (SUBMITTED, or
DENIED when the gateway pushed back and the send queue is full); ``cancel``
and ``replace`` return whether the request went out or was queued.  Nothing
blocks: a request the gateway cannot take now is queued and retried on the
next duty cycle.  Prices are the schemas' mantissas (``int``, value x 10^9;
``tickline.feed.price(101.25)`` converts); ``price=None`` is a market order.

State: ``open_orders()``, ``position(symbol)`` (quantity, realized PnL,
``unrealized(mark)``), ``quote(symbol)`` (last bid/ask seen), ``now_ns``
(the runner's clock).  A callback that raises is logged with ``fault=ours``
and counted; the order book-keeping it follows was already applied.

Thread safety: a strategy runs on its runner's thread only.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar

from .config import StrategyConfig, validate_params
from .orders import Order, Position

if TYPE_CHECKING:
    from .runner import StrategyRunner

__all__ = ["Strategy"]


class Strategy:
    Params: ClassVar[Any] = None

    def __init__(self, config: StrategyConfig, params: Any = None) -> None:
        self.config = config
        self.params = params if params is not None else validate_params(type(self), config)
        self.log = logging.getLogger(f"tickline.strategy.{config.name}")
        self._runner: StrategyRunner | None = None

    # -- callbacks ---------------------------------------------------------------------------------

    def on_start(self) -> None: ...

    def on_stop(self) -> None: ...

    def on_top_of_book(self, tob: Any) -> None: ...

    def on_trade(self, trade: Any) -> None: ...

    def on_book(self, book: Any) -> None: ...

    def on_ack(self, order: Order, report: Any) -> None: ...

    def on_fill(self, order: Order, report: Any) -> None: ...

    def on_cancel(self, order: Order, report: Any) -> None: ...

    def on_replace(self, order: Order, report: Any) -> None: ...

    def on_reject(self, order: Order, report: Any) -> None: ...

    def on_timer(self, name: str, now_ns: int) -> None: ...

    def on_gap(self, source: int, first: int, last: int) -> None: ...

    # -- actions -----------------------------------------------------------------------------------

    @property
    def runner(self) -> StrategyRunner:
        r = self._runner
        if r is None:
            raise RuntimeError(f"strategy is not attached to a runner: strategy={self.config.name} fault=user")
        return r

    def buy(self, symbol: str, quantity: int, price: int | None = None, *, tif: str = "Day") -> Order:
        """A buy order: limit at ``price`` (mantissa), market when None.  ``tif``: Day |
        GoodTillCancel | ImmediateOrCancel | FillOrKill."""
        r = self._runner  # not the ``runner`` property: a call less per order
        return (r or self.runner).submit(symbol, True, quantity, price, tif)

    def sell(self, symbol: str, quantity: int, price: int | None = None, *, tif: str = "Day") -> Order:
        r = self._runner
        return (r or self.runner).submit(symbol, False, quantity, price, tif)

    def cancel(self, order: Order) -> bool:
        """Ask to cancel ``order``; False when it is not open or a cancel is already in flight."""
        return self.runner.cancel(order)

    def replace(self, order: Order, price: int | None = None, quantity: int | None = None) -> bool:
        """Ask to change ``order``'s price and/or quantity (None keeps it); False when it is not open
        or a cancel/replace is already in flight."""
        return self.runner.replace(order, price, quantity)

    def cancel_all(self, symbol: str | None = None) -> int:
        """Cancel every open order (of ``symbol``); returns how many cancels went out or were queued."""
        return sum(self.cancel(o) for o in self.open_orders(symbol) if not o.pending_cancel)

    def set_timer(self, name: str, interval_ns: int, *, repeat: bool = True) -> None:
        """``on_timer(name, now)`` every ``interval_ns`` (once when ``repeat`` is False) by the runner's clock;
        setting a name again replaces its timer."""
        self.runner.set_timer(name, interval_ns, repeat)

    def cancel_timer(self, name: str) -> None:
        self.runner.cancel_timer(name)

    # -- state -------------------------------------------------------------------------------------

    @property
    def now_ns(self) -> int:
        return self.runner.clock.time_ns()

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        return [o for o in self.runner.books.open_orders() if symbol is None or o.symbol == symbol]

    def position(self, symbol: str) -> Position:
        return self.runner.books.position(symbol)

    def quote(self, symbol: str) -> tuple[int | None, int | None]:
        """The last (bid, ask) mantissas seen for ``symbol`` (None: no quote / empty side)."""
        return self.runner.quotes.get(symbol, (None, None))

    def mid(self, symbol: str) -> int | None:
        bid, ask = self.quote(symbol)
        return None if bid is None or ask is None else (bid + ask) // 2
