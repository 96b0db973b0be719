"""A component's own counters, published by sampling: the way a daemon shows its numbers
in ``tickline stat`` without paying for them per message.

A component keeps counting in plain Python ints (as it already does for its status
file); a ``CounterGroup`` copies them into Aeron counters at most every ``interval``
seconds, from the component's duty cycle: one clock read per cycle, a few native stores
per interval, nothing per message.  ``close()`` (from the component's ``on_close``)
frees every counter, so a stopped component's counters leave the CnC file.

Not thread safe: the component's agent thread owns it.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Callable, Self

from . import counter_types as ct

if TYPE_CHECKING:
    from .._aeron import AeronCounter

__all__ = ["CounterGroup", "ComponentCounters"]

log = logging.getLogger("tickline.counters")


class CounterGroup:
    """Counters one component owns, refreshed by ``sample`` every ``interval`` seconds.

    ``aeron``: a ``tickline.transport.Aeron`` (anything with ``add_counter``).
    ``sample``: a function called at most every ``interval`` seconds by ``maybe_update``;
    it sets the counters (``set``) from the component's state.
    """

    def __init__(self, aeron: Any, component: str, interval: float = 0.1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not interval > 0:
            raise ValueError(f"counter interval must be > 0: fault=user interval={interval!r}")
        self.aeron = aeron
        self.component = component
        self.interval = interval
        self.clock = clock
        self._due = 0.0
        self._counters: dict[tuple[int, str], AeronCounter] = {}
        self.closed = False

    def counter(self, type_id: int, what: str, **fields: object) -> "AeronCounter":
        """The counter of (type, label), registered with the driver the first time it is asked for."""
        label = ct.label(self.component, what, **fields)
        key = (type_id, label)
        c = self._counters.get(key)
        if c is None:
            c = self._counters[key] = self.aeron.add_counter(type_id, label)
        return c

    def set(self, type_id: int, what: str, value: int, **fields: object) -> None:
        if not self.closed:
            self.counter(type_id, what, **fields).set(value)

    def due(self) -> bool:
        """True at most once per interval (then the caller samples)."""
        now = self.clock()
        if now < self._due or self.closed:
            return False
        self._due = now + self.interval
        return True

    def close(self) -> None:
        """Free every counter in the driver; idempotent.  A client already closed freed them."""
        self.closed = True
        for c in self._counters.values():
            try:
                c.close()
            except Exception as e:  # noqa: BLE001 - closing must go on for the others
                log.warning("counter close failed: label=%s error=%s", c.label, e)
        self._counters.clear()

    def __len__(self) -> int:
        return len(self._counters)


class ComponentCounters:
    """The lifecycle every component's counters share: made at the component's start
    (``start``: None, with a warning, when they can't be, for the component runs on
    without them), refreshed from its duty cycle (``maybe_update``), freed at its close.
    A subclass names its ``component``, may set ``interval``, and writes ``update``."""

    component = ""
    interval = 0.1

    def __init__(self, owner: Any, aeron: Any) -> None:
        self.owner = owner
        self.group = CounterGroup(aeron, self.component, self.interval)
        self.update()  # registers them all now, so they show as soon as the component runs

    @classmethod
    def start(cls, owner: Any, aeron: Any) -> "Self | None":
        if aeron is None or not hasattr(aeron, "add_counter"):
            return None
        try:
            return cls(owner, aeron)
        except Exception as e:  # noqa: BLE001 - the component runs on without its counters
            log.warning("counters not published: component=%s fault=ours error=%s", cls.component, e)
            return None

    def update(self) -> None:
        raise NotImplementedError

    def maybe_update(self) -> None:
        if self.group.due():
            self.update()

    def close(self) -> None:
        self.group.close()
