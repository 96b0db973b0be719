"""``tickline bench feed``: the feed's publish rate against a raw offer loop, and the cost of market data in a strategy.

One process, an embedded driver, IPC; every case is measured in each of
``--runs`` rounds (interleaved, so a change in the machine's load hits every
case alike), and reported in the common bench format (``tickline.benchkit``:
the table, ``--json``, ``--hgrm``, ``--plot``).  A case's histogram holds the
ns per message of every timed call (a publish call of ``--batch`` messages; a
chunk of 4096 messages read), so its p50 is the cost of a call that ran
uninterrupted and a call the scheduler preempted lands in the tail; ``per s``
is the median run's messages a second of wall-clock time, preemptions
included (on a loaded machine the two differ by the load).

Group ``publish`` (TopOfBook, 80-byte messages, ``--batch`` a call):

- ``publish_batch native``: the feed alone, what ``feed synthetic
  --pregenerate`` sends: a ``TopOfBookBatch`` encoded whole by
  cpp_ext/mdencode.cpp (every field, timestamps and seqNum included) and
  offered by one ``Publication.offer_frames`` call (one message per frame);
- ``publish_batch py``: the same batch stamped by one ``struct`` call (the
  Python reference), offered the same way;
- ``tob_batch native`` / ``tob_batch py``: ``offer_top_of_book_batch`` (rows
  of tuples encoded per call, natively or in Python);
- ``claim``: ``top_of_book``, one ``try_claim`` a message (a Python call each);
- ``offer_frames``: the messages, encoded beforehand, offered by one
  ``offer_frames`` call a batch (``publish_batch native`` without the
  encoding: the difference is what encoding and stamping cost);
- ``offer_batch views``: the messages, encoded beforehand, offered with
  ``offer_batch`` (a list of views: the path ``publish_batch`` took before
  ``offer_frames``);
- the peer, ``raw offer loop``: ``offer_repeat`` of one pre-encoded 80-byte
  message, a C loop of plain Aeron offers of the same bytes with no encoding and
  no sequencing: the transport's ceiling on this machine in this run.

Only the publish calls are timed; the subscriber drains between calls
(untimed) and must have received every message offered (checked at the end).

Group ``consume``: the same stream read by a bare ``poll_one`` loop that
unpacks bid/ask and computes the mid with one ``struct`` call (the peer)
against the strategy path (checks, sequence tracking, flyweight,
``on_top_of_book`` computing the same mid in a ``Strategy``).

Figures from a loaded machine are noise: say so when quoting them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import struct
import time
from typing import Any, Callable

from .publisher import NATIVE_BUILT, MarketDataEncoder, MarketDataPublisher, TopOfBookBatch

PEER = "peer"
#: The feed-alone target of issue 19 (TopOfBook messages a second).
TARGET_MSGS_PER_S = 5_000_000
FEED_CASE = "publish/publish_batch native"
CLAIM_COUNT_CAP = 200_000  # one Python call a message: capped so the run stays short


def _record(report: Any, name: str, label: str, group: str, samples_ns: list[float], rate: float) -> None:
    """One run of a case: ``samples_ns`` (ns per message, one value per timed call) as its histogram,
    ``rate`` (messages a second of wall-clock time over the whole run) as its throughput."""
    from tickline import benchkit

    c = report.case(name, label=label, group=group, unit="ns")
    c.histograms.append(benchkit.histogram_of(round(v) for v in samples_ns))
    c.run_throughputs.append(rate)
    c.throughput = statistics.median(c.run_throughputs)


class _PublishBench:
    """The publish cases on one exclusive publication and one draining subscription."""

    def __init__(self, aeron: Any, count: int, batch: int) -> None:
        self.sub = aeron.add_subscription("aeron:ipc", 2001)
        self.pub = aeron.add_exclusive_publication("aeron:ipc", 2001)
        deadline = time.monotonic() + 10.0
        while not self.pub.is_connected:
            if time.monotonic() > deadline:
                raise RuntimeError("bench publication never connected: channel=aeron:ipc stream_id=2001 fault=ours")
        self.count, self.batch = count, batch
        self.offered = self.received = 0
        self.py = MarketDataPublisher(self.pub, clock_ns=time.time_ns, native=False)
        self.native = MarketDataPublisher(self.pub, clock_ns=time.time_ns, native=True) if NATIVE_BUILT else None
        self.rows = [("ESZ6", 100 + i, 1, 101 + i, 1, 0) for i in range(batch)]
        self.tob_batch = TopOfBookBatch([row[:5] for row in self.rows])
        enc = MarketDataEncoder()
        self.pre = [bytearray(enc.TOB_LENGTH) for _ in range(batch)]
        for i, b in enumerate(self.pre):
            enc.encode_top_of_book(b, 0, i + 1, "ESZ6", 100, 1, 101, 1, 0, 0)
        self.one = bytes(self.pre[0])
        self.block = bytearray(b"".join(self.pre))

    def cases(self) -> list[tuple[str, str, Callable[[], int], int]]:
        """(name, label, step, messages) per case; ``step()`` publishes and returns how many went."""
        py, native, pub, batch = self.py, self.native, self.pub, self.batch
        out: list[tuple[str, str, Callable[[], int], int]] = []
        if native is not None:
            out.append((FEED_CASE, "publish_batch native", lambda: native.publish_batch(self.tob_batch), self.count))
        out.append(("publish/publish_batch py", "publish_batch py", lambda: py.publish_batch(self.tob_batch),
                    self.count))
        if native is not None:
            out.append(("publish/tob_batch native", "tob_batch native",
                        lambda: native.offer_top_of_book_batch(self.rows), self.count))
        out.append(("publish/tob_batch py", "tob_batch py", lambda: py.offer_top_of_book_batch(self.rows), self.count))
        out.append(("publish/claim", "claim",
                    lambda: sum(py.top_of_book("ESZ6", 100, 1, 101, 1, 0) for _ in range(batch)),
                    min(self.count, CLAIM_COUNT_CAP)))
        out.append(("publish/offer_frames", "offer_frames", lambda: int(pub.offer_frames(self.block, 0, 80, batch)),
                    self.count))
        out.append(("publish/offer_batch views", "offer_batch views", lambda: int(pub.offer_batch(self.pre)),
                    self.count))
        out.append(("publish/peer raw offer loop", PEER, lambda: int(pub.offer_repeat(self.one, batch)), self.count))
        return out

    def _drain(self) -> None:
        while True:
            n = self.sub.drain(4096)
            if n == 0:
                return
            self.received += n

    def measure(self, step: Callable[[], int], count: int) -> tuple[list[float], float]:
        """``step()`` until ``count`` messages went: (ns per message of each call that published,
        messages a second over the time spent in the calls), timing only the publish calls."""
        elapsed = sent = refused = 0
        samples: list[float] = []
        clock = time.perf_counter_ns
        while sent < count:
            t0 = clock()
            n = step()
            dt = clock() - t0
            elapsed += dt
            sent += n
            if n:
                samples.append(dt / n)
            self._drain()
            refused = refused + 1 if n == 0 else 0
            if refused > 100_000:
                raise RuntimeError(f"publication refuses every message although drained: sent={sent} "
                                   f"position={self.pub.position} fault=ours")
        self.offered += sent
        return samples, sent / elapsed * 1e9

    def close(self) -> None:
        self._drain()
        self.pub.close()
        self.sub.close()


def _consume_runs(aeron: Any, count: int, runs: int, report: Any) -> None:
    from tickline.strategy import Strategy, StrategyRunner, load_config

    bare_sub = aeron.add_subscription("aeron:ipc", 2002)
    strat_sub = aeron.add_subscription("aeron:ipc", 2002)
    pub = aeron.add_exclusive_publication("aeron:ipc", 2002)
    deadline = time.monotonic() + 10.0
    while not pub.is_connected:
        if time.monotonic() > deadline:
            raise RuntimeError("bench publication never connected: channel=aeron:ipc stream_id=2002 fault=ours")
    md = MarketDataPublisher(pub)
    chunk = 4096
    rows = [("ESZ6", 100 + i, 1, 102 + i, 1, 0) for i in range(256)]
    tob = struct.Struct("<40xqQqQ")  # header, symbol and the two timestamps skipped: bid, bid size, ask, ask size

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
    poll_one = bare_sub.poll_one
    clock = time.perf_counter_ns
    for _ in range(runs):
        bare_ns = strat_ns = 0
        bare_samples: list[float] = []
        strat_samples: list[float] = []
        total = done = 0
        Mid.seen = Mid.acc = 0
        while done < count:
            want = min(chunk, count - done)
            sent = 0
            while sent < want:  # both subscribers are behind by at most one chunk: never back pressured for long
                sent += md.offer_top_of_book_batch(rows[:min(256, want - sent)])
            n = 0
            t0 = clock()
            while n < want:
                v = poll_one()
                if v is None:
                    continue
                bid, _, ask, _ = tob.unpack_from(v, 0)
                total += (bid + ask) // 2
                n += 1
            t1 = clock()
            target = Mid.seen + want
            while Mid.seen < target:
                runner.do_work()
            t2 = clock()
            strat_ns += t2 - t1
            bare_ns += t1 - t0
            bare_samples.append((t1 - t0) / want)
            strat_samples.append((t2 - t1) / want)
            done += want
        if Mid.acc != total or runner.decoder.counters.gaps or runner.decoder.counters.duplicates:
            raise RuntimeError(f"bench consumers disagree: bare_sum={total} strategy_sum={Mid.acc} "
                               f"gaps={runner.decoder.counters.gaps} fault=ours")
        _record(report, "consume/peer poll_one", PEER, "consume", bare_samples, count / bare_ns * 1e9)
        _record(report, "consume/strategy", "strategy", "consume", strat_samples, count / strat_ns * 1e9)
    pub.close()
    bare_sub.close()
    strat_sub.close()


def run(count: int, batch: int, runs: int, consume_count: int) -> Any:
    """The report of one bench run (see the module doc)."""
    from tickline import benchkit
    from tickline.transport import Aeron, MediaDriver

    report = benchkit.Report("feed", reference=PEER)
    report.extra.update(count=count, batch=batch, runs=runs, consume_count=consume_count,
                        claim_count=min(count, CLAIM_COUNT_CAP), message_bytes=80, native_encoder=NATIVE_BUILT,
                        target_msgs_per_s=TARGET_MSGS_PER_S)
    with MediaDriver.embedded() as driver, Aeron(driver.dir, pre_touch=True) as aeron:
        bench = _PublishBench(aeron, count, batch)
        try:
            cases = bench.cases()
            for _ in range(runs):
                for name, label, step, n in cases:
                    _record(report, name, label, "publish", *bench.measure(step, n))
        finally:
            bench.close()
        if bench.received != bench.offered:
            raise RuntimeError(f"bench subscriber missed messages: offered={bench.offered} "
                               f"received={bench.received} fault=ours")
        report.extra["publish_messages_offered"] = bench.offered
        report.extra["publish_messages_received"] = bench.received
        if consume_count > 0:
            _consume_runs(aeron, consume_count, runs, report)
    feed = next((c for c in report.cases if c.name == FEED_CASE), None)
    if feed is not None:
        report.extra["feed_alone_msgs_per_s"] = round(feed.throughput or 0.0)
        report.extra["meets_target"] = (feed.throughput or 0.0) >= TARGET_MSGS_PER_S
        p50 = feed.merged().get_value_at_percentile(50.0)
        report.extra["feed_alone_uninterrupted_msgs_per_s"] = round(1e9 / p50) if p50 else 0
    report.extra["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return report


def cmd_bench_feed(args: argparse.Namespace) -> int:
    from tickline import benchkit

    for name, low, high in (("count", 1, 10**9), ("batch", 1, 65536), ("runs", 1, 100), ("consume_count", 0, 10**8)):
        v = getattr(args, name)
        if not low <= v <= high:
            raise benchkit.BenchInputError(f"option out of range: option=--{name.replace('_', '-')} value={v} "
                                           f"expected={low}..{high} fault=user")
    report = run(args.count, args.batch, args.runs, args.consume_count)
    benchkit.emit(report, args)
    e = report.extra
    if "feed_alone_msgs_per_s" in e:
        peer = next(c for c in report.cases if c.name == "publish/peer raw offer loop")
        print(f"feed alone ({FEED_CASE}): {e['feed_alone_msgs_per_s'] / 1e6:.2f} M msgs/s wall-clock, median of "
              f"{args.runs} runs ({e['feed_alone_uninterrupted_msgs_per_s'] / 1e6:.1f} M msgs/s at the p50 call); "
              f"raw offer loop {(peer.throughput or 0) / 1e6:.2f} M msgs/s; target {TARGET_MSGS_PER_S / 1e6:.0f} M: "
              f"{'met' if e['meets_target'] else 'NOT met'}; load average {e['load_average']}")
    return 0


def register_bench(bench_subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from tickline import benchkit

    p = bench_subparsers.add_parser("feed", help="market data: publish rate (publish_batch, offer_frames, claims) "
                                                 "against a raw offer loop, and strategy decode cost against a bare "
                                                 "poll_one loop, same run")
    p.add_argument("--count", type=int, default=1_000_000, help="messages per publish case and run")
    p.add_argument("--batch", type=int, default=256, help="messages per batch call")
    p.add_argument("--runs", type=int, default=5, help="rounds of every case (the table shows the median run)")
    p.add_argument("--consume-count", type=int, default=200_000, help="messages per consume case and run (0: skip)")
    benchkit.add_output_args(p)
    p.set_defaults(func=lambda a: benchkit.run_guarded("tickline bench feed", cmd_bench_feed, a))
