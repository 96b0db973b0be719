"""``tickline exchange-sim``: the exchange simulator as an Aeron service.

One agent: polls SBE orders from the order stream, runs them through
``ExchangeSim`` (price-time matching, ``auto-fill``, ``fill-only`` and ``rest`` per symbol),
and publishes the SBE execution reports / order rejects on the report stream.

Topology file (TOML), section ``[exchange_sim]``::

    [exchange_sim]
    dir = "/dev/shm/tickline-prod"   # media driver directory (or embedded_driver = true)
    order_channel = "aeron:ipc"
    order_stream_id = 1001           # what the gateway publishes orders on
    report_channel = "aeron:ipc"
    report_stream_id = 1002          # what the gateway subscribes to
    idle = "backoff"
    default_mode = "match"           # match | auto-fill | fill-only | rest
    modes = { AAPL = "auto-fill", MSFT = "rest" }
    duplicate_window = 100000        # ended ClOrdIDs remembered for duplicate detection (0 = none)
    md_stream_id = 1003              # publish each book's top (TopOfBook, schemas/market_data.xml) here
    md_channel = "aeron:ipc"         #   whenever an order changes it (0 / absent: not published)
    resend = "reject"                # reject | replay (see below)

``resend = "replay"``: the order stream is one participant's (the sequencer's venue adapter,
whose ClOrdIDs are global sequence numbers, unique for good), whichever Aeron publication
carries it, so a restarted adapter is the same participant; a request whose ClOrdID the venue
has seen is answered with that ClOrdID's reports again, never executed twice
(``ExchangeSim(replay_resends=True)``).  ``"reject"`` (the default): each order publication is
a participant of its own and a reused ClOrdID is rejected as a duplicate.

Every scalar can be overridden by ``TICKLINE_EXCHANGE_SIM_<KEY>``.

Each order publication (one per gateway) is one participant of the venue:
books are shared, ClOrdIDs are unique per participant.  State is in memory;
a restarted simulator starts with empty books.  A report the report stream
can't take (no gateway subscribed, back pressure) stays queued, in order,
and is retried every duty cycle; nothing is dropped.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from tickline.fix_gateway.aeron_bridge import AeronLink, AeronStreams, offer_bounded
from tickline.fix_gateway.bridge import OrderRequest, VenueReport
from tickline.fix_gateway.config import ConfigError, from_env, read_section
from .counters import OUTCOME_BY_EXEC_TYPE as _OUTCOME, ExchangeCounters
from .exchange_sim import DEFAULT_DUPLICATE_WINDOW, MODES, ExchangeSim
from tickline.fix_gateway.sbe_orders import OrderCodec, SbeDecodeError

__all__ = ["ExchangeSimConfig", "ExchangeSimAgent", "load_exchange_config", "run_exchange_sim"]

_STREAM_KEYS = {f.name for f in dataclasses.fields(AeronStreams)}


@dataclass(frozen=True)
class ExchangeSimConfig:
    streams: AeronStreams = field(default_factory=AeronStreams)
    idle: str = "backoff"
    default_mode: str = "match"
    modes: dict[str, str] = field(default_factory=dict)
    poll_limit: int = 64
    shutdown_timeout_s: float = 2.0
    duplicate_window: int = DEFAULT_DUPLICATE_WINDOW
    # its book as market data (tickline.feed's publisher): top of book of a symbol
    # whenever an order changes it, on md_channel#md_stream_id (0: not published)
    md_channel: str = "aeron:ipc"
    md_stream_id: int = 0
    resend: str = "reject"  # reject | replay: see the module's doc

    def __post_init__(self) -> None:
        if self.resend not in ("reject", "replay"):
            raise ConfigError(f"bad resend: fault=config key=exchange_sim.resend value={self.resend!r} allowed=reject|replay")
        if not isinstance(self.duplicate_window, int) or self.duplicate_window < 0:
            raise ConfigError(f"duplicate_window must be a whole number >= 0: fault=config "
                              f"key=exchange_sim.duplicate_window value={self.duplicate_window!r}")
        for sym, m in {**self.modes, "*": self.default_mode}.items():
            if m not in MODES:
                raise ConfigError(f"bad venue mode: fault=config key=exchange_sim.modes symbol={sym} value={m!r} "
                                  f"allowed={'|'.join(MODES)}")
        if not isinstance(self.md_stream_id, int) or isinstance(self.md_stream_id, bool) or not -(2 ** 31) <= self.md_stream_id < 2 ** 31:
            raise ConfigError(f"stream id must be a 32-bit integer: fault=config key=exchange_sim.md_stream_id value={self.md_stream_id!r}")
        if self.poll_limit < 1:
            raise ConfigError(f"poll_limit must be >= 1: fault=config key=exchange_sim.poll_limit value={self.poll_limit}")


def _driver_dir(path: str) -> dict[str, str]:
    import tomllib

    try:
        with open(path, "rb") as f:
            d = tomllib.load(f).get("driver")
    except (OSError, tomllib.TOMLDecodeError):
        return {}  # read_section has reported what is wrong with the file
    return {"dir": d["dir"]} if isinstance(d, dict) and isinstance(d.get("dir"), str) else {}


def load_exchange_config(path: str, env: dict[str, str] | None = None) -> ExchangeSimConfig:
    """Read and validate ``[exchange_sim]``; ``ConfigError`` names file and key."""
    t = read_section(path, "exchange_sim")
    if "dir" not in t:  # a whole deployment's topology: the media driver is [driver] dir, spelled once
        t = {**t, **_driver_dir(path)}
    top = {"idle", "default_mode", "poll_limit", "shutdown_timeout_s", "duplicate_window", "md_channel", "md_stream_id",
           "resend"}
    for k in t:
        if k not in top | _STREAM_KEYS | {"modes"}:
            raise ConfigError(f"unknown key: fault=config key=exchange_sim.{k} "
                              f"allowed={','.join(sorted(top | _STREAM_KEYS | {'modes'}))}")
    modes = t.get("modes", {})
    if not isinstance(modes, dict):
        raise ConfigError(f"modes must be a table symbol = mode: fault=config key=exchange_sim.modes path={path}")
    try:
        streams = from_env(AeronStreams, "TICKLINE_EXCHANGE_SIM_", env, **{k: v for k, v in t.items() if k in _STREAM_KEYS})
        return from_env(ExchangeSimConfig, "TICKLINE_EXCHANGE_SIM_", env, streams=streams, modes=dict(modes),
                        **{k: v for k, v in t.items() if k in top})
    except TypeError as e:
        raise ConfigError(f"bad topology file: fault=config path={path} error={e}") from None


class ExchangeSimAgent:
    """The venue on Aeron.  ``aeron`` is a connected ``tickline.transport.Aeron``.

    Not thread safe: run on one thread (an ``AgentRunner``, an ``AgentInvoker`` or
    ``run_exchange_sim``).  Counters: ``orders``, ``reports``, ``bad`` (fragments
    that were not orders; the sender's fault, kept in ``errors``).
    """

    def __init__(self, aeron: Any, config: ExchangeSimConfig, clock_ns: Callable[[], int] = time.time_ns) -> None:
        from tickline.transport import FragmentAssembler

        self.config = config
        s = config.streams
        self.venue = ExchangeSim(clock_ns, config.modes, config.default_mode, config.duplicate_window,
                                 replay_resends=config.resend == "replay")
        self._one_participant = config.resend == "replay"
        self.sub = aeron.add_subscription(s.order_channel, s.order_stream_id)
        self.pub = aeron.add_exclusive_publication(s.report_channel, s.report_stream_id)
        self.in_codec, self.out_codec = OrderCodec(), OrderCodec()
        self._assembler = FragmentAssembler(self._on_fragment)
        self.orders = self.reports = self.bad = 0
        self.outcomes: collections.Counter[str] = collections.Counter()  # reports published, by outcome
        self._aeron = aeron
        self.aeron_counters: ExchangeCounters | None = None  # from on_start (counters.py)
        self.errors: collections.deque[str] = collections.deque(maxlen=32)
        self.md: Any = None
        self.md_pub: Any = None
        self._dirty: set[str] = set()
        self._published_top: dict[str, tuple] = {}
        self._clock_ns = clock_ns
        self.md_published = 0
        if config.md_stream_id:
            try:
                from tickline.feed.publisher import MarketDataPublisher  # the application's feed package
            except ImportError as exc:
                raise ConfigError(f"publishing the book needs the tickline.feed package: fault=config "
                                  f"key=exchange_sim.md_stream_id value={config.md_stream_id} error={exc}") from None

            self.md_pub = aeron.add_exclusive_publication(config.md_channel, config.md_stream_id)
            self.md = MarketDataPublisher(self.md_pub, clock_ns)

    def role_name(self) -> str:
        return "exchange-sim"

    def on_start(self) -> None:
        self.aeron_counters = ExchangeCounters.start(self, self._aeron)

    def on_close(self) -> None:
        if self.aeron_counters is not None:
            self.aeron_counters.close()
            self.aeron_counters = None
        self.sub.close()
        self.pub.close()
        if self.md_pub is not None:
            self.md_pub.close()

    def _publish_books(self) -> int:
        """Top of book of every symbol an order touched since the last call, when it changed.
        A book the publication cannot take now (back pressure, no subscriber) stays dirty."""
        n = 0
        for sym in list(self._dirty):
            top = self.venue.book_top(sym)
            if self._published_top.get(sym) == top:
                self._dirty.discard(sym)
                continue
            bid, bq, ask, aq = top
            if self.md.top_of_book(sym, bid, bq, ask, aq, self._clock_ns()):
                self._published_top[sym] = top
                self._dirty.discard(sym)
                self.md_published += 1
                n += 1
        return n

    def _on_fragment(self, buffer: Any, header: Any) -> None:
        try:
            msg = self.in_codec.decode(buffer)
        except SbeDecodeError as e:
            self.bad += 1
            self.errors.append(f"{e} aeron_session={header.session_id}")
            return
        if not isinstance(msg, OrderRequest.__args__):  # type: ignore[attr-defined]
            self.bad += 1
            self.errors.append(f"a report on the order stream: fault=remote type={type(msg).__name__} "
                               f"aeron_session={header.session_id}")
            return
        self.orders += 1
        self.venue.offer("orders" if self._one_participant else f"aeron-{header.session_id}", msg)
        if self.md is not None:
            self._dirty.add(msg.symbol)

    def _publish(self, session_id: str | None, report: VenueReport) -> bool:
        view, n = self.out_codec.encode(report)
        s = self.config.streams
        if offer_bounded(self.pub, view, n, s.offer_max_attempts, s.offer_timeout_us) > 0:
            self.reports += 1
            self.outcomes[_OUTCOME.get(getattr(report, "exec_type", None), "cancel_rejected")] += 1  # outcome_of, inline
            return True
        return False  # stays queued in the venue, first in line

    def do_work(self) -> int:
        # reports first: a venue that can't publish stops taking new orders (back pressure to the gateway)
        work = self.venue.poll(self._publish, self.config.poll_limit)
        if self.venue.pending == 0:
            work += int(self.sub.poll(self._assembler, self.config.poll_limit))
        if self._dirty:
            work += self._publish_books()
        if self.aeron_counters is not None:
            self.aeron_counters.maybe_update()
        return work


def run_exchange_sim(config: ExchangeSimConfig, stop: threading.Event,
                     on_running: Callable[[ExchangeSimAgent], object] | None = None) -> ExchangeSimAgent:
    """Run the service on this thread until ``stop`` is set; then publish what is queued (bounded) and close."""
    from tickline.transport.idle import idle_strategy_from_name

    link = AeronLink(config.streams, "tickline-exchange-sim")
    try:
        agent = ExchangeSimAgent(link.aeron, config)
        idle = idle_strategy_from_name(config.idle)
        agent.on_start()
        if on_running is not None:
            on_running(agent)
        try:
            while not stop.is_set():
                idle.idle(agent.do_work())
            deadline = time.monotonic() + config.shutdown_timeout_s
            while agent.venue.pending and agent.pub.is_connected and time.monotonic() < deadline:
                idle.idle(agent.venue.poll(agent._publish, config.poll_limit))
        finally:
            agent.on_close()
        return agent
    finally:
        link.close()
