"""Helpers the transport tests share: a bounded wait and a connected IPC pair."""

from __future__ import annotations

import time
from typing import Any, Callable


def wait_for(cond: Callable[[], object], timeout: float = 5.0, what: str = "condition") -> None:
    """Until ``cond()`` is true; AssertionError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.0005)


def ipc_pair(aeron: Any, stream_id: int) -> tuple[Any, Any]:
    """A publication and a subscription on ``aeron:ipc`` stream ``stream_id``, connected."""
    sub = aeron.add_subscription("aeron:ipc", stream_id)
    pub = aeron.add_publication("aeron:ipc", stream_id)
    wait_for(lambda: pub.is_connected, what="publication connected")
    return pub, sub
