"""Codec micro-benchmark: tickline's tag=value codec against simplefix, same run.

``python -m tickline.fix_gateway.bench [N]`` prints parse and encode rates for
a typical NewOrderSingle.  A benchmark, not a test: no assertions.
"""

from __future__ import annotations

import sys
import time

from .codec import Framer, encode, parse

NOS = [(35, "D"), (49, "CLIENT"), (56, "GATEWAY"), (34, 1234), (52, "20260101-12:00:00.000"),
       (11, "ORD-000001"), (21, "1"), (55, "AAPL"), (54, "1"), (60, "20260101-12:00:00.000"),
       (38, 100), (40, "2"), (44, "187.25"), (59, "0")]


def _rate(fn, n: int) -> float:
    t0 = time.perf_counter()
    fn(n)
    return n / (time.perf_counter() - t0)


def run(n: int = 100_000) -> dict[str, float]:
    raw = encode("FIX.4.4", NOS)
    stream = raw * 100
    out: dict[str, float] = {}

    def tl_parse(k: int) -> None:
        f = Framer()
        for _ in range(k // 100):
            f.feed(stream)
            for fr in f:
                parse(fr.data)  # type: ignore[union-attr]

    def tl_encode(k: int) -> None:
        for _ in range(k):
            encode("FIX.4.4", NOS)

    out["tickline_parse_msgs_per_s"] = _rate(tl_parse, n)
    out["tickline_encode_msgs_per_s"] = _rate(tl_encode, n)
    try:
        import simplefix
    except ImportError:
        return out

    def sf_parse(k: int) -> None:
        p = simplefix.FixParser()
        for _ in range(k // 100):
            p.append_buffer(stream)
            while p.get_message() is not None:
                pass

    def sf_encode(k: int) -> None:
        for _ in range(k):
            m = simplefix.FixMessage()
            m.append_pair(8, "FIX.4.4", header=True)
            for t, v in NOS:
                m.append_pair(t, v)
            m.encode()

    out["simplefix_parse_msgs_per_s"] = _rate(sf_parse, n)
    out["simplefix_encode_msgs_per_s"] = _rate(sf_encode, n)
    return out


if __name__ == "__main__":
    for k, v in run(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000).items():
        print(f"{k}={v:,.0f}")
