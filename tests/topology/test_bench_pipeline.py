"""`tickline bench pipeline` as a user runs it, at its smallest size: every part
measures something, the fan-out strategies saw every message once, nothing is
left running or in /dev/shm, and bad options are refused with a message.
Timing is never asserted."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.multiprocess

SHM = "/dev/shm" if os.path.isdir("/dev/shm") else None


def _bench(*args: str, timeout: float = 280) -> subprocess.CompletedProcess[str]:
    # its own process group: if it hangs, the group (the bench, its cluster members, its drivers) is killed
    p = subprocess.Popen([sys.executable, "-m", "tickline", "bench", "pipeline", *args], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if p.returncode is None:
            p.communicate()
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def _ours() -> set[str]:
    return set(glob.glob(os.path.join(SHM, "tickline-bench-pipeline-*"))) if SHM else set()


def _children_of(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


@pytest.mark.slow  # two 3-member clusters and two fan-out rounds: ~20-40 s on a loaded 2-core machine
@pytest.mark.timeout(300)
def test_quick_run_measures_every_part_and_leaves_nothing_behind(tmp_path, procs):
    before = _ours()
    out = tmp_path / "pipeline.json"
    r = _bench("--quick", "--rates", "500,2000", "--strategies", "1,2", "--json", str(out), "--hgrm", str(tmp_path / "h"))
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["bench"] == "pipeline" and doc["reference"] == "bare"
    names = {c["name"] for c in doc["cases"]}
    expected = {"tick: strategy SDK", "tick: bare poll_one",
                "fanout 1: strategy SDK", "fanout 1: bare poll_one", "fanout 2: strategy SDK", "fanout 2: bare poll_one"}
    for rate in (500, 2000):
        expected |= {f"order@{rate} {n}" for n in ("pipeline", "bare", "sdk submit", "offer->sequenced", "bare offer->ack")}
    assert names == expected
    for c in doc["cases"]:
        assert c["count"] > 0 and c["skipped"] is None, c["name"]
        assert c["p50"] is not None and c["p50"] <= c["p99"] <= c["max"], c["name"]
    by = {c["name"]: c for c in doc["cases"]}
    # ratios against the bare peer of the same group, in the same run
    for name in ("tick: strategy SDK", "order@500 pipeline", "order@2000 pipeline", "fanout 2: strategy SDK"):
        assert by[name]["peer_ratio"] is not None and by[name]["peer_ratio"] > 0, name
    # the tick part: one order per tick from each reader, every tick read in sequence
    tick = by["tick: strategy SDK"]["extra"]
    # (a bare read can find bytes the driver already cleaned: poll_one hands out a view of a consumed
    # fragment; counted as unreadable, and then its order is not sent)
    assert tick["sdk_orders"] == tick["bare_orders"] + tick["bare_unreadable"] == tick["ticks"]
    assert tick["sdk_gaps"] == tick["sdk_duplicates"] == tick["callback_errors"] == 0
    # the order part: every order the pipeline offered was sequenced, none refused
    for rate in (500, 2000):
        e = by[f"order@{rate} pipeline"]["extra"]
        assert e["offered"] > 0 and e["unanswered"] == 0 and e["rejected"] == 0 and e["denied"] == 0, e
        assert by[f"order@{rate} bare"]["extra"]["unanswered"] == 0
    # the fan-out: each strategy received every published message once, through the SDK and the bare loop
    for n in (1, 2):
        e = by[f"fanout {n}: strategy SDK"]["extra"]
        assert e["published"] > 0 and len(e["per_strategy"]) == n
        assert by[f"fanout {n}: strategy SDK"]["throughput"] > 0
        for s in e["per_strategy"]:
            assert s["gaps"] == s["duplicates"] == s["missing"] == s["malformed"] == 0, s
            assert s["delivered"] == s["received"] == s["bare_received"] == e["published"] and s["kept_up"], s
    assert (tmp_path / "h" / "tick_strategy_SDK.hgrm").exists()
    assert "tick: strategy SDK" in r.stdout and "fanout 2: bare poll_one" in r.stdout
    assert _ours() <= before, "a /dev/shm directory was left behind"


@pytest.mark.parametrize("args, message", [
    (["--parts", "tick,bogus"], "unknown part: option=--parts value='tick,bogus'"),
    (["--rates", "1000,fast"], "bad rate (orders/s): option=--rates value='fast'"),
    (["--rates", "0"], "bad rate (orders/s): option=--rates value=0 expected=1..1000000"),
    (["--strategies", "1,99"], "bad strategy count: option=--strategies value=99 expected=1..16"),
    (["--seconds", "0"], "bad duration: option=--seconds value=0.0"),
    (["--json", "/nonexistent-dir/x.json"], "output path is not writable"),
])
def test_bad_option_exits_nonzero_with_a_message_and_no_traceback(args, message):
    r = _bench(*args, timeout=60)
    assert r.returncode == 2
    assert message in r.stderr and "fault=user" in r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_sigterm_mid_run_kills_every_child_and_removes_its_directories(procs):
    before = _ours()
    p = procs.start([sys.executable, "-m", "tickline", "bench", "pipeline", "--parts", "fanout", "--strategies", "2",
                     "--seconds", "30"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        kids: set[int] = set()
        while time.monotonic() < deadline and len(kids) < 4:  # aeronmd, the feed and two strategies
            kids |= set(_children_of(p.pid))
            time.sleep(0.05)
        assert len(kids) >= 4, kids
        time.sleep(0.5)
        p.send_signal(signal.SIGTERM)
        p.wait(60)
        assert p.returncode == 130  # stopped as by Ctrl-C
        for pid in kids:
            assert not os.path.exists(f"/proc/{pid}"), pid
        assert _ours() <= before
    finally:  # whatever the test found, nothing of the run is left behind
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
