"""The exchange simulator's Aeron counters, shown by ``tickline stat`` (and ``--prometheus``):
orders received, fragments refused as bad, and reports published by outcome (accepted,
filled, canceled, replaced, rejected, cancel_rejected).  The agent counts in plain ints
(a dict increment per report published); ``ExchangeCounters.maybe_update``, from its duty
cycle, copies them every 100 ms.  Closed in the agent's ``on_close``.
"""

from __future__ import annotations

import logging
from typing import Any

from tickline.fix_gateway.bridge import ExecType
from tickline.transport import counter_types as ct
from tickline.transport.counter_group import CounterGroup

__all__ = ["ExchangeCounters", "OUTCOMES", "outcome_of"]

log = logging.getLogger("tickline.venue")

_BY_EXEC_TYPE = {ExecType.NEW: "accepted", ExecType.TRADE: "filled", ExecType.CANCELED: "canceled",
                 ExecType.REPLACED: "replaced", ExecType.REJECTED: "rejected"}
OUTCOMES = (*_BY_EXEC_TYPE.values(), "cancel_rejected")


def outcome_of(report: Any) -> str:
    """The outcome a venue report tells: an ExecutionReport's exec type, else (an
    OrderCancelReject) ``cancel_rejected``."""
    return _BY_EXEC_TYPE.get(getattr(report, "exec_type", None), "cancel_rejected")  # type: ignore[arg-type]


class ExchangeCounters:
    def __init__(self, agent: Any, aeron: Any, interval: float = 0.1) -> None:
        self.agent = agent
        self.group = CounterGroup(aeron, "exchange-sim", interval)
        self.update()

    @classmethod
    def start(cls, agent: Any, aeron: Any) -> "ExchangeCounters | None":
        if aeron is None or not hasattr(aeron, "add_counter"):
            return None
        try:
            return cls(agent, aeron)
        except Exception as e:  # noqa: BLE001 - the venue runs on without its counters
            log.warning("exchange-sim counters not published: fault=ours error=%s", e)
            return None

    def maybe_update(self) -> None:
        if self.group.due():
            self.update()

    def update(self) -> None:
        a, g = self.agent, self.group
        g.set(ct.VENUE_ORDERS, "orders", a.orders, outcome="received")
        g.set(ct.VENUE_ORDERS, "orders", a.bad, outcome="bad")
        for name in OUTCOMES:
            g.set(ct.VENUE_ORDERS, "orders", a.outcomes.get(name, 0), outcome=name)

    def close(self) -> None:
        self.group.close()
