"""tickline.venue: the exchange simulator (matching, its market-data publisher)
and the venue adapter that takes the sequencer's orders to it exactly once.

Application code: it uses the framework packages (transport, codecs,
fix_gateway, cluster); none of them imports it.
"""
