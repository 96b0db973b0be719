"""tickline.feed: market data on Aeron streams (SBE messages of ``schemas/market_data.xml``).

- ``MarketDataPublisher`` (``publisher.py``): TopOfBook, Trade, OrderBook with a
  per-publisher ``seqNum``, encoded in place (``try_claim``) or batched (``offer_frames``: many messages, one call);
- ``MarketDataDecoder`` / ``MarketDataSubscriber`` / ``SequenceTracker``
  (``consumer.py``): checks, gap and duplicate detection, counters, dispatch to a listener;
- ``RandomWalk`` / ``SyntheticFeed`` (``synthetic.py``): a seeded synthetic source as an Agent;
- ``sbe.generated()``: the generated flyweights of tickline's schemas, one set per process.

``tickline feed synthetic`` and ``tickline feed tail`` run them from the command line.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "MarketDataPublisher": "publisher",
    "MarketDataEncoder": "publisher",
    "TopOfBookBatch": "publisher",
    "price": "publisher",
    "MarketDataDecoder": "consumer",
    "MarketDataSubscriber": "consumer",
    "SequenceTracker": "consumer",
    "FeedCounters": "consumer",
    "Gap": "consumer",
    "RandomWalk": "synthetic",
    "SyntheticFeed": "synthetic",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tickline.feed' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
