"""Config is validated up front; every error names the key, the value and the user's fault."""

import os
import shutil
import uuid

import pytest

from tickline.cluster.config import ConsensusConfig
from tickline.cluster.errors import ConfigError
from tickline.cluster.log import FsyncPolicy


@pytest.mark.parametrize("kwargs, message", [
    (dict(member_id=4, members=(1, 2, 3)), "invalid cluster config: key=member_id value=4 expected='one of 1,2,3' fault=user"),
    (dict(member_id=1, members=()), "key=members value=() expected='at least one member id' fault=user"),
    (dict(member_id=1, members=(1, 1, 2)), "key=members value=1,1,2 expected='distinct member ids'"),
    (dict(member_id=1, members=(1, -2)), "key=members value=-2 expected='non-negative integer member ids'"),
    (dict(member_id=1, members=(1,), election_timeout_min=0), "key=election_timeout_min value=0 expected='positive integer'"),
    (dict(member_id=1, members=(1,), election_timeout_min=100, election_timeout_max=100), "key=election_timeout_max value=100 expected=>election_timeout_min=100"),
    (dict(member_id=1, members=(1,), election_timeout_min=100, election_timeout_max=200, heartbeat_interval=60), "key=heartbeat_interval value=60 expected=<=election_timeout_min/2=50"),
    (dict(member_id=1, members=(1,), max_append_bytes=-1), "key=max_append_bytes value=-1"),
])
def test_invalid_config_is_rejected_with_a_precise_message(kwargs, message):
    with pytest.raises(ConfigError) as exc:
        ConsensusConfig(**kwargs)
    assert message in str(exc.value)


def test_config_from_environment_with_overrides():
    env = {"TICKLINE_CLUSTER_MEMBERS": "1,2,3", "TICKLINE_CLUSTER_MEMBER_ID": "2", "TICKLINE_CLUSTER_HEARTBEAT_INTERVAL": "20"}
    cfg = ConsensusConfig.from_env(env, election_timeout_min=100)
    assert cfg.members == (1, 2, 3) and cfg.member_id == 2 and cfg.heartbeat_interval == 20
    assert cfg.election_timeout_min == 100 and cfg.quorum == 2


def test_non_integer_environment_value_names_the_variable():
    with pytest.raises(ConfigError) as exc:
        ConsensusConfig.from_env({"TICKLINE_CLUSTER_MEMBER_ID": "two", "TICKLINE_CLUSTER_MEMBERS": "1"})
    assert "key=TICKLINE_CLUSTER_MEMBER_ID value=two expected=integer fault=user" in str(exc.value)


def test_fsync_policy_parse():
    assert FsyncPolicy.parse("always") is FsyncPolicy.ALWAYS
    with pytest.raises(ConfigError, match="key=fsync value=sometimes expected=always|none"):
        FsyncPolicy.parse("sometimes")


def test_topology_file_errors_name_the_file_and_key(tmp_path):
    from tickline.cluster.daemon import load_topology
    p = tmp_path / "c.toml"
    p.write_text('data_dir = "/tmp/x"\n[members]\n1 = "127.0.0.1"\n')
    with pytest.raises(ConfigError) as exc:
        load_topology(str(p))
    assert f"file={p} key=members value=127.0.0.1 expected='host:port or ipc' fault=user" in str(exc.value)
    for text, error in [
        ('data_dir = "/tmp/x"\nelection_timeot_min = 5\n[members]\n1 = "h:1"\n', "key=election_timeot_min"),
        ('[members]\n1 = "h:1"\n', "key=data_dir expected='a directory path'"),
        ('data_dir = "d"\nheartbeat_interval = 500\n[members]\n1 = "h:1"\n', "key=heartbeat_interval value=500"),
        ("members = [", "not valid TOML"),
    ]:
        p.write_text(text)
        with pytest.raises(ConfigError, match=error):
            load_topology(str(p))
    p.write_text('data_dir = "d"\nfsync = "none"\n[members]\n1 = "127.0.0.1:9000"\n2 = "127.0.0.1:9001"\n')
    t = load_topology(str(p))
    assert t.members == {1: ("127.0.0.1", 9000), 2: ("127.0.0.1", 9001)} and t.fsync is FsyncPolicy.NONE
    assert t.aeron_dir is None  # members make their driver directories under /dev/shm
    p.write_text('data_dir = "d"\naeron_dir = 5\n[members]\n1 = "127.0.0.1:9000"\n')
    with pytest.raises(ConfigError, match="key=aeron_dir value=5 expected='a directory path'"):
        load_topology(str(p))
    p.write_text('data_dir = "d"\naeron_dir = "/dev/shm/x"\n[members]\n1 = "127.0.0.1:9000"\n')
    assert load_topology(str(p)).aeron_dir == "/dev/shm/x"


def test_ipc_topology_needs_every_member_on_ipc_and_the_shared_drivers_directory(tmp_path):
    from tickline.cluster.aeron_io import IPC_ENDPOINT
    from tickline.cluster.daemon import load_topology
    p = tmp_path / "c.toml"
    p.write_text('data_dir = "d"\naeron_dir = "/dev/shm/shared"\n[members]\n1 = "ipc"\n2 = "ipc"\n3 = "ipc"\n')
    t = load_topology(str(p))
    assert t.members == {1: IPC_ENDPOINT, 2: IPC_ENDPOINT, 3: IPC_ENDPOINT} and t.aeron_dir == "/dev/shm/shared"
    p.write_text('data_dir = "d"\n[members]\n1 = "ipc"\n2 = "ipc"\n')
    with pytest.raises(ConfigError) as exc:
        load_topology(str(p))
    assert f"ipc members share a running media driver: file={p} key=aeron_dir" in str(exc.value)
    p.write_text('data_dir = "d"\naeron_dir = "/dev/shm/shared"\n[members]\n1 = "ipc"\n2 = "127.0.0.1:9001"\n')
    with pytest.raises(ConfigError) as exc:
        load_topology(str(p))
    assert "members mix ipc and host:port endpoints" in str(exc.value) and f"file={p} ipc=1 " in str(exc.value)
    p.write_text('data_dir = "d"\naeron_dir = "/dev/shm/shared"\n[members]\n1 = "ipc"\n1000000 = "ipc"\n')
    with pytest.raises(ConfigError, match="member id out of range for ipc: .*member=1000000"):
        load_topology(str(p))


def test_aeron_threading_comes_from_the_topology_and_the_environment_overrides_it(tmp_path, monkeypatch):
    from tickline.cluster.aeron_io import threading_mode
    from tickline.cluster.daemon import load_topology
    monkeypatch.delenv("TICKLINE_CLUSTER_AERON_THREADING", raising=False)
    p = tmp_path / "c.toml"
    p.write_text('data_dir = "d"\n[members]\n1 = "127.0.0.1:9000"\n')
    assert load_topology(str(p)).aeron_threading is None and threading_mode(None) == "invoker"
    p.write_text('data_dir = "d"\naeron_threading = "threaded"\n[members]\n1 = "127.0.0.1:9000"\n')
    t = load_topology(str(p))
    assert t.aeron_threading == "threaded" and threading_mode(t.aeron_threading) == "threaded"
    monkeypatch.setenv("TICKLINE_CLUSTER_AERON_THREADING", "invoker")
    assert threading_mode(t.aeron_threading) == "invoker"
    p.write_text('data_dir = "d"\naeron_threading = "threads"\n[members]\n1 = "127.0.0.1:9000"\n')
    with pytest.raises(ConfigError, match=r"key=aeron_threading value=threads expected=invoker\|threaded"):
        load_topology(str(p))


def test_fsync_thread_comes_from_the_topology_and_the_environment_overrides_it(tmp_path, monkeypatch):
    from tickline.cluster.daemon import NodeAgent, fsync_thread_enabled, load_topology
    monkeypatch.delenv("TICKLINE_CLUSTER_FSYNC_THREAD", raising=False)
    p = tmp_path / "c.toml"
    p.write_text('data_dir = "d"\n[members]\n1 = "127.0.0.1:9000"\n')
    t = load_topology(str(p))
    assert t.fsync_thread is None and NodeAgent(t, 1).fsync_thread  # on by default with fsync = "always"
    p.write_text('data_dir = "d"\nfsync_thread = false\n[members]\n1 = "127.0.0.1:9000"\n')
    t = load_topology(str(p))
    assert t.fsync_thread is False and not NodeAgent(t, 1).fsync_thread
    monkeypatch.setenv("TICKLINE_CLUSTER_FSYNC_THREAD", "true")
    assert fsync_thread_enabled(t.fsync_thread) and NodeAgent(t, 1).fsync_thread
    p.write_text('data_dir = "d"\nfsync = "none"\n[members]\n1 = "127.0.0.1:9000"\n')
    assert not NodeAgent(load_topology(str(p)), 1).fsync_thread  # nothing to sync
    monkeypatch.setenv("TICKLINE_CLUSTER_FSYNC_THREAD", "0")
    assert not fsync_thread_enabled(True)
    monkeypatch.setenv("TICKLINE_CLUSTER_FSYNC_THREAD", "sometimes")
    with pytest.raises(ConfigError, match="key=TICKLINE_CLUSTER_FSYNC_THREAD value=sometimes expected=true|false"):
        fsync_thread_enabled(None)
    monkeypatch.delenv("TICKLINE_CLUSTER_FSYNC_THREAD")
    p.write_text('data_dir = "d"\nfsync_thread = "yes"\n[members]\n1 = "127.0.0.1:9000"\n')
    with pytest.raises(ConfigError, match=f"file={p} key=fsync_thread value=yes expected=true"):
        load_topology(str(p))


@pytest.mark.parametrize("enabled", [True, False])
def test_a_started_member_syncs_its_log_where_the_topology_says(tmp_path, monkeypatch, enabled):
    from tickline.transport import free_ports
    from tickline.cluster.daemon import NodeAgent, load_topology
    monkeypatch.delenv("TICKLINE_CLUSTER_FSYNC_THREAD", raising=False)
    aeron_dir = f"/dev/shm/tickline-cluster-cfg-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    p = tmp_path / "c.toml"
    p.write_text(f'data_dir = "{tmp_path / "data"}"\naeron_dir = "{aeron_dir}"\nfsync_thread = {str(enabled).lower()}\n'
                 'member_auth = "none"\nauthenticator = "none"\n'
                 f'[members]\n1 = "127.0.0.1:{free_ports()[0]}"\n')
    agent = NodeAgent(load_topology(str(p)), 1)
    try:
        agent.on_start()
        assert agent.node is not None and agent.node.disk.sync_thread is enabled
    finally:
        agent.on_close()
        shutil.rmtree(aeron_dir, ignore_errors=True)


def test_the_idle_strategy_comes_from_the_topology(tmp_path):
    from tickline.cluster.daemon import DEFAULT_MAX_PARK_US, load_topology
    from tickline.transport.idle import BackoffIdleStrategy, BusySpinIdleStrategy, YieldingIdleStrategy
    p = tmp_path / "c.toml"
    members = '[members]\n1 = "127.0.0.1:9000"\n'
    p.write_text('data_dir = "d"\n' + members)
    s = load_topology(str(p)).idle_strategy()
    assert isinstance(s, BackoffIdleStrategy) and s.max_park_ns == DEFAULT_MAX_PARK_US * 1000 == 1_000_000
    p.write_text('data_dir = "d"\nidle_max_park_us = 100\n' + members)
    s = load_topology(str(p)).idle_strategy()
    assert isinstance(s, BackoffIdleStrategy) and s.max_park_ns == 100_000 and s.min_park_ns == 1000
    p.write_text('data_dir = "d"\nidle = "busy-spin"\n' + members)
    assert isinstance(load_topology(str(p)).idle_strategy(), BusySpinIdleStrategy)
    p.write_text('data_dir = "d"\nidle = "yielding"\n' + members)
    assert isinstance(load_topology(str(p)).idle_strategy(), YieldingIdleStrategy)


@pytest.mark.parametrize("setting, error", [
    ('idle = "spin"', r"key=idle value=spin expected=backoff\|busy-spin\|yielding\|sleeping\|noop"),
    ("idle = 3", r"key=idle value=3 expected=backoff"),
    ("idle_max_park_us = 0", r"key=idle_max_park_us value=0 expected=1..1000000"),
    ("idle_max_park_us = 2000000", r"key=idle_max_park_us value=2000000 expected="),
    ("idle_max_park_us = 1.5", r"key=idle_max_park_us value=1.5 expected="),
    ("idle_max_park_us = true", r"key=idle_max_park_us value=True expected="),
    ('idle = "yielding"\nidle_max_park_us = 100', r"applies to the backoff strategy only: file=.* key=idle_max_park_us idle=yielding"),
])
def test_a_bad_idle_setting_is_refused_naming_the_key(tmp_path, setting, error):
    from tickline.cluster.daemon import load_topology
    p = tmp_path / "c.toml"
    p.write_text(f'data_dir = "d"\n{setting}\n[members]\n1 = "127.0.0.1:9000"\n')
    with pytest.raises(ConfigError, match=error):
        load_topology(str(p))


@pytest.mark.parametrize("argv, error", [
    (["--runs", "0"], "--runs must be >= 1: runs=0"),
    (["--idle-max-park-us", "0"], "--idle-max-park-us must be 1..1000000: idle_max_park_us=0"),
])
def test_bench_cluster_refuses_bad_arguments_before_starting_anything(capsys, argv, error):
    import tickline.cli
    assert tickline.cli.main(["bench", "cluster", *argv]) == 2
    assert error in capsys.readouterr().err


def test_the_environment_overrides_the_idle_settings_and_its_errors_name_the_variable(tmp_path):
    from tickline.cluster.daemon import load_topology
    from tickline.transport.idle import BackoffIdleStrategy, BusySpinIdleStrategy
    p = tmp_path / "c.toml"
    p.write_text('data_dir = "d"\nidle_max_park_us = 500\n[members]\n1 = "127.0.0.1:9000"\n')
    assert load_topology(str(p), env={}).idle_max_park_us == 500
    s = load_topology(str(p), env={"TICKLINE_CLUSTER_IDLE_MAX_PARK_US": "50"}).idle_strategy()
    assert isinstance(s, BackoffIdleStrategy) and s.max_park_ns == 50_000
    with pytest.raises(ConfigError, match="applies to the backoff strategy only: .* key=idle_max_park_us idle=busy-spin"):
        load_topology(str(p), env={"TICKLINE_CLUSTER_IDLE": "busy-spin"})  # the file's max park does not fit it
    p.write_text('data_dir = "d"\n[members]\n1 = "127.0.0.1:9000"\n')
    t = load_topology(str(p), env={"TICKLINE_CLUSTER_IDLE": "busy-spin"})
    assert t.idle == "busy-spin" and isinstance(t.idle_strategy(), BusySpinIdleStrategy)
    with pytest.raises(ConfigError, match="key=TICKLINE_CLUSTER_IDLE value=spinning expected=backoff"):
        load_topology(str(p), env={"TICKLINE_CLUSTER_IDLE": "spinning"})
    with pytest.raises(ConfigError, match="key=TICKLINE_CLUSTER_IDLE_MAX_PARK_US value=fast expected=1..1000000"):
        load_topology(str(p), env={"TICKLINE_CLUSTER_IDLE_MAX_PARK_US": "fast"})
    with pytest.raises(ConfigError, match="key=TICKLINE_CLUSTER_IDLE_MAX_PARK_US value=0 expected=1..1000000"):
        load_topology(str(p), env={"TICKLINE_CLUSTER_IDLE_MAX_PARK_US": "0"})
