"""Wire encoding: every message round-trips, is byte for byte the SBE message
of ``schemas/cluster.xml`` (checked both ways against the project's
on-the-fly SBE codec), and malformed bytes are the sender's fault."""

import struct

import pytest
from hypothesis import given, strategies as st

from tickline.codecs import load_builtin, otf
from tickline.cluster import wire
from tickline.cluster.errors import RemoteProtocolError
from tickline.cluster.messages import (
    AppendRequest, AppendResponse, Entry, InstallSnapshot, InstallSnapshotResponse, RequestVote, TimeoutNow, VoteResponse,
)
from tickline.cluster.protocol import (
    Challenge, ChallengeResponse, EgressMessage, EventCode, IngressMessage, SessionClose, SessionConnect, SessionEvent,
)

i64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
nat = st.integers(min_value=0, max_value=2**62)
blob = st.binary(max_size=64)
entry = st.builds(Entry, nat, nat, nat, st.integers(min_value=0, max_value=5), blob)

messages = st.one_of(
    st.builds(RequestVote, nat, nat, nat, nat, nat, st.booleans(), st.booleans()),
    st.builds(VoteResponse, nat, nat, nat, st.booleans(), st.booleans()),
    st.builds(AppendRequest, nat, nat, nat, nat, nat, st.lists(entry, max_size=4).map(tuple), nat),
    st.builds(AppendResponse, nat, nat, nat, st.booleans(), nat, i64),
    st.builds(lambda src, dst, term, pos, sterm, crc, offset, tail, data: InstallSnapshot(src, dst, term, pos, sterm, offset + len(data) + tail,
                                                                                       crc, offset, data),
              nat, nat, nat, nat, nat, st.integers(min_value=0, max_value=2**32 - 1), nat, nat, blob),
    st.builds(InstallSnapshotResponse, nat, nat, nat, nat, nat),
    st.builds(TimeoutNow, nat, nat, nat),
    st.builds(SessionConnect, i64, i64),
    st.builds(SessionConnect, i64, i64, blob),
    st.builds(Challenge, i64, blob),
    st.builds(ChallengeResponse, i64, i64, blob),
    st.builds(SessionClose, i64, i64),
    st.builds(IngressMessage, i64, i64, i64, i64, blob),
    st.builds(SessionEvent, i64, i64, st.sampled_from(list(EventCode)), st.one_of(st.none(), nat), st.text(max_size=20)),
    st.builds(EgressMessage, i64, i64, blob),
    st.builds(wire.StatusRequest, i64, st.integers(min_value=0, max_value=2)),
    st.builds(wire.StatusRequest, i64, st.integers(min_value=0, max_value=2), blob),
    st.builds(wire.EgressChannel, i64, st.text(max_size=60), st.integers(-(2**31), 2**31 - 1)),
    st.builds(wire.AdminRequest, i64, i64, st.sampled_from(list(wire.ClusterAction)), blob),
    st.builds(wire.AdminResponse, i64, i64, st.sampled_from(list(wire.ClusterAction)), st.sampled_from(list(wire.AdminCode)), i64,
              st.text(max_size=40)),
)


@given(messages)
def test_every_message_round_trips(m):
    assert wire.decode(wire.encode(m)) == m


@given(messages, st.data())
def test_truncated_messages_are_rejected_not_misread(m, data):
    b = wire.encode(m)
    cut = data.draw(st.integers(min_value=0, max_value=len(b) - 1))
    with pytest.raises(RemoteProtocolError):
        wire.decode(b[:cut])


SCHEMA = load_builtin("cluster.xml")
_NAMES = {"last_term": "lastTerm", "last_position": "lastPosition", "pre_vote": "preVote", "prev_position": "prevPosition",
          "prev_term": "prevTerm", "commit_position": "commitPosition", "rejected_prev": "rejectedPrev", "snapshot_term": "snapshotTerm",
          "length": "snapshotLength", "offset": "chunkOffset", "client_id": "clientId", "session_id": "sessionId",
          "correlation_id": "correlationId", "log_position": "logPosition", "applied_position": "appliedPosition",
          "base_position": "basePosition", "stream_id": "streamId", "bad_channels": "badChannels", "request_id": "requestId"}


def schema_fields(m):
    """``m`` as the on-the-fly codec's document fields: the schema's names, booleans
    and enums by name, binary var data as hex (text var data as text), an unknown leader as -1."""
    out = {}
    for name in m.__dataclass_fields__:
        if name == "end":
            continue
        v = getattr(m, name)
        if isinstance(v, bool):
            v = str(v)
        elif isinstance(v, (EventCode, wire.ClusterAction, wire.AdminCode)):
            v = v.name
        elif isinstance(v, bytes):
            v = v.hex()
        elif isinstance(v, tuple):
            v = [schema_fields(e) for e in v]
        elif v is None and name == "leader":
            v = -1
        out[_NAMES.get(name, name)] = v
    return out


@given(messages)
def test_every_message_is_the_sbe_message_of_the_cluster_schema_byte_for_byte(m):
    b = wire.encode(m)
    doc, consumed = otf.decode(SCHEMA, b)
    assert consumed == len(b)
    assert doc["header"] == {"blockLength": SCHEMA.message_by_name(type(m).__name__).block_length,
                             "templateId": SCHEMA.message_by_name(type(m).__name__).id, "schemaId": 102,
                             "version": wire.SCHEMA_VERSION}
    assert doc["message"] == type(m).__name__ and doc["fields"] == schema_fields(m)
    assert otf.encode(SCHEMA, doc) == b  # and the schema's own encoder writes the same bytes


def test_status_response_is_the_schema_message_too():
    m = wire.StatusResponse(1, "leader", 3, -1, 400, 300, 200, 100, 7, 5, 2, True)
    doc, _ = otf.decode(SCHEMA, wire.encode(m))
    assert doc["fields"] == {"member": 1, "role": "leader", "term": 3, "leader": -1, "logPosition": 400, "commitPosition": 300,
                             "appliedPosition": 200, "basePosition": 100, "dropped": 7, "unauthenticated": 5, "badChannels": 2,
                             "refused": "True"}
    assert wire.decode(otf.encode(SCHEMA, doc)) == m


def test_version_0_messages_still_decode_with_the_new_fields_empty():
    # SBE's sinceVersion: a version 0 sender has no credentials var data and a shorter StatusResponse block
    assert wire.decode(struct.pack("<HHHHqq", 16, 10, 102, 0, 5, 6)) == SessionConnect(5, 6)
    assert wire.decode(struct.pack("<HHHHqB", 9, 20, 102, 0, 5, 2)) == wire.StatusRequest(5, 2)
    v0 = struct.pack("<HHHHq16sqqqqqqq", 80, 21, 102, 0, 1, b"leader", 3, 2, 400, 300, 200, 100, 7)
    assert wire.decode(v0) == wire.StatusResponse(1, "leader", 3, 2, 400, 300, 200, 100, 7)
    # a version 1 message must carry its credentials field
    with pytest.raises(RemoteProtocolError, match="reason=short"):
        wire.decode(struct.pack("<HHHHqq", 16, 10, 102, 1, 5, 6))


def test_a_newer_version_with_a_longer_block_is_read_and_its_extra_fields_skipped():
    # SBE's rule for extension: the header's block length says where the fixed block
    # ends, here 8 bytes longer than version 0's, and an entry's block likewise
    m = AppendRequest(1, 2, 3, 100, 2, (Entry(100, 2, 5, 3, b"ab"), Entry(130, 2, 6, 1, b"")), 90)
    b = wire.encode(m)
    block, t, schema, _ = struct.unpack_from("<HHHH", b)
    fixed = b[8: 8 + block]
    _, count = struct.unpack_from("<HH", b, 8 + block)
    rest = b[8 + block + 4:]
    wider = []
    at = 0
    for _ in range(count):
        wider.append(rest[at: at + 28] + b"\xff" * 4)
        (ln,) = struct.unpack_from("<I", rest, at + 28)
        wider.append(rest[at + 28: at + 32 + ln])
        at += 32 + ln
    newer = struct.pack("<HHHH", block + 8, t, schema, 1) + fixed + b"\xee" * 8 + struct.pack("<HH", 32, count) + b"".join(wider)
    assert wire.decode(newer) == m
    assert wire.decode(struct.pack("<HHHH", 24 + 8, 6, 102, 1) + struct.pack("<qqq", 1, 2, 3) + b"\0" * 8) == TimeoutNow(1, 2, 3)


def test_errors_name_the_problem_and_blame_the_sender():
    tn = wire.encode(TimeoutNow(1, 2, 3))
    with pytest.raises(RemoteProtocolError) as exc:
        wire.decode(struct.pack("<HHHH", 24, 99, 102, 0) + tn[8:])
    assert str(exc.value) == "malformed cluster message: template=99 length=32 offset=8 reason=unknown_template fault=peer"
    with pytest.raises(RemoteProtocolError, match="template=6 length=32 offset=8 reason=schema_101_not_102 fault=peer"):
        wire.decode(struct.pack("<HHHH", 24, 6, 101, 0) + tn[8:])  # an orders.xml message on the cluster's stream
    with pytest.raises(RemoteProtocolError, match="template=6 length=32 offset=8 reason=block_length_16_below_24 fault=peer"):
        wire.decode(struct.pack("<HHHH", 16, 6, 102, 0) + tn[8:])
    with pytest.raises(RemoteProtocolError, match="reason=entry_block_length_20_below_28"):
        b = wire.encode(AppendRequest(1, 2, 3, 0, 0, (Entry(0, 1, 0, 0, b""),), 0))
        wire.decode(b[:56] + struct.pack("<H", 20) + b[58:])
    with pytest.raises(RemoteProtocolError, match="reason=trailing_bytes"):
        wire.decode(tn + b"\0")
    with pytest.raises(RemoteProtocolError, match="length=0 reason=empty"):
        wire.decode(b"")
    with pytest.raises(RemoteProtocolError, match="length=5 reason=short_header"):
        wire.decode(tn[:5])


def test_an_append_request_holds_at_most_what_its_group_count_can_say():
    many = tuple(Entry(i * 28, 1, 0, 0, b"") for i in range(0x10000))
    with pytest.raises(ValueError, match="at most 65535 entries: entries=65536"):
        wire.encode(AppendRequest(1, 2, 3, 0, 0, many, 0))
    assert len(wire.decode(wire.encode(AppendRequest(1, 2, 3, 0, 0, many[:0xFFFF], 0))).entries) == 0xFFFF


def test_entries_keep_byte_offset_positions():
    e = Entry(1000, 3, 77, 3, b"abc")
    m = wire.decode(wire.encode(AppendRequest(1, 2, 3, 1000, 2, (e,), 900)))
    assert m.entries[0].end == 1000 + 28 + 3


def test_a_snapshot_chunk_reaching_past_its_snapshot_is_rejected_with_its_numbers():
    b = wire.encode(InstallSnapshot(1, 2, 3, 4096, 2, 10, 0, 8, b"abcd"))
    with pytest.raises(RemoteProtocolError) as exc:
        wire.decode(b)
    assert "template=5" in str(exc.value) and "reason=chunk_outside_snapshot:offset=8,chunk=4,snapshot_length=10" in str(exc.value)
    assert "fault=peer" in str(exc.value)
