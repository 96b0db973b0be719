"""Helpers the strategy tests share: the example market maker's config and process."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

TICKLINE = [sys.executable, "-m", "tickline"]


def mm_config(tmp_path: Path, stream: int, name: str = "mm1", **extra: str) -> Path:
    """``tmp_path/mm.toml``: strategy ``name`` quoting ESZ6 from market data stream ``stream``
    through the simulated gateway; ``extra`` adds ``[strategy]`` keys (values as TOML text)."""
    path = tmp_path / "mm.toml"
    lines = ['[strategy]', f'name = "{name}"', 'account = "ACC1"', 'symbols = ["ESZ6"]', f"md_stream = {stream}",
             *[f"{k} = {v}" for k, v in extra.items()],
             '[strategy.gateway]', 'kind = "simulated"', '[strategy.params]', 'spread = 0.02', 'size = 1']
    path.write_text("\n".join(lines) + "\n")
    return path


def start_market_maker(cfg: Path, aeron_dir: str, status: Path, env: dict[str, str]) -> "subprocess.Popen[str]":
    """``tickline strategy run`` of the example market maker (at most 60 s), returned once its status
    file exists (written from the first duty cycle on: subscribed by then); killed if it fails first."""
    strat = subprocess.Popen(TICKLINE + ["strategy", "run", "tickline.strategy.examples.market_maker:MarketMaker",
                                         "--config", str(cfg), "--aeron-dir", aeron_dir, "--seconds", "60",
                                         "--status-file", str(status)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while not status.exists():
            assert strat.poll() is None and time.monotonic() < deadline, strat.communicate()[1]
            time.sleep(0.05)
    except BaseException:
        if strat.poll() is None:
            strat.kill()
            strat.wait()
        raise
    return strat
