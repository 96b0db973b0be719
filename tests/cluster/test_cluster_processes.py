"""Real processes: three members on loopback, each with its own embedded media
driver, talking Aeron UDP (and, for kill -9, also three members sharing one
aeronmd over Aeron IPC); a client under load over Aeron ingress/egress,
kill -9 of the leader, restart, catch-up, clean shutdown.

No timing assertions: the deadlines below only bound how long the test waits
for progress before declaring the cluster stuck.
"""

import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest

from tickline.cluster.aeron_io import SHARED_DRIVER_OPTIONS, AeronClusterClient, ClusterLink, query_status
from tickline.cluster.auth import provision
from tickline.cluster.daemon import load_topology
from tickline.sequencer.basic import NewOrder, Side, Status, StructOrderCodec
from tickline.transport import MediaDriver, free_ports

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAUNCH = (
    "import importlib.util, sys, tickline\n"
    "if importlib.util.find_spec('tickline.cluster') is None: tickline.__path__.append(sys.argv[1])\n"
    "from tickline.cluster.daemon import main\n"
    "sys.exit(main(sys.argv[2:]))\n"
)
WAIT = 90.0  # seconds without progress before the cluster counts as stuck


class Cluster:
    def __init__(self, tmp_path, aeron_dir, transport="udp", extra="", link_channel=None, driver_options=None):
        """``extra``: more topology lines (e.g. security settings); ``link_channel``:
        the status link's egress channel (default: a free port); ``driver_options``:
        the shared driver's (ipc; default SHARED_DRIVER_OPTIONS)."""
        self.driver = None
        self.secrets = provision(str(tmp_path / "secrets"))
        if transport == "ipc":  # the members' shared driver, as `tickline driver` runs it
            aeron_dir = os.path.join(aeron_dir, "shared")
            self.driver = MediaDriver.launch(aeron_dir, options=driver_options or SHARED_DRIVER_OPTIONS,
                                             stdout=subprocess.DEVNULL)
            endpoints = ["ipc"] * 3
        else:
            endpoints = [f"127.0.0.1:{p}" for p in free_ports(3)]
        self.config = tmp_path / "cluster.toml"
        self.config.write_text(
            f'data_dir = "{tmp_path / "data"}"\nfsync = "always"\nsnapshot_interval = 8192\naeron_dir = "{aeron_dir}"\n'
            "election_timeout_min = 300\nelection_timeout_max = 600\nheartbeat_interval = 50\n" + self.secrets.topology() + extra
            + "[members]\n"
            + "".join(f'{i + 1} = "{ep}"\n' for i, ep in enumerate(endpoints))
        )
        self.topo = load_topology(str(self.config))
        self.tmp = tmp_path
        self.procs = {}
        self.link = ClusterLink(self.topo.members, aeron_base=aeron_dir, credentials=self.secrets.admin, egress_channel=link_channel)
        for m in self.topo.members:
            self.start(m)

    def start(self, m):
        log = open(self.tmp / f"member-{m}.log", "ab")
        self.procs[m] = subprocess.Popen([sys.executable, "-c", LAUNCH, ROOT, "--config", str(self.config), "--member", str(m)],
                                         cwd=self.tmp, stdout=log, stderr=subprocess.STDOUT)

    def leader(self):
        for m, p in self.procs.items():
            if p.poll() is None:
                st = query_status(self.link, m)
                if st is not None and st.role == "leader":
                    return m
        return None

    def statuses(self):
        return {m: query_status(self.link, m) for m, p in self.procs.items() if p.poll() is None}

    def stop(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
        self.link.close()
        if self.driver is not None:
            self.driver.close()

    def logs(self):
        return "\n".join((self.tmp / f"member-{m}.log").read_text() for m in self.procs)


class Load:
    def __init__(self, cluster):
        self.codec = StructOrderCodec()
        self.client = AeronClusterClient(cluster.topo.members, session_id=random.getrandbits(48), retry_timeout=250,
                                         aeron_base=cluster.topo.aeron_dir, credentials=cluster.secrets.client)
        self.acks = {}
        self.sent = 0

    def pump(self, until, cluster, offer=True, what="", window=4, account=lambda n: 7):
        last_progress, n = time.monotonic(), len(self.acks)
        while not until():
            while offer and len(self.client.client.outstanding) < window:
                side = Side.BUY if self.sent % 2 == 0 else Side.SELL
                self.client.offer(self.codec.encode_order(NewOrder(account(self.sent), side, 1, 100, self.sent)))
                self.sent += 1
            cluster.link.poll_egress()  # keep the status link's driver turning too
            for corr, payload in self.client.poll():
                assert corr not in self.acks
                self.acks[corr] = self.codec.decode_ack(payload)
            if len(self.acks) != n:
                last_progress, n = time.monotonic(), len(self.acks)
            if time.monotonic() - last_progress > WAIT:
                raise AssertionError(f"no progress while waiting for {what}: acks={len(self.acks)}\n{cluster.logs()}")
            failed = {m: p.returncode for m, p in cluster.procs.items() if p.poll() not in (None, 0, -signal.SIGKILL)}
            if failed:  # the tests stop members only with SIGTERM (exit 0) or SIGKILL
                raise AssertionError(f"member(s) failed while waiting for {what}: exit codes {failed}\n{cluster.logs()}")
            time.sleep(0.001)


@pytest.fixture
def aeron_dir():
    """Every media driver of a test (members' and clients') lives under here; removed after."""
    d = f"/dev/shm/tickline-cluster-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    os.makedirs(d)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def transport():
    return "udp"  # tests parametrized over "transport" override this


@pytest.fixture
def cluster(tmp_path, aeron_dir, transport):
    c = Cluster(tmp_path, aeron_dir, transport)
    yield c
    c.stop()


@pytest.fixture
def load(cluster):
    lo = Load(cluster)
    yield lo
    lo.client.close()


@pytest.mark.parametrize("transport", ["udp", "ipc"])
def test_kill_9_the_leader_under_load_then_restart_it(cluster, load):
    load.pump(lambda: len(load.acks) >= 30, cluster, what="first acks")
    load.pump(lambda: cluster.leader() is not None, cluster, what="a leader")
    old = cluster.leader()
    cluster.procs[old].send_signal(signal.SIGKILL)
    cluster.procs[old].wait()
    before = len(load.acks)
    load.pump(lambda: len(load.acks) >= before + 30, cluster, what="acks after the leader was killed")
    load.pump(lambda: cluster.leader() not in (None, old), cluster, offer=False, what="a new leader")
    cluster.start(old)
    before = len(load.acks)
    load.pump(lambda: len(load.acks) >= before + 30, cluster, what="acks after the restart")
    load.pump(lambda: not load.client.client.outstanding, cluster, offer=False, what="every request answered")

    def caught_up():
        st = cluster.statuses()
        if len(st) != 3 or any(s is None for s in st.values()):
            return False
        commits = {s.commit_position for s in st.values()}
        applied = {s.applied_position for s in st.values()}
        return len(commits) == 1 and applied == commits

    load.pump(caught_up, cluster, offer=False, what="the restarted member to catch up")
    # Exactly once: accepted orders hold sequence numbers 1..K with no gap (a lost
    # order would leave one, an order applied twice would consume an extra one).
    seqs = sorted(a.sequence for a in load.acks.values() if a.status is Status.ACCEPTED)
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(load.acks) == load.sent
    assert "truncated_at" in cluster.logs()  # the restarted member reported its recovery


def test_a_lagging_member_catches_up_from_a_snapshot_larger_than_a_datagram(cluster, load):
    # Every order from its own account: the sequencer's state (and so each
    # snapshot) grows past 64 KiB, more than one UDP datagram could carry.
    load.pump(lambda: len(load.acks) >= 10, cluster, what="first acks")
    load.pump(lambda: cluster.leader() is not None, cluster, offer=False, what="a leader")
    lagging = next(m for m in cluster.procs if m != cluster.leader())
    cluster.procs[lagging].send_signal(signal.SIGKILL)
    cluster.procs[lagging].wait()
    snaps = cluster.tmp / "data" / f"member-{lagging}"
    before = {p.name for p in snaps.glob("*.snap")}

    def size(path):
        try:
            return path.stat().st_size
        except FileNotFoundError:  # the member removed an older snapshot meanwhile
            return 0

    def live_snapshot_size():
        newest = [max((size(p) for p in (cluster.tmp / "data" / f"member-{m}").glob("*.snap")), default=0)
                  for m in cluster.procs if m != lagging]
        return min(newest)

    load.pump(lambda: live_snapshot_size() > 72_000, cluster, window=32,
              account=lambda n: 1000 + n, what="snapshots over 72 kB on the live members")
    cluster.start(lagging)
    load.pump(lambda: not load.client.client.outstanding, cluster, offer=False, what="every request answered")

    def caught_up():
        st = cluster.statuses()
        if len(st) != 3 or any(s is None for s in st.values()):
            return False
        return len({s.applied_position for s in st.values()} | {s.commit_position for s in st.values()}) == 1

    load.pump(caught_up, cluster, offer=False, what="the lagging member to catch up")
    installed = [p for p in snaps.glob("*.snap") if p.name not in before]
    assert installed and max(p.stat().st_size for p in installed) > 65_536  # it came as a snapshot, not log replay
    seqs = sorted(a.sequence for a in load.acks.values() if a.status is Status.ACCEPTED)
    assert seqs == list(range(1, len(seqs) + 1))


def test_sigterm_on_the_leader_hands_leadership_over_and_exits_cleanly(cluster, load):
    load.pump(lambda: len(load.acks) >= 10, cluster, what="first acks")
    load.pump(lambda: cluster.leader() is not None, cluster, offer=False, what="a leader")
    old = cluster.leader()
    cluster.procs[old].send_signal(signal.SIGTERM)
    assert cluster.procs[old].wait(timeout=WAIT) == 0
    load.pump(lambda: cluster.leader() not in (None, old), cluster, offer=False, what="the transfer")
    out = (cluster.tmp / f"member-{old}.log").read_text()
    target = int(out.split("transfer_to=")[1].split()[0])
    driver_dir = out.split("aeron_dir=")[1].split()[0]
    assert driver_dir.startswith(cluster.topo.aeron_dir) and not os.path.exists(driver_dir)  # removed on exit
    assert cluster.leader() == target  # the member it handed over to, not an election's winner
    before = len(load.acks)
    load.pump(lambda: len(load.acks) >= before + 10, cluster, what="acks from the new leader")


@pytest.mark.parametrize("transport", ["udp", "ipc"])
def test_tool_shows_members_takes_a_snapshot_and_steps_the_leader_down(cluster, load, capsys):
    import argparse
    from tickline.cluster import cli
    load.pump(lambda: len(load.acks) >= 10, cluster, what="first acks")
    load.pump(lambda: cluster.leader() is not None, cluster, offer=False, what="a leader")
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["cluster", "tool", "--config", str(cluster.config), "status"])
    assert args.func(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:4] == ["member", "role", "term", "leader"]
    roles = sorted(line.split()[1] for line in out[1:])
    assert roles == ["follower", "follower", "leader"]
    follower = next(int(line.split()[0]) for line in out[1:] if line.split()[1] == "follower")
    args = parser.parse_args(["cluster", "tool", "--config", str(cluster.config), "snapshot", "--member", str(follower),
                              "--credentials", cluster.secrets.admin_file])
    assert args.func(args) == 0
    header, row = capsys.readouterr().out.splitlines()[:2]
    snap_col = int(row.split()[header.split().index("snapshot")])
    assert snap_col > 0  # the member's log now starts at its new snapshot
    old = cluster.leader()
    args = parser.parse_args(["cluster", "tool", "--config", str(cluster.config), "step-down", "--credentials", cluster.secrets.admin_file])
    assert args.func(args) == 0
    load.pump(lambda: cluster.leader() not in (None, old), cluster, offer=False, what="a new leader after step-down")


def test_bench_cluster_runs_and_reports_against_its_peer():
    from tickline import benchkit
    from tickline.cluster.bench import run
    kit = benchkit.Report("cluster", reference="1-member")
    report = run(rate=200, seconds=0.5, window=8, fsync="none", report=kit)
    lines = report.splitlines()
    assert lines[1].startswith("  udp: Aeron UDP") and lines[2].startswith("  ipc: Aeron IPC")
    for i, transport in ((3, "udp"), (10, "ipc")):
        assert lines[i].startswith(f"{transport} 3-member ") and "p99.9=" in lines[i] and "unanswered=0" in lines[i]
        busy = dict(kv.split("=") for kv in lines[i + 1].split(": ", 1)[1].split() if "=" in kv)
        assert "busy cores at 200/s" in lines[i + 1] and set(busy) == {"leader", "follower", "client", "total"} | ({"driver"} if transport == "ipc" else set())
        assert all(0 <= float(v) for v in busy.values()) and float(busy["leader"]) > 0 and float(busy["total"]) >= float(busy["leader"]) + float(busy["follower"])
        assert "max_throughput=" in lines[i + 2] and "leader=" in lines[i + 2] and "follower=" in lines[i + 2] and "client=" in lines[i + 2]
        assert lines[i + 3].startswith(f"{transport} 1-member (peer: no replication)") and "unanswered=0" in lines[i + 3]
        assert "busy cores" in lines[i + 4] and "follower=" not in lines[i + 4]
        assert "max_throughput=" in lines[i + 5] and "follower=" not in lines[i + 5]
        assert lines[i + 6].startswith(f"{transport} 3-member failover") and "first answer to an order sent after it:" in lines[i + 6]
        assert "inf" not in lines[i + 6]
    # the same run in the common bench format: every answered order in its case's histogram
    doc = kit.to_dict()
    cases = {c["name"]: c for c in doc["cases"]}
    assert set(cases) == {f"{t}-{k}" for t in ("udp", "ipc") for k in ("3-member", "1-member", "failover")}
    for t in ("udp", "ipc"):
        three, one = cases[f"{t}-3-member"], cases[f"{t}-1-member"]
        assert three["count"] > 0 and one["count"] > 0 and three["extra"]["unanswered"] == [0]
        assert one["peer_ratio"] is None and three["peer_ratio"] == round(three["p50"] / one["p50"], 3)
        assert cases[f"{t}-failover"]["count"] == 1 and cases[f"{t}-failover"]["unit"] == "ms"
