"""Consuming market data: validation, per-stream sequence checks, dispatch to a listener.

Three layers, each usable alone:

- ``SequenceTracker`` (sans-IO): per source (an Aeron image, i.e. one
  publisher's session), is this ``seqNum`` the next one, a gap (some were
  never seen: still delivered), or a duplicate (already seen or older:
  dropped)?  It keeps counters and the last few gaps and duplicates exactly.
- ``MarketDataDecoder`` (sans-IO): takes one message's bytes, checks them
  (header, schema, template, lengths, group bounds, enum values, seqNum),
  wraps the generated flyweight and calls the listener's ``on_top_of_book`` /
  ``on_trade`` / ``on_book`` / ``on_order_update`` / ``on_snapshot`` (whichever
  it has) with it.  A malformed message is counted and logged with
  ``fault=peer`` and dropped; it never raises.  An exception from a listener
  is counted and logged with ``fault=ours`` and the next message goes on.
- ``MarketDataSubscriber``: an Agent polling a subscription into a decoder.

The flyweight a listener gets wraps the log buffer: valid only during the
call (copy what you keep).  Everything a listener can read on it was checked,
so reading a field never raises for a peer's bytes.  Not thread safe: one
decoder per polling thread.
"""

from __future__ import annotations

import collections
import logging
import struct
from dataclasses import asdict, dataclass
from typing import Any, Callable, NamedTuple

from . import sbe

__all__ = ["SequenceTracker", "Gap", "FeedCounters", "MarketDataDecoder", "MarketDataSubscriber"]

log = logging.getLogger("tickline.feed")

_HEADER = struct.Struct("<HHHH")
_GROUP = struct.Struct("<HH")
_ENUMS = {  # template id -> ((raw attribute, allowed raw values), ...): checked before delivery
    2: (("side_raw", frozenset(b"12")), ("action_raw", frozenset(b"AMD"))),
    3: (("aggressor_side_raw", frozenset((1, 2, 255))),),
}
MAX_SOURCES = 1024  # sources tracked at once; the oldest is forgotten beyond this


class Gap(NamedTuple):
    source: int
    first: int  # first missing seqNum
    last: int  # last missing seqNum


class SequenceTracker:
    """Per-source sequence numbers: in order, gap, or duplicate.

    The first message from a source sets its expectation (a late joiner starts
    wherever the stream is).  ``check`` returns 0 for the expected number (or a
    source's first), ``n > 0`` when ``n`` numbers were skipped (the message is
    still good: deliver it), and -1 for a number at or below one already seen
    (a duplicate: drop it).  ``forget(source)`` when its image goes away.
    """

    def __init__(self, history: int = 64) -> None:
        self.expected: dict[int, int] = {}
        self.gaps: collections.deque[Gap] = collections.deque(maxlen=history)
        self.duplicates: collections.deque[tuple[int, int]] = collections.deque(maxlen=history)
        self.gap_count = 0
        self.missing = 0
        self.duplicate_count = 0

    def check(self, source: int, seq: int) -> int:
        expected = self.expected.get(source)
        if expected is None or seq == expected:
            if expected is None and len(self.expected) >= MAX_SOURCES:
                del self.expected[next(iter(self.expected))]
            self.expected[source] = seq + 1
            return 0
        if seq > expected:
            self.expected[source] = seq + 1
            self.gaps.append(Gap(source, expected, seq - 1))
            self.gap_count += 1
            self.missing += seq - expected
            return seq - expected
        self.duplicates.append((source, seq))
        self.duplicate_count += 1
        return -1

    def forget(self, source: int) -> None:
        self.expected.pop(source, None)


@dataclass
class FeedCounters:
    received: int = 0  # messages handed to the decoder
    delivered: int = 0  # passed to the listener
    filtered: int = 0  # good, but for a symbol the listener did not ask for
    ignored: int = 0  # good, but the listener has no method for this message
    malformed: int = 0  # refused: fault=peer
    unsequenced: int = 0  # version-0 messages (no seqNum): delivered without a sequence check
    duplicates: int = 0
    gaps: int = 0  # gap events
    missing: int = 0  # sequence numbers never seen, over all gaps
    listener_errors: int = 0  # exceptions raised by the listener: fault=ours

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class MarketDataDecoder:
    """Checks and dispatches market-data messages to ``listener`` (see the module doc).

    ``symbols``: deliver only these (None: all).  ``name``: for logs.
    ``listener.on_gap(source, first, last)`` is called, if it exists, before the
    message that revealed the gap.
    """

    def __init__(self, listener: Any, *, symbols: Any = None, name: str = "md") -> None:
        m = self.m = sbe.md()
        self.name = name
        self.symbols = None if symbols is None else frozenset(symbols)
        self.counters = FeedCounters()
        self.tracker = SequenceTracker()
        self._schema_id = m.SCHEMA_ID
        self._expected = self.tracker.expected
        self._book_entry = m.OrderBookBidsDecoder.BLOCK_LENGTH
        # template id -> (decoder, block length at this version, listener method or None, extra check or None)
        self._by_template: dict[int, tuple[Any, int, Any, Any]] = {}
        for cls, method, check in ((m.TopOfBookDecoder, "on_top_of_book", None),
                                   (m.OrderUpdateDecoder, "on_order_update", self._check_enums),
                                   (m.TradeDecoder, "on_trade", self._check_enums),
                                   (m.OrderBookDecoder, "on_book", self._check_groups),
                                   (m.SnapshotDecoder, "on_snapshot", None)):
            self._by_template[cls.TEMPLATE_ID] = (cls(), cls.BLOCK_LENGTH, getattr(listener, method, None), check)
        self._on_gap: Callable[[int, int, int], Any] | None = getattr(listener, "on_gap", None)

    def on_fragment(self, buffer: Any, header: Any) -> None:
        """An Aeron fragment handler: the source is the fragment's session."""
        self.on_message(buffer, header.session_id)

    def on_message(self, buf: Any, source: int = 0) -> None:
        """Check one message and hand it to the listener (see the class doc); never raises."""
        # The common case (a well-formed TopOfBook, next in sequence) takes the straight path;
        # everything else branches off to the helpers below.
        c = self.counters
        c.received += 1
        n = len(buf)
        if n < 8:
            return self._malformed(source, f"shorter than the message header: length={n}")
        block_length, tid, schema_id, version = _HEADER.unpack_from(buf, 0)
        entry = self._by_template.get(tid) if schema_id == self._schema_id else None
        if entry is None:
            return self._malformed(source, f"not a market data message: schema_id={schema_id} template_id={tid}"
                                   if schema_id != self._schema_id else f"unknown template: template_id={tid}")
        dec, full_block, method, check = entry
        if block_length < (full_block if version >= 1 else full_block - 8) or 8 + block_length > n:
            # (version 0 had no seqNum: 8 bytes shorter)
            return self._malformed(source, f"bad block: template_id={tid} version={version} "
                                           f"block_length={block_length} length={n}")
        if check is not None:
            reason = check(tid, buf, n, block_length, None)
            if reason is not None:
                return self._malformed(source, reason)
        d = dec.wrap(buf, 8, block_length, version)
        if check is not None:
            reason = check(tid, buf, n, block_length, d)
            if reason is not None:
                return self._malformed(source, reason)
        seq = d.seq_num
        expected = self._expected
        if seq is None or expected.get(source) != seq:
            if not self._sequence(source, seq, tid):
                return None
        else:
            expected[source] = seq + 1
        if self.symbols is not None and d.symbol not in self.symbols:
            c.filtered += 1
            return None
        if method is None:
            c.ignored += 1
            return None
        c.delivered += 1
        try:
            method(d)
        except Exception:
            self._listener_error(method)
        return None

    def _sequence(self, source: int, seq: int | None, tid: int) -> bool:
        """Everything but the next number in sequence: whether to deliver the message."""
        c = self.counters
        if seq is None:
            c.unsequenced += 1
            return True
        if seq == 0:
            self._malformed(source, f"seqNum=0: template_id={tid}")
            return False
        r = self.tracker.check(source, seq)
        if r < 0:
            c.duplicates += 1
            return False
        if r > 0:
            c.gaps += 1
            c.missing += r
            log.warning("market data gap: fault=peer stream=%s source=%d first_missing=%d last_missing=%d",
                        self.name, source, seq - r, seq - 1)
            if self._on_gap is not None:
                self._call(self._on_gap, source, seq - r, seq - 1)
        return True

    def _check_groups(self, tid: int, buf: Any, n: int, block_length: int, d: Any) -> str | None:
        """OrderBook: both groups' dimensions and entries lie inside the message (before wrapping)."""
        if d is not None:
            return None
        end = 8 + block_length
        for group in ("bids", "asks"):
            if end + 4 > n:
                return f"truncated OrderBook: group={group} length={n}"
            entry_length, count = _GROUP.unpack_from(buf, end)
            if entry_length < self._book_entry:
                return f"bad OrderBook group: group={group} block_length={entry_length}"
            end += 4 + entry_length * count
            if end > n:
                return f"truncated OrderBook: group={group} count={count} needs={end} length={n}"
        return None

    def _check_enums(self, tid: int, buf: Any, n: int, block_length: int, d: Any) -> str | None:
        """Trade, OrderUpdate: enum fields hold one of their values (after wrapping)."""
        if d is None:
            return None
        for attr, allowed in _ENUMS[tid]:
            raw = getattr(d, attr)
            if raw not in allowed:
                return f"bad enum value: template_id={tid} field={attr[:-4]} value={raw}"
        return None

    def _listener_error(self, fn: Any) -> None:
        self.counters.listener_errors += 1
        if self.counters.listener_errors <= 10 or self.counters.listener_errors % 1000 == 0:
            log.exception("market data listener raised: fault=ours stream=%s listener=%s count=%d",
                          self.name, getattr(fn, "__qualname__", fn), self.counters.listener_errors)

    def _call(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            self._listener_error(fn)

    def _malformed(self, source: int, reason: str) -> None:
        c = self.counters
        c.malformed += 1
        if c.malformed <= 10 or c.malformed % 1000 == 0:  # a flood of bad messages must not flood the log
            log.warning("malformed market data: fault=peer stream=%s source=%d %s count=%d",
                        self.name, source, reason, c.malformed)


class MarketDataSubscriber:
    """An Agent: polls ``channel``/``stream`` on ``aeron`` into a ``MarketDataDecoder`` for ``listener``.

    A source's sequence is forgotten when its image goes away (a publisher that
    comes back on a new publication starts a new sequence).
    """

    def __init__(self, aeron: Any, channel: str, stream: int, listener: Any, *, symbols: Any = None,
                 fragment_limit: int = 64, name: str | None = None) -> None:
        self.decoder = MarketDataDecoder(listener, symbols=symbols, name=name or f"{channel}#{stream}")
        self.fragment_limit = fragment_limit
        self.subscription = aeron.add_subscription(
            channel, stream, on_unavailable_image=lambda image: self.decoder.tracker.forget(image.session_id))
        self._poll = self.subscription.poll
        self._handler = self.decoder.on_fragment

    @property
    def counters(self) -> FeedCounters:
        return self.decoder.counters

    def role_name(self) -> str:
        return f"md-subscriber[{self.decoder.name}]"

    def on_start(self) -> None:
        pass

    def do_work(self) -> int:
        return int(self._poll(self._handler, self.fragment_limit))

    def on_close(self) -> None:
        self.subscription.close()
