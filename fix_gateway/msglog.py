"""A per-session message log in the QuickFIX style: every message in and out,
one line each, SOH shown as ``|``::

    20261206-02:07:01.123456 in  8=FIX.4.4|9=65|35=A|34=1|49=CLIENT1|...|10=123|
    20261206-02:07:01.123611 out 8=FIX.4.4|9=65|35=A|34=1|49=GW|...|10=045|

Bytes are cut into messages at their CheckSum field (``<SOH>10=nnn<SOH>``);
what arrives without one within ``max_message_size`` bytes is written as a
``garbled`` line (cut at that size), so a peer can't grow the buffer.  The file
is rotated at ``max_bytes`` (``PATH.1`` kept).  Messages are logged as they
cross the socket: before their checks, so a refused or garbled one is there too.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from tickline.transport.files import make_private_dirs, private_opener

__all__ = ["MessageLog", "show"]

_END = re.compile(rb"\x0110=\d{3}\x01")


def _stamp(now: float) -> str:
    return time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}"


_CONTROL = re.compile(rb"[\x00\x02-\x1f\x7f-\xff\\]")


def show(raw: bytes) -> str:
    """FIX bytes as one printable line: SOH as ``|``, other control and non-ASCII bytes (and
    the backslash) as ``\\xNN``, so a peer's bytes can't break the line or reach a terminal raw."""
    return _CONTROL.sub(lambda m: b"\\x%02x" % m.group()[0], raw).replace(b"\x01", b"|").decode("ascii")


class MessageLog:
    """Message lines of one session, appended to ``path``."""

    def __init__(self, path: str | os.PathLike[str], max_message_size: int = 1 << 20, max_bytes: int = 256 << 20) -> None:
        self.path = Path(path)
        make_private_dirs(self.path.parent)
        self.max_message_size = max_message_size
        self.max_bytes = max_bytes
        self._f = open(self.path, "a", encoding="latin-1", opener=private_opener)
        self._size = self._f.tell()
        self._pending = {"in": bytearray(), "out": bytearray()}

    def incoming(self, data: bytes, now: float) -> None:
        self._feed("in", data, now)

    def outgoing(self, data: bytes, now: float) -> None:
        self._feed("out", data, now)

    def connection_ended(self, now: float) -> None:
        """What was left unframed in either direction is written as ``garbled``."""
        for d, buf in self._pending.items():
            if buf:
                self._line(now, f"{d}-garbled", bytes(buf))
                buf.clear()
        self._f.flush()

    def _feed(self, direction: str, data: bytes, now: float) -> None:
        buf = self._pending[direction]
        buf += data
        start = 0
        for m in _END.finditer(buf):
            self._line(now, direction, bytes(buf[start:m.end()]))
            start = m.end()
        del buf[:start]
        if len(buf) > self.max_message_size:
            self._line(now, f"{direction}-garbled", bytes(buf[: self.max_message_size]))
            buf.clear()
        self._f.flush()

    def _line(self, now: float, direction: str, raw: bytes) -> None:
        text = f"{_stamp(now)} {direction:<3} {show(raw)}\n"
        if self._size + len(text) > self.max_bytes and self._size:
            self._rotate()
        self._f.write(text)
        self._size += len(text)

    def _rotate(self) -> None:
        self._f.close()
        os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        self._f = open(self.path, "a", encoding="latin-1", opener=private_opener)
        self._size = 0

    def close(self) -> None:
        self._f.close()
