"""tickline: an Aeron/SBE transport framework for trading systems.

Subpackages (each a folder at the repository root, see ARCHITECTURE.md):

- ``tickline.transport``   Aeron client, media driver, publications, subscriptions
- ``tickline.codecs``      SBE schema parser, code generation, on-the-fly decoder
- ``tickline.fix_gateway`` FIX session gateway
- ``tickline.cluster``     Raft-replicated service container (it runs the sequencer)
- ``tickline.archive``     stream recording and replay

Each subpackage is also linked here (``tickline/transport -> ../transport``,
...): the wheel maps the folders into ``tickline`` itself, but an editable
install reaches them through an import hook that type checkers don't run;
they find the package through the source folder on the path the editable
install adds, and these links (with ``py.typed``) show them the whole of it.
"""

__version__ = "0.1.0"
