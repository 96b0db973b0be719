"""CPU time per order of ``bench pipeline --parts order``'s two sides, in one process, no I/O.

Wall-clock latency on a shared machine is noise; the CPU each side spends per order is
not (much).  Four measurements, each pipeline against the bare sequencer of ``bench cluster``:

- ``member apply``: one member's ``ServiceContainer.apply`` of a MESSAGE entry holding the
  order (the framework's per-entry path + the service's ``on_message`` + its answer);
  the pipeline's ``SequencerService`` against ``sequencer.basic.OrderSequencer``;
- ``client submit``: the pipeline's ``Strategy.buy`` -> runner -> ``SequencerGateway.send``
  against the bare client's ``codec.encode_order(NewOrder(...))``; both end in the same
  ``ClusterClient.offer`` (a sans-IO client here), which is counted on both sides;
- ``client receipt``: handing one order's answer to the bench: the pipeline's
  ``SequencerGateway.poll`` reading a ``Sequenced`` receipt against the bare bench's
  ``sent.pop(correlation)`` (the cluster client's own egress handling is the same for both
  and left out).

Run: ``.venv/bin/python benchmarks/order_cpu.py [-n ORDERS] [--repeat R]``; prints the least
of R runs in microseconds of process CPU time per order.  Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Callable

SYMBOL = "ESZ6"
PRICE, TICK = 6789_250_000_000, 250_000_000


def _cpu_per_order(run: Callable[[int], None], n: int) -> float:
    t0 = time.process_time_ns()
    run(n)
    return (time.process_time_ns() - t0) / n / 1000


# ---------------------------------------------------------------- members


def _member(service: Any, payloads: Callable[[int], bytes]) -> Callable[[int], None]:
    from tickline.cluster.messages import Entry, EntryKind
    from tickline.cluster.service import MESSAGE_HEADER, OPEN, ServiceContainer

    container = ServiceContainer(service)
    sid = 7
    container.apply(Entry(0, 1, 0, EntryKind.SESSION_OPEN, OPEN.pack(sid, 8)))
    state = {"pos": 0, "corr": 0}
    kind = EntryKind.MESSAGE

    def run(n: int) -> None:
        # the entries as the log hands them over (built outside the timed loop)
        base = state["corr"]
        entries = []
        pos = state["pos"]
        for i in range(n):
            corr = base + i + 1
            e = Entry(pos, 1, 1_000 + corr // 10, kind, MESSAGE_HEADER.pack(sid, corr, corr) + payloads(corr))
            pos = e.end
            entries.append(e)
        state["pos"], state["corr"] = pos, base + n
        apply = container.apply
        t0 = time.process_time_ns()
        for e in entries:
            apply(e)
        state["t"] = time.process_time_ns() - t0

    def timed(n: int) -> float:
        run(n)
        return state["t"] / n / 1000

    return timed  # type: ignore[return-value]


def member_bare() -> Callable[[int], float]:
    from tickline.sequencer import basic as w

    codec, new_order, sides = w.StructOrderCodec(), w.NewOrder, (w.Side.BUY, w.Side.SELL)
    svc = w.OrderSequencer(w.RiskLimits(max_position=10**15, max_orders=10**9, window=1000))
    return _member(svc, lambda n: codec.encode_order(new_order(n % 1000, sides[n & 1], 1, 100, n)))  # type: ignore[return-value]


def _pipeline_payloads() -> Callable[[int], bytes]:
    """The strategy's NewOrders as the pipeline bench sends them (one ClOrdId each)."""
    runner, _strategy, sent = _pipeline_client()

    def make(n: int) -> bytes:
        (runner.strategy.buy if n & 1 == 0 else runner.strategy.sell)(SYMBOL, 1, (PRICE, PRICE + TICK)[n & 1])
        data = sent.pop()
        runner.gateway.cluster.client.outstanding.clear()
        runner.books.live.clear()
        return data

    return make


def member_pipeline() -> Callable[[int], float]:
    from tickline.sequencer.service import SequencerLimits, SequencerService

    svc = SequencerService(SequencerLimits(max_position=10**15, max_orders=10**9, venue_backlog=10**9))
    return _member(svc, _pipeline_payloads())  # type: ignore[return-value]


# ---------------------------------------------------------------- clients


class _FakeCluster:
    """An ``AeronClusterClient`` without Aeron: ``offer`` goes to a sans-IO ``ClusterClient``."""

    def __init__(self) -> None:
        from tickline.cluster.client import ClusterClient

        self.client = ClusterClient(5, 5, (1,), retry_timeout=10**12)
        self.client.connected = True
        self.work = 0
        self.answers: list[tuple[int, bytes]] = []

    def offer(self, payload: bytes) -> int:
        return self.client.offer(payload, 0)

    def poll(self) -> list[tuple[int, bytes]]:
        out, self.answers = self.answers, []
        return out

    def close(self) -> None:
        pass


def _pipeline_client() -> tuple[Any, Any, list[bytes]]:
    """A strategy, its runner and a SequencerGateway over a fake cluster; ``sent``: what it offered."""
    from tickline.sequencer.client import SequencerGateway
    from tickline.strategy import Strategy, StrategyRunner, load_config

    class _Sub:
        def poll(self, handler: Any, limit: int) -> int:
            return 0

    cluster = _FakeCluster()
    sent: list[bytes] = []
    offer = cluster.client.offer

    def record(payload: bytes) -> int:
        sent.append(payload)
        return offer(payload, 0)

    cluster.offer = record  # type: ignore[method-assign]
    # nothing is answered here: the window must not fill (a run clears it, as the bare one's)
    gateway = SequencerGateway({1: ("127.0.0.1", 1)}, cluster=cluster, max_outstanding=10**9)  # type: ignore[arg-type]
    cfg = load_config({"name": "cpu", "account": "ORD1", "symbols": [SYMBOL], "md_stream": 4010,
                       "max_pending_sends": 1_000_000, "cancel_on_stop": False}, env={})
    strategy = Strategy(cfg)
    runner = StrategyRunner(strategy, gateway, subscription=_Sub())
    runner.on_start()
    return runner, strategy, sent


def client_bare() -> Callable[[int], float]:
    from tickline.sequencer import basic as w

    codec, new_order, sides = w.StructOrderCodec(), w.NewOrder, (w.Side.BUY, w.Side.SELL)
    cluster = _FakeCluster()
    sent: dict[int, tuple[int, int]] = {}
    perf = time.perf_counter_ns
    outstanding = cluster.client.outstanding

    def run(n: int) -> float:
        t0 = time.process_time_ns()
        for i in range(n):
            due = perf()
            corr = cluster.offer(codec.encode_order(new_order(i % 1000, sides[i & 1], 1, 100, i)))
            sent[corr] = (due, perf())
        t = time.process_time_ns() - t0
        outstanding.clear()
        sent.clear()
        return t / n / 1000

    return run


def client_pipeline() -> Callable[[int], float]:
    runner, strategy, sent = _pipeline_client()
    perf = time.perf_counter_ns
    book: dict[str, tuple[int, int]] = {}
    px = (PRICE, PRICE + TICK)

    def run(n: int) -> float:
        t0 = time.process_time_ns()
        for i in range(n):
            due = perf()
            order = (strategy.buy if i & 1 == 0 else strategy.sell)(SYMBOL, 1, px[i & 1])
            book[order.cl_ord_id] = (due, perf())
        t = time.process_time_ns() - t0
        sent.clear()
        book.clear()
        runner.books.live.clear()
        runner.gateway.cluster.client.outstanding.clear()
        return t / n / 1000

    return run


def receipt_bare() -> Callable[[int], float]:
    perf = time.perf_counter_ns

    def run(n: int) -> float:
        sent = {i: (0, 0) for i in range(n)}
        got = [(i, b"\0" * 33) for i in range(n)]
        e2e: list[int] = []
        t0 = time.process_time_ns()
        for i in range(0, n, 8):  # answers come a few per poll
            t = perf()
            for corr, _ in got[i:i + 8]:
                rec = sent.pop(corr, None)
                if rec is not None:
                    e2e.append(t - rec[0])
        return (time.process_time_ns() - t0) / n / 1000

    return run


def receipt_pipeline() -> Callable[[int], float]:
    from tickline.sequencer import protocol as P

    runner, _strategy, _sent = _pipeline_client()
    gw = runner.gateway
    cluster = gw.cluster
    perf = time.perf_counter_ns

    def run(n: int) -> float:
        sent = {f"C{i}": (0, 0) for i in range(n)}
        answers = [(i + 10, P.encode_sequenced(i, 5, f"C{i}")) for i in range(n)]
        e2e: list[int] = []

        def on_sequenced(cl: str, _oid: int, _ts: int) -> None:
            rec = sent.pop(cl, None)
            if rec is not None:
                e2e.append(perf() - rec[0])

        gw.on_sequenced = on_sequenced
        gw._poll_corr = 1  # the event poll is outstanding, as in the bench
        t0 = time.process_time_ns()
        for i in range(0, n, 8):
            cluster.answers = answers[i:i + 8]
            runner.do_work()
        return (time.process_time_ns() - t0) / n / 1000

    return run


CASES = {
    "member apply": (member_bare, member_pipeline),
    "client submit": (client_bare, client_pipeline),
    "client receipt": (receipt_bare, receipt_pipeline),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20_000, help="orders per run")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    print(f"{'per order (us CPU)':<18} {'bare':>8} {'pipeline':>9} {'ratio':>6}")
    total = [0.0, 0.0]
    for name, makers in CASES.items():
        res = []
        for make in makers:
            run = make()
            run(2000)  # warm: code paths, dict sizes
            res.append(min(run(args.n) for _ in range(args.repeat)))
        total[0] += res[0]
        total[1] += res[1]
        print(f"{name:<18} {res[0]:8.2f} {res[1]:9.2f} {res[1] / res[0]:6.2f}")


if __name__ == "__main__":
    main()
