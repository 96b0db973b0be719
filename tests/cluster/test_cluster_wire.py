"""Wire encoding: every message round-trips; malformed bytes are the sender's fault."""

import pytest
from hypothesis import given, strategies as st

from tickline.cluster import wire
from tickline.cluster.errors import RemoteProtocolError
from tickline.cluster.messages import (
    AppendRequest, AppendResponse, Entry, InstallSnapshot, InstallSnapshotResponse, RequestVote, TimeoutNow, VoteResponse,
)
from tickline.cluster.protocol import EgressMessage, EventCode, IngressMessage, SessionClose, SessionConnect, SessionEvent

i64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
nat = st.integers(min_value=0, max_value=2**62)
blob = st.binary(max_size=64)
entry = st.builds(Entry, nat, nat, nat, st.integers(min_value=0, max_value=4), blob)

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
    st.builds(SessionClose, i64, i64),
    st.builds(IngressMessage, i64, i64, i64, i64, blob),
    st.builds(SessionEvent, i64, i64, st.sampled_from(list(EventCode)), st.one_of(st.none(), nat), st.text(max_size=20)),
    st.builds(EgressMessage, i64, i64, blob),
    st.builds(wire.StatusRequest, i64, st.integers(min_value=0, max_value=2)),
    st.builds(wire.EgressChannel, i64, st.text(max_size=60), st.integers(-(2**31), 2**31 - 1)),
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


def test_errors_name_the_problem_and_blame_the_sender():
    with pytest.raises(RemoteProtocolError) as exc:
        wire.decode(bytes([99, 0, 0]))
    assert str(exc.value) == "malformed cluster message: type=99 length=3 offset=1 reason=unknown_type fault=peer"
    with pytest.raises(RemoteProtocolError, match="reason=trailing_bytes"):
        wire.decode(wire.encode(TimeoutNow(1, 2, 3)) + b"\0")
    with pytest.raises(RemoteProtocolError, match="reason=empty"):
        wire.decode(b"")


def test_entries_keep_byte_offset_positions():
    e = Entry(1000, 3, 77, 3, b"abc")
    m = wire.decode(wire.encode(AppendRequest(1, 2, 3, 1000, 2, (e,), 900)))
    assert m.entries[0].end == 1000 + 28 + 3


def test_a_snapshot_chunk_reaching_past_its_snapshot_is_rejected_with_its_numbers():
    b = wire.encode(InstallSnapshot(1, 2, 3, 4096, 2, 10, 0, 8, b"abcd"))
    with pytest.raises(RemoteProtocolError) as exc:
        wire.decode(b)
    assert "type=5" in str(exc.value) and "reason=chunk_outside_snapshot:offset=8,chunk=4,snapshot_length=10" in str(exc.value)
    assert "fault=peer" in str(exc.value)
