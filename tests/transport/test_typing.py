"""The public transport API type-checks under mypy --strict against the extension's stub."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

USAGE = '''
from tickline.transport import Aeron, BufferClaim, FragmentAssembler, Header, MediaDriver, OfferResult

def run() -> int:
    with MediaDriver.embedded() as driver, Aeron(driver.dir) as aeron:
        pub = aeron.add_publication("aeron:ipc", 1)
        sub = aeron.add_subscription("aeron:ipc", 1)
        claim = BufferClaim()
        if pub.try_claim(8, claim) > 0:
            claim.commit()
        def on(buffer: memoryview, header: Header) -> None:
            print(header.position, bytes(buffer))
        n: int = sub.poll(FragmentAssembler(on), 10) + sub.poll(on, 10)
        return n if pub.offer(b"x") != OfferResult.BACK_PRESSURED else 0
'''


def test_mypy_strict_is_clean(tmp_path: Path) -> None:
    # mypy reads the sources through the same mapping the wheel uses.
    pkg = tmp_path / "tickline"
    pkg.mkdir()
    for name in ("__init__.py", "cli.py", "__main__.py", "_aeron.pyi", "py.typed", "benchkit.py"):
        os.symlink(ROOT / "tickline" / name, pkg / name)
    os.symlink(ROOT / "transport", pkg / "transport")
    (tmp_path / "usage.py").write_text(USAGE)
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "tickline/transport", "usage.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    checked = re.search(r"Success: no issues found in (\d+) source files", r.stdout)
    assert checked and int(checked.group(1)) >= 9, r.stdout  # the transport package and the usage sample
