"""Fixtures for the feed tests: an embedded media driver with one client."""

from __future__ import annotations

from typing import Any, Iterator

import pytest


@pytest.fixture
def aeron() -> Iterator[Any]:
    from tickline.transport import Aeron, MediaDriver

    with MediaDriver.embedded() as driver, Aeron(driver.dir) as client:
        yield client
