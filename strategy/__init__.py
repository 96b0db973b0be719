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

from __future__ import annotations

import importlib
from typing import Any

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

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tickline.strategy' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
