"""Idle strategies and agent runners: Aeron's duty-cycle model."""

import threading
import time

import pytest

from tickline.transport import (
    AgentInvoker,
    AgentRunner,
    AgentTerminated,
    BackoffIdleStrategy,
    BusySpinIdleStrategy,
    CompositeAgent,
    NoOpIdleStrategy,
    SleepingIdleStrategy,
    YieldingIdleStrategy,
    idle_strategy_from_name,
)


class CountingAgent:
    def __init__(self, name: str = "counter", work: int = 1, stop_after: int | None = None, fail_at: int | None = None) -> None:
        self.name = name
        self.work = work
        self.stop_after = stop_after
        self.fail_at = fail_at
        self.calls = 0
        self.started = 0
        self.closed = 0
        self.threads: set[int] = set()

    def role_name(self) -> str:
        return self.name

    def on_start(self) -> None:
        self.started += 1
        self.threads.add(threading.get_ident())

    def do_work(self) -> int:
        self.calls += 1
        self.threads.add(threading.get_ident())
        if self.fail_at is not None and self.calls == self.fail_at:
            raise RuntimeError(f"boom at {self.calls}")
        if self.stop_after is not None and self.calls >= self.stop_after:
            raise AgentTerminated()
        return self.work

    def on_close(self) -> None:
        self.closed += 1
        self.threads.add(threading.get_ident())


def test_backoff_spins_then_yields_then_parks_doubling_and_resets_on_work() -> None:
    s = BackoffIdleStrategy(max_spins=2, max_yields=1, min_park_ns=1000, max_park_ns=4000)
    s.idle(0)
    s.idle(0)
    assert (s.spins, s.yields, s.park_ns) == (2, 0, 1000)
    s.idle(0)
    assert (s.spins, s.yields) == (2, 1)
    s.idle(0)
    assert s.park_ns == 2000
    s.idle(0)
    s.idle(0)
    assert s.park_ns == 4000  # capped
    s.idle(5)
    assert (s.spins, s.yields, s.park_ns) == (0, 0, 1000)


def test_strategies_by_name_and_bad_config() -> None:
    assert isinstance(idle_strategy_from_name("busy-spin"), BusySpinIdleStrategy)
    assert isinstance(idle_strategy_from_name("yielding"), YieldingIdleStrategy)
    assert isinstance(idle_strategy_from_name("noop"), NoOpIdleStrategy)
    with pytest.raises(ValueError, match="unknown idle strategy: name='spin'"):
        idle_strategy_from_name("spin")
    with pytest.raises(ValueError, match="min_park_ns=10 max_park_ns=5"):
        BackoffIdleStrategy(min_park_ns=10, max_park_ns=5)
    with pytest.raises(ValueError, match="sleep_ns=0"):
        SleepingIdleStrategy(0)


def test_sleeping_strategy_sleeps_only_without_work() -> None:
    s = SleepingIdleStrategy(sleep_ns=20_000_000)
    t0 = time.monotonic()
    s.idle(1)
    assert time.monotonic() - t0 < 0.015  # no sleep when there was work
    s.idle(0)
    assert time.monotonic() - t0 >= 0.019


def test_runner_runs_on_its_own_thread_and_closes_cleanly() -> None:
    agent = CountingAgent()
    with AgentRunner(agent, SleepingIdleStrategy(100_000)) as runner:
        deadline = time.monotonic() + 5
        while agent.calls < 10 and time.monotonic() < deadline:
            time.sleep(0.001)
        assert runner.is_running
    assert not runner.is_running
    assert agent.calls >= 10 and agent.started == 1 and agent.closed == 1
    assert threading.get_ident() not in agent.threads and len(agent.threads) == 1


def test_runner_reports_errors_and_keeps_going_then_terminates() -> None:
    errors: list[BaseException] = []
    agent = CountingAgent(fail_at=3, stop_after=6)
    runner = AgentRunner(agent, NoOpIdleStrategy(), error_handler=errors.append).start()
    deadline = time.monotonic() + 5
    while runner.is_running and time.monotonic() < deadline:
        time.sleep(0.001)
    runner.close()
    assert agent.calls == 6 and agent.closed == 1
    assert [str(e) for e in errors] == ["boom at 3"]
    assert runner.error_count == 1


def test_runner_cannot_start_twice() -> None:
    runner = AgentRunner(CountingAgent(), NoOpIdleStrategy()).start()
    try:
        with pytest.raises(RuntimeError, match="already started: agent=counter"):
            runner.start()
    finally:
        runner.close()


def test_invoker_runs_on_the_callers_thread() -> None:
    agent = CountingAgent(work=2, stop_after=3)
    inv = AgentInvoker(agent)
    assert inv.invoke() == 2 and inv.invoke() == 2
    assert agent.threads == {threading.get_ident()} and agent.started == 1
    assert inv.invoke() == 0 and inv.is_closed and agent.closed == 1
    assert inv.invoke() == 0 and agent.calls == 3  # closed: no more work


def test_composite_sums_work_and_closes_all_even_if_one_fails() -> None:
    a, b = CountingAgent("a", work=1), CountingAgent("b", work=3)

    def bad_close() -> None:
        raise OSError("close failed")

    a.on_close = bad_close  # type: ignore[method-assign]
    comp = CompositeAgent([a, b])
    assert comp.role_name() == "[a,b]"
    comp.on_start()
    assert comp.do_work() == 4
    with pytest.raises(OSError, match="close failed"):
        comp.on_close()
    assert b.closed == 1
    with pytest.raises(ValueError, match="at least one agent"):
        CompositeAgent([])
