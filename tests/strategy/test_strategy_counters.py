"""A running strategy publishes its orders by outcome as Aeron counters: ``tickline strategy
run`` and ``tickline feed synthetic`` as real processes on one driver, ``tickline stat``
reading the strategy's counters while it runs (the same numbers as its status file), and
none once it stopped."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from strategy_helpers import TICKLINE, mm_config, start_market_maker


def strategy_counters(dir: str) -> dict[str, int]:
    r = subprocess.run(TICKLINE + ["stat", "--dir", dir, "--no-errors"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = {}
    for line in r.stdout.splitlines():
        m = re.match(r"^ *\d+: +(-?[\d,]+) - strategy (?:orders|callback errors): strategy=mm2 outcome=(\w+)$", line)
        if m:
            out[m.group(2)] = int(m.group(1).replace(",", ""))
    return out


@pytest.mark.multiprocess
def test_strategy_counters_show_in_stat_while_it_runs(tmp_path: Path) -> None:
    from tickline.transport import MediaDriver

    cfg = mm_config(tmp_path, 1251, name="mm2")
    status = tmp_path / "status.json"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with MediaDriver.embedded() as driver:
        strat = start_market_maker(cfg, driver.dir, status, env)
        try:
            # registered at start, before any order
            assert strategy_counters(driver.dir) == {"sent": 0, "denied": 0, "acked": 0, "filled": 0, "canceled": 0,
                                                     "replaced": 0, "rejected": 0, "callback_error": 0}
            feed = subprocess.run(TICKLINE + ["feed", "synthetic", "--stream", "1251", "--rate", "200", "--seconds", "2",
                                              "--aeron-dir", driver.dir, "--seed", "7"],
                                  capture_output=True, text=True, env=env, timeout=60)
            assert feed.returncode == 0, feed.stderr

            def agree():  # the feed has ended: the counters settle at the status file's numbers
                c = strategy_counters(driver.dir)
                s = json.loads(status.read_text())["counters"]
                return c if c.get("sent", 0) > 0 and c["sent"] == s["sent"] and c["denied"] == s["denied"] else None

            got = None
            deadline = time.monotonic() + 30
            while got is None and time.monotonic() < deadline:
                got = agree()
                time.sleep(0.2)
            assert got is not None, (strategy_counters(driver.dir), status.read_text())
            assert got["acked"] > 0 and got["acked"] + got["rejected"] <= got["sent"]
            strat.terminate()
            out, err = strat.communicate(timeout=60)
            assert strat.returncode == 0, err
            deadline = time.monotonic() + 10  # closed when the strategy stopped (the driver frees them at once)
            while strategy_counters(driver.dir) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert strategy_counters(driver.dir) == {}
        finally:
            if strat.poll() is None:
                strat.kill()
                strat.wait()
