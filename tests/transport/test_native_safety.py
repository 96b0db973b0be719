"""Hostile use of the native binding from Python: objects that were never
constructed, close() from inside a poll, and views that outlive their memory.

Each call that used to kill the interpreter (SIGSEGV, heap use-after-free)
runs in a child process first, so a regression shows as a failed test naming
the signal instead of a dead test run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from typing import Callable

import pytest

from tickline import _aeron
from tickline.transport import Aeron, BufferClaim, ClosedError, FragmentAssembler, MediaDriver


def run_child(code: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Runs code in a fresh interpreter; it prints what it saw."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout)


def assert_clean_exit(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, (
        f"child died: returncode={proc.returncode} (negative: killed by that signal)\n"
        f"stdout={proc.stdout}\nstderr={proc.stderr[-3000:]}"
    )


def wait_for(cond: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.001)


# ---------------------------------------------------------------- objects never constructed (item 8)

UNCONSTRUCTED = {
    "publication.offer": "A.Publication.__new__(A.Publication).offer(b'x')",
    "publication.try_claim": "A.Publication.__new__(A.Publication).try_claim(8, A.BufferClaim())",
    "publication.offer_batch": "A.Publication.__new__(A.Publication).offer_batch([b'x'])",
    "publication.close": "A.Publication.__new__(A.Publication).close()",
    "subscription.poll": "A.Subscription.__new__(A.Subscription).poll(lambda b, h: None, 1)",
    "subscription.poll_one": "A.Subscription.__new__(A.Subscription).poll_one()",
    "subscription.last_header": "A.Subscription.__new__(A.Subscription).last_header",
    "subscription.images": "A.Subscription.__new__(A.Subscription).images()",
    "subscription.close": "A.Subscription.__new__(A.Subscription).close()",
    "client.turn": "A.Client.__new__(A.Client).turn()",
    "client.add_publication": "A.Client.__new__(A.Client).add_publication('aeron:ipc', 1)",
    "client.close": "A.Client.__new__(A.Client).close()",
    "driver.do_work": "A.EmbeddedDriver.__new__(A.EmbeddedDriver).do_work()",
    "driver.close": "A.EmbeddedDriver.__new__(A.EmbeddedDriver).close()",
    "base_new.offer": "A.Publication.__mro__[1].__new__(A.Publication).offer(b'x')",
    "mixed.offer": "Mixed.__new__(Mixed).offer(b'x')",
    "mixed.poll": "Mixed.__new__(Mixed).poll(lambda b, h: None, 1)",
    "mixed.last_header": "Mixed.__new__(Mixed).last_header",
    "mixed.close": "Mixed.__new__(Mixed).close()",
}


@pytest.mark.parametrize("case", sorted(UNCONSTRUCTED))
def test_objects_never_constructed_raise_type_error(case: str) -> None:
    proc = run_child(f"""
        from tickline import _aeron as A

        class Mixed(A.Publication, A.Subscription):  # two binding types in one subclass
            pass

        try:
            {UNCONSTRUCTED[case]}
        except TypeError as e:
            print("TypeError:", e)
        else:
            print("no error")
    """)
    assert_clean_exit(proc)
    assert proc.stdout.startswith("TypeError:"), proc.stdout
    if not case.startswith("base_new"):  # CPython's own "is not safe" check answers that one
        assert "fault=user" in proc.stdout


def test_fast_paths_check_their_object_type(aeron: Aeron) -> None:
    pub = aeron.add_publication("aeron:ipc", 7)
    sub = aeron.add_subscription("aeron:ipc", 7)
    with pytest.raises(TypeError):
        _aeron.Publication.offer(sub, b"x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _aeron.Subscription.poll(pub, lambda b, h: None, 1)  # type: ignore[arg-type]
