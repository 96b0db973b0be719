"""Running one component as a process: the agent on the main thread under an
idle strategy until SIGTERM/SIGINT, then ``on_close`` (which writes its last
status).  Every application daemon of the pipeline uses this one loop."""

from __future__ import annotations

import signal
import sys
from typing import Any

from tickline.transport.idle import BackoffIdleStrategy

__all__ = ["run_agent"]


def run_agent(agent: Any, name: str, until: Any = None) -> int:
    """Run ``agent`` until a signal (or ``until()`` is true); returns the exit code."""
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    idle = BackoffIdleStrategy(max_park_ns=1_000_000)
    print(f"tickline {name}: running pid={__import__('os').getpid()}", file=sys.stderr, flush=True)
    agent.on_start()
    try:
        while not stop and (until is None or not until()):
            idle.idle(agent.do_work())
    finally:
        agent.on_close()
    print(f"tickline {name}: stopped", file=sys.stderr, flush=True)
    return 0
