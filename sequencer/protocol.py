"""The sequencer service's own messages (``schemas/sequencer.xml``, schema 110),
packed by hand with ``struct`` in the schema's exact layout (a test holds them
to the schema through the on-the-fly codec), beside the order messages of
``schemas/orders.xml`` that strategies, gateways and the venue send.

Every decode here reads bytes from a cluster client or the log: hostile until
checked.  A short or inconsistent message raises :class:`ProtocolError` naming
what is wrong (``fault=peer``); nothing reads past the bytes present.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from tickline.fix_gateway.sbe_orders import NEW_ORDER, exact_text, with_cl_ord_id

__all__ = [
    "SCHEMA_ID", "ORDERS_SCHEMA_ID", "HEADER", "ProtocolError", "EventPoll", "VenuePoll", "Sequenced",
    "Recover", "PositionReport", "Attach", "encode_recover", "encode_position", "encode_attach", "ORIGIN_LEN",
    "encode_event_poll", "encode_venue_poll", "encode_sequenced", "new_order_fields", "text", "with_cl_ord_id",
    "NEW_ORDER_HEAD", "NEW_ORDER_SIZE", "ACCOUNT_LEN", "CL_ORD_ID_SPAN",
    "encode_batch", "decode", "decode_batch", "peek",
]

SCHEMA_ID = 110
ORDERS_SCHEMA_ID = 101
VERSION = 0
HEADER = struct.Struct("<HHHH")  # blockLength, templateId, schemaId, version
_POLL = struct.Struct("<qH")
_SEQUENCED = struct.Struct("<qq20s")
_BATCH = struct.Struct("<q")
_GROUP = struct.Struct("<HH")
_ITEM = struct.Struct("<qI")  # seq, then the varData's length
_RECOVER = struct.Struct("<12s")
_POSITION = struct.Struct("<16sqqq")
ORIGIN_LEN = 64
_ATTACH = struct.Struct(f"<{ORIGIN_LEN}s")
EVENT_POLL, VENUE_POLL, SEQUENCED, BATCH, RECOVER, POSITION, ATTACH = 1, 2, 3, 4, 5, 6, 7
MAX_ITEMS = 0xFFFF


class ProtocolError(ValueError):
    """Bytes that are not a well-formed sequencer message (the sender's fault)."""


@dataclass(frozen=True, slots=True)
class EventPoll:
    after: int
    max_events: int


@dataclass(frozen=True, slots=True)
class VenuePoll:
    after: int
    max_orders: int


@dataclass(frozen=True, slots=True)
class Recover:
    account: str


@dataclass(frozen=True, slots=True)
class Attach:
    """A client names itself (``origin``: printable ASCII, 1..64 characters) so that a
    restart of it takes over what its predecessor of the same name left: its orders (and
    their ClOrdIds, still unique) and the events it had not yet taken."""

    origin: str


@dataclass(frozen=True, slots=True)
class PositionReport:
    symbol: str
    quantity: int
    cost: int
    realized: int


@dataclass(frozen=True, slots=True)
class Sequenced:
    order_id: int
    timestamp: int
    cl_ord_id: str


def encode_event_poll(after: int, max_events: int = 256) -> bytes:
    return HEADER.pack(_POLL.size, EVENT_POLL, SCHEMA_ID, VERSION) + _POLL.pack(after, max_events)


def encode_venue_poll(after: int, max_orders: int = 256) -> bytes:
    return HEADER.pack(_POLL.size, VENUE_POLL, SCHEMA_ID, VERSION) + _POLL.pack(after, max_orders)


SEQUENCED_HEADER = HEADER.pack(_SEQUENCED.size, SEQUENCED, SCHEMA_ID, VERSION)  # one is sent per order
SEQUENCED_SIZE = HEADER.size + _SEQUENCED.size
_SEQUENCED_MESSAGE = struct.Struct(f"<{HEADER.size}s{_SEQUENCED.format[1:]}")  # the header, then the block: one pack


def encode_sequenced(order_id: int, timestamp: int, cl_ord_id: str | bytes) -> bytes:
    """``cl_ord_id``: text, or the 20 bytes of a ClOrdId field as they came (NUL padded)."""
    raw = cl_ord_id if type(cl_ord_id) is bytes else cl_ord_id.encode("ascii", "replace")[:20]  # type: ignore[union-attr]
    return _SEQUENCED_MESSAGE.pack(SEQUENCED_HEADER, order_id, timestamp, raw)


#: orders.xml's NewOrder in its exact form (its header, its block, nothing after), as the schema lays it
#: out (:data:`tickline.fix_gateway.sbe_orders.NEW_ORDER`, derived from the schema, is the one definition)
NEW_ORDER_HEAD = NEW_ORDER.head
NEW_ORDER_SIZE = NEW_ORDER.size
#: the header, then clOrdId, account + symbol (side by side: one bytes value), side, ordType, timeInForce,
#: price, quantity
_NEW_ORDER_FIELDS = NEW_ORDER.struct("cl_ord_id", ("account", "symbol"), "side", "ord_type", "time_in_force",
                                     "price.mantissa", "quantity")
_NULL_PRICE = NEW_ORDER.null("price.mantissa")
#: where the account ends in the 'account + symbol' value of :func:`new_order_fields`
ACCOUNT_LEN = NEW_ORDER.leaf("account").size
#: the ClOrdId field (start, end) in the message
CL_ORD_ID_SPAN = NEW_ORDER.span("cl_ord_id")
text = exact_text


def new_order_fields(data: bytes | memoryview) -> tuple[bytes, bytes, int, int, int, int | None, int] | None:
    """The fields the sequencer needs of a NewOrder in its exact form (:data:`NEW_ORDER_HEAD`, the
    block, nothing after), in one unpack: (raw ClOrdId (20 bytes), raw account + symbol (28 bytes),
    side, ordType and timeInForce bytes, price mantissa (None: null), quantity).  None when ``data``
    is not in that form (then decode it).  Nothing is validated beyond the form: see :func:`text`
    for the char arrays; the enum bytes are the caller's to look up."""
    if len(data) != NEW_ORDER_SIZE:
        return None
    head, cl, names, side, ord_type, tif, price, qty = _NEW_ORDER_FIELDS.unpack_from(data)  # (no slice of the head)
    if head != NEW_ORDER_HEAD:
        return None
    return cl, names, side, ord_type, tif, None if price == _NULL_PRICE else price, qty


def sequenced_fields(data: bytes) -> tuple[int, int, str] | None:
    """(order id, timestamp, ClOrdId) of a Sequenced receipt in its exact form (this header, the
    whole block), as :func:`decode` reads it; None for anything else (ask :func:`decode`)."""
    if len(data) < SEQUENCED_SIZE:
        return None
    head, oid, ts, raw = _SEQUENCED_MESSAGE.unpack_from(data)  # (no slice of the head)
    if head != SEQUENCED_HEADER:
        return None
    return oid, ts, raw.rstrip(b"\0").decode("ascii", "replace")



def encode_recover(account: str) -> bytes:
    return HEADER.pack(_RECOVER.size, RECOVER, SCHEMA_ID, VERSION) + _RECOVER.pack(account.encode("ascii", "replace")[:12])


def encode_attach(origin: str) -> bytes:
    raw = origin.encode("ascii")
    if not raw or len(raw) > ORIGIN_LEN or not raw.isascii() or not all(0x20 < b < 0x7F for b in raw):
        raise ValueError(f"bad origin: fault=caller origin={origin!r} expected=1..{ORIGIN_LEN} printable ASCII characters")
    return HEADER.pack(_ATTACH.size, ATTACH, SCHEMA_ID, VERSION) + _ATTACH.pack(raw)


def encode_position(symbol: str, quantity: int, cost: int, realized: int) -> bytes:
    return HEADER.pack(_POSITION.size, POSITION, SCHEMA_ID, VERSION) + _POSITION.pack(
        symbol.encode("ascii", "replace")[:16], quantity, cost, realized)


def encode_batch(last: int, items: list[tuple[int, bytes]]) -> bytes:
    """``items``: (number, one orders.xml message with its header), at most 65535."""
    if len(items) > MAX_ITEMS:
        raise ValueError(f"batch too large: fault=ours items={len(items)} max={MAX_ITEMS}")
    parts = [HEADER.pack(_BATCH.size, BATCH, SCHEMA_ID, VERSION), _BATCH.pack(last), _GROUP.pack(8, len(items))]
    for seq, msg in items:
        parts.append(_ITEM.pack(seq, len(msg)))
        parts.append(msg)
    return b"".join(parts)


def peek(data: bytes | memoryview) -> tuple[int, int]:
    """(schema id, template id) of a message; raises :class:`ProtocolError` when shorter than a header."""
    if len(data) < HEADER.size:
        raise ProtocolError(f"message shorter than the SBE header: fault=peer length={len(data)}")
    _bl, template, schema, _v = HEADER.unpack_from(data, 0)
    return schema, template


def decode(data: bytes | memoryview) -> EventPoll | VenuePoll | Sequenced | Recover | PositionReport | Attach:
    """Decode a poll or a Sequenced receipt (not a Batch: see :func:`decode_batch`)."""
    schema, template = peek(data)
    if schema != SCHEMA_ID:
        raise ProtocolError(f"not a sequencer message: fault=peer schema_id={schema} expected={SCHEMA_ID}")
    block = HEADER.unpack_from(data, 0)[0]
    body = len(data) - HEADER.size
    if template in (EVENT_POLL, VENUE_POLL):
        if block < _POLL.size or body < block:
            raise ProtocolError(f"truncated poll: fault=peer template_id={template} block_length={block} length={len(data)}")
        after, limit = _POLL.unpack_from(data, HEADER.size)
        return EventPoll(after, limit) if template == EVENT_POLL else VenuePoll(after, limit)
    if template == SEQUENCED:
        if block < _SEQUENCED.size or body < block:
            raise ProtocolError(f"truncated Sequenced: fault=peer block_length={block} length={len(data)}")
        oid, ts, raw = _SEQUENCED.unpack_from(data, HEADER.size)
        return Sequenced(oid, ts, raw.rstrip(b"\0").decode("ascii", "replace"))
    if template == RECOVER:
        if block < _RECOVER.size or body < block:
            raise ProtocolError(f"truncated Recover: fault=peer block_length={block} length={len(data)}")
        (raw,) = _RECOVER.unpack_from(data, HEADER.size)
        return Recover(raw.rstrip(b"\0").decode("ascii", "replace"))
    if template == ATTACH:
        if block < _ATTACH.size or body < block:
            raise ProtocolError(f"truncated Attach: fault=peer block_length={block} length={len(data)}")
        (raw,) = _ATTACH.unpack_from(data, HEADER.size)
        name = raw.rstrip(b"\0")
        if not name or not all(0x20 < b < 0x7F for b in name):
            raise ProtocolError(f"bad Attach origin: fault=peer origin={bytes(raw)[:ORIGIN_LEN]!r} expected=1..{ORIGIN_LEN} printable ASCII characters")
        return Attach(name.decode("ascii"))
    if template == POSITION:
        if block < _POSITION.size or body < block:
            raise ProtocolError(f"truncated PositionReport: fault=peer block_length={block} length={len(data)}")
        raw, q, cost, realized = _POSITION.unpack_from(data, HEADER.size)
        return PositionReport(raw.rstrip(b"\0").decode("ascii", "replace"), q, cost, realized)
    raise ProtocolError(f"unknown sequencer template: fault=peer template_id={template}")


def decode_batch(data: bytes | memoryview) -> tuple[int, list[tuple[int, memoryview]]]:
    """(last, [(number, message view)]); views into ``data``."""
    schema, template = peek(data)
    if schema != SCHEMA_ID or template != BATCH:
        raise ProtocolError(f"not a Batch: fault=peer schema_id={schema} template_id={template}")
    view = memoryview(data)
    n = len(view)
    block = HEADER.unpack_from(view, 0)[0]
    pos = HEADER.size
    if block < _BATCH.size or n < pos + block + _GROUP.size:
        raise ProtocolError(f"truncated Batch: fault=peer block_length={block} length={n}")
    (last,) = _BATCH.unpack_from(view, pos)
    pos += block
    entry_block, count = _GROUP.unpack_from(view, pos)
    pos += _GROUP.size
    if entry_block < 8:
        raise ProtocolError(f"Batch entry block too short: fault=peer block_length={entry_block}")
    items = []
    for i in range(count):
        if n - pos < entry_block + 4:
            raise ProtocolError(f"truncated Batch item: fault=peer item={i} count={count} length={n}")
        (seq,) = struct.unpack_from("<q", view, pos)
        (size,) = struct.unpack_from("<I", view, pos + entry_block)
        pos += entry_block + 4
        if size > n - pos:
            raise ProtocolError(f"Batch item longer than the message: fault=peer item={i} size={size} left={n - pos}")
        items.append((seq, view[pos:pos + size]))
        pos += size
    return last, items
