"""A running member keeps the cyclic GC's full collections small: once per
GC_FREEZE_MS of its clock it freezes what survived (see NodeAgent)."""

import gc

from tickline.cluster.daemon import GC_FREEZE_MS, NodeAgent, Topology


class _Stack:
    def do_work(self):
        return 0


class _IO:
    polled_since_turn = True

    def poll(self, handler):
        return 0

    def flush(self):
        return 0


class _Node:
    def __init__(self):
        self.ticks = []
        self.terminated = None  # no shutdown under way

    def tick(self, now):
        self.ticks.append(now)


def test_a_running_member_freezes_what_survived_once_per_interval():
    clock = [5_000]
    agent = NodeAgent(Topology({1: ("127.0.0.1", 9000)}, "unused"), 1, clock=lambda: clock[0])  # never started
    agent.stack, agent.io, agent.node = _Stack(), _IO(), _Node()
    gc.unfreeze()
    try:
        log = [[k] for k in range(10_000)]  # long-lived, GC-tracked: as a member's log entries are
        agent.do_work()
        frozen = gc.get_freeze_count()
        assert frozen >= len(log)
        log.extend([k] for k in range(10_000))
        clock[0] += GC_FREEZE_MS - 1
        agent.do_work()
        assert gc.get_freeze_count() == frozen  # not before the interval is up
        clock[0] += 1
        agent.do_work()
        assert gc.get_freeze_count() >= frozen + 10_000
        assert agent.node.ticks == [5_000, 5_000 + GC_FREEZE_MS - 1, 5_000 + GC_FREEZE_MS]
    finally:
        gc.unfreeze()
