"""``StrategyRunner``: runs one ``Strategy`` as an Agent on the caller's loop.

    runner = StrategyRunner(strategy, gateway, aeron=aeron)        # md subscription from the config
    AgentRunner(runner, BackoffIdleStrategy()).start()             # a thread of its own, or
    invoker = AgentInvoker(runner); while running: invoker.invoke()  # the caller's loop

Each duty cycle, in this order: retry requests the gateway pushed back; poll
the gateway for reports (``fragment_limit``) and apply them (bookkeeping, then
the strategy's callback); poll market data (``fragment_limit``) into the
strategy; fire due timers.  Reports go first so a strategy sees its orders'
state before the next tick.  It starts no thread and never blocks; time comes
from ``clock`` (anything with ``time_ns()``, default the wall clock, epoch
nanoseconds, which is what ``transactTime`` and market-data timestamps use).

``on_close`` calls ``strategy.on_stop()`` and then, with ``cancel_on_stop``,
sends (once, without waiting) a cancel for every order still open.
Not thread safe: one thread runs it.
"""

from __future__ import annotations

import collections
import heapq
import logging
import time
from typing import Any, Callable, Protocol

from tickline.feed.consumer import MarketDataDecoder

from .counters import StrategyCounters
from .orders import ClOrdIdGenerator, Order, OrderBookkeeping
from .strategy import Strategy

__all__ = ["StrategyRunner", "Clock", "SystemClock"]

log = logging.getLogger("tickline.strategy")


class Clock(Protocol):
    def time_ns(self) -> int: ...


class SystemClock:
    """The wall clock (``time.time_ns``): epoch nanoseconds."""

    time_ns = staticmethod(time.time_ns)


class _Listener:
    """Market data -> the last quote per symbol, then the strategy.  A strategy callback that
    raises is caught, counted (``md.listener_errors``) and logged by the decoder."""

    def __init__(self, runner: "StrategyRunner") -> None:
        s = runner.strategy
        quotes = runner.quotes
        on_tob = s.on_top_of_book
        # a SimulatedVenue with follow_market_data moves its quotes with the strategy's, first
        venue_tap = runner.gateway.on_top_of_book if getattr(runner.gateway, "follow_market_data", False) else None

        def on_top_of_book(d: Any) -> None:
            quotes[d.symbol] = (d.bid_price.mantissa, d.ask_price.mantissa)
            if venue_tap is not None:
                venue_tap(d)
            on_tob(d)

        self.on_top_of_book = on_top_of_book
        self.on_trade = s.on_trade
        self.on_book = s.on_book
        self.on_gap = s.on_gap


class StrategyRunner:
    """The Agent running ``strategy`` (see the module doc).

    ``gateway``: an ``OrderGateway``.  Market data: ``subscription`` if given
    (any Aeron subscription), else one on ``config.md_channel``/``md_stream``
    added through ``aeron`` at ``on_start``.  ``clock``: see the module doc.
    Counters: ``counters()``.
    """

    def __init__(self, strategy: Strategy, gateway: Any, *, aeron: Any = None, subscription: Any = None,
                 clock: Clock | None = None) -> None:
        cfg = strategy.config
        self.strategy = strategy
        self.config = cfg
        self.gateway = gateway
        self.aeron = aeron
        self.subscription = subscription
        if subscription is None and aeron is None:
            raise ValueError(f"a runner needs an Aeron client or a subscription for market data: "
                             f"strategy={cfg.name} fault=user")
        self.clock: Clock = clock or SystemClock()
        seed = cfg.cl_ord_id_seed if cfg.cl_ord_id_seed is not None else self.clock.time_ns() // 1000
        self.books = OrderBookkeeping(cfg.account, ClOrdIdGenerator(cfg.prefix, seed))
        self.quotes: dict[str, tuple[int | None, int | None]] = {}
        self.symbols = frozenset(cfg.symbols)
        self._pending: collections.deque[tuple[bytes, Order, str]] = collections.deque()
        self._timers: list[tuple[int, int, str, int | None]] = []
        self._timer_gen: dict[str, int] = {}
        self._timer_seq = 0
        self.sent = 0
        self.send_retries = 0
        self.denied = 0
        self.callback_errors = 0
        self.timers_fired = 0
        self.outcomes: collections.Counter[str] = collections.Counter()  # reports by kind (ack, fill, ...)
        self.aeron_counters: StrategyCounters | None = None  # from on_start, with an Aeron client (counters.py)
        self.decoder = MarketDataDecoder(_Listener(self), symbols=cfg.symbols, name=f"{cfg.name}:md")
        self._md_handler = self.decoder.on_fragment
        self._limit = cfg.fragment_limit
        self._report_handler = self._on_report
        self._callbacks: dict[str, Callable[[Order, Any], None]] = {
            "ack": strategy.on_ack, "fill": strategy.on_fill, "cancel": strategy.on_cancel,
            "replace": strategy.on_replace, "reject": strategy.on_reject}
        self._tif = {t.name: t for t in self.books.TimeInForce}
        # the enum members every order names, looked up once (an Enum class attribute is several dict lookups)
        b = self.books
        self._buy, self._sell, self._market, self._limit = b.Side.Buy, b.Side.Sell, b.OrdType.Market, b.OrdType.Limit
        self._started = False
        strategy._runner = self

    # -- Agent -----------------------------------------------------------------------------------

    def role_name(self) -> str:
        return f"strategy[{self.config.name}]"

    def on_start(self) -> None:
        if self.subscription is None:
            self.subscription = self.aeron.add_subscription(
                self.config.md_channel, self.config.md_stream,
                on_unavailable_image=lambda image: self.decoder.tracker.forget(image.session_id))
        self.aeron_counters = StrategyCounters.start(self, self.aeron)
        self._started = True
        self.strategy.on_start()

    def do_work(self) -> int:
        work = self._flush() if self._pending else 0
        limit = self._limit
        work += self.gateway.poll(self._report_handler, limit) + self.subscription.poll(self._md_handler, limit)
        timers = self._timers
        if timers and timers[0][0] <= self.clock.time_ns():
            work += self._fire_timers()
        if self.aeron_counters is not None:
            self.aeron_counters.maybe_update()
        return work

    def on_close(self) -> None:
        if not self._started:
            return
        self._started = False
        self._guard(self.strategy.on_stop)
        if self.config.cancel_on_stop:
            for order in list(self.books.open_orders()):
                if not order.pending_cancel:
                    self.cancel(order)
            self._flush()
        if self.aeron_counters is not None:
            self.aeron_counters.close()
            self.aeron_counters = None

    def restore(self, reports: Any = (), positions: Any = None) -> int:
        """Recovery after a restart, before ``on_start``: take over the open orders the encoded
        ExecutionReports in ``reports`` describe (this strategy's ClOrdIds only; new ids continue
        above them) and set ``positions`` ({symbol: (signed quantity, cost[, realized])}, mantissa x
        quantity).  No callbacks: the strategy finds them in ``open_orders()`` / ``position()``.
        Returns how many orders were taken over.  A gateway that can tell (``recover(account)``
        returning ``(reports, positions)``) is asked by ``tickline strategy run``."""
        adopted = sum(self.books.adopt(r) is not None for r in reports)
        for symbol, value in (positions or {}).items():
            self.books.restore_position(symbol, *value)
        return adopted

    # -- requests --------------------------------------------------------------------------------

    def submit(self, symbol: str, buy: bool, quantity: int, price: int | None, tif: str) -> Order:
        if symbol not in self.symbols:
            raise ValueError(f"symbol not in the strategy's config: symbol={symbol!r} "
                             f"symbols={sorted(self.symbols)} fault=user")
        if (type(quantity) is not int and (isinstance(quantity, bool) or not isinstance(quantity, int))) or quantity <= 0:
            raise ValueError(f"quantity must be a whole number > 0: quantity={quantity!r} fault=user")
        if price is not None and type(price) is not int and (isinstance(price, bool) or not isinstance(price, int)):
            raise ValueError(f"price must be an int mantissa (value x 10^9, see tickline.feed.price) or None: "
                             f"price={price!r} fault=user")
        t = self._tif.get(tif)
        if t is None:
            raise ValueError(f"unknown time in force: tif={tif!r} known={sorted(self._tif)} fault=user")
        order, msg = self.books.new(symbol, self._buy if buy else self._sell, quantity, price,
                                    self._market if price is None else self._limit, t, self.clock.time_ns())
        self._send(msg, order, "new")
        return order

    def cancel(self, order: Order) -> bool:
        if not order.is_open or order.pending_cancel:
            return False
        return self._send(self.books.cancel(order, self.clock.time_ns()), order, "cancel")

    def replace(self, order: Order, price: int | None, quantity: int | None) -> bool:
        if not order.is_open or order.pending_cancel or order.pending_replace is not None:
            return False
        qty = order.quantity if quantity is None else quantity
        if isinstance(qty, bool) or not isinstance(qty, int) or qty <= order.filled:
            raise ValueError(f"replace quantity must be above what is filled: quantity={qty!r} "
                             f"filled={order.filled} fault=user")
        px = order.price if price is None else price
        return self._send(self.books.replace(order, px, qty, self.clock.time_ns()), order, "replace")

    def _send(self, msg: memoryview, order: Order, kind: str) -> bool:
        if not self._pending and self.gateway.send(msg):
            self.sent += 1
            return True
        if len(self._pending) < self.config.max_pending_sends:
            self._pending.append((bytes(msg), order, kind))
            return True
        self.denied += 1
        reason = f"send queue full: pending={len(self._pending)}"
        if kind == "new":
            self.books.deny(order, reason)
        elif kind == "cancel":
            order.pending_cancel = False
        else:
            order.pending_replace = None
        log.warning("request denied: fault=ours strategy=%s cl_ord_id=%s kind=%s %s",
                    self.config.name, order.cl_ord_id, kind, reason)
        return False

    def _flush(self) -> int:
        pending, send = self._pending, self.gateway.send
        n = 0
        while pending:
            if not send(pending[0][0]):
                self.send_retries += 1
                break
            pending.popleft()
            n += 1
        self.sent += n
        return n

    @property
    def pending_sends(self) -> int:
        return len(self._pending)

    # -- reports, timers, callbacks --------------------------------------------------------------

    def _on_report(self, buf: Any) -> None:
        ev = self.books.on_report(buf)
        if ev is not None:
            self.outcomes[ev.kind] += 1
            self._guard(self._callbacks[ev.kind], ev.order, ev.report)

    def set_timer(self, name: str, interval_ns: int, repeat: bool) -> None:
        if isinstance(interval_ns, bool) or not isinstance(interval_ns, int) or interval_ns <= 0:
            raise ValueError(f"timer interval must be > 0 ns: name={name!r} interval_ns={interval_ns!r} fault=user")
        self._timer_seq += 1
        self._timer_gen[name] = self._timer_seq
        heapq.heappush(self._timers, (self.clock.time_ns() + interval_ns, self._timer_seq, name,
                                      interval_ns if repeat else None))

    def cancel_timer(self, name: str) -> None:
        self._timer_gen.pop(name, None)

    def _fire_timers(self) -> int:
        now = self.clock.time_ns()
        timers, fired = self._timers, 0
        while timers and timers[0][0] <= now:
            due, gen, name, interval = heapq.heappop(timers)
            if self._timer_gen.get(name) != gen:
                continue  # cancelled or replaced
            if interval is not None:  # next due from now if it fell behind: no burst of catch-up calls
                heapq.heappush(timers, (max(due + interval, now + 1), gen, name, interval))
            else:
                del self._timer_gen[name]
            fired += 1
            self._guard(self.strategy.on_timer, name, now)
        self.timers_fired += fired
        return fired

    def _guard(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            self.callback_errors += 1
            if self.callback_errors <= 10 or self.callback_errors % 1000 == 0:
                log.exception("strategy callback raised: fault=ours strategy=%s callback=%s count=%d",
                              self.config.name, getattr(fn, "__name__", fn), self.callback_errors)

    def counters(self) -> dict[str, Any]:
        return {"md": self.decoder.counters.as_dict(), "orders": dict(self.books.counters), "sent": self.sent,
                "send_retries": self.send_retries, "pending_sends": len(self._pending), "denied": self.denied,
                "callback_errors": self.callback_errors, "timers_fired": self.timers_fired,
                "open_orders": sum(1 for _ in self.books.open_orders())}
