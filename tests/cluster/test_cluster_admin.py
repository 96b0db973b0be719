"""``tickline cluster tool`` against three real members over IPC (Aeron ClusterTool's
verbs): describe, errors, suspend/resume, submit, shutdown, then offline
recovery-plan and log dump of the stopped members' data directories.

Each verb runs as the real command (``python -m tickline ...``, a process of its
own) and its answer is checked by content.  The tests share one cluster and
run in file order: the shutdown comes last but one, the offline verbs read
what it left.  No timing is asserted: deadlines only bound the waits.
"""

import json
import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from test_cluster_processes import Cluster

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCHEMAS = [os.path.join(ROOT, "schemas", "orders.xml"), os.path.join(ROOT, "schemas", "sequencer.xml")]
SERVICE = 'service = "tickline.sequencer.service:from_topology"\n'
NEW_ORDER = ["NewOrder", "clOrdId=c1", "account=A1", "symbol=XYZ", "side=Buy", "ordType=Limit", "timeInForce=Day",
             "price.mantissa=100", "quantity=5", "transactTime=0"]


def tickline(*args, timeout=60, check=True):
    p = subprocess.run([sys.executable, "-m", "tickline", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if check and p.returncode != 0:
        raise AssertionError(f"tickline {' '.join(args)} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("admin")
    d = f"/dev/shm/tickline-admin-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    os.makedirs(d)
    c = Cluster(tmp, d, "ipc", extra=SERVICE)
    try:
        deadline = time.monotonic() + 60
        while c.leader() is None:
            assert time.monotonic() < deadline, c.logs()
            time.sleep(0.1)
        yield c
    finally:
        c.stop()
        shutil.rmtree(d, ignore_errors=True)


def tool(cluster, *args, admin=True, **kw):
    creds = ["--credentials", cluster.secrets.admin_file] if admin else []
    return tickline("cluster", "tool", "--config", str(cluster.config), *args, *creds, **kw)


def describe(cluster):
    out = json.loads(tool(cluster, "describe", "--json", admin=False).stdout)
    return {d["member"]: d for d in out}


def submit(cluster, *values, timeout=10, check=True):
    schema_args = [a for s in SCHEMAS for a in ("--schema", s)]
    return tickline("cluster", "submit", "--config", str(cluster.config), "--credentials", cluster.secrets.client_file,
                    *schema_args, "--timeout", str(timeout), *values, check=check)


def test_describe_shows_every_member_its_role_positions_and_snapshots(cluster):
    text = tool(cluster, "describe", admin=False).stdout
    for m in (1, 2, 3):
        assert f"member {m}: " in text
    assert text.count(": leader term=") == 1 and text.count(": follower term=") == 2
    assert "snapshots: none" in text and "suspended=no" in text
    docs = describe(cluster)
    leader = next(m for m, d in docs.items() if d["role"] == "leader")
    assert all(d["leader"] == leader and d["term"] == docs[leader]["term"] for d in docs.values())
    assert set(docs[leader]["followers"]) == {str(m) for m in docs if m != leader}
    assert all(d["data_dir"].endswith(f"member-{m}") and d["pid"] == cluster.procs[m].pid for m, d in docs.items())
    # a snapshot taken on one member shows in its list, with its position and term
    follower = next(m for m in docs if m != leader)
    tool(cluster, "snapshot", "--member", str(follower))
    snaps = describe(cluster)[follower]["snapshots"]
    assert len(snaps) == 1 and snaps[0]["file"].startswith("snap-") and snaps[0]["position"] > 0 and snaps[0]["bytes"] > 0


def test_errors_needs_the_admin_credential_and_shows_the_refusal_it_logged(cluster):
    refused = tool(cluster, "errors", "--member", "1", admin=False, check=False)
    assert refused.returncode == 1 and "member=1 refused errors: an admin credential is needed" in refused.stdout
    out = tool(cluster, "errors", "--member", "1").stdout
    # the refused request above was logged by member 1, and the ring kept the line
    assert out.startswith("member 1: ") and "error line(s) since start" in out
    assert "admin request refused: member=1" in out and "reason=no_admin_credential fault=client" in out
    assert "error line(s)" in tool(cluster, "errors").stdout.split("member 3: ")[1]


def test_suspend_refuses_client_messages_while_consensus_goes_on_then_resume_applies_them(cluster):
    first = json.loads(submit(cluster, *NEW_ORDER).stdout)
    assert first["message"] == "Sequenced" and first["fields"]["clOrdId"] == "c1"
    out = tool(cluster, "suspend").stdout
    assert out.startswith("suspended: client messages are refused") and "applied at log position" in out
    docs = describe(cluster)
    assert all(d["suspended"] for d in docs.values())  # through the log: every member
    refused = submit(cluster, *NEW_ORDER[:1], "clOrdId=c2", *NEW_ORDER[2:], timeout=2, check=False)
    assert refused.returncode == 1 and "the cluster answered suspended" in refused.stderr
    time.sleep(0.5)  # consensus goes on: the members still follow one leader, and all stay suspended
    docs = describe(cluster)
    leaders = [m for m, d in docs.items() if d["role"] == "leader"]
    assert len(leaders) == 1 and all(d["leader"] == leaders[0] for d in docs.values())
    assert all(d["suspended"] for d in docs.values())
    # (an election on this loaded machine would not change that: the suspension is in the log)
    assert "resumed: client messages are applied" in tool(cluster, "resume").stdout
    assert not any(d["suspended"] for d in describe(cluster).values())
    second = json.loads(submit(cluster, *NEW_ORDER[:1], "clOrdId=c3", *NEW_ORDER[2:]).stdout)
    assert second["message"] == "Sequenced" and second["fields"]["orderId"] == first["fields"]["orderId"] + 1


def test_suspend_and_resume_are_refused_without_the_admin_credential(cluster):
    p = tool(cluster, "suspend", admin=False, check=False)
    assert p.returncode == 1 and "refused suspend: an admin credential is needed" in p.stdout
    assert not any(d["suspended"] for d in describe(cluster).values())


def test_submit_takes_json_and_names_what_does_not_encode(cluster):
    doc = json.dumps({"message": "NewOrder", "fields": {"clOrdId": "j1", "account": "A1", "symbol": "XYZ", "side": "Sell",
                                                        "ordType": "Limit", "timeInForce": "Day", "price": {"mantissa": 100},
                                                        "quantity": 1, "transactTime": 0}})
    out = json.loads(submit(cluster, doc).stdout)
    assert out["message"] == "Sequenced" and out["fields"]["clOrdId"] == "j1"
    bad = submit(cluster, *[("side=Sideways" if v == "side=Buy" else v) for v in NEW_ORDER], check=False)
    assert bad.returncode == 2 and "the message does not encode: message=NewOrder" in bad.stdout and "Sideways" in bad.stdout
    short = submit(cluster, "NewOrder", "clOrdId=x", check=False)
    assert short.returncode == 2 and "missing field name=account" in short.stdout
    unknown = submit(cluster, "NoSuchMessage", "a=1", check=False)
    assert unknown.returncode == 2 and "no --schema has this message: message=NoSuchMessage" in unknown.stdout


def test_shutdown_snapshots_every_member_at_one_position_and_they_exit_0(cluster):
    before = describe(cluster)
    out = tool(cluster, "shutdown").stdout
    assert "shutdown appended by leader" in out
    entry_end = int(out.split("log entry ")[1].split("..")[1].split(" ")[0])
    positions = set()
    for m in (1, 2, 3):
        line = next(x for x in out.splitlines() if x.startswith(f"member {m}: "))
        assert line.endswith(", stopped"), out
        positions.add(int(line.split("snapshot at position ")[1].split(",")[0]))
    for m, p in cluster.procs.items():
        assert p.wait(timeout=30) == 0, cluster.logs()
    assert min(positions) >= entry_end > max(d["commit"] for d in before.values())
    logs = cluster.logs()
    assert logs.count("shutdown snapshot=") == 3 and "exit=0" in logs


def test_recovery_plan_of_a_stopped_member_names_its_snapshot_and_what_it_replays(cluster):
    assert all(p.poll() is not None for p in cluster.procs.values())  # the shutdown above stopped them
    out = tool(cluster, "recovery-plan", "--member", "2", admin=False).stdout
    assert out.startswith("recovery plan for member 2 ")
    assert "load snapshot snap-" in out and "tail: clean" in out and "would change: nothing" in out
    plan = json.loads(tool(cluster, "recovery-plan", "--member", "2", "--json", admin=False).stdout)
    snap = plan["snapshot"]
    # the shutdown's snapshot covers the whole log: nothing is left to replay
    assert snap["position"] == plan["log"]["end"] and plan["replay"]["entries"] == 0 and plan["pending"]["entries"] == 0
    assert plan["refuses"] is None


def test_recovery_plan_names_a_torn_tail_it_would_cut(cluster, tmp_path):
    d = tmp_path / "member-copy"
    shutil.copytree(cluster.tmp / "data" / "member-3", d)
    seg = sorted(n for n in os.listdir(d) if n.startswith("log-"))[-1]
    end = json.loads(tool(cluster, "recovery-plan", "--data-dir", str(d), "--json", admin=False).stdout)["log"]["end"]
    size = end - int(seg[4:-4])
    torn = (d / seg).read_bytes()[:size] + b"\x10\x00\x00\x00garbage"  # a frame cut short: what a crash mid-write leaves
    (d / seg).write_bytes(torn)
    plan = json.loads(tool(cluster, "recovery-plan", "--data-dir", str(d), "--json", admin=False).stdout)
    assert plan["tail"] == "torn" and plan["cut"] == {"at": end, "reason": "short_header", "dropped_bytes": 11}
    assert plan["changes"] == [f"cut {seg} to {size} bytes (drop 11)"]
    assert (d / seg).read_bytes() == torn  # offline: nothing written
    text = tool(cluster, "recovery-plan", "--data-dir", str(d), admin=False).stdout
    assert f"tail: torn at position {end} (short_header)" in text


def test_log_dump_decodes_entries_through_the_cluster_and_service_schemas(cluster):
    args = ["log", "dump", "--member", "1", "--offline", "--json"] + [a for s in SCHEMAS for a in ("--schema", s)]
    lines = tool(cluster, *args, admin=False).stdout.splitlines()
    assert lines[0].startswith("# log of member 1: commit position ") and lines[-1].startswith("# ")
    entries = [json.loads(x) for x in lines[1:-1]]
    kinds = [e["kind"] for e in entries]
    assert {"NOOP", "SESSION_OPEN", "MESSAGE", "ACTION"} <= set(kinds)
    actions = [e["action"] for e in entries if e["kind"] == "ACTION"]
    assert actions == ["SUSPEND", "RESUME", "SHUTDOWN"]
    orders = [e for e in entries if e.get("message") == "NewOrder"]
    # c2 came while suspended: the leader refused it before it reached the log
    assert [o["fields"]["clOrdId"] for o in orders] == ["c1", "c3", "j1"]
    assert orders[0]["fields"]["price"]["mantissa"] == 100 and orders[0]["fields"]["side"] == "Buy"
    assert all(e["committed"] for e in entries)  # all under the shutdown snapshot
    assert [e["position"] for e in entries[1:]] == [e["end"] for e in entries[:-1]]
    text = tool(cluster, "log", "dump", "--member", "1", "--offline", admin=False).stdout
    assert "kind=MESSAGE" in text and "payload_hex=" in text  # without the schemas: the bytes


def test_log_dump_names_the_file_and_position_of_a_damaged_frame(cluster, tmp_path):
    d = tmp_path / "damaged"
    shutil.copytree(cluster.tmp / "data" / "member-1", d)
    seg = sorted(n for n in os.listdir(d) if n.startswith("log-"))[0]
    data = bytearray((d / seg).read_bytes())
    first_len = int.from_bytes(data[0:4], "little")
    at = 28 + first_len  # the second frame
    data[at + 8] ^= 0x01  # a flipped bit in its term field (length u32, crc u32, then term i64)
    (d / seg).write_bytes(bytes(data))
    p = tickline("cluster", "tool", "log", "dump", "--data-dir", str(d), check=False)
    assert p.returncode == 1
    assert "# 1 entries shown before the damage" in p.stdout
    base = int(seg[4:-4])
    assert f"damaged log frame: file={d / seg} position={base + at} offset={at} reason=" in p.stderr and "fault=storage" in p.stderr
    # a length field that points past the end of the file (hostile, or a torn write)
    data[at: at + 4] = (2**31).to_bytes(4, "little")
    (d / seg).write_bytes(bytes(data))
    p = tickline("cluster", "tool", "log", "dump", "--data-dir", str(d), check=False)
    assert p.returncode == 1 and f"position={base + at}" in p.stderr and "reason=bad_length" in p.stderr
