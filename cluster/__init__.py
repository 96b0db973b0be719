"""tickline.cluster: a replicated sequencer in the style of Aeron Cluster.

- :mod:`.consensus`: Raft as a pure state machine (Ready/advance);
- :mod:`.log`: segment files, term/vote metadata, snapshots;
- :mod:`.service`: the ``ClusteredService`` API and its container;
- :mod:`.node`: one member wiring the above to an I/O boundary;
- :mod:`.client`: the sans-IO cluster client;
- :mod:`.sequencer`: the example order sequencer;
- :mod:`.sim` and :mod:`.linearizability`: the deterministic simulator and history checker.
"""
