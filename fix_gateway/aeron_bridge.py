"""The bridge's ``OrderSink`` / ``ExecutionSource`` on Aeron streams.

Orders (NewOrder / CancelOrder / ReplaceOrder of ``schemas/orders.xml``) go
out as SBE on ``order_channel``/``order_stream_id``; ExecutionReport and
OrderReject come back on ``report_channel``/``report_stream_id``.

Nothing is dropped silently: ``AeronOrderSink.offer`` retries back pressure,
admin actions and "not connected" within the caller's duty cycle, bounded by
``offer_max_attempts`` and ``offer_timeout_us``; if the order still isn't on
the stream it returns False and the ``FixBridge`` answers the FIX message with
a BusinessMessageReject (380=4 ApplicationNotAvailable: the case the FIX spec
keeps BusinessMessageReject for) and reports it.  The failure is also counted
here by ``OfferResult`` name (``failed``).

Reports carry no FIX session id: the bridge routes them by ClOrdID, so
ClOrdIDs must be unique across the sessions of one gateway (the venue sees
one participant per gateway publication and rejects a reused ClOrdID as a
duplicate).

Not thread safe: one instance per agent thread.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass
from typing import Any, Callable

from .bridge import OrderRequest, VenueReport
from .config import ConfigError
from .sbe_orders import OrderCodec, SbeDecodeError

__all__ = ["AeronStreams", "AeronOrderSink", "AeronExecutionSource", "AeronLink", "offer_bounded"]


@dataclass(frozen=True)
class AeronStreams:
    """Where the gateway and the exchange simulator meet; both read the same keys."""

    dir: str = ""                       # media driver directory ("" = Aeron's default)
    embedded_driver: bool = False       # start a C media driver in this process, at ``dir``
    order_channel: str = "aeron:ipc"
    order_stream_id: int = 1001
    report_channel: str = "aeron:ipc"
    report_stream_id: int = 1002
    offer_max_attempts: int = 1000      # per message, within one duty cycle
    offer_timeout_us: int = 2000        # per message, within one duty cycle
    driver_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        for key in ("order_stream_id", "report_stream_id"):
            v = getattr(self, key)
            if not isinstance(v, int) or isinstance(v, bool) or not -(2 ** 31) <= v < 2 ** 31:
                raise ConfigError(f"stream id must be a 32-bit integer: fault=config key={key} value={v!r}")
        if self.order_channel == self.report_channel and self.order_stream_id == self.report_stream_id:
            raise ConfigError(f"orders and reports need different streams: fault=config key=report_stream_id "
                              f"value={self.report_stream_id} channel={self.report_channel}")
        if self.offer_max_attempts < 1 or self.offer_timeout_us < 0:
            raise ConfigError(f"offer bounds must be positive: fault=config key=offer_max_attempts/offer_timeout_us "
                              f"value={self.offer_max_attempts}/{self.offer_timeout_us}")
        if self.embedded_driver and not self.dir:
            raise ConfigError("an embedded driver needs a directory other processes can find: fault=config key=dir")
        from tickline.transport.uri import ChannelError, ChannelUri

        for key in ("order_channel", "report_channel"):
            try:
                ChannelUri.parse(getattr(self, key), strict=False)
            except ChannelError as e:
                raise ConfigError(f"bad channel: fault=config key={key} value={getattr(self, key)!r} error={e}") from None

    @classmethod
    def from_table(cls, where: str, table: dict[str, Any]) -> "AeronStreams":
        import dataclasses

        allowed = {f.name for f in dataclasses.fields(cls)}
        for k in table:
            if k not in allowed:
                raise ConfigError(f"unknown key: fault=config key={where}.{k} allowed={','.join(sorted(allowed))}")
        return cls(**table)


def offer_bounded(pub: Any, view: Any, length: int, max_attempts: int, timeout_us: int,
                  wait: Callable[[], object] | None = None) -> int:
    """Offer until accepted or the bounds run out; the last result (> 0: the new position).

    ``wait`` is called between attempts (an invoker-mode driver/client turns there).
    Raises ``PublicationError`` for a message the publication can never take.
    """
    from tickline.transport import OfferResult

    deadline = time.perf_counter_ns() + timeout_us * 1000
    r = pub.offer(view, 0, length)
    attempts = 1
    while r < 0 and attempts < max_attempts and r not in (OfferResult.CLOSED, OfferResult.MAX_POSITION_EXCEEDED):
        if time.perf_counter_ns() >= deadline:
            break
        if wait is not None:
            wait()
        r = pub.offer(view, 0, length)
        attempts += 1
    return int(r)


class AeronLink:
    """One Aeron client (and, if configured, an embedded driver) for a process's streams."""

    def __init__(self, streams: AeronStreams, client_name: str) -> None:
        from tickline.transport import Aeron, MediaDriver

        self.streams = streams
        self.driver = MediaDriver.embedded(streams.dir) if streams.embedded_driver else None
        try:
            self.aeron = Aeron(streams.dir or None, timeout=streams.driver_timeout_s, client_name=client_name)
        except BaseException:
            if self.driver is not None:
                self.driver.close()
            raise

    def close(self) -> None:
        self.aeron.close()
        if self.driver is not None:
            self.driver.close()


class AeronOrderSink:
    """``OrderSink`` publishing SBE orders; ``offer`` returns False only after its bounded retries."""

    def __init__(self, aeron: Any, streams: AeronStreams) -> None:
        self.streams = streams
        self.pub = aeron.add_exclusive_publication(streams.order_channel, streams.order_stream_id)
        self.codec = OrderCodec()
        self.sent = 0
        self.failed: collections.Counter[str] = collections.Counter()
        self.last_failure = ""  # the OfferResult name of the last refused offer (the bridge's reject text says it)

    @property
    def is_connected(self) -> bool:
        return bool(self.pub.is_connected)

    def offer(self, session_id: str, request: OrderRequest) -> bool:
        from tickline.transport import OfferResult

        view, n = self.codec.encode(request)
        r = offer_bounded(self.pub, view, n, self.streams.offer_max_attempts, self.streams.offer_timeout_us)
        if r > 0:
            self.sent += 1
            return True
        try:
            self.last_failure = OfferResult(r).name
        except ValueError:
            self.last_failure = f"result_{r}"
        self.failed[self.last_failure] += 1
        return False

    def close(self) -> None:
        self.pub.close()


class AeronExecutionSource:
    """``ExecutionSource`` decoding SBE ExecutionReport / OrderReject from the report stream.

    A fragment that is not a report (garbage, another schema, an order) is
    counted in ``bad`` and its error kept in ``errors`` (the sender's fault);
    it never stops the poll.
    """

    def __init__(self, aeron: Any, streams: AeronStreams) -> None:
        from tickline.transport import FragmentAssembler

        self.sub = aeron.add_subscription(streams.report_channel, streams.report_stream_id)
        self.codec = OrderCodec()
        self.received = 0
        self.bad = 0
        self.errors: collections.deque[str] = collections.deque(maxlen=32)
        self._handler: Callable[[str | None, VenueReport], None] = lambda s, r: None
        self._assembler = FragmentAssembler(self._on_fragment)

    def _on_fragment(self, buffer: Any, header: Any) -> None:
        try:
            msg = self.codec.decode(buffer)
        except SbeDecodeError as e:
            self.bad += 1
            self.errors.append(str(e))
            return
        if isinstance(msg, OrderRequest.__args__):  # type: ignore[attr-defined]
            self.bad += 1
            self.errors.append(f"an order on the report stream: fault=remote type={type(msg).__name__}")
            return
        self.received += 1
        self._handler(None, msg)  # type: ignore[arg-type]

    def poll(self, handler: Callable[[str | None, VenueReport], None], limit: int) -> int:
        self._handler = handler
        return int(self.sub.poll(self._assembler, limit))

    def close(self) -> None:
        self.sub.close()
