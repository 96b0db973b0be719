"""The basic sequencer's tests drive it through the cluster's in-memory node
harness (``tests/cluster/cluster_harness.py``): make that importable when this
folder runs on its own."""

import os
import sys

_CLUSTER_TESTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "cluster")
if _CLUSTER_TESTS not in sys.path:
    sys.path.append(_CLUSTER_TESTS)
