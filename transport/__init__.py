"""tickline.transport: the Python API over Aeron.

Names are imported lazily so that the pure-Python parts (idle strategies,
agents, channel URIs) load without the compiled extension.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    # idle strategies
    "IdleStrategy": "idle",
    "BusySpinIdleStrategy": "idle",
    "NoOpIdleStrategy": "idle",
    "YieldingIdleStrategy": "idle",
    "SleepingIdleStrategy": "idle",
    "BackoffIdleStrategy": "idle",
    "idle_strategy_from_name": "idle",
    # client
    "Aeron": "client",
    "OfferResult": "client",
    "ControlledPollAction": "client",
    "Publication": "client",
    "Subscription": "client",
    "BufferClaim": "client",
    "FragmentAssembler": "client",
    "Header": "client",
    "ImageInfo": "client",
    "ImageStatus": "client",
    "AeronError": "client",
    "ClosedError": "client",
    "DriverError": "client",
    "PublicationError": "client",
    "RegistrationError": "client",
    # driver
    "MediaDriver": "driver",
    # channel URIs
    "ChannelUri": "uri",
    "ChannelError": "uri",
    "IPC": "uri",
    "free_ports": "uri",
    # counters
    "read_stat": "counters",
    # agents
    "Agent": "agent",
    "AgentTerminated": "agent",
    "AgentRunner": "agent",
    "AgentInvoker": "agent",
    "CompositeAgent": "agent",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tickline.transport' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
