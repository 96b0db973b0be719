import calendar
import os
import struct
import zlib

import pytest
from hypothesis import given, settings, strategies

from tickline import _aeron
from tickline.fix_gateway import store as store_module
from tickline.fix_gateway.codec import encode
from tickline.fix_gateway.config import ConfigError, from_env
from tickline.fix_gateway.schedule import SessionSchedule
from tickline.fix_gateway.session import Session, SessionConfig
from tickline.fix_gateway.store import FileStore, FileStoreConfig


def raw(seq, text="x"):
    return encode("FIX.4.4", [(35, "8"), (34, seq), (58, text)])


@pytest.mark.parametrize("policy", ["always", "batch", "none"])
def test_file_store_survives_reopen(tmp_path, policy):
    p = tmp_path / "s.log"
    st = FileStore(p, policy, now=100.0)
    for seq in (1, 2, 3):
        st.save(seq, raw(seq))
        st.set_next_sender_seq(seq + 1)
    st.set_next_target_seq(7)
    st.close()
    st2 = FileStore(p, policy)
    assert (st2.next_sender_seq, st2.next_target_seq, st2.creation_time) == (4, 7, 100.0)
    assert st2.get(1, 3) == [(1, raw(1)), (2, raw(2)), (3, raw(3))]
    assert st2.get(2, 2) == [(2, raw(2))] and st2.recovered_tail_bytes == 0
    st2.close()


def _fill(p):
    st = FileStore(p, "always", now=1.0)
    st.save(1, raw(1))
    st.set_next_sender_seq(2)
    st.save(2, raw(2, "second"))
    st.set_next_sender_seq(3)
    st.close()
    return os.path.getsize(p)


@pytest.mark.parametrize("cut", [1, 5, 9, 20])
def test_torn_tail_is_cut_and_prefix_kept(tmp_path, cut):
    p = tmp_path / "s.log"
    size = _fill(p)
    with open(p, "r+b") as f:
        f.truncate(size - cut)
    st = FileStore(p)
    assert st.recovered_tail_bytes > 0
    assert os.path.getsize(p) == size - cut - st.recovered_tail_bytes
    assert st.get(1, 1) == [(1, raw(1))]
    # the last record was the sender-seq update after message 2: if message 2 survived it still counts
    have2 = st.get(2, 2) == [(2, raw(2, "second"))]
    assert st.next_sender_seq == (3 if have2 else 2)
    # and the store stays usable
    st.save(st.next_sender_seq, raw(9))
    st.close()
    assert FileStore(p).recovered_tail_bytes == 0


def test_corrupt_record_detected_by_crc(tmp_path):
    p = tmp_path / "s.log"
    size = _fill(p)
    data = bytearray(p.read_bytes())
    data[size - 30] ^= 0xFF  # inside message 2's record or the last seq record
    p.write_bytes(bytes(data))
    st = FileStore(p)
    assert st.recovered_tail_bytes > 0 and st.get(1, 1) == [(1, raw(1))]


def test_reset_replaces_log(tmp_path):
    p = tmp_path / "s.log"
    _fill(p)
    st = FileStore(p)
    st.reset(50.0)
    assert (st.next_sender_seq, st.next_target_seq, st.get(1, 5)) == (1, 1, [])
    st.close()
    st2 = FileStore(p)
    assert (st2.next_sender_seq, st2.creation_time, st2.get(1, 5)) == (1, 50.0, [])
    assert not (tmp_path / "s.log.tmp").exists()


def test_file_store_config_and_env():
    with pytest.raises(ValueError, match="fault=config key=fsync value='sometimes'"):
        FileStoreConfig(fsync="sometimes")
    c = from_env(FileStoreConfig, "TICKLINE_FIX_STORE_", env={"TICKLINE_FIX_STORE_FSYNC": "always"})
    assert c.fsync == "always"
    sc = from_env(SessionConfig, "TICKLINE_FIX_SESSION_", sender_comp_id="A", target_comp_id="B",
                  env={"TICKLINE_FIX_SESSION_HEARTBEAT_INTERVAL_S": "5", "TICKLINE_FIX_SESSION_CHECK_LATENCY": "no"})
    assert (sc.heartbeat_interval_s, sc.check_latency) == (5, False)
    with pytest.raises(ConfigError, match="not an integer: fault=config key=TICKLINE_FIX_SESSION_HEARTBEAT_INTERVAL_S value='x'"):
        from_env(SessionConfig, "TICKLINE_FIX_SESSION_", sender_comp_id="A", target_comp_id="B",
                 env={"TICKLINE_FIX_SESSION_HEARTBEAT_INTERVAL_S": "x"})


def test_session_resumes_from_file_store_and_answers_resend_after_restart(tmp_path):
    T = 1767268800.0
    cfg = SessionConfig(sender_comp_id="GW", target_comp_id="CLI")
    st = FileStore(tmp_path / "gw.log", "always", now=T)
    s = Session(cfg, st)
    s.send("8", [(37, "X1")], T)  # stored while disconnected: seq 1
    st.close()
    st2 = FileStore(tmp_path / "gw.log")
    s2 = Session(cfg, st2)
    s2.connection_made(T)
    s2.receive_data(encode("FIX.4.4", [(35, "A"), (49, "CLI"), (56, "GW"), (34, 1), (52, "20260101-12:00:00.000"),
                                       (98, 0), (108, 30)]), T)
    s2.receive_data(encode("FIX.4.4", [(35, "2"), (49, "CLI"), (56, "GW"), (34, 2), (52, "20260101-12:00:00.000"),
                                       (7, 1), (16, 0)]), T)
    data = s2.data_to_send()
    assert b"\x0135=A\x0149=GW\x0156=CLI\x0134=2\x01" in data  # Logon took seq 2: seq 1 survived the restart
    assert b"\x0135=8\x0149=GW\x0156=CLI\x0134=1\x0143=Y\x01" in data and b"\x0137=X1\x01" in data


def ts(y, mo, d, h, mi, tzoff_h=0):
    return calendar.timegm((y, mo, d, h, mi, 0, 0, 0, 0)) - tzoff_h * 3600


def test_schedule_daily_window_in_time_zone():
    s = SessionSchedule("08:00", "17:00", "America/New_York")
    # 2026-01-05 is winter: New York is UTC-5
    assert not s.is_in_session(ts(2026, 1, 5, 7, 59, -5))
    assert s.session_start(ts(2026, 1, 5, 8, 0, -5)) == ts(2026, 1, 5, 8, 0, -5)
    assert s.is_in_session(ts(2026, 1, 5, 16, 59, -5)) and not s.is_in_session(ts(2026, 1, 5, 17, 0, -5))
    # summer: UTC-4
    assert s.session_start(ts(2026, 7, 6, 9, 0, -4)) == ts(2026, 7, 6, 8, 0, -4)


def test_schedule_overnight_and_24h_and_daily_reset():
    s = SessionSchedule("22:00", "06:00", "UTC")
    assert s.session_start(ts(2026, 1, 6, 3, 0)) == ts(2026, 1, 5, 22, 0)
    assert s.session_start(ts(2026, 1, 5, 23, 0)) == ts(2026, 1, 5, 22, 0)
    assert s.session_start(ts(2026, 1, 5, 12, 0)) is None
    full = SessionSchedule("17:00", "17:00", "UTC")
    assert full.session_start(ts(2026, 1, 5, 16, 0)) == ts(2026, 1, 4, 17, 0)
    assert full.needs_reset(ts(2026, 1, 4, 16, 0), ts(2026, 1, 5, 16, 0))
    assert not full.needs_reset(ts(2026, 1, 4, 17, 30), ts(2026, 1, 5, 16, 0))
    assert not SessionSchedule("17:00", "17:00", "UTC", daily_reset=False).needs_reset(0, ts(2026, 1, 5, 16, 0))
    assert SessionSchedule.always().is_in_session(0) and not SessionSchedule.always().needs_reset(0, 1e9)


@pytest.mark.parametrize("kw,key", [
    (dict(start_time="25:00", end_time="01:00"), "start_time"),
    (dict(start_time="08:00"), "start_time/end_time"),
    (dict(timezone="Mars/Olympus"), "timezone"),
])
def test_schedule_config_errors(kw, key):
    with pytest.raises(ConfigError, match=f"fault=config key={key} "):
        SessionSchedule(**kw)


@pytest.mark.parametrize("policy", ["always", "batch", "none"])
def test_file_store_after_a_crash_keeps_every_record_and_ignores_the_reserved_rest(tmp_path, policy):
    # records go into a memory map of the log, which grows in reserved (zero) chunks; a process that
    # dies without close() leaves that zero rest behind: it is not a torn record
    p = tmp_path / "s.log"
    st = FileStore(p, policy, now=5.0)
    for seq in (1, 2):
        st.save(seq, raw(seq))
        st.set_next_sender_seq(seq + 1)
    st.set_next_target_seq(4)
    st.sync()
    assert os.path.getsize(p) > st._end  # reserved, not yet cut back
    st2 = FileStore(p, policy)  # as a restarted process would (st never closed)
    assert st2.recovered_tail_bytes == 0
    assert (st2.next_sender_seq, st2.next_target_seq, st2.get(1, 2)) == (3, 4, [(1, raw(1)), (2, raw(2))])
    assert os.path.getsize(p) == st2._end
    st2.close()


def test_file_store_close_cuts_the_reserved_rest(tmp_path):
    p = tmp_path / "s.log"
    st = FileStore(p, "none")
    st.save(1, raw(1))
    st.close()
    data = p.read_bytes()
    assert not data.endswith(b"\0\0\0\0") and FileStore(p).get(1, 1) == [(1, raw(1))]


def test_file_store_torn_record_followed_by_zeros_still_counts(tmp_path):
    p = tmp_path / "s.log"
    size = _fill(p)
    with open(p, "r+b") as f:
        f.truncate(size - 5)  # a torn last record ...
        f.truncate(size + 4096)  # ... and a reserved zero chunk after it
    st = FileStore(p)
    assert st.recovered_tail_bytes == size + 4096 - os.path.getsize(p) > 4096
    assert st.get(1, 1) == [(1, raw(1))]


# -- the native record append (cpp_ext/fixstore.cpp) writes what the Python code writes ------------

@given(strategies.binary(max_size=40), strategies.binary(max_size=3000), strategies.integers(min_value=0, max_value=64))
@settings(max_examples=500)
def test_native_record_append_writes_the_python_record(head, data, off):
    buf = bytearray(off + 8 + len(head) + len(data) + 5)
    _aeron.fix_store_append(buf, off, head, data)
    record = struct.pack("<II", len(head) + len(data), zlib.crc32(data, zlib.crc32(head))) + head + data
    assert bytes(buf) == bytes(off) + record + bytes(5)


def test_native_record_append_refuses_what_does_not_fit():
    with pytest.raises(ValueError, match="store record does not fit the log: fault=local offset=4 head=1 data=4 capacity=16"):
        _aeron.fix_store_append(bytearray(16), 4, b"\x01", b"abcd")
    with pytest.raises(ValueError, match="offset=-1"):
        _aeron.fix_store_append(bytearray(16), -1, b"", b"")
    with pytest.raises(BufferError, match="not writable"):
        _aeron.fix_store_append(b"read-only", 0, b"", b"")


@pytest.mark.parametrize("off", [2**63 - 8, 2**63 - 1, 2**63 - 20, 2**62])
def test_native_record_append_offset_near_the_top_is_refused_not_wrapped(off):
    # off + 8 + len(head) + len(data) wrapped negative and passed the bounds check: an
    # out-of-bounds write (SIGBUS on the store's map, UBSan: signed overflow at fixstore.cpp)
    buf = bytearray(64)
    with pytest.raises(ValueError, match=f"store record does not fit the log: fault=local offset={off} head=9 data=4"):
        _aeron.fix_store_append(buf, off, b"\x01" * 9, b"abcd")
    assert buf == bytearray(64)


def test_file_store_log_is_the_same_with_and_without_the_native_append(tmp_path, monkeypatch):
    def write(path):
        st = FileStore(path, "none", now=100.0)
        for seq in range(1, 200):
            st.save(seq, raw(seq, "y" * seq))
            st.set_next_sender_seq(seq + 1)
            st.set_next_target_seq(seq * 2)
        st.close()
        return path.read_bytes()

    native = write(tmp_path / "native.log")
    monkeypatch.setattr(store_module, "_native_append", None)
    assert write(tmp_path / "python.log") == native
    st = FileStore(tmp_path / "native.log", "none")  # and it replays
    assert (st.next_sender_seq, st.next_target_seq, st.get(150, 150)) == (200, 398, [(150, raw(150, "y" * 150))])
    st.close()
