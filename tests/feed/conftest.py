"""Fixtures for the strategy tests: an embedded driver with one client, and a polling helper."""

from __future__ import annotations

import time
from typing import Any, Callable, Iterator

import pytest


@pytest.fixture
def aeron() -> Iterator[Any]:
    from tickline.transport import Aeron, MediaDriver

    with MediaDriver.embedded() as driver, Aeron(driver.dir) as client:
        yield client


def run_until(step: Callable[[], object], done: Callable[[], bool], timeout: float = 10.0) -> None:
    """Turn ``step`` until ``done()``; fail (not hang) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        step()
