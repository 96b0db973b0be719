"""`tickline bench fix` runs end to end, --aeron included, prints every row and writes the
common bench JSON and HDR histograms.

A functional test with a small count: it checks that each path completes and
is reported, never how fast (timing belongs to the benchmark itself).
"""

import json
import re
import subprocess
import sys

from tickline.fix_gateway.bench import AERON_ROW, ROWS


def test_bench_fix_with_aeron_prints_every_row(tmp_path):
    out_json, hgrm = tmp_path / "fix.json", tmp_path / "hgrm"
    r = subprocess.run([sys.executable, "-m", "tickline.cli", "bench", "fix", "--count", "40", "--warmup", "5",
                        "--aeron", "--runs", "2", "--json", str(out_json), "--hgrm", str(hgrm)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout
    assert "runs=2 (medians)" in out and "validation: on" in out
    for name, _, what in ROWS + [AERON_ROW]:
        row = re.search(rf"^{re.escape(name)}\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)\s+(\d+)$", out, re.M)
        assert row is not None, f"row missing: {name}\n{out}"
        assert all(float(x) > 0 for x in row.groups())
        assert f"  {name}: {what}" in out
    assert out.count("run ") >= 2  # one progress line per run

    doc = json.loads(out_json.read_text())
    assert doc["schema"] == "tickline-bench/1" and doc["bench"] == "fix"
    assert doc["reference"] == ROWS[0][0]
    cases = {c["label"]: c for c in doc["cases"]}
    assert sorted(cases) == sorted(name for name, _, _ in ROWS + [AERON_ROW])
    for label, case in cases.items():
        assert case["count"] == 2 * 40, label  # every measured round trip of both runs
        assert len(case["runs"]) == 2 and all(run["count"] == 40 for run in case["runs"])
        assert 0 < case["p50"] <= case["p99"] <= case["max"]
        assert case["throughput"] > 0 and len(case["extra"]["burst_msgs_per_s"]) == 2
        assert (case["peer_ratio"] is None) == (label == ROWS[0][0])
        assert (hgrm / f"{case['name']}.hgrm").exists()


def test_bench_fix_refuses_bad_counts_without_a_traceback():
    r = subprocess.run([sys.executable, "-m", "tickline.cli", "bench", "fix", "--count", "0"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "bad bench arguments" in r.stderr and "count=0" in r.stderr and "Traceback" not in r.stderr
