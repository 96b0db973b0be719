"""The exchange simulator's Aeron counters, shown by ``tickline stat`` (and ``--prometheus``):
orders received, fragments refused as bad, and reports published by outcome (accepted,
filled, canceled, replaced, rejected, cancel_rejected).  The agent counts in plain ints
(a dict increment per report published); ``ExchangeCounters.maybe_update``, from its duty
cycle, copies them every 100 ms.  Closed in the agent's ``on_close``.
"""

from __future__ import annotations

from typing import Any

from tickline.fix_gateway.bridge import ExecType
from tickline.transport import counter_types as ct
from tickline.transport.counter_group import ComponentCounters

__all__ = ["ExchangeCounters", "OUTCOMES", "OUTCOME_BY_EXEC_TYPE", "outcome_of"]

OUTCOME_BY_EXEC_TYPE = {ExecType.NEW: "accepted", ExecType.TRADE: "filled", ExecType.CANCELED: "canceled",
                 ExecType.REPLACED: "replaced", ExecType.REJECTED: "rejected"}
OUTCOMES = (*OUTCOME_BY_EXEC_TYPE.values(), "cancel_rejected")


def outcome_of(report: Any) -> str:
    """The outcome a venue report tells: an ExecutionReport's exec type, else (an
    OrderCancelReject) ``cancel_rejected``."""
    return OUTCOME_BY_EXEC_TYPE.get(getattr(report, "exec_type", None), "cancel_rejected")  # type: ignore[arg-type]


class ExchangeCounters(ComponentCounters):
    """``owner``: the ``ExchangeSimAgent``."""

    component = "exchange-sim"

    def update(self) -> None:
        a, g = self.owner, self.group
        g.set(ct.VENUE_ORDERS, "orders", a.orders, outcome="received")
        g.set(ct.VENUE_ORDERS, "orders", a.bad, outcome="bad")
        for name in OUTCOMES:
            g.set(ct.VENUE_ORDERS, "orders", a.outcomes.get(name, 0), outcome=name)
