"""The order gateway a strategy sends through: the contract between a strategy and the order path.

    class OrderGateway(Protocol):
        def send(self, message: bytes | memoryview) -> bool: ...
        def poll(self, handler: Callable[[memoryview], None], limit: int) -> int: ...

``send`` takes one encoded ``schemas/orders.xml`` message with its SBE message
header (NewOrder, CancelOrder, ReplaceOrder) and returns True once the gateway
has taken it, False on back pressure or while not connected (nothing was
sent: retry later).  It never blocks; the caller may reuse the buffer as soon
as it returns.

``poll`` delivers encoded ``orders.xml`` ExecutionReport / OrderReject
messages (with their header) addressed to this client to ``handler``, up to
``limit`` of them, and returns the work count.  The view is valid only during
the call.

Optional, for a restarted strategy: ``recover(account) -> (reports, positions)
| None``: encoded ExecutionReports describing each open order of ``account``
now (ordStatus New/PartiallyFilled, price, cumQuantity, leavesQuantity,
avgPrice) and ``{symbol: (signed quantity, cost[, realized])}`` (mantissa x
quantity); ``tickline strategy run`` asks before starting and hands the
answer to ``StrategyRunner.restore``.  None: the gateway cannot tell.

Implementations: ``tickline.sequencer.client.SequencerGateway`` (orders
through the replicated sequencer) and, for tests and trying a strategy out,
``tickline.strategy.testing.SimulatedVenue`` (an in-process matcher).
Both are single-threaded: call them from the strategy runner's thread.
"""

from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable

__all__ = ["OrderGateway"]


@runtime_checkable
class OrderGateway(Protocol):
    def send(self, message: bytes | memoryview) -> bool: ...

    def poll(self, handler: Callable[[memoryview], None], limit: int) -> int: ...
