"""A strategy's Aeron counters, shown by ``tickline stat`` (and ``--prometheus``): its
orders by outcome (sent, denied, acked, filled, canceled, replaced, rejected) and
callback errors.  The runner counts in plain ints (a dict increment per report);
``StrategyCounters.maybe_update``, from the runner's duty cycle, copies them every
100 ms.  Published when the runner has an Aeron client; closed in its ``on_close``.
"""

from __future__ import annotations

from tickline.transport import counter_types as ct
from tickline.transport.counter_group import ComponentCounters

__all__ = ["StrategyCounters", "REPORT_OUTCOMES"]

# the runner's report kinds, as outcome label values
REPORT_OUTCOMES = {"ack": "acked", "fill": "filled", "cancel": "canceled", "replace": "replaced", "reject": "rejected"}


class StrategyCounters(ComponentCounters):
    """``owner``: the ``StrategyRunner``."""

    component = "strategy"

    def update(self) -> None:
        r, g = self.owner, self.group
        n = r.config.name
        g.set(ct.STRATEGY_ORDERS, "orders", r.sent, strategy=n, outcome="sent")
        g.set(ct.STRATEGY_ORDERS, "orders", r.denied, strategy=n, outcome="denied")
        for kind, outcome in REPORT_OUTCOMES.items():
            g.set(ct.STRATEGY_ORDERS, "orders", r.outcomes.get(kind, 0), strategy=n, outcome=outcome)
        g.set(ct.STRATEGY_ORDERS, "callback errors", r.callback_errors, strategy=n, outcome="callback_error")
