"""FIX tag=value encoding, parsing and stream framing.

Our own parser rather than simplefix: it parses a whole frame with one
``str.split`` and encodes with one ``join``; ``tickline.fix_gateway.bench``
measures both in the same run (see the README of this package for numbers).

Values are ``str`` (the wire is decoded as latin-1, which maps every byte to
one code point, so encode(parse(x)) == x byte for byte).

Speed: ``encode``, ``parse`` and ``Framer.next_message`` first try the
native fast paths of ``tickline._aeron`` (cpp_ext/fixcodec.cpp), which take
only well-formed input and answer None for anything else; the Python code
below (``py_encode``, ``py_parse``, ``Framer.next``) is the reference and
makes every decision about bad input.  ``TICKLINE_FIX_NATIVE=0`` turns the
fast paths off.

Framing (``Framer``) follows the FIX session layer's rules for garbled input:
a message whose BeginString, BodyLength or CheckSum is wrong is dropped and
reported, the stream resynchronises on the next ``8=FIX``; a message larger
than the configured maximum is reported as ``Oversized`` (the session then
logs out and disconnects: after an oversized header we cannot trust where
the next message starts).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence, Union

__all__ = [
    "SOH",
    "FixMessage",
    "GarbledMessage",
    "Frame",
    "Garbled",
    "Oversized",
    "Framer",
    "checksum",
    "encode",
    "parse",
    "ascii_uint",
    "MAX_SEQ_NUM",
]

SOH = "\x01"
_SOH_B = b"\x01"

# Length-prefixed data fields: (length tag -> data tag).  Their data may hold
# SOH, so a frame containing one of the length tags is split the slow way.
DATA_LENGTH_TAGS = {
    90: 91, 93: 89, 95: 96, 212: 213, 348: 349, 350: 351, 352: 353, 354: 355,
    356: 357, 358: 359, 360: 361, 362: 363, 364: 365, 445: 446, 618: 619, 621: 622,
}
_DATA_TAGS = {data: length for length, data in DATA_LENGTH_TAGS.items()}  # data tag -> its length tag
_DATA_LENGTH_MARKER = re.compile("\x01(?:" + "|".join(str(t) for t in DATA_LENGTH_TAGS) + ")=")

FieldValue = Union[str, int, float, bytes]

# The largest MsgSeqNum (and NewSeqNo, BeginSeqNo, stored sequence number) this engine takes:
# a signed 32-bit int, the range QuickFIX/J and Artio use.  Anything larger from the wire or a
# store is refused where it enters, so no sequence arithmetic can leave the store's u64 fields.
MAX_SEQ_NUM = 2**31 - 1
_UINT_MAX_DIGITS = 18  # 10**18 - 1 < 2**63; also far below int()'s 4300-digit limit


def ascii_uint(s: str | None) -> int | None:
    """``s`` as an int when it is 1 to 18 ASCII digits, else None.

    ``str.isdigit`` alone also takes Unicode digits such as "\xb2" (superscript two),
    which ``int()`` then refuses or reads as a number the peer never wrote in ASCII:
    every integer from the wire is read through this function.
    """
    if s and len(s) <= _UINT_MAX_DIGITS and s.isascii() and s.isdigit():
        return int(s)
    return None


def _load_native() -> tuple[Any, Any, Any]:
    if os.environ.get("TICKLINE_FIX_NATIVE", "1") == "0":
        return None, None, None
    try:
        from tickline import _aeron
    except ImportError:  # a source tree without the built extension: the reference code alone
        return None, None, None
    return _aeron.fix_encode, _aeron.fix_split, _aeron.fix_next


_native_encode, _native_split, _native_next = _load_native()
NATIVE = _native_encode is not None


class GarbledMessage(ValueError):
    """A frame that is not a well-formed FIX message (the peer's fault)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        super().__init__(f"garbled FIX message: fault=remote reason={reason}" + (f" {detail}" if detail else ""))


def checksum(data: bytes) -> int:
    """The FIX CheckSum: sum of the bytes modulo 256."""
    return sum(data) & 0xFF


class FixMessage:
    """A parsed FIX message: the ordered list of ``(tag, value)`` pairs.

    Order and repeats are kept (repeating groups); ``get(tag)`` returns the
    first occurrence.  ``raw`` is the wire bytes when the message was parsed.
    """

    __slots__ = ("fields", "raw", "_index")

    def __init__(self, fields: list[tuple[int, str]], raw: bytes | None = None,
                 index: dict[int, str] | None = None) -> None:
        self.fields = fields
        self.raw = raw
        self._index = index  # tag -> first value; built on first use unless the parser gave it

    def _idx(self) -> dict[int, str]:
        idx = self._index
        if idx is None:
            idx = {}
            for t, v in self.fields:
                if t not in idx:
                    idx[t] = v
            self._index = idx
        return idx

    def get(self, tag: int, default: str | None = None) -> str | None:
        return (self._index or self._idx()).get(tag, default)

    def index(self) -> dict[int, str]:
        """tag -> first value, for reading many fields with one lookup each; don't modify it."""
        return self._index or self._idx()

    def __getitem__(self, tag: int) -> str:
        return (self._index or self._idx())[tag]

    def __contains__(self, tag: int) -> bool:
        return tag in self._idx()

    def get_all(self, tag: int) -> list[str]:
        return [v for t, v in self.fields if t == tag]

    def get_int(self, tag: int, default: int | None = None) -> int | None:
        """The field as a non-negative int of ASCII digits; ``default`` when absent,
        ``GarbledMessage`` (the peer's fault) when it is not such a number."""
        v = self._idx().get(tag)
        if v is None:
            return default
        n = ascii_uint(v)
        if n is None:
            raise GarbledMessage("bad_int", f"tag={tag} value={v[:20]!r}")
        return n

    @property
    def msg_type(self) -> str:
        return (self._index or self._idx()).get(35, "")

    @property
    def seq_num(self) -> int | None:
        v = (self._index or self._idx()).get(34)
        n = ascii_uint(v)
        return n if n is not None and 0 < n <= MAX_SEQ_NUM else None

    def body_fields(self) -> list[tuple[int, str]]:
        """Fields after the standard header fields 8, 9, 35 and before 10."""
        return [(t, v) for t, v in self.fields if t not in (8, 9, 10)]

    def __repr__(self) -> str:
        return "FixMessage(" + "|".join(f"{t}={v}" for t, v in self.fields) + ")"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FixMessage) and self.fields == other.fields


def _fmt(v: FieldValue) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "Y" if v else "N"
    if isinstance(v, bytes):
        return v.decode("latin-1")
    return str(v)


def encode(begin_string: str, fields: Iterable[tuple[int, FieldValue]], body: bytes = b"") -> bytes:
    """Encode a message: ``fields`` start with MsgType (35) and exclude 8, 9, 10.

    ``body`` is more fields already encoded (``b"37=1\x0117=2\x01"``), written after
    ``fields`` as they are: the caller answers for their form.  BodyLength and CheckSum
    are computed here.  Raises ``ValueError`` (our fault) for a missing 35, a tag that is
    not a positive int, and a value containing SOH: that would end the field early and
    let the rest of the value read as fields of its own (field injection).  SOH is legal
    only in a data field (e.g. RawData 96) right after its length field (95) giving its
    length.  '=' in a value is legal FIX (a field splits at its first '=') and is kept.
    """
    if _native_encode is not None:
        # None (nothing consumed) unless a list/tuple of (int, str|int)
        raw: bytes | None = _native_encode(begin_string, fields, body)
        if raw is not None:
            return raw
    return py_encode(begin_string, fields, body)


def py_encode(begin_string: str, fields: Iterable[tuple[int, FieldValue]], body: bytes = b"") -> bytes:
    """The reference encoder (what ``encode`` does without the native fast path)."""
    parts = []
    prev_tag, prev_value = 0, ""
    for tag, value in fields:
        if value.__class__ is not str:
            value = _fmt(value)
        if tag.__class__ is not int or tag <= 0:
            raise ValueError(f"FIX encode: fault=local reason=bad_tag tag={tag!r}")
        if "\x01" in value and not (_DATA_TAGS.get(tag) == prev_tag and prev_value == str(len(value))):
            raise ValueError(f"FIX encode: fault=local reason=soh_in_value tag={tag} value={value[:40]!r} "
                             "(SOH only in a data field after its length field)")
        parts.append(f"{tag}={value}\x01")
        prev_tag, prev_value = tag, value
    if not parts:
        raise ValueError("FIX encode: fault=local reason=no_fields")
    if not parts[0].startswith("35="):
        raise ValueError(f"FIX encode: fault=local reason=first_field_not_MsgType tag={parts[0].partition('=')[0]}")
    data = "".join(parts).encode("latin-1") + body
    head = f"8={begin_string}\x019={len(data)}\x01".encode("latin-1")
    msg = head + data
    return msg + b"10=%03d\x01" % (sum(msg) & 0xFF)


def _split_slow(text: str) -> list[tuple[int, str]]:
    """Split honouring length-prefixed data fields (which may contain SOH)."""
    out: list[tuple[int, str]] = []
    pos, n = 0, len(text)
    data_len: dict[int, int] = {}
    while pos < n:
        eq = text.find("=", pos)
        if eq < 0:
            raise GarbledMessage("field_without_equals", f"offset={pos}")
        tag_s = text[pos:eq]
        if not tag_s.isdigit() or not tag_s.isascii():
            raise GarbledMessage("bad_tag", f"tag={tag_s!r} offset={pos}")
        tag = int(tag_s)
        if tag in data_len:
            end = eq + 1 + data_len.pop(tag)
            if end >= n or text[end] != SOH:
                raise GarbledMessage("bad_data_length", f"tag={tag} offset={pos}")
        else:
            end = text.find(SOH, eq + 1)
            if end < 0:
                raise GarbledMessage("unterminated_field", f"tag={tag} offset={pos}")
        value = text[eq + 1:end]
        if tag in DATA_LENGTH_TAGS:
            length = ascii_uint(value)
            if length is None:  # the data field after it could not be delimited
                raise GarbledMessage("bad_data_length", f"tag={tag} value={value[:20]!r} offset={pos}")
            data_len[DATA_LENGTH_TAGS[tag]] = length
        out.append((tag, value))
        pos = end + 1
    return out


def parse(frame: bytes) -> FixMessage:
    """Parse one complete frame (as ``Framer`` yields it) into a ``FixMessage``.

    Checks the field syntax and that the message starts 8, 9, 35 and ends
    with 10; BodyLength and CheckSum values were checked by the framer (use
    ``parse_checked`` for a frame from elsewhere).  Raises ``GarbledMessage``.
    """
    if _native_split is not None and frame.__class__ is bytes:
        r = _native_split(frame)
        if r is not None:
            return FixMessage(r[0], frame, r[1])
    return py_parse(frame)


def py_parse(frame: bytes) -> FixMessage:
    """The reference parser (what ``parse`` does without the native fast path)."""
    text = frame.decode("latin-1")
    if not text.endswith(SOH):
        raise GarbledMessage("no_trailing_soh")
    if _DATA_LENGTH_MARKER.search(text) is not None:
        fields = _split_slow(text)
    else:
        fields = []
        append = fields.append
        for item in text[:-1].split(SOH):
            tag_s, sep, value = item.partition("=")
            if not sep or not tag_s.isdigit() or not tag_s.isascii():
                raise GarbledMessage("bad_field", f"field={item[:40]!r}")
            append((int(tag_s), value))
    if len(fields) < 4 or fields[0][0] != 8 or fields[1][0] != 9 or fields[2][0] != 35 or fields[-1][0] != 10:
        raise GarbledMessage("bad_field_order", "expected=8,9,35...10")
    return FixMessage(fields, frame)


def parse_checked(frame: bytes) -> FixMessage:
    """``parse`` plus the BodyLength and CheckSum checks the framer does."""
    msg = parse(frame)
    body_start = frame.index(_SOH_B, frame.index(_SOH_B) + 1) + 1
    trailer = frame.rindex(b"10=")
    if int(msg[9]) != trailer - body_start:
        raise GarbledMessage("bad_body_length", f"declared={msg[9]} actual={trailer - body_start}")
    if f"{checksum(frame[:trailer]):03d}" != msg[10]:
        raise GarbledMessage("bad_checksum", f"declared={msg[10]} actual={checksum(frame[:trailer]):03d}")
    return msg


@dataclass(frozen=True)
class Frame:
    """One complete message whose BodyLength and CheckSum are right."""

    data: bytes


@dataclass(frozen=True)
class Garbled:
    """Bytes dropped from the stream; ``reason`` says why."""

    reason: str
    data: bytes


@dataclass(frozen=True)
class Oversized:
    """A message declared larger than the maximum; the stream cannot be trusted after it."""

    declared_size: int
    max_size: int


FramerOutput = Union[Frame, Garbled, Oversized]

_BEGIN = b"8=FIX"
_MAX_HEADER = 40  # "8=FIXT.1.1|9=" + up to 9 digits + SOH, with slack


class Framer:
    """Cuts a TCP byte stream into FIX messages.

    ``feed(data)`` appends bytes; ``next()`` returns a ``Frame``, a ``Garbled``
    (bytes dropped, stream resynchronised on the next ``8=FIX``), an
    ``Oversized`` (after which the framer holds no data and stays failed
    until ``reset()``), or None when more bytes are needed.  Not thread safe.
    """

    def __init__(self, max_message_size: int = 1 << 20) -> None:
        if max_message_size < 64:
            raise ValueError(f"max_message_size too small: max_message_size={max_message_size} min=64")
        self.max_message_size = max_message_size
        self._buf = bytearray()
        self._pos = 0
        self.failed = False

    def reset(self) -> None:
        self._buf = bytearray()
        self._pos = 0
        self.failed = False

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos

    def feed(self, data: bytes) -> None:
        if self.failed:
            return
        buf = self._buf
        if self._pos and self._pos >= len(buf) // 2:
            del buf[: self._pos]
            self._pos = 0
        buf += data

    def __iter__(self) -> Iterator[FramerOutput]:
        while True:
            out = self.next()
            if out is None:
                return
            yield out

    def _drop_to_next_begin(self, start: int, reason: str) -> Garbled:
        buf = self._buf
        nxt = buf.find(_BEGIN, start + 1)
        end = nxt if nxt >= 0 else len(buf)
        if nxt < 0:
            # keep a possible partial "8=FI" at the end
            for k in range(len(_BEGIN) - 1, 0, -1):
                if end - k > start and buf.endswith(_BEGIN[:k]):
                    end -= k
                    break
        dropped = bytes(buf[start:end])
        self._pos = end
        return Garbled(reason, dropped)

    def next_message(self) -> FixMessage | None:
        """The next message, already parsed, when it is complete and well formed
        (the native fast path); None means "call ``next()``", which then decides
        about everything else (more bytes needed, garbled, oversized) exactly
        as without this method."""
        if self.failed or _native_next is None:
            return None
        r = _native_next(self._buf, self._pos, self.max_message_size)
        if r is None:
            return None
        self._pos = r[0]
        return FixMessage(r[2], r[1], r[3])

    def next(self) -> FramerOutput | None:
        if self.failed:
            return None
        buf, start = self._buf, self._pos
        n = len(buf)
        if start >= n:
            return None
        if not buf.startswith(_BEGIN, start):
            if n - start < len(_BEGIN) and _BEGIN.startswith(bytes(buf[start:n])):
                return None
            return self._drop_to_next_begin(start, "no_begin_string")
        soh1 = buf.find(_SOH_B, start, min(n, start + _MAX_HEADER))
        if soh1 < 0:
            return None if n - start < _MAX_HEADER else self._drop_to_next_begin(start, "bad_begin_string")
        if n < soh1 + 3:
            return None
        if buf[soh1 + 1:soh1 + 3] != b"9=":
            return self._drop_to_next_begin(start, "body_length_not_second")
        soh2 = buf.find(_SOH_B, soh1 + 3, min(n, soh1 + 3 + 12))
        if soh2 < 0:
            return None if n < soh1 + 3 + 12 else self._drop_to_next_begin(start, "bad_body_length")
        digits = bytes(buf[soh1 + 3:soh2])
        if not digits.isdigit():
            return self._drop_to_next_begin(start, "bad_body_length")
        body_len = int(digits)
        total = (soh2 + 1 - start) + body_len + 7
        if total > self.max_message_size:
            self.failed = True
            self._buf = bytearray()
            self._pos = 0
            return Oversized(total, self.max_message_size)
        end_body = soh2 + 1 + body_len
        if n < end_body + 7:
            return None
        if buf[end_body:end_body + 3] != b"10=" or buf[end_body + 6] != 1:
            return self._drop_to_next_begin(start, "bad_body_length")
        declared = bytes(buf[end_body + 3:end_body + 6])
        if not declared.isdigit() or int(declared) != (sum(buf[start:end_body]) & 0xFF):
            self._pos = end_body + 7
            return Garbled("bad_checksum", bytes(buf[start:end_body + 7]))
        self._pos = end_body + 7
        return Frame(bytes(buf[start:end_body + 7]))


def fields_repr(data: bytes | Sequence[tuple[int, str]]) -> str:
    """Human-readable ``8=FIX.4.4|9=...`` form for logs and errors."""
    if isinstance(data, (bytes, bytearray)):
        return bytes(data).decode("latin-1").replace(SOH, "|")
    return "|".join(f"{t}={v}" for t, v in data)
