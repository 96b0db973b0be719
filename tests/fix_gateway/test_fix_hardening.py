"""Hostile input to the acceptor over real sockets (issue 14, FIX gateway items 1-5): each test
sends exactly the input that used to crash the process or grow it without bound, then checks
the gateway refused it and kept serving."""

import errno
import socket
import struct
import time
import zlib

import pytest

from tickline.fix_gateway.codec import MAX_SEQ_NUM, Framer, encode, parse, py_parse, GarbledMessage
from tickline.fix_gateway.io import AcceptorConfig, FixAcceptor
from tickline.fix_gateway.session import (
    ApplicationMessage, Disconnect, LoggedOn, RejectSent, Session, SessionConfig, State, utc_timestamp,
)
from tickline.fix_gateway.store import FileStore, MemoryStore, StoreError

SID = "FIX.4.4:GW->CLI"


class Recorder:
    def __init__(self):
        self.events, self.unknown = [], []

    def __call__(self, sid, ev):
        self.events.append((sid, ev))

    def of(self, typ):
        return [ev for _, ev in self.events if isinstance(ev, typ)]


def make_acceptor(loop, sessions=("CLI",), **cfg):
    cfg.setdefault("pending_timeout_s", 2)
    cfg.setdefault("max_message_size", 4096)
    rec = Recorder()
    a = FixAcceptor(AcceptorConfig(port=0, **cfg), on_event=rec, on_unknown=rec.unknown.append)
    for t in sessions:
        a.add_session(SessionConfig(sender_comp_id="GW", target_comp_id=t, role="acceptor"))
    a.rec = rec
    loop.add(a)
    return a


def msg(mt, seq, body=(), sender="CLI", begin="FIX.4.4"):
    return encode(begin, [(35, mt), (49, sender), (56, "GW"), (34, seq), (52, utc_timestamp(time.time())), *body])


def logon(c, loop, sender="CLI", extra=()):
    c.send(msg("A", 1, [(98, 0), (108, 30), *extra], sender=sender))
    loop.run_until(lambda: c.poll() and b"\x0135=A\x01" in c.buf, what="logon reply")
    c.buf = b""


def received(buf):
    f = Framer()
    f.feed(buf)
    return [parse(fr.data) for fr in f]


def still_serves(loop, c, seq, req="T1"):
    """The session on ``c`` answers a TestRequest: the gateway and the session are alive."""
    c.buf = b""
    c.send(msg("1", seq, [(112, req)]))
    loop.run_until(lambda: c.poll() and f"112={req}".encode() in c.buf, what="heartbeat for test request")


# -- item 1: non-ASCII digits ----------------------------------------------------------------


def test_data_length_with_superscript_digit_before_logon_does_not_escape(loop, raw_clients):
    a = make_acceptor(loop, pending_timeout_s=0.5)
    bad = raw_clients(a.port)
    # 95=<0xB2> (superscript two): str.isdigit() said yes, int() raised ValueError out of do_work
    bad.send(msg("A", 1, [(98, 0), (108, 30), (95, "\xb2"), (96, "xx")]))
    with pytest.raises(GarbledMessage, match="reason=bad_data_length tag=95"):
        py_parse(msg("A", 1, [(95, "\xb2"), (96, "xx")]))
    good = raw_clients(a.port)
    logon(good, loop)
    loop.run_until(lambda: not bad.poll(), what="the garbled first message's connection closed at the timeout")
    assert a.rec.unknown[-1].reason == "no_logon_within timeout_s=0.5"
    still_serves(loop, good, 2)


@pytest.mark.parametrize("tag", [108, 36, 7])
def test_unicode_digits_after_logon_end_in_reject_or_logout(loop, raw_clients, tag):
    a = make_acceptor(loop)
    c = raw_clients(a.port)
    if tag == 108:  # HeartBtInt on the Logon: Logout, connection closed, process alive
        c.send(msg("A", 1, [(98, 0), (108, "3\xb2")]))
        loop.run_until(lambda: not c.poll(), what="logout for bad HeartBtInt")
        [lo] = received(c.buf)
        assert lo.msg_type == "5" and lo[58] == "HeartBtInt(108) missing or invalid"
        c2 = raw_clients(a.port)
        logon(c2, loop)
        still_serves(loop, c2, 2)
        return
    logon(c, loop)
    if tag == 36:
        c.send(msg("4", 2, [(36, "1\xb9")]))  # superscript one: isdigit() yes, int() no
        reason = 6  # incorrect data format
    else:
        c.send(msg("2", 2, [(7, "\xb2"), (16, 0)]))
        reason = 5  # value incorrect
    loop.run_until(lambda: c.poll() and b"\x0135=3\x01" in c.buf, what="reject")
    [rej] = received(c.buf)
    assert (rej[45], rej[371], rej[373]) == ("2", str(tag), str(reason))
    still_serves(loop, c, 3)


def test_exception_from_one_connection_ends_that_connection_only(loop, raw_clients):
    # any exception out of a handler for one connection's bytes ends that connection, never the process
    a = make_acceptor(loop, sessions=("CLI", "OTHER"))
    a.session("FIX.4.4:GW->OTHER")._on_test_request = lambda m, now: 1 / 0
    other, c = raw_clients(a.port), raw_clients(a.port)
    logon(other, loop, sender="OTHER")
    logon(c, loop)
    other.send(msg("1", 2, [(112, "boom")], sender="OTHER"))
    loop.run_until(lambda: not other.poll(), what="failing session disconnected")
    [lo] = received(other.buf)
    assert lo.msg_type == "5" and lo[58] == "Internal error processing message"
    assert Disconnect("error_processing_input error=ZeroDivisionError", "local") in a.rec.of(Disconnect)
    still_serves(loop, c, 2)


def test_exception_from_the_application_handler_logs_that_session_out(loop, raw_clients):
    a = make_acceptor(loop)

    def app(sid, ev):
        if isinstance(ev, ApplicationMessage):
            raise KeyError("bug")
    a.on_event = app
    c = raw_clients(a.port)
    logon(c, loop)
    c.send(msg("D", 2, [(11, "X")]))
    loop.run_until(lambda: c.poll() and b"\x0135=5\x01" in c.buf, what="logout")
    assert received(c.buf)[0][58] == "Internal error processing message"
    assert a.session(SID).state == State.LOGOUT_SENT


# -- item 2: numbers range-checked where they enter ---------------------------------------


def test_sequence_reset_to_2_pow_64_is_rejected_not_packed(loop, raw_clients, tmp_path):
    rec = Recorder()
    a = FixAcceptor(AcceptorConfig(port=0, pending_timeout_s=2), on_event=rec)
    store = FileStore(tmp_path / "gw.log", "always")
    a.add_session(SessionConfig(sender_comp_id="GW", target_comp_id="CLI"), store)
    loop.add(a)
    c = raw_clients(a.port)
    logon(c, loop)
    c.send(msg("4", 2, [(36, 2**64)]))  # Reset mode: struct.pack("<Q") raised and the daemon exited
    loop.run_until(lambda: c.poll() and b"\x0135=3\x01" in c.buf, what="reject")
    [rej] = received(c.buf)
    assert (rej[371], rej[373], rej[58]) == ("36", "5", f"NewSeqNo(36) out of range max={MAX_SEQ_NUM}")
    assert store.next_target_seq == 2
    c.send(msg("0", 2**64))  # a MsgSeqNum beyond the range is no sequence number at all
    loop.run_until(lambda: not c.poll(), what="logout for bad MsgSeqNum")
    assert received(c.buf)[-1][58] == "MsgSeqNum(34) missing or invalid"


def _record(payload):
    return struct.pack("<II", len(payload), zlib.crc32(payload)) + payload


@pytest.mark.parametrize("payload,field,value", [
    (struct.pack("<BQQ", 2, 2**64 - 1, 1), "next_sender_seq", 2**64 - 1),
    (struct.pack("<BQQ", 2, 0, 5), "next_sender_seq", 0),
    (struct.pack("<BQQ", 2, 3, 0), "next_target_seq", 0),
    (struct.pack("<BQ", 1, 0) + b"8=FIX.4.4\x01", "message_seq", 0),
])
def test_store_record_out_of_range_is_a_clear_error(tmp_path, payload, field, value):
    p = tmp_path / "s.log"
    p.write_bytes(_record(struct.pack("<Bd", 3, 0.0)) + _record(payload))
    with pytest.raises(StoreError, match=f"fault=file path={p} offset=17 field={field} value={value} "):
        FileStore(p)
    with pytest.raises(ValueError, match="sequence number out of range: fault=local seq=0"):
        MemoryStore().save(0, b"x")


def test_sender_sequence_exhausted_is_our_error_not_an_overflow():
    st = MemoryStore()
    st.next_sender_seq = MAX_SEQ_NUM + 1
    s = Session(SessionConfig(sender_comp_id="GW", target_comp_id="CLI"), st)
    with pytest.raises(ValueError, match="sequence numbers exhausted: fault=local"):
        s.send("D", [(11, "x")], time.time())


# -- item 3: memory of unidentified connections and of the out-of-order queue --------------


def test_junk_before_logon_is_capped_at_max_message_size(loop, raw_clients):
    a = make_acceptor(loop, max_message_size=4096, pending_timeout_s=30)
    bad = raw_clients(a.port)
    sent = 0
    try:  # junk that never completes a message: the gateway buffered all of it until the logon timeout
        for _ in range(64):
            bad.send(b"8=FIX.4.4\x019=4000\x01" + b"x" * 1000)
            sent += 1
            loop.run_for(2)
    except OSError:
        pass
    loop.run_until(lambda: not bad.poll(), what="junk connection closed")
    assert a.rec.unknown[-1].reason.startswith("too_much_before_logon received=")
    assert int(a.rec.unknown[-1].reason.split("received=")[1].split()[0]) <= 4096 + 65536
    assert a.connections == 0 and not a._pending


def test_out_of_order_queue_is_bounded_then_logout(loop, raw_clients):
    rec = Recorder()
    a = FixAcceptor(AcceptorConfig(port=0, pending_timeout_s=2), on_event=rec)
    a.add_session(SessionConfig(sender_comp_id="GW", target_comp_id="CLI", max_queued_messages=50))
    loop.add(a)
    c = raw_clients(a.port)
    logon(c, loop)
    c.send(b"".join(msg("0", s) for s in range(10, 61)))  # 51 messages above the gap at 2
    loop.run_until(lambda: not c.poll(), what="logout when the queue is full")
    lo = received(c.buf)[-1]
    assert lo.msg_type == "5" and lo[58] == "Too many messages queued above a sequence gap: expected=2 max_messages=50 max_bytes=16777216"
    assert rec.of(Disconnect)[-1].reason.startswith("queue_full queued=50 ")
    s = a.session(SID)
    assert not s._queue and s._queued_bytes == 0


def test_out_of_order_queue_bytes_bound():
    s = Session(SessionConfig(sender_comp_id="GW", target_comp_id="CLI", max_queued_bytes=1000), MemoryStore())
    s.connection_made(time.time())
    s.receive_data(msg("A", 1, [(98, 0), (108, 30)]), time.time())
    s.events()
    big = [msg("D", n, [(58, "y" * 300)]) for n in range(5, 9)]
    for m in big:
        s.receive_data(m, time.time())
    assert s.events()[-1].reason == f"queue_full queued=2 queued_bytes={2 * len(big[0])} expected=2 received=7"
    assert s.state == State.DISCONNECTED


# -- item 4: connection caps, EMFILE ----------------------------------------------------------


def test_max_connections_and_per_address(loop, raw_clients):
    a = make_acceptor(loop, max_connections=6, max_connections_per_address=4)
    first = [raw_clients(a.port) for _ in range(4)]
    loop.run_until(lambda: a.connections == 4, what="four pending")
    extra = raw_clients(a.port)
    loop.run_until(lambda: not extra.poll(), what="fifth from the same address refused")
    assert a.counters["too_many_connections_from_address"] == 1
    # another loopback address counts separately, up to the acceptor's cap
    others = []
    for i in range(3):
        s = socket.socket()
        s.bind((f"127.0.0.{2 + i}", 0))
        s.connect(("127.0.0.1", a.port))
        others.append(s)
    loop.run_until(lambda: a.counters["too_many_connections"] == 1, what="seventh refused by max_connections")
    assert a.connections == 6
    for s in others:
        s.close()
    for c in first[1:]:
        c.close()
    logon(first[0], loop)  # a held pending connection still logs on
    still_serves(loop, first[0], 2)


def test_accept_emfile_is_survived(loop):
    # a real EMFILE: the process's descriptor limit lowered until accept() fails, then raised again
    import os
    import resource

    a = make_acceptor(loop)
    clients = [socket.socket() for _ in range(6)]  # made first: connecting needs no new descriptor
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        # a new descriptor takes the lowest free number, and EMFILE comes when that number is at
        # the limit: count from it, not from how many are open (after other tests the table has holes)
        lowest_free = os.dup(0)
        os.close(lowest_free)
        resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free + 2, hard))
        for c in clients:
            c.connect(("127.0.0.1", a.port))
        loop.run_until(lambda: a.counters["accept_failed"] >= 1, what="accept failing with EMFILE")
        assert a.connections < 6  # the acceptor is still alive, serving what it has
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    loop.run_until(lambda: a.connections == 6, what="the rest accepted once descriptors are back")
    for c in clients:
        c.setblocking(False)
    first = clients[0]
    first.sendall(msg("A", 1, [(98, 0), (108, 30)]))
    buf = bytearray()

    def got_logon():
        try:
            buf.extend(first.recv(65536))
        except BlockingIOError:
            pass
        return b"\x0135=A\x01" in buf
    loop.run_until(got_logon, what="logon after EMFILE")
    for c in clients:
        c.close()


# -- item 5: one max_message_size ---------------------------------------------------------------


def test_acceptor_max_message_size_applies_after_logon_too(loop, raw_clients):
    a = make_acceptor(loop, max_message_size=4096)  # the session sets none of its own
    assert a.session(SID)._framer.max_message_size == 4096  # it fell back to 1 MiB
    c = raw_clients(a.port)
    logon(c, loop)
    big = msg("D", 2, [(58, "x" * 5000)])
    c.send(big)
    loop.run_until(lambda: not c.poll(), what="logout for oversized")
    assert received(c.buf)[-1][58] == f"Message too large: size={len(big)} max=4096"


def test_session_max_message_size_above_the_acceptors_is_a_config_error():
    from tickline.fix_gateway.config import ConfigError

    a = FixAcceptor(AcceptorConfig(port=0, max_message_size=4096))
    with pytest.raises(ConfigError, match="session max_message_size above the acceptor's: fault=config "
                                          "session=FIX.4.4:GW->CLI key=max_message_size value=8192"):
        a.add_session(SessionConfig(sender_comp_id="GW", target_comp_id="CLI", max_message_size=8192))
    s = a.add_session(SessionConfig(sender_comp_id="GW", target_comp_id="CLI", max_message_size=1024))
    assert s._framer.max_message_size == 1024


# -- item 6: field injection ---------------------------------------------------------------------


@pytest.mark.parametrize("native", [True, False])
def test_values_with_soh_are_refused_by_both_encoders(native):
    from tickline.fix_gateway import codec

    enc = codec.encode if native else codec.py_encode
    if native:
        assert codec.NATIVE
        # the native encoder leaves such a value to the Python code (None: not mine)
        assert codec._native_encode("FIX.4.4", [(35, "8"), (58, "fill\x0139=2")]) is None
        assert codec._native_encode("FIX.4.4", [(35, "8"), (-5, "x")]) is None
    with pytest.raises(ValueError, match="FIX encode: fault=local reason=soh_in_value tag=58"):
        enc("FIX.4.4", [(35, "8"), (58, "fill\x0139=2\x0110=000")])
    with pytest.raises(ValueError, match="reason=soh_in_value tag=96"):
        enc("FIX.4.4", [(35, "B"), (96, "a\x01b")])  # a data field without its length field before it
    with pytest.raises(ValueError, match="reason=bad_tag tag=-5"):
        enc("FIX.4.4", [(35, "8"), (-5, "x")])
    # raw data where FIX allows it: right after its length field, which gives its length
    raw = enc("FIX.4.4", [(35, "B"), (148, "h"), (95, 3), (96, "a\x01b")])
    assert codec.parse_checked(raw).get_all(96) == ["a\x01b"]
    # '=' in a value is FIX: the field splits at its first '=' and the value comes back whole
    assert codec.parse_checked(enc("FIX.4.4", [(35, "8"), (58, "a=b=c")]))[58] == "a=b=c"


def test_venue_text_with_soh_reaches_the_client_as_one_text_field(loop, raw_clients):
    from tickline.fix_gateway.bridge import ExecType, ExecutionReport, FixBridge, OrdStatus, Side
    from tickline.transport.agent import CompositeAgent

    class Venue:  # a venue (the report stream's other end) whose report text carries SOH
        def __init__(self):
            self.out = []

        def offer(self, sid, req):
            self.out.append((sid, ExecutionReport(1, 1, req.cl_ord_id, req.symbol, req.side, ExecType.NEW,
                                                  OrdStatus.NEW, req.price, None, 0, req.quantity, 0, None, 0, None,
                                                  "ok\x0139=2\x0132=100", "")))
            self.out.append((sid, ExecutionReport(1, 2, req.cl_ord_id, "BAD\x01SYM", req.side, ExecType.NEW,
                                                  OrdStatus.NEW, req.price, None, 0, req.quantity, 0, None, 0, None,
                                                  "", "")))
            return True

        def poll(self, handler, limit):
            n = 0
            while self.out:
                handler(*self.out.pop(0))
                n += 1
            return n

    acc = FixAcceptor(AcceptorConfig(port=0))
    acc.add_session(SessionConfig(sender_comp_id="GW", target_comp_id="CLI"))
    v = Venue()
    b = FixBridge(acc, v, v, clock=time.time)
    acc.on_event = b.on_event
    loop.add(CompositeAgent([acc, b]))
    acc.on_start()
    c = raw_clients(acc.port)
    logon(c, loop)
    c.send(msg("D", 2, [(11, "O1"), (21, "1"), (55, "IBM"), (54, "1"), (60, utc_timestamp(time.time())),
                        (38, "100"), (40, "2"), (44, "10")]))
    loop.run_until(lambda: c.poll() and b"\x0135=8\x01" in c.buf, what="execution report")
    loop.run_for(20)
    c.poll()
    [er] = [m for m in received(c.buf) if m.msg_type == "8"]
    assert er[58] == "ok 39=2 32=100" and er.get_all(39) == ["0"] and 32 not in er
    assert b.reports_refused == 1  # the symbol with SOH: not sendable, kept as unroutable
    still_serves(loop, c, 3)


def test_a_peer_that_requests_resends_but_never_reads_is_dropped(loop, raw_clients):
    # each ResendRequest 1..infinity queues every stored message again for a socket nobody reads
    a = make_acceptor(loop, max_send_buffer=1 << 20, max_message_size=1 << 20)
    c = raw_clients(a.port)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    logon(c, loop)
    for i in range(500):
        a.submit(SID, "8", [(37, f"X{i}"), (58, "r" * 1000)])
    loop.run_for(10)
    try:
        for seq in range(2, 42):
            c.send(msg("2", seq, [(7, 1), (16, 0)]))
            loop.run_for(3)
    except OSError:
        pass  # the gateway hung up mid-way: what this test waits for
    loop.run_until(lambda: a.session(SID).state == State.DISCONNECTED, what="slow consumer dropped")
    d = a.rec.of(Disconnect)[-1]
    assert d.reason.startswith("slow_consumer unsent=") and d.reason.endswith(" max_send_buffer=1048576")
    assert a.entries[SID].sock is None and not a.entries[SID].out


def test_numbers_longer_than_int_takes_are_rejected_not_raised():
    # int() refuses strings of more than 4300 digits with ValueError: such a quantity, price or
    # group count must end in a reject, like any other bad value
    from tickline.fix_gateway.bridge import TranslationError, from_fix
    from tickline.fix_gateway.dictionary import ValidationError, Validator, load_dictionary

    huge = "1" * 5000
    base = [(11, "O1"), (55, "IBM"), (54, "1"), (60, utc_timestamp(time.time())), (38, "10"), (40, "2"), (44, "10")]
    for tag in (38, 44):
        m = parse(msg("D", 2, [(t, huge if t == tag else v) for t, v in base]))
        with pytest.raises(TranslationError) as e:
            from_fix(m, time.time())
        assert e.value.tag == tag
    v = Validator(load_dictionary("FIX44"), None)
    with pytest.raises(ValidationError) as e:
        v.validate(parse(msg("D", 2, base + [(453, huge), (448, "P"), (447, "D"), (452, "1")])))
    assert e.value.tag == 453
