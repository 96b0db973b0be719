"""``[archive]`` in a topology file (the daemon as one of ``tickline up``'s processes, the
streams it records) and ``[feed] source = "archive"`` (the feed replays a recording):
a good file yields the processes, a bad one is refused with file, key and reason."""

from __future__ import annotations

import pytest

from test_topology_config import example, refused  # noqa: F401 (the fixture and the refusal check of the topology tests)
from tickline.topology.config import load
from tickline.topology.demo import example_topology


def _driver_dir(path: str) -> str:
    import tomllib

    with open(path, "rb") as f:
        return tomllib.load(f)["driver"]["dir"]


def with_archive(path: str, extra: str = "", record: str = '[{ channel = "aeron:ipc", stream = 1004 }]') -> str:
    with open(path, "a") as f:
        f.write(f'\n[archive]\ndir = "{path}.archive"\nrecord = {record}\n{extra}')
    return path


def replace_feed(path: str, body: str) -> str:
    text = open(path).read()
    start, end = text.index("[feed]"), text.index("[venue]")
    open(path, "w").write(text[:start] + "[feed]\n" + body + "\n\n" + text[end:])
    return path


def test_an_archive_section_starts_the_daemon_with_the_members(example):
    t = load(with_archive(example))
    p = {x.name: x for x in t.processes}["archive"]
    assert p.group == 1
    assert p.argv == ("archive", "run", "--config", t.path, "--aeron-dir", _driver_dir(example))
    assert [x.name for x in t.processes].index("archive") < [x.name for x in t.processes].index("feed")


def test_recording_a_stream_nobody_publishes_is_refused(example):
    refused(with_archive(example, record='[{ channel = "aeron:ipc", stream = 1004 }, { channel = "aeron:ipc", stream = 4242 }]'),
            "a stream nobody publishes", "key=archive.record[1]", "stream=aeron:ipc#4242", "aeron:ipc#1004(feed)")


@pytest.mark.parametrize("record, key", [
    ('"aeron:ipc"', "key=archive.record"),
    ('[{ channel = "aeron:ipc", stream = "x" }]', "key=archive.record[0].stream"),
    ('[{ channel = "aeron:ipc", stream = 1004, rate = 3 }]', "key=archive.record[0]"),
    ('[{ channel = "aeron:ipc", stream = 1004 }, { stream = 1004 }]', "key=archive.record[1]"),
])
def test_a_bad_record_entry_is_named(example, record, key):
    refused(with_archive(example, record=record), "[archive]", key)


def test_an_archive_key_nobody_reads_or_a_bad_option_is_named(example, tmp_path):
    refused(with_archive(example, extra="segment_lenght = 4\n"), "key=archive.segment_lenght")
    fresh = example_topology(str(tmp_path / "b"))
    refused(with_archive(fresh, extra='fsync = "sometimes"\n'), "key=archive.fsync", "value=sometimes")


def test_an_archive_on_another_driver_is_refused(example):
    refused(with_archive(example, extra='aeron_dir = "/dev/shm/elsewhere"\n'), "key=archive.aeron_dir", "value=/dev/shm/elsewhere")


def test_a_feed_replaying_the_archive_is_started_as_tickline_feed_replay(example):
    t = load(with_archive(replace_feed(example, 'stream_id = 1004\nsource = "archive"\nfrom_stream = 1003'),
                          extra="control_stream_id = 10011\n", record='[{ channel = "aeron:ipc", stream = 1003 }]'))
    feed = {x.name: x for x in t.processes}["feed"]
    assert feed.argv[:2] == ("feed", "replay")
    args = dict(zip(feed.argv[2::2], feed.argv[3::2]))
    assert args == {"--stream": "1004", "--channel": "aeron:ipc", "--aeron-dir": _driver_dir(example),
                    "--archive-control-channel": "aeron:ipc", "--archive-control-stream": "10011", "--from-stream": "1003"}


def test_a_feed_replaying_a_recording_id(example):
    t = load(with_archive(replace_feed(example, 'stream_id = 1004\nsource = "archive"\nrecording_id = 5'),
                          record='[{ channel = "aeron:ipc", stream = 1003 }]'))
    argv = {x.name: x for x in t.processes}["feed"].argv
    assert argv[argv.index("--recording-id") + 1] == "5" and "--archive-control-stream" in argv


def test_a_feed_replaying_the_archive_needs_an_archive_section(example):
    refused(replace_feed(example, 'stream_id = 1004\nsource = "archive"\nrecording_id = 0'), "needs an [archive] section", "key=feed.source")


@pytest.mark.parametrize("body, parts", [
    ('stream_id = 1004\nsource = "archive"', ("exactly one of recording_id and from_stream", "key=feed.recording_id")),
    ('stream_id = 1004\nsource = "archive"\nrecording_id = 1\nfrom_stream = 1003', ("exactly one", "key=feed.recording_id")),
    ('stream_id = 1004\nsource = "archive"\nrecording_id = -1', ("not a non-negative integer", "key=feed.recording_id")),
    ('stream_id = 1004\nsource = "archive"\nrecording_id = 1\nrate = 40', ("not a key of this feed source", "key=feed.rate", "source=archive")),
    ('stream_id = 1004\nrate = 40\nrecording_id = 1', ("not a key of this feed source", "key=feed.recording_id", "source=synthetic")),
    ('stream_id = 1004\nsource = "tape"', ("unknown feed source", "key=feed.source", "value=tape")),
])
def test_a_bad_feed_source_is_named(example, body, parts):
    refused(with_archive(replace_feed(example, body), record="[]"), *parts)
