"""Reassembly memory stays bounded while publications come and go.

Every new publication has a new session id.  A reassembler that kept one
growing buffer per session id it ever saw (Aeron's fragment assembler does,
until it is deleted) holds sessions x largest message for the life of the
subscription.  These tests send, over real IPC streams, a run of
publications in turn: half send one fragmented message of ~480 KiB whole,
half are taken only as far as the first fragments, the rest of the log
drained raw past the reassembler (the reassembler's view of a publisher that
stopped mid-message), and close.  The
memory held by the reassembler must not grow with the number of sessions,
and the unfinished messages of the sessions whose image went away are
discarded and counted.

Held memory is read two ways: the reassembler's own count
(``reassembly['bytes']``) and glibc's count of bytes in use by malloc
(``mallinfo2``), which also catches a reassembler that does not count what it
holds (under the sanitizer build malloc is ASan's and mallinfo2 sees little).
"""

from __future__ import annotations

import ctypes
import os
import time
import shutil
from typing import Any, Callable, Iterator

import pytest

from tickline.transport import Aeron, FragmentAssembler, MediaDriver
from tickline.transport.driver import unique_dir

from transport_helpers import wait_for

ROUNDS = 24          # publications in turn (12 whole messages, 12 left half way)
MESSAGE = 480 << 10  # under the max message length of a 4 MiB term (512 KiB)
SPARE_MAX = 1 << 20  # the one spare buffer a reassembler may keep
STREAM = 60


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def malloc_in_use() -> int:
    """Bytes in use from glibc's malloc (small blocks and mmapped large ones)."""
    libc = ctypes.CDLL(None)
    f = libc.mallinfo2
    f.restype = _MallInfo2
    m = f()
    return int(m.uordblks + m.hblkhd)


@pytest.fixture
def big_aeron() -> Iterator[Aeron]:
    """An embedded driver whose IPC terms take ~480 KiB messages (4 MiB terms,
    1408-byte MTU: ~360 fragments a message), and a client of it."""
    d = unique_dir("tickline-test-reasm")
    driver = MediaDriver.embedded(d, options={
        "aeron.ipc.term.buffer.length": "4m",
        "aeron.ipc.mtu.length": "1408",
        "aeron.publication.linger.timeout": "100000000",
        "aeron.client.liveness.timeout": "2000000000",
        "aeron.image.liveness.timeout": "2000000000",
    })
    try:
        a = Aeron(driver.dir, timeout=5.0)
        try:
            yield a
        finally:
            a.close()
    finally:
        driver.close()
        shutil.rmtree(d, ignore_errors=True)


def run_sessions(aeron: Aeron, sub: Any, take_whole: Callable[[], bytes | None], take_part: Callable[[], None]) -> int:
    """ROUNDS publications in turn, each one fragmented message: even rounds
    deliver it whole (checked), odd rounds only its first fragments, then
    the publication closes and its image goes away.  Returns the count of
    images gone (seen through the on_unavailable_image callback)."""
    for i in range(ROUNDS):
        pub = aeron.add_exclusive_publication("aeron:ipc", STREAM)
        wait_for(lambda: pub.is_connected and sub.image_count == 1, timeout=10.0, what="publication connected")
        assert pub.max_message_length >= MESSAGE > pub.max_payload_length * 256
        msg = os.urandom(MESSAGE)
        deadline = time.monotonic() + 5
        while pub.offer(msg) < 0:
            assert time.monotonic() < deadline, "offer never succeeded"
            time.sleep(0.001)
        if i % 2 == 0:
            deadline = time.monotonic() + 5
            while (got := take_whole()) is None:
                assert time.monotonic() < deadline, "the message never arrived"
            assert got == msg
        else:
            take_part()  # the first fragments only: a partial message is held
            # The rest is consumed raw, past the reassembler, as if the
            # publisher had stopped mid-message: the image drains and can go.
            deadline = time.monotonic() + 5
            while sub.images()[0].position < pub.position:
                assert time.monotonic() < deadline, "the log never drained"
                sub.drain(1000)
        pub.close()
        wait_for(lambda: sub.image_count == 0, timeout=10.0, what="image unavailable")
    return ROUNDS


def check_bounded(name: str, aeron: Aeron, sub: Any, take_whole: Callable[[], bytes | None],
                  take_part: Callable[[], None], last_poll: Callable[[], object],
                  stats: Callable[[], dict[str, int]]) -> None:
    before = malloc_in_use()
    run_sessions(aeron, sub, take_whole, take_part)
    assert not last_poll()  # nothing left; the last image's loss reaches the reassembler
    grown = malloc_in_use() - before
    print(f"{name}: rounds={ROUNDS} malloc_growth={grown}")
    assert grown < 6 << 20, f"malloc grew by {grown} bytes over {ROUNDS} sessions"
    r = stats()
    print(f"{name}: reassembly={r}")
    assert r["sessions"] == 0, r
    assert r["dropped"] == ROUNDS // 2, r
    assert r["bytes"] <= SPARE_MAX, r


def test_receive_into_memory_stays_bounded_when_sessions_come_and_go(big_aeron: Aeron) -> None:
    sub = big_aeron.add_subscription("aeron:ipc", STREAM)
    buf = bytearray(MESSAGE)

    def take_whole() -> bytes | None:
        n = sub.receive_into(buf, 100)
        return None if n is None else bytes(buf[:n])

    def take_part() -> None:
        assert sub.receive_into(buf, 1) is None  # one poll: 256 fragments of ~360

    check_bounded("receive_into", big_aeron, sub, take_whole, take_part,
                  last_poll=lambda: sub.receive_into(buf, 1), stats=lambda: sub.reassembly)

def test_fragment_assembler_memory_stays_bounded_when_sessions_come_and_go(big_aeron: Aeron) -> None:
    sub = big_aeron.add_subscription("aeron:ipc", STREAM)
    got: list[bytes] = []
    assembler = FragmentAssembler(lambda view, header: got.append(bytes(view)))

    def take_whole() -> bytes | None:
        sub.poll(assembler, 100)
        return got.pop() if got else None

    def take_part() -> None:
        assert sub.poll(assembler, 100) == 100  # 100 fragments of ~360
        assert not got

    check_bounded("FragmentAssembler", big_aeron, sub, take_whole, take_part,
                  last_poll=lambda: sub.poll(assembler, 1), stats=lambda: assembler.reassembly)

def test_a_fragment_assembler_used_from_its_own_handler_is_refused(aeron: Aeron) -> None:
    # Its partial buffers are in use while the handler runs: a poll of another
    # subscription through the same assembler from there is a user error.
    a_sub = aeron.add_subscription("aeron:ipc", 61)
    b_sub = aeron.add_subscription("aeron:ipc", 62)
    pub = aeron.add_publication("aeron:ipc", 61)
    wait_for(lambda: pub.is_connected, timeout=10.0, what="publication connected")
    errors: list[BaseException] = []

    def handler(view: memoryview, header: object) -> None:
        try:
            b_sub.poll(assembler, 10)
        except RuntimeError as e:
            errors.append(e)

    assembler = FragmentAssembler(handler)
    assert pub.offer(b"x" * (2 * pub.max_payload_length + 3)) > 0
    wait_for(lambda: a_sub.poll(assembler, 10) > 0 and bool(errors), timeout=10.0, what="the message")
    assert "FragmentAssembler used from the handler" in str(errors[0])
    assert assembler.reassembly["sessions"] == 0


def test_a_reassembled_message_has_the_header_of_the_whole_message(aeron: Aeron) -> None:
    # The handler's header describes the whole message: BEGIN|END flags, the
    # first fragment's term offset, its frame length, the position after it.
    sub = aeron.add_subscription("aeron:ipc", 63)
    pub = aeron.add_publication("aeron:ipc", 63)
    wait_for(lambda: pub.is_connected, timeout=10.0, what="publication connected")
    seen: list[tuple[int, int, int, int, int]] = []
    assembler = FragmentAssembler(
        lambda view, h: seen.append((len(view), h.flags, h.term_offset, h.frame_length, h.position)))
    assert pub.offer(b"a" * 10) > 0
    start = pub.position
    msg = os.urandom(3 * pub.max_payload_length + 5)
    assert pub.offer(msg) > 0
    wait_for(lambda: (sub.poll(assembler, 10), len(seen) == 2)[1], timeout=10.0, what="two messages")
    assert seen[1] == (len(msg), 0xC0, start, 32 + len(msg), pub.position)
    assert seen[0][:2] == (10, 0xC0)
