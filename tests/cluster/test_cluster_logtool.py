"""The offline log reader takes hostile files: whatever bytes a segment holds, it
yields the valid entries before the first bad frame and then a LogDumpError
naming file and position, never another exception; a payload's bytes never
make the entry decoder raise."""

import os
import struct

from hypothesis import given, settings, strategies as st

from tickline.cluster.disk import OsDisk
from tickline.cluster.log import SegmentLog, encode_entry
from tickline.cluster.logtool import LogDumpError, describe_entry, read_entries, recovery_plan, load_service_schemas
from tickline.cluster.messages import Entry, EntryKind

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCHEMAS = load_service_schemas([os.path.join(ROOT, "schemas", "orders.xml"), os.path.join(ROOT, "schemas", "sequencer.xml")])


def _log(tmp_path, entries):
    d = tmp_path / "m"
    log = SegmentLog(OsDisk(str(d)), segment_size=1 << 20)
    log.recover()
    log.append(entries)
    log.sync()
    return d


def _entries(n):
    out, pos = [], 0
    for i in range(n):
        e = Entry(pos, 1, 1_700_000_000_000 + i, EntryKind.MESSAGE, struct.pack("<qqq", 5, i, 0) + b"x" * i)
        out.append(e)
        pos = e.end
    return out


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_damage_to_a_segment_gives_the_entries_before_it_then_an_error_naming_where(tmp_path_factory, data):
    tmp = tmp_path_factory.mktemp("dump")
    entries = _entries(6)
    d = _log(tmp, entries)
    seg = d / "log-00000000000000000000.seg"
    raw = bytearray(seg.read_bytes()[: entries[-1].end])
    at = data.draw(st.integers(0, len(raw) - 1))
    how = data.draw(st.sampled_from(["flip", "cut", "junk"]))
    if how == "flip":
        raw[at] ^= 1 << data.draw(st.integers(0, 7))
    elif how == "cut":
        del raw[at:]
    else:
        raw[at:] = data.draw(st.binary(min_size=1, max_size=200))
    seg.write_bytes(bytes(raw))
    got = []
    try:
        for e in read_entries(str(d)):
            got.append(e)
            describe_entry(e, SCHEMAS, True)
    except LogDumpError as exc:
        assert f"file={seg}" in str(exc) and f"position={got[-1].end if got else 0}" in str(exc) and "fault=storage" in str(exc)
    assert got == entries[: len(got)]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120), st.integers(0, 8))
def test_no_payload_makes_the_entry_decoder_raise(payload, kind):
    # an SBE header naming the orders schema (id and versions as sent), then anything
    for body in (payload, struct.pack("<HHHH", 20, 1, 101, 0) + payload, struct.pack("<qqq", 1, 2, 3) + struct.pack("<HHHH", 70, 1, 101, 1) + payload):
        d = describe_entry(Entry(0, 1, 0, kind, body), SCHEMAS, None)
        assert d["kind"] and d["position"] == 0


def test_a_gap_between_segments_and_a_segment_name_that_is_not_a_position_are_named(tmp_path):
    entries = _entries(3)
    d = _log(tmp_path, entries)
    (d / "log-00000000000000099999.seg").write_bytes(encode_entry(Entry(99999, 1, 0, 0, b"")))
    try:
        list(read_entries(str(d)))
        raise AssertionError("no error")
    except LogDumpError as exc:
        assert "gap in the log" in str(exc) and f"position={entries[-1].end}" in str(exc) and "segment_start=99999" in str(exc)
    (d / "log-00000000000000099999.seg").unlink()
    (d / "log-12x.seg").write_bytes(b"")
    try:
        list(read_entries(str(d)))
        raise AssertionError("no error")
    except LogDumpError as exc:
        assert "log-12x.seg" in str(exc)
    plan = recovery_plan(str(d))  # the member's own recovery stops there too: the plan says so, no traceback
    assert plan["refuses"] and "log-12x" in plan["refuses"]
