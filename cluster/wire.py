"""Binary encoding of the cluster's messages (member <-> member, client <-> cluster).

Little-endian, one message per buffer: a one-byte type, then fixed fields,
then variable parts each prefixed by a u32 length.  Any transport carries
these bytes (Aeron streams, see :mod:`.aeron_io`; the simulator's network); a
future SBE ``cluster`` schema can replace this module without touching the
consensus core, which only sees the dataclasses.

:func:`decode` raises :class:`~tickline.cluster.errors.RemoteProtocolError`
(the sender's fault) for anything malformed; it never returns a partial message.
"""

from __future__ import annotations

import struct

from .errors import RemoteProtocolError
from .messages import AppendRequest, AppendResponse, Entry, InstallSnapshot, InstallSnapshotResponse, RequestVote, TimeoutNow, VoteResponse
from .protocol import EgressMessage, EventCode, IngressMessage, SessionClose, SessionConnect, SessionEvent

__all__ = ["encode", "decode", "StatusRequest", "StatusResponse", "EgressChannel"]

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StatusRequest:
    """Operator tool -> member: report role, term and positions, after doing
    ``action`` (0 nothing, 1 take a snapshot, 2 step down if leader)."""

    client_id: int
    action: int = 0


@dataclass(frozen=True, slots=True)
class StatusResponse:
    member: int
    role: str
    term: int
    leader: int
    log_position: int
    commit_position: int
    applied_position: int
    base_position: int
    dropped: int = 0  # messages the member's I/O shell dropped (not connected, back pressure, too large)


@dataclass(frozen=True, slots=True)
class EgressChannel:
    """Client (or operator tool) -> member, on the ingress stream: send egress
    for ``client_id`` to this Aeron ``channel`` and ``stream_id`` (the client's
    egress subscription: its own UDP endpoint on the egress stream, or, over
    IPC, ``aeron:ipc`` on a stream id of its own).  A transport message: it
    never reaches the consensus core or the log."""

    client_id: int
    channel: str
    stream_id: int = 102  # aeron_io.EGRESS_STREAM


_TYPES = {
    RequestVote: 1, VoteResponse: 2, AppendRequest: 3, AppendResponse: 4, InstallSnapshot: 5, TimeoutNow: 6, InstallSnapshotResponse: 7,
    SessionConnect: 10, SessionClose: 11, IngressMessage: 12, SessionEvent: 13, EgressMessage: 14,
    StatusRequest: 20, StatusResponse: 21, EgressChannel: 22,
}
_LEN = struct.Struct("<I")
_RV = struct.Struct("<qqqqqBB")
_VR = struct.Struct("<qqqBB")
_AQ = struct.Struct("<qqqqqqI")
_ENTRY = struct.Struct("<qqqII")
_AR = struct.Struct("<qqqBqq")
_IS = struct.Struct("<qqqqqqIq")  # src dst term position snapshot_term length checksum offset, then the chunk
_ISR = struct.Struct("<qqqqq")
_TN = struct.Struct("<qqq")
_SC = struct.Struct("<qq")
_IM = struct.Struct("<qqqq")
_SE = struct.Struct("<qqBq")
_EM = struct.Struct("<qq")
_SQ = struct.Struct("<qB")
_SR = struct.Struct("<q16sqqqqqqq")
_EC = struct.Struct("<qi")
_EM_HEAD = struct.Struct("<BqqI")
_IM_HEAD = struct.Struct("<BqqqqI")
_AR_HEAD = struct.Struct("<BqqqBqq")
_AQ_HEAD = struct.Struct("<BqqqqqqI")


def _var(b: bytes) -> bytes:
    return _LEN.pack(len(b)) + b


def _append_request(m: AppendRequest) -> bytes:
    parts = [_AQ_HEAD.pack(3, m.src, m.dst, m.term, m.prev_position, m.prev_term, m.commit_position, len(m.entries))]
    append, pack = parts.append, _ENTRY.pack
    for e in m.entries:
        append(pack(e.position, e.term, e.timestamp, e.kind, len(e.payload)))
        append(e.payload)
    return b"".join(parts)


def encode(m: object) -> bytes:
    tp = type(m)
    # the per-order messages first (isinstance narrows for the type checker; type() is the fast test)
    if tp is EgressMessage and isinstance(m, EgressMessage):
        return _EM_HEAD.pack(14, m.session_id, m.correlation_id, len(m.payload)) + m.payload
    if tp is IngressMessage and isinstance(m, IngressMessage):
        return _IM_HEAD.pack(12, m.client_id, m.session_id, m.correlation_id, m.floor, len(m.payload)) + m.payload
    if tp is AppendResponse and isinstance(m, AppendResponse):
        return _AR_HEAD.pack(4, m.src, m.dst, m.term, m.success, m.position, m.rejected_prev)
    if tp is AppendRequest and isinstance(m, AppendRequest):
        return _append_request(m)
    t = _TYPES.get(tp)
    if t is None:
        raise TypeError(f"not a cluster message: type={type(m).__name__}")
    head = bytes([t])
    if isinstance(m, RequestVote):
        return head + _RV.pack(m.src, m.dst, m.term, m.last_term, m.last_position, m.pre_vote, m.transfer)
    if isinstance(m, VoteResponse):
        return head + _VR.pack(m.src, m.dst, m.term, m.granted, m.pre_vote)
    if isinstance(m, AppendResponse):
        return head + _AR.pack(m.src, m.dst, m.term, m.success, m.position, m.rejected_prev)
    if isinstance(m, InstallSnapshot):
        return head + _IS.pack(m.src, m.dst, m.term, m.position, m.snapshot_term, m.length, m.checksum, m.offset) + _var(m.data)
    if isinstance(m, InstallSnapshotResponse):
        return head + _ISR.pack(m.src, m.dst, m.term, m.position, m.offset)
    if isinstance(m, TimeoutNow):
        return head + _TN.pack(m.src, m.dst, m.term)
    if isinstance(m, (SessionConnect, SessionClose)):
        return head + _SC.pack(m.client_id, m.session_id)
    if isinstance(m, IngressMessage):
        return head + _IM.pack(m.client_id, m.session_id, m.correlation_id, m.floor) + _var(m.payload)
    if isinstance(m, SessionEvent):
        return head + _SE.pack(m.session_id, m.correlation_id, int(m.code), -1 if m.leader is None else m.leader) + _var(m.detail.encode())
    if isinstance(m, EgressMessage):
        return head + _EM.pack(m.session_id, m.correlation_id) + _var(m.payload)
    if isinstance(m, StatusRequest):
        return head + _SQ.pack(m.client_id, m.action)
    if isinstance(m, EgressChannel):
        return head + _EC.pack(m.client_id, m.stream_id) + _var(m.channel.encode())
    assert isinstance(m, StatusResponse)
    return head + _SR.pack(m.member, m.role.encode()[:16], m.term, m.leader, m.log_position, m.commit_position, m.applied_position, m.base_position, m.dropped)


class _Reader:
    __slots__ = ("buf", "pos", "type")

    def __init__(self, buf: bytes, t: int) -> None:
        self.buf = buf
        self.pos = 1
        self.type = t

    def fail(self, reason: str) -> RemoteProtocolError:
        return RemoteProtocolError("malformed cluster message", type=self.type, length=len(self.buf), offset=self.pos, reason=reason)

    def fixed(self, s: struct.Struct) -> tuple:
        if self.pos + s.size > len(self.buf):
            raise self.fail("short")
        out = s.unpack_from(self.buf, self.pos)
        self.pos += s.size
        return out

    def raw(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            raise self.fail("short")
        out = bytes(self.buf[self.pos: self.pos + n])
        self.pos += n
        return out

    def var(self) -> bytes:
        (n,) = self.fixed(_LEN)
        return self.raw(n)

    def done(self) -> None:
        if self.pos != len(self.buf):
            raise self.fail("trailing_bytes")


_IM_VAR = _IM.size + 1 + _LEN.size
_EM_VAR = _EM.size + 1 + _LEN.size
_AR_LEN = _AR.size + 1
_IM_LEN = struct.Struct("<qqqqI")
_EM_LEN = struct.Struct("<qqI")


def decode(buf: bytes | bytearray | memoryview) -> object:
    n = len(buf)
    if not n:
        raise RemoteProtocolError("malformed cluster message", length=0, reason="empty")
    t = buf[0]
    # Fast paths for the per-order messages (ingress, egress, append acks):
    # one unpack, no intermediate copy of the whole buffer; anything that does
    # not fit exactly falls through to the checked general path below.
    if t == 12 and n >= _IM_VAR:
        cid, sid, corr, floor, ln = _IM_LEN.unpack_from(buf, 1)
        if n == _IM_VAR + ln:
            return IngressMessage(cid, sid, corr, floor, bytes(buf[_IM_VAR:]))
    elif t == 14 and n >= _EM_VAR:
        sid, corr, ln = _EM_LEN.unpack_from(buf, 1)
        if n == _EM_VAR + ln:
            return EgressMessage(sid, corr, bytes(buf[_EM_VAR:]))
    elif t == 4 and n == _AR_LEN:
        src, dst, term, ok, pos, rp = _AR.unpack_from(buf, 1)
        return AppendResponse(src, dst, term, bool(ok), pos, rp)
    buf = bytes(buf)
    r = _Reader(buf, t)
    if t == 1:
        src, dst, term, lt, lp, pv, tr = r.fixed(_RV)
        m: object = RequestVote(src, dst, term, lt, lp, bool(pv), bool(tr))
    elif t == 2:
        src, dst, term, g, pv = r.fixed(_VR)
        m = VoteResponse(src, dst, term, bool(g), bool(pv))
    elif t == 3:
        src, dst, term, prev, prev_term, commit, n = r.fixed(_AQ)
        entries = []
        unpack, size, at, total = _ENTRY.unpack_from, _ENTRY.size, r.pos, len(buf)
        for _ in range(n):
            if at + size > total:
                r.pos = at
                raise r.fail("short")
            pos, eterm, ts, kind, ln = unpack(buf, at)
            at += size
            if at + ln > total:
                r.pos = at
                raise r.fail("short")
            entries.append(Entry(pos, eterm, ts, kind, buf[at: at + ln]))
            at += ln
        r.pos = at
        m = AppendRequest(src, dst, term, prev, prev_term, tuple(entries), commit)
    elif t == 4:
        src, dst, term, ok, pos, rp = r.fixed(_AR)
        m = AppendResponse(src, dst, term, bool(ok), pos, rp)
    elif t == 5:
        src, dst, term, spos, sterm, length, crc, offset = r.fixed(_IS)
        data = r.var()
        if offset < 0 or length < 0 or offset + len(data) > length:
            raise r.fail(f"chunk_outside_snapshot:offset={offset},chunk={len(data)},snapshot_length={length}")
        m = InstallSnapshot(src, dst, term, spos, sterm, length, crc, offset, data)
    elif t == 7:
        m = InstallSnapshotResponse(*r.fixed(_ISR))
    elif t == 6:
        m = TimeoutNow(*r.fixed(_TN))
    elif t == 10:
        m = SessionConnect(*r.fixed(_SC))
    elif t == 11:
        m = SessionClose(*r.fixed(_SC))
    elif t == 12:
        cid, sid, corr, floor = r.fixed(_IM)
        m = IngressMessage(cid, sid, corr, floor, r.var())
    elif t == 13:
        sid, corr, code, leader = r.fixed(_SE)
        try:
            ec = EventCode(code)
        except ValueError:
            raise r.fail(f"event_code_{code}") from None
        try:
            detail = r.var().decode()
        except UnicodeDecodeError:
            raise r.fail("detail_not_utf8") from None
        m = SessionEvent(sid, corr, ec, None if leader < 0 else leader, detail)
    elif t == 14:
        sid, corr = r.fixed(_EM)
        m = EgressMessage(sid, corr, r.var())
    elif t == 20:
        m = StatusRequest(*r.fixed(_SQ))
    elif t == 21:
        member, role, *rest = r.fixed(_SR)
        m = StatusResponse(member, role.rstrip(b"\0").decode(errors="replace"), *rest)
    elif t == 22:
        cid, stream_id = r.fixed(_EC)
        try:
            m = EgressChannel(cid, r.var().decode(), stream_id)
        except UnicodeDecodeError:
            raise r.fail("channel_not_utf8") from None
    else:
        raise r.fail("unknown_type")
    r.done()
    return m
