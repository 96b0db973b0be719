"""Batch publishing (``publish_batch`` / ``offer_top_of_book_batch`` through ``Publication.offer_frames``):
the subscriber sees every message once, in order, numbered without gaps, across term rotations and with a
slow subscriber that back-pressures the publisher (which retries and counts the refusals)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tickline.feed import MarketDataPublisher, MarketDataSubscriber, TopOfBookBatch, price
from tickline.feed.publisher import NATIVE_BUILT

STREAM = 1001


class Collect:
    """Every TopOfBook's seqNum and fields, in arrival order."""

    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.items: list[tuple[Any, ...]] = []

    def on_top_of_book(self, d: Any) -> None:
        self.seqs.append(d.seq_num)
        self.items.append((d.symbol, d.bid_price.mantissa, d.bid_size, d.ask_price.mantissa, d.ask_size))

TERM = 64 * 1024  # 80-byte messages take 128 bytes of log: 512 a term
ROWS = [(f"S{i % 7}", price(100 + i), i + 1, None if i % 11 == 0 else price(101 + i), 2 * i, i) for i in range(100)]
NATIVE = [True, False] if NATIVE_BUILT else [False]


def _setup(aeron: Any, got: Collect, fragment_limit: int) -> tuple[Any, MarketDataSubscriber]:
    sub = MarketDataSubscriber(aeron, "aeron:ipc", STREAM, got, fragment_limit=fragment_limit)
    pub = aeron.add_exclusive_publication(f"aeron:ipc?term-length={TERM}", STREAM)
    deadline = time.monotonic() + 10
    while not pub.is_connected:
        assert time.monotonic() < deadline, "publication never connected"
        time.sleep(0.001)
    assert pub.term_buffer_length == TERM
    return pub, sub


def _publish_all(md: MarketDataPublisher, sub: MarketDataSubscriber, path: str, total: int) -> int:
    """Publishes ``total`` messages (rows cycled), retrying from where a refusal stopped, polling the
    subscriber one duty cycle between calls; returns how many calls published fewer than asked."""
    batch = TopOfBookBatch([r[:5] for r in ROWS])
    sent = start = short = 0
    deadline = time.monotonic() + 30
    while sent < total:
        assert time.monotonic() < deadline, f"publishing stalled: sent={sent} of {total}"
        want = min(len(ROWS) - start, total - sent)
        if path == "publish_batch":
            if want < len(ROWS) - start:  # the last, partial round: a batch of just those rows
                done = md.publish_batch(TopOfBookBatch([r[:5] for r in ROWS[start:start + want]]))
            else:
                done = md.publish_batch(batch, start)
        else:
            done = md.offer_top_of_book_batch(ROWS[start:start + want])
        short += done < want
        sent += done
        start = (start + done) % len(ROWS)
        sub.do_work()
    return short


def _receive(sub: MarketDataSubscriber, got: Collect, total: int) -> None:
    deadline = time.monotonic() + 10
    while len(got.seqs) < total:
        assert time.monotonic() < deadline, f"only {len(got.seqs)} of {total} arrived"
        sub.do_work()


def _expected(total: int) -> list[tuple[Any, ...]]:
    return [ROWS[k % len(ROWS)][:5] for k in range(total)]


@pytest.mark.parametrize("native", NATIVE, ids=lambda n: "native" if n else "python")
@pytest.mark.parametrize("path", ["publish_batch", "offer_top_of_book_batch"])
@pytest.mark.parametrize("subscriber", ["keeps_up", "slow"])
def test_a_batch_published_stream_arrives_whole_and_in_order_across_rotations_and_back_pressure(
        aeron: Any, native: bool, path: str, subscriber: str) -> None:
    # 3000 messages of 128 log bytes over 64 KiB terms: the log rotates about six times.
    # keeps_up: the subscriber polls up to 4096 fragments between the publisher's calls.
    # slow: it reads 3 a cycle while the publisher offers up to 100: the publication's
    # window (half a term) fills, offer_frames stops at the refusal, and the publisher
    # retries the rest; nothing is lost, repeated or numbered twice either way.
    slow = subscriber == "slow"
    got = Collect()
    pub, sub = _setup(aeron, got, fragment_limit=3 if slow else 4096)
    md = MarketDataPublisher(pub, native=native)
    total = 3000
    short = _publish_all(md, sub, path, total)
    _receive(sub, got, total)
    assert pub.position >= 5 * TERM  # the log rotated through several terms
    assert md.back_pressured == short  # each refused (short) call counted
    if slow:
        assert short > 0  # the slow reader did push back
    assert got.seqs == list(range(1, total + 1))
    assert got.items == _expected(total)
    c = sub.counters
    assert (c.gaps, c.duplicates, c.malformed, c.missing) == (0, 0, 0, 0)
    assert sub.do_work() == 0  # nothing more arrives: no message twice
    assert (md.published, md.next_seq) == (total, total + 1)
