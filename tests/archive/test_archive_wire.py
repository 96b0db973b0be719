"""The archive's messages are the SBE messages of schemas/archive.xml, byte for
byte both ways, and decoding hostile bytes raises ArchiveProtocolError (never
another exception, never a partial message)."""

from __future__ import annotations

import dataclasses
import re
import struct

import pytest
from hypothesis import given, settings, strategies as st

from tickline.archive import wire
from tickline.archive.errors import ArchiveProtocolError, ErrorCode
from tickline.codecs import load_builtin, otf

SCHEMA = load_builtin("archive.xml")

i32 = st.integers(-(2**31), 2**31 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
text = st.text(max_size=40)

messages = st.one_of(
    st.builds(wire.ConnectRequest, i64, i32, i32, text),
    st.builds(wire.CloseSessionRequest, i64),
    st.builds(wire.StartRecordingRequest, i64, i64, i32, text),
    st.builds(wire.StopRecordingRequest, i64, i64, i64),
    st.builds(wire.ListRecordingsRequest, i64, i64, i64, i32, i32, text),
    st.builds(wire.ReplayRequest, i64, i64, i64, i64, i64, i32, text),
    st.builds(wire.StopReplayRequest, i64, i64, i64),
    st.builds(wire.TruncateRecordingRequest, i64, i64, i64, i64),
    st.builds(wire.PurgeRecordingRequest, i64, i64, i64),
    st.builds(wire.ExtendRecordingRequest, i64, i64, i64, i32, text),
    st.builds(wire.MigrateRecordingRequest, i64, i64, i64, text),
    st.builds(wire.ControlResponse, i64, i64, i64, st.sampled_from([0, 1]), st.sampled_from(list(ErrorCode)), text),
    st.builds(wire.RecordingDescriptor, i64, i64, i64, i64, i64, i64, i64, i64, i32, i32, i32, i32, i32,
              st.sampled_from([0, 1, 2]), text, text, text, st.sampled_from([0, 1]), text),
    st.builds(wire.RecordingStarted, i64, i64, i32, i32, text, text),
    st.builds(wire.RecordingProgress, i64, i64, i64),
    st.builds(wire.RecordingStopped, i64, i64, i64),
)


def camel(name: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name)


def schema_fields(m) -> dict:
    out = {}
    for name in (f.name for f in dataclasses.fields(m)):
        v = getattr(m, name)
        if isinstance(v, str):
            pass  # text var data (UTF-8 varData) is text in the on-the-fly codec's JSON form
        elif isinstance(m, wire.ControlResponse) and name == "code":
            v = "OK" if v == 0 else "ERROR"
        elif isinstance(v, ErrorCode):
            v = v.name
        elif isinstance(m, wire.RecordingDescriptor) and name == "state":
            v = wire.RecordingState.NAMES[v]
        elif isinstance(m, wire.RecordingDescriptor) and name == "checksum":
            v = wire.ChecksumType.NAMES[v].upper()
        elif isinstance(m, wire.ListRecordingsRequest) and name == "stream_id" and v == wire.NULL_STREAM:
            v = None
        out[camel(name)] = v
    return out


@settings(max_examples=300)
@given(messages)
def test_every_message_is_the_sbe_message_of_the_archive_schema_byte_for_byte(m):
    b = wire.encode(m)
    doc, consumed = otf.decode(SCHEMA, b)
    assert consumed == len(b)
    msg = SCHEMA.message_by_name(type(m).__name__)
    assert doc["header"] == {"blockLength": msg.block_length, "templateId": msg.id, "schemaId": 103, "version": 1}
    assert doc["message"] == type(m).__name__ and doc["fields"] == schema_fields(m)
    assert otf.encode(SCHEMA, doc) == b
    assert wire.decode(b) == m


@given(messages, st.data())
def test_any_truncation_is_a_protocol_error(m, data):
    b = wire.encode(m)
    cut = data.draw(st.integers(min_value=0, max_value=len(b) - 1))
    with pytest.raises(ArchiveProtocolError):
        wire.decode(b[:cut])


@given(st.binary(max_size=200))
def test_random_bytes_decode_or_raise_a_protocol_error_only(b):
    try:
        wire.decode(b)
    except ArchiveProtocolError as exc:
        assert "fault=peer" in str(exc)


def test_hostile_fields_are_named_in_the_error():
    good = wire.encode(wire.StartRecordingRequest(1, 2, 3, "aeron:ipc"))
    with pytest.raises(ArchiveProtocolError, match="not an archive message: schema_id=102"):
        wire.decode(good[:4] + struct.pack("<H", 102) + good[6:])
    with pytest.raises(ArchiveProtocolError, match="unknown archive message template: template_id=99"):
        wire.decode(good[:2] + struct.pack("<H", 99) + good[4:])
    huge = good[:8 + 20] + struct.pack("<I", 2**31) + b"x"
    with pytest.raises(ArchiveProtocolError, match="text too long: message=StartRecordingRequest field=channel offset=28"):
        wire.decode(huge)
    bad_utf8 = good[:8 + 20] + struct.pack("<I", 2) + b"\xff\xfe"
    with pytest.raises(ArchiveProtocolError, match="not UTF-8: message=StartRecordingRequest field=channel offset=32"):
        wire.decode(bad_utf8)
    with pytest.raises(ArchiveProtocolError, match="trailing bytes"):
        wire.decode(good + b"\x00")
    r = bytearray(wire.encode(wire.ControlResponse(1, 2, 3, 0, ErrorCode.NONE, "")))
    r[8 + 25] = 200  # the error code
    with pytest.raises(ArchiveProtocolError, match="error code out of range: error_code=200"):
        wire.decode(bytes(r))


def test_a_longer_block_of_a_newer_version_is_read_and_its_extra_bytes_skipped():
    m = wire.StopReplayRequest(1, 2, 3)
    b = wire.encode(m)
    longer = struct.pack("<HHHH", 24 + 8, 7, 103, 1) + b[8:8 + 24] + b"\x00" * 8
    assert wire.decode(longer) == m


def test_text_longer_than_the_limit_is_refused_when_encoding():
    with pytest.raises(ValueError, match="text too long: message=ReplayRequest field=replay_channel"):
        wire.encode(wire.ReplayRequest(1, 2, 3, 0, -1, 5, "x" * (wire.MAX_STRING + 1)))


def test_a_version_0_recording_descriptor_reads_with_no_checksum_and_the_archive_directory():
    """A catalog written before version 1 (checksums, migration) still loads: the SBE
    acting version 0 has neither field, and they take their defaults."""
    d = wire.RecordingDescriptor(0, 0, 7, 1, 2, 0, 4096, 1 << 16, 5, 1 << 16, 1408, 9, 1001, 1, "aeron:ipc", "aeron:ipc", "src")
    v1 = wire.encode(d)
    block = wire.block_length(wire.RecordingDescriptor)
    v0 = struct.pack("<HHHH", block - 1, 21, 103, 0) + v1[8:8 + block - 1] + v1[8 + block:-4]  # no checksum, no segmentDir
    assert wire.decode(v0) == d and d.checksum == 0 and d.segment_dir == ""
    doc, consumed = otf.decode(SCHEMA, v0)
    assert consumed == len(v0)  # the schema's own reading agrees: both fields absent in version 0
    assert doc["fields"]["checksum"] is None and doc["fields"]["segmentDir"] == ""
    with pytest.raises(ArchiveProtocolError, match="checksum type out of range"):
        wire.decode(v1[:8 + block - 1] + b"\x09" + v1[8 + block:])
