"""Market data: the publisher's bytes against the schema, sequence gaps and duplicates over IPC,
hostile bytes counted and never raised, back pressure, the synthetic source."""

from __future__ import annotations

import random
import struct
from typing import Any

import pytest

from tickline.feed import MarketDataDecoder, MarketDataEncoder, MarketDataPublisher, MarketDataSubscriber, RandomWalk, \
    SyntheticFeed, price, sbe
from tickline.feed.consumer import Gap
from tickline.strategy.testing import run_until

STREAM = 1001


class Collect:
    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.gaps: list[tuple[int, int, int]] = []
        self.items: list[Any] = []

    def on_top_of_book(self, d: Any) -> None:
        self.seqs.append(d.seq_num)
        self.items.append((d.symbol, d.bid_price.mantissa, d.bid_size, d.ask_price.mantissa, d.ask_size))

    def on_trade(self, d: Any) -> None:
        self.seqs.append(d.seq_num)
        self.items.append((d.symbol, d.price.mantissa, d.quantity, d.aggressor_side, d.trade_id))

    def on_book(self, d: Any) -> None:
        self.seqs.append(d.seq_num)
        self.items.append((d.symbol, [(e.price.mantissa, e.volume, e.order_count) for e in d.bids()],
                           [(e.price.mantissa, e.volume, e.order_count) for e in d.asks()]))

    def on_gap(self, source: int, first: int, last: int) -> None:
        self.gaps.append((source, first, last))


def connected(aeron: Any, listener: Any) -> tuple[Any, MarketDataSubscriber]:
    sub = MarketDataSubscriber(aeron, "aeron:ipc", STREAM, listener)
    pub = aeron.add_exclusive_publication("aeron:ipc", STREAM)
    run_until(lambda: None, lambda: pub.is_connected)
    return pub, sub


def test_encoded_messages_equal_the_generated_codecs_bytes() -> None:
    m = sbe.md()
    enc = MarketDataEncoder()
    buf = bytearray(256)
    n = enc.encode_top_of_book(buf, 0, 7, "ESZ6", price(100), 3, None, 0, 11, 12)
    assert bytes(buf[:n]) == m.TopOfBookEncoder.from_dict({
        "symbol": "ESZ6", "exchangeTimestamp": 11, "localTimestamp": 12, "bidPrice": {"mantissa": price(100), "exponent": -9},
        "bidSize": 3, "askPrice": {"mantissa": None, "exponent": -9}, "askSize": 0, "seqNum": 7})
    n = enc.encode_trade(buf, 0, 8, "NQZ6", price(21000), 2, "sell", 11, 12, trade_id=5, buy_order_id=9)
    assert bytes(buf[:n]) == m.TradeEncoder.from_dict({
        "symbol": "NQZ6", "exchangeTimestamp": 11, "localTimestamp": 12, "tradeId": 5,
        "price": {"mantissa": price(21000), "exponent": -9}, "quantity": 2, "aggressorSide": "Sell",
        "buyOrderId": 9, "sellOrderId": None, "seqNum": 8})
    d = m.decode(bytes(buf[:n]))
    assert (d.seq_num, d.acting_version, d.aggressor_side) == (8, 1, m.AggressorSide.Sell)


def test_publisher_to_subscriber_over_ipc_in_order(aeron: Any) -> None:
    got = Collect()
    pub, sub = connected(aeron, got)
    p = MarketDataPublisher(pub, clock_ns=lambda: 42)
    assert p.top_of_book("ESZ6", price(100), 1, price(101), 2, ts=1)
    assert p.trade("ESZ6", price(101), 2, "buy", ts=2, trade_id=17)
    assert p.book("ESZ6", [(price(100), 1, 1)], [(price(101), 2, 1), (price(102), 5, 3)], ts=3)
    assert p.offer_top_of_book_batch([("ESZ6", None, 0, price(101), 1, 4), ("ESZ6", price(99), 1, None, 0, 5)]) == 2
    run_until(sub.do_work, lambda: len(got.seqs) == 5)
    m = sbe.md()
    assert got.seqs == [1, 2, 3, 4, 5] and p.next_seq == 6
    assert got.items == [("ESZ6", price(100), 1, price(101), 2), ("ESZ6", price(101), 2, m.AggressorSide.Buy, 17),
                         ("ESZ6", [(price(100), 1, 1)], [(price(101), 2, 1), (price(102), 5, 3)]),
                         ("ESZ6", None, 0, price(101), 1), ("ESZ6", price(99), 1, None, 0)]
    c = sub.counters
    assert (c.delivered, c.gaps, c.duplicates, c.malformed) == (5, 0, 0, 0)


def test_gaps_and_duplicates_are_reported_exactly(aeron: Any) -> None:
    got = Collect()
    pub, sub = connected(aeron, got)
    enc = MarketDataEncoder()
    sent = [1, 2, 3, 5, 6, 6, 4, 7, 10, 10, 11]
    buf = bytearray(128)
    for seq in sent:
        n = enc.encode_top_of_book(buf, 0, seq, "ESZ6", price(100), 1, price(101), 1, 0, 0)
        run_until(lambda: None, lambda: pub.offer(buf, 0, n) > 0)
    run_until(sub.do_work, lambda: sub.counters.received == len(sent))
    s = pub.session_id
    assert got.seqs == [1, 2, 3, 5, 6, 7, 10, 11]  # duplicates dropped, gaps delivered past
    assert list(sub.decoder.tracker.gaps) == [Gap(s, 4, 4), Gap(s, 8, 9)]
    assert got.gaps == [(s, 4, 4), (s, 8, 9)]
    assert list(sub.decoder.tracker.duplicates) == [(s, 6), (s, 4), (s, 10)]
    c = sub.counters
    assert (c.gaps, c.missing, c.duplicates, c.delivered, c.malformed) == (2, 3, 3, 8, 0)


def test_a_late_joiner_and_a_second_publisher_start_their_own_sequences() -> None:
    got = Collect()
    dec = MarketDataDecoder(got)
    enc = MarketDataEncoder()
    buf = bytearray(128)
    for source, seq in [(1, 500), (1, 501), (2, 1), (1, 502), (2, 2)]:
        n = enc.encode_top_of_book(buf, 0, seq, "ESZ6", 1, 1, 2, 1, 0, 0)
        dec.on_message(buf[:n], source)
    assert got.seqs == [500, 501, 1, 502, 2] and dec.counters.gaps == 0 and dec.counters.duplicates == 0


def _hostile() -> list[bytes]:
    m = sbe.md()
    enc = MarketDataEncoder()
    buf = bytearray(1024)
    n = enc.encode_top_of_book(buf, 0, 1, "ESZ6", 1, 1, 2, 1, 0, 0)
    tob = bytes(buf[:n])
    n = enc.encode_trade(buf, 0, 1, "ESZ6", 1, 1, "buy", 0, 0)
    trade = bytearray(buf[:n])
    trade[8 + 56] = 7  # aggressorSide: not a validValue
    n = enc.encode_book(buf, 0, 1, "ESZ6", [(1, 1, 1)], [(2, 1, 1)], 0, 0)
    book = bytearray(buf[:n])
    struct.pack_into("<H", book, 8 + m.OrderBookDecoder.BLOCK_LENGTH + 2, 60000)  # bids count far past the end
    zero_seq = bytearray(tob)
    struct.pack_into("<Q", zero_seq, 8 + 64, 0)
    return [
        b"\x01\x02\x03",  # shorter than the header
        struct.pack("<HHHH", 72, 1, 101, 1) + tob[8:],  # another schema
        struct.pack("<HHHH", 72, 99, 100, 1) + tob[8:],  # unknown template
        tob[:40],  # truncated block
        struct.pack("<HHHH", 16, 1, 100, 1) + tob[8:],  # block length below the message's
        struct.pack("<HHHH", 65535, 1, 100, 1) + tob[8:],  # block length past the end
        bytes(trade),
        bytes(book),
        bytes(book[:8 + m.OrderBookDecoder.BLOCK_LENGTH + 2]),  # group header cut
        bytes(zero_seq),
    ]


def test_malformed_market_data_is_counted_never_raised(aeron: Any, caplog: pytest.LogCaptureFixture) -> None:
    got = Collect()
    pub, sub = connected(aeron, got)
    hostile = _hostile()
    for msg in hostile:
        run_until(lambda: None, lambda: pub.offer(msg) > 0)
    good = MarketDataPublisher(pub)
    run_until(lambda: None, lambda: good.top_of_book("ESZ6", 1, 1, 2, 1, ts=0))
    with caplog.at_level("WARNING", logger="tickline.feed"):
        run_until(sub.do_work, lambda: sub.counters.received == len(hostile) + 1)
    c = sub.counters
    assert (c.malformed, c.delivered) == (len(hostile), 1)
    assert got.seqs == [1]
    assert "malformed market data: fault=peer" in caplog.text and "unknown template: template_id=99" in caplog.text
    assert "bad enum value: template_id=3 field=aggressor_side value=7" in caplog.text


def test_random_bytes_with_a_market_data_header_never_raise() -> None:
    got = Collect()
    dec = MarketDataDecoder(got)
    rng = random.Random(7)
    for i in range(3000):
        body = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 200)))
        msg = struct.pack("<HHHH", rng.choice((0, 40, 72, 81, 300)), rng.randint(0, 6), 100, rng.randint(0, 2)) + body
        dec.on_message(msg, source=i % 3)
    c = dec.counters
    assert c.received == 3000 and c.listener_errors == 0
    assert c.malformed + c.delivered + c.duplicates + c.ignored == 3000  # each one accounted for once
    assert c.malformed > 1000 and c.delivered > 0


def test_a_listener_that_raises_is_counted_and_the_stream_goes_on() -> None:
    class Boom:
        n = 0

        def on_top_of_book(self, d: Any) -> None:
            Boom.n += 1
            raise RuntimeError("strategy bug")

    dec = MarketDataDecoder(Boom())
    enc = MarketDataEncoder()
    buf = bytearray(128)
    for seq in (1, 2):
        n = enc.encode_top_of_book(buf, 0, seq, "ESZ6", 1, 1, 2, 1, 0, 0)
        dec.on_message(buf[:n], 1)
    assert Boom.n == 2 and dec.counters.listener_errors == 2


def test_back_pressure_returns_false_and_uses_no_sequence_number(aeron: Any) -> None:
    pub = aeron.add_exclusive_publication("aeron:ipc", STREAM + 1)  # nobody subscribes: not connected
    p = MarketDataPublisher(pub)
    assert p.top_of_book("ESZ6", 1, 1, 2, 1, ts=0) is False
    assert p.trade("ESZ6", 1, 1, None, ts=0) is False
    assert p.offer_top_of_book_batch([("ESZ6", 1, 1, 2, 1, 0)]) == 0
    assert (p.next_seq, p.published, p.back_pressured) == (1, 0, 3)


def test_bad_arguments_raise_and_publish_nothing(aeron: Any) -> None:
    got = Collect()
    pub, sub = connected(aeron, got)
    p = MarketDataPublisher(pub)
    with pytest.raises(ValueError, match="symbol must be 1..16 bytes"):
        p.top_of_book("X" * 17, 1, 1, 2, 1, ts=0)
    with pytest.raises(ValueError, match="not an aggressor side"):
        p.trade("ESZ6", 1, 1, "up", ts=0)
    assert p.top_of_book("ESZ6", 1, 1, 2, 1, ts=0)
    run_until(sub.do_work, lambda: got.seqs == [1])
    assert sub.counters.malformed == 0 and sub.counters.gaps == 0


def test_random_walk_is_seeded() -> None:
    a, b = RandomWalk(["A", "B"], seed=3), RandomWalk(["A", "B"], seed=3)
    qa, qb = [a.next(0) for _ in range(100)], [b.next(0) for _ in range(100)]
    assert qa == qb
    assert [q[0] for q in qa[:4]] == ["A", "B", "A", "B"]
    assert all(q[1] < q[3] for q in qa)  # bid below ask
    assert qa != [RandomWalk(["A", "B"], seed=4).next(0) for _ in range(100)]


def test_synthetic_feed_paces_by_its_clock(aeron: Any) -> None:
    got = Collect()
    pub, sub = connected(aeron, got)
    now = [0]
    feed = SyntheticFeed(MarketDataPublisher(pub, clock_ns=lambda: now[0]), RandomWalk(["ESZ6"], seed=1), rate=100,
                         clock_ns=lambda: now[0], max_batch=16)
    feed.on_start()
    assert feed.do_work() == 0  # nothing due at t=0
    now[0] = 500_000_000  # half a second: 50 due, 16 per cycle
    assert feed.do_work() == 16
    while feed.do_work():
        pass
    assert feed.publisher.published == 50
    run_until(sub.do_work, lambda: len(got.seqs) == 50)
    assert got.seqs == list(range(1, 51)) and sub.counters.gaps == 0


def _bench_feed_args(*argv: str) -> Any:
    import argparse

    from tickline.feed.bench import register_bench

    parser = argparse.ArgumentParser()
    register_bench(parser.add_subparsers())
    return parser.parse_args(["feed", *argv])


def test_bench_feed_reports_every_case_in_the_common_format(tmp_path: Any) -> None:
    from tickline import benchkit
    from tickline.feed.publisher import NATIVE_BUILT

    out = tmp_path / "bench.json"
    args = _bench_feed_args("--count", "3000", "--batch", "64", "--runs", "2", "--consume-count", "1500",
                            "--json", str(out))
    assert args.func(args) == 0
    doc = benchkit.load(str(out))  # the common schema; no timing asserted: only that every case ran
    native = {"publish/publish_batch native", "publish/tob_batch native"} if NATIVE_BUILT else set()
    cases = {c["name"]: c for c in doc["cases"]}
    assert set(cases) == native | {"publish/publish_batch py", "publish/tob_batch py", "publish/claim",
                                   "publish/offer_frames", "publish/offer_batch views", "publish/peer raw offer loop",
                                   "consume/peer poll_one", "consume/strategy"}
    assert doc["bench"] == "feed" and doc["reference"] == "peer"
    for name, c in cases.items():
        assert c["unit"] == "ns" and len(c["runs"]) == 2 and c["skipped"] is None
        assert c["count"] == sum(r["count"] for r in c["runs"]) >= 2  # a value per timed call
        assert c["throughput"] > 0 and c["p50"] > 0 and all(r["throughput"] > 0 for r in c["runs"])
        assert (c["peer_ratio"] is None) == (c["label"] == "peer"), name  # against the peer of its group
    e = doc["extra"]
    assert e["publish_messages_offered"] == e["publish_messages_received"] >= 2 * 3000 * (len(native) + 6)
    if NATIVE_BUILT:
        assert e["feed_alone_msgs_per_s"] == round(cases["publish/publish_batch native"]["throughput"])
        assert e["feed_alone_uninterrupted_msgs_per_s"] > 0


def test_bench_feed_refuses_a_bad_option_without_a_traceback(capsys: Any) -> None:
    args = _bench_feed_args("--runs", "0")
    assert args.func(args) == 2
    assert "option out of range: option=--runs value=0 expected=1..100 fault=user" in capsys.readouterr().err


def test_a_version_0_message_without_seqnum_is_delivered_unsequenced() -> None:
    got = Collect()
    dec = MarketDataDecoder(got)
    enc = MarketDataEncoder()
    buf = bytearray(128)
    enc.encode_top_of_book(buf, 0, 9, "ESZ6", 1, 1, 2, 1, 0, 0)
    v0 = struct.pack("<HHHH", 64, 1, 100, 0) + bytes(buf[8:8 + 64])  # what a version-0 publisher wrote
    dec.on_message(v0, 1)
    assert got.seqs == [None] and (dec.counters.unsequenced, dec.counters.malformed) == (1, 0)


def test_a_pre_encoded_batch_is_stamped_and_numbered_on_each_publication(aeron: Any) -> None:
    from tickline.feed.publisher import TopOfBookBatch

    got = Collect()
    pub, sub = connected(aeron, got)
    now = [5]
    p = MarketDataPublisher(pub, clock_ns=lambda: now[0])
    batch = TopOfBookBatch([("ESZ6", price(100), 1, price(101), 2), ("NQZ6", None, 0, price(20000), 3)])
    assert p.top_of_book("ESZ6", 1, 1, 2, 1, ts=0)
    assert p.publish_batch(batch) == 2
    now[0] = 9
    assert p.publish_batch(batch, start=1) == 1  # a retry of the rest
    run_until(sub.do_work, lambda: len(got.seqs) == 4)
    assert got.seqs == [1, 2, 3, 4] and sub.counters.gaps == 0
    assert got.items[1:] == [("ESZ6", price(100), 1, price(101), 2), ("NQZ6", None, 0, price(20000), 3),
                             ("NQZ6", None, 0, price(20000), 3)]
    enc = MarketDataEncoder()
    expected = bytearray(80)
    enc.encode_top_of_book(expected, 0, 4, "NQZ6", None, 0, price(20000), 3, 9, 9)
    assert bytes(batch.views[1]) == bytes(expected)  # the same bytes the per-message encoder writes


def test_synthetic_feed_pregenerated_publishes_whole_stamped_batches(aeron: Any) -> None:
    got = Collect()
    pub, sub = connected(aeron, got)
    now = [0]
    feed = SyntheticFeed(MarketDataPublisher(pub, clock_ns=lambda: now[0]), RandomWalk(["A", "B"], seed=2), rate=1000,
                         clock_ns=lambda: now[0], max_batch=8, pregenerate=16)
    feed.on_start()
    now[0] = 5_000_000  # 5 due: less than a batch
    assert feed.do_work() == 0
    now[0] = 40_000_000  # 40 due: 5 batches of 8, the ring of 2 batches twice and a half
    while feed.do_work():
        pass
    run_until(sub.do_work, lambda: len(got.seqs) == 40)
    assert got.seqs == list(range(1, 41)) and sub.counters.gaps == 0
    walk = RandomWalk(["A", "B"], seed=2)
    first16 = [walk.next(0)[:5] for _ in range(16)]
    assert got.items == (first16 * 3)[:40]  # the pre-generated quotes, in a loop
