"""Micro-benchmarks of tickline's hot calls, each beside its peer in the same group (see README.md).

Each benchmark first checks that the call did its work (messages delivered, values read), so a
broken call shows as a failure, not as a fast time."""

from __future__ import annotations

import random
import struct
from types import ModuleType
from typing import Any

import pytest

BATCH = 64  # messages per round in the transport groups
MSG = bytes(range(32))


ROUNDS = 2000


def send(pub: Any, n: int = BATCH) -> int:
    """``n`` messages through the C loop; a refusal at a term's end (ADMIN_ACTION: the term rotates) is retried."""
    sent = 0
    for _ in range(3):
        sent += int(pub.offer_repeat(MSG, n - sent))
        if sent == n:
            break
    return sent


def offer_once(offer: Any) -> bool:
    """One ``offer``, retried once when refused at a term's end."""
    return offer(MSG) > 0 or offer(MSG) > 0


def rounds(benchmark: Any, ipc: Any, round_: Any) -> Any:
    """Run ``round_`` ROUNDS times (after a warm-up), each after ``ipc.settle()``, which is not timed."""
    return benchmark.pedantic(round_, setup=ipc.settle, rounds=ROUNDS, iterations=1, warmup_rounds=50)


# -- poll -------------------------------------------------------------------------------------------------------
# Each round queues BATCH messages with the C loop (offer_repeat) and reads them back: the groups differ only
# in the read.
@pytest.mark.benchmark(group="poll")
def test_poll_handler(benchmark: Any, ipc: Any) -> None:
    seen = [0]

    def handler(view: Any, header: Any) -> None:
        seen[0] += 1

    def round_() -> int:
        assert send(ipc.pub) == BATCH
        return int(ipc.sub.poll(handler, BATCH))

    assert rounds(benchmark, ipc, round_) == BATCH
    assert seen[0] >= BATCH * ROUNDS


@pytest.mark.benchmark(group="poll")
def test_poll_peer_c_drain(benchmark: Any, ipc: Any) -> None:
    def round_() -> int:
        assert send(ipc.pub) == BATCH
        return int(ipc.sub.drain(BATCH))

    assert rounds(benchmark, ipc, round_) == BATCH


@pytest.mark.benchmark(group="poll")
def test_poll_one_pull(benchmark: Any, ipc: Any) -> None:
    def round_() -> int:
        assert send(ipc.pub) == BATCH
        n = 0
        while ipc.sub.poll_one() is not None:
            n += 1
        return n

    assert rounds(benchmark, ipc, round_) == BATCH


# -- offer ------------------------------------------------------------------------------------------------------
# Each round sends BATCH messages; settle() drains them, untimed.
def offer_rounds(benchmark: Any, ipc: Any) -> None:
    offer = ipc.pub.offer

    def round_() -> int:
        n = 0
        for _ in range(BATCH):
            n += offer_once(offer)
        return n

    assert rounds(benchmark, ipc, round_) == BATCH


@pytest.mark.benchmark(group="offer")
def test_offer(benchmark: Any, ipc: Any) -> None:
    offer_rounds(benchmark, ipc)


@pytest.mark.benchmark(group="offer")
def test_offer_peer_c_loop(benchmark: Any, ipc: Any) -> None:
    def round_() -> int:
        return send(ipc.pub)

    assert rounds(benchmark, ipc, round_) == BATCH


# -- claim ------------------------------------------------------------------------------------------------------
@pytest.mark.benchmark(group="claim")
def test_claim_write_commit(benchmark: Any, ipc: Any) -> None:
    from tickline.transport import BufferClaim

    claim = BufferClaim()
    try_claim = ipc.pub.try_claim

    def round_() -> int:
        n = 0
        for _ in range(BATCH):
            if try_claim(32, claim) > 0 or try_claim(32, claim) > 0:
                mv = memoryview(claim)
                mv[:] = MSG
                mv.release()
                claim.commit()
                n += 1
        return n

    assert rounds(benchmark, ipc, round_) == BATCH
    got: list[bytes] = []
    ipc.turn()
    ipc.sub.poll(lambda view, header: got.append(bytes(view)), 1)
    assert got == [MSG]  # what the claims carried


@pytest.mark.benchmark(group="claim")
def test_claim_peer_offer_copy(benchmark: Any, ipc: Any) -> None:
    offer_rounds(benchmark, ipc)  # the same rounds as test_offer, shown beside the claim


# -- a codec field read ------------------------------------------------------------------------------------------
def _top_of_book(md: ModuleType, i: int = 7) -> bytes:
    buf = bytearray(8 + md.TopOfBookEncoder.BLOCK_LENGTH)
    enc = md.TopOfBookEncoder().wrap_and_apply_header(buf, 0)
    enc.symbol = "EURUSD"
    enc.exchange_timestamp = 1_700_000_000_000_000_000 + i
    enc.local_timestamp = 1_700_000_000_000_000_100 + i
    enc.bid_price.mantissa = 1_085_000_000 + i
    enc.bid_size = 1_000_000 + i
    enc.ask_price.mantissa = 1_085_010_000 + i
    enc.ask_size = 2_000_000 + i
    enc.seq_num = i + 1
    return bytes(buf)


@pytest.mark.benchmark(group="field-read")
def test_field_read_flyweight_wrap_and_read(benchmark: Any, md: ModuleType) -> None:
    msg = _top_of_book(md)
    dec = md.TopOfBookDecoder()

    def read() -> int:
        return dec.wrap(msg, 8).bid_size

    assert benchmark(read) == 1_000_007


@pytest.mark.benchmark(group="field-read")
def test_field_read_peer_struct_unpack_from(benchmark: Any, md: ModuleType) -> None:
    msg = _top_of_book(md)
    offset = 8 + md.TopOfBookDecoder.BLOCK_LENGTH - 8 - 8 - 8 - 8  # bid_size: 4th 8-byte field from the end
    field = struct.Struct("<Q")

    def read() -> int:
        return field.unpack_from(msg, offset)[0]

    assert benchmark(read) == 1_000_007


# -- batch decode -------------------------------------------------------------------------------------------------
BATCH_DECODE = 10_000


@pytest.mark.benchmark(group="batch-decode")
def test_batch_decode_frames(benchmark: Any, md: ModuleType) -> None:
    from tickline.codecs import BatchDecoder, load_builtin
    from tickline.codecs.batch import pack_frames

    frames = pack_frames(_top_of_book(md, i) for i in range(BATCH_DECODE))
    dec = BatchDecoder(load_builtin("market_data.xml"), "TopOfBook")
    batch = benchmark(dec.frames, frames)
    assert batch.count == BATCH_DECODE and int(batch["bid_size"][-1]) == 1_000_000 + BATCH_DECODE - 1


@pytest.mark.benchmark(group="batch-decode")
def test_batch_decode_peer_flyweight_loop(benchmark: Any, md: ModuleType) -> None:
    msgs = [_top_of_book(md, i) for i in range(BATCH_DECODE)]
    dec = md.TopOfBookDecoder()

    def loop() -> list[tuple[Any, ...]]:
        rows = []
        for m in msgs:
            d = dec.wrap(m, 8)
            rows.append((d.symbol, d.exchange_timestamp, d.local_timestamp, d.bid_price.mantissa, d.bid_size,
                         d.ask_price.mantissa, d.ask_size, d.seq_num))
        return rows

    rows = benchmark(loop)
    assert len(rows) == BATCH_DECODE and rows[-1][4] == 1_000_000 + BATCH_DECODE - 1


# -- a FIX parse ----------------------------------------------------------------------------------------------------
def _new_order_single() -> bytes:
    from tickline.fix_gateway import codec

    return codec.encode("FIX.4.4", [(35, "D"), (49, "CLIENT"), (56, "VENUE"), (34, 12), (52, "20240102-10:00:00.000"),
                                    (11, "ORD-0001"), (55, "EURUSD"), (54, "1"), (60, "20240102-10:00:00.000"),
                                    (38, 1000000), (40, "2"), (44, "1.08500")])


@pytest.mark.benchmark(group="fix-parse")
def test_fix_parse_native(benchmark: Any) -> None:
    from tickline.fix_gateway import codec

    frame = _new_order_single()
    m = benchmark(codec.parse, frame)
    assert m.get(11) == "ORD-0001"


@pytest.mark.benchmark(group="fix-parse")
def test_fix_parse_peer_plain_python(benchmark: Any) -> None:
    from tickline.fix_gateway import codec

    frame = _new_order_single()
    m = benchmark(codec.py_parse, frame)
    assert m.get(11) == "ORD-0001"


@pytest.mark.benchmark(group="fix-parse")
def test_fix_parse_peer_simplefix(benchmark: Any) -> None:
    import simplefix

    frame = _new_order_single()
    parser = simplefix.FixParser()

    def parse() -> Any:
        parser.append_buffer(frame)
        return parser.get_message()

    m = benchmark(parse)
    assert m.get(11) == b"ORD-0001"


# -- a consensus step -------------------------------------------------------------------------------------------------
@pytest.mark.benchmark(group="consensus-step")
def test_consensus_follower_heartbeat_step(benchmark: Any) -> None:
    from tickline.cluster.config import ConsensusConfig
    from tickline.cluster.consensus import Consensus
    from tickline.cluster.messages import AppendRequest, AppendResponse

    c = Consensus(ConsensusConfig(2, (1, 2, 3)), random.Random(0))
    heartbeat = AppendRequest(src=1, dst=2, term=1, prev_position=0, prev_term=0, entries=(), commit_position=0)

    def step() -> Any:
        c.step(heartbeat)
        rd = c.ready()
        c.advance(rd)
        return rd

    rd = benchmark(step)
    assert c.leader == 1 and c.term == 1
    assert any(isinstance(m, AppendResponse) and m.success for m in rd.messages)
