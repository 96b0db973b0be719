"""Idle strategies: what an agent's duty cycle does when a cycle found no work.

Each strategy has ``idle(work_count)``: called after every ``do_work()`` with
the amount of work done; it idles only when ``work_count`` is 0, and resets its
state when work was found.  ``reset()`` puts it back to its first state.  The
names follow Agrona's (busy-spin, yielding, backoff, sleeping, no-op).

Strategies are not thread safe: give each agent runner its own instance.
"""

from __future__ import annotations

import os
import time
from typing import Protocol

__all__ = [
    "IdleStrategy",
    "BusySpinIdleStrategy",
    "NoOpIdleStrategy",
    "YieldingIdleStrategy",
    "SleepingIdleStrategy",
    "BackoffIdleStrategy",
    "idle_strategy_from_name",
]


class IdleStrategy(Protocol):
    """What an agent runner calls after each duty cycle."""

    def idle(self, work_count: int) -> None: ...

    def reset(self) -> None: ...


class NoOpIdleStrategy:
    """Never idles: the caller's loop decides everything."""

    name = "noop"

    def idle(self, work_count: int) -> None:
        pass

    def reset(self) -> None:
        pass


class BusySpinIdleStrategy:
    """Spins: lowest latency, burns a core.  Use only with a core of its own."""

    name = "busy-spin"

    def idle(self, work_count: int) -> None:
        # Python has no portable PAUSE instruction; an empty return keeps the
        # thread on the core and is the cheapest thing the interpreter can do.
        pass

    def reset(self) -> None:
        pass


class YieldingIdleStrategy:
    """Gives up the core with ``sched_yield`` when there was no work."""

    name = "yielding"

    def idle(self, work_count: int) -> None:
        if work_count <= 0:
            os.sched_yield()

    def reset(self) -> None:
        pass


class SleepingIdleStrategy:
    """Sleeps a fixed period when there was no work."""

    name = "sleeping"

    def __init__(self, sleep_ns: int = 1_000_000) -> None:
        if sleep_ns <= 0:
            raise ValueError(f"sleep_ns must be > 0: sleep_ns={sleep_ns}")
        self.sleep_s = sleep_ns / 1e9

    def idle(self, work_count: int) -> None:
        if work_count <= 0:
            time.sleep(self.sleep_s)

    def reset(self) -> None:
        pass


class BackoffIdleStrategy:
    """Spins, then yields, then sleeps with an exponentially growing period.

    ``max_spins`` empty cycles spin, the next ``max_yields`` yield, then each
    empty cycle sleeps from ``min_park_ns`` doubling up to ``max_park_ns``.
    Any cycle with work goes back to spinning.
    """

    name = "backoff"

    def __init__(
        self,
        max_spins: int = 10,
        max_yields: int = 5,
        min_park_ns: int = 1_000,
        max_park_ns: int = 1_000_000,
    ) -> None:
        if max_spins < 0 or max_yields < 0:
            raise ValueError(f"spins and yields must be >= 0: max_spins={max_spins} max_yields={max_yields}")
        if not 0 < min_park_ns <= max_park_ns:
            raise ValueError(
                f"need 0 < min_park_ns <= max_park_ns: min_park_ns={min_park_ns} max_park_ns={max_park_ns}"
            )
        self.max_spins = max_spins
        self.max_yields = max_yields
        self.min_park_ns = min_park_ns
        self.max_park_ns = max_park_ns
        self.reset()

    def reset(self) -> None:
        self.spins = 0
        self.yields = 0
        self.park_ns = self.min_park_ns

    def idle(self, work_count: int) -> None:
        if work_count > 0:
            if self.spins or self.yields or self.park_ns != self.min_park_ns:
                self.reset()
            return
        if self.spins < self.max_spins:
            self.spins += 1
        elif self.yields < self.max_yields:
            self.yields += 1
            os.sched_yield()
        else:
            time.sleep(self.park_ns / 1e9)
            self.park_ns = min(self.park_ns * 2, self.max_park_ns)


def idle_strategy_from_name(name: str) -> IdleStrategy:
    """Build a strategy from its name (``busy-spin``, ``yielding``, ``backoff``, ``sleeping``, ``noop``)."""
    table: dict[str, type] = {
        "busy-spin": BusySpinIdleStrategy,
        "noop": NoOpIdleStrategy,
        "yielding": YieldingIdleStrategy,
        "sleeping": SleepingIdleStrategy,
        "backoff": BackoffIdleStrategy,
    }
    try:
        cls = table[name]
    except KeyError:
        raise ValueError(f"unknown idle strategy: name={name!r} known={sorted(table)}") from None
    strategy: IdleStrategy = cls()
    return strategy
