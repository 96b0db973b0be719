"""Hostile use of the native binding from Python: objects that were never
constructed, close() from inside a poll, and views that outlive their memory.

Each call that used to kill the interpreter (SIGSEGV, heap use-after-free)
runs in a child process first, so a regression shows as a failed test naming
the signal instead of a dead test run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

from tickline import _aeron
from tickline.transport import Aeron, BufferClaim, ClosedError, FragmentAssembler, MediaDriver

from transport_helpers import wait_for


def run_child(code: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Runs code in a fresh interpreter; it prints what it saw."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout)


def assert_clean_exit(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, (
        f"child died: returncode={proc.returncode} (negative: killed by that signal)\n"
        f"stdout={proc.stdout}\nstderr={proc.stderr[-3000:]}"
    )


# ---------------------------------------------------------------- objects never constructed (item 8)

UNCONSTRUCTED = {
    "publication.offer": "A.Publication.__new__(A.Publication).offer(b'x')",
    "publication.try_claim": "A.Publication.__new__(A.Publication).try_claim(8, A.BufferClaim())",
    "publication.offer_batch": "A.Publication.__new__(A.Publication).offer_batch([b'x'])",
    "publication.offer_frames": "A.Publication.__new__(A.Publication).offer_frames(b'x', 0, 1, 1)",
    "publication.close": "A.Publication.__new__(A.Publication).close()",
    "subscription.poll": "A.Subscription.__new__(A.Subscription).poll(lambda b, h: None, 1)",
    "subscription.poll_one": "A.Subscription.__new__(A.Subscription).poll_one()",
    "subscription.last_header": "A.Subscription.__new__(A.Subscription).last_header",
    "subscription.images": "A.Subscription.__new__(A.Subscription).images()",
    "subscription.close": "A.Subscription.__new__(A.Subscription).close()",
    "client.turn": "A.Client.__new__(A.Client).turn()",
    "client.add_publication": "A.Client.__new__(A.Client).add_publication('aeron:ipc', 1)",
    "client.close": "A.Client.__new__(A.Client).close()",
    "driver.do_work": "A.EmbeddedDriver.__new__(A.EmbeddedDriver).do_work()",
    "driver.close": "A.EmbeddedDriver.__new__(A.EmbeddedDriver).close()",
    "base_new.offer": "A.Publication.__mro__[1].__new__(A.Publication).offer(b'x')",
    "mixed.offer": "Mixed.__new__(Mixed).offer(b'x')",
    "mixed.poll": "Mixed.__new__(Mixed).poll(lambda b, h: None, 1)",
    "mixed.last_header": "Mixed.__new__(Mixed).last_header",
    "mixed.close": "Mixed.__new__(Mixed).close()",
    "counter.set": "A.AeronCounter.__new__(A.AeronCounter).set(1)",
    "counter.get": "A.AeronCounter.__new__(A.AeronCounter).get()",
    "counter.call": "A.AeronCounter()",
}


@pytest.mark.parametrize("case", sorted(UNCONSTRUCTED))
def test_objects_never_constructed_raise_type_error(case: str) -> None:
    proc = run_child(f"""
        from tickline import _aeron as A

        class Mixed(A.Publication, A.Subscription):  # two binding types in one subclass
            pass

        try:
            {UNCONSTRUCTED[case]}
        except TypeError as e:
            print("TypeError:", e)
        else:
            print("no error")
    """)
    assert_clean_exit(proc)
    assert proc.stdout.startswith("TypeError:"), proc.stdout
    if not case.startswith("base_new"):  # CPython's own "is not safe" check answers that one
        assert "fault=user" in proc.stdout


def test_fast_paths_check_their_object_type(aeron: Aeron) -> None:
    pub = aeron.add_publication("aeron:ipc", 7)
    sub = aeron.add_subscription("aeron:ipc", 7)
    with pytest.raises(TypeError):
        _aeron.Publication.offer(sub, b"x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _aeron.Subscription.poll(pub, lambda b, h: None, 1)  # type: ignore[arg-type]


# ---------------------------------------------------------------- close() from inside a poll (item 9)

CHILD_PRELUDE = """
import pickle, time
from tickline.transport import Aeron, BufferClaim, ClosedError, FragmentAssembler, MediaDriver

def connected_pair(aeron, stream_id=1):
    sub = aeron.add_subscription("aeron:ipc", stream_id)
    pub = aeron.add_publication("aeron:ipc", stream_id)
    deadline = time.monotonic() + 10
    while not (pub.is_connected and sub.image_count > 0):  # the image reached the client too
        assert time.monotonic() < deadline, "publication never connected"
        time.sleep(0.001)
    return pub, sub

def offer(pub, *messages):
    for m in messages:
        while pub.offer(m) < 0:
            time.sleep(0.001)
"""


@pytest.mark.parametrize("closer", ["subscription", "client"])
@pytest.mark.parametrize("style", ["poll", "controlled_poll", "assembler", "poll_image"])
def test_close_inside_the_handler_stops_delivery_and_frees_nothing_in_use(closer: str, style: str) -> None:
    proc = run_child(CHILD_PRELUDE + f"""
with MediaDriver.embedded() as driver:
    aeron = Aeron(driver.dir)
    pub, sub = connected_pair(aeron)
    offer(pub, b"m0", b"m1", b"m2", b"m3", b"m4")
    seen, kept = [], []

    def handler(buffer, header):
        seen.append(bytes(buffer))
        {"sub.close()" if closer == "subscription" else "aeron.close()"}
        seen.append(bytes(buffer))  # still readable: the close waits for the end of the poll
        seen.append(header.position > 0)
        kept.append((buffer, buffer[1:], memoryview(buffer), header))

    style = {style!r}
    if style == "poll":
        n = sub.poll(handler, 10)
    elif style == "controlled_poll":
        n = sub.controlled_poll(handler, 10)
    elif style == "assembler":
        n = sub.poll(FragmentAssembler(handler), 10)
    else:
        n = sub.poll_image(pub.session_id, handler, 10)
    print("delivered", n, seen)
    for v in kept[0][:3]:
        try:
            bytes(v)
            print("view still readable")
        except ValueError:
            pass
    print("header", kept[0][3].position > 0)
    try:
        sub.poll(handler, 10)
    except ClosedError as e:
        print("then", type(e).__name__)
    aeron.close()
print("exit")
""")
    assert_clean_exit(proc)
    assert "delivered 1 [b'm0', b'm0', True]" in proc.stdout, proc.stdout
    assert "view still readable" not in proc.stdout
    assert "header True" in proc.stdout
    assert "then ClosedError" in proc.stdout
    assert proc.stdout.rstrip().endswith("exit")


def test_close_from_an_image_callback_during_poll() -> None:
    proc = run_child(CHILD_PRELUDE + """
with MediaDriver.embedded() as driver:
    aeron = Aeron(driver.dir)
    holder, late = [], []

    def on_image(image):
        holder[0].close()
        holder.append("closed")

    sub = aeron.add_subscription("aeron:ipc", 3, on_available_image=on_image)
    holder.append(sub)
    pub = aeron.add_publication("aeron:ipc", 3)
    offer(pub, b"x", b"y")
    deadline = time.monotonic() + 10
    while not sub.is_closed and time.monotonic() < deadline:
        sub.poll(lambda b, h: late.append(bytes(b)) if len(holder) > 1 else None, 10)
    print("closed", sub.is_closed, "delivered after close", late)
    aeron.close()
print("exit")
""")
    assert_clean_exit(proc)
    assert "closed True delivered after close []" in proc.stdout, proc.stdout


def test_a_poll_inside_a_poll_of_the_same_subscription_is_refused() -> None:
    proc = run_child(CHILD_PRELUDE + """
with MediaDriver.embedded() as driver:
    aeron = Aeron(driver.dir)
    pub, sub = connected_pair(aeron)
    offer(pub, b"a", b"b")
    inner, outer = [], []

    def handler(buffer, header):
        for call in (lambda: sub.poll(lambda b, h: None, 1), sub.poll_one, lambda: sub.drain(1),
                     lambda: sub.poll_image(pub.session_id, lambda b, h: None, 1)):
            try:
                call()
            except RuntimeError as e:
                inner.append(str(e))
        outer.append(bytes(buffer))  # the outer view was not repointed by an inner poll

    deadline = time.monotonic() + 10
    while not outer and time.monotonic() < deadline:
        sub.poll(handler, 1)
    print("refused", len(inner), all("polls of one subscription don't nest" in m and "fault=user" in m for m in inner))
    got = []
    while not got and time.monotonic() < deadline:
        sub.poll(lambda b, h: got.append(bytes(b)), 10)
    print("outer", outer, "next", got)  # the refused inner polls consumed nothing
    aeron.close()
print("exit")
""")
    assert_clean_exit(proc)
    assert "refused 4 True" in proc.stdout, proc.stdout
    assert "outer [b'a'] next [b'b']" in proc.stdout


# ---------------------------------------------------------------- views that outlive their memory (item 10)


def test_poll_one_view_and_views_made_from_it_are_revoked_at_close() -> None:
    proc = run_child(CHILD_PRELUDE + """
for closer in ("subscription", "client"):
    with MediaDriver.embedded() as driver:
        aeron = Aeron(driver.dir)
        pub, sub = connected_pair(aeron)
        offer(pub, b"pulled-fragment")
        deadline = time.monotonic() + 10
        view = None
        while view is None and time.monotonic() < deadline:
            view = sub.poll_one()
        derived = [view[7:], memoryview(view), view.cast("B")]
        print(closer, "before", bytes(view), bytes(derived[0]))
        sub.close() if closer == "subscription" else aeron.close()
        for v in [view] + derived:
            try:
                print("readable after close", bytes(v))
            except ValueError as e:
                assert "released" in str(e)
        aeron.close()
print("exit")
""")
    assert_clean_exit(proc)
    assert "subscription before b'pulled-fragment' b'fragment'" in proc.stdout
    assert "client before b'pulled-fragment' b'fragment'" in proc.stdout
    assert "readable after close" not in proc.stdout, proc.stdout
    assert proc.stdout.rstrip().endswith("exit")


def test_views_made_from_the_handler_buffer_are_revoked_after_the_call() -> None:
    proc = run_child(CHILD_PRELUDE + """
with MediaDriver.embedded() as driver:
    aeron = Aeron(driver.dir)
    pub, sub = connected_pair(aeron)
    offer(pub, b"handler-fragment")
    kept = []
    deadline = time.monotonic() + 10
    while not kept and time.monotonic() < deadline:
        sub.poll(lambda b, h: kept.extend([b, memoryview(b), b[8:], b[8:][1:], b.cast("c")]), 10)
    revoked = 0
    for v in kept:
        try:
            bytes(v)
        except ValueError:
            revoked += 1
    print("revoked", revoked, "of", len(kept))
    aeron.close()  # unmaps the log the views pointed into
    for v in kept:
        try:
            print("readable after close", bytes(v))
        except ValueError:
            pass
print("exit")
""")
    assert_clean_exit(proc)
    assert "revoked 5 of 5" in proc.stdout, proc.stdout
    assert "readable after close" not in proc.stdout
    assert proc.stdout.rstrip().endswith("exit")


def test_a_view_that_lent_its_memory_on_is_pointed_at_a_private_copy() -> None:
    # pickle.PickleBuffer holds a buffer export of the view, so the view can't
    # be released: it is pointed at a read-only copy of the fragment instead.
    proc = run_child(CHILD_PRELUDE + """
with MediaDriver.embedded(options={"aeron.ipc.term.buffer.length": "64k"}) as driver:
    aeron = Aeron(driver.dir)
    pub, sub = connected_pair(aeron)
    offer(pub, b"lent-fragment")
    kept = []
    deadline = time.monotonic() + 10
    while not kept and time.monotonic() < deadline:
        sub.poll(lambda b, h: kept.extend([b, pickle.PickleBuffer(b), b[5:]]), 10)
    view, export, derived = kept
    # Overwrite the whole log (two terms' worth of other messages).
    for i in range(400):
        offer(pub, bytes([i % 251]) * 400)
        sub.drain(10)
    print("view", bytes(view), view.readonly)
    try:
        bytes(derived)
    except ValueError:
        print("derived released")
    aeron.close()
    print("after close", bytes(view))
print("exit")
""")
    assert_clean_exit(proc)
    assert "view b'lent-fragment' True" in proc.stdout, proc.stdout
    assert "derived released" in proc.stdout
    assert "after close b'lent-fragment'" in proc.stdout


def claim_pair(aeron: Aeron, stream_id: int):  # type: ignore[no-untyped-def]
    sub = aeron.add_subscription("aeron:ipc", stream_id)
    pub = aeron.add_publication("aeron:ipc", stream_id)
    wait_for(lambda: pub.is_connected)
    return pub, sub


def received(sub) -> list[bytes]:  # type: ignore[no-untyped-def]
    got: list[bytes] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and sub.poll(lambda b, h: got.append(bytes(b)), 10) == 0:
        time.sleep(0.001)
    sub.poll(lambda b, h: got.append(bytes(b)), 10)
    return got


@pytest.mark.parametrize("finish", ["commit", "abort", "context"])
def test_claim_views_cannot_write_after_commit_or_abort(aeron: Aeron, finish: str) -> None:
    pub, sub = claim_pair(aeron, 11)
    claim = BufferClaim()
    assert pub.try_claim(4, claim) > 0
    view = memoryview(claim)
    derived = view[2:]
    view[:2] = b"ab"
    derived[:] = b"cd"
    if finish == "context":
        with claim:
            pass
    else:
        getattr(claim, finish)()
    for v in (view, derived):
        with pytest.raises(ValueError, match="released memoryview"):
            v[:1] = b"X"
    with pytest.raises(BufferError, match="not active"):
        memoryview(claim)
    assert pub.offer(b"next") > 0
    assert received(sub) == ([b"abcd", b"next"] if finish != "abort" else [b"next"])


def test_claim_with_an_export_that_cannot_be_revoked_refuses_commit(aeron: Aeron) -> None:
    import pickle

    pub, sub = claim_pair(aeron, 12)
    claim = BufferClaim()
    assert pub.try_claim(3, claim) > 0
    export = pickle.PickleBuffer(claim)  # holds the claim's buffer directly, not through a memoryview
    export.raw()[:] = b"xyz"
    with pytest.raises(BufferError, match="buffer claim commit refused: exports=1 .* fault=user"):
        claim.commit()
    assert claim.is_active
    export.release()
    claim.commit()
    assert received(sub) == [b"xyz"]


def test_claim_of_a_closed_publication_is_over() -> None:
    proc = run_child(CHILD_PRELUDE + """
for closer in ("publication", "client"):
    with MediaDriver.embedded() as driver:
        aeron = Aeron(driver.dir)
        pub, sub = connected_pair(aeron)
        claim = BufferClaim()
        assert pub.try_claim(16, claim) > 0
        view = memoryview(claim)
        lent = view[4:]
        export = pickle.PickleBuffer(lent)  # lent can't be released: it sees zeros instead
        view[:4] = b"head"
        pub.close() if closer == "publication" else aeron.close()
        print(closer, "active", claim.is_active)
        try:
            view[:1] = b"X"
        except ValueError:
            print(closer, "view released")
        try:
            lent[:1] = b"X"
        except TypeError:
            print(closer, "lent read-only", bytes(lent) == bytes(12))
        try:
            claim.commit()
        except ValueError as e:
            print(closer, "commit", type(e).__name__)
        export.release()
        aeron.close()
print("exit")
""")
    assert_clean_exit(proc)
    for closer in ("publication", "client"):
        assert f"{closer} active False" in proc.stdout, proc.stdout
        assert f"{closer} view released" in proc.stdout
        assert f"{closer} lent read-only True" in proc.stdout
        assert f"{closer} commit ValueError" in proc.stdout  # not active any more
    assert proc.stdout.rstrip().endswith("exit")


def test_claim_committed_in_a_handler_after_its_client_was_closed_there() -> None:
    proc = run_child(CHILD_PRELUDE + """
with MediaDriver.embedded() as driver:
    aeron = Aeron(driver.dir)
    pub, sub = connected_pair(aeron)
    claim_pub, claim_sub = connected_pair(aeron, 9)
    claim = BufferClaim()
    deadline = time.monotonic() + 10
    while claim_pub.try_claim(8, claim) < 0:
        assert time.monotonic() < deadline
        time.sleep(0.001)
    view = memoryview(claim)
    del claim_pub  # the claim holds the last reference to its publication
    offer(pub, b"go")
    outcome = []

    def handler(buffer, header):
        aeron.close()
        try:
            claim.commit()
        except ClosedError as e:
            outcome.append("ClosedError" if "client closed" in str(e) else str(e))
        try:
            view[:1] = b"X"
        except ValueError:
            outcome.append("view released")

    while not outcome and time.monotonic() < deadline:
        sub.poll(handler, 10)
    print(outcome, claim.is_active)
print("exit")
""")
    assert_clean_exit(proc)
    assert "['ClosedError', 'view released'] False" in proc.stdout, proc.stdout
