"""Every daemon logs one line per event: UTC timestamp, level, component, event, key=value
fields; ``--log-level`` and ``TICKLINE_LOG_LEVEL`` set the least severe level, ``--log-file``
the destination.  Each daemon runs through the real command, is stopped with SIGTERM, and
its lines are read by content."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from tickline.transport import free_ports

from conftest import event, events  # type: ignore[import-not-found]


def _levels(text: str) -> set[str]:
    return {lvl for lvl, *_ in events(text)}


# ------------------------------------------------------------------ tickline cluster node

def _cluster_topology(tmp: Path, shm: str) -> Path:
    (port,) = free_ports(1)
    p = tmp / "cluster.toml"
    p.write_text(f'data_dir = "{tmp / "data"}"\naeron_dir = "{shm}"\nfsync = "none"\nmember_auth = "none"\n'
                 f'authenticator = "none"\n[members]\n1 = "127.0.0.1:{port}"\n')
    return p


def test_cluster_node_logs_events(run, tmp_path, shm_dir):
    cfg = _cluster_topology(tmp_path, shm_dir)
    node = ["cluster", "node", "--config", str(cfg), "--member", "1"]
    rc, out, err = run(node, lambda e: " started " in e)
    assert rc == 0, err
    started = event(err, "INFO", "tickline.cluster", "started", member="1", transport="aeron-udp", fsync="none")
    assert started["term"].isdigit() and "log_end" in started
    event(err, "INFO", "tickline.cluster", "stopping", member="1", transfer_to="None")
    closing = event(err, "INFO", "tickline.cluster", "closing", member="1", sessions_rejected="0")
    assert closing["malformed"] == "0"
    assert out == ""  # logs go to stderr
    member_dir = tmp_path / "data" / "member-1"
    # WARNING suppresses INFO, from the option and from the environment; the run went through
    # its start and its clean stop (exit 0), so the INFO events above happened and were not logged
    for extra, env in ((["--log-level", "WARNING"], {}), ([], {"TICKLINE_LOG_LEVEL": "warning"})):
        import shutil

        shutil.rmtree(member_dir, ignore_errors=True)
        rc, out, err = run(node + extra, lambda e: member_dir.is_dir(), env=env)
        assert rc == 0 and "INFO" not in _levels(err) and " started " not in err, err
    log = tmp_path / "node.log"
    rc, out, err = run(node + ["--log-file", str(log)], lambda e: log.exists() and " started " in log.read_text())
    assert rc == 0 and " started " not in err, err
    event(log.read_text(), "INFO", "tickline.cluster", "closing", member="1")


def _levels_and_file(run, tmp_path, argv, component, name, ready_path=None, quiet_ready=None, reset=None, **fields):
    """The three checks every daemon gets: the start event (INFO, on stderr, stdout untouched but
    for its machine-readable output), WARNING from the option and from TICKLINE_LOG_LEVEL
    suppressing it (the run went through its start and its clean stop, exit 0: the event
    happened and was not logged), and --log-file getting it instead of stderr.  ``ready_path``:
    a file whose existence shows a quiet run got past its start (removed before each), or
    ``quiet_ready()`` (``reset()`` before each); neither: the command ends by itself."""
    marker = f" INFO {component} {name} "
    rc, out, err = run(argv, lambda e: marker in e)
    assert rc == 0, err
    start = event(err, "INFO", component, name, **fields)
    assert marker not in out
    if ready_path is not None:
        quiet_ready = ready_path.exists
    for extra, env in ((["--log-level", "WARNING"], {}), ([], {"TICKLINE_LOG_LEVEL": "warning"})):
        if ready_path is not None and ready_path.exists():
            ready_path.unlink()
        if reset is not None:
            reset()
        rc, out, err = run(argv + extra, (lambda e: quiet_ready()) if quiet_ready else (lambda e: True), env=env,
                           stop=quiet_ready is not None)
        assert rc == 0 and "INFO" not in _levels(err) and marker not in err, err
    log = tmp_path / f"{component}.{name}.log"
    rc, out, err = run(argv + ["--log-file", str(log)], lambda e: log.exists() and marker in log.read_text())
    assert rc == 0 and marker not in err, err
    event(log.read_text(), "INFO", component, name, **fields)
    return start


# ------------------------------------------------------------------ tickline strategy run

def test_strategy_run_logs_events(run, tmp_path):
    cfg = tmp_path / "mm.toml"
    cfg.write_text('[strategy]\nname = "mm1"\naccount = "ACC1"\nsymbols = ["ESZ6"]\nmd_stream = 1301\n'
                   '[strategy.gateway]\nkind = "simulated"\n[strategy.params]\nspread = 0.02\nsize = 1\n')
    status = tmp_path / "status.json"
    argv = ["strategy", "run", "tickline.strategy.examples.market_maker:MarketMaker", "--config", str(cfg), "--embedded",
            "--status-file", str(status)]
    start = _levels_and_file(run, tmp_path, argv, "tickline.strategy", "running", ready_path=status, strategy="mm1",
                             gateway="simulated", md="aeron:ipc#1301")
    assert start["class"] == "tickline.strategy.examples.market_maker:MarketMaker" and start["pid"].isdigit()
    # its final counters stay on stdout, as JSON
    rc, out, err = run(argv + ["--seconds", "0.2"], lambda e: False, stop=False)
    assert rc == 0 and json.loads(out.strip().splitlines()[-1])["strategy"] == "mm1", (out, err)


# ------------------------------------------------------------------ tickline feed synthetic

def test_feed_synthetic_logs_events(run, tmp_path):
    argv = ["feed", "synthetic", "--embedded", "--stream", "1302", "--rate", "50", "--seconds", "0.5", "--symbols", "A,B"]
    start = _levels_and_file(run, tmp_path, argv, "tickline.feed", "synthetic", channel="aeron:ipc", stream="1302",
                             symbols="A,B")
    assert start["session_id"].lstrip("-").isdigit()
    rc, out, err = run(argv, lambda e: False, stop=False)  # the count stays on stdout, as JSON
    assert rc == 0 and "published" in json.loads(out.strip().splitlines()[-1]), (out, err)


# ------------------------------------------------------------------ tickline archive run

def test_archive_run_logs_events(run, tmp_path, shm_dir):
    argv = ["archive", "run", "--embedded-driver", "--aeron-dir", shm_dir, "--dir", str(tmp_path / "archive")]
    start = _levels_and_file(run, tmp_path, argv, "tickline.archive", "ready", ready_path=tmp_path / "archive" / "archive.lock",
                             aeron_dir=shm_dir)
    assert start["dir"] == str(tmp_path / "archive")


# ------------------------------------------------------------------ tickline driver

def test_driver_logs_events(run, tmp_path, shm_dir):
    cnc = Path(shm_dir) / "cnc.dat"
    argv = ["driver", "--dir", shm_dir, "-D", "aeron.threading.mode=SHARED"]
    start = _levels_and_file(run, tmp_path, argv, "tickline.driver", "running", ready_path=cnc, dir=shm_dir)
    assert start["aeronmd_pid"].isdigit()
    rc, out, err = run(argv + ["-D", "aeron.no.such=1", "--log-level", "WARNING"], lambda e: " running " in e or "unknown" in e)
    event(err, "WARNING", "tickline.driver", "unknown", fault="user", property="aeron.no.such")


# ------------------------------------------------------------------ tickline exchange-sim

def test_exchange_sim_logs_events(run, tmp_path, driver, aeron):
    cfg = tmp_path / "topology.toml"
    cfg.write_text(f'[exchange_sim]\ndir = "{driver.dir}"\norder_stream_id = 2101\nreport_stream_id = 2102\nidle = "sleeping"\n')
    orders = aeron.add_publication("aeron:ipc", 2101)  # connected: the sim subscribed, it is past its start
    argv = ["exchange-sim", "--config", str(cfg)]
    def gone() -> None:  # the last sim's subscription gone (image liveness): a new one shows the next sim started
        deadline = time.monotonic() + 30
        while orders.is_connected:
            assert time.monotonic() < deadline, "the stopped sim's subscription is still seen"
            time.sleep(0.05)

    _levels_and_file(run, tmp_path, argv, "tickline.venue.exchange_sim", "running", quiet_ready=lambda: orders.is_connected,
                     reset=gone,
                     orders="aeron:ipc#2101", reports="aeron:ipc#2102", default_mode="match")
    rc, out, err = run(argv, lambda e: " running " in e)
    event(err, "INFO", "tickline.venue.exchange_sim", "stopped", orders="0", reports="0", bad="0")


# ------------------------------------------------- tickline up: venue, sequencer flow, every child's level

def _small_deployment(tmp: Path, driver_dir: str) -> Path:
    """A driver, one cluster member, the exchange simulator, the venue adapter and an order flow."""
    p = tmp / "deploy.toml"
    p.write_text(f'[driver]\ndir = "{driver_dir}"\n'
                 f'[cluster]\nmembers = {{ 1 = "ipc" }}\ndata_dir = "{tmp}/cluster"\nfsync = "none"\n'
                 'service = "tickline.sequencer.service:from_topology"\nmember_auth = "none"\nauthenticator = "none"\n'
                 '[exchange_sim]\norder_stream_id = 1401\nreport_stream_id = 1402\ndefault_mode = "match"\nmodes = { FLOW = "auto-fill" }\n'
                 '[venue]\nmax_orders = 16\n'
                 '[[flow]]\nname = "flow-a"\nrate = 20\nsymbol = "FLOW"\naccount = "ACC1"\nseed = 1\n')
    return p


def _up(run, deploy: Path, *extra: str, env: dict[str, str] | None = None) -> str:
    rc, out, err = run(["up", str(deploy), "--status-interval", "0", *extra], lambda e: False, env=env, stop=False, wait=120)
    assert rc == 0, out + err
    # every child ran through its start and its clean stop (a SIGTERM handled: code 0)
    for name in ("driver", "member-1", "exchange-sim", "venue", "flow-a"):
        assert f" {name:<12} | ** stopped code=0" in out, out
    return out


def test_up_stamps_each_line_once_and_passes_the_log_level_to_every_child(run, tmp_path, shm_dir):
    deploy = _small_deployment(tmp_path, f"{shm_dir}/driver")
    out = _up(run, deploy, "--seconds", "8")
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"
    # a child's event keeps its own UTC timestamp, in front, once; then the child's name
    started = re.search(rf"^({stamp}) member-1\s+\| INFO tickline.cluster started member=1 transport=aeron-ipc ", out, re.M)
    assert started, out
    assert not re.search(rf"^{stamp} \S+\s+\| {stamp}", out, re.M), out
    # each child's lines, the name taken out: its log events as it wrote them
    lines = {name: "\n".join(f"{ln[:27]} {ln.split('| ', 1)[1]}" for ln in out.splitlines() if re.match(rf"{stamp} {name}\s+\| ", ln))
             for name in ("venue", "flow-a", "exchange-sim")}
    assert event(lines["venue"], "INFO", "tickline.venue", "running")["pid"].isdigit(), out
    event(lines["venue"], "INFO", "tickline.venue", "totals", bad="0")
    event(lines["flow-a"], "INFO", "tickline.sequencer.flow", "running", flow="flow-a")
    event(lines["flow-a"], "INFO", "tickline.sequencer.flow", "totals", flow="flow-a")
    event(lines["exchange-sim"], "INFO", "tickline.venue.exchange_sim", "running", orders="aeron:ipc#1401")
    # --log-level given to up, or TICKLINE_LOG_LEVEL in its environment, reaches every child
    for extra, env in ((["--log-level", "WARNING"], None), ([], {"TICKLINE_LOG_LEVEL": "WARNING"})):
        out = _up(run, deploy, "--seconds", "5", *extra, env=env)
        assert not re.search(r"\| INFO tickline", out), out
    rc, out, err = run(["up", str(deploy), "--log-level", "chatty"], lambda e: False, stop=False)
    assert rc == 2 and "argument --log-level: invalid choice: 'CHATTY'" in err, err
    rc, out, err = run(["up", str(deploy)], lambda e: False, env={"TICKLINE_LOG_LEVEL": "chatty"}, stop=False)
    assert rc == 2 and "bad log level: fault=user key=TICKLINE_LOG_LEVEL value='chatty'" in err and "driver" not in out, (out, err)


def test_venue_and_flow_log_events(run, tmp_path, driver):
    # each on its own, on a running driver, no cluster up: each starts, keeps trying to connect, stops on SIGTERM
    deploy = _small_deployment(tmp_path, driver.dir)
    status = tmp_path / "venue.json"
    argv = ["venue", "--config", str(deploy), "--status-file", str(status)]
    assert _levels_and_file(run, tmp_path, argv, "tickline.venue", "running", ready_path=status)["pid"].isdigit()
    rc, out, err = run(argv, lambda e: " running " in e)
    event(err, "INFO", "tickline.venue", "totals", orders_sent="0", reports="0", duplicates_suppressed="0", bad="0")
    status = tmp_path / "flow.json"
    argv = ["sequencer", "flow", "--config", str(deploy), "--name", "flow-a", "--status-file", str(status)]
    _levels_and_file(run, tmp_path, argv, "tickline.sequencer.flow", "running", ready_path=status, flow="flow-a")
    rc, out, err = run(argv, lambda e: " running " in e)
    event(err, "INFO", "tickline.sequencer.flow", "stopped", flow="flow-a")
    event(err, "INFO", "tickline.sequencer.flow", "totals", flow="flow-a", sent="0", unanswered="0")
