"""The history checker: accepts linearizable histories, rejects known
non-linearizable ones, and checks the simulator's real histories."""

from tickline.cluster.linearizability import Operation, check_linearizable
from tickline.sequencer.basic import NewOrder, OrderAck, RiskLimits, SequencerState, Side, Status
from tickline.cluster.sim import run_seed
from tickline.sequencer.basic import sequencer_key, sequencer_model


# --- a register model, the textbook example -------------------------------------------------

def register_step(state, op, out):
    kind, value = op
    if kind == "write":
        return [value]
    if out is None:
        return [state]
    return [state] if out == state else []


def check_register(ops):
    return check_linearizable(ops, 0, register_step, lambda s: s)


def test_sequential_register_history_is_linearizable():
    h = [Operation(1, 0, 1, ("write", 1), None), Operation(1, 2, 3, ("read", None), 1)]
    r = check_register(h)
    assert r.ok and r.order == (0, 1)


def test_stale_read_after_a_completed_write_is_rejected():
    # write(1) completes at t=1; a read starting at t=2 returns the old value 0
    h = [Operation(1, 0, 1, ("write", 1), None), Operation(2, 2, 3, ("read", None), 0)]
    r = check_register(h)
    assert not r.ok
    assert "no linearization" in r.reason and "first_unplaced_index=1" in r.reason


def test_concurrent_operations_may_take_effect_in_either_order():
    h = [Operation(1, 0, 10, ("write", 1), None), Operation(2, 1, 5, ("read", None), 0), Operation(3, 2, 6, ("read", None), 1)]
    assert check_register(h).ok


def test_reads_seeing_two_orders_of_concurrent_writes_are_rejected():
    # two concurrent writes; one reader sees 1 then 2, another sees 2 then 1, all sequential per reader
    h = [
        Operation(1, 0, 100, ("write", 1), None), Operation(2, 0, 100, ("write", 2), None),
        Operation(3, 10, 11, ("read", None), 1), Operation(3, 20, 21, ("read", None), 2),
        Operation(4, 12, 13, ("read", None), 2), Operation(4, 22, 23, ("read", None), 1),
    ]
    assert not check_register(h).ok


def test_an_unanswered_write_may_or_may_not_have_happened():
    h = [Operation(1, 0, None, ("write", 5), None), Operation(2, 10, 11, ("read", None), 5)]
    assert check_register(h).ok
    h = [Operation(1, 0, None, ("write", 5), None), Operation(2, 10, 11, ("read", None), 0)]
    assert check_register(h).ok


def test_a_return_before_its_call_is_reported():
    r = check_register([Operation(1, 5, 4, ("read", None), 0)])
    assert not r.ok and "returns before its call: index=0 call=5 ret=4" in r.reason


# --- the order sequencer model --------------------------------------------------------------

LIMITS = RiskLimits(max_position=100, max_orders=10, window=50)


def seq_check(ops):
    return check_linearizable(ops, (SequencerState(), 0), sequencer_model(LIMITS), sequencer_key)


def order(coid, qty=10):
    return NewOrder(1, Side.BUY, qty, 1, coid)


def test_sequence_numbers_that_contradict_real_time_are_not_linearizable():
    # order a completed (seq 2) before order b was even sent, yet b got seq 1
    h = [
        Operation(1, 0, 5, order("a"), OrderAck("a", Status.ACCEPTED, 2, 3)),
        Operation(2, 6, 9, order("b"), OrderAck("b", Status.ACCEPTED, 1, 7)),
    ]
    assert not seq_check(h).ok


def test_concurrent_orders_get_sequence_numbers_in_either_order():
    h = [
        Operation(1, 0, 10, order("a"), OrderAck("a", Status.ACCEPTED, 2, 4)),
        Operation(2, 1, 10, order("b"), OrderAck("b", Status.ACCEPTED, 1, 3)),
    ]
    r = seq_check(h)
    assert r.ok and r.order == (1, 0)


def test_a_sequence_number_given_twice_is_not_linearizable():
    h = [
        Operation(1, 0, 10, order("a"), OrderAck("a", Status.ACCEPTED, 1, 4)),
        Operation(2, 1, 10, order("b"), OrderAck("b", Status.ACCEPTED, 1, 4)),
    ]
    assert not seq_check(h).ok


def test_a_position_reject_needs_the_position_to_have_been_reached():
    # 60 + 60 > 100: the second is rejected only if the first took effect before it
    ok = [
        Operation(1, 0, 5, order("a", 60), OrderAck("a", Status.ACCEPTED, 1, 2)),
        Operation(2, 6, 9, order("b", 60), OrderAck("b", Status.REJECTED_POSITION, 0, 7)),
    ]
    assert seq_check(ok).ok
    lost = [
        Operation(1, 0, 5, order("a", 60), OrderAck("a", Status.ACCEPTED, 1, 2)),
        Operation(2, 6, 9, order("b", 60), OrderAck("b", Status.ACCEPTED, 2, 7)),  # the first "forgotten"
    ]
    assert not seq_check(lost).ok


def test_cluster_time_going_backwards_across_the_order_is_rejected():
    h = [
        Operation(1, 0, 5, order("a"), OrderAck("a", Status.ACCEPTED, 1, 100)),
        Operation(2, 6, 9, order("b"), OrderAck("b", Status.ACCEPTED, 2, 50)),
    ]
    assert not seq_check(h).ok


def test_simulated_histories_check_and_a_tampered_one_is_rejected():
    sim = next(s for s in map(run_seed, range(7, 40)) if len(s.history) > 20)
    ops = list(sim.history.values())
    assert all(o.ret is not None for o in ops)
    assert check_linearizable(ops, (SequencerState(), 0), sequencer_model(sim.limits), sequencer_key).ok
    # swap the sequence numbers of two accepted orders that were not concurrent
    accepted = sorted((o for o in ops if o.output.status is Status.ACCEPTED), key=lambda o: o.output.sequence)
    first, last = accepted[0], accepted[-1]
    assert first.ret < last.call
    swap = {id(first): last.output.sequence, id(last): first.output.sequence}
    tampered = [Operation(o.client, o.call, o.ret, o.input,
                          OrderAck(o.output.client_order_id, o.output.status, swap[id(o)], o.output.timestamp))
                if id(o) in swap else o for o in ops]
    assert not check_linearizable(tampered, (SequencerState(), 0), sequencer_model(sim.limits), sequencer_key).ok
