"""`tickline bench fix` runs end to end, --aeron included, and prints every row.

A functional test with a small count: it checks that each path completes and
is reported, never how fast (timing belongs to the benchmark itself).
"""

import re
import subprocess
import sys

from tickline.fix_gateway.bench import AERON_ROW, ROWS


def test_bench_fix_with_aeron_prints_every_row():
    r = subprocess.run([sys.executable, "-m", "tickline.cli", "bench", "fix", "--count", "40", "--warmup", "5",
                        "--aeron", "--runs", "2"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout
    assert "runs=2 (medians)" in out and "validation: on" in out
    for name, _, what in ROWS + [AERON_ROW]:
        row = re.search(rf"^{re.escape(name)}\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)\s+(\d+)$", out, re.M)
        assert row is not None, f"row missing: {name}\n{out}"
        assert all(float(x) > 0 for x in row.groups())
        assert f"  {name}: {what}" in out
    assert out.count("run ") >= 2  # one progress line per run
