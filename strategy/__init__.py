"""tickline.strategy: the strategy SDK.

- ``Strategy`` (``strategy.py``): the base class a strategy subclasses (callbacks, buy/sell/cancel/replace);
- ``StrategyRunner`` (``runner.py``): runs one as an Agent on the caller's driver and loop;
- ``StrategyConfig`` / ``load_config`` / ``load_toml`` (``config.py``): its TOML section, validated at start;
- ``Order``, ``Position`` (``orders.py``): state kept from execution reports;
- ``OrderGateway`` (``gateway.py``): the contract with the order path;
- ``SimulatedVenue``, ``ManualClock`` (``testing.py``): an in-process venue and a clock for tests;
- ``examples/``: a market maker and a tick-to-trade probe.

``tickline strategy run MODULE:CLASS --config FILE`` runs one from the command line.
"""

# The public API, imported lazily (type checkers see the real types).
from typing import TYPE_CHECKING

from tickline._lazy import lazy_exports

_EXPORTS = {
    "Strategy": "strategy",
    "StrategyRunner": "runner",
    "SystemClock": "runner",
    "StrategyConfig": "config",
    "StrategyConfigError": "config",
    "load_config": "config",
    "load_toml": "config",
    "Order": "orders",
    "OrderStatus": "orders",
    "Position": "orders",
    "OrderGateway": "gateway",
    "SimulatedVenue": "testing",
    "ManualClock": "testing",
}
# spelled out: type checkers read __all__ only as a literal
__all__ = [
    "ManualClock",
    "Order",
    "OrderGateway",
    "OrderStatus",
    "Position",
    "SimulatedVenue",
    "Strategy",
    "StrategyConfig",
    "StrategyConfigError",
    "StrategyRunner",
    "SystemClock",
    "load_config",
    "load_toml",
]
if TYPE_CHECKING:
    from .config import StrategyConfig, StrategyConfigError, load_config, load_toml
    from .gateway import OrderGateway
    from .orders import Order, OrderStatus, Position
    from .runner import StrategyRunner, SystemClock
    from .strategy import Strategy
    from .testing import ManualClock, SimulatedVenue
else:
    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
