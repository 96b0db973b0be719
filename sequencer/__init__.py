"""tickline.sequencer: the trading pipeline's replicated core.

- :mod:`.service`: the sequencer ``ClusteredService`` (pre-trade risk, the
  global sequence, order and position state, events to clients, the venue's queue);
- :mod:`.protocol`: its own messages (``schemas/sequencer.xml``);
- :mod:`.client`: ``SequencerGateway``, the cluster client strategies and
  gateways send orders through (the ``OrderGateway`` of ``tickline.strategy``);
- :mod:`.basic` (+ :mod:`.basic_sbe`): the minimal example sequencer the
  cluster's simulator, process tests and bench drive.

The order model (one ``Side``, one ``OrdType``, the messages) is the one
generated from ``schemas/orders.xml``: ``tickline.fix_gateway.bridge`` and
``tickline.fix_gateway.sbe_orders``.  Application code: the framework
packages never import it.
"""
