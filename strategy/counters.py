"""A strategy's Aeron counters, shown by ``tickline stat`` (and ``--prometheus``): its
orders by outcome (sent, denied, acked, filled, canceled, replaced, rejected) and
callback errors.  The runner counts in plain ints (a dict increment per report);
``StrategyCounters.maybe_update``, from the runner's duty cycle, copies them every
100 ms.  Published when the runner has an Aeron client; closed in its ``on_close``.
"""

from __future__ import annotations

import logging
from typing import Any

from tickline.transport import counter_types as ct
from tickline.transport.counter_group import CounterGroup

__all__ = ["StrategyCounters", "REPORT_OUTCOMES"]

log = logging.getLogger("tickline.strategy")

# the runner's report kinds, as outcome label values
REPORT_OUTCOMES = {"ack": "acked", "fill": "filled", "cancel": "canceled", "replace": "replaced", "reject": "rejected"}


class StrategyCounters:
    def __init__(self, runner: Any, aeron: Any, interval: float = 0.1) -> None:
        self.runner = runner
        self.name = runner.config.name
        self.group = CounterGroup(aeron, "strategy", interval)
        self.update()

    @classmethod
    def start(cls, runner: Any, aeron: Any) -> "StrategyCounters | None":
        if aeron is None or not hasattr(aeron, "add_counter"):
            return None
        try:
            return cls(runner, aeron)
        except Exception as e:  # noqa: BLE001 - the strategy runs on without its counters
            log.warning("strategy counters not published: strategy=%s fault=ours error=%s", runner.config.name, e)
            return None

    def maybe_update(self) -> None:
        if self.group.due():
            self.update()

    def update(self) -> None:
        r, g, n = self.runner, self.group, self.name
        g.set(ct.STRATEGY_ORDERS, "orders", r.sent, strategy=n, outcome="sent")
        g.set(ct.STRATEGY_ORDERS, "orders", r.denied, strategy=n, outcome="denied")
        for kind, outcome in REPORT_OUTCOMES.items():
            g.set(ct.STRATEGY_ORDERS, "orders", r.outcomes.get(kind, 0), strategy=n, outcome=outcome)
        g.set(ct.STRATEGY_ORDERS, "callback errors", r.callback_errors, strategy=n, outcome="callback_error")

    def close(self) -> None:
        self.group.close()
