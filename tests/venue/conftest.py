"""Fixtures of the venue tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def aeron():
    from tickline.transport import Aeron, MediaDriver

    d = MediaDriver.embedded(options={"aeron.ipc.term.buffer.length": "64k"})
    a = Aeron(d.dir)
    yield d, a
    a.close()
    d.close()
