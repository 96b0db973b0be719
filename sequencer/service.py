"""The sequencer: a ``ClusteredService`` that puts every order of every client
into one total order, after pre-trade risk, and keeps each order's state and
each account's position from the venue's execution reports, which come back
through the cluster so every member (and a new leader) knows them.

Clients (strategies, gateways) send ``schemas/orders.xml`` messages:

- ``NewOrder`` / ``CancelOrder`` / ``ReplaceOrder`` (OrigClOrdId: the order's
  ClOrdId or its latest replace's, as in FIX): risk-checked; accepted ones get the next
  global sequence number (their OrderId, the answer is a ``Sequenced``
  receipt) and join the venue's queue; refused ones are answered at once with
  an ``ExecutionReport`` (Rejected) whose text is ``reason=<why>``;
- ``EventPoll(after)``: a long poll for the client's events (the venue's acks,
  fills, cancels, rejects, rewritten to the client's ClOrdId, the OrderId and
  an ExecId unique for the cluster's life), answered by a ``Batch`` as soon as
  there is one, or empty after ``long_poll_ms`` of cluster time.

The venue adapter sends ``VenuePoll(after)`` (it has handed every sequenced
order up to ``after`` to the venue) and gets the sequenced orders after it,
each with ClOrdId = its global sequence, so the venue's own duplicate check
sees a resend; it sends the venue's ``ExecutionReport`` / ``OrderReject``
messages back in.  ``-1`` on start: the answer is every message handed to the
venue whose request has not ended (``venue_open``: a killed predecessor may
have sent it without its reports coming back), ``last`` = where the sequence
goes on; the venue answers those resends with the reports it had, and a
report is applied once per request by the venue's ExecID (``venue_replayed``).
Only the session that polls as the venue may report; anyone else's report is
refused and counted.

A client that may restart (the FIX gateway's bridge, one per FIX session) sends
``Attach(origin)`` first: a later session attaching under the same origin
takes over every order of the earlier one (so a ClOrdId the killed client used
is still refused as a duplicate, and the orders' reports come to the new
session) and the events the earlier one had not taken (they are kept past its
session's close for this).  At most 1024 names are kept: past that a new name
evicts the one whose session closed longest ago, and is refused
(``reason=origin_limit``) only when every named session is still open.

Invariants (every member, at every log position):
- a sequence number is given once, to one accepted message, in log order;
- an order's cumulative quantity never exceeds its quantity; a finished order
  (filled, cancelled, rejected) takes no fill;
- a client's events are numbered 1, 2, 3 ... without gaps; an event is dropped
  only when the client has polled past it (or the backlog cap is hit, counted).

Deterministic: time is the log's timestamp; no I/O, no randomness.
"""

from __future__ import annotations

import json
import tomllib
from collections import deque
from dataclasses import dataclass, field, fields
from typing import Any

from tickline.cluster.messages import Role
from tickline.fix_gateway.bridge import (
    CancelOrder, ExecType, ExecutionReport, NewOrder, OrderReject, OrdStatus, OrdType, RejectReason, ReplaceOrder,
    Side, TimeInForce, CxlRejResponseTo,
)
from tickline.fix_gateway.sbe_orders import OrderCodec, SbeDecodeError

from . import protocol as P

__all__ = ["SequencerLimits", "SequencerService", "from_topology", "REASONS"]

#: every reason a message is refused, as the ``reason=`` of its reject's text
REASONS = ("malformed", "position_limit", "rate_limit", "max_order_size", "price_band", "bad_quantity",
           "duplicate_clordid", "unknown_order", "not_venue", "venue", "venue_backlog", "origin_limit")

_TIMER_POLLS = 1
_MAX_ORIGINS = 1024  # named clients remembered (each keeps at most event_backlog events)
_MAX_DONE = 100_000  # finished orders remembered (late reports, ClOrdId uniqueness)


class ConfigError(ValueError):
    """A bad ``[sequencer]`` section (the user's file)."""


@dataclass(frozen=True)
class SequencerLimits:
    """Pre-trade risk and the service's bounds (``[sequencer]`` in the topology).

    ``max_position``: per account and symbol, |filled position + open orders on
    the order's side + its quantity|; ``max_order_qty``; ``max_orders`` per
    ``rate_window_ms`` of cluster time per account; ``price_band_pct``: a limit
    price within this percentage of the symbol's reference (the last fill, else
    ``reference_prices``; no reference: not checked); ``event_backlog``: events
    kept per client that has not polled; ``long_poll_ms``: how long a poll is held;
    ``venue_backlog``: sequenced messages the venue has not taken yet, beyond which new
    ones are refused (``reason=venue_backlog``: the venue is down or behind)."""

    max_position: int = 10_000
    max_order_qty: int = 1_000
    max_orders: int = 1_000
    rate_window_ms: int = 1_000
    price_band_pct: float = 10.0
    reference_prices: dict[str, float] = field(default_factory=dict)
    event_backlog: int = 10_000
    long_poll_ms: int = 50
    venue_backlog: int = 100_000

    def __post_init__(self) -> None:
        for name in ("max_position", "max_order_qty", "max_orders", "rate_window_ms", "event_backlog", "long_poll_ms", "venue_backlog"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ConfigError(f"bad sequencer limit: fault=user key=sequencer.{name} value={v!r} expected=positive integer")
        if not isinstance(self.price_band_pct, (int, float)) or isinstance(self.price_band_pct, bool) or not 0 < self.price_band_pct <= 1000:
            raise ConfigError(f"bad sequencer limit: fault=user key=sequencer.price_band_pct value={self.price_band_pct!r} expected=0<x<=1000")
        if not isinstance(self.reference_prices, dict):
            raise ConfigError("bad sequencer limit: fault=user key=sequencer.reference_prices expected=a table symbol = price")
        for sym, px in self.reference_prices.items():
            if not isinstance(px, (int, float)) or isinstance(px, bool) or px <= 0:
                raise ConfigError(f"bad sequencer limit: fault=user key=sequencer.reference_prices.{sym} value={px!r} expected=positive price")

    @classmethod
    def from_section(cls, section: dict[str, Any], where: str = "", env: dict[str, str] | None = None) -> "SequencerLimits":
        """The ``[sequencer]`` table; each scalar may be overridden by ``TICKLINE_SEQUENCER_<KEY>``."""
        import os

        known = {f.name for f in fields(cls)}
        for k in section:
            if k not in known:
                raise ConfigError(f"unknown key: fault=user file={where} key=sequencer.{k} expected=one of {','.join(sorted(known))}")
        values = dict(section)
        env = os.environ if env is None else env
        for f in fields(cls):
            var = "TICKLINE_SEQUENCER_" + f.name.upper()
            if var in env and f.name != "reference_prices":
                raw = env[var]
                try:
                    values[f.name] = float(raw) if f.name == "price_band_pct" else int(raw)
                except ValueError:
                    raise ConfigError(f"bad sequencer limit: fault=user key={var} value={raw!r} expected=a number") from None
        return cls(**values)


def from_topology(path: str) -> "SequencerService":
    """The cluster daemon's factory: limits from the topology file's ``[sequencer]``."""
    section: dict[str, Any] = {}
    if path:
        with open(path, "rb") as f:
            section = tomllib.load(f).get("sequencer", {})
    return SequencerService(SequencerLimits.from_section(section, path))


class _Order:
    """A sequenced message's record.  ``kind`` new: an order (``venue_id``: the sequence
    the venue knows it by now, which a replace changes); cancel / replace: a request on
    the order ``cancel_of`` (a replace also keeps the venue id it replaced, to restore
    it if the venue refuses)."""

    __slots__ = ("seq", "session", "cl_ord_id", "account", "symbol", "side", "qty", "price", "cum", "status", "cancel_of",
                 "kind", "venue_id", "prev_venue", "cur_cl", "venue_exec")

    def __init__(self, seq: int, session: int, cl_ord_id: str, account: str, symbol: str, side: str, qty: int,
                 price: int | None) -> None:
        """A new order's record (one is made per accepted order: no defaults to fill in, a cancel or a
        replace sets its own fields after)."""
        self.seq, self.session, self.cl_ord_id, self.account, self.symbol = seq, session, cl_ord_id, account, symbol
        self.side, self.qty, self.price, self.cum, self.status, self.cancel_of = side, qty, price, 0, "sequenced", 0
        self.kind, self.venue_id, self.prev_venue = "new", seq, 0
        self.cur_cl = cl_ord_id  # the client's current ClOrdId of the order (a replace's, once the venue took it)
        self.venue_exec = 0  # the highest venue ExecID applied for this request (a replayed report is at or below it)

    @classmethod
    def request(cls, seq: int, session: int, cl_ord_id: str, order: _Order, qty: int, price: int | None,
                kind: str) -> _Order:
        """A cancel's or a replace's record, on ``order``."""
        r = cls(seq, session, cl_ord_id, order.account, order.symbol, order.side, qty, price)
        r.cancel_of, r.kind = order.seq, kind
        if kind == "replace":
            r.prev_venue = order.venue_id
        return r

    @classmethod
    def from_list(cls, values: list) -> _Order:
        """A record from :meth:`to_list` (a snapshot's; one written before the last fields existed
        lacks them: they take a new order's values)."""
        o = cls(*values[:8])
        for name, value in zip(cls.__slots__[8:], values[8:]):
            setattr(o, name, value)
        o.venue_id = o.venue_id or o.seq
        o.cur_cl = o.cur_cl or o.cl_ord_id
        return o

    def to_list(self) -> list:
        return [self.seq, self.session, self.cl_ord_id, self.account, self.symbol, self.side, self.qty, self.price,
                self.cum, self.status, self.cancel_of, self.kind, self.venue_id, self.prev_venue, self.cur_cl,
                self.venue_exec]


_FINISHED = frozenset(("filled", "cancelled", "rejected", "done"))  # done: a cancel request answered
# enum members and values as module globals: an Enum class attribute or ``.value`` costs several
# dict lookups, and each order needs a few
_BUY, _MARKET = Side.BUY, OrdType.MARKET
_SIDE_VALUE = {v: v.value for v in Side}
# a NewOrder's enum bytes -> members, as the codec's decoder reads them
_SIDE_OF = {ord(v.value): v for v in Side}
_ORD_TYPE_OF = {ord(v.value): v for v in OrdType}
_TIF_BYTES = frozenset(ord(v.value) for v in TimeInForce)
_ACCOUNT_LEN = P.ACCOUNT_LEN
_text = P.text
_MAX_NAMES = 4096  # (account, symbol) pairs whose bytes are remembered decoded
_PRICE_SCALE = 10 ** 9


class SequencerService:
    """Not thread safe; called by the service container only."""

    def __init__(self, limits: SequencerLimits | None = None) -> None:
        self.limits = limits or SequencerLimits()
        self.codec = OrderCodec()
        self._names: dict[bytes, tuple[str, str]] = {}  # a NewOrder's account + symbol bytes -> (account, symbol)
        self.cluster: Any = None
        self.role = Role.FOLLOWER
        self.next_seq = 1
        self.next_exec_id = 1
        self.orders: dict[int, _Order] = {}
        self.by_client: dict[tuple[int, str], int] = {}
        self.done: deque[int] = deque()
        self.positions: dict[tuple[str, str], int] = {}  # (account, symbol) -> filled net quantity
        self.costs: dict[tuple[str, str], list[int]] = {}  # (account, symbol) -> [cost of the open quantity, realized]
        self.open_qty: dict[tuple[str, str, str], int] = {}  # (account, symbol, side) -> open quantity
        self.recent: dict[str, deque[int]] = {}  # account -> timestamps of accepted orders in the rate window
        self.last_price: dict[str, int] = {}
        self.venue_queue: deque[tuple[int, bytes]] = deque()  # (seq, message to the venue)
        self.venue_sent = 0  # the venue adapter has handed every order up to here to the venue
        self.venue_session: int | None = None
        self.venue_poll: tuple[int, int, int, int] | None = None  # (session, correlation, max, since)
        # every sequenced message to the venue whose request has not ended (no final report yet), in
        # sequence order: what a restarted venue adapter resends (VenuePoll(-1))
        self.venue_open: dict[int, bytes] = {}
        self.events: dict[int, deque[tuple[int, bytes]]] = {}
        self.next_event: dict[int, int] = {}
        self.event_polls: dict[int, tuple[int, int, int]] = {}  # session -> (correlation, max, since)
        self.origins: dict[str, int] = {}  # a client's name (Attach) -> the session that holds it now
        self.session_origin: dict[int, str] = {}
        self.closed_origins: dict[str, None] = {}  # names whose session closed, oldest first
        self.counters: dict[str, int] = {"accepted": 0, "reports": 0, "events_dropped": 0, **{f"rejected_{r}": 0 for r in REASONS}}
        self._timer_due: int | None = None

    # ---------------------------------------------------------------- ClusteredService

    def on_start(self, cluster: Any) -> None:
        self.cluster = cluster

    def on_session_open(self, session: Any, timestamp: int) -> None:
        pass

    def on_session_close(self, session: Any, timestamp: int) -> None:
        sid = session.id
        self.event_polls.pop(sid, None)
        name = self.session_origin.get(sid)
        if name is None:
            self.events.pop(sid, None)
            self.next_event.pop(sid, None)
        else:  # a named client's events wait for its successor (Attach)
            self.closed_origins[name] = None
        if self.venue_poll is not None and self.venue_poll[0] == sid:
            self.venue_poll = None

    def on_role_change(self, role: Role) -> None:
        self.role = role

    def on_message(self, session: Any, timestamp: int, payload: bytes) -> None:
        f = P.new_order_fields(payload)
        if f is not None and self._exact_new_order(session, timestamp, payload, f):
            return
        try:
            schema, template = P.peek(payload)
        except P.ProtocolError as exc:
            self._refuse(session, timestamp, "", "malformed", str(exc))
            return
        if schema == P.ORDERS_SCHEMA_ID:
            try:
                msg = self.codec.decode(payload)
            except SbeDecodeError as exc:
                self._refuse(session, timestamp, "", "malformed", str(exc))
                return
            if isinstance(msg, NewOrder):
                self._new_order(session, timestamp, msg.cl_ord_id, (msg.account, msg.symbol), msg.side, msg.quantity,
                                msg.price, msg.ord_type, payload, msg)
            elif isinstance(msg, CancelOrder):
                self._cancel(session, timestamp, msg)
            elif isinstance(msg, ReplaceOrder):
                self._replace(session, timestamp, msg)
            else:
                self._venue_report(session, timestamp, msg)
            return
        if schema == P.SCHEMA_ID and template in (P.RECOVER, P.ATTACH, P.EVENT_POLL, P.VENUE_POLL):
            try:
                own = P.decode(payload)
            except P.ProtocolError as exc:
                self._refuse(session, timestamp, "", "malformed", str(exc))
                return
            if isinstance(own, P.EventPoll):
                self._event_poll(session, timestamp, own)
            elif isinstance(own, P.VenuePoll):
                self._venue_poll(session, timestamp, own)
            elif isinstance(own, P.Recover):
                self._recover(session, timestamp, own.account)
            elif isinstance(own, P.Attach):
                self._attach(session, timestamp, own.origin)
            return
        self._refuse(session, timestamp, "", "malformed", f"not an order or a poll: fault=peer schema_id={schema} template_id={template}")

    def on_timer(self, correlation_id: int, timestamp: int) -> None:
        if correlation_id != _TIMER_POLLS:
            return
        self._timer_due = None
        lp = self.limits.long_poll_ms
        for sid, (corr, _mx, since) in list(self.event_polls.items()):
            if timestamp - since >= lp:
                del self.event_polls[sid]
                self.cluster.answer(sid, corr, P.encode_batch(self.next_event.get(sid, 1) - 1, []))
        vp = self.venue_poll
        if vp is not None and timestamp - vp[3] >= lp:
            self.venue_poll = None
            self.cluster.answer(vp[0], vp[1], P.encode_batch(self.venue_sent, []))
        self._arm_timer(timestamp)

    def on_take_snapshot(self) -> bytes:
        doc = {
            "next_seq": self.next_seq, "next_exec_id": self.next_exec_id,
            "orders": [o.to_list() for o in self.orders.values()], "done": list(self.done),
            "positions": [[a, s, q] for (a, s), q in self.positions.items()],
            "costs": [[a, s, c, r] for (a, s), (c, r) in self.costs.items()],
            "open": [[a, s, d, q] for (a, s, d), q in self.open_qty.items()],
            "recent": [[a, list(t)] for a, t in self.recent.items()],
            "last_price": self.last_price,
            "venue_queue": [[s, m.hex()] for s, m in self.venue_queue], "venue_sent": self.venue_sent,
            "venue_session": self.venue_session, "venue_poll": self.venue_poll,
            "venue_open": [[s, m.hex()] for s, m in self.venue_open.items()],
            "events": [[sid, [[n, m.hex()] for n, m in q]] for sid, q in self.events.items()],
            "next_event": [[k, v] for k, v in self.next_event.items()],
            "event_polls": [[k, list(v)] for k, v in self.event_polls.items()],
            "origins": [[o, sid] for o, sid in self.origins.items()], "closed_origins": list(self.closed_origins),
            "counters": self.counters, "timer_due": self._timer_due,
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    def on_load_snapshot(self, data: bytes) -> None:
        d = json.loads(data)
        self.next_seq, self.next_exec_id = d["next_seq"], d["next_exec_id"]
        self.orders = {o[0]: _Order.from_list(o) for o in d["orders"]}
        self.by_client = {(o.session, o.cl_ord_id): o.seq for o in self.orders.values()}
        self.done = deque(d["done"])
        self.positions = {(a, s): q for a, s, q in d["positions"]}
        self.costs = {(a, s): [c, r] for a, s, c, r in d["costs"]}
        self.open_qty = {(a, s, side): q for a, s, side, q in d["open"]}
        self.recent = {a: deque(t) for a, t in d["recent"]}
        self.last_price = dict(d["last_price"])
        self.venue_queue = deque((s, bytes.fromhex(m)) for s, m in d["venue_queue"])
        self.venue_sent, self.venue_session = d["venue_sent"], d["venue_session"]
        self.venue_poll = tuple(d["venue_poll"]) if d["venue_poll"] else None  # type: ignore[assignment]
        self.venue_open = {s: bytes.fromhex(m) for s, m in d.get("venue_open", [])}
        self.events = {sid: deque((n, bytes.fromhex(m)) for n, m in q) for sid, q in d["events"]}
        self.next_event = {k: v for k, v in d["next_event"]}
        self.event_polls = {k: tuple(v) for k, v in d["event_polls"]}  # type: ignore[misc]
        self.origins = {o: sid for o, sid in d.get("origins", [])}
        self.session_origin = {sid: o for o, sid in self.origins.items()}
        self.closed_origins = dict.fromkeys(d.get("closed_origins", []))
        self.counters = d["counters"]
        self._timer_due = d["timer_due"]

    # ---------------------------------------------------------------- orders in

    def _venue_full(self) -> tuple[str, str] | None:
        n = len(self.venue_queue)
        return ("venue_backlog", f"queued={n} max={self.limits.venue_backlog}") if n >= self.limits.venue_backlog else None

    def _exact_new_order(self, session: Any, ts: int, payload: bytes, f: tuple[Any, ...]) -> bool:
        """A NewOrder in its exact form (nearly every client's), read in one unpack instead of
        decoded field by field: False when one of its enum bytes or char arrays is not in the form
        the decoder reads the same way (then the general path decodes it, and refuses it if bad)."""
        raw_cl, raw_names, side_b, type_b, tif_b, price, qty = f
        side, ord_type = _SIDE_OF.get(side_b), _ORD_TYPE_OF.get(type_b)
        if side is None or ord_type is None or tif_b not in _TIF_BYTES:
            return False
        names = self._names.get(raw_names)
        if names is None:
            account, symbol = _text(raw_names[:_ACCOUNT_LEN]), _text(raw_names[_ACCOUNT_LEN:])
            if account is None or symbol is None:
                return False
            names = (account, symbol)
            if len(self._names) < _MAX_NAMES:  # (account, symbol) pairs remembered: bounded
                self._names[raw_names] = names
        cl = _text(raw_cl)
        if cl is None:
            return False
        self._new_order(session, ts, cl, names, side, qty, price, ord_type, payload, None, raw_cl)
        return True

    def _new_order(self, session: Any, ts: int, cl: str, names: tuple[str, str], side_m: Side, qty: int,
                   price: int | None, ord_type: OrdType, payload: bytes | None, o: NewOrder | None,
                   raw_cl: bytes | None = None) -> None:
        """``names``: (account, symbol); ``o``: the decoded order, or None when ``payload`` is a
        NewOrder in its exact form whose ClOrdId field is ``raw_cl`` (then the venue's copy and the
        receipt are made from those bytes, and a refusal decodes it)."""
        lim = self.limits
        sid = session.id
        account, symbol = names
        why: tuple[str, str] | None = self._venue_full()
        client_key = (sid, cl)
        if why is None and client_key in self.by_client:
            why = ("duplicate_clordid", f"ClOrdId already used by this session: cl_ord_id={cl}")
        if why is None:
            why = self._check_size_and_price(symbol, qty, price, ord_type)
        recent = self.recent.get(account)
        if why is None and recent is not None:
            cutoff = ts - lim.rate_window_ms
            while recent and recent[0] <= cutoff:
                recent.popleft()
            if len(recent) >= lim.max_orders:
                why = ("rate_limit", f"orders={len(recent)} window_ms={lim.rate_window_ms} max={lim.max_orders}")
        side = _SIDE_VALUE.get(side_m) or side_m.value
        open_key = (account, symbol, side)
        if why is None:
            pos = self.positions.get(names, 0)
            open_same = self.open_qty.get(open_key, 0)
            worst = pos + open_same + qty if side_m is _BUY else pos - open_same - qty
            if abs(worst) > lim.max_position:
                why = ("position_limit", f"position={pos} open={open_same} quantity={qty} max={lim.max_position}")
        if why is not None:
            self._refuse(session, ts, cl, why[0], why[1], o if o is not None else self.codec.decode(payload))  # type: ignore[arg-type]
            return
        seq = self._sequence()
        self.orders[seq] = _Order(seq, sid, cl, account, symbol, side, qty, price)
        self.by_client[client_key] = seq
        self.open_qty[open_key] = open_same + qty
        if recent is None:
            self.recent[account] = deque((ts,))
        else:
            recent.append(ts)
        self.counters["accepted"] += 1
        venue_id = str(seq)
        # the order as the venue gets it: the client's message under ClOrdId = its sequence
        if raw_cl is not None:
            data: bytes | None = P.with_cl_ord_id(payload, venue_id)  # type: ignore[arg-type]
        else:
            data = self.codec.renumbered_new_order(payload, venue_id) if payload is not None else None
        if data is None:
            self._to_venue(seq, o._replace(cl_ord_id=venue_id), ts)  # type: ignore[union-attr]
        else:
            self._queue_for_venue(seq, data)
        session.offer(P.encode_sequenced(seq, ts, raw_cl if raw_cl is not None else cl))

    def _live_order(self, sid: int, orig_cl_ord_id: str) -> _Order | None:
        """The live order a client's OrigClOrdId names (its own ClOrdId or a replace's), or None."""
        seq = self.by_client.get((sid, orig_cl_ord_id))
        rec = self.orders.get(seq) if seq is not None else None
        if rec is None or rec.kind == "cancel":
            return None
        order = rec if rec.kind == "new" else self.orders.get(rec.cancel_of)
        return None if order is None or order.status in _FINISHED else order

    def _replace(self, session: Any, ts: int, r: ReplaceOrder) -> None:
        sid = session.id
        lim = self.limits
        order = self._live_order(sid, r.orig_cl_ord_id)
        to = CxlRejResponseTo.REPLACE
        if order is None:
            self._refuse_cancel(session, ts, r.cl_ord_id, r.orig_cl_ord_id, to, "unknown_order", f"no live order: orig_cl_ord_id={r.orig_cl_ord_id}")
            return
        if (sid, r.cl_ord_id) in self.by_client:
            self._refuse_cancel(session, ts, r.cl_ord_id, r.orig_cl_ord_id, to, "duplicate_clordid", f"cl_ord_id={r.cl_ord_id}")
            return
        why = self._venue_full() or self._check_size_and_price(r.symbol, r.quantity, r.price, r.ord_type)
        if why is None:
            key = (order.account, order.symbol, order.side)
            pos = self.positions.get((order.account, order.symbol), 0)
            open_same = self.open_qty.get(key, 0) - (order.qty - order.cum) + max(0, r.quantity - order.cum)
            worst = pos + open_same if order.side == Side.BUY.value else pos - open_same
            if abs(worst) > lim.max_position:
                why = ("position_limit", f"position={pos} open_after={open_same} max={lim.max_position}")
        if why is not None:
            self._refuse_cancel(session, ts, r.cl_ord_id, r.orig_cl_ord_id, to, why[0], why[1])
            return
        seq = self._sequence()
        self.orders[seq] = _Order.request(seq, sid, r.cl_ord_id, order, r.quantity, r.price, "replace")
        self.by_client[(sid, r.cl_ord_id)] = seq
        self.counters["accepted"] += 1
        self._to_venue(seq, r._replace(cl_ord_id=str(seq), orig_cl_ord_id=str(order.venue_id)), ts)
        order.venue_id = seq  # the venue knows it by this id once it takes the replace (sent in sequence order)
        session.offer(P.encode_sequenced(seq, ts, r.cl_ord_id))

    def _check_size_and_price(self, symbol: str, qty: int, px: int | None, ord_type: OrdType) -> tuple[str, str] | None:
        lim = self.limits
        if qty <= 0:
            return "bad_quantity", f"quantity={qty}"
        if qty > lim.max_order_qty:
            return "max_order_size", f"quantity={qty} max={lim.max_order_qty}"
        if px is not None and ord_type is not _MARKET:
            ref = self.last_price.get(symbol)
            if ref is None and symbol in lim.reference_prices:
                ref = int(lim.reference_prices[symbol] * _PRICE_SCALE)
            if ref is not None and abs(px - ref) * 100 > ref * lim.price_band_pct:
                return "price_band", f"price={px / _PRICE_SCALE:g} reference={ref / _PRICE_SCALE:g} band_pct={lim.price_band_pct:g}"
        return None

    def _cancel(self, session: Any, ts: int, c: CancelOrder) -> None:
        sid = session.id
        order = self._live_order(sid, c.orig_cl_ord_id)
        if order is None:
            self._refuse_cancel(session, ts, c.cl_ord_id, c.orig_cl_ord_id, CxlRejResponseTo.CANCEL, "unknown_order",
                                f"no live order: orig_cl_ord_id={c.orig_cl_ord_id}")
            return
        if len(self.venue_queue) >= 2 * self.limits.venue_backlog:  # cancels get room beyond new orders', not unbounded
            self._refuse_cancel(session, ts, c.cl_ord_id, c.orig_cl_ord_id, CxlRejResponseTo.CANCEL, "venue_backlog",
                                f"queued={len(self.venue_queue)}")
            return
        if (sid, c.cl_ord_id) in self.by_client:
            self._refuse_cancel(session, ts, c.cl_ord_id, c.orig_cl_ord_id, CxlRejResponseTo.CANCEL, "duplicate_clordid",
                                f"ClOrdId already used by this session: cl_ord_id={c.cl_ord_id}")
            return
        seq = self._sequence()
        self.orders[seq] = _Order.request(seq, sid, c.cl_ord_id, order, 0, None, "cancel")
        self.by_client[(sid, c.cl_ord_id)] = seq
        self.counters["accepted"] += 1
        self._to_venue(seq, c._replace(cl_ord_id=str(seq), orig_cl_ord_id=str(order.venue_id)), ts)
        session.offer(P.encode_sequenced(seq, ts, c.cl_ord_id))

    def _sequence(self) -> int:
        seq = self.next_seq
        self.next_seq += 1
        return seq

    def _to_venue(self, seq: int, msg: NewOrder | CancelOrder | ReplaceOrder, ts: int) -> None:
        view, n = self.codec.encode(msg)
        self._queue_for_venue(seq, bytes(view[:n]))

    def _queue_for_venue(self, seq: int, data: bytes) -> None:
        self.venue_queue.append((seq, data))
        self.venue_open[seq] = data
        vp = self.venue_poll
        if vp is not None:
            self.venue_poll = None
            self._answer_venue(vp[0], vp[1], vp[2])

    def _refuse(self, session: Any, ts: int, cl_ord_id: str, reason: str, detail: str, order: NewOrder | None = None) -> None:
        key = f"rejected_{reason}"
        self.counters[key] = self.counters.get(key, 0) + 1  # (a snapshot from before a reason was added lacks its key)
        rr = {"position_limit": RejectReason.EXCEEDS_LIMIT, "rate_limit": RejectReason.EXCEEDS_LIMIT,
              "max_order_size": RejectReason.INVALID_QUANTITY, "bad_quantity": RejectReason.INVALID_QUANTITY,
              "price_band": RejectReason.INVALID_PRICE, "duplicate_clordid": RejectReason.DUPLICATE_ORDER}.get(reason, RejectReason.OTHER)
        er = ExecutionReport(
            0, 0, cl_ord_id[:20], order.symbol if order else "", order.side if order else Side.BUY, ExecType.REJECTED,
            OrdStatus.REJECTED, order.price if order else None, None, 0, 0, 0, None, ts * 1_000_000, rr,
            f"reason={reason} {detail}"[:200])
        view, n = self.codec.encode(er)
        session.offer(bytes(view[:n]))

    def _refuse_cancel(self, session: Any, ts: int, cl_ord_id: str, orig: str, to: CxlRejResponseTo, reason: str, detail: str) -> None:
        self.counters[f"rejected_{reason}"] += 1
        rej = OrderReject(None, cl_ord_id[:20], orig[:20], OrdStatus.REJECTED, to,
                          RejectReason.UNKNOWN_ORDER if reason == "unknown_order" else RejectReason.OTHER,
                          ts * 1_000_000, f"reason={reason} {detail}"[:200])
        view, n = self.codec.encode(rej)
        session.offer(bytes(view[:n]))

    # ---------------------------------------------------------------- the venue

    def _venue_poll(self, session: Any, ts: int, poll: P.VenuePoll) -> None:
        old = self.venue_poll
        if old is not None:  # a new adapter (or a retry under a new session) replaces the old poll
            self.venue_poll = None
            self.cluster.answer(old[0], old[1], P.encode_batch(self.venue_sent, []))
        self.venue_session = session.id
        after = self.venue_sent if poll.after < 0 else poll.after
        if after > self.venue_sent:
            self.venue_sent = min(after, self.next_seq - 1)
        q = self.venue_queue
        while q and q[0][0] <= self.venue_sent:
            q.popleft()
        mx = max(1, min(poll.max_orders, P.MAX_ITEMS))
        if poll.after < 0:
            # a venue adapter starting: its predecessor may have died having sent orders whose
            # reports never came back in.  Resend every message taken but not ended (the venue
            # answers a resend with that request's reports, executing nothing twice); ``last`` is
            # where the sequence goes on (items may skip the ended ones: no gap).
            resend = []
            for s, m in self.venue_open.items():
                if s > self.venue_sent:
                    break
                if len(resend) == mx:
                    self.counters["venue_resend_truncated"] = self.counters.get("venue_resend_truncated", 0) + 1
                    break
                resend.append((s, m))
            if resend:
                self.counters["venue_resent"] = self.counters.get("venue_resent", 0) + len(resend)
                self.cluster.answer(session.id, session.correlation_id, P.encode_batch(self.venue_sent, resend))
                return
        if q:
            self._answer_venue(session.id, session.correlation_id, mx)
        else:
            self.venue_poll = (session.id, session.correlation_id, mx, ts)
            self._arm_timer(ts)

    def _answer_venue(self, sid: int, corr: int, mx: int) -> None:
        items = [item for _, item in zip(range(mx), self.venue_queue)]
        self.cluster.answer(sid, corr, P.encode_batch(items[-1][0] if items else self.venue_sent, items))

    def _venue_report(self, session: Any, ts: int, msg: ExecutionReport | OrderReject) -> None:
        if session.id != self.venue_session:
            self._refuse(session, ts, msg.cl_ord_id, "not_venue", f"an execution report from a session that is not the venue: session={session.id}")
            return
        self.counters["reports"] += 1
        session.offer(P.encode_batch(self.venue_sent, []))  # the receipt: the adapter may forget the report
        try:
            seq = int(msg.cl_ord_id)
        except ValueError:
            seq = -1
        order = self.orders.get(seq)
        if order is None:
            self.counters["rejected_venue"] += 1  # a report for nothing we sent (or long forgotten): counted, dropped
            return
        # a report the venue replayed (a restarted adapter resent the request): applied once, by the
        # venue's ExecID (increasing per ClOrdID; 0: none given, not deduplicated)
        if (order.status == "done" if isinstance(msg, OrderReject) else 0 < msg.exec_id <= order.venue_exec):
            self.counters["venue_replayed"] = self.counters.get("venue_replayed", 0) + 1
            return
        if isinstance(msg, ExecutionReport):
            order.venue_exec = msg.exec_id
        if isinstance(msg, OrderReject):
            target = self.orders.get(order.cancel_of)
            if order.kind == "replace" and target is not None and target.venue_id == order.seq:
                target.venue_id = order.prev_venue  # refused: the venue still knows the order by its old id
            out: Any = OrderReject(target.seq if target else None, order.cl_ord_id, target.cl_ord_id if target else "",
                                   msg.ord_status, msg.response_to, msg.reject_reason, msg.transact_time, msg.text)
            if order.status != "done":
                order.status = "done"
                self._finish(order)
            self._event(order.session, out)
            return
        target = order
        if order.kind != "new":  # a cancel's or replace's report: it moves the order it names
            target = self.orders.get(order.cancel_of, order)
            if order.kind == "replace" and msg.exec_type is ExecType.REPLACED and order.status != "done":
                key = (target.account, target.symbol, target.side)
                self.open_qty[key] = max(0, self.open_qty.get(key, 0) + max(0, order.qty - target.cum) - max(0, target.qty - target.cum))
                target.qty, target.price = order.qty, order.price
                target.cur_cl = order.cl_ord_id
            if order.status != "done" and (order.kind == "cancel" or msg.exec_type is ExecType.REPLACED):
                order.status = "done"
                self._finish(order)
        was_finished = target.status in _FINISHED
        key = (target.account, target.symbol, target.side)
        et = msg.exec_type
        if et is ExecType.TRADE and target.status not in _FINISHED:
            q = min(msg.last_quantity, target.qty - target.cum)
            target.cum += q
            self.open_qty[key] = max(0, self.open_qty.get(key, 0) - q)
            buy = target.side == Side.BUY.value
            pk = (target.account, target.symbol)
            px = msg.last_price if msg.last_price is not None else (target.price or 0)
            self._apply_fill(pk, buy, q, px)
            if msg.last_price is not None:
                self.last_price[target.symbol] = msg.last_price
            target.status = "filled" if target.cum >= target.qty else "partially_filled"
        elif et is ExecType.NEW and target.status == "sequenced":
            target.status = "acked"
        elif et in (ExecType.CANCELED, ExecType.REJECTED) and target.status not in _FINISHED:
            self.open_qty[key] = max(0, self.open_qty.get(key, 0) - (target.qty - target.cum))
            target.status = "cancelled" if et is ExecType.CANCELED else "rejected"
        if not was_finished and target.status in _FINISHED:
            self._finish(target)
        exec_id = self.next_exec_id
        self.next_exec_id += 1
        self._event(order.session, msg._replace(order_id=target.seq, exec_id=exec_id, cl_ord_id=order.cl_ord_id))

    def _finish(self, order: _Order) -> None:
        """Called once per order, when it ends; the oldest ended ones are forgotten past _MAX_DONE."""
        self.done.append(order.seq)
        self.venue_open.pop(order.seq, None)
        while len(self.done) > _MAX_DONE:
            old = self.orders.pop(self.done.popleft(), None)
            if old is not None:
                self.by_client.pop((old.session, old.cl_ord_id), None)

    def _apply_fill(self, key: tuple[str, str], buy: bool, qty: int, px: int) -> None:
        """Position, cost of the open quantity and realized PnL by average cost (mantissa x
        quantity), as the strategy SDK's ``Position.apply_fill`` keeps them."""
        q = self.positions.get(key, 0)
        cost, realized = self.costs.get(key, (0, 0))
        signed = qty if buy else -qty
        if q == 0 or (q > 0) == buy:
            cost += px * qty
        else:
            closing = min(qty, abs(q))
            removed = cost * closing // abs(q)
            realized += (px * closing - removed) if q > 0 else (removed - px * closing)
            cost -= removed
            if qty > closing:
                cost = px * (qty - closing)
        self.positions[key] = q + signed
        self.costs[key] = [cost, realized]

    def _recover(self, session: Any, ts: int, account: str) -> None:
        """A restarted client takes over ``account``: its live orders' events come to this
        session from now on, and the answer describes them and the account's positions."""
        sid = session.id
        replaces: dict[int, list[_Order]] = {}
        for r in self.orders.values():
            if r.kind == "replace":
                replaces.setdefault(r.cancel_of, []).append(r)
        items: list[tuple[int, bytes]] = []
        for o in list(self.orders.values()):
            if o.kind != "new" or o.account != account or o.status in _FINISHED:
                continue
            for r in [o, *replaces.get(o.seq, ())]:
                if self.by_client.get((r.session, r.cl_ord_id)) == r.seq:
                    del self.by_client[(r.session, r.cl_ord_id)]
                r.session = sid
                self.by_client[(sid, r.cl_ord_id)] = r.seq
            er = ExecutionReport(o.seq, 0, o.cur_cl, o.symbol, Side(o.side), ExecType.NEW,
                                 OrdStatus.PARTIALLY_FILLED if o.cum else OrdStatus.NEW, o.price, None, 0,
                                 max(0, o.qty - o.cum), o.cum, None, ts * 1_000_000)
            view, n = self.codec.encode(er)
            items.append((o.seq, bytes(view[:n])))
        for (acct, sym), q in self.positions.items():
            if acct == account:
                cost, realized = self.costs.get((acct, sym), (0, 0))
                items.append((0, P.encode_position(sym, q, cost, realized)))
        self.counters["recovered"] = self.counters.get("recovered", 0) + 1
        session.offer(P.encode_batch(0, items[:P.MAX_ITEMS]))

    def _attach(self, session: Any, ts: int, origin: str) -> None:
        """``session`` is ``origin`` from now on; an earlier session of that name hands it
        every order it sent (their ClOrdIds and reports) and the events it had not taken."""
        sid = session.id
        old = self.origins.get(origin)
        if old is None and len(self.origins) >= _MAX_ORIGINS:
            if not self.closed_origins:
                self._refuse(session, ts, "", "origin_limit", f"too many named clients, all connected: origin={origin} max={_MAX_ORIGINS}")
                return
            gone = next(iter(self.closed_origins))  # the name whose session closed longest ago is forgotten
            del self.closed_origins[gone]
            gone_sid = self.origins.pop(gone)
            self.session_origin.pop(gone_sid, None)
            self.events.pop(gone_sid, None)
            self.next_event.pop(gone_sid, None)
            self.counters["origins_forgotten"] = self.counters.get("origins_forgotten", 0) + 1
        self.closed_origins.pop(origin, None)
        if old is not None and old != sid:
            for o in self.orders.values():
                if o.session == old:
                    o.session = sid
            for (s, cl), seq in list(self.by_client.items()):
                if s == old:
                    del self.by_client[(s, cl)]
                    self.by_client.setdefault((sid, cl), seq)
            self.event_polls.pop(old, None)
            self.next_event.pop(old, None)
            self.session_origin.pop(old, None)
            moved = self.events.pop(old, None) or ()
            for _n, msg in moved:  # renumbered in the new session's sequence, in order
                self._append_event(sid, msg)
            self.counters["attach_takeovers"] = self.counters.get("attach_takeovers", 0) + 1
            self.counters["attach_events_moved"] = self.counters.get("attach_events_moved", 0) + len(moved)
            poll = self.event_polls.pop(sid, None)
            if poll is not None and self.events.get(sid):
                self._answer_events(sid, poll[0], poll[1])
            elif poll is not None:
                self.event_polls[sid] = poll
        prev = self.session_origin.get(sid)
        if prev is not None and prev != origin:
            self.origins.pop(prev, None)  # a session holds one name: its latest
            self.closed_origins.pop(prev, None)
        self.origins[origin] = sid
        self.session_origin[sid] = origin
        session.offer(P.encode_batch(0, []))

    # ---------------------------------------------------------------- events to clients

    def _event(self, sid: int, msg: ExecutionReport | OrderReject) -> None:
        view, n = self.codec.encode(msg)
        self._append_event(sid, bytes(view[:n]))
        poll = self.event_polls.pop(sid, None)
        if poll is not None:
            self._answer_events(sid, poll[0], poll[1])

    def _append_event(self, sid: int, data: bytes) -> None:
        q = self.events.get(sid)
        if q is None:
            q = self.events[sid] = deque()
        num = self.next_event.get(sid, 1)
        self.next_event[sid] = num + 1
        q.append((num, data))
        if len(q) > self.limits.event_backlog:
            q.popleft()
            self.counters["events_dropped"] += 1

    def _event_poll(self, session: Any, ts: int, poll: P.EventPoll) -> None:
        sid = session.id
        old = self.event_polls.pop(sid, None)
        if old is not None:
            self.cluster.answer(sid, old[0], P.encode_batch(self.next_event.get(sid, 1) - 1, []))
        q = self.events.get(sid)
        while q and q[0][0] <= poll.after:
            q.popleft()
        mx = max(1, min(poll.max_events, P.MAX_ITEMS))
        if q:
            self._answer_events(sid, session.correlation_id, mx)
        else:
            self.event_polls[sid] = (session.correlation_id, mx, ts)
            self._arm_timer(ts)

    def _answer_events(self, sid: int, corr: int, mx: int) -> None:
        q = self.events.get(sid) or deque()
        items = [item for _, item in zip(range(mx), q)]
        self.cluster.answer(sid, corr, P.encode_batch(items[-1][0] if items else self.next_event.get(sid, 1) - 1, items))

    def _arm_timer(self, ts: int) -> None:
        """One timer for every held poll: due when the oldest of them is ``long_poll_ms`` old."""
        if self._timer_due is not None:
            return
        since = [since for _c, _m, since in self.event_polls.values()]
        if self.venue_poll is not None:
            since.append(self.venue_poll[3])
        if since:
            self._timer_due = max(ts, min(since) + self.limits.long_poll_ms)
            self.cluster.schedule_timer(_TIMER_POLLS, self._timer_due)
