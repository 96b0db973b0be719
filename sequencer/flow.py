"""An order-flow client: sends orders through a ``SequencerGateway`` at a
steady rate and follows each one to its end, stamping every stage.

The demo's and the tests' load (``[[flow]]`` in a topology, or
``tickline sequencer flow``); strategies proper are ``tickline.strategy``'s.
Each order alternates side around a mid price (so positions stay near flat);
a small share is deliberately bad (too large, outside the price band) to show
the risk checks' rejects.  Its report (JSON, ``status_file``) has the counts
(sent, sequenced, acked, filled, rejected by reason, unanswered) and the stage
latencies in microseconds:

- ``order_to_sequenced``: ``send`` -> the cluster's Sequenced receipt;
- ``sequenced_to_venue_ack``: receipt -> the venue's New report back here;
- ``venue_fill_to_client``: the venue's fill (its transact time) -> here.

Every answer is checked: an ExecId seen twice, or a report for an order this
client never sent, counts in ``repeated`` / ``unknown``.
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

from tickline.topology.run import write_status
from tickline.fix_gateway.bridge import ExecType, ExecutionReport, NewOrder, OrderReject, OrdType, Side, TimeInForce
from tickline.fix_gateway.sbe_orders import OrderCodec, SbeDecodeError

from .client import SequencerGateway

__all__ = ["OrderFlow", "percentiles"]

_SCALE = 10 ** 9


def percentiles(samples: list[int]) -> dict[str, float]:
    if not samples:
        return {}
    s = sorted(samples)
    pick = lambda q: s[min(len(s) - 1, int(q * len(s)))]  # noqa: E731
    return {"n": len(s), "p50": pick(0.5) / 1000, "p90": pick(0.9) / 1000, "p99": pick(0.99) / 1000, "max": s[-1] / 1000}


class OrderFlow:
    """An agent: ``do_work`` sends what is due and handles what came back.  Not thread safe."""

    def __init__(self, gateway: SequencerGateway, *, rate: float = 100.0, symbol: str = "DEMO", account: str = "ACC1",
                 mid: float = 100.0, qty: int = 10, bad_share: float = 0.02, seed: int = 1, name: str = "flow",
                 status_file: str = "", stop_after: float | None = None) -> None:
        self.gw = gateway
        gateway.on_sequenced = self._on_sequenced
        self.rate, self.symbol, self.account, self.mid, self.qty = rate, symbol, account, mid, qty
        self.bad_share = bad_share
        self.rng = random.Random(seed)
        self.name = name
        self.status_file = status_file
        self.codec = OrderCodec()
        self.decoder = OrderCodec()
        self.prefix = f"{name[:6]}{os.getpid() % 100000}-"
        self.n = 0
        self.t0: float | None = None  # the clock starts when the gateway first connects
        self.stop_after = stop_after
        self.stop_at: float | None = None
        self.sent_at: dict[str, int] = {}
        self.seq_at: dict[str, int] = {}
        self.state: dict[str, str] = {}
        self.exec_ids: set[int] = set()
        self.counts = {"sent": 0, "sequenced": 0, "acked": 0, "filled": 0, "cancelled": 0, "rejected": 0,
                       "repeated": 0, "unknown": 0, "malformed": 0, "back_pressure": 0}
        self.reject_reasons: dict[str, int] = {}
        self.lat: dict[str, list[int]] = {"order_to_sequenced": [], "sequenced_to_venue_ack": [], "venue_fill_to_client": []}
        self._status_due = 0.0

    def role_name(self) -> str:
        return self.name

    def on_start(self) -> None:
        pass

    @property
    def sending(self) -> bool:
        if self.t0 is None:
            if not self.gw.connected:
                return False
            self.t0 = time.monotonic()
            if self.stop_after is not None:
                self.stop_at = self.t0 + self.stop_after
        return self.stop_at is None or time.monotonic() < self.stop_at

    def do_work(self) -> int:
        work = self.gw.poll(self._on_message, 256)
        if self.sending:
            due = int((time.monotonic() - self.t0) * self.rate)  # type: ignore[operator]
            while self.n < due and work < 1000:
                if not self._send_one():
                    self.counts["back_pressure"] += 1
                    break
                work += 1
        if self.status_file:
            now = time.monotonic()
            if now >= self._status_due:
                self._status_due = now + 0.5
                self.write_status()
        return work

    def _send_one(self) -> bool:
        r = self.rng
        side = Side.BUY if self.n % 2 == 0 else Side.SELL
        price = self.mid + r.choice((-0.02, -0.01, 0.0, 0.01, 0.02))
        qty = self.qty
        if r.random() < self.bad_share:
            if r.random() < 0.5:
                qty = 1_000_000  # beyond max_order_qty
            else:
                price = self.mid * 1.5  # outside the price band
        cl = f"{self.prefix}{self.n}"[:20]
        msg = NewOrder(cl, self.account, self.symbol, side, OrdType.LIMIT, TimeInForce.DAY, int(round(price * _SCALE)), None,
                       qty, time.time_ns())
        view, length = self.codec.encode(msg)
        if not self.gw.send(view[:length]):
            return False
        self.n += 1
        self.sent_at[cl] = time.monotonic_ns()
        self.state[cl] = "sent"
        self.counts["sent"] += 1
        return True

    def _on_sequenced(self, cl_ord_id: str, order_id: int, timestamp: int) -> None:
        t = self.sent_at.get(cl_ord_id)
        if t is None or self.state.get(cl_ord_id) != "sent":
            self.counts["unknown" if t is None else "repeated"] += 1
            return
        now = time.monotonic_ns()
        self.seq_at[cl_ord_id] = now
        self.lat["order_to_sequenced"].append(now - t)
        self.state[cl_ord_id] = "sequenced"
        self.counts["sequenced"] += 1

    def _on_message(self, view: memoryview) -> None:
        try:
            msg = self.decoder.decode(view)
        except SbeDecodeError:
            self.counts["malformed"] += 1
            return
        cl = msg.cl_ord_id
        if cl not in self.state:
            self.counts["unknown"] += 1
            return
        if isinstance(msg, OrderReject):
            self.counts["rejected"] += 1
            self.state[cl] = "rejected"
            return
        assert isinstance(msg, ExecutionReport)
        if msg.exec_id:
            if msg.exec_id in self.exec_ids:
                self.counts["repeated"] += 1
                return
            self.exec_ids.add(msg.exec_id)
        et = msg.exec_type
        if et is ExecType.REJECTED:
            self.counts["rejected"] += 1
            reason = msg.text.split(" ", 1)[0].removeprefix("reason=") if msg.text.startswith("reason=") else "venue"
            self.reject_reasons[reason] = self.reject_reasons.get(reason, 0) + 1
            self.state[cl] = "rejected"
        elif et is ExecType.NEW:
            self.counts["acked"] += 1
            s = self.seq_at.get(cl)
            if s is not None:
                self.lat["sequenced_to_venue_ack"].append(time.monotonic_ns() - s)
            self.state[cl] = "acked"
        elif et is ExecType.TRADE:
            if msg.leaves_quantity == 0:
                self.counts["filled"] += 1
                self.state[cl] = "filled"
            self.lat["venue_fill_to_client"].append(max(0, time.time_ns() - msg.transact_time))
        elif et is ExecType.CANCELED:
            self.counts["cancelled"] += 1
            self.state[cl] = "cancelled"

    def unanswered(self) -> int:
        """Orders sent that have no answer yet (neither sequenced nor rejected)."""
        return sum(1 for s in self.state.values() if s == "sent")

    def stats(self) -> dict[str, Any]:
        return {"role": "flow", "name": self.name, "pid": os.getpid(), "sending": self.t0 is None or self.sending,
                **self.counts, "unanswered": self.unanswered(),
                "open": sum(1 for s in self.state.values() if s in ("sequenced", "acked")),
                "reject_reasons": self.reject_reasons, "messages": self.counts["sent"] + self.gw.events,
                "errors": self.counts["malformed"] + self.counts["unknown"],
                "latency_us": {k: percentiles(v) for k, v in self.lat.items()}}

    def write_status(self, samples: bool = False) -> None:
        st = self.stats()
        if samples:  # the last report carries the raw samples, so several flows' can be merged
            st["samples_ns"] = self.lat
        write_status(self.status_file, st)

    def on_close(self) -> None:
        if self.status_file:
            self.write_status(samples=True)
        self.gw.close()
