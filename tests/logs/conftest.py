"""Helpers for the daemons' log tests: run a real command, stop it with SIGTERM, read its lines."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

# 2026-12-06T02:07:01.123456Z INFO tickline.cluster started member=1 ...
LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) (DEBUG|INFO|WARNING|ERROR|CRITICAL) (tickline(?:\.[\w.-]+)?) (\S+)(.*)$")
FIELD = re.compile(r'(\w[\w.-]*)=("(?:[^"\\]|\\.)*"|\S*)')


def events(text: str) -> list[tuple[str, str, str, dict[str, str]]]:
    """(level, component, event, fields) of every line in the common form; other lines are left out."""
    out = []
    for line in text.splitlines():
        m = LINE.match(line)
        if m:
            out.append((m.group(2), m.group(3), m.group(4), dict(FIELD.findall(m.group(5)))))
    return out


def event(text: str, level: str, component: str, name: str, **fields: str) -> dict[str, str]:
    """The first line that is ``name`` at ``level`` from ``component`` with these field values (fails if none)."""
    for lvl, comp, ev, kv in events(text):
        if (lvl, comp, ev) == (level, component, name) and all(kv.get(k) == v for k, v in fields.items()):
            return kv
    raise AssertionError(f"no {level} {component} {name} {fields} line in:\n{text}")


class Run:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen] = []
        self.n = 0

    def __call__(self, argv: list[str], ready: Callable[[str], bool], env: dict[str, str] | None = None,
                 wait: float = 60.0, stop: bool = True) -> tuple[int, str, str]:
        """``tickline ARGV`` until ``ready(stderr so far)``, then SIGTERM; (exit code, stdout, stderr)."""
        self.n += 1
        out, err = self.tmp / f"run{self.n}.out", self.tmp / f"run{self.n}.err"
        with open(out, "wb") as o, open(err, "wb") as e:
            p = subprocess.Popen([sys.executable, "-m", "tickline", *argv], stdout=o, stderr=e, stdin=subprocess.DEVNULL,
                                 env={**os.environ, **(env or {})})
        self.procs.append(p)
        deadline = time.monotonic() + wait
        while not ready(err.read_text(errors="replace")):
            if p.poll() is not None:  # exited: what it wrote before is all there is
                assert not stop or ready(err.read_text(errors="replace")), f"exited {p.returncode} before ready:\n{err.read_text()}"
                break
            assert time.monotonic() < deadline, f"not ready within {wait} s:\n{err.read_text()}"
            time.sleep(0.05)
        if stop and p.poll() is None:
            p.send_signal(signal.SIGTERM)
        rc = p.wait(timeout=wait)
        return rc, out.read_text(errors="replace"), err.read_text(errors="replace")

    def kill_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()


@pytest.fixture
def run(tmp_path: Path):
    r = Run(tmp_path)
    yield r
    r.kill_all()
