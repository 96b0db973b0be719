"""The public API type-checks under mypy --strict against the extension's stub, as the
installed package (an editable install included) presents it to a type checker."""

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
    for name in ("__init__.py", "cli.py", "__main__.py", "_aeron.pyi", "py.typed", "_lazy.py", "logs.py", "benchkit.py"):
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


PUBLIC = ("tickline.transport", "tickline.fix_gateway", "tickline.cluster", "tickline.codecs", "tickline.archive",
          "tickline.feed", "tickline.strategy")


def test_every_public_name_has_a_real_type_for_mypy_from_the_installed_package(tmp_path: Path) -> None:
    # `from tickline.X import Name` as a user writes it, resolved the way mypy finds an installed
    # package (here the editable install of `make install`): a lazy module __getattr__ or a
    # package mypy can't see (no py.typed) would reveal Any.
    import importlib

    lines, expected = [], []
    for i, mod in enumerate(PUBLIC):
        names = importlib.import_module(mod).__all__
        assert names, mod
        lines.append(f"from {mod} import {', '.join(f'{n} as m{i}_{n}' for n in names)}")
        expected += [(f"{mod}.{n}", f"m{i}_{n}") for n in names]
    lines += [f"reveal_type({alias})" for _, alias in expected]
    lines.append("import tickline.transport")
    lines.append("tickline.transport.NoSuchName")  # a typo is an error, not Any
    (tmp_path / "reveal.py").write_text("\n".join(lines) + "\n")
    r = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", "reveal.py"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert "missing library stubs or py.typed marker" not in out, out
    revealed = re.findall(r'^reveal\.py:(\d+): note: Revealed type is "(.*)"$', out, re.M)
    assert len(revealed) == len(expected), out
    anys = [(expected[int(line) - len(PUBLIC) - 1][0], t) for line, t in revealed if t == "Any"]
    assert not anys, anys
    errors = [ln for ln in out.splitlines() if ": error:" in ln]
    assert len(errors) == 1 and 'has no attribute "NoSuchName"' in errors[0], out
