"""Cluster members publish their counters through Aeron (as Aeron Cluster's consensus module
does): three real member processes on one shared driver, a client under load; ``tickline
stat`` shows each member's commit/append/applied positions, term, role, elections and
snapshots while it runs, and a member's counters leave once it stopped."""

import re
import signal
import subprocess
import sys
import time

from test_cluster_processes import Cluster, Load, aeron_dir  # noqa: F401  (fixture)

from tickline.cluster.aeron_io import query_status


def member_counters(dir: str) -> dict[int, dict[str, int]]:
    """member -> {what: value} from `tickline stat`'s "cluster <what>: member=N" counters."""
    r = subprocess.run([sys.executable, "-m", "tickline", "stat", "--dir", dir, "--filter", "^cluster .*: member=\\d+$",
                        "--no-errors"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out: dict[int, dict[str, int]] = {}
    for line in r.stdout.splitlines():
        m = re.match(r"^ *\d+: +(-?[\d,]+) - cluster (.*): member=(\d+)$", line)
        if m:  # (not the header)
            out.setdefault(int(m.group(3)), {})[m.group(2)] = int(m.group(1).replace(",", ""))
    return out


def test_member_counters_show_in_stat_while_members_run(tmp_path, aeron_dir):  # noqa: F811
    cluster = Cluster(tmp_path, aeron_dir, "ipc")
    load = Load(cluster)
    shared = cluster.driver.dir
    try:
        load.pump(lambda: len(load.acks) >= 30, cluster, what="first acks")
        load.pump(lambda: cluster.leader() is not None, cluster, offer=False, what="a leader")
        leader = cluster.leader()
        follower = next(m for m in cluster.topo.members if m != leader)
        before = member_counters(shared)[follower].get("snapshots", 0)
        st = query_status(cluster.link, follower, action=1, timeout=10)  # take a snapshot
        assert st is not None and not st.refused

        def settled():
            # (leadership may move under a loaded host's stalls: the roles are read, not assumed)
            c = member_counters(shared)
            if sorted(c) != sorted(cluster.topo.members):
                return None
            commits = {v["commit position"] for v in c.values()}
            ok = (sorted(v["role"] for v in c.values()) == [0, 0, 2]
                  and len({v["term"] for v in c.values()}) == 1
                  and c[follower]["snapshots"] >= before + 1
                  and len(commits) == 1 and commits.pop() > 0
                  and all(v["append position"] >= v["commit position"] >= v["applied position"] > 0 for v in c.values()))
            return c if ok else None

        c = None
        deadline = time.monotonic() + 60
        while c is None and time.monotonic() < deadline:
            load.pump(lambda: True, cluster, offer=False)  # keep the status link turning
            c = settled()
            time.sleep(0.05)
        assert c is not None, member_counters(shared)
        leader = next(m for m, v in c.items() if v["role"] == 2)
        term = c[leader]["term"]
        assert term >= 1
        assert c[leader]["elections"] >= 1  # the first election (term 0 -> 1) at least
        assert set(c[leader]) == {"commit position", "append position", "applied position", "term", "role",
                                  "elections", "snapshots"}
        # a member stopped cleanly takes its counters with it; the others' stay
        cluster.procs[follower].send_signal(signal.SIGTERM)
        assert cluster.procs[follower].wait(timeout=30) == 0
        deadline = time.monotonic() + 20
        while follower in member_counters(shared) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = member_counters(shared)
        assert sorted(left) == sorted(m for m in cluster.topo.members if m != follower)
    finally:
        load.client.close()
        cluster.stop()
