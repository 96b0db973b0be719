"""exchange-sim publishes its own book: the top of book of a symbol whenever an
order changes it (tickline.feed's publisher), so strategies trade against what
they see; over the embedded driver's IPC, with the feed package's decoder."""

from __future__ import annotations

import time

from tickline.fix_gateway.aeron_bridge import AeronStreams
from tickline.fix_gateway.bridge import CancelOrder, NewOrder, OrdType, Side, TimeInForce
from tickline.fix_gateway.sbe_orders import OrderCodec
from tickline.venue.exchange_service import ExchangeSimAgent, ExchangeSimConfig

S = 10 ** 9


def test_each_change_of_the_book_publishes_its_top_and_nothing_else_does(aeron):
    from tickline.feed.consumer import MarketDataDecoder

    driver, a = aeron
    cfg = ExchangeSimConfig(streams=AeronStreams(dir=driver.dir), md_stream_id=1003)
    agent = ExchangeSimAgent(a, cfg)
    seen = []

    class Listener:
        def on_top_of_book(self, tob):
            seen.append((tob.symbol, tob.bid_price.mantissa, tob.bid_size, tob.ask_price.mantissa, tob.ask_size))

    decoder = MarketDataDecoder(Listener())
    md = a.add_subscription("aeron:ipc", 1003)
    orders = a.add_exclusive_publication("aeron:ipc", 1001)
    reports = a.add_subscription("aeron:ipc", 1002)
    codec = OrderCodec()

    def until(cond, what):
        deadline = time.monotonic() + 10
        while not cond():
            agent.do_work()
            md.poll(decoder.on_fragment, 100)
            reports.poll(lambda b, h: None, 100)
            assert time.monotonic() < deadline, what

    until(lambda: orders.is_connected and agent.md_pub.is_connected, "connected")

    def send(msg):
        view, n = codec.encode(msg)
        while orders.offer(view[:n]) < 0:
            agent.do_work()

    def new(cl, side, qty, px):
        return NewOrder(cl, "A", "DEMO", side, OrdType.LIMIT, TimeInForce.DAY, int(px * S), None, qty, 0)

    send(new("b1", Side.BUY, 5, 99.5))
    until(lambda: len(seen) == 1, "first top")
    send(new("s1", Side.SELL, 3, 100.5))
    until(lambda: len(seen) == 2, "second top")
    send(new("s2", Side.SELL, 2, 99.5))  # crosses: fills 2 of b1
    until(lambda: len(seen) == 3, "after a fill")
    send(CancelOrder("c1", "b1", "DEMO", Side.BUY, 0))
    until(lambda: len(seen) == 4, "after a cancel")
    assert seen == [("DEMO", int(99.5 * S), 5, None, 0), ("DEMO", int(99.5 * S), 5, int(100.5 * S), 3),
                    ("DEMO", int(99.5 * S), 3, int(100.5 * S), 3), ("DEMO", None, 0, int(100.5 * S), 3)]
    # an order that leaves the top as it was publishes nothing
    send(new("s3", Side.SELL, 1, 101.0))
    for _ in range(200):
        agent.do_work()
        md.poll(decoder.on_fragment, 100)
    assert len(seen) == 4 and agent.md_published == 4
    agent.on_close()
