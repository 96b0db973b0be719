"""A tick-to-trade probe: stamps every stage from market data to the fill.

    tickline strategy run tickline.strategy.examples.tick_to_trade:TickToTradeProbe --config probe.toml

    [strategy.params]
    every = 10            # send an order on every Nth top of book of a symbol
    quantity = 1
    max_samples = 100000  # per stage, most recent kept

Every Nth top of book it takes the touch (buy at the ask, then sell at the bid,
alternating so it stays flat) as an immediate-or-cancel order, and records, in
nanoseconds by the runner's clock (epoch: comparable with timestamps stamped
by other processes on the same host):

- ``md_to_callback``: the publisher's ``localTimestamp`` -> ``on_top_of_book`` entry;
- ``callback_to_send``: callback entry -> the order handed to the gateway (decide + encode + send);
- ``tick_to_trade``: ``localTimestamp`` -> order sent;
- ``send_to_ack``: order sent -> ``on_ack`` (through the sequencer and venue and back);
- ``fill_to_callback``: the fill report's ``transactTime`` (stamped by the venue) -> ``on_fill``;
- ``send_to_fill``: order sent -> ``on_fill``.

``stages()`` gives count/p50/p90/p99/max per stage in microseconds; the CLI's
status file carries it as ``summary``.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any

from tickline.strategy import Order, Strategy

STAGES = ("md_to_callback", "callback_to_send", "tick_to_trade", "send_to_ack", "fill_to_callback", "send_to_fill")


def percentiles(samples: Any) -> dict[str, float]:
    data = sorted(samples)
    if not data:
        return {"count": 0}

    def at(q: float) -> float:
        return data[min(len(data) - 1, int(q * len(data)))] / 1000.0

    return {"count": len(data), "p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": data[-1] / 1000.0}


class TickToTradeProbe(Strategy):
    @dataclass(frozen=True)
    class Params:
        every: int = 10
        quantity: int = 1
        max_samples: int = 100_000

        def validate(self) -> None:
            if self.every < 1 or self.quantity < 1 or self.max_samples < 1:
                raise ValueError(f"every, quantity and max_samples must be >= 1: every={self.every} "
                                 f"quantity={self.quantity} max_samples={self.max_samples}")

    def on_start(self) -> None:
        n = self.params.max_samples
        self.samples: dict[str, collections.deque[int]] = {s: collections.deque(maxlen=n) for s in STAGES}
        self.ticks: dict[str, int] = collections.defaultdict(int)
        self.buy_next: dict[str, bool] = collections.defaultdict(lambda: True)
        self.orders_sent = 0

    def on_top_of_book(self, tob: Any) -> None:
        clock = self.runner.clock
        t_callback = clock.time_ns()
        symbol = tob.symbol
        self.ticks[symbol] += 1
        if self.ticks[symbol] % self.params.every:
            return
        buy = self.buy_next[symbol]
        px = tob.ask_price.mantissa if buy else tob.bid_price.mantissa
        if px is None:
            return
        t_md = tob.local_timestamp
        if buy:
            order = self.buy(symbol, self.params.quantity, px, tif="ImmediateOrCancel")
        else:
            order = self.sell(symbol, self.params.quantity, px, tif="ImmediateOrCancel")
        t_sent = clock.time_ns()
        self.buy_next[symbol] = not buy
        self.orders_sent += 1
        order.tag = t_sent
        s = self.samples
        s["md_to_callback"].append(t_callback - t_md)
        s["callback_to_send"].append(t_sent - t_callback)
        s["tick_to_trade"].append(t_sent - t_md)

    def on_ack(self, order: Order, report: Any) -> None:
        if order.tag is not None:
            self.samples["send_to_ack"].append(self.runner.clock.time_ns() - order.tag)

    def on_fill(self, order: Order, report: Any) -> None:
        now = self.runner.clock.time_ns()
        self.samples["fill_to_callback"].append(now - report.transact_time)
        if order.tag is not None:
            self.samples["send_to_fill"].append(now - order.tag)

    def stages(self) -> dict[str, dict[str, float]]:
        """Per stage: count, p50, p90, p99, max (microseconds)."""
        return {name: percentiles(self.samples[name]) for name in STAGES}

    def summary(self) -> dict[str, Any]:
        return {"orders_sent": self.orders_sent, "stages_us": self.stages()}

    def on_stop(self) -> None:
        for name, st in self.stages().items():
            if st["count"]:
                self.log.info("stage %-16s n=%d p50=%.1fus p90=%.1fus p99=%.1fus max=%.1fus", name, st["count"],
                              st["p50"], st["p90"], st["p99"], st["max"])
