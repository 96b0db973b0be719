"""``tickline bench archive`` end to end, at a size a CI run affords: every
measurement runs (publisher on/off, recording vs dd, replay vs live,
replay-merge), every message arrives, and the output is benchkit's JSON with
the ratios.  No figure is asserted: timing is not a unit test's business."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_bench_archive_runs_every_measurement_and_writes_the_ratios(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    r = subprocess.run([sys.executable, "-m", "tickline", "bench", "archive", "--dir", str(tmp_path), "--bytes", "1m",
                        "--merge-bytes", "2m", "--runs", "1", "--segment-length", "256k", "--term-length", "4m", "--json", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr + r.stdout
    doc = json.loads(out.read_text())
    assert doc["schema"] == "tickline-bench/1" and doc["bench"] == "archive" and doc["reference"] == "baseline"
    cases = {c["name"]: c for c in doc["cases"]}
    for size in ("32B", "1024B"):
        for name in (f"pub {size} rec off", f"pub {size} rec on", f"dd write {size}", f"record write {size}",
                     f"sub {size} live", f"sub {size} replay"):
            assert cases[name]["count"] == 1 and cases[name]["throughput"] > 0, name
        assert cases[f"pub {size} rec on"]["peer_ratio"] is not None
    merge = cases["replay-merge"]
    assert merge["extra"]["messages"] == (2 << 20) // 1056  # every message of the recording, through ReplayMerge
    ratios = doc["extra"]["ratios"]
    assert set(ratios) == {f"{k}_{s}" for k in ("publisher_on_off", "record_write_vs_dd", "replay_vs_live") for s in (32, 1024)}
    assert all(v > 0 for v in ratios.values())
    assert "record_write_vs_dd_1024" in r.stdout and "target >= 0.90" in r.stdout
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("tickline-bench-archive-")]  # its directory is removed


def test_bench_archive_refuses_an_unusable_directory(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "tickline", "bench", "archive", "--dir", str(tmp_path / "missing")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "bench directory is not a writable directory" in r.stderr and "fault=user" in r.stderr
