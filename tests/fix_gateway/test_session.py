"""Every session rule on the state machine, with a fake clock and exact wire fields."""

import pytest

from tickline.fix_gateway.codec import Framer, encode, parse_checked
from tickline.fix_gateway.config import ConfigError
from tickline.fix_gateway.session import (
    TRANSITIONS, ApplicationMessage, Disconnect, DuplicateIgnored, GapDetected, GarbledReceived, LocalProtocolError,
    LoggedOn, LoggedOut, LogonRefused, RejectReceived, RejectSent, ResendAnswered, SequenceReset, Session, SessionConfig, State,
    parse_utc_timestamp, utc_timestamp,
)
from tickline.fix_gateway.store import MemoryStore

T0 = 1767268800.0  # 2026-01-01 12:00:00 UTC
TS0 = "20260101-12:00:00.000"


def ts(now):
    return utc_timestamp(now)


def cfg(**kw):
    base = dict(sender_comp_id="GW", target_comp_id="CLI", begin_string="FIX.4.4", role="acceptor",
                heartbeat_interval_s=30)
    base.update(kw)
    return SessionConfig(**base)


def peer(mt, seq, body=(), now=T0, sender="CLI", target="GW", begin="FIX.4.4", hdr=()):
    return encode(begin, [(35, mt), (49, sender), (56, target), (34, seq), (52, ts(now)), *hdr, *body])


def out(s):
    """Messages the session wrote, each as its field list without 8, 9, 10 (framing checked on the way)."""
    f = Framer()
    f.feed(s.data_to_send())
    msgs = []
    for fr in f:
        m = parse_checked(fr.data)
        msgs.append([(t, v) for t, v in m.fields if t not in (8, 9, 10)])
    return msgs


def hdr(mt, seq, now=T0, sender="GW", target="CLI"):
    return [(35, mt), (49, sender), (56, target), (34, str(seq)), (52, ts(now))]


def logged_on_acceptor(store=None, **kw):
    s = Session(cfg(**kw), store or MemoryStore())
    s.connection_made(T0)
    s.receive_data(peer("A", 1, [(98, 0), (108, 30)]), T0)
    assert out(s) == [hdr("A", 1) + [(98, "0"), (108, "30")]]
    assert s.events() == [LoggedOn(30, False)]
    return s


# -- time helpers ------------------------------------------------------------

def test_utc_timestamp_roundtrip():
    assert utc_timestamp(T0 + 0.25) == "20260101-12:00:00.250"
    assert parse_utc_timestamp("20260101-12:00:00.250") == T0 + 0.25
    assert parse_utc_timestamp("20260101-12:00:00") == T0
    assert parse_utc_timestamp("2026-01-01") is None and parse_utc_timestamp("20261301-12:00:00") is None


# -- config ------------------------------------------------------------------

@pytest.mark.parametrize("kw,key", [
    (dict(begin_string="FIX.4.1"), "begin_string"),
    (dict(role="both"), "role"),
    (dict(sender_comp_id=""), "sender_comp_id"),
    (dict(heartbeat_interval_s=-1), "heartbeat_interval_s"),
])
def test_config_errors_name_the_key(kw, key):
    with pytest.raises(ConfigError, match=f"fault=config key={key} "):
        cfg(**kw)


def test_transitions_table_is_the_only_way():
    s = Session(cfg(), MemoryStore())
    with pytest.raises(AssertionError, match="from=disconnected to=active"):
        s._set_state(State.ACTIVE)
    assert State.ACTIVE not in TRANSITIONS[State.DISCONNECTED]


# -- logon -------------------------------------------------------------------

def test_acceptor_logon_replies_with_same_heartbeat():
    s = logged_on_acceptor()
    assert s.state == State.ACTIVE and s.store.next_target_seq == 2 and s.store.next_sender_seq == 2


def test_initiator_logon_and_reply():
    s = Session(cfg(role="initiator", heartbeat_interval_s=1, username="u", password="p"), MemoryStore())
    s.connection_made(T0)
    assert out(s) == [hdr("A", 1) + [(98, "0"), (108, "1"), (553, "u"), (554, "p")]]
    s.receive_data(peer("A", 1, [(98, 0), (108, 1)]), T0 + 0.1)
    assert s.events() == [LoggedOn(1, False)] and s.state == State.ACTIVE


def test_fixt_logon_carries_default_appl_ver_id():
    s = Session(cfg(role="initiator", begin_string="FIXT.1.1"), MemoryStore())
    s.connection_made(T0)
    assert out(s) == [hdr("A", 1) + [(98, "0"), (108, "30"), (1137, "9")]]


def test_reset_seq_num_flag_on_logon_is_honoured():
    st = MemoryStore()
    st.next_sender_seq, st.next_target_seq = 50, 40
    s = Session(cfg(), st)
    s.connection_made(T0)
    s.receive_data(peer("A", 1, [(98, 0), (108, 30), (141, "Y")]), T0)
    assert out(s) == [hdr("A", 1) + [(98, "0"), (108, "30"), (141, "Y")]]
    assert s.events() == [LoggedOn(30, True)] and (st.next_sender_seq, st.next_target_seq) == (2, 2)


def test_initiator_reset_on_logon_resets_store():
    st = MemoryStore()
    st.next_sender_seq, st.next_target_seq = 9, 9
    s = Session(cfg(role="initiator", reset_on_logon=True), st)
    s.connection_made(T0)
    assert out(s) == [hdr("A", 1) + [(98, "0"), (108, "30"), (141, "Y")]]


def test_first_message_not_logon_disconnects_without_reply():
    s = Session(cfg(), MemoryStore())
    s.connection_made(T0)
    s.receive_data(peer("D", 1, [(11, "X")]), T0)
    assert out(s) == []
    assert s.events() == [Disconnect("first_message_not_logon msg_type=D", "remote")]
    assert s.state == State.DISCONNECTED and s.store.next_target_seq == 1


def test_logon_with_wrong_comp_id_rejected_and_disconnected():
    s = Session(cfg(), MemoryStore())
    s.connection_made(T0)
    s.receive_data(peer("A", 1, [(98, 0), (108, 30)], sender="EVIL"), T0)
    assert out(s) == [
        hdr("3", 1) + [(45, "1"), (371, "49"), (372, "A"), (373, "9"), (58, "CompID problem")],
        hdr("5", 2) + [(58, "CompID problem")],
    ]
    ev = s.events()
    assert isinstance(ev[0], RejectSent) and ev[-1].reason.startswith("wrong_comp_id ") and ev[-1].fault == "remote"


def test_logon_refused_by_authenticator():
    # the hook gets a LogonRequest; its reason is for the log and the event, the peer reads "Logon refused"
    hook = lambda r: None if r.message.get(554) == "secret" else "bad password"
    st = MemoryStore()
    s = Session(cfg(), st, authenticator=hook)
    s.connection_made(T0)
    s.receive_data(peer("A", 1, [(98, 0), (108, 30), (553, "u"), (554, "nope")]), T0)
    assert out(s) == [hdr("5", 1) + [(58, "Logon refused")]]
    assert s.events() == [LogonRefused("bad password", None), Disconnect("logon_refused reason=bad password", "remote")]
    assert (st.next_sender_seq, st.next_target_seq, st.messages) == (1, 1, {})  # nothing stored for the refused peer
    s2 = Session(cfg(), MemoryStore(), authenticator=hook)
    s2.connection_made(T0)
    s2.receive_data(peer("A", 1, [(98, 0), (108, 30), (553, "u"), (554, "secret")]), T0)
    assert s2.events() == [LoggedOn(30, False)]


def test_logon_missing_heartbeat_interval():
    s = Session(cfg(), MemoryStore())
    s.connection_made(T0)
    s.receive_data(peer("A", 1, [(98, 0)]), T0)
    assert out(s) == [hdr("5", 1) + [(58, "HeartBtInt(108) missing or invalid")]]
    assert s.state == State.DISCONNECTED


def test_logon_seq_too_low_logs_out():
    st = MemoryStore()
    st.next_target_seq = 5
    s = Session(cfg(), st)
    s.connection_made(T0)
    s.receive_data(peer("A", 3, [(98, 0), (108, 30)]), T0)
    assert out(s) == [hdr("5", 1) + [(58, "MsgSeqNum too low, expecting 5 but received 3")]]
    assert s.events()[-1] == Disconnect("seq_num_too_low expected=5 received=3", "remote")


def test_logon_seq_too_high_logs_on_then_resend_request():
    s = Session(cfg(), MemoryStore())
    s.connection_made(T0)
    s.receive_data(peer("A", 4, [(98, 0), (108, 30)]), T0)
    assert out(s) == [hdr("A", 1) + [(98, "0"), (108, "30")], hdr("2", 2) + [(7, "1"), (16, "0")]]
    assert s.events() == [LoggedOn(30, False), GapDetected(1, 4)]
    assert s.store.next_target_seq == 1
    # the peer gap-fills 1..4 (its Logon included) and the session carries on at 5
    s.receive_data(peer("4", 1, [(123, "Y"), (36, 5)], hdr=[(43, "Y"), (122, ts(T0))]), T0)
    assert s.store.next_target_seq == 5 and s.events() == [SequenceReset(5, True)]


def test_logon_timeout():
    s = Session(cfg(logon_timeout_s=5), MemoryStore())
    s.connection_made(T0)
    assert s.next_deadline() == T0 + 5
    s.tick(T0 + 4.9)
    assert s.events() == []
    s.tick(T0 + 5)
    assert s.events() == [Disconnect("logon_timeout timeout_s=5", "remote")]


def test_wrong_begin_string_before_logon_disconnects():
    s = Session(cfg(), MemoryStore())
    s.connection_made(T0)
    s.receive_data(peer("A", 1, [(98, 0), (108, 30)], begin="FIX.4.2"), T0)
    assert out(s) == [] and s.events() == [Disconnect("wrong_begin_string expected=FIX.4.4 received=FIX.4.2", "remote")]


# -- heartbeats and test requests ---------------------------------------------

def test_heartbeat_sent_after_interval_of_silence():
    s = logged_on_acceptor()
    assert s.next_deadline() == T0 + 30
    s.tick(T0 + 29.9)
    assert out(s) == []
    s.tick(T0 + 30)
    assert out(s) == [hdr("0", 2, T0 + 30)]


def test_test_request_answered_with_heartbeat():
    s = logged_on_acceptor()
    s.receive_data(peer("1", 2, [(112, "PING")], now=T0 + 1), T0 + 1)
    assert out(s) == [hdr("0", 2, T0 + 1) + [(112, "PING")]]
    assert s.store.next_target_seq == 3


def test_test_request_without_id_rejected():
    s = logged_on_acceptor()
    s.receive_data(peer("1", 2), T0)
    assert out(s) == [hdr("3", 2) + [(45, "2"), (371, "112"), (372, "1"), (373, "1"), (58, "Required tag missing")]]


def test_missed_heartbeats_test_request_then_disconnect():
    s = logged_on_acceptor(heartbeat_interval_s=10)
    # the acceptor takes the peer's HeartBtInt (30 in the helper), not its own setting
    hb = s.heartbeat_interval_s
    s.tick(T0 + 1.2 * hb)
    assert out(s) == [hdr("1", 2, T0 + 1.2 * hb) + [(112, "TEST-1")]]
    s.tick(T0 + 2.4 * hb - 0.01)
    assert s.events() == []
    s.tick(T0 + 2.4 * hb)
    assert s.events() == [Disconnect(f"heartbeat_timeout silent_s={2.4 * hb:.3f} heartbeat_interval_s={hb}", "remote")]


def test_heartbeat_answering_test_request_clears_it():
    s = logged_on_acceptor()
    s.tick(T0 + 36)
    assert out(s)[0][5] == (112, "TEST-1")
    s.receive_data(peer("0", 2, [(112, "TEST-1")], now=T0 + 37), T0 + 37)
    s.tick(T0 + 72)  # 2.4 x 30 after T0, but input came at T0+37
    assert [e for e in s.events() if isinstance(e, Disconnect)] == []
    assert s._t.test_request_id is None


# -- sequence numbers ----------------------------------------------------------

def test_app_message_delivered_and_counted():
    s = logged_on_acceptor()
    s.receive_data(peer("D", 2, [(11, "O1")]), T0)
    [ev] = s.events()
    assert isinstance(ev, ApplicationMessage) and ev.message[11] == "O1" and not ev.poss_dup
    assert s.store.next_target_seq == 3


def test_gap_queues_and_resend_request_then_drains_in_order():
    s = logged_on_acceptor()
    s.receive_data(peer("D", 4, [(11, "O4")]) + peer("D", 5, [(11, "O5")]), T0)
    assert out(s) == [hdr("2", 2) + [(7, "2"), (16, "0")]]  # one request for the gap, not two
    assert s.events() == [GapDetected(2, 4), GapDetected(2, 5)]
    s.receive_data(peer("D", 2, [(11, "O2")], hdr=[(43, "Y"), (122, ts(T0))]) +
                   peer("D", 3, [(11, "O3")], hdr=[(43, "Y"), (122, ts(T0))]), T0)
    got = [e.message[11] for e in s.events() if isinstance(e, ApplicationMessage)]
    assert got == ["O2", "O3", "O4", "O5"] and s.store.next_target_seq == 6


def test_seq_too_low_without_possdup_logs_out():
    s = logged_on_acceptor()
    s.receive_data(peer("D", 2, [(11, "a")]) + peer("D", 2, [(11, "b")]), T0)
    assert out(s) == [hdr("5", 2) + [(58, "MsgSeqNum too low, expecting 3 but received 2")]]
    ev = s.events()
    assert isinstance(ev[0], ApplicationMessage) and ev[1] == Disconnect("seq_num_too_low expected=3 received=2", "remote")


def test_duplicate_possdup_ignored():
    s = logged_on_acceptor()
    s.receive_data(peer("D", 2, [(11, "a")]), T0)
    s.events()
    s.receive_data(peer("D", 2, [(11, "a")], hdr=[(43, "Y"), (122, ts(T0))]), T0)
    assert s.events() == [DuplicateIgnored(2)] and out(s) == [] and s.store.next_target_seq == 3


def test_possdup_without_orig_sending_time_rejected():
    s = logged_on_acceptor()
    s.receive_data(peer("D", 2, [(11, "a")], hdr=[(43, "Y")]), T0)
    assert out(s) == [hdr("3", 2) + [(45, "2"), (371, "122"), (372, "D"), (373, "1"), (58, "Required tag missing")]]
    assert s.store.next_target_seq == 3


def test_orig_sending_time_after_sending_time_rejected_and_logout():
    s = logged_on_acceptor()
    s.receive_data(peer("D", 2, [(11, "a")], hdr=[(43, "Y"), (122, ts(T0 + 5))]), T0)
    assert out(s) == [hdr("3", 2) + [(45, "2"), (371, "122"), (372, "D"), (373, "10"), (58, "SendingTime accuracy problem")],
                      hdr("5", 3) + [(58, "SendingTime accuracy problem")]]


def test_sending_time_accuracy_checked_and_configurable():
    s = logged_on_acceptor(max_latency_s=2)
    s.receive_data(peer("D", 2, [(11, "a")], now=T0 - 3), T0)
    assert out(s) == [hdr("3", 2) + [(45, "2"), (371, "52"), (372, "D"), (373, "10"), (58, "SendingTime accuracy problem")],
                      hdr("5", 3) + [(58, "SendingTime accuracy problem")]]
    s2 = logged_on_acceptor(check_latency=False)
    s2.receive_data(peer("D", 2, [(11, "a")], now=T0 - 3600), T0)
    assert isinstance(s2.events()[0], ApplicationMessage)


def test_wrong_comp_id_after_logon_rejected_and_disconnected():
    s = logged_on_acceptor()
    s.receive_data(peer("D", 2, [(11, "a")], target="OTHER"), T0)
    assert out(s) == [hdr("3", 2) + [(45, "2"), (371, "56"), (372, "D"), (373, "9"), (58, "CompID problem")],
                      hdr("5", 3) + [(58, "CompID problem")]]
    assert s.state == State.DISCONNECTED


def test_garbled_ignored_without_seq_change():
    s = logged_on_acceptor()
    bad = bytearray(peer("D", 2, [(11, "a")]))
    bad[-3] = ord("0") if bad[-3] != ord("0") else ord("1")  # CheckSum digit
    s.receive_data(bytes(bad) + peer("D", 2, [(11, "b")]), T0)
    ev = s.events()
    assert ev[0] == GarbledReceived("bad_checksum")
    assert ev[1].message[11] == "b" and s.store.next_target_seq == 3 and out(s) == []


def test_oversized_message_logout_and_disconnect():
    s = logged_on_acceptor(max_message_size=256)
    big = peer("D", 2, [(58, "x" * 400)])
    s.receive_data(big, T0)
    assert out(s) == [hdr("5", 2) + [(58, f"Message too large: size={len(big)} max=256")]]
    assert s.events() == [Disconnect(f"oversized_message size={len(big)} max=256", "remote")]
    assert s.store.next_target_seq == 2


# -- resend requests -----------------------------------------------------------

def test_resend_request_replays_app_and_gap_fills_admin():
    s = logged_on_acceptor()  # sent: 1 Logon
    s.send("8", [(37, "X1"), (17, "E1")], T0 + 1)  # 2
    s.tick(T0 + 31)  # 3 heartbeat? no: last_sent T0+1 -> heartbeat at T0+31
    s.send("8", [(37, "X2"), (17, "E2")], T0 + 32)  # 4
    s.data_to_send()
    s.events()
    s.receive_data(peer("2", 2, [(7, 1), (16, 0)], now=T0 + 33), T0 + 33)
    t = ts(T0 + 33)
    assert out(s) == [
        [(35, "4"), (49, "GW"), (56, "CLI"), (34, "1"), (43, "Y"), (52, t), (122, t), (123, "Y"), (36, "2")],
        [(35, "8"), (49, "GW"), (56, "CLI"), (34, "2"), (43, "Y"), (52, t), (122, ts(T0 + 1)), (37, "X1"), (17, "E1")],
        [(35, "4"), (49, "GW"), (56, "CLI"), (34, "3"), (43, "Y"), (52, t), (122, t), (123, "Y"), (36, "4")],
        [(35, "8"), (49, "GW"), (56, "CLI"), (34, "4"), (43, "Y"), (52, t), (122, ts(T0 + 32)), (37, "X2"), (17, "E2")],
    ]
    assert s.events() == [ResendAnswered(1, 4, 2)]
    assert s.store.next_sender_seq == 5  # resends reuse their numbers


def test_resend_request_trailing_admin_gap_fill_and_range_end():
    s = logged_on_acceptor()
    s.send("8", [(37, "X1")], T0)  # 2
    s.tick(T0 + 30)  # 3 heartbeat
    s.data_to_send()
    s.receive_data(peer("2", 2, [(7, 2), (16, 3)], now=T0 + 31), T0 + 31)
    t = ts(T0 + 31)
    msgs = out(s)
    assert [m[0][1] for m in msgs] == ["8", "4"]
    assert msgs[1] == [(35, "4"), (49, "GW"), (56, "CLI"), (34, "3"), (43, "Y"), (52, t), (122, t), (123, "Y"), (36, "4")]


def test_resend_request_with_high_seq_answered_then_own_request():
    s = logged_on_acceptor()
    s.send("8", [(37, "X1")], T0)  # 2
    s.data_to_send()
    s.receive_data(peer("2", 5, [(7, 2), (16, 0)]), T0)
    msgs = out(s)
    assert [m[0][1] for m in msgs] == ["8", "2"]
    assert msgs[1] == hdr("2", 3) + [(7, "2"), (16, "0")]


def test_messages_sent_while_disconnected_are_stored_for_resend():
    st = MemoryStore()
    s = Session(cfg(), st)
    seq = s.send("8", [(37, "X1")], T0)
    assert seq == 1 and s.data_to_send() == b"" and 1 in st.messages


def test_send_refuses_admin_types():
    s = logged_on_acceptor()
    with pytest.raises(LocalProtocolError, match="fault=local msg_type=0"):
        s.send("0", [], T0)


# -- sequence reset -------------------------------------------------------------

def test_sequence_reset_reset_mode_ignores_seq():
    s = logged_on_acceptor()
    s.receive_data(peer("4", 99, [(36, 20)]), T0)
    assert s.store.next_target_seq == 20 and s.events() == [SequenceReset(20, False)] and out(s) == []


def test_sequence_reset_cannot_lower():
    s = logged_on_acceptor()
    s.receive_data(peer("4", 2, [(36, 1)]), T0)
    assert out(s) == [hdr("3", 2) + [(45, "2"), (371, "36"), (372, "4"), (373, "5"),
                                     (58, "Attempt to lower sequence number, invalid value NewSeqNo=1")]]


def test_gap_fill_too_high_is_queued_like_any_message():
    s = logged_on_acceptor()
    s.receive_data(peer("4", 3, [(123, "Y"), (36, 6)], hdr=[(43, "Y"), (122, ts(T0))]), T0)
    assert out(s) == [hdr("2", 2) + [(7, "2"), (16, "0")]]
    s.receive_data(peer("D", 2, [(11, "a")], hdr=[(43, "Y"), (122, ts(T0))]), T0)
    assert s.store.next_target_seq == 6


# -- reject and logout -------------------------------------------------------------

def test_reject_received_is_reported():
    s = logged_on_acceptor()
    s.receive_data(peer("3", 2, [(45, 1), (58, "bad")]), T0)
    [ev] = s.events()
    assert isinstance(ev, RejectReceived) and ev.message[58] == "bad" and s.store.next_target_seq == 3


def test_logout_initiated_by_peer():
    s = logged_on_acceptor()
    s.receive_data(peer("5", 2, [(58, "bye")]), T0)
    assert out(s) == [hdr("5", 2)]
    assert s.events() == [LoggedOut("bye", "remote"), Disconnect("logout_by_peer", "none")]


def test_logout_handshake_initiated_locally():
    s = logged_on_acceptor()
    s.logout(T0, "eod")
    assert out(s) == [hdr("5", 2) + [(58, "eod")]] and s.state == State.LOGOUT_SENT
    s.receive_data(peer("5", 2), T0)
    assert s.events() == [LoggedOut("", "local"), Disconnect("logout_complete", "none")]


def test_logout_timeout():
    s = logged_on_acceptor(logout_timeout_s=2)
    s.logout(T0)
    s.tick(T0 + 2)
    assert s.events() == [Disconnect("logout_timeout timeout_s=2", "remote")]


# -- validation ------------------------------------------------------------------

def test_dictionary_validation_rejects_and_counts():
    s = logged_on_acceptor(transport_dictionary="FIX44")
    s.receive_data(peer("D", 2, [(11, "O1"), (54, "Z"), (60, TS0), (40, "2")]), T0)
    assert out(s) == [hdr("3", 2) + [(45, "2"), (371, "54"), (372, "D"), (373, "5"),
                                     (58, "Value is incorrect (out of range) for this tag tag=54 value='Z'")]]
    assert s.store.next_target_seq == 3
    s.receive_data(peer("D", 3, [(11, "O1"), (54, "1"), (60, TS0), (40, "2")]), T0)
    assert isinstance(s.events()[-1], ApplicationMessage)


# -- two sessions over a fake link -------------------------------------------------

def pump(a, b, now):
    for _ in range(20):
        da, db = a.data_to_send(), b.data_to_send()
        if not da and not db:
            return
        if da:
            b.receive_data(da, now)
        if db:
            a.receive_data(db, now)


def test_two_sessions_logon_exchange_and_recover_gap():
    ini = Session(cfg(sender_comp_id="CLI", target_comp_id="GW", role="initiator"), MemoryStore())
    acc = Session(cfg(), MemoryStore())
    acc.connection_made(T0)
    ini.connection_made(T0)
    pump(ini, acc, T0)
    assert ini.state == acc.state == State.ACTIVE
    ini.send("D", [(11, "O1")], T0)
    pump(ini, acc, T0)
    assert [e.message[11] for e in acc.events() if isinstance(e, ApplicationMessage)] == ["O1"]
    # link drops; the initiator sends while disconnected; reconnect recovers by ResendRequest
    ini.connection_lost(T0)
    acc.connection_lost(T0)
    ini.send("D", [(11, "O2")], T0 + 1)
    acc.connection_made(T0 + 2)
    ini.connection_made(T0 + 2)
    pump(ini, acc, T0 + 2)
    got = [e for e in acc.events() if isinstance(e, ApplicationMessage)]
    assert [(e.message[11], e.poss_dup) for e in got] == [("O2", True)]
    assert acc.store.next_target_seq == ini.store.next_sender_seq
    assert ini.store.next_target_seq == acc.store.next_sender_seq


def test_one_second_heartbeat_interval_accepted():
    s = Session(cfg(), MemoryStore())
    s.connection_made(T0)
    s.receive_data(peer("A", 1, [(98, 0), (108, 1)]), T0)
    assert out(s) == [hdr("A", 1) + [(98, "0"), (108, "1")]] and s.events() == [LoggedOn(1, False)]
    assert s.next_deadline() == T0 + 1
    s.tick(T0 + 1)
    assert out(s) == [hdr("0", 2, T0 + 1)]
    s.tick(T0 + 1.2)
    assert out(s) == [hdr("1", 3, T0 + 1.2) + [(112, "TEST-1")]]


def test_any_message_answers_test_request_and_restarts_supervision():
    s = logged_on_acceptor()
    s.tick(T0 + 36)
    assert out(s)[0][5] == (112, "TEST-1")
    s.receive_data(peer("D", 2, [(11, "a")], now=T0 + 40), T0 + 40)
    s.events()
    s.tick(T0 + 40 + 36)  # silence again: a fresh TestRequest, not a disconnect
    assert out(s) == [hdr("1", 3, T0 + 76) + [(112, "TEST-2")]]


def test_refused_logon_with_reset_flag_keeps_store():
    st = MemoryStore()
    st.next_sender_seq, st.next_target_seq = 50, 40
    s = Session(cfg(), st, authenticator=lambda r: "no")
    s.connection_made(T0)
    s.receive_data(peer("A", 1, [(98, 0), (108, 30), (141, "Y")]), T0)
    assert (st.next_target_seq, st.next_sender_seq) == (40, 50)  # untouched: the refusal's Logout is not stored


def test_msgseqnum_with_non_ascii_digits_logs_out_instead_of_raising():
    # "\xb2" (superscript two) passes str.isdigit but not int(): it used to escape receive_data as ValueError
    s = logged_on_acceptor()
    s.receive_data(peer("0", "\xb2"), T0)
    assert out(s) == [hdr("5", 2) + [(58, "MsgSeqNum(34) missing or invalid")]]
    assert s.events()[-1] == Disconnect("seq_num_missing", "remote")
