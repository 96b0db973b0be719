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
         "--throughput-count", "200000", "--batch", "64", "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    [report] = json.loads(out.read_text())
    cases = {(x["transport"], x["impl"], x["size"]) for x in report["latency"]}
    assert cases == {(t, i, s) for t in ("ipc", "udp") for i in ("python", "python-pull", "c") for s in (32, 256)}
    for x in report["latency"]:
        assert x["count"] == 2000
        assert 0 < x["p50_us"] <= x["p90_us"] <= x["p99_us"] <= x["p999_us"] <= x["max_us"]
    assert [t["impl"] for t in report["throughput"]] == ["c", "python", "python-batch"]
    assert all(t["messages"] == 200000 and t["msgs_per_s"] > 0 for t in report["throughput"])
    assert "core-to-core cache-line RTT" in r.stdout and "vs C p50" in r.stdout


def test_bench_ping_rejects_bad_sizes() -> None:
    r = subprocess.run([sys.executable, "-m", "tickline", "bench", "ping", "--sizes", "4"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0
    assert "message size out of range: size=4 expected=8..65536" in r.stderr
