"""Batch decode of a recording written by the real archive: TopOfBook messages interleaved with
trades and with order books large enough to be fragmented, over several terms (padding frames) and
segments, read back into numpy columns equal to the on-the-fly decode of what was published."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tickline.codecs import BatchDecoder, MessageError, load_builtin, otf

from archive_helpers import record_stopped

MD = load_builtin("market_data.xml")
N = 3000


def top_of_book(i: int) -> bytes:
    return otf.encode(MD, {"message": "TopOfBook", "fields": {
        "symbol": f"SYM{i % 7}", "exchangeTimestamp": 1_700_000_000_000_000_000 + i, "localTimestamp": 5 * i,
        "bidPrice": {"mantissa": None if i % 11 == 0 else 1_000_000 + i, "exponent": -9}, "bidSize": 3 * i,
        "askPrice": {"mantissa": 2_000_000 + i, "exponent": -9}, "askSize": 4 * i, "seqNum": i + 1}})


def trade(i: int) -> bytes:
    return otf.encode(MD, {"message": "Trade", "fields": {
        "symbol": "T", "exchangeTimestamp": i, "localTimestamp": i, "tradeId": i, "price": {"mantissa": i, "exponent": -9},
        "quantity": 1, "aggressorSide": "Buy", "buyOrderId": None, "sellOrderId": None, "seqNum": i + 1}})


def order_book(i: int) -> bytes:
    level = {"price": {"mantissa": i, "exponent": -9}, "volume": 1, "orderCount": 2}
    return otf.encode(MD, {"message": "OrderBook", "fields": {
        "symbol": "B", "exchangeTimestamp": i, "localTimestamp": i, "seqNum": i + 1,
        "bids": [level] * 150, "asks": [level] * 150}})  # ~6 KB: fragmented at the IPC MTU


@pytest.fixture
def recorded(aeron: Any, archive_client: Any) -> tuple[Any, list[bytes], int, int]:
    messages, tobs, trades, books = [], [], 0, 0
    for i in range(N):
        m = top_of_book(i)
        messages.append(m)
        tobs.append(m)
        if i % 5 == 0:
            messages.append(trade(i))
            trades += 1
        if i % 400 == 0:
            messages.append(order_book(i))
            books += 1
    d = record_stopped(aeron, archive_client, 4101, messages)
    return d, tobs, trades, books


def test_a_recording_decodes_into_columns_equal_to_the_otf_decode(recorded: Any, archive_dir: Path) -> None:
    d, tobs, trades, books = recorded
    segments = [n for n in os.listdir(archive_dir) if n.startswith(f"{d.recording_id}-") and n.endswith(".rec")]
    assert len(segments) >= 3  # 128 KiB segments
    batch = BatchDecoder(MD, "TopOfBook").recording(archive_dir, d.recording_id)
    assert batch.count == len(tobs)
    assert batch.skipped["other_template"] == trades
    assert batch.skipped["fragmented"] >= 2 * books  # each book is at least two fragments
    assert batch.skipped["padding"] >= 1  # the terms end in padding frames
    bid_null = batch.null_mask("bid_price.mantissa")
    for i, m in enumerate(tobs):
        f = otf.decode(MD, m)[0]["fields"]
        assert batch["symbol"][i].decode() == f["symbol"]
        assert int(batch["exchange_timestamp"][i]) == f["exchangeTimestamp"]
        assert int(batch["local_timestamp"][i]) == f["localTimestamp"]
        assert (None if bid_null[i] else int(batch["bid_price.mantissa"][i])) == f["bidPrice"]["mantissa"]
        assert int(batch["ask_price.mantissa"][i]) == f["askPrice"]["mantissa"]
        assert int(batch["bid_size"][i]) == f["bidSize"] and int(batch["ask_size"][i]) == f["askSize"]
        assert int(batch["seq_num"][i]) == f["seqNum"]
    assert all(d.start_position <= int(p) < d.stop_position for p in batch.offsets)
    assert list(batch.offsets) == sorted(batch.offsets)


def test_a_damaged_segment_names_the_file_and_the_position(recorded: Any, archive_dir: Path) -> None:
    d, _, _, _ = recorded
    position = int(BatchDecoder(MD, "TopOfBook").recording(archive_dir, d.recording_id).offsets[5])
    base = d.start_position - d.start_position % d.term_buffer_length
    first = archive_dir / f"{d.recording_id}-{base}.rec"
    with open(first, "r+b") as f:
        f.seek(position - base)
        f.write((2**31 - 1).to_bytes(4, "little"))  # a frame length past the end of everything
    with pytest.raises(MessageError) as exc:
        BatchDecoder(MD, "TopOfBook").recording(archive_dir, d.recording_id)
    text = str(exc.value)
    assert f"file={first}" in text and "frame runs past the end of the buffer" in text and "fault=storage" in text
    assert f"offset={position}" in text, text


def test_a_missing_segment_is_storage_damage(recorded: Any, archive_dir: Path) -> None:
    d, _, _, _ = recorded
    bases = sorted(int(n.split("-")[1].split(".")[0]) for n in os.listdir(archive_dir) if n.startswith(f"{d.recording_id}-"))
    (archive_dir / f"{d.recording_id}-{bases[1]}.rec").unlink()
    with pytest.raises(MessageError, match=f"segment file missing: recording_id={d.recording_id} base={bases[1]}"):
        BatchDecoder(MD, "TopOfBook").recording(archive_dir, d.recording_id)
