"""``tickline bench codecs``: SBE flyweights vs protobuf (upb), msgpack, json and struct, same run.

Three messages -- an L1 tick (TopOfBook), an ExecutionReport and a 20-level
order book (OrderBook) -- each encoded in full and decoded in full (every field
read into a Python value); for the tick also single reads of a freshly received
message (wrap/parse the bytes, then read one field): a plain integer (bid_size),
a fixed-point price's mantissa (a composite member) and the symbol (a char
array).  Every peer does the same work on the same values.

The book cases write and read the levels with a group's ``put_rows()``/``rows()``
(one call per side); ``book_*_per_entry`` do it entry by entry (``next()`` and
one assignment or read per field), for SBE only.

Every SBE row above goes field by field: one assignment or attribute read per
field (two for a price: the composite, then its mantissa).  The rows ending in
``_pack``/``_unpack`` do the same messages with one call per block instead:
``pack(*values)`` sets every fixed field, ``unpack()`` returns them all as a
tuple (the counterpart of msgpack's one ``packb``/``unpackb`` of a list); the
other peers do the same work as in the field-by-field row, measured again in
the same row.  Two SBE peers: ``sbe`` (the
pure-Python flyweights of ``codegen --lang python``) and ``sbe-cython`` (the
compiled codecs of ``codegen --lang cython``, as ``make install`` built them
for tickline's schemas), driven by the same code.

Times are ns per message: the median over ``runs`` measurements of
``iterations`` calls each, minus the cost of calling an empty function.

SBE reuses one flyweight and one buffer per stream, as intended; protobuf
creates a message per decode (``FromString``) as idiomatic Python code does.
"""

from __future__ import annotations

import json
import platform
import statistics
import struct
import time
from typing import Any, Callable

from tickline.codecs import gen_cython
from tickline.codecs.gen_python import load_module
from tickline.codecs.schema import load_builtin

SYMBOL = "ESZ6"
TS1 = 1763780000123456789
TS2 = 1763780000123459999
BID, ASK = 6789250000000, 6789500000000


def _protobuf() -> tuple[Any, Any, Any, str] | None:
    try:
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
        from google.protobuf.internal import api_implementation
    except ImportError:
        return None
    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name="tickline_bench.proto", package="tlbench", syntax="proto2")

    def msg(name: str, fields: list[tuple[str, int]], repeated: dict[str, str] | None = None) -> None:
        m = fdp.message_type.add(name=name)
        for i, (fname, ftype) in enumerate(fields, 1):
            if repeated and fname in repeated:
                m.field.add(name=fname, number=i, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED, type_name=repeated[fname])
            else:
                m.field.add(name=fname, number=i, type=ftype, label=F.LABEL_OPTIONAL)

    msg("TopOfBook", [("symbol", F.TYPE_STRING), ("exchange_timestamp", F.TYPE_FIXED64), ("local_timestamp", F.TYPE_FIXED64),
                      ("bid_price", F.TYPE_SINT64), ("bid_size", F.TYPE_UINT64), ("ask_price", F.TYPE_SINT64), ("ask_size", F.TYPE_UINT64)])
    msg("ExecutionReport", [("order_id", F.TYPE_UINT64), ("exec_id", F.TYPE_UINT64), ("cl_ord_id", F.TYPE_STRING),
                            ("symbol", F.TYPE_STRING), ("side", F.TYPE_INT32), ("exec_type", F.TYPE_INT32),
                            ("ord_status", F.TYPE_INT32), ("reject_reason", F.TYPE_INT32), ("price", F.TYPE_SINT64),
                            ("last_price", F.TYPE_SINT64), ("last_quantity", F.TYPE_UINT64), ("leaves_quantity", F.TYPE_UINT64),
                            ("cum_quantity", F.TYPE_UINT64), ("avg_price", F.TYPE_SINT64), ("transact_time", F.TYPE_FIXED64),
                            ("text", F.TYPE_STRING)])
    msg("Level", [("price", F.TYPE_SINT64), ("volume", F.TYPE_UINT64), ("order_count", F.TYPE_UINT32)])
    msg("OrderBook", [("symbol", F.TYPE_STRING), ("exchange_timestamp", F.TYPE_FIXED64), ("local_timestamp", F.TYPE_FIXED64),
                      ("bids", 0), ("asks", 0)], {"bids": ".tlbench.Level", "asks": ".tlbench.Level"})
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)

    def cls(name: str) -> Any:
        return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tlbench.{name}"))

    return cls("TopOfBook"), cls("ExecutionReport"), cls("OrderBook"), api_implementation.Type()


def _time(fn: Callable[[], Any], iterations: int, runs: int, baseline: float = 0.0) -> float:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        for _ in range(iterations):
            fn()
        samples.append((time.perf_counter_ns() - t0) / iterations)
    return max(statistics.median(samples) - baseline, 0.0)


def _levels(side: int) -> list[tuple[int, int, int]]:
    return [(BID - side * i * 250000000, 10 + i, 1 + i % 7) for i in range(20)]


def _sbe_cases(md: Any, od: Any) -> dict[str, Callable[[], Any]]:
    """case -> callable for one generated codec module pair (pure-Python or compiled): the same code drives both."""
    bids, asks = _levels(1), _levels(-1)
    text = "partial fill"
    tob_buf = bytearray(256)
    tob_enc = md.TopOfBookEncoder()

    def sbe_tob_encode() -> None:
        e = tob_enc.wrap_and_apply_header(tob_buf, 0)
        e.symbol = SYMBOL
        e.exchange_timestamp = TS1
        e.local_timestamp = TS2
        e.bid_price.mantissa = BID
        e.bid_size = 12
        e.ask_price.mantissa = ASK
        e.ask_size = 7

    sbe_tob_encode()
    tob_dec = md.TopOfBookDecoder()
    hl, bl = md.HEADER_LENGTH, md.TopOfBookDecoder.BLOCK_LENGTH

    def sbe_tob_decode() -> tuple[Any, ...]:
        d = tob_dec.wrap(tob_buf, hl, bl, 0)
        return (d.symbol, d.exchange_timestamp, d.local_timestamp, d.bid_price.mantissa, d.bid_size,
                d.ask_price.mantissa, d.ask_size)

    fresh = md.TopOfBookDecoder()

    # A single read measured honestly: wrap the received bytes, then read one field (not a value wrap() unpacked
    # for an earlier call).
    def field_read() -> Any:
        return fresh.wrap(tob_buf, hl, bl, 0).bid_size

    def price_read() -> Any:
        return fresh.wrap(tob_buf, hl, bl, 0).bid_price.mantissa

    def symbol_read() -> Any:
        return fresh.wrap(tob_buf, hl, bl, 0).symbol

    er_buf = bytearray(512)
    er_enc = od.ExecutionReportEncoder()
    Side, ExecType, OrdStatus = od.Side, od.ExecType, od.OrdStatus

    def sbe_er_encode() -> None:
        e = er_enc.wrap_and_apply_header(er_buf, 0)
        e.order_id = 987654321
        e.exec_id = 5550001
        e.cl_ord_id = "C-20261122-000042"
        e.symbol = SYMBOL
        e.side = Side.Buy
        e.exec_type = ExecType.Trade
        e.ord_status = OrdStatus.PartiallyFilled
        e.reject_reason = None
        e.price.mantissa = BID
        e.last_price.mantissa = BID
        e.last_quantity = 3
        e.leaves_quantity = 7
        e.cum_quantity = 3
        e.avg_price.mantissa = BID
        e.transact_time = TS1
        e.put_text(text)

    sbe_er_encode()
    er_dec = od.ExecutionReportDecoder()
    er_bl = od.ExecutionReportDecoder.BLOCK_LENGTH

    def sbe_er_decode() -> tuple[Any, ...]:
        d = er_dec.wrap(er_buf, hl, er_bl, 0)
        return (d.order_id, d.exec_id, d.cl_ord_id, d.symbol, d.side, d.exec_type, d.ord_status, d.reject_reason,
                d.price.mantissa, d.last_price.mantissa, d.last_quantity, d.leaves_quantity, d.cum_quantity,
                d.avg_price.mantissa, d.transact_time, d.text())

    ob_buf = bytearray(4096)
    ob_enc = md.OrderBookEncoder()

    def sbe_ob_encode() -> None:
        e = ob_enc.wrap_and_apply_header(ob_buf, 0)
        e.symbol = SYMBOL
        e.exchange_timestamp = TS1
        e.local_timestamp = TS2
        e.bids_count(20).put_rows(bids)
        e.asks_count(20).put_rows(asks)

    def sbe_ob_encode_per_entry() -> None:
        e = ob_enc.wrap_and_apply_header(ob_buf, 0)
        e.symbol = SYMBOL
        e.exchange_timestamp = TS1
        e.local_timestamp = TS2
        g = e.bids_count(20)
        for p, v, c in bids:
            g.next()
            g.price.mantissa = p
            g.volume = v
            g.order_count = c
        g = e.asks_count(20)
        for p, v, c in asks:
            g.next()
            g.price.mantissa = p
            g.volume = v
            g.order_count = c

    sbe_ob_encode()
    ob_dec = md.OrderBookDecoder()
    ob_bl = md.OrderBookDecoder.BLOCK_LENGTH

    def sbe_ob_decode() -> tuple[Any, ...]:
        d = ob_dec.wrap(ob_buf, hl, ob_bl, 0)
        return d.symbol, d.exchange_timestamp, d.local_timestamp, d.bids().rows(), d.asks().rows()

    def sbe_ob_decode_per_entry() -> tuple[Any, ...]:
        d = ob_dec.wrap(ob_buf, hl, ob_bl, 0)
        b = [(x.price.mantissa, x.volume, x.order_count) for x in d.bids()]
        a = [(x.price.mantissa, x.volume, x.order_count) for x in d.asks()]
        return d.symbol, d.exchange_timestamp, d.local_timestamp, b, a

    # One call per block: pack() sets every fixed field from positional values, unpack() returns them all
    # (msgpack's packb/unpackb of a list is likewise one call for all the values).  TopOfBook's seqNum (version 1)
    # is the one value more than the rows above write and read: pack() writes it (0, as they leave it).
    def sbe_tob_pack() -> None:
        tob_enc.wrap_and_apply_header(tob_buf, 0).pack(SYMBOL, TS1, TS2, BID, 12, ASK, 7, 0)

    def sbe_tob_unpack() -> tuple[Any, ...]:
        return tob_dec.wrap(tob_buf, hl, bl, 0).unpack()

    er_values = (987654321, 5550001, "C-20261122-000042", SYMBOL, Side.Buy, ExecType.Trade, OrdStatus.PartiallyFilled,
                 None, BID, BID, 3, 7, 3, BID, TS1)

    def sbe_er_pack() -> None:
        er_enc.wrap_and_apply_header(er_buf, 0).pack(*er_values).put_text(text)

    def sbe_er_unpack() -> tuple[Any, ...]:
        d = er_dec.wrap(er_buf, hl, er_bl, 0)
        return d.unpack(), d.text()

    def sbe_ob_pack_per_entry() -> None:
        e = ob_enc.wrap_and_apply_header(ob_buf, 0).pack(SYMBOL, TS1, TS2, 0)
        g = e.bids_count(20)
        for p, v, c in bids:
            g.next().pack(p, v, c)
        g = e.asks_count(20)
        for p, v, c in asks:
            g.next().pack(p, v, c)

    def sbe_ob_unpack_per_entry() -> tuple[Any, ...]:
        d = ob_dec.wrap(ob_buf, hl, ob_bl, 0)
        head = d.unpack()
        return head, [x.unpack() for x in d.bids()], [x.unpack() for x in d.asks()]

    return {"l1_encode": sbe_tob_encode, "l1_decode": sbe_tob_decode, "l1_field_read": field_read,
            "l1_price_read": price_read, "l1_symbol_read": symbol_read, "er_encode": sbe_er_encode,
            "er_decode": sbe_er_decode, "book_encode": sbe_ob_encode, "book_decode": sbe_ob_decode,
            "book_encode_per_entry": sbe_ob_encode_per_entry, "book_decode_per_entry": sbe_ob_decode_per_entry,
            "l1_encode_pack": sbe_tob_pack, "l1_decode_unpack": sbe_tob_unpack, "er_encode_pack": sbe_er_pack,
            "er_decode_unpack": sbe_er_unpack, "book_encode_per_entry_pack": sbe_ob_pack_per_entry,
            "book_decode_per_entry_unpack": sbe_ob_unpack_per_entry}


def cases() -> dict[str, dict[str, Callable[[], Any]]]:
    """name -> {peer -> callable}; each callable does one message's work."""
    md = load_module(load_builtin("market_data.xml"), "_tickline_bench_md")
    od = load_module(load_builtin("orders.xml"), "_tickline_bench_orders")
    out: dict[str, dict[str, Callable[[], Any]]] = {}
    bids, asks = _levels(1), _levels(-1)
    text = "partial fill"

    # --- L1 tick -------------------------------------------------------------------------------
    hl, bl = md.HEADER_LENGTH, md.TopOfBookDecoder.BLOCK_LENGTH
    tob_struct = struct.Struct("<HHHH16sQQqQqQ")
    tob_sbuf = bytearray(256)

    def struct_tob_encode() -> None:
        tob_struct.pack_into(tob_sbuf, 0, bl, 1, 100, 0, SYMBOL.encode("ascii"), TS1, TS2, BID, 12, ASK, 7)

    struct_tob_encode()

    def struct_tob_decode() -> tuple[Any, ...]:
        v = tob_struct.unpack_from(tob_sbuf, 0)
        return (v[4].partition(b"\0")[0].decode("ascii"), v[5], v[6], v[7], v[8], v[9], v[10])

    tob_dict = {"symbol": SYMBOL, "exchange_timestamp": TS1, "local_timestamp": TS2, "bid_price": BID,
                "bid_size": 12, "ask_price": ASK, "ask_size": 7}
    tob_json = json.dumps(tob_dict)

    def json_tob_decode() -> tuple[Any, ...]:
        d = json.loads(tob_json)
        return (d["symbol"], d["exchange_timestamp"], d["local_timestamp"], d["bid_price"], d["bid_size"],
                d["ask_price"], d["ask_size"])

    out["l1_encode"] = {"struct": struct_tob_encode,
                        "json": lambda: json.dumps({"symbol": SYMBOL, "exchange_timestamp": TS1, "local_timestamp": TS2,
                                                    "bid_price": BID, "bid_size": 12, "ask_price": ASK, "ask_size": 7})}
    out["l1_decode"] = {"struct": struct_tob_decode, "json": json_tob_decode}
    unpack = tob_struct.unpack_from
    out["l1_field_read"] = {"struct": lambda: unpack(tob_sbuf, 0)[8], "json": lambda: json.loads(tob_json)["bid_size"]}
    out["l1_price_read"] = {"struct": lambda: unpack(tob_sbuf, 0)[7], "json": lambda: json.loads(tob_json)["bid_price"]}
    out["l1_symbol_read"] = {"struct": lambda: unpack(tob_sbuf, 0)[4].partition(b"\0")[0].decode("ascii"),
                             "json": lambda: json.loads(tob_json)["symbol"]}

    # --- ExecutionReport -------------------------------------------------------------------------
    er_bl = od.ExecutionReportDecoder.BLOCK_LENGTH
    Side, ExecType, OrdStatus = od.Side, od.ExecType, od.OrdStatus
    er_struct = struct.Struct("<HHHHQQ20s16sBBBBqqQQQqQ")
    er_len = struct.Struct("<I")
    er_sbuf = bytearray(512)

    def struct_er_encode() -> None:
        er_struct.pack_into(er_sbuf, 0, er_bl, 4, 101, 0, 987654321, 5550001, b"C-20261122-000042", SYMBOL.encode(),
                            49, 70, 49, 255, BID, BID, 3, 7, 3, BID, TS1)
        raw = text.encode()
        er_len.pack_into(er_sbuf, 120, len(raw))
        er_sbuf[124:124 + len(raw)] = raw

    struct_er_encode()

    def struct_er_decode() -> tuple[Any, ...]:
        v = er_struct.unpack_from(er_sbuf, 0)
        n = er_len.unpack_from(er_sbuf, 120)[0]
        return (v[4], v[5], v[6].partition(b"\0")[0].decode("ascii"), v[7].partition(b"\0")[0].decode("ascii"),
                Side(v[8]), ExecType(v[9]), OrdStatus(v[10]), None if v[11] == 255 else v[11], v[12], v[13],
                v[14], v[15], v[16], v[17], v[18], bytes(er_sbuf[124:124 + n]).decode())

    er_dict = {"order_id": 987654321, "exec_id": 5550001, "cl_ord_id": "C-20261122-000042", "symbol": SYMBOL,
               "side": 49, "exec_type": 70, "ord_status": 49, "reject_reason": None, "price": BID, "last_price": BID,
               "last_quantity": 3, "leaves_quantity": 7, "cum_quantity": 3, "avg_price": BID, "transact_time": TS1,
               "text": text}
    er_keys = tuple(er_dict)
    er_json = json.dumps(er_dict)
    out["er_encode"] = {"struct": struct_er_encode, "json": lambda: json.dumps(er_dict)}
    def json_er_decode() -> tuple[Any, ...]:
        d = json.loads(er_json)
        return tuple([d[k] for k in er_keys])

    out["er_decode"] = {"struct": struct_er_decode, "json": json_er_decode}

    # --- 20-level order book -----------------------------------------------------------------------
    ob_bl = md.OrderBookDecoder.BLOCK_LENGTH
    ob_head = struct.Struct("<HHHH16sQQ")
    ob_dim = struct.Struct("<HH")
    ob_level = struct.Struct("<qQI")
    ob_sbuf = bytearray(4096)

    def struct_ob_encode() -> None:
        ob_head.pack_into(ob_sbuf, 0, ob_bl, 4, 100, 0, SYMBOL.encode(), TS1, TS2)
        pos = 40
        for levels in (bids, asks):
            ob_dim.pack_into(ob_sbuf, pos, 20, len(levels))
            pos += 4
            for p, v, c in levels:
                ob_level.pack_into(ob_sbuf, pos, p, v, c)
                pos += 20

    struct_ob_encode()

    def struct_ob_decode() -> tuple[Any, ...]:
        h = ob_head.unpack_from(ob_sbuf, 0)
        pos = 40
        sides = []
        for _ in range(2):
            bl2, n = ob_dim.unpack_from(ob_sbuf, pos)
            pos += 4
            sides.append([ob_level.unpack_from(ob_sbuf, pos + i * bl2) for i in range(n)])
            pos += n * bl2
        return h[4].partition(b"\0")[0].decode(), h[5], h[6], sides[0], sides[1]

    ob_doc = {"symbol": SYMBOL, "exchange_timestamp": TS1, "local_timestamp": TS2,
              "bids": [list(x) for x in bids], "asks": [list(x) for x in asks]}
    ob_json = json.dumps(ob_doc)
    out["book_encode"] = {"struct": struct_ob_encode, "json": lambda: json.dumps(ob_doc)}
    out["book_decode"] = {"struct": struct_ob_decode, "json": lambda: json.loads(ob_json)}

    # --- msgpack -------------------------------------------------------------------------------------
    try:
        import msgpack
    except ImportError:
        msgpack = None
    if msgpack is not None:
        tob_list = [SYMBOL, TS1, TS2, BID, 12, ASK, 7]
        tob_mp = msgpack.packb(tob_list)
        out["l1_encode"]["msgpack"] = lambda: msgpack.packb([SYMBOL, TS1, TS2, BID, 12, ASK, 7])
        out["l1_decode"]["msgpack"] = lambda: tuple(msgpack.unpackb(tob_mp))
        out["l1_field_read"]["msgpack"] = lambda: msgpack.unpackb(tob_mp)[4]
        out["l1_price_read"]["msgpack"] = lambda: msgpack.unpackb(tob_mp)[3]
        out["l1_symbol_read"]["msgpack"] = lambda: msgpack.unpackb(tob_mp)[0]
        er_list = list(er_dict.values())
        er_mp = msgpack.packb(er_list)
        out["er_encode"]["msgpack"] = lambda: msgpack.packb(er_list)
        out["er_decode"]["msgpack"] = lambda: tuple(msgpack.unpackb(er_mp))
        ob_list = [SYMBOL, TS1, TS2, [list(x) for x in bids], [list(x) for x in asks]]
        ob_mp = msgpack.packb(ob_list)
        out["book_encode"]["msgpack"] = lambda: msgpack.packb(ob_list)
        out["book_decode"]["msgpack"] = lambda: msgpack.unpackb(ob_mp)

    # --- protobuf ------------------------------------------------------------------------------------
    pb = _protobuf()
    if pb is not None:
        Top, ER, Book, _impl = pb

        def pb_tob_encode() -> bytes:
            m = Top()
            m.symbol = SYMBOL
            m.exchange_timestamp = TS1
            m.local_timestamp = TS2
            m.bid_price = BID
            m.bid_size = 12
            m.ask_price = ASK
            m.ask_size = 7
            return bytes(m.SerializeToString())

        tob_pb = pb_tob_encode()

        def pb_tob_decode() -> tuple[Any, ...]:
            m = Top.FromString(tob_pb)
            return (m.symbol, m.exchange_timestamp, m.local_timestamp, m.bid_price, m.bid_size, m.ask_price, m.ask_size)

        out["l1_encode"]["protobuf"] = pb_tob_encode
        out["l1_decode"]["protobuf"] = pb_tob_decode
        out["l1_field_read"]["protobuf"] = lambda: Top.FromString(tob_pb).bid_size
        out["l1_price_read"]["protobuf"] = lambda: Top.FromString(tob_pb).bid_price
        out["l1_symbol_read"]["protobuf"] = lambda: Top.FromString(tob_pb).symbol

        def pb_er_encode() -> bytes:
            m = ER()
            m.order_id = 987654321
            m.exec_id = 5550001
            m.cl_ord_id = "C-20261122-000042"
            m.symbol = SYMBOL
            m.side = 49
            m.exec_type = 70
            m.ord_status = 49
            m.price = BID
            m.last_price = BID
            m.last_quantity = 3
            m.leaves_quantity = 7
            m.cum_quantity = 3
            m.avg_price = BID
            m.transact_time = TS1
            m.text = text
            return bytes(m.SerializeToString())

        er_pb = pb_er_encode()

        def pb_er_decode() -> tuple[Any, ...]:
            m = ER.FromString(er_pb)
            return (m.order_id, m.exec_id, m.cl_ord_id, m.symbol, Side(m.side), ExecType(m.exec_type),
                    OrdStatus(m.ord_status), m.reject_reason if m.HasField("reject_reason") else None, m.price,
                    m.last_price, m.last_quantity, m.leaves_quantity, m.cum_quantity, m.avg_price, m.transact_time, m.text)

        out["er_encode"]["protobuf"] = pb_er_encode
        out["er_decode"]["protobuf"] = pb_er_decode

        def pb_ob_encode() -> bytes:
            m = Book()
            m.symbol = SYMBOL
            m.exchange_timestamp = TS1
            m.local_timestamp = TS2
            for levels, rep in ((bids, m.bids), (asks, m.asks)):
                for p, v, c in levels:
                    lv = rep.add()
                    lv.price = p
                    lv.volume = v
                    lv.order_count = c
            return bytes(m.SerializeToString())

        ob_pb = pb_ob_encode()

        def pb_ob_decode() -> tuple[Any, ...]:
            m = Book.FromString(ob_pb)
            b = [(x.price, x.volume, x.order_count) for x in m.bids]
            a = [(x.price, x.volume, x.order_count) for x in m.asks]
            return m.symbol, m.exchange_timestamp, m.local_timestamp, b, a

        out["book_encode"]["protobuf"] = pb_ob_encode
        out["book_decode"]["protobuf"] = pb_ob_decode
    # The one-call rows: the other peers do the same work as in the field-by-field rows, measured again in the row.
    for row, same in (("l1_encode_pack", "l1_encode"), ("l1_decode_unpack", "l1_decode"), ("er_encode_pack", "er_encode"),
                      ("er_decode_unpack", "er_decode")):
        out[row] = dict(out[same])
    # The SBE peers first in each row: pure Python, then compiled.
    compiled = _sbe_cases(gen_cython.load_builtin_compiled("market_data.xml"), gen_cython.load_builtin_compiled("orders.xml"))
    for case, fn in _sbe_cases(md, od).items():
        out[case] = {"sbe": fn, "sbe-cython": compiled[case], **out.get(case, {})}
    return out


def run(iterations: int = 20000, runs: int = 5, only: set[str] | None = None) -> dict[str, Any]:
    """Measure every case; returns {"machine": ..., "results": {case: {peer: ns}}}."""
    table = cases()
    pb = _protobuf()

    def empty() -> None:
        return None

    baseline = _time(empty, iterations, runs)
    results: dict[str, dict[str, float]] = {}
    run_samples: dict[str, dict[str, list[float]]] = {}
    for case, peers in table.items():
        if only and case not in only:
            continue
        # Scale so that each sample lasts long enough to average out scheduler noise.
        n = max(iterations // 10, 10) if case.startswith("book") else iterations * 10 if case.endswith("_read") else iterations
        for fn in peers.values():
            fn()  # warm up, and fail fast
        # Interleave the peers run by run, so that a noisy neighbour slows them all alike.
        samples: dict[str, list[float]] = {peer: [] for peer in peers}
        for _ in range(runs):
            for peer, fn in peers.items():
                samples[peer].append(_time(fn, n, 1))
        results[case] = {peer: round(max(statistics.median(v) - baseline, 0.0), 1) for peer, v in samples.items()}
        run_samples[case] = {peer: [round(max(x - baseline, 0.0), 1) for x in v] for peer, v in samples.items()}
    return {
        "machine": {"python": platform.python_version(), "implementation": platform.python_implementation(),
                    "processor": platform.processor() or platform.machine(),
                    "protobuf_backend": pb[3] if pb else None},
        "iterations": iterations, "runs": runs, "call_overhead_ns_subtracted": round(baseline, 1),
        "results": results, "samples": run_samples,
    }


def format_table(report: dict[str, Any]) -> str:
    results = report["results"]
    peers = ["sbe", "sbe-cython", "protobuf", "msgpack", "json", "struct"]
    width = max([16] + [len(case) + 1 for case in results])
    lines = [f"tickline bench codecs: ns/message, median of {report['runs']} runs "
             f"(python {report['machine']['python']}, protobuf backend {report['machine']['protobuf_backend']}, "
             f"{report['call_overhead_ns_subtracted']} ns call overhead subtracted)",
             f"{'case':<{width}}" + "".join(f"{p:>12}" for p in peers)]
    for case, row in results.items():
        lines.append(f"{case:<{width}}" + "".join(f"{row[p]:>12.1f}" if p in row else f"{'-':>12}" for p in peers))
    lines.append("sbe rows go field by field (one assignment or read per field); *_pack/*_unpack rows set or read "
                 "every fixed field of a block in one call (pack()/unpack()), the other peers as in the row above")
    return "\n".join(lines)


def to_benchkit(report: dict[str, Any]) -> Any:
    """The results in the common output format (unit ns): a case per (case, peer); each run is a
    one-value histogram of that run's ns per message, so the runs' spread is the noise ``bench compare`` uses."""
    from tickline import benchkit

    out = benchkit.Report("codecs", reference="protobuf")
    out.extra.update(iterations=report["iterations"], call_overhead_ns_subtracted=report["call_overhead_ns_subtracted"],
                     protobuf_backend=report["machine"]["protobuf_backend"])
    for case, peers in report["samples"].items():
        for peer, values in peers.items():
            c = out.case(f"{case}/{peer}", label=peer, group=case, unit="ns")
            c.histograms = [benchkit.histogram_of([round(v)]) for v in values]
    return out
