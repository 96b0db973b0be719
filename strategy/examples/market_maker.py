"""A market maker: one bid and one ask around the mid, skewed against its inventory.

    tickline strategy run tickline.strategy.examples.market_maker:MarketMaker --config mm.toml

    [strategy.params]
    spread = 0.02         # quoted width, price units: bid = fair - spread/2, ask = fair + spread/2
    size = 1              # quantity per quote
    max_position = 10     # no more bids at +max_position, no more asks at -max_position
    skew = 0.005          # fair = mid - skew * position: a long market maker quotes lower to sell
    requote = 0.01        # replace a quote only when its price should move at least this much

Each side is one order at a time: placed when missing, replaced when the fair
price moved by ``requote`` or more (and the last request was answered),
cancelled when the position limit forbids that side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tickline.feed import price
from tickline.strategy import Order, Strategy


class MarketMaker(Strategy):
    @dataclass(frozen=True)
    class Params:
        spread: float = 0.02
        size: int = 1
        max_position: int = 10
        skew: float = 0.005
        requote: float = 0.01

        def validate(self) -> None:
            if self.spread <= 0:
                raise ValueError(f"spread must be > 0: spread={self.spread}")
            if self.size <= 0 or self.max_position <= 0:
                raise ValueError(f"size and max_position must be > 0: size={self.size} max_position={self.max_position}")
            if self.skew < 0 or self.requote < 0:
                raise ValueError(f"skew and requote must be >= 0: skew={self.skew} requote={self.requote}")

    def on_start(self) -> None:
        p = self.params
        self.half_spread = price(p.spread) // 2
        self.skew_per_unit = price(p.skew)
        self.requote_min = price(p.requote)
        self.quotes_out: dict[str, dict[str, Order | None]] = {s: {"bid": None, "ask": None} for s in self.config.symbols}
        self.fills = 0

    def on_top_of_book(self, tob: Any) -> None:
        bid, ask = tob.bid_price.mantissa, tob.ask_price.mantissa
        if bid is None or ask is None:
            return
        symbol = tob.symbol
        pos = self.position(symbol).quantity
        fair = (bid + ask) // 2 - self.skew_per_unit * pos
        limit = self.params.max_position
        self._quote(symbol, "bid", fair - self.half_spread if pos < limit else None)
        self._quote(symbol, "ask", fair + self.half_spread if pos > -limit else None)

    def _quote(self, symbol: str, side: str, px: int | None) -> None:
        book = self.quotes_out[symbol]
        order = book[side]
        if order is not None and not order.is_open:
            order = book[side] = None
        if px is None:
            if order is not None:
                self.cancel(order)
            return
        if order is None:
            size = self.params.size
            book[side] = self.buy(symbol, size, px) if side == "bid" else self.sell(symbol, size, px)
        elif (order.order_id is not None and order.pending_replace is None and not order.pending_cancel
              and order.price is not None and abs(order.price - px) >= self.requote_min):
            self.replace(order, price=px)

    def on_fill(self, order: Order, report: Any) -> None:
        self.fills += 1
        self.log.info("fill %s %d @ %d position=%s", order.cl_ord_id, report.last_quantity,
                      report.last_price.mantissa or 0, self.position(order.symbol))

    def on_reject(self, order: Order, report: Any) -> None:
        self.log.warning("rejected %s reason=%s text=%s", order.cl_ord_id, report.reject_reason_raw, report.text())

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"fills": self.fills}
        for s in self.config.symbols:
            p = self.position(s)
            out[s] = {"position": p.quantity, "realized": p.realized_pnl,
                      "unrealized": p.unrealized(self.mid(s)) / 1e9}
        return out
