"""The sequencer service in the real service container, entry by entry: risk,
the global sequence, events to the sender only, the venue's queue, hostile
payloads, long polls answered later (and again from the cache on a retry),
snapshots."""

from __future__ import annotations

import random

import pytest

from tickline.cluster.messages import Entry, EntryKind
from tickline.cluster.protocol import EgressMessage
from tickline.cluster.service import MESSAGE_HEADER, OPEN, TIMER, ServiceContainer
from tickline.fix_gateway.bridge import (
    CancelOrder, ExecType, ExecutionReport, NewOrder, OrdStatus, OrderReject, OrdType, Side, TimeInForce,
)
from tickline.fix_gateway.sbe_orders import OrderCodec
from tickline.sequencer import protocol as P
from tickline.sequencer.service import SequencerLimits, SequencerService

S = 10 ** 9
VENUE, A, B = 900, 100, 200  # session ids (client id = session id + 1)


class Harness:
    def __init__(self, limits: SequencerLimits | None = None) -> None:
        self.service = SequencerService(limits or SequencerLimits(max_position=100, max_order_qty=50, max_orders=5,
                                                                  rate_window_ms=1000, price_band_pct=5.0,
                                                                  reference_prices={"X": 100.0}, long_poll_ms=50))
        self.container = ServiceContainer(self.service)
        self.position = 0
        self.codec = OrderCodec()
        self.corr = {}
        for sid in (VENUE, A, B):
            self._apply(EntryKind.SESSION_OPEN, OPEN.pack(sid, sid + 1), 0)

    def _apply(self, kind, payload, ts):
        e = Entry(self.position, 1, ts, kind, payload)
        self.position = e.end
        return [m for _, m in self.container.apply(e)]

    def send(self, sid, payload, ts=1000, corr=None):
        """Apply one client message; returns {session: [payloads]} of the egress."""
        if corr is None:
            corr = self.corr.get(sid, 0) + 1
            self.corr[sid] = corr
        out = self._apply(EntryKind.MESSAGE, MESSAGE_HEADER.pack(sid, corr, 1) + bytes(payload), ts)
        return self._by_session(out)

    def fire_timers(self, ts):
        out = []
        for c in self.container.due_timers(ts):
            out += self._apply(EntryKind.TIMER, TIMER.pack(c), ts)
        return self._by_session(out)

    @staticmethod
    def _by_session(out):
        d = {}
        for m in out:
            if isinstance(m, EgressMessage):
                d.setdefault(m.session_id, []).append(m.payload)
        return d

    def enc(self, msg):
        v, n = self.codec.encode(msg)
        return bytes(v[:n])

    def order(self, cl, side=Side.BUY, qty=10, price=100.0, account="ACC", symbol="X"):
        return self.enc(NewOrder(cl, account, symbol, side, OrdType.LIMIT, TimeInForce.DAY, int(price * S), None, qty, 0))

    def report(self, seq, exec_type, status, last_qty=0, leaves=0, cum=0, price=100.0):
        return self.enc(ExecutionReport(0, 0, str(seq), "X", Side.BUY, exec_type, status, int(price * S), int(price * S),
                                        last_qty, leaves, cum, None, 0))


def decode(payload):
    return OrderCodec().decode(payload)


def reason(payload):
    msg = decode(payload)
    assert isinstance(msg, (ExecutionReport, OrderReject))
    return msg.text.split()[0]


def test_an_order_is_sequenced_goes_to_the_venue_once_and_its_fills_reach_only_its_sender():
    h = Harness()
    out = h.send(A, h.order("a1"))
    assert list(out) == [A]
    seq = P.decode(out[A][0])
    assert isinstance(seq, P.Sequenced) and (seq.order_id, seq.cl_ord_id) == (1, "a1")
    # the venue polls: it gets the order, its ClOrdId the global sequence
    out = h.send(VENUE, P.encode_venue_poll(-1))
    last, items = P.decode_batch(out[VENUE][0])
    assert last == 1 and [s for s, _ in items] == [1]
    venue_order = decode(items[0][1])
    assert isinstance(venue_order, NewOrder) and venue_order.cl_ord_id == "1" and venue_order.quantity == 10
    # B's long poll is held: nothing for B
    assert h.send(B, P.encode_event_poll(0)) == {}
    # the venue acks and fills: A's poll, when it comes, gets both, rewritten to A's ClOrdId
    h.send(VENUE, h.report(1, ExecType.NEW, OrdStatus.NEW, leaves=10))
    h.send(VENUE, h.report(1, ExecType.TRADE, OrdStatus.FILLED, last_qty=10, cum=10))
    out = h.send(A, P.encode_event_poll(0))
    assert list(out) == [A]
    _, items = P.decode_batch(out[A][0])
    reports = [decode(m) for _, m in items]
    assert [(r.cl_ord_id, r.order_id, r.exec_type) for r in reports] == [("a1", 1, ExecType.NEW), ("a1", 1, ExecType.TRADE)]
    assert len({r.exec_id for r in reports}) == 2
    assert h.service.positions[("ACC", "X")] == 10 and h.service.orders[1].status == "filled"
    # the venue's next poll has nothing new: it is held, not answered with the old order
    assert h.send(VENUE, P.encode_venue_poll(1)) == {}


def test_every_risk_check_refuses_with_its_reason_to_the_sender_only():
    h = Harness()
    cases = [
        (h.order("big", qty=51), "reason=max_order_size"),
        (h.order("zero", qty=0), "reason=bad_quantity"),
        (h.order("far", price=106.0), "reason=price_band"),
    ]
    for payload, why in cases:
        out = h.send(A, payload)
        assert list(out) == [A] and reason(out[A][0]) == why
        assert decode(out[A][0]).exec_type is ExecType.REJECTED
    h.send(A, h.order("ok1", qty=50))
    assert reason(h.send(A, h.order("ok1", qty=1))[A][0]) == "reason=duplicate_clordid"
    h.send(A, h.order("ok2", qty=50))
    # open buys 100 = max_position: one more share is over the limit
    assert reason(h.send(A, h.order("over", qty=1))[A][0]) == "reason=position_limit"
    # a sell is fine (the position limit is per side's worst case)
    assert isinstance(P.decode(h.send(A, h.order("s1", side=Side.SELL, qty=1))[A][0]), P.Sequenced)
    # rate: 5 accepted per 1000 ms per account; ACC has 3, two more, then refused; another account is not
    for i in range(2):
        assert isinstance(P.decode(h.send(A, h.order(f"s{i + 2}", side=Side.SELL, qty=1))[A][0]), P.Sequenced)
    assert reason(h.send(A, h.order("s9", side=Side.SELL, qty=1))[A][0]) == "reason=rate_limit"
    assert isinstance(P.decode(h.send(B, h.order("b1", account="OTHER"))[B][0]), P.Sequenced)
    # the window is cluster time: 1000 ms later ACC may send again
    assert isinstance(P.decode(h.send(A, h.order("s10", side=Side.SELL, qty=1), ts=2001)[A][0]), P.Sequenced)
    c = h.service.counters
    assert (c["rejected_max_order_size"], c["rejected_bad_quantity"], c["rejected_price_band"], c["rejected_duplicate_clordid"],
            c["rejected_position_limit"], c["rejected_rate_limit"]) == (1, 1, 1, 1, 1, 1)


def test_hostile_payloads_are_refused_as_malformed_and_the_service_goes_on():
    h = Harness()
    rng = random.Random(7)
    good = h.order("g1")
    payloads = [b"", b"\x01", b"\xff" * 8, good[:12], good[:-5], P.encode_event_poll(0)[:10],
                b"\x08\x00\x07\x00\x6e\x00\x00\x00" + b"\x00" * 8]  # sequencer schema, unknown template
    payloads += [bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 80))) for _ in range(300)]
    payloads += [bytearray(good) for _ in range(200)]
    for p in payloads[-200:]:  # the good order with one byte flipped
        i = rng.randrange(len(p))
        p[i] ^= 1 << rng.randrange(8)
    refused = 0
    for i, p in enumerate(payloads):
        out = h.send(B, bytes(p))
        for answer in out.get(B, []):
            try:
                if P.peek(answer)[0] == P.SCHEMA_ID:
                    continue  # a flipped bit that still decodes: sequenced, or a poll
            except P.ProtocolError:
                pytest.fail("the service answered with a malformed message")
            if reason(answer) == "reason=malformed":
                refused += 1
        assert set(out) <= {B}
    assert refused >= 7 and h.service.counters["rejected_malformed"] == refused
    # still sequencing
    out = h.send(A, h.order("after", account="FRESH"), ts=9000)
    assert isinstance(P.decode(out[A][0]), P.Sequenced)


def test_only_the_venue_session_may_report_fills():
    h = Harness()
    h.send(A, h.order("a1"))
    h.send(VENUE, P.encode_venue_poll(-1))
    out = h.send(B, h.report(1, ExecType.TRADE, OrdStatus.FILLED, last_qty=10, cum=10))
    assert reason(out[B][0]) == "reason=not_venue"
    assert h.service.orders[1].cum == 0 and ("ACC", "X") not in h.service.positions


def test_a_long_poll_is_answered_later_and_a_retry_to_a_new_leader_gets_the_same_answer():
    h = Harness()
    assert h.send(VENUE, P.encode_venue_poll(-1), corr=5) == {}
    out = h.send(A, h.order("a1"))
    # the order's apply also answers the venue's held poll (correlation 5)
    assert set(out) == {A, VENUE}
    first = out[VENUE][0]
    # the adapter's retry of correlation 5 (after a leader change) is answered from the cache
    again = h.send(VENUE, P.encode_venue_poll(-1), corr=5)
    assert again == {VENUE: [first]} and h.container.duplicates == 1
    # an idle poll is answered empty once long_poll_ms of cluster time has passed
    assert h.send(B, P.encode_event_poll(0), ts=2000) == {}
    assert h.fire_timers(2049) == {}
    out = h.fire_timers(2050)
    last, items = P.decode_batch(out[B][0])
    assert (last, items) == (0, [])


def test_a_cancel_is_sequenced_and_its_report_ends_the_order():
    h = Harness()
    h.send(A, h.order("a1"))
    out = h.send(A, h.enc(CancelOrder("c1", "a1", "X", Side.BUY, 0)))
    assert P.decode(out[A][0]).order_id == 2
    _, items = P.decode_batch(h.send(VENUE, P.encode_venue_poll(-1))[VENUE][0])
    cancel = decode(items[1][1])
    assert isinstance(cancel, CancelOrder) and (cancel.cl_ord_id, cancel.orig_cl_ord_id) == ("2", "1")
    h.send(VENUE, h.report(2, ExecType.CANCELED, OrdStatus.CANCELED))
    assert h.service.orders[1].status == "cancelled" and h.service.open_qty[("ACC", "X", "1")] == 0
    out = h.send(A, P.encode_event_poll(0))
    (_, m), = P.decode_batch(out[A][0])[1]
    r = decode(m)
    assert (r.cl_ord_id, r.order_id, r.exec_type) == ("c1", 1, ExecType.CANCELED)
    # a cancel of an order that is no longer live
    assert reason(h.send(A, h.enc(CancelOrder("c2", "a1", "X", Side.BUY, 0)))[A][0]) == "reason=unknown_order"


def test_a_snapshot_restores_everything_the_next_message_depends_on():
    h = Harness()
    h.send(A, h.order("a1"))
    h.send(A, h.order("a2", side=Side.SELL))
    h.send(VENUE, P.encode_venue_poll(-1))
    h.send(VENUE, h.report(1, ExecType.TRADE, OrdStatus.FILLED, last_qty=10, cum=10))
    h.send(B, P.encode_event_poll(0), ts=1500)
    snap = h.container.take_snapshot()
    other = Harness()
    other.container.load_snapshot(snap)
    other.position = h.position
    assert other.service.on_take_snapshot() == h.service.on_take_snapshot()
    # the same next messages give the same answers on both
    for hh in (h, other):
        hh.corr = dict(h.corr)
    for payload, sid in ((h.order("a2"), A), (h.order("a3"), A), (P.encode_event_poll(0), A)):
        assert h.send(sid, payload, ts=1600) == other.send(sid, payload, ts=1600)


def test_limits_from_the_topology_section_refuse_unknown_keys_and_bad_values():
    assert SequencerLimits.from_section({"max_position": 5}).max_position == 5
    with pytest.raises(ValueError, match="key=sequencer.max_postion"):
        SequencerLimits.from_section({"max_postion": 5}, "t.toml")
    with pytest.raises(ValueError, match="key=sequencer.max_order_qty value=0"):
        SequencerLimits(max_order_qty=0)


def test_a_replace_moves_the_order_at_the_venue_and_later_fills_and_cancels_follow_its_new_id():
    from tickline.fix_gateway.bridge import ReplaceOrder
    h = Harness()
    h.send(A, h.order("a1", qty=10, price=100.0))
    rep = h.enc(ReplaceOrder("a1r", "a1", "X", Side.BUY, OrdType.LIMIT, TimeInForce.DAY, int(100.5 * S), 20, 0))
    assert P.decode(h.send(A, rep)[A][0]).order_id == 2
    _, items = P.decode_batch(h.send(VENUE, P.encode_venue_poll(-1))[VENUE][0])
    venue_rep = decode(items[1][1])
    assert isinstance(venue_rep, ReplaceOrder) and (venue_rep.cl_ord_id, venue_rep.orig_cl_ord_id, venue_rep.quantity) == ("2", "1", 20)
    h.send(VENUE, h.report(2, ExecType.REPLACED, OrdStatus.REPLACED, leaves=20, price=100.5))
    o = h.service.orders[1]
    assert (o.qty, o.price, h.service.open_qty[("ACC", "X", "1")]) == (20, int(100.5 * S), 20)
    # the venue fills it under its new id: the sender hears of its replace's ClOrdId, the order's OrderId
    h.send(VENUE, h.report(2, ExecType.TRADE, OrdStatus.PARTIALLY_FILLED, last_qty=5, leaves=15, cum=5, price=100.5))
    assert (o.cum, h.service.positions[("ACC", "X")]) == (5, 5)
    # the client cancels by the replace's ClOrdId; the venue is asked to cancel its id "2"
    assert P.decode(h.send(A, h.enc(CancelOrder("a1c", "a1r", "X", Side.BUY, 0)))[A][0]).order_id == 3
    _, items = P.decode_batch(h.send(VENUE, P.encode_venue_poll(2))[VENUE][0])
    cancel = decode(items[0][1])
    assert (cancel.cl_ord_id, cancel.orig_cl_ord_id) == ("3", "2")
    h.send(VENUE, h.report(3, ExecType.CANCELED, OrdStatus.CANCELED, cum=5))
    assert o.status == "cancelled" and h.service.open_qty[("ACC", "X", "1")] == 0
    _, items = P.decode_batch(h.send(A, P.encode_event_poll(0))[A][0])
    seen = [(r.cl_ord_id, r.order_id, r.exec_type) for r in (decode(m) for _, m in items)]
    assert seen == [("a1r", 1, ExecType.REPLACED), ("a1r", 1, ExecType.TRADE), ("a1c", 1, ExecType.CANCELED)]
    # a replace that breaks a limit is refused with its reason, the order untouched
    h.send(A, h.order("b1", qty=10))
    bad = h.enc(ReplaceOrder("b1r", "b1", "X", Side.BUY, OrdType.LIMIT, TimeInForce.DAY, int(100 * S), 51, 0))
    rej = decode(h.send(A, bad)[A][0])
    assert isinstance(rej, OrderReject) and rej.text.startswith("reason=max_order_size")


def test_limits_may_come_from_the_environment_and_a_bad_value_names_the_variable():
    env = {"TICKLINE_SEQUENCER_MAX_ORDER_QTY": "7", "TICKLINE_SEQUENCER_PRICE_BAND_PCT": "2.5"}
    lim = SequencerLimits.from_section({"max_order_qty": 50}, "t.toml", env)
    assert (lim.max_order_qty, lim.price_band_pct) == (7, 2.5)
    with pytest.raises(ValueError, match="key=TICKLINE_SEQUENCER_MAX_ORDERS value='many'"):
        SequencerLimits.from_section({}, "t.toml", {"TICKLINE_SEQUENCER_MAX_ORDERS": "many"})


def test_a_venue_that_takes_nothing_bounds_the_queue_and_new_orders_are_refused_with_the_reason():
    h = Harness(SequencerLimits(venue_backlog=3, max_orders=100))
    for i in range(3):
        assert isinstance(P.decode(h.send(A, h.order(f"q{i}", qty=1))[A][0]), P.Sequenced)
    assert reason(h.send(A, h.order("q3", qty=1))[A][0]) == "reason=venue_backlog"
    # cancels still get in (they reduce risk), up to twice the bound
    for i in range(3):
        assert isinstance(P.decode(h.send(A, h.enc(CancelOrder(f"c{i}", f"q{i}", "X", Side.BUY, 0)))[A][0]), P.Sequenced)
    assert reason(h.send(A, h.enc(CancelOrder("c9", "q0", "X", Side.BUY, 0)))[A][0]) == "reason=venue_backlog"
    assert len(h.service.venue_queue) == 6
    # the venue takes them: room again
    h.send(VENUE, P.encode_venue_poll(-1))
    h.send(VENUE, P.encode_venue_poll(6))
    assert len(h.service.venue_queue) == 0
    assert isinstance(P.decode(h.send(A, h.order("q4", qty=1))[A][0]), P.Sequenced)


def test_a_restarted_client_takes_over_its_account_s_live_orders_and_position():
    from tickline.fix_gateway.bridge import ReplaceOrder
    h = Harness(SequencerLimits(max_orders=100, max_position=1000))
    h.send(A, h.order("a1", qty=10, price=100.0))
    h.send(A, h.order("a2", side=Side.SELL, qty=4, price=101.0))
    h.send(A, h.order("a3", qty=3, price=99.0))
    h.send(A, h.enc(ReplaceOrder("a3r", "a3", "X", Side.BUY, OrdType.LIMIT, TimeInForce.DAY, int(99.5 * S), 6, 0)))
    h.send(VENUE, P.encode_venue_poll(-1))
    h.send(VENUE, h.report(1, ExecType.TRADE, OrdStatus.PARTIALLY_FILLED, last_qty=6, leaves=4, cum=6, price=100.0))
    h.send(VENUE, h.report(2, ExecType.TRADE, OrdStatus.FILLED, last_qty=4, cum=4, price=102.0))
    h.send(VENUE, h.report(4, ExecType.REPLACED, OrdStatus.REPLACED, leaves=6, price=99.5))
    # B is the restarted process of account ACC
    out = h.send(B, P.encode_recover("ACC"))
    _, items = P.decode_batch(out[B][0])
    reports = [decode(m) for n, m in items if n]
    positions = [P.decode(m) for n, m in items if not n]
    assert sorted((r.cl_ord_id, r.order_id, r.ord_status, r.leaves_quantity, r.cum_quantity) for r in reports) == [
        ("a1", 1, OrdStatus.PARTIALLY_FILLED, 4, 6), ("a3r", 3, OrdStatus.NEW, 6, 0)]
    # bought 6 @ 100, sold 4 @ 102: long 2 at cost 200, realized 4 x 2
    assert positions == [P.PositionReport("X", 2, 2 * 100 * S, 4 * 2 * S)]
    # from now on a1's fills go to B, and B may cancel by the current ClOrdIds
    h.send(VENUE, h.report(1, ExecType.TRADE, OrdStatus.FILLED, last_qty=4, cum=10, price=100.0))
    # the old session keeps only what happened before the takeover
    _, old = P.decode_batch(h.send(A, P.encode_event_poll(0))[A][0])
    assert [(decode(m).cl_ord_id, decode(m).last_quantity) for _, m in old] == [("a1", 6), ("a2", 4), ("a3r", 0)]
    _, items = P.decode_batch(h.send(B, P.encode_event_poll(0))[B][0])
    assert [(decode(m).cl_ord_id, decode(m).exec_type) for _, m in items] == [("a1", ExecType.TRADE)]
    assert isinstance(P.decode(h.send(B, h.enc(CancelOrder("c1", "a3r", "X", Side.BUY, 0)))[B][0]), P.Sequenced)


def test_a_venue_adapter_killed_mid_flow_and_restarted_executes_each_order_once_and_loses_no_report():
    from tickline.venue.adapter import SequencedOrders
    from tickline.venue.exchange_sim import ExchangeSim

    h = Harness()
    venue = ExchangeSim(lambda: 0, modes={"X": "auto-fill"}, replay_resends=True)
    NEW_VENUE = 901
    h._apply(EntryKind.SESSION_OPEN, OPEN.pack(NEW_VENUE, NEW_VENUE + 1), 0)

    def to_exchange(orders):
        orders.publish(lambda m: venue.offer("adapter", decode(m)) or True)
        out = []
        venue.poll(lambda sid, rep: out.append(rep), 1000)
        return out

    def take(sid, orders, after):
        out = h.send(sid, P.encode_venue_poll(after)).get(sid)
        if out:
            orders.on_batch(*reversed(P.decode_batch(out[0])))

    for i in range(4):
        h.send(A, h.order(f"a{i}"))
    old = SequencedOrders()
    take(VENUE, old, -1)
    reports = first = to_exchange(old)  # all four executed: ack + fill each
    assert len(reports) == 8
    take(VENUE, old, old.sent)  # held: nothing new
    for r in reports[:1] + reports[2:4]:  # order 1's ack and order 2's ack and fill got into the cluster ...
        h.send(VENUE, h.enc(r))
    # ... and the adapter is killed -9: the rest of the reports are lost with it
    h.send(A, h.order("a4"))  # sequenced while no adapter runs (the dead one's poll answered to nobody)
    new = SequencedOrders()
    take(NEW_VENUE, new, -1)  # the resume: every message taken but not ended, then where to go on
    assert [s for s, _ in new.queue] == [1, 3, 4] and new.taken == 4
    reports = to_exchange(new)
    assert venue.replayed == 3  # answered from the venue's reports, not executed again
    take(NEW_VENUE, new, new.sent)
    assert [s for s, _ in new.queue] == [5]
    reports += to_exchange(new)
    for r in reports:
        h.send(NEW_VENUE, h.enc(r))
    assert new.gaps == new.repeated == 0
    # the venue executed each order once (one OrderID each), and the sender heard each report once
    assert len({r.order_id for r in first + reports}) == 5 and venue.replayed == 3
    assert {r.order_id for r in reports} == {r.order_id for r in first} - {first[2].order_id} | {reports[-1].order_id}
    _, items = P.decode_batch(h.send(A, P.encode_event_poll(0))[A][0])
    events = [(e.cl_ord_id, e.exec_type) for e in (decode(m) for _, m in items)]
    assert sorted(events) == sorted((f"a{i}", t) for i in range(5) for t in (ExecType.NEW, ExecType.TRADE))
    assert h.service.positions[("ACC", "X")] == 50 and all(h.service.orders[s].status == "filled" for s in range(1, 6))
    assert h.service.counters["venue_replayed"] == 1 and h.service.counters["venue_resent"] == 3  # order 1's ack, again
    assert h.service.venue_open == {}


def test_a_restarted_gateway_attached_under_its_name_takes_over_its_orders_clordids_and_untaken_events():
    """A FIX gateway killed -9 and restarted: its new session attaches under the same name and
    gets every order of the old one (a client's re-send of a ClOrdId is refused as a duplicate,
    never sequenced twice) and the events the old one never took, even after its session closed."""
    from tickline.cluster.service import CLOSE

    h = Harness(SequencerLimits(max_orders=100, max_position=1000))
    assert P.decode_batch(h.send(A, P.encode_attach("fix:FIX.4.4:GW->C1"))[A][0]) == (0, [])
    for cl in ("g1", "g2", "g3"):
        assert isinstance(P.decode(h.send(A, h.order(cl))[A][0]), P.Sequenced)
    h.send(VENUE, P.encode_venue_poll(-1))
    h.send(VENUE, h.report(1, ExecType.NEW, OrdStatus.NEW, leaves=10))
    _, taken = P.decode_batch(h.send(A, P.encode_event_poll(0))[A][0])  # g1's ack: taken by the old gateway
    assert [decode(m).cl_ord_id for _, m in taken] == ["g1"]
    assert h.send(A, P.encode_event_poll(1)) == {}  # it took g1's ack; its next poll is held
    # g1's fill answers that poll, but the gateway dies before its next poll says it took it
    h.send(VENUE, h.report(1, ExecType.TRADE, OrdStatus.FILLED, last_qty=10, cum=10))
    h.send(VENUE, h.report(2, ExecType.NEW, OrdStatus.NEW, leaves=10))
    # the old gateway is killed: its session times out and closes before the new one attaches
    h._apply(EntryKind.SESSION_CLOSE, CLOSE.pack(A), 2000)
    h.send(VENUE, h.report(2, ExecType.TRADE, OrdStatus.FILLED, last_qty=10, cum=10))  # while no gateway runs
    assert P.decode_batch(h.send(B, P.encode_attach("fix:FIX.4.4:GW->C1"))[B][0]) == (0, [])
    # the client re-sends what it heard nothing of: each is a duplicate, nothing is sequenced again
    for cl in ("g1", "g2", "g3"):
        rej = decode(h.send(B, h.order(cl))[B][0])
        assert rej.exec_type is ExecType.REJECTED and rej.text.startswith("reason=duplicate_clordid"), rej
    assert h.service.next_seq == 4 and len(h.service.venue_queue) == 3
    # the events the old gateway never took come to the new one, in order, then g3's as they happen
    _, items = P.decode_batch(h.send(B, P.encode_event_poll(0))[B][0])
    assert [(decode(m).cl_ord_id, decode(m).exec_type) for _, m in items] == [
        ("g1", ExecType.TRADE), ("g2", ExecType.NEW), ("g2", ExecType.TRADE)]
    h.send(VENUE, h.report(3, ExecType.NEW, OrdStatus.NEW, leaves=10))
    _, items = P.decode_batch(h.send(B, P.encode_event_poll(3))[B][0])
    assert [(decode(m).cl_ord_id, decode(m).exec_type) for _, m in items] == [("g3", ExecType.NEW)]
    assert h.service.counters["attach_takeovers"] == 1 and h.service.counters["attach_events_moved"] == 3
    # a snapshot keeps the names: a member restarted from it gives the next gateway the same
    again = SequencerService(h.service.limits)
    again.on_load_snapshot(h.service.on_take_snapshot())
    assert again.origins == {"fix:FIX.4.4:GW->C1": B} and again.by_client[(B, "g2")] == 2


def test_an_attach_without_a_usable_name_is_refused_as_the_sender_s_fault():
    h = Harness()
    bad = [P.encode_attach("x")[:-70], P.HEADER.pack(64, P.ATTACH, P.SCHEMA_ID, 0) + b"\0" * 64,
           P.HEADER.pack(64, P.ATTACH, P.SCHEMA_ID, 0) + b"a b" + b"\0" * 61,
           P.HEADER.pack(64, P.ATTACH, P.SCHEMA_ID, 0) + b"\xff" * 64]
    for payload in bad:
        rej = decode(h.send(A, payload)[A][0])
        assert rej.exec_type is ExecType.REJECTED and rej.text.startswith("reason=malformed") and "fault=peer" in rej.text
    assert h.service.origins == {}
    with pytest.raises(ValueError, match="fault=caller"):
        P.encode_attach("a" * 65)


def test_names_are_bounded_the_longest_closed_one_is_forgotten_and_open_ones_are_never_taken(monkeypatch):
    from tickline.cluster.service import CLOSE
    from tickline.sequencer import service as service_module

    monkeypatch.setattr(service_module, "_MAX_ORIGINS", 2)
    h = Harness()
    C = 300
    h._apply(EntryKind.SESSION_OPEN, OPEN.pack(C, C + 1), 0)
    h.send(A, P.encode_attach("a"))
    h.send(B, P.encode_attach("b"))
    rej = decode(h.send(C, P.encode_attach("c"))[C][0])  # every named session is open: refused
    assert rej.exec_type is ExecType.REJECTED and rej.text.startswith("reason=origin_limit")
    assert h.service.origins == {"a": A, "b": B}
    h._apply(EntryKind.SESSION_CLOSE, CLOSE.pack(B), 1000)
    h._apply(EntryKind.SESSION_CLOSE, CLOSE.pack(A), 1000)
    h.send(C, P.encode_attach("c"))  # B closed first: its name goes
    assert h.service.origins == {"a": A, "c": C} and h.service.counters["origins_forgotten"] == 1
    assert list(h.service.closed_origins) == ["a"]


def test_the_venue_gets_each_order_exactly_as_decoding_and_encoding_it_under_its_sequence_would_give():
    # the service copies a NewOrder in the schema's exact form and replaces only its ClOrdId (no
    # decode-and-encode of every field); any other form is encoded again.  Either way the venue's
    # bytes are encode(decode(order) with ClOrdId = the sequence): random damage to a valid order
    # (bytes after a text's NUL, other header fields, a longer message) checks every byte
    h = Harness(SequencerLimits(max_position=10**12, max_order_qty=10**12, max_orders=10**6, price_band_pct=1000.0))
    rnd = random.Random(19)
    base = h.order("c", qty=7)
    codec = OrderCodec()
    expected = {}
    for k in range(1500):
        b = bytearray(base)
        b[8:28] = f"c{k}".encode().ljust(20, b"\0")
        for _ in range(rnd.randint(0, 3)):
            b[rnd.randrange(28, len(b))] = rnd.choice([0, 0x41, 0x31, 0x32, rnd.randrange(256)])
        if rnd.random() < 0.1:
            b += bytes(rnd.randrange(1, 9))
        try:
            msg = codec.decode(bytes(b))
        except Exception:
            continue
        out = h.send(A, bytes(b), ts=1000 + k)
        if P.peek(out[A][0]) != (P.SCHEMA_ID, P.SEQUENCED):
            continue  # refused by risk (a damaged quantity or price): nothing goes to the venue
        seq = P.decode(out[A][0])
        v, n = codec.encode(msg._replace(cl_ord_id=str(seq.order_id)))
        expected[seq.order_id] = bytes(v[:n])
    assert len(expected) > 300
    assert {s: m for s, m in h.service.venue_queue} == expected
    assert h.service.venue_open == expected


def test_an_order_in_the_exact_form_read_in_one_unpack_gets_what_the_decoder_s_path_gives(monkeypatch):
    # NewOrders in the schema's exact form skip the field-by-field decode: the answers, the venue's
    # copies and every piece of state must be byte for byte what the general path (decode, then
    # the same checks) gives, for accepted orders, every refusal, and damaged bytes (enum bytes
    # outside the schema, text that is not ASCII, bytes after a text's NUL)
    limits = SequencerLimits(max_position=60, max_order_qty=25, max_orders=8, rate_window_ms=50, price_band_pct=5.0,
                             reference_prices={"X": 100.0}, venue_backlog=400)
    rnd = random.Random(23)
    codec = OrderCodec()
    steps = []
    for k in range(1200):
        sid = rnd.choice((A, B))
        if rnd.random() < 0.08 and steps:  # the venue fills one of the orders sent so far
            steps.append(("fill", rnd.randint(1, k), rnd.randint(1, 10), rnd.choice((95.0, 100.0, 104.0)), 1000 + k * 2))
            continue
        cl = f"c{rnd.randrange(k + 1)}" if rnd.random() < 0.05 else f"c{k}"  # some reuse a ClOrdId
        market = rnd.random() < 0.1
        msg = NewOrder(cl, rnd.choice(("ACC", "ACC2")), rnd.choice(("X", "Y")), rnd.choice((Side.BUY, Side.SELL)),
                       OrdType.MARKET if market else OrdType.LIMIT, rnd.choice((TimeInForce.DAY, TimeInForce.IMMEDIATE_OR_CANCEL)),
                       None if market else int(rnd.choice((90.0, 99.0, 100.0, 101.0, 110.0)) * S), None,
                       rnd.choice((0, 1, 5, 10, 30)), k)
        v, n = codec.encode(msg)
        b = bytearray(v[:n])
        r = rnd.random()
        if r < 0.05:
            b[rnd.choice((56, 57, 58))] = rnd.randrange(256)  # side, ordType, timeInForce
        elif r < 0.08:
            b[rnd.randrange(8, 56)] = rnd.choice((0x80, 0xFF, 0))  # a text byte: not ASCII, or a NUL inside
        steps.append(("order", sid, bytes(b), 1000 + k * 2))

    def run():
        h = Harness(limits)
        out = []
        for step in steps:
            if step[0] == "order":
                out.append(h.send(step[1], step[2], ts=step[3]))
            else:
                _, seq, qty, px, ts = step
                h.send(VENUE, P.encode_venue_poll(-1), ts=ts)
                out.append(h.send(VENUE, h.report(seq, ExecType.TRADE, OrdStatus.PARTIALLY_FILLED, last_qty=qty,
                                                  price=px), ts=ts))
        return h, out

    fast, fast_out = run()
    with monkeypatch.context() as m:
        m.setattr(P, "new_order_fields", lambda data: None)  # every order through the decoder
        general, general_out = run()
    assert fast_out == general_out
    assert fast.service.on_take_snapshot() == general.service.on_take_snapshot()
    assert fast.service._names and not general.service._names  # the exact-form path was taken
    counters = fast.service.counters
    assert counters["accepted"] > 100 and counters["rejected_malformed"] > 10
    for reason in ("position_limit", "rate_limit", "max_order_size", "price_band", "bad_quantity", "duplicate_clordid"):
        assert counters[f"rejected_{reason}"] > 0, reason


def test_the_decoded_account_and_symbol_names_are_bounded_and_orders_past_the_bound_are_sequenced_alike(monkeypatch):
    import tickline.sequencer.service as service_module

    monkeypatch.setattr(service_module, "_MAX_NAMES", 50)
    h = Harness(SequencerLimits(max_position=10**6, max_order_qty=50, max_orders=10**6, price_band_pct=1000.0))
    for k in range(120):  # a client naming a new account with every order
        out = h.send(A, h.order(f"n{k}", account=f"A{k}", qty=3), ts=1000 + k)
        s = P.decode(out[A][0])
        assert isinstance(s, P.Sequenced) and s.cl_ord_id == f"n{k}"
        assert h.service.orders[s.order_id].account == f"A{k}"
        assert h.service.positions.get((f"A{k}", "X"), 0) == 0 and h.service.open_qty[(f"A{k}", "X", "1")] == 3
    assert len(h.service._names) == 50


def test_an_order_record_from_a_snapshot_keeps_every_field_and_an_older_one_takes_a_new_order_s_defaults():
    from tickline.sequencer.service import _Order

    new = _Order(3, 7, "C1", "ACC", "ESZ6", "1", 5, 100)
    assert new.to_list() == [3, 7, "C1", "ACC", "ESZ6", "1", 5, 100, 0, "sequenced", 0, "new", 3, 0, "C1", 0]
    rep = _Order.request(4, 7, "C2", new, 9, 101, "replace")
    assert rep.to_list() == [4, 7, "C2", "ACC", "ESZ6", "1", 9, 101, 0, "sequenced", 3, "replace", 4, 3, "C2", 0]
    cxl = _Order.request(5, 7, "C3", new, 0, None, "cancel")
    assert cxl.to_list() == [5, 7, "C3", "ACC", "ESZ6", "1", 0, None, 0, "sequenced", 3, "cancel", 5, 0, "C3", 0]
    full = [6, 7, "C4", "ACC", "ESZ6", "2", 5, None, 2, "acked", 0, "new", 9, 8, "C9", 4]
    assert _Order.from_list(full).to_list() == full
    # a record from a snapshot written before venue_id, prev_venue, cur_cl and venue_exec existed
    assert _Order.from_list(full[:12]).to_list() == full[:12] + [6, 0, "C4", 0]
