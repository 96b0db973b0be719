"""Publishing market data: SBE messages of ``schemas/market_data.xml`` on an Aeron publication.

    pub = aeron.add_exclusive_publication("aeron:ipc", 1001)
    md = MarketDataPublisher(pub)
    md.top_of_book("ESZ6", bid=6789_250000000, bid_size=3, ask=6789_500000000, ask_size=5, ts=exchange_ns)
    md.trade("ESZ6", price=6789_500000000, quantity=2, aggressor="buy", ts=exchange_ns, trade_id=17)
    md.book("ESZ6", bids=[(6789_250000000, 3, 1)], asks=[(6789_500000000, 5, 2)], ts=exchange_ns)

Prices are the schema's fixed-point mantissas (value * 10^9, ``int``); ``None``
is the null price (an empty side of the book).  ``ts`` is the exchange's event
time (``exchangeTimestamp``); the publisher stamps ``localTimestamp`` with its
clock when it encodes the message, so a consumer can measure publish ->
callback.  Every message carries ``seqNum``: 1, 2, 3, ... per publisher (per
Aeron publication), consumed only by a message that was published.

Each call returns True when the message is in the log, False on back pressure
or while no subscriber is connected (nothing was published, no sequence number
used: retry later, or drop and let consumers of a newer message go on).  It
never blocks.  TopOfBook and Trade are encoded in place in the log buffer
(``try_claim``) with one ``struct`` call whose layout the tests hold to the
generated codec byte for byte; OrderBook is encoded with the generated encoder
and offered.  ``offer_top_of_book_batch`` publishes many top-of-book updates
and ``publish_batch`` a ``TopOfBookBatch``, both encoded by
cpp_ext/mdencode.cpp (``TICKLINE_FEED_NATIVE=0``: by the Python reference, the
same bytes) into one buffer and offered by one ``Publication.offer_frames``
call (each message its own Aeron message; a publication without
``offer_frames`` gets one ``offer_batch``).

Not thread safe: one publisher per thread (give it an exclusive publication).
"""

from __future__ import annotations

import os
import struct
import time
from array import array
from typing import Any, Callable, Sequence

from tickline.transport import BufferClaim

from . import sbe

__all__ = ["MarketDataPublisher", "MarketDataEncoder", "TopOfBookBatch", "price", "aggressor_raw", "NATIVE",
           "NATIVE_BUILT"]

PRICE_SCALE = 1_000_000_000  # the schema's Price exponent is -9
_NULL_PRICE = -(2**63)
_NULL_U64 = 2**64 - 1
_NULL_U8 = 255
MAX_LEVELS = 20  # OrderBook: up to 20 levels per side (schemas/market_data.xml)

# Header (blockLength, templateId, schemaId, version) + root block, little endian, no padding
# (SBE fields sit at their offsets; these formats follow the field order of the schema).
_TOB = struct.Struct("<HHHH16sQQqQqQQ")
_TRADE = struct.Struct("<HHHH16sQQQqQBQQQ")


def _load_native() -> tuple[Any, Any]:
    try:
        from tickline import _aeron
    except ImportError:  # a source tree without the built extension: the Python reference alone
        return None, None
    return getattr(_aeron, "encode_top_of_book_batch", None), getattr(_aeron, "encode_top_of_book_rows", None)


# cpp_ext/mdencode.cpp: TopOfBook batches encoded in C (the same bytes as the struct
# layouts here; tests/feed/test_mdencode.py holds them equal).  NATIVE is the publishers'
# default: built and not turned off with TICKLINE_FEED_NATIVE=0 (then the Python reference);
# MarketDataPublisher(native=True/False) chooses for one publisher.
_native_encode_tob, _native_encode_rows = _load_native()
NATIVE_BUILT = _native_encode_tob is not None and _native_encode_rows is not None
NATIVE = NATIVE_BUILT and os.environ.get("TICKLINE_FEED_NATIVE", "1") != "0"


def price(value: float | int | str) -> int:
    """A price as the schema's mantissa (``price(6789.25) == 6789_250000000``), rounded to 1e-9."""
    if isinstance(value, int):
        return value * PRICE_SCALE
    from decimal import Decimal

    return int((Decimal(str(value)) * PRICE_SCALE).to_integral_value())


def aggressor_raw(side: Any) -> int:
    """The AggressorSide wire value (1 buy, 2 sell, 255 unknown) of ``side``: None, 1/2, 'buy'/'sell',
    'B'/'S', '1'/'2', or an enum member of either schema's Side/AggressorSide."""
    if side is None:
        return _NULL_U8
    if isinstance(side, int) and not isinstance(side, bool) and side in (1, 2):
        return int(side)
    name = getattr(side, "name", side)
    if isinstance(name, str):
        key = name.lower()
        if key in ("buy", "b", "1"):
            return 1
        if key in ("sell", "s", "2"):
            return 2
    raise ValueError(f"not an aggressor side: value={side!r} expected=None|buy|sell|1|2 fault=user")


class _Symbols:
    """str -> the 16-byte char array, remembered (bounded)."""

    def __init__(self) -> None:
        self.cache: dict[str, bytes] = {}

    def __call__(self, symbol: str) -> bytes:
        raw = self.cache.get(symbol)
        if raw is None:
            try:
                raw = symbol.encode("ascii")
            except (UnicodeEncodeError, AttributeError):
                raise ValueError(f"symbol must be ASCII text: symbol={symbol!r} fault=user") from None
            if not 0 < len(raw) <= 16:
                raise ValueError(f"symbol must be 1..16 bytes: symbol={symbol!r} length={len(raw)} fault=user")
            if len(self.cache) < 4096:
                self.cache[symbol] = raw
        return raw


class MarketDataEncoder:
    """Sans-IO: encodes market-data messages with a given sequence number into a buffer.

    What ``MarketDataPublisher`` uses, and what a test or a replayer uses to write
    messages with chosen sequence numbers.  ``encode_*`` return the encoded length.
    """

    def __init__(self) -> None:
        m = self.m = sbe.md()
        self.header = (m.HEADER_LENGTH, m.SCHEMA_ID, m.SCHEMA_VERSION)
        for s, dec in ((_TOB, m.TopOfBookDecoder), (_TRADE, m.TradeDecoder)):
            if s.size != m.HEADER_LENGTH + dec.BLOCK_LENGTH:  # the schema changed under this module
                raise RuntimeError(f"market data layout out of date: message={dec.NAME} struct_size={s.size} "
                                   f"schema_size={m.HEADER_LENGTH + dec.BLOCK_LENGTH} fault=ours")
        if (m.SCHEMA_ID, m.SCHEMA_VERSION, m.TopOfBookDecoder.TEMPLATE_ID, m.TradeDecoder.TEMPLATE_ID) != (100, 1, 1, 3):
            raise RuntimeError(f"market data schema out of date: schema_id={m.SCHEMA_ID} version={m.SCHEMA_VERSION} "
                               "fault=ours")
        self.symbol = _Symbols()
        self._book = m.OrderBookEncoder()
        self.TOB_LENGTH = _TOB.size
        self.TRADE_LENGTH = _TRADE.size

    def encode_top_of_book(self, buf: Any, offset: int, seq: int, symbol: str, bid: int | None, bid_size: int,
                           ask: int | None, ask_size: int, ts: int, local_ts: int) -> int:
        _TOB.pack_into(buf, offset, 72, 1, 100, 1, self.symbol(symbol), ts, local_ts,
                       _NULL_PRICE if bid is None else bid, bid_size, _NULL_PRICE if ask is None else ask, ask_size, seq)
        return _TOB.size

    def encode_trade(self, buf: Any, offset: int, seq: int, symbol: str, price: int, quantity: int, aggressor: Any,
                     ts: int, local_ts: int, trade_id: int = 0, buy_order_id: int | None = None,
                     sell_order_id: int | None = None) -> int:
        _TRADE.pack_into(buf, offset, _TRADE.size - 8, 3, 100, 1, self.symbol(symbol), ts, local_ts, trade_id, price,
                         quantity, aggressor_raw(aggressor), _NULL_U64 if buy_order_id is None else buy_order_id,
                         _NULL_U64 if sell_order_id is None else sell_order_id, seq)
        return _TRADE.size

    def book_length(self, levels: int) -> int:
        return self.m.HEADER_LENGTH + self.m.OrderBookEncoder.BLOCK_LENGTH + 8 + 20 * levels

    def encode_book(self, buf: Any, offset: int, seq: int, symbol: str, bids: Sequence[tuple[int, int, int]],
                    asks: Sequence[tuple[int, int, int]], ts: int, local_ts: int) -> int:
        if len(bids) > MAX_LEVELS or len(asks) > MAX_LEVELS:
            raise ValueError(f"at most {MAX_LEVELS} levels per side: bids={len(bids)} asks={len(asks)} fault=user")
        e = self._book.wrap_and_apply_header(buf, offset)
        e.symbol = symbol
        self.symbol(symbol)  # same checks as the other messages
        e.exchange_timestamp = ts
        e.local_timestamp = local_ts
        e.seq_num = seq
        for levels, group in ((bids, e.bids_count), (asks, e.asks_count)):
            g = group(len(levels))
            for px, volume, count in levels:
                entry = g.next()
                entry.price.mantissa = px
                entry.volume = volume
                entry.order_count = count
        return int(self.m.HEADER_LENGTH + e.encoded_length)


class TopOfBookBatch:
    """TopOfBook messages encoded once, to be published many times (load generation, replay).

    ``rows``: (symbol, bid, bid_size, ask, ask_size) per message.  The batch keeps
    each message's constant bytes; ``MarketDataPublisher.publish_batch`` stamps the
    three fields that change per publication (exchangeTimestamp and localTimestamp:
    the publish time; seqNum: the publisher's next numbers) with one ``struct`` call
    for the whole batch and offers it with one ``offer_frames``: no Python work per
    message.  With the native encoder (``NATIVE``) the same rows, kept as columns
    (``symbols`` and ``columns``: symbol ids, bid, bid size, ask, ask size), are
    encoded whole by one C call instead.  Not thread safe.
    """

    _PART = "24sQQ32sQ"  # header + symbol | exchangeTimestamp | localTimestamp | prices and sizes | seqNum

    def __init__(self, rows: Sequence[tuple[str, int | None, int, int | None, int]]) -> None:
        if not rows:
            raise ValueError("a batch needs at least one message: rows=[] fault=user")
        enc = MarketDataEncoder()
        n = len(rows)
        self.struct = struct.Struct("<" + self._PART * n)
        size = enc.TOB_LENGTH
        tmp = bytearray(size)
        self.args: list[Any] = []
        for symbol, bid, bid_size, ask, ask_size in rows:
            enc.encode_top_of_book(tmp, 0, 0, symbol, bid, bid_size, ask, ask_size, 0, 0)
            self.args += [bytes(tmp[0:24]), 0, 0, bytes(tmp[40:72]), 0]
        # The same rows as columns, for the native encoder (it writes every field each time).
        self.symbols: list[str] = []
        index: dict[str, int] = {}
        ids, bids, asks = array("q"), array("q"), array("q")
        bid_sizes, ask_sizes = array("Q"), array("Q")
        for symbol, bid, bid_size, ask, ask_size in rows:
            if symbol not in index:
                index[symbol] = len(self.symbols)
                self.symbols.append(symbol)
            ids.append(index[symbol])
            bids.append(_NULL_PRICE if bid is None else bid)
            bid_sizes.append(bid_size)
            asks.append(_NULL_PRICE if ask is None else ask)
            ask_sizes.append(ask_size)
        # symbol_ids, bid, bid_size, ask, ask_size in the native encoder's order
        self.columns = tuple(memoryview(c) for c in (ids, bids, bid_sizes, asks, ask_sizes))
        self.buf = bytearray(self.struct.size)
        view = memoryview(self.buf)
        self.views = [view[i * size:(i + 1) * size] for i in range(n)]

    def __len__(self) -> int:
        return len(self.views)


class MarketDataPublisher:
    """Publishes TopOfBook, Trade and OrderBook messages with a per-publisher ``seqNum``.

    ``publication``: an Aeron publication (exclusive preferred); ``clock_ns``:
    the clock for ``localTimestamp`` (epoch nanoseconds); ``initial_seq``: the
    first sequence number (1; a restarted publisher on a new publication starts
    a new sequence, consumers key sequences by the publication's session);
    ``native``: batches encoded by the C encoder (None: ``NATIVE``, i.e. when
    built and not turned off with ``TICKLINE_FEED_NATIVE=0``; False: the Python
    reference; True: the C encoder whatever the environment says).

    Counters: ``published``, ``back_pressured`` (calls that returned False).
    """

    def __init__(self, publication: Any, clock_ns: Callable[[], int] = time.time_ns, initial_seq: int = 1,
                 native: bool | None = None) -> None:
        if not isinstance(initial_seq, int) or initial_seq < 1:
            raise ValueError(f"initial_seq must be >= 1: initial_seq={initial_seq!r} fault=user")
        if native and not NATIVE_BUILT:
            raise ValueError("native=True but the extension has no native market-data encoder "
                             "(cpp_ext/mdencode.cpp not built) fault=user")
        self.native = NATIVE if native is None else bool(native)
        self.publication = publication
        self.clock_ns = clock_ns
        self.encoder = MarketDataEncoder()
        self.next_seq = initial_seq
        self.published = 0
        self.back_pressured = 0
        self._claim = BufferClaim()
        # Batches of TopOfBook go out through offer_frames (cpp_ext/fastpath.cpp) when the
        # publication has it: many messages from one buffer in one call.
        self._offer_frames: Callable[[Any, int, int, int], int] | None = getattr(publication, "offer_frames", None)
        self._scratch = bytearray(self.encoder.book_length(2 * MAX_LEVELS))
        self._rows_buf = bytearray(0)
        self._views: list[memoryview] = []

    def top_of_book(self, symbol: str, bid: int | None, bid_size: int, ask: int | None, ask_size: int,
                    ts: int) -> bool:
        """Publish one TopOfBook; True when published (see the module doc)."""
        claim = self._claim
        if self.publication.try_claim(_TOB.size, claim) < 0:
            self.back_pressured += 1
            return False
        seq = self.next_seq
        try:
            _TOB.pack_into(claim, 0, 72, 1, 100, 1, self.encoder.symbol(symbol), ts, self.clock_ns(),
                           _NULL_PRICE if bid is None else bid, bid_size, _NULL_PRICE if ask is None else ask,
                           ask_size, seq)
        except BaseException:
            claim.abort()  # a bad argument: nothing published, no sequence number used
            raise
        claim.commit()
        self.next_seq = seq + 1
        self.published += 1
        return True

    def trade(self, symbol: str, price: int, quantity: int, aggressor: Any, ts: int, trade_id: int = 0,
              buy_order_id: int | None = None, sell_order_id: int | None = None) -> bool:
        """Publish one Trade (``aggressor``: None, 'buy'/'sell', 1/2 or a Side enum member)."""
        claim = self._claim
        if self.publication.try_claim(_TRADE.size, claim) < 0:
            self.back_pressured += 1
            return False
        seq = self.next_seq
        try:
            self.encoder.encode_trade(claim, 0, seq, symbol, price, quantity, aggressor, ts, self.clock_ns(),
                                      trade_id, buy_order_id, sell_order_id)
        except BaseException:
            claim.abort()
            raise
        claim.commit()
        self.next_seq = seq + 1
        self.published += 1
        return True

    def book(self, symbol: str, bids: Sequence[tuple[int, int, int]], asks: Sequence[tuple[int, int, int]],
             ts: int) -> bool:
        """Publish one OrderBook: ``bids``/``asks`` are (price, volume, order_count), best first, <= 20 each."""
        n = self.encoder.encode_book(self._scratch, 0, self.next_seq, symbol, bids, asks, ts, self.clock_ns())
        if self.publication.offer(self._scratch, 0, n) < 0:
            self.back_pressured += 1
            return False
        self.next_seq += 1
        self.published += 1
        return True

    def offer_top_of_book_batch(self, rows: Sequence[tuple[str, int | None, int, int | None, int, int]]) -> int:
        """Publish many TopOfBook updates (symbol, bid, bid_size, ask, ask_size, ts), encoded into one
        buffer (natively or in Python), with one ``offer_frames`` (or ``offer_batch``) call.

        Returns how many were published: a prefix of ``rows`` (the offer
        stops at the first refusal); the caller retries from that index.  The
        published ones used consecutive sequence numbers, the rest none."""
        n = len(rows)
        if n == 0:
            return 0
        if n > len(self._views):  # grows to the largest batch seen; old views go with the old buffer
            self._rows_buf = bytearray(_TOB.size * n)
            mv = memoryview(self._rows_buf)
            self._views = [mv[i * _TOB.size:(i + 1) * _TOB.size] for i in range(n)]
        buf, seq, now = self._rows_buf, self.next_seq, self.clock_ns()
        if self.native:
            _native_encode_rows(buf, 0, rows, now, seq)
        else:
            enc = self.encoder.encode_top_of_book
            for i in range(n):
                symbol, bid, bid_size, ask, ask_size, ts = rows[i]
                enc(buf, i * _TOB.size, seq + i, symbol, bid, bid_size, ask, ask_size, ts, now)
        return self._offer_block(buf, 0, n, self._views)

    def publish_batch(self, batch: TopOfBookBatch, start: int = 0) -> int:
        """Publish ``batch``'s messages from index ``start`` (stamped now, numbered from ``next_seq``)
        with one ``offer_frames`` (or ``offer_batch``); returns how many were published (the caller retries from
        ``start + that``)."""
        n = len(batch.views)
        if not (isinstance(start, int) and 0 <= start <= n):
            raise ValueError(f"start must be in 0..{n}: start={start!r} fault=user")
        if self.native:
            now = self.clock_ns()
            cols = batch.columns if start == 0 else [c[start:] for c in batch.columns]
            _native_encode_tob(batch.buf, start * _TOB.size, n - start, batch.symbols, *cols, now, now,
                               self.next_seq)
            return self._offer_block(batch.buf, start, n, batch.views)
        args, now, first = batch.args, self.clock_ns(), self.next_seq - start
        args[4::5] = range(first, first + n)  # message i gets first + i: from start on, next_seq onwards
        stamps = [now] * n
        args[1::5] = stamps
        args[2::5] = stamps
        batch.struct.pack_into(batch.buf, 0, *args)
        return self._offer_block(batch.buf, start, n, batch.views)

    def _offer_block(self, buf: bytearray, start: int, end: int, views: Sequence[Any]) -> int:
        """Offers messages ``start``..``end - 1`` of ``buf`` (TopOfBook, back to back, numbered from
        ``next_seq``) as one message each; counts and returns how many went.

        One ``Publication.offer_frames`` call (one buffer export for the batch, a term
        rotation retried inside); a publication without it (a test double, another
        transport) gets one ``offer_batch`` of ``views[start:end]``."""
        offer_frames = self._offer_frames
        if offer_frames is not None:
            done = int(offer_frames(buf, start * _TOB.size, _TOB.size, end - start))
        else:
            done = int(self.publication.offer_batch(views[start:end] if start or end != len(views) else views))
        if done < end - start:
            self.back_pressured += 1
        self.next_seq += done
        self.published += done
        return done
