"""exchange-sim's dedupe by sequence (``resend = "replay"``): a request whose ClOrdID (the
sequencer's global sequence) the venue has seen is answered with the reports it already had
(same ExecIDs) and never executed again, whichever Aeron publication resends it; without
replay a reused ClOrdID is still a duplicate."""

from __future__ import annotations

import time

import pytest

from tickline.fix_gateway.aeron_bridge import AeronStreams
from tickline.fix_gateway.bridge import (
    CancelOrder, ExecType, ExecutionReport, NewOrder, OrderReject, OrdType, RejectReason, ReplaceOrder, Side, TimeInForce,
)
from tickline.fix_gateway.sbe_orders import OrderCodec
from tickline.fix_gateway.config import ConfigError
from tickline.venue.exchange_service import ExchangeSimAgent, ExchangeSimConfig
from tickline.venue.exchange_sim import ExchangeSim

S = 10 ** 9


def order(cl, side, qty, px, symbol="X"):
    return NewOrder(cl, "ACC", symbol, side, OrdType.LIMIT, TimeInForce.DAY, px * S, None, qty, 0)


def drain(v):
    out = []
    v.poll(lambda sid, rep: out.append(rep), 1000)
    return out


def test_a_resent_order_cancel_or_replace_is_answered_with_its_reports_and_executed_once():
    v = ExchangeSim(lambda: 7, modes={"F": "auto-fill"}, replay_resends=True)
    v.offer("s", order("1", Side.SELL, 10, 100))
    v.offer("s", order("2", Side.BUY, 4, 100))  # fills 4 of "1"
    v.offer("s", order("3", Side.SELL, 5, 101))
    v.offer("s", ReplaceOrder("4", "3", "X", Side.SELL, OrdType.LIMIT, TimeInForce.DAY, 102 * S, 5, 0))
    v.offer("s", CancelOrder("5", "9", "X", Side.SELL, 0))  # refused: no such order
    v.offer("s", order("6", Side.BUY, 3, 100, symbol="F"))  # ack and fill at the limit
    first = drain(v)
    by_cl = {}
    for r in first:
        by_cl.setdefault(r.cl_ord_id, []).append(r)
    top = v.book_top("X")
    # a restarted gateway resends everything it has no end for, in sequence order
    for cl, req in (("1", order("1", Side.SELL, 10, 100)), ("2", order("2", Side.BUY, 4, 100)),
                    ("3", order("3", Side.SELL, 5, 101)),
                    ("4", ReplaceOrder("4", "3", "X", Side.SELL, OrdType.LIMIT, TimeInForce.DAY, 102 * S, 5, 0)),
                    ("5", CancelOrder("5", "9", "X", Side.SELL, 0)), ("6", order("6", Side.BUY, 3, 100, symbol="F"))):
        v.offer("s", req)
        assert drain(v) == by_cl[cl], cl  # the same reports, ExecIDs included: nothing new happened
    assert v.replayed == 6 and v.book_top("X") == top
    assert [r.exec_type for r in by_cl["6"]] == [ExecType.NEW, ExecType.TRADE]
    assert isinstance(by_cl["5"][0], OrderReject)
    # the order goes on as before: a later fill of "1" is its own report, and a resend of "1" now
    # answers with it too (its whole history), still executing nothing
    v.offer("s", order("7", Side.BUY, 6, 100))
    later = [r for r in drain(v) if r.cl_ord_id == "1"]
    assert later and later[-1].cum_quantity == 10
    v.offer("s", order("1", Side.SELL, 10, 100))
    assert drain(v) == by_cl["1"] + later and v.book_top("X")[2] == 102 * S


def test_without_replay_a_reused_ClOrdID_is_still_a_duplicate():
    v = ExchangeSim(lambda: 7)
    v.offer("s", order("1", Side.SELL, 10, 100))
    drain(v)
    v.offer("s", order("1", Side.SELL, 10, 100))
    (dup,) = drain(v)
    assert isinstance(dup, ExecutionReport) and dup.reject_reason is RejectReason.DUPLICATE_ORDER and v.replayed == 0


def test_the_reports_kept_for_replay_are_bounded_by_the_duplicate_window():
    v = ExchangeSim(lambda: 7, default_mode="auto-fill", duplicate_window=50, replay_resends=True)
    for i in range(1, 501):
        v.offer("s", order(str(i), Side.BUY, 1, 100))
    drain(v)
    assert len(v._history) == 50
    v.offer("s", order("500", Side.BUY, 1, 100))
    assert len(drain(v)) == 2 and v.replayed == 1  # a recent one: replayed
    v.offer("s", order("1", Side.BUY, 1, 100))
    # long forgotten (beyond the window, as its duplicate check): new to the venue again, the
    # documented price of bounded memory
    assert [r.exec_type for r in drain(v)] == [ExecType.NEW, ExecType.TRADE] and v.replayed == 1


def test_resend_is_checked_in_the_config():
    with pytest.raises(ConfigError, match="key=exchange_sim.resend"):
        ExchangeSimConfig(resend="again")


def test_a_restarted_adapters_new_publication_is_the_same_participant_and_its_resend_is_not_executed(aeron):
    driver, a = aeron
    agent = ExchangeSimAgent(a, ExchangeSimConfig(streams=AeronStreams(dir=driver.dir), resend="replay",
                                                  default_mode="auto-fill"))
    reports = a.add_subscription("aeron:ipc", 1002)
    codec = OrderCodec()
    got = []

    def send(pub, msg):
        view, n = codec.encode(msg)
        deadline = time.monotonic() + 10
        while pub.offer(bytes(view[:n])) <= 0:
            assert time.monotonic() < deadline, "order stream not connected"
            agent.do_work()
            time.sleep(0.001)

    def pump(n):
        deadline = time.monotonic() + 10
        while len(got) < n and time.monotonic() < deadline:
            agent.do_work()
            reports.poll(lambda buf, hdr: got.append(OrderCodec().decode(buf)), 10)
        return got

    old = a.add_exclusive_publication("aeron:ipc", 1001)
    send(old, order("1", Side.BUY, 5, 100))
    pump(2)
    old.close()  # the adapter dies; its successor has another publication (another Aeron session)
    new = a.add_exclusive_publication("aeron:ipc", 1001)
    assert new.session_id != old.session_id
    send(new, order("1", Side.BUY, 5, 100))
    send(new, order("2", Side.BUY, 5, 100))
    pump(6)
    assert [(r.cl_ord_id, r.exec_type, r.exec_id) for r in got[2:4]] == [(r.cl_ord_id, r.exec_type, r.exec_id) for r in got[:2]]
    assert [(r.cl_ord_id, r.exec_type) for r in got[4:]] == [("2", ExecType.NEW), ("2", ExecType.TRADE)]
    assert agent.orders == 3 and agent.venue.replayed == 1
    agent.on_close()
