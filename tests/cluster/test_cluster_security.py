"""Hostile input against real member processes on loopback (issue 13):
a forged Aeron SETUP frame, forged consensus traffic, unauthenticated admin
requests and clients, client-named egress channels.

No timing assertions: deadlines only bound how long a test waits."""

import socket
import struct
import time

from test_cluster_processes import Cluster, aeron_dir, cluster, transport  # noqa: F401  (fixtures)

from tickline.cluster.aeron_io import CONSENSUS_STREAM, query_status

# Aeron's SETUP frame (aeron_udp_protocol.h): frame length, version, flags, type (0x05),
# then term offset, session id, stream id, initial term id, active term id, term length, mtu, ttl.
SETUP = struct.Struct("<iBBhiiiiiiii")


def forged_setup(stream_id, initial_term_id=1000, active_term_id=5):
    """40 bytes, valid in every field the driver checks, but the active term precedes the initial one."""
    frame = SETUP.pack(SETUP.size, 0, 0, 0x05, 0, 0x5EED, stream_id, initial_term_id, active_term_id, 64 * 1024, 1408, 0)
    assert len(frame) == 40
    return frame


def test_a_setup_frame_whose_active_term_precedes_the_initial_one_does_not_kill_a_member(cluster):
    deadline = time.monotonic() + 60
    while cluster.leader() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cluster.leader() is not None
    host, port = cluster.topo.members[1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(3):
            s.sendto(forged_setup(CONSENSUS_STREAM), (host, port))
            time.sleep(0.1)
    # Unpatched, the driver makes an image at a negative position and the member's
    # next poll of it faults (seen within 1-3 s here); watch it for a while.
    watch_until = time.monotonic() + 6
    while time.monotonic() < watch_until:
        assert cluster.procs[1].poll() is None, f"member 1 died: exit={cluster.procs[1].returncode}\n{cluster.logs()}"
        time.sleep(0.2)
    st = query_status(cluster.link, 1, timeout=10)
    assert st is not None and st.member == 1
