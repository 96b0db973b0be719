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
    # one round a rate (--quick): its ratio is the table's, and the CPU each phase kept busy is said
    summary = {s["rate"]: s for s in doc["extra"]["order_summary"]}
    assert sorted(summary) == [500, 2000]
    for rate, s in summary.items():
        assert len(s["round_ratios"]) == 1 and s["median_ratio"] == s["round_ratios"][0] > 0, s
        assert abs(s["median_ratio"] - by[f"order@{rate} pipeline"]["peer_ratio"]) < 0.01, s
        assert set(s["cores_busy"]) == {"bare", "pipeline"} and all(v > 0 for v in s["cores_busy"].values()), s
        assert f"order@{rate}: pipeline/bare p50 by round" in r.stdout
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
    (["--rounds", "0"], "bad round count: option=--rounds value=0 expected=1..20"),
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


def _round(p50_us: float, cores: float) -> dict:
    return {"p50_us": p50_us, "offered": 10, "unanswered": 0, "total_cores": cores}


def test_order_summary_takes_the_median_of_each_rounds_own_ratio():
    from tickline import benchkit
    from tickline.topology.bench import _order_summary, _summary_line

    report = benchkit.Report("pipeline", reference="bare")
    report.case("order@10000 bare", label="bare").extra["rounds"] = [_round(500, 1.7), _round(1000, 1.8), _round(600, 1.9)]
    report.case("order@10000 pipeline", label="pipeline").extra["rounds"] = [
        _round(550, 1.75), _round(1300, 1.8), _round(900, 1.85)]
    s = _order_summary(report, 10000)
    # by round 1.1, 1.3, 1.5: the median is the middle round's, not the ratio of pooled figures
    assert s["round_ratios"] == [1.1, 1.3, 1.5] and s["median_ratio"] == 1.3 and not s["met"]
    assert s["cores_busy"] == {"bare": 1.8, "pipeline": 1.8}
    line = _summary_line(s)
    assert "by round 1.10, 1.30, 1.50" in line and "median 1.30x, target < 1.2x: NOT met" in line
    report.case("order@10000 pipeline").extra["rounds"] = [_round(500, 1.0), _round(1000, 1.0), _round(700, 1.0)]
    s = _order_summary(report, 10000)
    assert s["median_ratio"] == 1.0 and s["met"] and "target < 1.2x: met" in _summary_line(s)
