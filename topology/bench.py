"""``tickline bench pipeline``: the assembled pipeline's costs, each against a bare peer in the same run.

Three parts (``--parts tick,order,fanout``), each case a latency histogram in
the common bench format (:mod:`tickline.benchkit`; ``peer_ratio`` is a case's
p50 over its group's ``bare`` case):

- ``tick``: tick-to-order inside one process on an embedded driver.  A
  publisher puts one top of book into the log, then two readers of that
  stream each take it and offer an IOC order taking the touch (buy at the
  ask, sell at the bid, alternately) onto an Aeron IPC order stream: the
  Strategy SDK (``StrategyRunner.do_work`` -> checks, sequence tracking,
  flyweight, ``on_top_of_book`` -> ``self.buy`` -> bookkeeping, encode ->
  the gateway's ``offer``) and the same decision as a bare ``poll_one`` loop
  (``struct`` unpack, the generated NewOrder encoder, ``offer``).  Measured
  per tick from the call that polls to the order's ``offer`` returning; who
  goes first alternates.  Between ticks, untimed, an in-process venue
  (``SimulatedVenue``) answers the SDK's orders so its open orders stay few.
- ``order``: orders at a fixed rate (``--rates``) through a 3-member cluster
  over IPC (one shared aeronmd, each member its own process, as ``bench
  cluster --transport ipc`` runs them), latency from each order's *intended*
  send time (no coordinated omission: a late loop sends what is due at once,
  and the wait counts).  ``pipeline``: a Strategy sends through
  ``SequencerGateway`` to the sequencer service (``tickline.sequencer.service``:
  risk, global sequence, order state) up to its ``Sequenced`` receipt; stages:
  intended -> ``buy()`` returned (``sdk submit``), ``buy()`` returned ->
  receipt.  ``bare``: ``bench cluster``'s client and service (the struct
  codec, ``tickline.sequencer.basic``) up to its answer.  Both clusters run
  at once, each is primed (its members' first orders load code) and each
  rate's two phases alternate ``--rounds`` times (who goes first alternates
  too), so the machine's load falls on both alike.  A case's histogram holds
  every round; after the table, one line a rate gives each round's
  pipeline/bare p50 ratio, their median against the target (< 1.2x), and the
  cores the phases kept busy (process CPU of the client, the three members
  and aeronmd over the phase's wall time): when that is close to the
  machine's cores, the ratio says how the scheduler shared them.  No venue
  runs: the venue stages are ``tickline demo``'s.
- ``fanout``: one feed process publishing top of book (``MarketDataPublisher.
  publish_batch``, flat out, paced only by back pressure) to 1, 2, 4 strategy
  processes (``--strategies``) on one shared aeronmd.  Each strategy process
  reads the stream twice: through the SDK (``StrategyRunner`` with a strategy
  computing the mid) and through a bare ``poll_one`` loop doing the same;
  the cases are nanoseconds per message of each, one sample per poll that
  read any (the per-message mean of that poll).  The sustained rate is the
  messages published over the time from the feed's first publish to the
  last strategy's last message (every strategy keeps up, or the rate says
  so); per strategy: received, delivered, gaps, duplicates, missing,
  malformed (the last four must be 0).  The bare loops check the sequence
  too (``bare_gaps``): ``poll_one`` hands out a view of a fragment already
  consumed, which the driver may zero meanwhile (see topology/README.md).

Every process started is killed by its PID and every directory removed at the
end, on Ctrl-C and SIGTERM too; a child also dies with this process
(``PR_SET_PDEATHSIG``).  Figures from a loaded machine are noise: say so.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Sequence

from tickline import benchkit

PARTS = ("tick", "order", "fanout")
SYMBOL = "ESZ6"
MAX_RATE = 1_000_000
MAX_STRATEGIES = 16
#: --quick: seconds per phase
QUICK_SECONDS = 0.5
_PRICE = 6789_250_000_000
_TICK = 250_000_000
#: the fan-out's stream: a small term, so the feed runs at most half of it (6,500 messages) ahead of the
#: slowest strategy and its publish rate is the rate every strategy keeps up with (back pressure paces it)
FANOUT_CHANNEL = "aeron:ipc?term-length=1m"
_TOB = struct.Struct("<40xq8xq8xQ")  # header, symbol, both timestamps skipped: bid, ask, seqNum (sizes skipped)


def _progress(message: str) -> None:
    print(f"tickline bench pipeline: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- options


def parse_parts(text: str) -> tuple[str, ...]:
    parts = tuple(p.strip() for p in text.split(",") if p.strip())
    bad = [p for p in parts if p not in PARTS]
    if not parts or bad:
        raise benchkit.BenchInputError(f"unknown part: option=--parts value={text!r} known={','.join(PARTS)} fault=user")
    return tuple(dict.fromkeys(parts))


def _int_list(text: str, option: str, low: int, high: int, what: str) -> list[int]:
    out = []
    for item in text.split(","):
        item = item.strip()
        try:
            v = int(item)
        except ValueError:
            raise benchkit.BenchInputError(f"bad {what}: option={option} value={item!r} expected=an integer "
                                           f"{low}..{high} fault=user") from None
        if not low <= v <= high:
            raise benchkit.BenchInputError(f"bad {what}: option={option} value={v} expected={low}..{high} fault=user")
        out.append(v)
    return list(dict.fromkeys(out))


def parse_rates(text: str) -> list[int]:
    return _int_list(text, "--rates", 1, MAX_RATE, "rate (orders/s)")


def parse_strategies(text: str) -> list[int]:
    return _int_list(text, "--strategies", 1, MAX_STRATEGIES, "strategy count")


# ---------------------------------------------------------------- processes


def _die_with_parent() -> None:
    # In the child, before exec: killed when the bench dies, even by SIGKILL.
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _tail(path: str, lines: int = 15) -> str:
    """The last ``lines`` of a child's log (its directory goes at the end of the run)."""
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return "(no log)\n"


class _Children:
    """Processes this bench started, and directories it made: ``close()`` kills the
    processes by PID (SIGTERM, then SIGKILL after ``grace`` s) and removes the directories."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.dirs: list[str] = []

    def spawn(self, argv: list[str], log_path: str) -> "subprocess.Popen[bytes]":
        with open(log_path, "ab") as log:
            p = subprocess.Popen([sys.executable, "-m", "tickline.topology.bench", *argv], stdin=subprocess.DEVNULL,
                                 stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        p.log_path = log_path  # type: ignore[attr-defined]
        self.procs.append(p)
        return p

    def close(self, grace: float = 2.0) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for p in self.procs:
            try:
                p.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs.clear()
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)
        self.dirs.clear()


def _wait_for(cond: Callable[[], bool], timeout: float, what: str,
              children: Sequence["subprocess.Popen[bytes]"] = ()) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        dead = [p for p in children if p.poll() is not None]
        if dead:
            raise RuntimeError(f"a child exited early: fault=ours what={what} pid={dead[0].pid} "
                               f"returncode={dead[0].returncode} log:\n{_tail(getattr(dead[0], 'log_path', ''))}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out: fault=ours what={what} timeout_s={timeout:.0f}")
        time.sleep(0.005)


# ---------------------------------------------------------------- part 1: tick -> order, one process


def _retry(attempt: Callable[[], bool], what: str, seconds: float = 5.0) -> None:
    """``attempt()`` until it is true; a readers' stream that refuses for ``seconds`` is our bug."""
    deadline = time.monotonic() + seconds
    while not attempt():
        if time.monotonic() > deadline:
            raise RuntimeError(f"refused for {seconds:.0f} s: fault=ours what={what}")


class _OfferGateway:
    """The tick part's ``OrderGateway``: ``send`` offers the order on an Aeron publication
    (the moment measured: ``offered_at``); ``poll`` hands back the venue's reports."""

    def __init__(self, publication: Any, venue: Any) -> None:
        self.publication = publication
        self.venue = venue
        self.offered_at = 0
        self.refused = 0

    def send(self, message: Any) -> bool:
        if self.publication.offer(message) < 0:
            self.refused += 1
            return False
        self.offered_at = time.perf_counter_ns()
        return True

    def poll(self, handler: Callable[[memoryview], None], limit: int) -> int:
        return int(self.venue.poll(handler, limit))


def _touch_taker() -> type:
    from tickline.strategy import Strategy

    class TouchTaker(Strategy):
        """Every top of book: an IOC order taking the touch, buy at the ask then sell at the bid."""

        n = 0

        def on_top_of_book(self, tob: Any) -> None:
            self.n += 1
            if self.n & 1:
                self.buy(tob.symbol, 1, tob.ask_price.mantissa, tif="ImmediateOrCancel")
            else:
                self.sell(tob.symbol, 1, tob.bid_price.mantissa, tif="ImmediateOrCancel")

    return TouchTaker


class _BareTouchTaker:
    """The same decision as ``TouchTaker``, written as a bare ``poll_one`` loop: one ``struct``
    unpack, a sequence check, the generated NewOrder encoder, one ``offer``."""

    def __init__(self, subscription: Any, publication: Any, account: str) -> None:
        from tickline.feed import sbe

        m = sbe.orders()
        self.poll_one = subscription.poll_one
        self.publication = publication
        self.buf = bytearray(256)
        self.enc = m.NewOrderEncoder()
        self.header = m.HEADER_LENGTH
        self.buy_side, self.sell_side = m.Side.Buy, m.Side.Sell
        self.limit, self.ioc = m.OrdType.Limit, m.TimeInForce.ImmediateOrCancel
        self.account = account
        self.symbol_bytes = SYMBOL.encode().ljust(16, b"\0")
        self.n = 0
        self.expected: int | None = None
        self.gaps = 0
        self.unreadable = 0
        self.refused = 0

    def step(self) -> int:
        """Read one message, offer its order; returns the ``perf_counter_ns`` the offer returned at
        (-1: nothing to read; 0: not our symbol, or bytes the driver had cleaned, see ``unreadable``)."""
        v = self.poll_one()
        if v is None:
            return -1
        if v[8:24] != self.symbol_bytes:
            self.unreadable += 1
            return 0
        bid, ask, seq = _TOB.unpack_from(v, 0)
        if seq != self.expected and self.expected is not None:
            self.gaps += 1
        self.expected = seq + 1
        self.n += 1
        e = self.enc.wrap_and_apply_header(self.buf, 0)
        e.cl_ord_id = f"B-{self.n}"
        e.account = self.account
        e.symbol = SYMBOL
        buy = self.n & 1
        e.side = self.buy_side if buy else self.sell_side
        e.ord_type = self.limit
        e.time_in_force = self.ioc
        e.price.mantissa = ask if buy else bid
        e.stop_price.mantissa = None
        e.quantity = 1
        e.transact_time = time.time_ns()
        e.expire_time = None
        n = self.header + e.encoded_length
        if self.publication.offer(self.buf, 0, n) < 0:  # the order stream is drained every tick: rare
            self.refused += 1
            _retry(lambda: self.publication.offer(self.buf, 0, n) > 0, "bare order offer")
        return time.perf_counter_ns()


def tick_part(report: benchkit.Report, seconds: float) -> None:
    from tickline.feed import MarketDataPublisher
    from tickline.strategy import StrategyRunner, load_config
    from tickline.strategy.testing import SimulatedVenue
    from tickline.transport import Aeron, MediaDriver

    md_stream, sdk_stream, bare_stream = 4001, 4002, 4003
    with MediaDriver.embedded() as driver, Aeron(driver.dir, pre_touch=True) as aeron:
        sdk_md = aeron.add_subscription("aeron:ipc", md_stream)
        bare_md = aeron.add_subscription("aeron:ipc", md_stream)
        md_pub = aeron.add_exclusive_publication("aeron:ipc", md_stream)
        sdk_orders = aeron.add_exclusive_publication("aeron:ipc", sdk_stream)
        sdk_orders_in = aeron.add_subscription("aeron:ipc", sdk_stream)
        bare_orders = aeron.add_exclusive_publication("aeron:ipc", bare_stream)
        bare_orders_in = aeron.add_subscription("aeron:ipc", bare_stream)
        _wait_for(lambda: md_pub.is_connected and sdk_orders.is_connected and bare_orders.is_connected, 10,
                  "tick part's publications connected")
        venue = SimulatedVenue()
        gateway = _OfferGateway(sdk_orders, venue)
        cfg = load_config({"name": "tick", "account": "TICK1", "symbols": [SYMBOL], "md_stream": md_stream,
                           "cancel_on_stop": False}, env={})
        strategy = _touch_taker()(cfg)
        runner = StrategyRunner(strategy, gateway, subscription=sdk_md)
        bare = _BareTouchTaker(bare_md, bare_orders, "TICK2")
        md = MarketDataPublisher(md_pub)
        to_venue = lambda buf, _header: venue.send(bytes(buf))  # noqa: E731
        runner.on_start()
        sdk_ns: list[int] = []
        bare_ns: list[int] = []
        warm = 1_000
        i = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end or i < 2 * warm:
            bid = _PRICE + (i % 64) * _TICK
            _retry(lambda: md.top_of_book(SYMBOL, bid, 1, bid + _TICK, 1, time.time_ns()), "market data offer")
            venue.set_market(SYMBOL, bid, bid + _TICK)
            for sdk_turn in ((True, False) if i & 1 else (False, True)):
                if sdk_turn:
                    sent = runner.sent
                    t0 = time.perf_counter_ns()
                    runner.do_work()
                    if runner.sent != sent + 1:
                        raise RuntimeError(f"the strategy did not send on a tick: fault=ours tick={i} "
                                           f"counters={runner.counters()}")
                    if i >= warm:
                        sdk_ns.append(gateway.offered_at - t0)
                else:
                    t0 = time.perf_counter_ns()
                    t1 = bare.step()
                    if t1 < 0:
                        raise RuntimeError(f"the bare loop read no tick: fault=ours tick={i}")
                    if i >= warm and t1:
                        bare_ns.append(t1 - t0)
            # untimed: the venue answers the SDK's order, the strategy applies the reports
            sdk_orders_in.poll(to_venue, 16)
            bare_orders_in.drain(16)
            runner.do_work()
            i += 1
        counters = runner.counters()
        runner.on_close()
    md_counters = counters["md"]
    extra = {"ticks": i, "warmup_ticks": warm, "sdk_orders": runner.sent, "bare_orders": bare.n,
             "sdk_gaps": md_counters["gaps"], "sdk_duplicates": md_counters["duplicates"], "bare_gaps": bare.gaps,
             "bare_unreadable": bare.unreadable,
             "open_orders_at_end": counters["open_orders"], "callback_errors": counters["callback_errors"]}
    c = report.case("tick: strategy SDK", label="sdk", group="tick", extra=extra)
    c.histograms.append(benchkit.histogram_of(sdk_ns))
    c = report.case("tick: bare poll_one", label="bare", group="tick")
    c.histograms.append(benchkit.histogram_of(bare_ns))


# ---------------------------------------------------------------- part 2: order -> sequenced, 3-member IPC cluster

#: the pipeline cluster's service, and risk limits no order of this bench reaches (TICKLINE_SEQUENCER_*):
#: no venue runs, so every order stays open and counts against the position limit
PIPELINE_SERVICE = "tickline.sequencer.service:from_topology"
PIPELINE_LIMITS = {"TICKLINE_SEQUENCER_MAX_POSITION": str(10**15), "TICKLINE_SEQUENCER_MAX_ORDERS": str(10**9),
                   "TICKLINE_SEQUENCER_VENUE_BACKLOG": str(10**9)}


class _Schedule:
    """Intended send times at ``rate``/s from ``start_ns``: ``due(now)`` yields what is due."""

    def __init__(self, rate: int, start_ns: int) -> None:
        self.period = 1e9 / rate
        self.start = start_ns
        self.i = 0

    def next_ns(self) -> int:
        return self.start + int(self.i * self.period)

    def due(self, now: int, end: int) -> list[int]:
        out = []
        t = self.next_ns()
        while t <= now and t < end:
            out.append(t)
            self.i += 1
            t = self.next_ns()
        return out


#: counts of a phase's ``extra`` that add up over rounds (the rest is kept per round)
_SUMMED = ("offered", "unanswered", "rejected", "denied", "send_retries", "retries")


def _order_result(report: benchkit.Report, rate: int, name: str, label: str, group: str, samples: list[int],
                  seconds: float, extra: dict[str, Any] | None = None) -> None:
    """One round of one case: its histogram is appended (a run of the case), its counts added up,
    and its own figures (p50, CPU, leaders) kept under ``rounds``."""
    c = report.case(f"order@{rate} {name}", label=label, group=group)
    h = benchkit.histogram_of(samples)
    c.histograms.append(h)
    c.run_throughputs.append(round(len(samples) / seconds, 1) if seconds > 0 else 0.0)
    c.throughput = round(statistics.median(c.run_throughputs), 1)
    if extra is not None:
        for k in _SUMMED:
            if k in extra:
                c.extra[k] = c.extra.get(k, 0) + extra[k]
        p50 = h.get_value_at_percentile(50) / 1000 if samples else None
        c.extra.setdefault("rounds", []).append({"p50_us": p50, **extra})


def _rounded(d: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 3) for k, v in d.items()}


def _bare_rate(cluster: Any, report: benchkit.Report, leader: int, rate: int, seconds: float, warm: float) -> None:
    """``bench cluster``'s client and service, measured from the intended send time."""
    import importlib

    from tickline.cluster.aeron_io import AeronClusterClient
    from tickline.cluster.bench import BENCH_WORKLOAD, _CpuMeter, _idle

    w = importlib.import_module(BENCH_WORKLOAD)
    codec, new_order, sides = w.StructOrderCodec(), w.NewOrder, (w.Side.BUY, w.Side.SELL)
    client = AeronClusterClient(cluster.topo.members, session_id=random.getrandbits(48), retry_timeout=250,
                                aeron_base=cluster.aeron_dir, invoker=cluster.threading == "invoker",
                                credentials=cluster.credentials)
    try:
        deadline = time.monotonic() + 30
        while not client.client.connected:
            client.poll()
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not accept the bare client's session: fault=ours (see the member logs)")
            time.sleep(0.001)
        idle = _idle()
        meter = _CpuMeter(cluster, leader)
        sent: dict[int, tuple[int, int]] = {}
        e2e: list[int] = []
        stage: list[int] = []
        perf = time.perf_counter_ns
        start = perf()
        measure_from = start + int(warm * 1e9)
        end = measure_from + int(seconds * 1e9)
        sched = _Schedule(rate, start)
        n = 0
        while True:
            now = perf()
            work = 0
            if now < end:
                for due in sched.due(now, end):
                    corr = client.offer(codec.encode_order(new_order(n % 1000, sides[n & 1], 1, 100, n)))
                    sent[corr] = (due, perf())
                    n += 1
                    work += 1
            elif not sent or now > end + 10_000_000_000:
                break
            got = client.poll()
            if got:
                t = perf()
                for corr, _ in got:
                    rec = sent.pop(corr, None)
                    if rec is not None and rec[0] >= measure_from:
                        e2e.append(t - rec[0])
                        stage.append(t - rec[1])
            idle.idle(work + len(got) + client.work)
        extra = {"offered": n, "unanswered": len(sent), "retries": client.client.retries,
                 **_rounded(meter.used((perf() - start) / 1e9, "_cores")), "leader_at_start": leader,
                 "leader_at_end": cluster.leader()}
        _order_result(report, rate, "bare", "bare", f"order@{rate}", e2e, seconds, extra)
        _order_result(report, rate, "bare offer->ack", "bare-stage", f"order@{rate} stages", stage, seconds)
    finally:
        client.close()


def _pipeline_rate(cluster: Any, report: benchkit.Report, leader: int, rate: int, seconds: float, warm: float) -> None:
    """A Strategy -> SequencerGateway -> the sequencer service, to the Sequenced receipt."""
    from tickline.cluster.bench import _CpuMeter, _idle
    from tickline.sequencer.client import SequencerGateway
    from tickline.strategy import Strategy, StrategyRunner, load_config
    from tickline.transport import Aeron

    class Sender(Strategy):
        """Sends what the bench's schedule says (from the bench's loop, as a timer would)."""

        rejected = 0
        sent: dict[str, tuple[int, int]] = {}

        def on_reject(self, order: Any, report: Any) -> None:
            self.rejected += 1
            self.sent.pop(order.cl_ord_id, None)

    gateway = SequencerGateway(cluster.topo.members, aeron_dir=cluster.aeron_dir, credentials=cluster.credentials,
                               retry_timeout=250)
    aeron = Aeron(cluster.aeron_dir)
    try:
        # the strategy's market data: a stream nobody publishes (this part measures the order path)
        md = aeron.add_subscription("aeron:ipc", 4010)
        cfg = load_config({"name": f"order{rate}", "account": "ORD1", "symbols": [SYMBOL], "md_stream": 4010,
                           "max_pending_sends": 1_000_000, "cancel_on_stop": False}, env={})
        strategy = Sender(cfg)
        runner = StrategyRunner(strategy, gateway, subscription=md)
        runner.on_start()
        deadline = time.monotonic() + 30
        while not gateway.connected:
            runner.do_work()
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not accept the strategy's session: fault=ours (see the member logs)")
            time.sleep(0.001)
        perf = time.perf_counter_ns
        sent = strategy.sent = {}
        e2e: list[int] = []
        submit: list[int] = []
        sequenced: list[int] = []
        start = perf()
        measure_from = start + int(warm * 1e9)
        end = measure_from + int(seconds * 1e9)

        def on_sequenced(cl_ord_id: str, _order_id: int, _ts: int) -> None:
            rec = sent.pop(cl_ord_id, None)
            if rec is not None and rec[0] >= measure_from:
                t = perf()
                e2e.append(t - rec[0])
                submit.append(rec[1] - rec[0])
                sequenced.append(t - rec[1])

        gateway.on_sequenced = on_sequenced
        idle = _idle()
        meter = _CpuMeter(cluster, leader)
        sched = _Schedule(rate, start)
        n = 0
        px = (_PRICE, _PRICE + _TICK)
        while True:
            now = perf()
            work = 0
            if now < end:
                for due in sched.due(now, end):
                    order = (strategy.buy if n & 1 == 0 else strategy.sell)(SYMBOL, 1, px[n & 1])
                    sent[order.cl_ord_id] = (due, perf())
                    n += 1
                    work += 1
            elif not sent or now > end + 10_000_000_000:
                break
            idle.idle(work + runner.do_work())
        extra = {"offered": n, "unanswered": len(sent), "rejected": strategy.rejected, "denied": runner.denied,
                 "send_retries": runner.send_retries, "retries": gateway.cluster.client.retries,
                 **_rounded(meter.used((perf() - start) / 1e9, "_cores")), "leader_at_start": leader,
                 "leader_at_end": cluster.leader()}
        _order_result(report, rate, "pipeline", "pipeline", f"order@{rate}", e2e, seconds, extra)
        _order_result(report, rate, "sdk submit", "pipeline-stage", f"order@{rate} stages", submit, seconds)
        _order_result(report, rate, "offer->sequenced", "pipeline-stage", f"order@{rate} stages", sequenced, seconds)
    finally:
        gateway.close()
        aeron.close()


def order_part(report: benchkit.Report, rates: list[int], seconds: float, warm: float, rounds: int = 1) -> None:
    from tickline.cluster.aeron_io import threading_mode
    from tickline.cluster.bench import _Cluster, _wait_leader

    # Both clusters run at once, and each rate's phases alternate, bare and pipeline, ``rounds``
    # times (which goes first alternates too), so the machine's load (other jobs, heat, the host)
    # falls on both alike; each round's ratio is kept, and their median is what ``order_summary`` says.
    kinds = ("bare", "pipeline")
    with tempfile.TemporaryDirectory(prefix="tickline-bench-pipeline-") as tmp:
        clusters: dict[str, Any] = {}
        try:
            for kind in kinds:
                _progress(f"order: starting a 3-member IPC cluster ({kind})")
                os.makedirs(os.path.join(tmp, kind))
                clusters[kind] = _Cluster(os.path.join(tmp, kind), 3, "none", threading_mode(), "ipc",
                                          service=PIPELINE_SERVICE if kind == "pipeline" else None,
                                          member_env=PIPELINE_LIMITS if kind == "pipeline" else None)
            leaders = {kind: _wait_leader(c) for kind, c in clusters.items()}
            for kind in kinds:  # the members' first orders load code (codecs generated on first use): not measured
                _progress(f"order: priming the {kind} cluster")
                run = _pipeline_rate if kind == "pipeline" else _bare_rate
                run(clusters[kind], benchkit.Report("prime"), leaders[kind], 200, 0.5, 0.0)
            for rate in rates:
                for r in range(rounds):
                    for kind in (kinds if r % 2 == 0 else kinds[::-1]):
                        _progress(f"order: {kind} at {rate}/s for {warm + seconds:.1f} s"
                                  + (f" (round {r + 1} of {rounds})" if rounds > 1 else ""))
                        run = _pipeline_rate if kind == "pipeline" else _bare_rate
                        run(clusters[kind], report, leaders[kind], rate, seconds, warm)
                        # an overloaded cluster may have elected another (or be electing: then the last one known
                        # names the roles of the next phase's busy cores; its client finds the leader itself)
                        leaders[kind] = clusters[kind].leader() or leaders[kind]
        except RuntimeError as exc:  # the members' logs go with the directory: say what they said
            logs = "".join(f"\n{kind} member-{m}.log:\n" + _tail(os.path.join(tmp, kind, f"member-{m}.log"))
                           for kind, c in clusters.items() for m in c.procs)
            raise RuntimeError(f"{exc}{logs}") from None
        finally:
            for c in clusters.values():
                c.close()
    # per rate, the end-to-end cases (bare, pipeline) and then the stages: the table reads top to bottom
    ordered = [c for r in rates for g in (f"order@{r}", f"order@{r} stages") for c in report.cases if c.group == g]
    report.cases = [c for c in report.cases if c not in ordered] + ordered
    report.extra["order_summary"] = [_order_summary(report, rate) for rate in rates]


#: the issue's target: the pipeline adds less than 20% to the bare sequencer's p50
ORDER_TARGET = 1.2


def _order_summary(report: benchkit.Report, rate: int) -> dict[str, Any]:
    """One rate's reading: each round's pipeline/bare p50 ratio, their median against the target,
    and the CPU the phases kept busy (cores, of ``os.cpu_count()``): a ratio measured while the
    machine had no core to spare says how the scheduler shared it as much as what the pipeline costs."""
    by = {c.name: c for c in report.cases}
    bare, pipe = by[f"order@{rate} bare"].extra["rounds"], by[f"order@{rate} pipeline"].extra["rounds"]
    ratios = [round(p["p50_us"] / b["p50_us"], 3) for b, p in zip(bare, pipe) if b["p50_us"] and p["p50_us"]]
    median = round(statistics.median(ratios), 3) if ratios else None
    cores = {kind: round(statistics.median(r["total_cores"] for r in rounds), 2)
             for kind, rounds in (("bare", bare), ("pipeline", pipe)) if all("total_cores" in r for r in rounds)}
    return {"rate": rate, "round_ratios": ratios, "median_ratio": median, "target": ORDER_TARGET,
            "met": median is not None and median < ORDER_TARGET, "cores_busy": cores, "cpu_count": os.cpu_count()}


def _summary_line(s: dict[str, Any]) -> str:
    ratios = ", ".join(f"{r:.2f}" for r in s["round_ratios"])
    verdict = "no ratio" if s["median_ratio"] is None else (
        f"median {s['median_ratio']:.2f}x, target < {s['target']}x: {'met' if s['met'] else 'NOT met'}")
    busy = ", ".join(f"{k} {v:.2f}" for k, v in s["cores_busy"].items())
    return (f"order@{s['rate']}: pipeline/bare p50 by round {ratios} ({verdict}); "
            f"CPU busy (cores of {s['cpu_count']}): {busy}")


# ---------------------------------------------------------------- part 3: feed fan-out


def fanout_part(report: benchkit.Report, counts: list[int], seconds: float) -> None:
    from tickline.cluster.aeron_io import SHARED_DRIVER_OPTIONS, default_aeron_base
    from tickline.transport import MediaDriver

    children = _Children()
    run_dir = tempfile.mkdtemp(prefix="tickline-bench-pipeline-")
    children.dirs.append(run_dir)
    aeron_dir = tempfile.mkdtemp(prefix="tickline-bench-pipeline-md-", dir=default_aeron_base())
    shutil.rmtree(aeron_dir)
    children.dirs.append(aeron_dir)
    driver = None
    try:
        with open(os.path.join(run_dir, "aeronmd.log"), "ab") as log:
            driver = MediaDriver.launch(aeron_dir, options=SHARED_DRIVER_OPTIONS, stdout=log, stderr=subprocess.STDOUT)
        for n in counts:
            _progress(f"fanout: 1 feed -> {n} strateg{'y' if n == 1 else 'ies'} for {seconds:.1f} s")
            _fanout_round(report, children, aeron_dir, os.path.join(run_dir, f"n{n}"), n, 4100 + n, seconds)
    finally:
        children.close()
        if driver is not None:
            driver.close()
        else:  # interrupted while it started: the aeronmd in our own new directory is ours
            from tickline.transport.driver import driver_pid_if_active

            pid = driver_pid_if_active(aeron_dir)
            if pid:
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(aeron_dir, ignore_errors=True)


def _fanout_round(report: benchkit.Report, children: _Children, aeron_dir: str, rdir: str, n: int, stream: int,
                  seconds: float) -> None:
    os.makedirs(rdir)
    common = ["--aeron-dir", aeron_dir, "--stream", str(stream), "--dir", rdir]
    feed = children.spawn(["feed", *common, "--seconds", str(seconds)], os.path.join(rdir, "feed.log"))
    path = lambda name: os.path.join(rdir, name)  # noqa: E731
    _wait_for(lambda: os.path.exists(path("feed.ready")), 60, "feed process ready", [feed])
    strategies = [children.spawn(["strategy", *common, "--name", f"s{k}"], path(f"s{k}.log")) for k in range(n)]
    procs = [feed, *strategies]
    _wait_for(lambda: all(os.path.exists(path(f"s{k}.ready")) for k in range(n)), 60, "strategy processes ready", procs)
    open(path("go"), "w").close()
    _wait_for(lambda: os.path.exists(path("feed.json")), seconds + 60, "feed published", procs)
    with open(path("feed.json")) as f:
        feed_result = json.load(f)
    with open(path("stop.tmp"), "w") as f:
        f.write(str(feed_result["published"]))
    os.replace(path("stop.tmp"), path("stop"))
    _wait_for(lambda: all(os.path.exists(path(f"s{k}.json")) for k in range(n)), 60, "strategies drained", strategies)
    open(path("done"), "w").close()
    results = []
    for k in range(n):
        with open(path(f"s{k}.json")) as f:
            results.append(json.load(f))
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    published = feed_result["published"]
    last = max(r["last_ns"] for r in results)
    span = (last - feed_result["start_ns"]) / 1e9
    sustained = published / span if span > 0 else 0.0
    per_strategy = []
    sdk = report.case(f"fanout {n}: strategy SDK", label="sdk", group=f"fanout {n}")
    bare = report.case(f"fanout {n}: bare poll_one", label="bare", group=f"fanout {n}")
    h_sdk, h_bare = benchkit.new_histogram(), benchkit.new_histogram()
    for r in results:
        h_sdk.add(benchkit.histogram_of(r["sdk_ns_per_msg"]))
        h_bare.add(benchkit.histogram_of(r["bare_ns_per_msg"]))
        per_strategy.append({k: r[k] for k in ("name", "received", "delivered", "gaps", "duplicates", "missing",
                                               "malformed", "bare_received", "bare_gaps", "sdk_mean_ns", "bare_mean_ns")}
                            | {"lag_ms": round((r["last_ns"] - feed_result["end_ns"]) / 1e6, 3),
                               "kept_up": r["delivered"] == published and r["bare_received"] == published})
    sdk.histograms.append(h_sdk)
    bare.histograms.append(h_bare)
    sdk.throughput = round(sustained, 1)
    sdk.extra = {"strategies": n, "published": published, "feed_rate": round(published / feed_result["seconds"], 1),
                 "sustained_rate": round(sustained, 1), "back_pressured": feed_result["back_pressured"],
                 "per_strategy": per_strategy}


def _child_feed(args: argparse.Namespace) -> int:
    from tickline.feed.publisher import MarketDataPublisher, TopOfBookBatch
    from tickline.transport import Aeron
    from tickline.transport.idle import BackoffIdleStrategy

    path = lambda name: os.path.join(args.dir, name)  # noqa: E731
    with Aeron(args.aeron_dir) as aeron:
        pub = aeron.add_exclusive_publication(FANOUT_CHANNEL, args.stream)
        md = MarketDataPublisher(pub)
        batch = TopOfBookBatch([(SYMBOL, _PRICE + i * _TICK, 1 + i, _PRICE + (i + 1) * _TICK, 2 + i) for i in range(64)])
        open(path("feed.ready"), "w").close()
        while not os.path.exists(path("go")):
            time.sleep(0.001)
        idle = BackoffIdleStrategy(max_spins=10, max_yields=10, min_park_ns=1_000, max_park_ns=50_000)
        clock = time.monotonic_ns
        start = clock()
        end = start + int(args.seconds * 1e9)
        at = 0
        while clock() < end:
            done = md.publish_batch(batch, at)
            at = (at + done) % len(batch.views)
            idle.idle(done)
        stop = clock()
        doc = {"published": md.published, "back_pressured": md.back_pressured, "start_ns": start, "end_ns": stop,
               "seconds": (stop - start) / 1e9}
        with open(path("feed.json.tmp"), "w") as f:
            json.dump(doc, f)
        os.replace(path("feed.json.tmp"), path("feed.json"))
        # keep the publication until the strategies have read all of it
        deadline = time.monotonic() + 120
        while not os.path.exists(path("done")) and time.monotonic() < deadline:
            time.sleep(0.005)
    return 0


def _child_strategy(args: argparse.Namespace) -> int:
    from array import array

    from tickline.strategy import Strategy, StrategyRunner, load_config
    from tickline.transport import Aeron
    from tickline.transport.idle import BackoffIdleStrategy

    class Mid(Strategy):
        """Keeps the mid of every top of book: the callback the fan-out measures."""

        mid = 0

        def on_top_of_book(self, tob: Any) -> None:
            self.mid = (tob.bid_price.mantissa + tob.ask_price.mantissa) // 2

    class NoOrders:
        def send(self, message: Any) -> bool:
            return False

        def poll(self, handler: Any, limit: int) -> int:
            return 0

    path = lambda name: os.path.join(args.dir, name)  # noqa: E731
    with Aeron(args.aeron_dir) as aeron:
        sdk_sub = aeron.add_subscription("aeron:ipc", args.stream)
        bare_sub = aeron.add_subscription("aeron:ipc", args.stream)
        cfg = load_config({"name": args.name, "account": "FAN1", "symbols": [SYMBOL], "md_stream": args.stream},
                          env={})
        strategy = Mid(cfg)
        runner = StrategyRunner(strategy, NoOrders(), subscription=sdk_sub)
        runner.on_start()
        deadline = time.monotonic() + 30
        while not (sdk_sub.image_count and bare_sub.image_count):
            if time.monotonic() > deadline:
                print(f"no image of the feed's stream: fault=ours stream={args.stream}", file=sys.stderr)
                return 1
            time.sleep(0.001)
        open(path(f"{args.name}.ready"), "w").close()
        counters = runner.decoder.counters
        limit = cfg.fragment_limit
        poll_one = bare_sub.poll_one
        unpack = _TOB.unpack_from
        sdk_samples, bare_samples = array("q"), array("q")
        sdk_total = bare_total = bare_n = bare_gaps = 0
        expected: int | None = None
        mid = 0
        first_ns = last_ns = 0
        published: int | None = None
        quiet_since: float | None = None
        idle = BackoffIdleStrategy(max_spins=10, max_yields=10, min_park_ns=1_000, max_park_ns=50_000)
        perf, clock = time.perf_counter_ns, time.monotonic_ns
        while True:
            before = counters.received
            t0 = perf()
            runner.do_work()
            t1 = perf()
            got = counters.received - before
            if got:
                sdk_samples.append((t1 - t0) // got)
                sdk_total += t1 - t0
                last_ns = clock()
                if not first_ns:
                    first_ns = last_ns
            k = 0
            t0 = perf()
            while k < limit:
                v = poll_one()
                if v is None:
                    break
                bid, ask, seq = unpack(v, 0)
                if seq != expected and expected is not None:
                    bare_gaps += 1
                expected = seq + 1
                mid = (bid + ask) // 2
                k += 1
            t1 = perf()
            if k:
                bare_samples.append((t1 - t0) // k)
                bare_total += t1 - t0
                bare_n += k
                last_ns = max(last_ns, clock())
            idle.idle(got + k)
            if published is None and os.path.exists(path("stop")):
                with open(path("stop")) as f:
                    published = int(f.read())
                quiet_since = time.monotonic()
            if published is not None:
                if counters.received >= published and bare_n >= published:
                    break
                if got or k:
                    quiet_since = time.monotonic()
                elif time.monotonic() - (quiet_since or 0) > 5:
                    break  # nothing more comes: report what arrived
    c = counters
    doc = {"name": args.name, "received": c.received, "delivered": c.delivered, "gaps": c.gaps,
           "duplicates": c.duplicates, "missing": c.missing, "malformed": c.malformed, "bare_received": bare_n,
           "bare_gaps": bare_gaps, "first_ns": first_ns, "last_ns": last_ns, "mid": mid, "sdk_mid": strategy.mid,
           "sdk_mean_ns": round(sdk_total / c.received, 1) if c.received else None,
           "bare_mean_ns": round(bare_total / bare_n, 1) if bare_n else None,
           "sdk_ns_per_msg": sdk_samples.tolist(), "bare_ns_per_msg": bare_samples.tolist()}
    with open(path(f"{args.name}.json.tmp"), "w") as f:
        json.dump(doc, f)
    os.replace(path(f"{args.name}.json.tmp"), path(f"{args.name}.json"))
    return 0


# ---------------------------------------------------------------- command


def _raise_interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def cmd_bench_pipeline(args: argparse.Namespace) -> int:
    parts = parse_parts(args.parts)
    rates = parse_rates(args.rates)
    counts = parse_strategies(args.strategies)
    seconds = QUICK_SECONDS if args.quick else args.seconds
    if not (isinstance(seconds, float) and 0.1 <= seconds <= 3600):
        raise benchkit.BenchInputError(f"bad duration: option=--seconds value={seconds} expected=0.1..3600 fault=user")
    if not 1 <= args.rounds <= 20:
        raise benchkit.BenchInputError(f"bad round count: option=--rounds value={args.rounds} expected=1..20 fault=user")
    rounds = 1 if args.quick else args.rounds
    warm = min(1.0, seconds / 2)
    report = benchkit.Report("pipeline", reference="bare")
    report.extra = {"parts": list(parts), "seconds": seconds, "rates": rates, "strategies": counts, "rounds": rounds,
                    "quick": bool(args.quick), "order_warmup_s": warm}
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)  # SIGTERM cleans up as Ctrl-C does
    try:
        t0 = time.monotonic()
        if "tick" in parts:
            _progress(f"tick: tick-to-order, SDK vs bare poll_one, {seconds:.1f} s")
            tick_part(report, seconds)
        if "order" in parts:
            order_part(report, rates, seconds, warm, rounds)
        if "fanout" in parts:
            fanout_part(report, counts, seconds)
        _progress(f"done in {time.monotonic() - t0:.1f} s")
    except RuntimeError as exc:  # a process of ours failed: what it said, without a traceback
        print(f"tickline bench pipeline: failed: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    benchkit.emit(report, args)
    for s in report.extra.get("order_summary", []):
        print(_summary_line(s))
    return 0


def register_bench(bench_subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = bench_subparsers.add_parser("pipeline", help="the assembled pipeline: tick-to-order in a strategy, orders "
                                                     "through the sequencer cluster, feed fan-out; each vs a bare peer")
    p.add_argument("--parts", default=",".join(PARTS), help="which parts to run, comma-separated: tick,order,fanout")
    p.add_argument("--seconds", type=float, default=3.0, help="measured seconds per phase (a part, a rate, a fan-out width)")
    p.add_argument("--rates", default="1000,10000", help="orders/s of the order part, comma-separated")
    p.add_argument("--rounds", type=int, default=3, help="order part: bare and pipeline phases alternate this many "
                                                         "times per rate (1..20; --quick: 1)")
    p.add_argument("--strategies", default="1,2,4", help="strategy processes of the fan-out rounds, comma-separated")
    p.add_argument("--quick", action="store_true", help=f"{QUICK_SECONDS} s per phase (tests, a first look)")
    benchkit.add_output_args(p)
    p.set_defaults(func=lambda a: benchkit.run_guarded("tickline bench pipeline", cmd_bench_pipeline, a))


def _child_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m tickline.topology.bench", description="a child of bench pipeline")
    p.add_argument("role", choices=["feed", "strategy"])
    p.add_argument("--aeron-dir", required=True)
    p.add_argument("--stream", type=int, required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--seconds", type=float, default=1.0)
    p.add_argument("--name", default="s0")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return _child_feed(args) if args.role == "feed" else _child_strategy(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
