"""Agents and agent runners: Aeron's duty-cycle model for Python.

An agent does a bounded amount of non-blocking work per ``do_work()`` call and
returns how much it did.  Who runs it is a separate choice:

- ``AgentRunner(agent, idle).start()`` runs it on a thread of its own;
- ``AgentInvoker(agent)`` lets the caller drive it from its own loop;
- ``CompositeAgent([a, b])`` puts several agents on one duty cycle.

Lifecycle: ``on_start()`` once before the first ``do_work()``, ``on_close()``
once after the last, on the thread that ran the work.  An exception from
``do_work()`` goes to the runner's ``error_handler``; a ``AgentTerminated``
exception stops the agent cleanly.
"""

from __future__ import annotations

import threading
from typing import Callable, Iterable, Protocol, runtime_checkable

from .idle import IdleStrategy

__all__ = [
    "Agent",
    "AgentTerminated",
    "AgentRunner",
    "AgentInvoker",
    "CompositeAgent",
]


class AgentTerminated(Exception):
    """Raised from ``do_work()`` to ask the runner to stop this agent."""


@runtime_checkable
class Agent(Protocol):
    """What an agent provides.  Subclassing is optional; the protocol is what counts."""

    def role_name(self) -> str: ...

    def on_start(self) -> None: ...

    def do_work(self) -> int: ...

    def on_close(self) -> None: ...


class CompositeAgent:
    """Several agents on one duty cycle; work counts add up."""

    def __init__(self, agents: Iterable[Agent]) -> None:
        self.agents = list(agents)
        if not self.agents:
            raise ValueError("a composite agent needs at least one agent")

    def role_name(self) -> str:
        return "[" + ",".join(a.role_name() for a in self.agents) + "]"

    def on_start(self) -> None:
        for a in self.agents:
            a.on_start()

    def do_work(self) -> int:
        work = 0
        for a in self.agents:
            work += a.do_work()
        return work

    def on_close(self) -> None:
        first: BaseException | None = None
        for a in self.agents:
            try:
                a.on_close()
            except BaseException as e:  # close them all, then report the first
                first = first or e
        if first is not None:
            raise first


def _default_error_handler(exc: BaseException) -> None:
    import traceback

    traceback.print_exception(exc)


class AgentInvoker:
    """Runs an agent on the caller's thread: call ``invoke()`` from your loop.

    Not thread safe: one thread invokes it.
    """

    def __init__(
        self, agent: Agent, error_handler: Callable[[BaseException], None] = _default_error_handler
    ) -> None:
        self.agent = agent
        self.error_handler = error_handler
        self.is_started = False
        self.is_closed = False

    def start(self) -> None:
        if not self.is_started:
            self.is_started = True
            self.agent.on_start()

    def invoke(self) -> int:
        """One duty cycle; returns the work count (0 once closed)."""
        if self.is_closed:
            return 0
        if not self.is_started:
            self.start()
        try:
            return self.agent.do_work()
        except AgentTerminated:
            self.close()
            return 0
        except Exception as e:
            self.error_handler(e)
            return 0

    def close(self) -> None:
        if not self.is_closed:
            self.is_closed = True
            if self.is_started:
                self.agent.on_close()


class AgentRunner:
    """Runs an agent on a thread of its own until ``close()``.

    ``close()`` asks the loop to stop, joins the thread (up to ``timeout`` s)
    and raises ``TimeoutError`` naming the agent if it did not stop.  Usable as
    a context manager.  ``start()`` and ``close()`` may be called from any
    thread; the agent itself only ever runs on the runner's thread.
    """

    def __init__(
        self,
        agent: Agent,
        idle_strategy: IdleStrategy,
        error_handler: Callable[[BaseException], None] = _default_error_handler,
    ) -> None:
        self.agent = agent
        self.idle_strategy = idle_strategy
        self.error_handler = error_handler
        self._running = threading.Event()
        self._thread: threading.Thread | None = None
        self.error_count = 0

    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> "AgentRunner":
        if self._thread is not None:
            raise RuntimeError(f"agent runner already started: agent={self.agent.role_name()}")
        self._running.set()
        self._thread = threading.Thread(target=self._run, name=self.agent.role_name(), daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        agent, idle, running = self.agent, self.idle_strategy, self._running
        try:
            agent.on_start()
        except Exception as e:
            self.error_count += 1
            self.error_handler(e)
            return
        try:
            while running.is_set():
                try:
                    work = agent.do_work()
                except AgentTerminated:
                    break
                except Exception as e:
                    self.error_count += 1
                    self.error_handler(e)
                    work = 0
                idle.idle(work)
        finally:
            try:
                agent.on_close()
            except Exception as e:
                self.error_count += 1
                self.error_handler(e)

    def close(self, timeout: float = 10.0) -> None:
        self._running.clear()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)
            if t.is_alive():
                raise TimeoutError(f"agent did not stop: agent={self.agent.role_name()} timeout_s={timeout}")

    def __enter__(self) -> "AgentRunner":
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
