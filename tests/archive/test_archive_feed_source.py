"""The feed's archive source: market data recorded by the archive and replayed
through the feed to a strategy reaches it exactly as published (every message,
in order, each with its recorded seqNum, no gap)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from archive_helpers import recorded_to, wait_until
from tickline.archive import ArchiveClient, RecordingState
from tickline.feed import MarketDataPublisher
from tickline.strategy import Strategy, StrategyRunner, load_config
from tickline.strategy.testing import SimulatedVenue

LIVE, REPLAY = 3101, 3102
COUNT = 300


class Seen(Strategy):
    def on_start(self) -> None:
        self.seen: list[tuple[int, str, int, int, int]] = []
        self.gaps: list[tuple[int, int, int]] = []

    def on_top_of_book(self, tob: Any) -> None:
        self.seen.append((tob.seq_num, tob.symbol, tob.bid_size, tob.ask_size, tob.exchange_timestamp))

    def on_gap(self, source: int, first: int, last: int) -> None:
        self.gaps.append((source, first, last))


def publish_market_data(aeron: Any, client: ArchiveClient) -> tuple[list[tuple[int, str, int, int, int]], int]:
    """COUNT top-of-book updates on LIVE (being recorded); what was published and the recording's id."""
    pub = aeron.add_exclusive_publication("aeron:ipc", LIVE)
    d = client.wait_for_recording(LIVE, pub.session_id)
    md = MarketDataPublisher(pub)
    sent = []
    deadline = time.monotonic() + 20
    for i in range(COUNT):
        symbol = ("ESZ6", "NQZ6")[i % 2]
        while not md.top_of_book(symbol, bid=100 + i, bid_size=i + 1, ask=101 + i, ask_size=2 * i + 1, ts=1000 + i):
            assert time.monotonic() < deadline, "market data back pressured for too long"
            time.sleep(0.0005)
        sent.append((md.next_seq - 1, symbol, i + 1, 2 * i + 1, 1000 + i))
    recorded_to(client, d.recording_id, pub)
    pub.close()  # the image goes: the archive stops the recording
    wait_until(lambda: client.describe(d.recording_id).state == RecordingState.STOPPED, what="the recording to stop")
    return sent, d.recording_id


def strategy_on(aeron: Any) -> tuple[Seen, StrategyRunner]:
    cfg = load_config({"name": "replayed", "account": "ACC1", "symbols": ["ESZ6", "NQZ6"], "md_stream": REPLAY,
                       "cl_ord_id_seed": 0}, source="test.toml", env={})
    s = Seen(cfg)
    runner = StrategyRunner(s, SimulatedVenue(), aeron=aeron)
    runner.on_start()
    return s, runner


def run_to(runner: StrategyRunner, s: Seen, count: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while len(s.seen) < count:
        assert time.monotonic() < deadline, f"the strategy saw {len(s.seen)} of {count} messages"
        if runner.do_work() == 0:
            time.sleep(0.001)
    end = time.monotonic() + 0.2  # nothing more (no duplicate) arrives
    while time.monotonic() < end:
        runner.do_work()


def assert_exactly(s: Seen, runner: StrategyRunner, sent: list) -> None:
    assert s.seen == sent
    assert [m[0] for m in s.seen] == list(range(1, COUNT + 1))
    assert s.gaps == []
    c = runner.decoder.counters
    assert (c.gaps, c.missing, c.duplicates) == (0, 0, 0)


def test_archive_source_by_recording_id_replays_every_message_to_a_strategy(aeron, archive_client):
    from tickline.feed.replay import ArchiveSource

    archive_client.start_recording("aeron:ipc", LIVE)
    sent, rid = publish_market_data(aeron, archive_client)
    s, runner = strategy_on(aeron)
    source = ArchiveSource(aeron, recording_id=rid)
    try:
        source.start("aeron:ipc", REPLAY)
        run_to(runner, s, COUNT)
    finally:
        source.close()
        runner.on_close()
    assert_exactly(s, runner, sent)


def test_archive_source_refuses_an_unknown_recording_naming_it(aeron, archive_client):
    from tickline.feed.replay import ArchiveSource, ReplaySourceError

    source = ArchiveSource(aeron, recording_id=77)
    try:
        with pytest.raises(ReplaySourceError, match="recording_id=77 fault=user"):
            source.start("aeron:ipc", REPLAY)
    finally:
        source.close()
    with pytest.raises(ReplaySourceError, match="recording_id or the stream_id"):
        ArchiveSource(aeron)


def _wait_line(p: subprocess.Popen, text: str, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        line = p.stderr.readline()
        assert line, f"process exited before {text!r}: rc={p.poll()}"
        if text in line:
            return line
        assert time.monotonic() < deadline, f"no {text!r}"


@pytest.mark.multiprocess
def test_recorded_by_the_topology_archive_and_replayed_by_tickline_feed_replay(procs, driver, aeron, archive_dir: Path):
    # the archive as `tickline up` starts it: its [archive] section records LIVE from the start
    topology = archive_dir.parent / "topology.toml"
    topology.write_text(f'[archive]\ndir = "{archive_dir}"\naeron_dir = "{driver.dir}"\nsegment_length = "128k"\n'
                        f'record = [{{ channel = "aeron:ipc", stream = {LIVE} }}]\n')
    archive = procs.start([sys.executable, "-m", "tickline", "archive", "run", "--config", str(topology)],
                          stderr=subprocess.PIPE, text=True)
    _wait_line(archive, " INFO tickline.archive ready ")
    client = ArchiveClient.connect(aeron, timeout=20.0)
    try:
        sent, rid = publish_market_data(aeron, client)  # nobody asked for this recording: the section did
    finally:
        client.close()
    s, runner = strategy_on(aeron)
    try:
        feed = procs.start([sys.executable, "-m", "tickline", "feed", "replay", "--aeron-dir", driver.dir,
                            "--from-stream", str(LIVE), "--stream", str(REPLAY), "--seconds", "30"],
                           stderr=subprocess.PIPE, text=True)
        line = _wait_line(feed, " INFO tickline.feed replay recording_id=")
        assert f"recording_id={rid} " in line
        run_to(runner, s, COUNT)
    finally:
        runner.on_close()
    assert_exactly(s, runner, sent)
