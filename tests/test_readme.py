"""The README's quick-start sample runs as written."""

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).parent.parent / "README.md"


def test_quickstart_runs_and_prints_what_the_readme_says() -> None:
    text = README.read_text()
    block = re.search(r"<!-- quickstart[^>]*-->\s*```python\n(.*?)```\s*<!-- /quickstart -->", text, re.S)
    assert block, "README lost its quick-start block"
    expected = re.search(r"<!-- /quickstart -->\s*\nprints `(.*?)`", text)
    assert expected
    r = subprocess.run([sys.executable, "-c", block.group(1)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == expected.group(1)


def test_readme_setup_commands_are_the_makefile_targets() -> None:
    text = README.read_text()
    makefile = (README.parent / "Makefile").read_text()
    ci = (README.parent / ".ci" / "run").read_text()
    assert "make demo" in text and "make test" in text
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert re.search(r"^make test$", ci, re.M)
