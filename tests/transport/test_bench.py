"""`tickline bench ping` runs end to end and reports every case against the C
reference (figures are not asserted: timing belongs to benchmarks)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.multiprocess


def test_bench_ping_reports_python_pull_and_c_for_every_case(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    r = subprocess.run(
        [sys.executable, "-m", "tickline", "bench", "ping", "--udp", "--count", "2000", "--warmup", "200",
         "--throughput-count", "200000", "--batch", "64", "--json", str(out),
         "--hgrm", str(tmp_path / "h"), "--plot", str(tmp_path / "ping.png")],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(out.read_text())
    assert report["schema"] == "tickline-bench/1" and report["bench"] == "ping" and report["reference"] == "c"
    latency = [x for x in report["cases"] if not x["name"].startswith("throughput/")]
    assert {x["name"] for x in latency} == {f"{t}/{i}/{s}" for t in ("ipc", "udp") for i in ("python", "python-pull", "c")
                                             for s in (32, 256)}
    for x in latency:
        assert x["count"] == 2000
        assert 0 < x["p50"] <= x["p90"] <= x["p99"] <= x["p99_9"] <= x["max"]
        assert (x["peer_ratio"] is None) == (x["label"] == "c")
    throughput = [x for x in report["cases"] if x["name"].startswith("throughput/")]
    assert [t["label"] for t in throughput] == ["c", "python", "python-batch"]
    assert all(t["throughput"] > 0 for t in throughput)
    assert (tmp_path / "h" / "ipc_python-pull_32.hgrm").exists() and (tmp_path / "ping.png").stat().st_size > 0
    assert "core-to-core cache-line RTT" in r.stdout and "vs C p50" in r.stdout


def test_bench_ping_rejects_bad_sizes() -> None:
    r = subprocess.run([sys.executable, "-m", "tickline", "bench", "ping", "--sizes", "4"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0
    assert "message size out of range: size=4 expected=8..65536" in r.stderr
