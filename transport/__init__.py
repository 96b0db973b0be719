"""tickline.transport: the Python API over Aeron.

Names are imported lazily so that the pure-Python parts (idle strategies,
agents, channel URIs) load without the compiled extension.  Type checkers
read the same names through the explicit imports under ``TYPE_CHECKING``, so
``from tickline.transport import Aeron`` has the real type, not ``Any``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tickline._lazy import lazy_exports

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
    "MessageTooLong": "client",
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

# spelled out: type checkers read __all__ only as a literal
__all__ = [
    "Aeron",
    "AeronError",
    "Agent",
    "AgentInvoker",
    "AgentRunner",
    "AgentTerminated",
    "BackoffIdleStrategy",
    "BufferClaim",
    "BusySpinIdleStrategy",
    "ChannelError",
    "ChannelUri",
    "ClosedError",
    "CompositeAgent",
    "ControlledPollAction",
    "DriverError",
    "FragmentAssembler",
    "Header",
    "IPC",
    "IdleStrategy",
    "ImageInfo",
    "ImageStatus",
    "MediaDriver",
    "NoOpIdleStrategy",
    "MessageTooLong",
    "OfferResult",
    "Publication",
    "PublicationError",
    "RegistrationError",
    "SleepingIdleStrategy",
    "Subscription",
    "YieldingIdleStrategy",
    "free_ports",
    "idle_strategy_from_name",
    "read_stat",
]

if TYPE_CHECKING:
    from .idle import (
        BackoffIdleStrategy,
        BusySpinIdleStrategy,
        IdleStrategy,
        NoOpIdleStrategy,
        SleepingIdleStrategy,
        YieldingIdleStrategy,
        idle_strategy_from_name,
    )
    from .client import (
        Aeron,
        AeronError,
        BufferClaim,
        ClosedError,
        ControlledPollAction,
        DriverError,
        FragmentAssembler,
        Header,
        ImageInfo,
        ImageStatus,
        MessageTooLong,
        OfferResult,
        Publication,
        PublicationError,
        RegistrationError,
        Subscription,
    )
    from .driver import MediaDriver
    from .uri import ChannelError, ChannelUri, IPC, free_ports
    from .counters import read_stat
    from .agent import Agent, AgentInvoker, AgentRunner, AgentTerminated, CompositeAgent


# Only at run time: a module-level __getattr__ would make mypy type every
# unknown name (a typo included) as Any.
if not TYPE_CHECKING:
    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
