"""The sans-IO control protocol, the replay plan's checks, the configuration,
and the schema's generated codec: no driver, no disk."""

from __future__ import annotations

import dataclasses

import pytest

from tickline.archive import control, wire
from tickline.archive.config import ArchiveConfig
from tickline.archive.control import CloseSession, ControlProtocol, Dropped, Execute, OpenSession, plan_replay
from tickline.archive.errors import ConfigError, ErrorCode, RequestError
from tickline.archive.wire import RecordingDescriptor, RecordingState
from tickline.codecs import load_builtin
from tickline.codecs.gen_python import generate


def test_a_session_opens_then_its_requests_execute_and_others_are_dropped():
    p = ControlProtocol(max_sessions=2)
    [a] = p.on_message(wire.encode(wire.ConnectRequest(7, 20, 1, "aeron:ipc")))
    assert a == OpenSession(1, 7, "aeron:ipc", 20)
    req = wire.StartRecordingRequest(1, 8, 5, "aeron:ipc")
    assert p.on_message(wire.encode(req)) == [Execute(1, req)]
    [d] = p.on_message(wire.encode(wire.StartRecordingRequest(2, 9, 5, "aeron:ipc")))
    assert isinstance(d, Dropped) and d.reason == "unknown session" and "control_session_id=2" in d.detail
    [d] = p.on_message(b"\x00" * 5)
    assert isinstance(d, Dropped) and d.reason == "undecodable" and "fault=peer" in d.detail
    [d] = p.on_message(wire.encode(wire.RecordingStopped(1, 0, 0)))
    assert isinstance(d, Dropped) and d.reason == "not a request"
    assert p.dropped == 3
    assert p.on_message(wire.encode(wire.CloseSessionRequest(1))) == [CloseSession(1)]
    [d] = p.on_message(wire.encode(req))
    assert isinstance(d, Dropped)  # closed sessions are unknown


def test_connects_beyond_the_session_limit_are_answered_with_a_refusal_not_kept():
    p = ControlProtocol(max_sessions=1)
    p.on_message(wire.encode(wire.ConnectRequest(1, 20, 1, "aeron:ipc")))
    [a] = p.on_message(wire.encode(wire.ConnectRequest(2, 20, 1, "aeron:ipc")))
    assert a == OpenSession(-1, 2, "aeron:ipc", 20) and len(p.sessions) == 1


def test_responses_are_control_response_messages():
    assert wire.decode(control.ok(3, 4, 5)) == wire.ControlResponse(3, 4, 5, 0, ErrorCode.NONE, "")
    r = wire.decode(control.error(3, 4, ErrorCode.BAD_POSITION, "x" * 10000))
    assert r.code == 1 and r.error_code == ErrorCode.BAD_POSITION and len(r.error_message) == wire.MAX_STRING


STOPPED = RecordingDescriptor(0, 0, 4, 0, 1, 1024, 8192, 1 << 20, 0, 65536, 1408, 1, 10, RecordingState.STOPPED,
                              "aeron:ipc", "aeron:ipc", "x")
ACTIVE = dataclasses.replace(STOPPED, state=RecordingState.RECORDING, stop_position=-1)

# (descriptor, position, length, live position) -> plan or (error code, message)
PLANS = [
    (STOPPED, -1, -1, None, (1024, 8192)),
    (STOPPED, 2048, 1024, None, (2048, 3072)),
    (STOPPED, 8192, 0, None, (8192, 8192)),
    (ACTIVE, -1, -1, 4096, (1024, None)),
    (ACTIVE, 2048, 100_000, 4096, (2048, 102_048)),  # an end not recorded yet: the replay follows it there
    (None, 0, -1, None, (ErrorCode.UNKNOWN_RECORDING, "unknown recording: recording_id=4")),
    (STOPPED, 0, -1, None, (ErrorCode.BAD_POSITION, "before the start or not frame aligned")),
    (STOPPED, 1040, -1, None, (ErrorCode.BAD_POSITION, "not frame aligned: recording_id=4 position=1040")),
    (STOPPED, 8224, -1, None, (ErrorCode.BAD_POSITION, "past the recorded position")),
    (STOPPED, 2048, 8192, None, (ErrorCode.BAD_POSITION, "runs past the stop position")),
    (STOPPED, 2048, 100, None, (ErrorCode.BAD_POSITION, "end not frame aligned")),
    (STOPPED, 2048, -5, None, (ErrorCode.BAD_REQUEST, "length must be >= 0 or -1")),
    (ACTIVE, 8192, -1, 4096, (ErrorCode.BAD_POSITION, "past the recorded position")),
    (dataclasses.replace(STOPPED, state=RecordingState.INVALID), -1, -1, None, (ErrorCode.STORAGE, "recording is invalid")),
]


@pytest.mark.parametrize("d,position,length,live,expected", PLANS)
def test_replay_plans(d, position, length, live, expected):
    if isinstance(expected[0], ErrorCode):
        with pytest.raises(RequestError, match=expected[1]) as e:
            plan_replay(d, 4, position, length, live)
        assert e.value.code == expected[0]
    else:
        plan = plan_replay(d, 4, position, length, live)
        assert (plan.position, plan.end) == expected


def test_config_is_validated_and_the_environment_overrides_it():
    c = ArchiveConfig.from_env({"TICKLINE_ARCHIVE_SEGMENT_LENGTH": "1m", "TICKLINE_ARCHIVE_FSYNC": "250ms"}, dir="/tmp/x",
                               control_stream_id=77)
    assert c.segment_length == 1 << 20 and c.fsync_interval_ms() == 250 and c.control_stream_id == 77
    with pytest.raises(ConfigError, match="segment length must be a power of two.*option=segment_length value=100000 fault=user"):
        ArchiveConfig(dir="/tmp/x", segment_length=100_000)
    with pytest.raises(ConfigError, match="fsync policy.*option=fsync value=sometimes"):
        ArchiveConfig(dir="/tmp/x", fsync="sometimes")
    with pytest.raises(ConfigError, match="option=control_stream_id .*variable=TICKLINE_ARCHIVE_CONTROL_STREAM_ID"):
        ArchiveConfig.from_env({"TICKLINE_ARCHIVE_CONTROL_STREAM_ID": "ten"}, dir="/tmp/x")
    with pytest.raises(ConfigError, match="archive channel invalid: option=control_channel"):
        ArchiveConfig(dir="/tmp/x", control_channel="tcp://nope")
    with pytest.raises(ConfigError, match="archive dir is required"):
        ArchiveConfig.from_env({})


def test_the_schema_generates_a_codec_that_reads_the_wire_bytes():
    src = generate(load_builtin("archive.xml"), "archive.xml")
    ns: dict = {}
    exec(compile(src, "gen_archive.py", "exec"), ns)
    m = wire.ReplayRequest(3, 4, 5, 1024, -1, 77, "aeron:udp?endpoint=127.0.0.1:40123")
    b = wire.encode(m)
    dec = ns["ReplayRequestDecoder"]().wrap(b, 8)
    assert (dec.control_session_id, dec.correlation_id, dec.recording_id, dec.position, dec.length, dec.replay_stream_id) == \
        (3, 4, 5, 1024, -1, 77)
    ch = dec.replay_channel()
    assert (ch if isinstance(ch, str) else bytes(ch).decode()) == m.replay_channel


def test_a_client_without_an_archive_times_out_naming_the_request(aeron):
    from tickline.archive import ArchiveClient

    with pytest.raises(TimeoutError, match="archive not reachable: request=ConnectRequest"):
        ArchiveClient.connect(aeron, control_stream_id=10999, timeout=0.3)


def test_the_archive_section_of_a_topology_file_is_read_and_checked(tmp_path):
    from tickline.archive.config import read_archive_section

    f = tmp_path / "topology.toml"
    f.write_text('[archive]\ndir = "/tmp/a"\nsegment_length = "1m"\ncontrol_stream_id = 10011\naeron_dir = "/dev/shm/x"\n'
                 '[other]\nx = 1\n')
    section = read_archive_section(f)
    assert section["aeron_dir"] == "/dev/shm/x"
    section.pop("aeron_dir")
    c = ArchiveConfig.from_env({"TICKLINE_ARCHIVE_FSYNC": "none"}, **section)
    assert (c.dir, c.segment_length, c.control_stream_id, c.fsync) == ("/tmp/a", 1 << 20, 10011, "none")
    f.write_text('[archive]\ndir = "/tmp/a"\nsegment_lenght = "1m"\n')
    with pytest.raises(ConfigError, match=f"unknown key in \\[archive\\]: file={f} key=segment_lenght"):
        read_archive_section(f)
    f.write_text('[fix_gateway]\nx = 1\n')
    with pytest.raises(ConfigError, match="no \\[archive\\] section"):
        read_archive_section(f)
    f.write_text('[archive\n')
    with pytest.raises(ConfigError, match=f"cannot read topology file: file={f}"):
        read_archive_section(f)
