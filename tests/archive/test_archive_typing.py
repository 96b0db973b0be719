"""The archive package type-checks under mypy --strict against the extension's stub."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_mypy_strict_is_clean(tmp_path: Path) -> None:
    pkg = tmp_path / "tickline"
    pkg.mkdir()
    for name in ("__init__.py", "cli.py", "__main__.py", "_aeron.pyi", "py.typed"):
        os.symlink(ROOT / "tickline" / name, pkg / name)
    for sub in ("transport", "codecs", "archive"):
        os.symlink(ROOT / sub, pkg / sub)
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--follow-imports=silent", "tickline/archive"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    checked = re.search(r"Success: no issues found in (\d+) source files", r.stdout)
    assert checked and int(checked.group(1)) >= 10, r.stdout
