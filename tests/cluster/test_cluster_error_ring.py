"""A member's ring of recent error lines stays bounded whatever is written to
stderr, and an admin answer never outgrows a client egress message."""

import io
import json

from tickline.cluster import wire
from tickline.cluster.admin import ERROR_LINE_MAX, ERROR_RING_LINES, ErrorRing, ErrorTee, answer


def test_the_tee_writes_through_and_keeps_the_last_lines_only():
    out, ring = io.StringIO(), ErrorRing()
    tee = ErrorTee(out, ring)
    for i in range(1000):
        tee.write(f"error: number {i} fault=peer\n")
    tee.write("error: split ")
    tee.write("across writes\n")
    assert out.getvalue().count("\n") == 1001  # nothing held back from the real stream
    assert ring.total == 1001 and len(ring.lines) == ERROR_RING_LINES
    assert ring.lines[-1][1] == "error: split across writes" and ring.lines[0][1] == f"error: number {1001 - ERROR_RING_LINES} fault=peer"
    assert ring.lines[-1][0].endswith("Z")


def test_a_huge_line_or_one_without_a_newline_is_cut_not_kept_whole():
    ring = ErrorRing()
    tee = ErrorTee(io.StringIO(), ring)
    tee.write("x" * 10_000_000)  # no newline ever: recorded once it passes the partial bound, cut
    tee.write("y" * 10_000 + "\n")
    assert all(len(line) <= ERROR_LINE_MAX + 40 for _, line in ring.lines)
    assert len(tee._partial) < 10_000


def test_an_answer_is_cut_to_fit_the_detail_bound():
    ring = ErrorRing(lines=10_000)
    for i in range(10_000):
        ring.record("e" * 500 + str(i))
    resp = answer(1, wire.AdminRequest(5, 6, wire.ClusterAction.ERRORS), wire.AdminCode.OK, 2, ring.to_json())
    assert len(resp.detail.encode()) <= wire.ADMIN_DETAIL_MAX
    d = json.loads(resp.detail)
    assert d["cut"] and d["total"] == 10_000 and d["errors"][-1]["line"].endswith("9999")  # the newest kept
    assert wire.decode(wire.encode(resp)) == resp
