"""The venue adapter: takes the sequencer's orders to the venue exactly once,
and the venue's execution reports back into the cluster.

A cluster client of the sequencer service (``tickline.sequencer``): it keeps
one ``VenuePoll(after)`` outstanding, where ``after`` is the last global
sequence it has handed to the venue (``-1`` at start: the cluster resumes from
where the previous adapter got to), and publishes each sequenced order on the
exchange's order stream (Aeron), in sequence order.  Across a leader change
the cluster client retries the poll to the new leader, which answers it from
the replicated state (or its answer cache): an order that arrives twice
(sequence at or below the highest already taken) is counted in
``duplicates_suppressed`` and never published again, so the venue sees every
order once.

A kill -9 of the adapter loses nothing and executes nothing twice: a starting
adapter's first poll (``after=-1``) is answered with every message the cluster
has handed to the venue but holds no end for (its predecessor may have sent it
without the reports coming back, or the reports were published while no
adapter listened), and ``last``, where the sequence goes on.  The adapter
resends those; the exchange (``[exchange_sim] resend = "replay"``) knows them
by ClOrdID (the global sequence) and answers each with the reports it already
had, which the cluster applies once by ExecID.  The venue's reports (``ExecutionReport``, ``OrderReject`` on the
report stream) go into the cluster as they are, one cluster message each:
retried until the cluster answers, so none is lost to a leader change.

Bytes from the report stream are hostile: a fragment that is not an order
report is counted in ``bad`` (with the reason in ``errors``), never forwarded.

Topology: ``[venue]`` (``poll_limit``, ``max_orders``), the exchange's
streams from ``[exchange_sim]``, the cluster from ``[cluster]``.
"""

from __future__ import annotations

import collections
import os
import time
from dataclasses import dataclass
from typing import Any, Callable

from tickline.cluster.aeron_io import AeronClusterClient
from tickline.topology.run import write_status
from tickline.fix_gateway.aeron_bridge import AeronStreams
from tickline.fix_gateway.bridge import ExecutionReport, OrderReject
from tickline.fix_gateway.sbe_orders import OrderCodec, SbeDecodeError
from tickline.sequencer import protocol as P
from tickline.transport import FragmentAssembler

__all__ = ["VenueConfig", "VenueAdapter", "load_venue_config"]


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class VenueConfig:
    poll_limit: int = 64
    max_orders: int = 256  # sequenced orders asked for per poll
    max_unanswered_reports: int = 4096  # reports in flight into the cluster before the adapter stops reading more
    status_file: str = ""  # where the adapter writes its counters (JSON), for tickline up / demo
    cluster_credentials_file: str = ""  # its cluster credentials: a 0600 file holding principal:secret

    def __post_init__(self) -> None:
        for k in ("poll_limit", "max_orders", "max_unanswered_reports"):
            v = getattr(self, k)
            if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 65535:
                raise ConfigError(f"bad venue setting: fault=user key=venue.{k} value={v!r} expected=1..65535")


def load_venue_config(path: str) -> VenueConfig:
    import tomllib

    with open(path, "rb") as f:
        section = tomllib.load(f).get("venue", {})
    known = {"poll_limit", "max_orders", "max_unanswered_reports", "status_file", "cluster_credentials_file"}
    for k in section:
        if k not in known:
            raise ConfigError(f"unknown key: fault=user file={path} key=venue.{k} expected=one of {','.join(sorted(known))}")
    return VenueConfig(**section)


class SequencedOrders:
    """The adapter's exactly-once rule, sans-IO: batches of (global sequence, order) from
    the cluster in, the orders to publish out, each sequence once and in order.

    A batch may repeat what an earlier one carried (a poll retried to a new leader is
    answered from the replicated state): every sequence at or below the highest taken
    is dropped and counted in ``duplicates_suppressed``.  A jump forward (never expected:
    the cluster's queue holds every sequence) is taken, and counted in ``gaps``.

    The first batch (nothing taken yet) is the resume: items at or below its ``last``
    are resends of what a previous adapter took (only the unfinished ones, so they
    may skip: no gap; the cluster counts them in ``venue_resent``); the sequence goes on
    after ``last``."""

    def __init__(self) -> None:
        self.taken = -1  # the highest sequence taken (-1: none yet; the cluster says where to resume)
        self.sent = -1  # the highest sequence published
        self.queue: collections.deque[tuple[int, bytes]] = collections.deque()
        self.duplicates_suppressed = self.gaps = self.repeated = 0
        self.errors: collections.deque[str] = collections.deque(maxlen=32)

    def on_batch(self, items: list[tuple[int, Any]], last: int = -1) -> None:
        resume = last if self.taken < 0 else -1
        for seq, msg in items:
            if seq <= self.taken:
                self.duplicates_suppressed += 1
                continue
            if self.taken >= 0 and seq > resume and seq != self.taken + 1:
                self.gaps += 1
                self.errors.append(f"sequence gap from the cluster: fault=peer expected={self.taken + 1} got={seq}")
            self.taken = seq
            self.queue.append((seq, bytes(msg)))
        if resume > self.taken:
            self.taken = resume

    def publish(self, offer: Callable[[bytes], bool]) -> int:
        """Hand queued orders to ``offer`` in order until it refuses one (it stays first)."""
        n = 0
        q = self.queue
        while q:
            seq, msg = q[0]
            if not offer(msg):
                break
            q.popleft()
            if seq <= self.sent:
                self.repeated += 1  # the invariant's alarm: never expected (resends come first, in order)
            self.sent = seq
            n += 1
        if not q and self.taken > self.sent:
            self.sent = self.taken  # a resume's ``last``: everything up to it is at the venue
        return n


class VenueAdapter:
    """An agent (``do_work``).  Not thread safe."""

    def __init__(self, members: dict[int, tuple[str, int]], streams: AeronStreams, config: VenueConfig = VenueConfig(), *,
                 aeron_dir: str | None = None, retry_timeout: int = 200, credentials: bytes = b"") -> None:
        self.config = config
        self.cluster = AeronClusterClient(members, aeron_base=aeron_dir, retry_timeout=retry_timeout, credentials=credentials)
        aeron = self.cluster.link.stack.aeron
        self.pub = aeron.add_exclusive_publication(streams.order_channel, streams.order_stream_id)
        self.sub = aeron.add_subscription(streams.report_channel, streams.report_stream_id)
        self._assembler = FragmentAssembler(self._on_report)
        self.codec = OrderCodec()
        self._poll_corr: int | None = None
        self.orders = SequencedOrders()
        self.orders_sent = self.reports = self.bad = 0
        self.errors: collections.deque[str] = collections.deque(maxlen=32)
        self._status_due = 0.0

    def role_name(self) -> str:
        return "venue-adapter"

    def on_start(self) -> None:
        pass

    def do_work(self) -> int:
        cl = self.cluster
        work = 0
        for corr, payload in cl.poll():
            work += 1
            if corr == self._poll_corr:
                self._poll_corr = None
                self._on_batch(payload)
        sent = self.orders.publish(lambda m: self.pub.offer(m) > 0)
        self.orders_sent += sent
        work += sent
        if self._poll_corr is None and not self.orders.queue and cl.client.connected:
            self._poll_corr = cl.offer(P.encode_venue_poll(self.orders.sent, self.config.max_orders))
        if len(cl.client.outstanding) < self.config.max_unanswered_reports:
            work += int(self.sub.poll(self._assembler, self.config.poll_limit))
        if self.config.status_file:
            now = time.monotonic()
            if now >= self._status_due:
                self._status_due = now + 0.5
                self.write_status()
        return work + cl.work

    def _on_batch(self, payload: bytes) -> None:
        try:
            last, items = P.decode_batch(payload)
        except P.ProtocolError as exc:
            self.bad += 1
            self.errors.append(str(exc))
            return
        self.orders.on_batch(items, last)

    def _on_report(self, buffer: Any, header: Any) -> None:
        try:
            msg = self.codec.decode(buffer)
        except SbeDecodeError as exc:
            self.bad += 1
            self.errors.append(f"{exc} aeron_session={header.session_id}")
            return
        if not isinstance(msg, (ExecutionReport, OrderReject)):
            self.bad += 1
            self.errors.append(f"an order on the report stream: fault=peer type={type(msg).__name__} aeron_session={header.session_id}")
            return
        self.reports += 1
        self.cluster.offer(bytes(buffer))

    def stats(self) -> dict[str, Any]:
        o = self.orders
        return {"role": "venue-adapter", "pid": os.getpid(), "orders_sent": self.orders_sent, "reports": self.reports,
                "last_seq": o.sent, "duplicates_suppressed": o.duplicates_suppressed,
                "repeated_to_venue": o.repeated, "gaps": o.gaps, "bad": self.bad,
                "errors": (list(self.errors) + list(o.errors))[-5:], "messages": self.orders_sent + self.reports}

    def write_status(self) -> None:
        write_status(self.config.status_file, self.stats())

    def on_close(self) -> None:
        if self.config.status_file:
            self.write_status()
        self.cluster.close()
