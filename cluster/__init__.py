"""tickline.cluster: a Raft-replicated service container in the style of Aeron Cluster.

A framework: it knows nothing of orders.  The order sequencer it runs in the
trading pipeline is the application package ``tickline.sequencer``, named in
the topology (``service = "module:factory"``), never imported from here.

- :mod:`.consensus`: Raft as a pure state machine (Ready/advance);
- :mod:`.log`: segment files, term/vote metadata, snapshots;
- :mod:`.service`: the ``ClusteredService`` API and its container;
- :mod:`.node`: one member wiring the above to an I/O boundary (``NodeIO``);
- :mod:`.client`: the sans-IO cluster client; :mod:`.protocol`: ingress/egress types;
- :mod:`.wire`: the binary encoding of every message;
- :mod:`.aeron_io`: the transport over Aeron: the node's I/O (``AeronNodeIO``),
  the client link and ``AeronClusterClient``, the embedded invoker-mode driver;
- :mod:`.daemon`: a member as a process (an agent over Aeron), the topology file;
- :mod:`.sim` and :mod:`.linearizability`: the deterministic simulator and history checker;
- :mod:`.admin` and :mod:`.logtool`: the operator's side (describe, errors, the tool's requests)
  and the offline reading of a member's data directory (recovery plan, log dump);
- :mod:`.cli` and :mod:`.bench`: ``tickline cluster node|tool|submit|sim`` and ``tickline bench cluster``.
"""

# The public API, imported lazily (type checkers see the real types).
from typing import TYPE_CHECKING

from tickline._lazy import lazy_exports

_EXPORTS = {
    "ClusteredService": "service", "ClientSession": "service", "ServiceContainer": "service",
    "ClusterClient": "client", "AeronClusterClient": "aeron_io",
    "Topology": "daemon", "load_topology": "daemon",
    "ClusterError": "errors", "ConfigError": "errors", "NotLeaderError": "errors",
}
# spelled out: type checkers read __all__ only as a literal
__all__ = [
    "AeronClusterClient",
    "ClientSession",
    "ClusterClient",
    "ClusterError",
    "ClusteredService",
    "ConfigError",
    "NotLeaderError",
    "ServiceContainer",
    "Topology",
    "load_topology",
]
if TYPE_CHECKING:
    from .aeron_io import AeronClusterClient
    from .client import ClusterClient
    from .daemon import Topology, load_topology
    from .errors import ClusterError, ConfigError, NotLeaderError
    from .service import ClientSession, ClusteredService, ServiceContainer
else:
    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
