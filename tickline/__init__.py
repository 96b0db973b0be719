"""tickline: an Aeron/SBE transport framework for trading systems.

Subpackages (each a folder at the repository root, see DESIGN.md):

- ``tickline.transport``   Aeron client, media driver, publications, subscriptions
- ``tickline.codecs``      SBE schema parser, code generation, on-the-fly decoder
- ``tickline.fix_gateway`` FIX session gateway
- ``tickline.cluster``     Raft-replicated sequencer
- ``tickline.archive``     stream recording and replay
"""

__version__ = "0.1.0"
