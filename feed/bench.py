"""``tickline bench feed``: the feed's publish rate, and the cost of market data inside a strategy.

One process, an embedded driver, IPC, measured in the same run:

- publish: TopOfBook messages through ``MarketDataPublisher.top_of_book``
  (``try_claim``, one message a call), ``offer_top_of_book_batch`` (encode +
  one ``offer_batch`` per ``--batch``), ``publish_batch`` (what ``feed
  synthetic --pregenerate`` sends) twice: through the native encoder
  (cpp_ext/mdencode.cpp writes every field of the batch each time) and through
  the Python reference (a ``TopOfBookBatch`` encoded once, timestamps and
  seqNum stamped per publication by one ``struct`` call), and as the peer,
  ``offer_batch`` of messages encoded beforehand and never stamped (the
  transport alone), with native / peer; ``offer_top_of_book_batch`` also
  twice, Python and native (``encode_top_of_book_rows``);
- consume: the same stream read by two subscriptions: a bare ``poll_one`` loop
  that unpacks bid/ask and computes the mid with one ``struct`` call, against
  the strategy path (checks, sequence tracking, flyweight, ``on_top_of_book``
  computing the same mid in a ``Strategy``); per message, and their ratio.

Only the publish calls are timed in the publish cases (the subscriber drains
between batches, untimed).  Figures from a loaded machine are noise: say so.
"""

from __future__ import annotations

import argparse
import json
import struct
import time
from typing import Any

from .publisher import NATIVE_BUILT, MarketDataEncoder, MarketDataPublisher, TopOfBookBatch


def _publish_cases(aeron: Any, count: int, batch: int) -> dict[str, float]:
    sub = aeron.add_subscription("aeron:ipc", 2001)
    pub = aeron.add_exclusive_publication("aeron:ipc", 2001)
    while not pub.is_connected:
        pass
    md = MarketDataPublisher(pub, clock_ns=lambda: 0, native=False)
    out: dict[str, float] = {}

    def rate(step: Any) -> float:
        """M msgs/s of ``step()`` (returns how many it published), timing only the publish calls."""
        elapsed = sent = 0
        while sent < count:
            t0 = time.perf_counter_ns()
            sent += step()
            elapsed += time.perf_counter_ns() - t0
            while sub.drain(4096):  # the subscriber keeps up, untimed
                pass
        return sent / elapsed * 1e3

    def claims() -> int:
        return sum(md.top_of_book("ESZ6", 100, 1, 101, 1, 0) for _ in range(batch))

    rows = [("ESZ6", 100 + i, 1, 101 + i, 1, 0) for i in range(batch)]
    tob_batch = TopOfBookBatch([row[:5] for row in rows])
    enc = MarketDataEncoder()
    pre = []
    for i in range(batch):
        b = bytearray(enc.TOB_LENGTH)
        enc.encode_top_of_book(b, 0, i + 1, "ESZ6", 100, 1, 101, 1, 0, 0)
        pre.append(b)
    out["claim M msgs/s"] = rate(claims)
    out["offer_top_of_book_batch python M msgs/s"] = rate(lambda: md.offer_top_of_book_batch(rows))
    out["publish_batch python (encoded once, stamped) M msgs/s"] = rate(lambda: md.publish_batch(tob_batch))
    if NATIVE_BUILT:  # numbered on from the Python cases: one stream, one sequence
        md_native = MarketDataPublisher(pub, clock_ns=lambda: 0, native=True, initial_seq=md.next_seq)
        out["offer_top_of_book_batch native M msgs/s"] = rate(lambda: md_native.offer_top_of_book_batch(rows))
        out["publish_batch native M msgs/s"] = rate(lambda: md_native.publish_batch(tob_batch))
    out["peer: offer_batch pre-encoded M msgs/s"] = rate(lambda: int(pub.offer_batch(pre)))
    if NATIVE_BUILT:
        out["publish_batch native / peer"] = (out["publish_batch native M msgs/s"]
                                              / out["peer: offer_batch pre-encoded M msgs/s"])
    pub.close()
    sub.close()
    return out


def _consume_cases(aeron: Any, count: int) -> dict[str, float]:
    from tickline.strategy import Strategy, StrategyRunner, load_config

    bare_sub = aeron.add_subscription("aeron:ipc", 2002)
    strat_sub = aeron.add_subscription("aeron:ipc", 2002)
    pub = aeron.add_exclusive_publication("aeron:ipc", 2002)
    while not pub.is_connected:
        pass
    md = MarketDataPublisher(pub)
    rows = [("ESZ6", 100 + i, 1, 102 + i, 1, 0) for i in range(256)]
    sent = 0
    while sent < count:
        sent += md.offer_top_of_book_batch(rows[:min(256, count - sent)])
    tob = struct.Struct("<40xqQqQ")  # header, symbol and the two timestamps skipped: bid, bid size, ask, ask size

    total = 0
    n = 0
    poll_one = bare_sub.poll_one
    t0 = time.perf_counter_ns()
    while n < count:
        v = poll_one()
        if v is None:
            continue
        bid, _, ask, _ = tob.unpack_from(v, 0)
        total += (bid + ask) // 2
        n += 1
    bare = (time.perf_counter_ns() - t0) / n

    class Mid(Strategy):
        seen = 0
        acc = 0

        def on_top_of_book(self, d: Any) -> None:
            Mid.seen += 1
            Mid.acc += (d.bid_price.mantissa + d.ask_price.mantissa) // 2

    class NoOrders:
        def send(self, message: Any) -> bool:
            return False

        def poll(self, handler: Any, limit: int) -> int:
            return 0

    cfg = load_config({"name": "bench", "account": "B", "symbols": ["ESZ6"], "md_stream": 2002,
                       "fragment_limit": 256}, env={})
    runner = StrategyRunner(Mid(cfg), NoOrders(), subscription=strat_sub)
    runner.on_start()
    t0 = time.perf_counter_ns()
    while Mid.seen < count:
        runner.do_work()
    strat = (time.perf_counter_ns() - t0) / count
    assert Mid.acc == total and runner.decoder.counters.gaps == 0
    pub.close()
    return {"bare poll_one loop ns/msg": bare, "strategy on_top_of_book ns/msg": strat, "strategy / bare": strat / bare}


def cmd_bench_feed(args: argparse.Namespace) -> int:
    from tickline.transport import Aeron, MediaDriver

    with MediaDriver.embedded() as driver, Aeron(driver.dir, pre_touch=True) as aeron:
        figures = {**_publish_cases(aeron, args.count, args.batch), **_consume_cases(aeron, args.count)}
    for k, v in figures.items():
        print(f"{k:56s} {v:10.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)
    return 0


def register_bench(bench_subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = bench_subparsers.add_parser("feed", help="market data: publish rate (claims, offer_batch) and strategy decode "
                                                 "cost against a bare poll_one loop, same run")
    p.add_argument("--count", type=int, default=1_000_000, help="messages per case")
    p.add_argument("--batch", type=int, default=256, help="messages per offer_batch")
    p.add_argument("--json", help="write the figures to this file")
    p.set_defaults(func=cmd_bench_feed)
