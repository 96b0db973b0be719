"""A synthetic market-data source: a seeded random walk per symbol, published at a configured rate.

``RandomWalk`` (sans-IO) makes the quotes; ``SyntheticFeed`` is the Agent that
paces them onto a ``MarketDataPublisher``: ``rate`` top-of-book messages per
second in total, symbols in turn, in batches of up to ``max_batch`` per duty
cycle (``offer_frames``).  A batch the publication refuses stays pending, in
order, and goes first next cycle, so the walk is the same sequence of quotes
for a given seed whatever the back pressure.  When it falls more than
``max_backlog`` messages behind (a slow subscriber, a descheduled process)
it skips ahead instead of bursting, and counts ``skipped``.

``pregenerate=N`` (load generation): the walk's first N quotes are encoded
once into batches of ``max_batch`` and published in a loop, whole batches at
a time, each stamped with the publish time and the next sequence numbers
(``MarketDataPublisher.publish_batch``): no Python work per message, so the
rate is the transport's.  Prices then repeat every N messages.

Time comes from ``clock_ns`` (pacing and ``exchangeTimestamp``); nothing here
reads another clock or starts a thread.
"""

from __future__ import annotations

import random
import time
from typing import Callable, Sequence

from .publisher import MarketDataPublisher, TopOfBookBatch, price

__all__ = ["RandomWalk", "SyntheticFeed"]

Quote = tuple[str, int, int, int, int, int]  # symbol, bid, bid_size, ask, ask_size, ts


class RandomWalk:
    """Quotes for ``symbols``: the mid moves up or down a tick (or stays), the spread is 1-3 ticks,
    sizes 1-``max_size``.  ``start``/``tick`` are prices (``price()`` units are mantissas)."""

    def __init__(self, symbols: Sequence[str], *, seed: int = 1, start: float = 100.0, tick: float = 0.01,
                 max_size: int = 100) -> None:
        if not symbols:
            raise ValueError("a random walk needs at least one symbol: symbols=[] fault=user")
        self.symbols = list(symbols)
        self.rng = random.Random(seed)
        self.tick = price(tick)
        if self.tick <= 0:
            raise ValueError(f"tick must be > 0: tick={tick} fault=user")
        self.max_size = max_size
        start_ticks = max(price(start) // self.tick, 10)
        self.mid_ticks = {s: start_ticks for s in self.symbols}
        self._next = 0

    def next(self, ts: int) -> Quote:
        symbol = self.symbols[self._next]
        self._next = (self._next + 1) % len(self.symbols)
        rng = self.rng
        mid = max(self.mid_ticks[symbol] + rng.choice((-1, 0, 0, 1)), 2)
        self.mid_ticks[symbol] = mid
        half = rng.randint(1, 3)
        bid = (mid - half // 2 - half % 2) * self.tick
        ask = (mid + half // 2) * self.tick
        return symbol, bid, rng.randint(1, self.max_size), ask, rng.randint(1, self.max_size), ts


class SyntheticFeed:
    """An Agent publishing a ``RandomWalk`` at ``rate`` messages/s through ``publisher``.

    ``duration_ns``: stop (``AgentTerminated`` from ``do_work``) after this long; None runs until closed.
    Counters: ``publisher.published``, ``pending``, ``skipped``, ``batches``.
    """

    def __init__(self, publisher: MarketDataPublisher, walk: RandomWalk, rate: float, *,
                 clock_ns: Callable[[], int] = time.time_ns, max_batch: int = 256, max_backlog: int | None = None,
                 duration_ns: int | None = None, pregenerate: int = 0) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0 messages/s: rate={rate} fault=user")
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1: max_batch={max_batch} fault=user")
        self.publisher = publisher
        self.walk = walk
        self.rate = rate
        self.clock_ns = clock_ns
        self.max_batch = max_batch
        self.max_backlog = max_backlog if max_backlog is not None else max(int(rate), 1000)
        self.duration_ns = duration_ns
        self.start_ns: int | None = None
        self.generated = 0
        self.skipped = 0
        self.batches = 0
        self._pending: list[Quote] = []
        self._ring: list[TopOfBookBatch] = []
        self._ring_i = 0
        self._ring_start = 0
        while len(self._ring) * max_batch < pregenerate:
            self._ring.append(TopOfBookBatch([walk.next(0)[:5] for _ in range(max_batch)]))

    def role_name(self) -> str:
        return "synthetic-feed"

    def on_start(self) -> None:
        self.start_ns = self.clock_ns()

    def do_work(self) -> int:
        now = self.clock_ns()
        if self.start_ns is None:
            self.start_ns = now
        elapsed = now - self.start_ns
        if self.duration_ns is not None and elapsed >= self.duration_ns and not self._pending:
            from tickline.transport import AgentTerminated

            raise AgentTerminated()
        due = int(elapsed * self.rate / 1e9) + self.skipped - self.generated
        if due > self.max_backlog:
            self.skipped += due - self.max_backlog
            due = self.max_backlog
        if self._ring:
            return self._publish_ring(due)
        pending = self._pending
        room = self.max_batch - len(pending)
        for _ in range(max(min(due, room), 0)):
            pending.append(self.walk.next(now))
            self.generated += 1
        if not pending:
            return 0
        done = self.publisher.offer_top_of_book_batch(pending)
        if done:
            self.batches += 1
            del pending[:done]
        return done

    def _publish_ring(self, due: int) -> int:
        batch = self._ring[self._ring_i]
        if due < len(batch) - self._ring_start:
            return 0  # whole batches only
        done = self.publisher.publish_batch(batch, self._ring_start)
        self.generated += done
        self._ring_start += done
        if self._ring_start == len(batch):
            self._ring_start = 0
            self._ring_i = (self._ring_i + 1) % len(self._ring)
            self.batches += 1
        return done

    def on_close(self) -> None:
        pass

    @property
    def pending(self) -> int:
        return len(self._pending)
