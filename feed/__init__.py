"""tickline.feed: market data on Aeron streams (SBE messages of ``schemas/market_data.xml``).

- ``MarketDataPublisher`` (``publisher.py``): TopOfBook, Trade, OrderBook with a
  per-publisher ``seqNum``, encoded in place (``try_claim``) or batched (``offer_frames``: many messages, one call);
- ``MarketDataDecoder`` / ``MarketDataSubscriber`` / ``SequenceTracker``
  (``consumer.py``): checks, gap and duplicate detection, counters, dispatch to a listener;
- ``RandomWalk`` / ``SyntheticFeed`` (``synthetic.py``): a seeded synthetic source as an Agent;
- ``sbe.generated()``: the generated flyweights of tickline's schemas, one set per process.

``tickline feed synthetic`` and ``tickline feed tail`` run them from the command line.
"""

# The public API, imported lazily (type checkers see the real types).
from typing import TYPE_CHECKING

from tickline._lazy import lazy_exports

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
# spelled out: type checkers read __all__ only as a literal
__all__ = [
    "FeedCounters",
    "Gap",
    "MarketDataDecoder",
    "MarketDataEncoder",
    "MarketDataPublisher",
    "MarketDataSubscriber",
    "RandomWalk",
    "SequenceTracker",
    "SyntheticFeed",
    "price",
]
if TYPE_CHECKING:
    from .consumer import FeedCounters, Gap, MarketDataDecoder, MarketDataSubscriber, SequenceTracker
    from .publisher import MarketDataEncoder, MarketDataPublisher, price
    from .synthetic import RandomWalk, SyntheticFeed
else:
    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
