"""A topology file that cannot run is refused before anything starts, with the
file, the key and the reason; a good one yields the processes in start order."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tickline.topology.config import TopologyError, load
from tickline.topology.demo import example_topology


@pytest.fixture
def example(tmp_path):
    return example_topology(str(tmp_path))


def _edit(path, old, new):
    text = open(path).read()
    assert old in text
    open(path, "w").write(text.replace(old, new, 1))


def refused(path, *parts):
    with pytest.raises(TopologyError) as e:
        load(path)
    msg = str(e.value)
    assert f"file={path}" in msg and "fault=user" in msg
    for p in parts:
        assert p in msg, msg
    return msg


def test_the_shipped_example_loads_into_processes_in_start_order(example):
    t = load(example)
    names = [(p.name, p.group) for p in t.processes]
    assert names == [("driver", 0), ("member-1", 1), ("member-2", 1), ("member-3", 1), ("exchange-sim", 2), ("feed", 2),
                     ("venue", 3), ("fix-gateway", 3), ("flow-a", 4), ("flow-b", 4), ("mm", 4), ("probe", 4)]
    probe = t.processes[-1]
    assert probe.argv[:3] == ("strategy", "run", "tickline.strategy.examples.tick_to_trade:TickToTradeProbe")
    assert "strategies.probe" in probe.argv
    assert t.processes[1].argv[:2] == ("cluster", "node")


def test_an_unknown_section_or_key_is_named(example):
    _edit(example, "[venue]", "[venu]")
    refused(example, "unknown section", "key=venu")


def test_an_unknown_key_in_a_component_section_is_named(example):
    _edit(example, "max_position = 2000", "max_postion = 2000")
    refused(example, "key=sequencer", "sequencer.max_postion")


def test_an_unknown_key_in_the_cluster_section_is_named(example):
    _edit(example, "heartbeat_interval = 50", "heartbeat = 50")
    refused(example, "key=cluster", "key=heartbeat")


def test_an_unknown_key_in_a_flow_is_named(example):
    _edit(example, 'name = "flow-a"', 'name = "flow-a"\nspeed = 3')
    refused(example, "key=flow[0].speed")


def test_a_missing_section(example):
    text = open(example).read()
    start = text.index("[cluster]")
    end = text.index("[sequencer]")
    open(example, "w").write(text[:start] + text[end:])
    refused(example, "missing section", "key=cluster")


def test_a_service_that_does_not_load(example):
    _edit(example, "tickline.sequencer.service:from_topology", "tickline.sequencer.nothere:from_topology")
    refused(example, "key=cluster", "the service does not load")


def test_the_fix_acceptor_s_port_in_use(example):
    busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        text = open(example).read()
        import re
        open(example, "w").write(re.sub(r"(?m)^port = \d+", f"port = {port}", text))
        refused(example, "port in use", "key=fix_gateway.acceptor.port", f"port={port}")
    finally:
        busy.close()


def test_a_port_in_use(tmp_path):
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    busy.bind(("127.0.0.1", 0))
    port = busy.getsockname()[1]
    try:
        path = tmp_path / "t.toml"
        path.write_text(f'[driver]\ndir = "{tmp_path}/d"\n[cluster]\ndata_dir = "{tmp_path}/c"\n'
                        f'members = {{ 1 = "127.0.0.1:{port}" }}\nmember_auth = "none"\nauthenticator = "none"\n')
        refused(str(path), "port in use", "key=cluster.members.1", f"port={port}")
    finally:
        busy.close()


def test_a_stream_nobody_publishes(example):
    text = open(example).read()
    start = text.index("[exchange_sim]")
    end = text.index("[venue]")
    open(example, "w").write(text[:start] + text[end:])
    refused(example, "a stream nobody publishes", "key=venue")


def test_a_strategy_reading_market_data_nobody_publishes(example):
    _edit(example, "md_stream = 1003", "md_stream = 4242")
    refused(example, "a stream nobody publishes", "key=strategies.probe.md_stream", "stream=aeron:ipc#4242")


def test_a_strategy_section_s_own_errors_name_its_key(example):
    _edit(example, 'name = "probe"', 'name = "probe"\nfrequency = 3')
    refused(example, "key=strategies.probe", "strategies.probe.frequency")


def test_tickline_up_refuses_a_bad_file_before_starting_anything(example):
    _edit(example, "[venue]", "[venu]")
    r = subprocess.run([sys.executable, "-m", "tickline", "up", example], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "bad topology: unknown section" in r.stderr and "key=venu" in r.stderr
    assert "driver" not in r.stdout  # nothing started


# ---------------------------------------------------------------- secrets (authentication on by default)


def _drop_line(path, line):
    text = open(path).read()
    assert line in text
    open(path, "w").write(text.replace(line, "", 1))


def test_the_cluster_s_key_file_missing_from_the_section_is_named(example):
    _drop_line(example, next(ln for ln in open(example) if ln.startswith("member_key_file")))
    refused(example, "key=cluster.member_key_file", "member_auth")


def test_a_cluster_key_file_others_may_read_is_refused(example, tmp_path):
    os.chmod(tmp_path / "secrets" / "cluster.key", 0o644)
    refused(example, "key=cluster.member_key_file", "readable or writable by others", f"secret_file={tmp_path}/secrets/cluster.key")


def test_the_cluster_s_credentials_file_missing_from_the_section_is_named(example):
    _drop_line(example, next(ln for ln in open(example) if ln.startswith("credentials_file")))
    refused(example, "missing key", "key=cluster.credentials_file")


@pytest.mark.parametrize("section, key", [
    ("[venue]", "venue.cluster_credentials_file"),
    ('name = "flow-b"', "flow[1].cluster_credentials_file"),
    ("[strategies.mm.gateway]", "strategies.mm.gateway.cluster_credentials_file"),
    ('bridge = "tickline.sequencer.fix_venue:from_topology"', "fix_gateway.cluster_credentials_file"),
])
def test_every_cluster_client_needs_its_credentials_file(example, section, key):
    text = open(example).read()
    at = text.index(section)
    cut = text.index("cluster_credentials_file", at)
    end = text.index("\n", cut)
    open(example, "w").write(text[:cut] + text[end + 1:])
    refused(example, "missing key", f"key={key}")


def test_a_client_credentials_file_that_is_missing_or_not_private_is_refused(example, tmp_path):
    creds = tmp_path / "secrets" / "client.credentials"
    os.chmod(creds, 0o640)
    refused(example, "readable or writable by others", "key=venue.cluster_credentials_file", f"secret_file={creds}")
    os.remove(creds)
    refused(example, "secret file not found", "key=venue.cluster_credentials_file")


def test_a_client_credentials_file_without_principal_and_secret_is_refused(example, tmp_path):
    creds = tmp_path / "secrets" / "client.credentials"
    creds.write_text("just-a-secret\n")
    refused(example, "does not hold one principal:secret line", "key=venue.cluster_credentials_file")


def test_without_client_authentication_clients_need_no_credentials(example):
    _drop_line(example, next(ln for ln in open(example) if ln.startswith("credentials_file")))
    text = open(example).read().replace("[cluster]", '[cluster]\nauthenticator = "none"', 1)
    text = "\n".join(ln for ln in text.splitlines() if not ln.startswith("cluster_credentials_file")) + "\n"
    open(example, "w").write(text)
    assert len(load(example).processes) == 12
