"""Running one component as a process: the agent on the main thread under an
idle strategy until SIGTERM/SIGINT, then ``on_close`` (which writes its last
status).  Every application daemon of the pipeline uses this one loop."""

from __future__ import annotations

import logging
import os
import signal
from typing import Any

from tickline.transport.idle import BackoffIdleStrategy

__all__ = ["run_agent", "StopSignals", "write_status"]


class StopSignals:
    """``stop`` turns true on SIGTERM or SIGINT (installed on construction)."""

    def __init__(self) -> None:
        self.stop = False
        signal.signal(signal.SIGTERM, self._set)
        signal.signal(signal.SIGINT, self._set)

    def _set(self, *_: object) -> None:
        self.stop = True


def write_status(path: str, doc: dict) -> None:
    """Write a component's status (JSON) so a reader never sees half of it."""
    import json
    import os

    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.replace(tmp, path)


def run_agent(agent: Any, log: logging.Logger, until: Any = None, **fields: object) -> int:
    """Run ``agent`` until a signal (or ``until()`` is true); returns the exit code.  Its start
    and stop are logged to ``log`` (``running pid=N`` and ``stopped``, with ``fields``)."""
    from tickline.logs import kv

    signals = StopSignals()
    idle = BackoffIdleStrategy(max_park_ns=1_000_000)
    log.info("running %s", kv(**fields, pid=os.getpid()))
    agent.on_start()
    try:
        while not signals.stop and (until is None or not until()):
            idle.idle(agent.do_work())
    finally:
        agent.on_close()
    log.info(f"stopped {kv(**fields)}".rstrip())
    return 0
