"""The small runtime that generated SBE flyweights import.

Kept tiny on purpose: the hot paths (field getters and setters) are inlined
in generated code as bound ``struct`` methods; only the less frequent work
(strings, var data, JSON-form conversions, access-order errors) is here.
Nothing here keeps state; all functions are thread-safe.
"""

from __future__ import annotations

import math
import mmap
from typing import Any, Union

from tickline.codecs.errors import AccessOrderError, MessageError

#: Anything a flyweight can wrap: bytes (read only), bytearray, memoryview, mmap.
Buffer = Union[bytes, bytearray, memoryview, mmap.mmap]

EMPTY: Buffer = b""

__all__ = ["AccessOrderError", "Buffer", "EMPTY", "MessageError"]


def check_bounds(buf: Buffer, end: int, what: str) -> None:
    if end > len(buf):
        raise MessageError(f"buffer too small: {what} needs {end} bytes, buffer length={len(buf)}")


#: Group entries that take no bytes on the wire (no fields, groups or var data at the acting version) one
#: message may hold.  Every other entry is paid for by bytes present in the buffer, which bounds the work of
#: decoding hostile bytes by their length.
MAX_EMPTY_ENTRIES = 65535


def short_block(what: str, offset: int, block_length: int, version: int, need: int) -> MessageError:
    """A block shorter than the fields of its acting version: the producer's error, never silent zeros."""
    return MessageError(f"block too short: {what} offset={offset} blockLength={block_length} but version={version} "
                        f"has fields up to length={need} (fault=peer)")


def count_too_large(what: str, offset: int, count: int, entry: int, room: int) -> MessageError:
    """A group count whose entries (block plus nested headers each) cannot fit in the bytes left."""
    return MessageError(f"group count too large: group={what} offset={offset} numInGroup={count} entries of at least "
                        f"{entry} bytes need {count * entry} but {room} bytes remain (fault=peer)")


def too_many_empty(what: str, offset: int, count: int) -> MessageError:
    return MessageError(f"too many empty group entries: group={what} offset={offset} numInGroup={count} entries take no "
                        f"bytes, and one message may hold at most {MAX_EMPTY_ENTRIES} of them (fault=peer)")


def write(buf: Buffer, offset: int, data: bytes) -> None:
    """Copy ``data`` into ``buf`` at ``offset`` (bounds already checked).

    bytearray and memoryview take a slice assignment.  Any other writable buffer (an Aeron ``BufferClaim``,
    an mmap, a NumPy array) is written through a memoryview taken here and released before returning: a
    claim's memory belongs to the log once it is committed or aborted, so no view of it may outlive the call
    (the encoder keeps the claim itself, which refuses a new view after commit/abort)."""
    if type(buf) is bytearray or type(buf) is memoryview:
        buf[offset:offset + len(data)] = data
    else:
        with memoryview(buf) as view:
            view[offset:offset + len(data)] = data


def read(buf: Buffer, offset: int, length: int) -> bytes:
    """A copy of ``length`` bytes at ``offset`` (shorter at the buffer's end), from any buffer: one that cannot
    be sliced (a ``BufferClaim``) is read through a memoryview released before returning, as in :func:`write`."""
    if type(buf) is bytes or type(buf) is bytearray or type(buf) is memoryview:
        return bytes(buf[offset:offset + length])
    with memoryview(buf) as view:
        return bytes(view[offset:offset + length])


def zero(buf: Buffer, offset: int, length: int) -> None:
    """Clear ``length`` bytes so that every byte no field writes is zero (as the reference encoder's output)."""
    check_bounds(buf, offset + length, "block")
    write(buf, offset, bytes(length))


def get_str(buf: Buffer, offset: int, length: int, encoding: str) -> str:
    raw = read(buf, offset, length)
    cut = raw.find(b"\0")
    if cut >= 0:
        raw = raw[:cut]
    return raw.decode(encoding, errors="surrogateescape")


def put_str(buf: Buffer, offset: int, length: int, value: str, encoding: str) -> None:
    raw = value.encode(encoding, errors="surrogateescape")
    if len(raw) > length:
        raise MessageError(f"value={value!r} is {len(raw)} bytes, longer than length={length}")
    check_bounds(buf, offset + length, "char array")
    write(buf, offset, raw + bytes(length - len(raw)))


def put_bytes(buf: Buffer, offset: int, value: bytes) -> None:
    check_bounds(buf, offset + len(value), "var data")
    write(buf, offset, value)


def get_bytes(buf: Buffer, offset: int, length: int) -> bytes:
    check_bounds(buf, offset + length, "var data")
    return read(buf, offset, length)


def path_value(obj: Any, path: tuple[str, ...]) -> Any:
    """``obj.a.b.c`` for ``("a", "b", "c")``, None as soon as a step reads None (a composite newer than the
    acting version): a decoder's ``unpack()`` for members of versioned composites."""
    for name in path:
        if obj is None:
            return None
        obj = getattr(obj, name)
    return obj


def array_nulls(values: tuple[Any, ...], null: float) -> tuple[Any, ...]:
    """An optional array's elements, each None where it holds the null value (any NaN for a NaN null)."""
    if null != null:
        return tuple(None if x != x else x for x in values)
    return tuple(None if x == null else x for x in values)


def array_put(values: Any, null: float) -> tuple[Any, ...]:
    """An optional array's elements to write: None as the null value."""
    return tuple(null if x is None else x for x in values)


#: Non-finite floats in the JSON form.  A NaN with its sign bit set is "-NaN", so that decoding and re-encoding
#: keeps that bit (a producer's -NaN, 0xffc00000 as a float, differs from NaN in one byte); other NaN payload
#: bits are not kept: every NaN is written as the quiet NaN of its sign.
FLOAT_WORDS = {"NaN": math.nan, "-NaN": -math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def fj(value: float | None) -> float | str | None:
    """A float in the JSON form: non-finite values as strings (:data:`FLOAT_WORDS`)."""
    if value is None:
        return None
    if math.isnan(value):
        return "-NaN" if math.copysign(1.0, value) < 0 else "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def ff(value: Any) -> float:
    """A float from the JSON form."""
    if isinstance(value, str):
        if value not in FLOAT_WORDS:
            raise MessageError(f"not a float value={value!r}")
        return FLOAT_WORDS[value]
    return float(value)


def enum_json(raw: int | None, null: int, names: dict[int, str], is_char: bool) -> Any:
    if raw is None or raw == null:
        return None
    name = names.get(raw)
    if name is not None:
        return name
    return chr(raw) if is_char else raw


def enum_from_json(value: Any, null: int, values: dict[str, int], is_char: bool) -> int:
    if value is None:
        return null
    if isinstance(value, str) and value in values:
        return values[value]
    if is_char and isinstance(value, str) and len(value) == 1:
        return ord(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise MessageError(f"value={value!r} is not a validValue")


def set_json(raw: int | None, choices: tuple[tuple[str, int], ...]) -> list[str | int] | None:
    """A set in the JSON form: the names of the choices that are set, in schema order, then the number of each
    set bit no choice names (a newer producer's choice), so that decoding and re-encoding keeps every bit."""
    if raw is None:
        return None
    raw = int(raw)
    out: list[str | int] = [name for name, bit in choices if raw >> bit & 1]
    rest = raw & ~sum(1 << bit for _, bit in choices)
    out += [bit for bit in range(rest.bit_length()) if rest >> bit & 1]
    return out


def set_from_json(value: Any, choices: tuple[tuple[str, int], ...], width: int = 64, what: str = "the set") -> int:
    """The inverse of :func:`set_json`: choice names and bit numbers below ``width`` (the encoding's bits)."""
    bits = dict(choices)
    raw = 0
    if not isinstance(value, list):
        raise MessageError(f"expected a list of choice names, got value={value!r}")
    for name in value:
        if isinstance(name, int) and not isinstance(name, bool):
            if not 0 <= name < width:
                raise MessageError(f"bit={name} is out of range for {what} of {width} bits")
            raw |= 1 << name
        elif isinstance(name, str) and name in bits:
            raw |= 1 << bits[name]
        else:
            raise MessageError(f"name={name!r} is not a choice of {what}")
    return raw


def order_error(where: str, expected: str, got: str) -> AccessOrderError:
    return AccessOrderError(
        f"access out of schema order in {where}: expected={expected} got={got} "
        "(groups and var data must be read/written in schema order, each group fully iterated; "
        "set check_order=False on the class to turn checks off)"
    )


def padded(buf: Buffer, offset: int, length: int, size: int) -> bytes:
    """``length`` bytes at ``offset`` zero-extended to ``size``: an older, shorter block read by a newer decoder."""
    raw = read(buf, offset, max(length, 0))
    return raw + bytes(size - len(raw))


STR_CACHE_LIMIT = 4096


def decode_str(raw: bytes, encoding: str, cache: dict[bytes, str]) -> str:
    """A char array's text (up to the first NUL), remembered in ``cache`` while it holds fewer than
    STR_CACHE_LIMIT entries.  Caches are only ever added to; a dict assignment is atomic under the GIL."""
    text = raw.partition(b"\0")[0].decode(encoding, errors="surrogateescape")
    if len(cache) < STR_CACHE_LIMIT:
        cache[raw] = text
    return text


def encode_str(value: str, encoding: str, cache: dict[str, bytes]) -> bytes:
    """A char array's bytes, remembered in ``cache`` while it holds fewer than STR_CACHE_LIMIT entries."""
    try:
        raw = value.encode(encoding, errors="surrogateescape")
    except UnicodeEncodeError:
        raise MessageError(f"value={value!r} is not representable in {encoding}") from None
    if len(cache) < STR_CACHE_LIMIT:
        cache[value] = raw
    return raw


def expected(names: tuple[str, ...], step: int, open_group: Any) -> str:
    """What an access-order check expected next, for its error message."""
    if open_group is not None and not open_group._finished():
        return f"the rest of group {names[step - 1]}"
    return names[step] if step < len(names) else "nothing more"
