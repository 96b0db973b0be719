"""The example order sequencer: global sequence numbers, position and order-rate limits
on replicated state and log time only, behind a codec seam."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster_harness import NodeNet
from tickline.cluster.protocol import EgressMessage, IngressMessage, SessionConnect
from tickline.sequencer.basic import (
    NewOrder, OrderAck, OrderSequencer, RiskLimits, SequencerState, Side, Status, StructOrderCodec, decide,
)

LIMITS = RiskLimits(max_position=100, max_orders=3, window=50)


def test_accepted_orders_get_consecutive_sequence_numbers():
    s = SequencerState()
    acks = [decide(s, NewOrder(1, Side.BUY, 10, 5, k), 1000 + k * 100, LIMITS) for k in range(3)]
    assert [(a.status, a.sequence) for a in acks] == [(Status.ACCEPTED, 1), (Status.ACCEPTED, 2), (Status.ACCEPTED, 3)]
    assert s.positions == {1: 30}


def test_position_limit_rejects_without_consuming_a_sequence_number():
    s = SequencerState()
    assert decide(s, NewOrder(1, Side.BUY, 90, 5, 1), 0, LIMITS).status is Status.ACCEPTED
    rej = decide(s, NewOrder(1, Side.BUY, 20, 5, 2), 100, LIMITS)
    assert (rej.status, rej.sequence) == (Status.REJECTED_POSITION, 0)
    assert decide(s, NewOrder(1, Side.SELL, 200, 5, 3), 200, LIMITS).status is Status.REJECTED_POSITION  # 90-200=-110
    ok = decide(s, NewOrder(1, Side.SELL, 190, 5, 4), 300, LIMITS)
    assert (ok.status, ok.sequence) == (Status.ACCEPTED, 2) and s.positions[1] == -100


def test_order_rate_limit_uses_cluster_time_windows():
    s = SequencerState()
    ts = [0, 10, 20]
    assert all(decide(s, NewOrder(2, Side.BUY, 1, 5, k), t, LIMITS).status is Status.ACCEPTED for k, t in enumerate(ts))
    assert decide(s, NewOrder(2, Side.BUY, 1, 5, 9), 49, LIMITS).status is Status.REJECTED_RATE
    assert decide(s, NewOrder(3, Side.BUY, 1, 5, 9), 49, LIMITS).status is Status.ACCEPTED  # other account unaffected
    assert decide(s, NewOrder(2, Side.BUY, 1, 5, 10), 50, LIMITS).status is Status.ACCEPTED  # t=0 left the window


def _reference_decide(state, order, timestamp, limits):
    """The rules written as plainly as possible: the specification decide() is held to."""
    if order.quantity <= 0 or order.side not in (Side.BUY, Side.SELL):
        return OrderAck(order.client_order_id, Status.REJECTED_INVALID, 0, timestamp)
    recent = [t for t in state.recent.get(order.account, ()) if t > timestamp - limits.window]
    if recent:
        state.recent[order.account] = recent
    else:
        state.recent.pop(order.account, None)
    if len(recent) >= limits.max_orders:
        return OrderAck(order.client_order_id, Status.REJECTED_RATE, 0, timestamp)
    signed = order.quantity if order.side is Side.BUY else -order.quantity
    position = state.positions.get(order.account, 0) + signed
    if abs(position) > limits.max_position:
        return OrderAck(order.client_order_id, Status.REJECTED_POSITION, 0, timestamp)
    state.positions[order.account] = position
    state.recent[order.account] = recent + [timestamp]
    state.next_sequence += 1
    return OrderAck(order.client_order_id, Status.ACCEPTED, state.next_sequence - 1, timestamp)


_orders = st.lists(st.tuples(st.integers(0, 3), st.sampled_from([Side.BUY, Side.SELL, 0, 1, 2]), st.integers(-1, 40), st.integers(0, 30)),
                   max_size=60)


@settings(max_examples=300, deadline=None)
@given(_orders, st.integers(0, 4), st.integers(1, 60), st.integers(0, 100),
       st.dictionaries(st.integers(0, 3), st.lists(st.integers(-20, 20), max_size=4), max_size=3))
def test_decide_matches_the_plain_rules(orders, max_orders, window, max_position, recent):
    """decide() filters the rate window only when a timestamp left it and extends it in
    place; whatever the order stream (timestamps that go back, a zero rate limit, an
    empty window list loaded from a snapshot), acks and state match the plain rules."""
    limits = RiskLimits(max_position=max_position, max_orders=max_orders, window=window)
    fast, plain = SequencerState(recent={a: list(t) for a, t in recent.items()}), SequencerState(recent={a: list(t) for a, t in recent.items()})
    clock = 0
    for k, (account, side, quantity, step) in enumerate(orders):
        clock += step - 5  # mostly forward, sometimes back
        order = NewOrder(account, side, quantity, 7, k)
        assert decide(fast, order, clock, limits) == _reference_decide(plain, order, clock, limits)
        assert fast.key() == plain.key()


def test_invalid_quantity_is_rejected():
    s = SequencerState()
    assert decide(s, NewOrder(1, Side.BUY, 0, 5, 1), 0, LIMITS).status is Status.REJECTED_INVALID
    assert s.next_sequence == 1


def test_codec_round_trip():
    c = StructOrderCodec()
    o = NewOrder(7, Side.SELL, 12, -3, 99)
    assert c.decode_order(c.encode_order(o)) == o
    a = OrderAck(99, Status.REJECTED_RATE, 0, 123456)
    assert c.decode_ack(c.encode_ack(a)) == a


def test_sequencer_snapshot_round_trip():
    svc = OrderSequencer(LIMITS)
    for k in range(3):
        decide(svc.state, NewOrder(k % 2, Side.BUY, 5, 1, k), k, LIMITS)
    other = OrderSequencer(LIMITS)
    other.on_load_snapshot(svc.on_take_snapshot())
    assert other.state.key() == svc.state.key()


def test_replicated_sequencer_gives_every_member_the_same_state_and_answers_malformed_orders():
    codec = StructOrderCodec()
    net = NodeNet(lambda: OrderSequencer(LIMITS))
    leader = net.elect()
    net.ingress(leader, SessionConnect(5, 50))
    net.run(5)
    for k in range(6):
        net.ingress(leader, IngressMessage(5, 50, k + 1, k + 1, codec.encode_order(NewOrder(1, Side.BUY, 30, 10, k))))
    net.ingress(leader, IngressMessage(5, 50, 7, 7, b"short"))
    net.run(10)
    acks = [codec.decode_ack(m.payload) for m in net.egress[5] if isinstance(m, EgressMessage)]
    assert [a.status for a in acks[:3]] == [Status.ACCEPTED] * 3
    assert acks[3].status is Status.REJECTED_POSITION or acks[3].status is Status.REJECTED_RATE
    assert acks[-1].status is Status.REJECTED_INVALID
    keys = {net.services[i].state.key() for i in net.ids}
    assert len(keys) == 1


def test_sbe_codec_from_orders_xml_round_trips_orders_and_execution_reports():
    from tickline.sequencer.basic_sbe import SbeOrderCodec
    c = SbeOrderCodec()
    o = NewOrder("ACC1", Side.SELL, 12, 1050, "ORD-99")
    data = c.encode_order(o)
    assert data[2:4] == (1).to_bytes(2, "little")  # SBE header: templateId 1 = NewOrder
    assert c.decode_order(data) == o
    for a in (OrderAck("ORD-99", Status.ACCEPTED, 42, 123), OrderAck("X", Status.REJECTED_RATE, 0, 5),
              OrderAck("Y", Status.REJECTED_POSITION, 0, 6), OrderAck("Z", Status.REJECTED_INVALID, 0, 7)):
        assert c.decode_ack(c.encode_ack(a)) == a
    with pytest.raises(ValueError, match="unexpected SBE message: expected=NewOrder got=ExecutionReport"):
        c.decode_order(c.encode_ack(OrderAck("A", Status.ACCEPTED, 1, 1)))


def test_replicated_sequencer_over_sbe_messages():
    from tickline.sequencer.basic_sbe import SbeOrderCodec
    codec = SbeOrderCodec()
    net = NodeNet(lambda: OrderSequencer(LIMITS, codec))
    leader = net.elect()
    net.ingress(leader, SessionConnect(5, 50))
    net.run(5)
    net.ingress(leader, IngressMessage(5, 50, 1, 1, codec.encode_order(NewOrder("A", Side.BUY, 30, 10, "o1"))))
    net.ingress(leader, IngressMessage(5, 50, 2, 2, codec.encode_order(NewOrder("A", Side.BUY, 90, 10, "o2"))))
    net.ingress(leader, IngressMessage(5, 50, 3, 3, b"\x00" * 5))
    net.run(10)
    acks = [codec.decode_ack(m.payload) for m in net.egress[5] if isinstance(m, EgressMessage)]
    assert [(a.client_order_id, a.status, a.sequence) for a in acks[:2]] == [("o1", Status.ACCEPTED, 1), ("o2", Status.REJECTED_POSITION, 0)]
    assert acks[2].status is Status.REJECTED_INVALID
    assert {net.services[i].state.key() for i in net.ids} == {net.services[leader].state.key()}
