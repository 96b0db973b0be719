"""``tickline strategy run`` and ``tickline feed synthetic/tail`` as real processes on one driver."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from strategy_helpers import TICKLINE, mm_config, start_market_maker


def published_of(stdout: str) -> int:
    return int(json.loads(stdout.strip().splitlines()[-1])["published"])


@pytest.mark.multiprocess
def test_strategy_run_trades_a_synthetic_feed_and_reports_its_counters(tmp_path: Path) -> None:
    from tickline.transport import MediaDriver

    cfg = mm_config(tmp_path, 1201)
    status = tmp_path / "status.json"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with MediaDriver.embedded() as driver:
        strat = start_market_maker(cfg, driver.dir, status, env)
        try:
            feed = subprocess.run(TICKLINE + ["feed", "synthetic", "--stream", "1201", "--rate", "300", "--seconds", "3",
                                              "--aeron-dir", driver.dir, "--seed", "5"],
                                  capture_output=True, text=True, env=env, timeout=60)
            deadline = time.monotonic() + 30
            while json.loads(status.read_text())["counters"]["md"]["received"] < published_of(feed.stdout):
                assert time.monotonic() < deadline
                time.sleep(0.1)
            strat.terminate()  # SIGTERM: a clean stop, the final counters on stdout
            out, err = strat.communicate(timeout=60)
        finally:
            if strat.poll() is None:
                strat.kill()
                strat.wait()
    assert feed.returncode == 0, feed.stderr
    published = published_of(feed.stdout)
    assert strat.returncode == 0, err
    final: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    md = final["counters"]["md"]
    assert published > 0 and md["delivered"] == published  # subscribed before the feed started: every message
    assert (md["gaps"], md["duplicates"], md["malformed"]) == (0, 0, 0)
    assert final["counters"]["sent"] > 0 and final["counters"]["orders"]["malformed"] == 0
    assert json.loads(status.read_text())["running"] is False


def test_strategy_run_refuses_a_bad_config_naming_the_key(tmp_path: Path) -> None:
    cfg = mm_config(tmp_path, 1202, fragment_limit="0")
    proc = subprocess.run(TICKLINE + ["strategy", "run", "tickline.strategy.examples.market_maker:MarketMaker",
                                      "--config", str(cfg)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert f"file={cfg} key=strategy.fragment_limit reason=must be 1..65536: value=0 fault=user" in proc.stderr
    proc = subprocess.run(TICKLINE + ["strategy", "run", "tickline.strategy.examples.market_maker:Nope",
                                      "--config", str(cfg)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "not a Strategy subclass" in proc.stderr
