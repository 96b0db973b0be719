"""`tickline stat`: the counter API components publish through, the AeronStat family's views
(streams, backlog, loss), the Prometheus output, and the CnC / loss-report files read as
hostile input (truncated or corrupt: a clear error, never a crash)."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tickline.transport import ClosedError, counter_types as ct, read_stat
from tickline.transport.cnc import CncFormatError, read_cnc, read_loss_report
from tickline.transport.counters import backlog_rows, format_prometheus, stream_rows


def stat_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tickline", "stat", *args], capture_output=True, text=True, timeout=60)


def wait_until(cond, timeout: float = 10.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


# -- the counter API --------------------------------------------------------------------------

def test_add_counter_set_add_get_shows_in_stat_and_goes_on_close(driver, aeron) -> None:  # type: ignore[no-untyped-def]
    c = aeron.add_counter(ct.GATEWAY_MESSAGES_IN, ct.label("fix-gateway", "messages in", session="A->B"),
                          key=b"\x01\x02")
    assert c.type_id == ct.GATEWAY_MESSAGES_IN and c.id >= 0 and not c.is_closed
    c.set(40)
    c.add()
    c.add(2)
    assert c.get() == 43
    [row] = read_stat(driver.dir).counter(r"^fix-gateway messages in: session=A->B$")
    assert (row.value, row.type_id, row.type_name, row.id) == (43, ct.GATEWAY_MESSAGES_IN, "fix-msgs-in", c.id)
    assert row.key[:2] == b"\x01\x02"
    c.close()
    c.close()  # idempotent
    assert c.is_closed
    c.set(7)  # ignored after close
    c.add(1)
    with pytest.raises(ClosedError, match="counter is closed: .* reason=closed by user"):
        c.get()
    wait_until(lambda: not read_stat(driver.dir).counter(r"^fix-gateway messages in: session=A->B$"),
               what="the driver to free the counter")


def test_counter_add_saturates_and_bad_arguments_are_refused(driver, aeron) -> None:  # type: ignore[no-untyped-def]
    c = aeron.add_counter(ct.STRATEGY_ORDERS, "strategy orders: strategy=sat outcome=sent")
    c.set(2**63 - 2)
    c.add(5)
    assert c.get() == 2**63 - 1  # no wrap to a negative total
    c.set(-(2**63) + 1)
    c.add(-5)
    assert c.get() == -(2**63)
    with pytest.raises(TypeError):
        c.set(2**63)  # beyond int64: refused at the boundary
    with pytest.raises(ValueError, match="counter key too long: fault=user length=113 max=112"):
        aeron.add_counter(ct.STRATEGY_ORDERS, "x", key=b"k" * 113)
    long = aeron.add_counter(ct.STRATEGY_ORDERS, "é" * 300)  # 600 bytes: cut at 380, on a character boundary
    assert long.label == "é" * 190
    assert read_stat(driver.dir).counter("^é+$")[0].label == "é" * 190
    c.close()
    long.close()


def test_counter_after_client_close(driver) -> None:  # type: ignore[no-untyped-def]
    from tickline.transport import Aeron

    a = Aeron(driver.dir, timeout=5.0)
    c = a.add_counter(ct.VENUE_ORDERS, "exchange-sim orders: outcome=received")
    c.set(3)
    a.close()
    assert c.is_closed
    c.set(4)  # the mapping is gone: ignored, not a write into unmapped memory
    with pytest.raises(ClosedError, match="reason=client closed"):
        c.get()
    c.close()
    with pytest.raises(ClosedError):
        a.add_counter(ct.VENUE_ORDERS, "after close")


# -- views ------------------------------------------------------------------------------------

def test_streams_and_backlog_views_with_filters(driver, aeron) -> None:  # type: ignore[no-untyped-def]
    sub = aeron.add_subscription("aeron:ipc", 2101)
    pub = aeron.add_publication("aeron:ipc", 2101)
    other = aeron.add_publication("aeron:ipc?term-length=64k", 2102)
    wait_until(lambda: pub.is_connected, what="connected")
    for _ in range(3):
        wait_until(lambda: pub.offer(b"x" * 100) > 0, what="offer")
    # nothing polled: the subscriber is 3 frames (3 x 160 bytes) behind
    def row():  # type: ignore[no-untyped-def]
        rows = stream_rows(read_stat(driver.dir), channel="ipc", stream_id=2101)
        return rows[0] if rows and rows[0].pub_pos == pub.position else None

    r = wait_until(row, what="pub-pos refreshed")
    assert (r.stream_id, r.session_id, r.channel) == (2101, pub.session_id, "aeron:ipc")
    assert r.pub_lmt is not None and r.pub_lmt >= r.pub_pos
    assert list(r.sub_pos.values()) == [0] and r.lag == pub.position == 480
    [b] = backlog_rows(read_stat(driver.dir), stream_id=2101)
    assert b.subscriber_backlog == {next(iter(r.sub_pos)): 480}
    assert stream_rows(read_stat(driver.dir), stream_id=2102)[0].channel == "aeron:ipc?term-length=64k"
    assert stream_rows(read_stat(driver.dir), channel="udp") == []

    out = stat_cli("--dir", driver.dir, "--view", "streams", "--stream", "2101")
    assert out.returncode == 0, out.stderr
    assert f"aeron:ipc stream=2101 session={pub.session_id}" in out.stdout and "2102" not in out.stdout
    assert "lag=480" in out.stdout and "1 streams." in out.stdout
    out = stat_cli("--dir", driver.dir, "--view", "backlog", "--channel", "term-length")
    assert out.returncode == 0, out.stderr
    assert "stream=2102" in out.stdout and "stream=2101" not in out.stdout and "1 streams." in out.stdout
    sub.poll(lambda *a: None, 10)
    del other


def test_streams_and_backlog_over_udp_show_sender_and_receiver(driver, aeron, udp_port) -> None:  # type: ignore[no-untyped-def]
    channel = f"aeron:udp?endpoint=127.0.0.1:{udp_port}"
    sub = aeron.add_subscription(channel, 2111)
    pub = aeron.add_publication(channel, 2111)
    wait_until(lambda: pub.is_connected, what="connected")
    for _ in range(4):
        wait_until(lambda: pub.offer(b"y" * 200) > 0, what="offer")
    end = pub.position

    def sent_and_received():  # type: ignore[no-untyped-def]
        rows = stream_rows(read_stat(driver.dir), channel=f":{udp_port}")
        r = rows[0] if len(rows) == 1 else None
        return r if r is not None and r.snd_pos == r.rcv_pos == r.rcv_hwm == r.pub_pos == end else None

    r = wait_until(sent_and_received, what="sent and received")
    assert r.snd_lmt is not None and r.snd_lmt > r.snd_pos and r.sub_pos and r.lag == end  # nothing polled yet
    [b] = backlog_rows(read_stat(driver.dir), channel=f":{udp_port}", stream_id=2111)
    assert (b.sender_backlog, b.receiver_backlog) == (0, 0) and list(b.subscriber_backlog.values()) == [end]
    assert b.sender_window == r.snd_lmt - r.snd_pos
    out = stat_cli("--dir", driver.dir, "--view", "backlog", "--channel", f":{udp_port}")
    assert out.returncode == 0, out.stderr
    assert f"sender_backlog=0 sender_window={b.sender_window:,d} receiver_backlog=0 sub[" in out.stdout
    del sub


def test_loss_view_reads_the_drivers_loss_report(driver, aeron, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # An empty report (the driver made it; no loss on IPC) reads as no entries.
    assert read_loss_report(driver.dir) == []
    out = stat_cli("--dir", driver.dir, "--view", "loss")
    assert out.returncode == 0 and "0 loss entries." in out.stdout, out.stderr
    # A report with entries, laid out as the driver writes them.
    d = tmp_path / "drv"
    d.mkdir()
    (d / "loss-report.dat").write_bytes(loss_file([(3, 4096, 1_700_000_000_000, 1_700_000_001_000, 7, 1001,
                                                   "aeron:udp?endpoint=127.0.0.1:40001", "127.0.0.1:5555"),
                                                  (1, 64, 1_700_000_002_000, 1_700_000_002_000, 8, 1002,
                                                   "aeron:udp?endpoint=127.0.0.1:40002", "127.0.0.1:6666")]))
    [a, b] = read_loss_report(str(d))
    assert (a.observation_count, a.total_bytes_lost, a.session_id, a.stream_id, a.channel, a.source) == \
        (3, 4096, 7, 1001, "aeron:udp?endpoint=127.0.0.1:40001", "127.0.0.1:5555")
    assert (b.stream_id, b.source) == (1002, "127.0.0.1:6666")
    out = stat_cli("--dir", str(d), "--view", "loss", "--stream", "1002")
    assert out.returncode == 0, out.stderr
    assert "1,64,2023-11-14 22:13:22.000Z,2023-11-14 22:13:22.000Z,8,1002,aeron:udp?endpoint=127.0.0.1:40002," \
           "127.0.0.1:6666" in out.stdout and ",1001," not in out.stdout and "1 loss entries." in out.stdout


def loss_file(entries: list[tuple[int, int, int, int, int, int, str, str]], size: int = 4096) -> bytes:
    buf = bytearray(size)
    off = 0
    for count, lost, first, last, session, stream, channel, source in entries:
        struct.pack_into("<qqqqii", buf, off, count, lost, first, last, session, stream)
        at = off + 40
        c, s = channel.encode(), source.encode()
        struct.pack_into("<i", buf, at, len(c))
        buf[at + 4: at + 4 + len(c)] = c
        at += (4 + len(c) + 3) & ~3
        struct.pack_into("<i", buf, at, len(s))
        buf[at + 4: at + 4 + len(s)] = s
        at += 4 + len(s)
        off += (at - off + 63) & ~63
    return bytes(buf)


# -- Prometheus -------------------------------------------------------------------------------

# The text exposition format, strictly: a metric name, optional {label="value",...} (escapes
# \\ \" \n only), one space, an integer value.
_METRIC = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
_SAMPLE = re.compile(rf"^({_METRIC})(\{{(?:{_LABEL})(?:,{_LABEL})*\}})? -?\d+$")
_HELP = re.compile(rf"^# HELP ({_METRIC}) .*$")
_TYPE = re.compile(rf"^# TYPE ({_METRIC}) (gauge|counter|untyped)$")


def check_exposition(text: str) -> dict[str, list[str]]:
    """Parse strictly; returns metric -> sample lines.  Fails on anything the format forbids:
    a bad line, a family split in two, a sample before its TYPE, a repeated label set."""
    assert text.endswith("\n")
    families: dict[str, list[str]] = {}
    current = None
    seen_series: set[str] = set()
    for line in text[:-1].split("\n"):
        if m := _HELP.match(line):
            assert m.group(1) not in families, f"family split: {line}"
            current = m.group(1)
            families[current] = []
            continue
        if m := _TYPE.match(line):
            assert m.group(1) == current, f"TYPE without its HELP first: {line}"
            continue
        m = _SAMPLE.match(line)
        assert m is not None, f"not exposition format: {line!r}"
        assert m.group(1) == current, f"sample outside its family: {line}"
        series = line.rsplit(" ", 1)[0]
        assert series not in seen_series, f"repeated series: {series}"
        seen_series.add(series)
        families[current].append(line)
    return families


def test_prometheus_output_is_valid_and_names_every_counter(driver, aeron) -> None:  # type: ignore[no-untyped-def]
    pub = aeron.add_publication("aeron:ipc", 2201)
    sub = aeron.add_subscription("aeron:ipc", 2201)
    hostile = aeron.add_counter(ct.GATEWAY_MESSAGES_IN, 'fix-gateway messages in: session=a"b\\c __x=1 id=9')
    weird = aeron.add_counter(4242, "a counter\nof a type nobody registered \"quoted\"")
    hostile.set(5)
    weird.set(-3)
    stat = read_stat(driver.dir)
    text = format_prometheus(stat)
    families = check_exposition(text)
    assert sum(len(v) for v in families.values()) == len(stat.counters) + 2  # + heartbeat age, errors
    assert "aeron_bytes_sent" in families and "aeron_driver_heartbeat_age_ms" in families
    [pp] = [s for s in families["aeron_publisher_position"] if f'session="{pub.session_id}"' in s]
    assert 'stream="2201"' in pp and 'channel="aeron:ipc"' in pp and 'component="driver"' in pp
    [g] = families["tickline_fix_gateway_messages_in"]
    assert 'session="a\\"b\\\\c"' in g and 'label__x="1"' in g and 'label_id="9"' in g and g.endswith(" 5")
    [w] = families["aeron_counter"]
    assert 'type="4242"' in w and "\\n" in w and w.endswith(" -3")
    # the same through the command, and the official parser where it is installed
    out = stat_cli("--dir", driver.dir, "--prometheus")
    assert out.returncode == 0, out.stderr
    check_exposition(out.stdout)
    from prometheus_client.parser import text_string_to_metric_families

    parsed = {f.name: f for f in text_string_to_metric_families(out.stdout)}
    assert sum(len(f.samples) for f in parsed.values()) == sum(len(v) for v in families.values())
    [sample] = parsed["tickline_fix_gateway_messages_in"].samples
    assert (sample.labels["session"], sample.labels["label__x"], sample.value) == ('a"b\\c', "1", 5.0)
    [sample] = parsed["aeron_counter"].samples
    assert sample.labels["label"] == 'a counter\nof a type nobody registered "quoted"' and sample.value == -3.0
    out = stat_cli("--dir", driver.dir, "--filter", "(")
    assert out.returncode == 2 and "bad --filter regex: fault=user" in out.stderr and "Traceback" not in out.stderr
    del sub, hostile, weird


def test_check_exposition_catches_what_it_must() -> None:
    with pytest.raises(AssertionError):
        check_exposition("# HELP a x\n# TYPE a gauge\na{b=\"c\"} 1\n# HELP d x\n# TYPE d gauge\nd 1\na 2\n")
    with pytest.raises(AssertionError):
        check_exposition('# HELP a x\n# TYPE a gauge\na{1b="c"} 1\n')
    with pytest.raises(AssertionError):
        check_exposition('# HELP a x\n# TYPE a gauge\na{b="c\nd"} 1\n')
    check_exposition('# HELP a x\n# TYPE a gauge\na{b="c\\nd"} 1\n')


# -- hostile files ----------------------------------------------------------------------------

@pytest.fixture
def cnc_copy(driver, aeron, tmp_path) -> Path:  # type: ignore[no-untyped-def]
    """A copy of a live driver's cnc.dat, with counters and an error, to damage."""
    aeron.add_counter(ct.CLUSTER_TERM, "cluster term: member=0").set(3)
    d = tmp_path / "copy"
    d.mkdir()
    shutil.copy(Path(driver.dir) / "cnc.dat", d / "cnc.dat")
    f = read_cnc(str(d))
    assert any(c.label == "cluster term: member=0" and c.value == 3 for c in f.counters)
    return d / "cnc.dat"


def _damaged(path: Path, edit) -> None:  # type: ignore[no-untyped-def]
    b = bytearray(path.read_bytes())
    out = edit(b)
    path.write_bytes(bytes(out if out is not None else b))


def _cli_refuses(path: Path, *args: str, match: str) -> None:
    out = stat_cli("--dir", str(path.parent), *args)
    assert out.returncode == 1, out
    assert "Traceback" not in out.stderr and re.search(match, out.stderr), out.stderr


HEADER = struct.Struct("<iiiiiiqqqi")


def test_truncated_cnc_files_give_a_clear_error(cnc_copy: Path) -> None:
    full = cnc_copy.read_bytes()
    h = HEADER.unpack_from(full)
    meta_at = 128 + h[1] + h[2]
    end = 128 + sum(h[1:6])  # the sections' end (the file is longer: page aligned)
    for cut in (0, 10, 127, 200, meta_at + 700, end - 1):
        cnc_copy.write_bytes(full[:cut])
        with pytest.raises(CncFormatError, match=r"bad driver file: .* fault=peer"):
            read_cnc(str(cnc_copy.parent))
        _cli_refuses(cnc_copy, match=r"tickline stat: bad driver file: .*file=.*cnc\.dat")
    _cli_refuses(cnc_copy, "--prometheus", match="bad driver file")
    _cli_refuses(cnc_copy, "--view", "streams", match="bad driver file")


@pytest.mark.parametrize("field, value, match", [
    (0, 5 << 16, "CnC version not understood"),                     # another major version
    (1, -4096, "section length out of range"),                        # a negative length (wraps in C)
    (3, 2**31 - 1, "section length out of range|past the end"),     # a huge one
    (5, 2**29, "past the end"),
])
def test_corrupt_cnc_header_gives_a_clear_error(cnc_copy: Path, field: int, value: int, match: str) -> None:
    def edit(b: bytearray) -> None:
        vals = list(HEADER.unpack_from(b))
        vals[field] = value
        HEADER.pack_into(b, 0, *vals)

    _damaged(cnc_copy, edit)
    with pytest.raises(CncFormatError, match=match):
        read_cnc(str(cnc_copy.parent))
    _cli_refuses(cnc_copy, match=match)


def test_corrupt_counter_and_error_records_give_a_clear_error(cnc_copy: Path) -> None:
    full = cnc_copy.read_bytes()
    h = HEADER.unpack_from(full)
    meta_at = 128 + h[1] + h[2]
    errors_at = meta_at + h[3] + h[4]
    # a label length far beyond its record (Aeron's reader would copy 2 GB from it)
    _damaged(cnc_copy, lambda b: struct.pack_into("<i", b, meta_at + 128, 2**31 - 1))
    with pytest.raises(CncFormatError, match="counter label length out of range: .* counter_id=0 label_length=2147483647"):
        read_cnc(str(cnc_copy.parent))
    _cli_refuses(cnc_copy, match="counter label length out of range")
    # an unknown record state
    cnc_copy.write_bytes(full)
    _damaged(cnc_copy, lambda b: struct.pack_into("<i", b, meta_at, 77))
    _cli_refuses(cnc_copy, match="counter record in an unknown state: .* state=77")
    # an error record longer than the log
    cnc_copy.write_bytes(full)
    _damaged(cnc_copy, lambda b: struct.pack_into("<i", b, errors_at, 2**30))
    _cli_refuses(cnc_copy, match="error log record length out of range")
    _cli_refuses(cnc_copy, "--no-errors", match="error log")  # read even then: the whole file is checked
    # random garbage over the counters' metadata: an error or a (garbage) listing, never a crash
    import random

    rng = random.Random(18)
    for _ in range(20):
        cnc_copy.write_bytes(full)
        _damaged(cnc_copy, lambda b: b.__setitem__(slice(meta_at, meta_at + 4096), rng.randbytes(4096)))
        out = stat_cli("--dir", str(cnc_copy.parent), "--prometheus")
        assert out.returncode in (0, 1) and "Traceback" not in out.stderr, out.stderr
        if out.returncode == 0:
            check_exposition(out.stdout)


def test_corrupt_loss_report_gives_a_clear_error(tmp_path: Path) -> None:
    channel = "aeron:udp?endpoint=127.0.0.1:1"
    good = loss_file([(2, 100, 1, 2, 3, 4, channel, "src")])
    src_at = 40 + ((4 + len(channel) + 3) & ~3)
    d = tmp_path / "d"
    d.mkdir()
    f = d / "loss-report.dat"
    for data, match in [
        (good[:50], "channel length past the end|channel length out of range"),
        (good[:40] + struct.pack("<i", 10_000) + good[44:], "channel length out of range"),
        (good[:40] + struct.pack("<i", -1) + good[44:], "channel length out of range"),
        (good[:src_at] + struct.pack("<i", 2**31 - 1) + good[src_at + 4:], "source length out of range"),
    ]:
        f.write_bytes(data)
        with pytest.raises(CncFormatError, match=match):
            read_loss_report(str(d))
        out = stat_cli("--dir", str(d), "--view", "loss")
        assert out.returncode == 1 and "Traceback" not in out.stderr and re.search(match, out.stderr), out.stderr
    f.write_bytes(b"")  # empty: no entries
    assert read_loss_report(str(d)) == []
    os.remove(f)
    out = stat_cli("--dir", str(d), "--view", "loss")
    assert out.returncode == 1 and "no such file" in out.stderr and "loss-report.dat" in out.stderr


def test_no_driver_and_bad_arguments(tmp_path: Path) -> None:
    out = stat_cli("--dir", str(tmp_path))
    assert out.returncode == 1 and "no driver CnC file to read" in out.stderr
    out = stat_cli("--dir", str(tmp_path), "--stream", str(2**40))
    assert out.returncode == 2 and "--stream out of range" in out.stderr
    out = stat_cli("--dir", str(tmp_path), "--prometheus", "--view", "loss")
    assert out.returncode == 2 and "--prometheus prints the counters, not --view loss: fault=user" in out.stderr
