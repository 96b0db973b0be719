"""Binary encoding of the cluster's messages (member <-> member, client <-> cluster).

Each message is one SBE message of ``schemas/cluster.xml`` (schema id 102):
the 8-byte message header, the fixed block, then the AppendRequest's entries
group or the var data, little-endian.  Encoded and decoded here by hand with
``struct`` (a generated flyweight per message costs more per order in
Python); the tests hold every message to the schema through the project's
on-the-fly SBE decoder, so ``tickline`` tools that read SBE read this traffic
too.  Any transport carries these bytes (Aeron streams, see
:mod:`.aeron_io`).  The consensus core only sees the dataclasses.

:func:`decode` raises :class:`~tickline.cluster.errors.RemoteProtocolError`
(the sender's fault) for anything malformed; it never returns a partial message.

Schema version 1 added, the SBE way (``sinceVersion="1"``): credentials on
SessionConnect and StatusRequest, the ``Challenge`` / ``ChallengeResponse``
messages, ``AUTHENTICATION_REJECTED``, and StatusResponse's
``unauthenticated``, ``badChannels`` and ``refused``.  Version 0 messages still decode (the new
fields empty).  On the consensus stream each message is followed by the
32-byte HMAC-SHA256 tag of its bytes (outside the SBE message: see
:mod:`.auth`); :func:`decode` is given the message without it.
"""

from __future__ import annotations

import struct

from .errors import RemoteProtocolError
from .messages import AppendRequest, AppendResponse, Entry, InstallSnapshot, InstallSnapshotResponse, RequestVote, TimeoutNow, VoteResponse
from .protocol import Challenge, ChallengeResponse, EgressMessage, EventCode, IngressMessage, SessionClose, SessionConnect, SessionEvent

__all__ = ["encode", "decode", "StatusRequest", "StatusResponse", "EgressChannel", "AdminRequest", "AdminResponse", "ClusterAction",
           "AdminCode", "ADMIN_DETAIL_MAX"]

import enum
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StatusRequest:
    """Operator tool -> member: report role, term and positions, after doing
    ``action`` (0 nothing, 1 take a snapshot, 2 step down if leader).  An
    action needs the admin credential in ``credentials`` (see :mod:`.auth`)."""

    client_id: int
    action: int = 0
    credentials: bytes = b""


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
    unauthenticated: int = 0  # consensus messages dropped: bad or missing tag, or not from a configured member
    bad_channels: int = 0  # clients' egress channels refused (see aeron_io.EgressPolicy)
    refused: bool = False  # this request's action was refused (no admin credential)


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


class ClusterAction(enum.IntEnum):
    """What an :class:`AdminRequest` asks for (the schema's ``ClusterAction``).
    SUSPEND, RESUME and SHUTDOWN go through the log (an entry of kind ACTION),
    so every member applies them at the same position."""

    DESCRIBE = 1  # members' state, positions and snapshots
    ERRORS = 2  # the member's recent error lines
    SUSPEND = 3  # stop applying client messages (they are refused with "suspended"); consensus goes on
    RESUME = 4  # apply them again
    SHUTDOWN = 5  # every member takes a snapshot at the same log position, then stops


class AdminCode(enum.IntEnum):
    OK = 0
    REFUSED = 1  # no admin credential
    ERROR = 2  # detail says why
    NOT_LEADER = 3  # a log action goes to the leader: ``leader`` names it (-1: unknown)


#: the most bytes of an AdminResponse's detail (JSON text): well under a client egress message's 128 KiB
ADMIN_DETAIL_MAX = 64 * 1024


@dataclass(frozen=True, slots=True)
class AdminRequest:
    """Operator tool -> member (schema version 2): do ``action``.  Every action but
    DESCRIBE needs the admin credential in ``credentials``.  ``request_id`` comes
    back in the answers (a SHUTDOWN is answered by every member once it stopped)."""

    client_id: int
    request_id: int
    action: int
    credentials: bytes = b""


@dataclass(frozen=True, slots=True)
class AdminResponse:
    """Member -> operator tool: ``detail`` is JSON text (at most ADMIN_DETAIL_MAX bytes)."""

    member: int
    request_id: int
    action: int
    code: int
    leader: int = -1
    detail: str = ""


_TYPES = {
    RequestVote: 1, VoteResponse: 2, AppendRequest: 3, AppendResponse: 4, InstallSnapshot: 5, TimeoutNow: 6, InstallSnapshotResponse: 7,
    SessionConnect: 10, SessionClose: 11, IngressMessage: 12, SessionEvent: 13, EgressMessage: 14,
    StatusRequest: 20, StatusResponse: 21, EgressChannel: 22, Challenge: 15, ChallengeResponse: 16,
    AdminRequest: 23, AdminResponse: 24,
}
SCHEMA_ID = 102  # schemas/cluster.xml
SCHEMA_VERSION = 2
_HEADER = struct.Struct("<HHHH")  # SBE message header: block length, template id, schema id, version
_GROUP = struct.Struct("<HH")  # groupSizeEncoding: block length, count
_LEN = struct.Struct("<I")  # varDataEncoding / varStringEncoding length
_RV = struct.Struct("<qqqqqBB")
_VR = struct.Struct("<qqqBB")
_AQ = struct.Struct("<qqqqqq")
_ENTRY_FIXED = struct.Struct("<qqqI")  # an entries group element's block: position term timestamp kind
_ENTRY = struct.Struct("<qqqII")  # that block and its payload's length, packed at once
_ENTRY_BLOCK = _ENTRY_FIXED.size
_AR = struct.Struct("<qqqBqq")
_IS = struct.Struct("<qqqqqqIq")  # src dst term position snapshot_term length checksum offset, then the chunk
_ISR = struct.Struct("<qqqqq")
_TN = struct.Struct("<qqq")
_SC = struct.Struct("<qq")
_IM = struct.Struct("<qqqq")
_SE = struct.Struct("<qqBq")
_EM = struct.Struct("<qq")
_SQ = struct.Struct("<qB")
_SR = struct.Struct("<q16sqqqqqqqqqB")
_SR_V0 = struct.Struct("<q16sqqqqqqq")  # version 0's block, without unauthenticated and refused
_CH = struct.Struct("<q")
_EC = struct.Struct("<qi")
_AQR = struct.Struct("<qqB")  # AdminRequest: client, request, action
_ARS = struct.Struct("<qqBBq")  # AdminResponse: member, request, action, code, leader
_BLOCKS = {1: _RV, 2: _VR, 3: _AQ, 4: _AR, 5: _IS, 6: _TN, 7: _ISR, 10: _SC, 11: _SC, 12: _IM, 13: _SE, 14: _EM, 20: _SQ, 21: _SR, 22: _EC, 15: _CH, 16: _SC,
           23: _AQR, 24: _ARS}
_HEADS = {t: _HEADER.pack(_BLOCKS[t].size, t, SCHEMA_ID, SCHEMA_VERSION) for t in _BLOCKS}
# the per-order messages' header, fixed block and (for those with one) var data length, packed at once
_EM_HEAD = struct.Struct("<HHHHqqI")
_IM_HEAD = struct.Struct("<HHHHqqqqI")
_AR_HEAD = struct.Struct("<HHHHqqqBqq")
_AQ_HEAD = struct.Struct("<HHHHqqqqqqHH")


def _var(b: bytes) -> bytes:
    return _LEN.pack(len(b)) + b


def _append_request(m: AppendRequest) -> bytes:
    parts = [_AQ_HEAD.pack(_AQ.size, 3, SCHEMA_ID, SCHEMA_VERSION, m.src, m.dst, m.term, m.prev_position, m.prev_term, m.commit_position,
                           _ENTRY_BLOCK, len(m.entries))]
    append, pack = parts.append, _ENTRY.pack
    for e in m.entries:
        append(pack(e.position, e.term, e.timestamp, e.kind, len(e.payload)))
        append(e.payload)
    return b"".join(parts)


def encode(m: object) -> bytes:
    """``m`` as one SBE message of ``schemas/cluster.xml``.  An AppendRequest
    holds at most 65535 entries (its group's count is a uint16)."""
    tp = type(m)
    # the per-order messages first (isinstance narrows for the type checker; type() is the fast test)
    if tp is EgressMessage and isinstance(m, EgressMessage):
        return _EM_HEAD.pack(_EM.size, 14, SCHEMA_ID, SCHEMA_VERSION, m.session_id, m.correlation_id, len(m.payload)) + m.payload
    if tp is IngressMessage and isinstance(m, IngressMessage):
        return _IM_HEAD.pack(_IM.size, 12, SCHEMA_ID, SCHEMA_VERSION, m.client_id, m.session_id, m.correlation_id, m.floor, len(m.payload)) + m.payload
    if tp is AppendResponse and isinstance(m, AppendResponse):
        return _AR_HEAD.pack(_AR.size, 4, SCHEMA_ID, SCHEMA_VERSION, m.src, m.dst, m.term, m.success, m.position, m.rejected_prev)
    if tp is AppendRequest and isinstance(m, AppendRequest):
        if len(m.entries) > 0xFFFF:
            raise ValueError(f"an AppendRequest holds at most 65535 entries: entries={len(m.entries)}")
        return _append_request(m)
    t = _TYPES.get(tp)
    if t is None:
        raise TypeError(f"not a cluster message: type={type(m).__name__}")
    head = _HEADS[t]
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
    if isinstance(m, SessionConnect):
        return head + _SC.pack(m.client_id, m.session_id) + _var(m.credentials)
    if isinstance(m, SessionClose):
        return head + _SC.pack(m.client_id, m.session_id)
    if isinstance(m, ChallengeResponse):
        return head + _SC.pack(m.client_id, m.session_id) + _var(m.credentials)
    if isinstance(m, Challenge):
        return head + _CH.pack(m.session_id) + _var(m.data)
    if isinstance(m, IngressMessage):
        return head + _IM.pack(m.client_id, m.session_id, m.correlation_id, m.floor) + _var(m.payload)
    if isinstance(m, SessionEvent):
        return head + _SE.pack(m.session_id, m.correlation_id, int(m.code), -1 if m.leader is None else m.leader) + _var(m.detail.encode())
    if isinstance(m, EgressMessage):
        return head + _EM.pack(m.session_id, m.correlation_id) + _var(m.payload)
    if isinstance(m, StatusRequest):
        return head + _SQ.pack(m.client_id, m.action) + _var(m.credentials)
    if isinstance(m, EgressChannel):
        return head + _EC.pack(m.client_id, m.stream_id) + _var(m.channel.encode())
    if isinstance(m, AdminRequest):
        return head + _AQR.pack(m.client_id, m.request_id, m.action) + _var(m.credentials)
    if isinstance(m, AdminResponse):
        return head + _ARS.pack(m.member, m.request_id, m.action, m.code, m.leader) + _var(m.detail.encode())
    assert isinstance(m, StatusResponse)
    return head + _SR.pack(m.member, m.role.encode()[:16], m.term, m.leader, m.log_position, m.commit_position, m.applied_position, m.base_position, m.dropped,
                          m.unauthenticated, m.bad_channels, m.refused)


class _Reader:
    __slots__ = ("buf", "pos", "template")

    def __init__(self, buf: bytes, template: int, pos: int) -> None:
        self.buf = buf
        self.pos = pos
        self.template = template

    def fail(self, reason: str) -> RemoteProtocolError:
        return RemoteProtocolError("malformed cluster message", template=self.template, length=len(self.buf), offset=self.pos, reason=reason)

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


_H = _HEADER.size
_IM_VAR = _IM_HEAD.size
_IM_BLOCK, _EM_BLOCK, _AR_BLOCK = _IM.size, _EM.size, _AR.size
_EM_VAR = _EM_HEAD.size
_AR_LEN = _AR_HEAD.size


def decode(buf: bytes | bytearray | memoryview) -> object:
    """One message from ``buf`` (exactly: trailing bytes are an error).  A newer
    version's longer fixed block is accepted (its extra fields skipped, as SBE
    says); another schema, an unknown template or a short block is the sender's
    fault."""
    n = len(buf)
    if n < _H:
        raise RemoteProtocolError("malformed cluster message", length=n, reason="empty" if not n else "short_header")
    # Fast paths for the per-order messages (ingress, egress, append acks) with
    # version 0's block: one unpack, no intermediate copy of the whole buffer;
    # anything that does not fit exactly falls through to the checked path.
    t = buf[2] | buf[3] << 8
    if t == 12 and n >= _IM_VAR:
        block, _, schema, _, cid, sid, corr, floor, ln = _IM_HEAD.unpack_from(buf)
        if n == _IM_VAR + ln and block == _IM_BLOCK and schema == SCHEMA_ID:
            return IngressMessage(cid, sid, corr, floor, bytes(buf[_IM_VAR:]))
    elif t == 14 and n >= _EM_VAR:
        block, _, schema, _, sid, corr, ln = _EM_HEAD.unpack_from(buf)
        if n == _EM_VAR + ln and block == _EM_BLOCK and schema == SCHEMA_ID:
            return EgressMessage(sid, corr, bytes(buf[_EM_VAR:]))
    elif t == 4 and n == _AR_LEN:
        block, _, schema, _, src, dst, term, ok, pos, rp = _AR_HEAD.unpack_from(buf)
        if block == _AR_BLOCK and schema == SCHEMA_ID:
            return AppendResponse(src, dst, term, bool(ok), pos, rp)
    block, t, schema, version = _HEADER.unpack_from(buf)
    buf = bytes(buf)
    r = _Reader(buf, t, _H)
    if schema != SCHEMA_ID:
        raise r.fail(f"schema_{schema}_not_{SCHEMA_ID}")
    fmt = _BLOCKS.get(t)
    if fmt is None:
        raise r.fail("unknown_template")
    if version < 1 and t == 21:
        fmt = _SR_V0
    if block < fmt.size:
        raise r.fail(f"block_length_{block}_below_{fmt.size}")
    if _H + block > n:
        raise r.fail("short")
    fields = fmt.unpack_from(buf, _H)
    r.pos = _H + block  # what follows the fixed block: groups, then var data
    if t == 1:
        src, dst, term, lt, lp, pv, tr = fields
        m: object = RequestVote(src, dst, term, lt, lp, bool(pv), bool(tr))
    elif t == 2:
        src, dst, term, g, pv = fields
        m = VoteResponse(src, dst, term, bool(g), bool(pv))
    elif t == 3:
        src, dst, term, prev, prev_term, commit = fields
        entry_block, count = r.fixed(_GROUP)
        if entry_block < _ENTRY_BLOCK:
            raise r.fail(f"entry_block_length_{entry_block}_below_{_ENTRY_BLOCK}")
        entries = []
        unpack, at, total = _ENTRY_FIXED.unpack_from, r.pos, len(buf)
        for _ in range(count):
            if at + entry_block + _LEN.size > total:
                r.pos = at
                raise r.fail("short")
            pos, eterm, ts, kind = unpack(buf, at)
            at += entry_block
            (ln,) = _LEN.unpack_from(buf, at)
            at += _LEN.size
            if at + ln > total:
                r.pos = at
                raise r.fail("short")
            entries.append(Entry(pos, eterm, ts, kind, buf[at: at + ln]))
            at += ln
        r.pos = at
        m = AppendRequest(src, dst, term, prev, prev_term, tuple(entries), commit)
    elif t == 4:
        src, dst, term, ok, pos, rp = fields
        m = AppendResponse(src, dst, term, bool(ok), pos, rp)
    elif t == 5:
        src, dst, term, spos, sterm, length, crc, offset = fields
        data = r.var()
        if offset < 0 or length < 0 or offset + len(data) > length:
            raise r.fail(f"chunk_outside_snapshot:offset={offset},chunk={len(data)},snapshot_length={length}")
        m = InstallSnapshot(src, dst, term, spos, sterm, length, crc, offset, data)
    elif t == 7:
        m = InstallSnapshotResponse(*fields)
    elif t == 6:
        m = TimeoutNow(*fields)
    elif t == 10:
        cid, sid = fields
        m = SessionConnect(cid, sid, r.var() if version >= 1 else b"")
    elif t == 16:
        cid, sid = fields
        m = ChallengeResponse(cid, sid, r.var())
    elif t == 15:
        (sid,) = fields
        m = Challenge(sid, r.var())
    elif t == 11:
        m = SessionClose(*fields)
    elif t == 12:
        cid, sid, corr, floor = fields
        m = IngressMessage(cid, sid, corr, floor, r.var())
    elif t == 13:
        sid, corr, code, leader = fields
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
        sid, corr = fields
        m = EgressMessage(sid, corr, r.var())
    elif t == 20:
        cid, action = fields
        m = StatusRequest(cid, action, r.var() if version >= 1 else b"")
    elif t == 21:
        member, role, *rest = fields
        if len(rest) == 10:
            rest[-1] = bool(rest[-1])
        m = StatusResponse(member, role.rstrip(b"\0").decode(errors="replace"), *rest)
    elif t == 23:
        cid, rid, action = fields
        m = AdminRequest(cid, rid, action, r.var())
    elif t == 24:
        member, rid, action, code, leader = fields
        try:
            m = AdminResponse(member, rid, action, code, leader, r.var().decode())
        except UnicodeDecodeError:
            raise r.fail("detail_not_utf8") from None
    else:
        assert t == 22
        cid, stream_id = fields
        try:
            m = EgressChannel(cid, r.var().decode(), stream_id)
        except UnicodeDecodeError:
            raise r.fail("channel_not_utf8") from None
    r.done()
    return m
