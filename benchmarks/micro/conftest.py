"""Fixtures of the micro-benchmarks (``make bench-micro``; never collected by ``make test``, whose
testpaths is ``tests``): one embedded media driver, client, IPC publication and subscription per
module, and the generated market-data flyweights."""

from __future__ import annotations

import importlib.util
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    """An invoker-mode embedded driver: no threads of its own, turned by the benchmark between rounds, so
    the publication limit moves on when the benchmark says and the load on the machine cannot stall it."""
    from tickline.transport import MediaDriver
    from tickline.transport.driver import unique_dir

    d = unique_dir("tickline-microbench")
    md = MediaDriver.embedded(d, invoker=True, options={"aeron.ipc.term.buffer.length": "1m"})
    try:
        yield md
    finally:
        md.close()
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def aeron(driver: Any) -> Iterator[Any]:
    from tickline.transport import Aeron

    a = Aeron(driver.dir, timeout=5.0, invoker=True, wait_hook=driver.do_work)
    try:
        yield a
    finally:
        a.close()


class Ipc:
    """A connected IPC publication and subscription on stream 1001, and the duty cycle that turns the
    driver and the client (``settle()``: drain, then turn until the publication may send a round again)."""

    def __init__(self, aeron: Any, driver: Any) -> None:
        self.turn = aeron.duty_cycle(driver)
        self.sub = aeron.add_subscription("aeron:ipc", 1001)
        self.pub = aeron.add_publication("aeron:ipc", 1001)
        deadline = time.monotonic() + 5.0
        while not self.pub.is_connected:
            assert time.monotonic() < deadline, "IPC publication never connected"
            self.turn()

    def settle(self) -> None:
        while self.sub.drain(1024):
            pass
        for _ in range(3):
            self.turn()


@pytest.fixture(scope="module")
def ipc(aeron: Any, driver: Any) -> Ipc:
    return Ipc(aeron, driver)


@pytest.fixture(scope="module")
def md(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """The generated flyweights of schemas/market_data.xml, imported from the file as a user would."""
    from tickline.codecs import load_builtin
    from tickline.codecs.gen_python import generate

    schema = load_builtin("market_data.xml")
    name = f"md_bench_{uuid.uuid4().hex[:8]}"
    path = Path(tmp_path_factory.mktemp("gen")) / f"{name}.py"
    path.write_text(generate(schema, "market_data.xml"), encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
