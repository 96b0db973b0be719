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

