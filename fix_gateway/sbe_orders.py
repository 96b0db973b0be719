"""The bridge's order messages <-> SBE bytes of ``schemas/orders.xml``.

The flyweights are generated from the schema when this module is first
imported (``tickline.codecs.gen_python``, the same code ``tickline codegen``
writes), so the wire format can never drift from the schema file.

``OrderCodec`` is one encoder/decoder set: not thread safe, reuse one per
publication/subscription.  ``encode`` writes into the codec's own buffer and
returns ``(buffer, length)``, valid until the next ``encode``; ``decode``
reads a buffer (for example a fragment handler's view, valid only during the
call) and returns a frozen dataclass, so nothing keeps a reference into it.
"""

from __future__ import annotations

import functools
import struct
import types
from typing import Any

from tickline.codecs.exact import ExactForm, exact_text

from .bridge import (
    CancelOrder, CxlRejResponseTo, ExecType, ExecutionReport, NewOrder, OrdStatus, OrdType, OrderReject,
    OrderRequest, RejectReason, ReplaceOrder, Side, TimeInForce, VenueReport,
)

__all__ = ["NEW_ORDER", "OrderCodec", "SbeDecodeError", "exact_text", "sbe_module", "with_cl_ord_id"]


class SbeDecodeError(ValueError):
    """Bytes on an order/report stream that are not a message we understand (the sender's fault)."""


_MODULE: types.ModuleType | None = None


def sbe_module() -> types.ModuleType:
    """The generated flyweight module for ``schemas/orders.xml`` (built once per process)."""
    global _MODULE
    if _MODULE is None:
        from tickline.codecs.gen_python import generate

        src = generate(_schema(), "orders.xml")
        mod = types.ModuleType("tickline.fix_gateway._orders_sbe")
        exec(compile(src, "<generated from schemas/orders.xml>", "exec"), mod.__dict__)
        mod.set_check_order(False)  # our encode/decode below visit fields in schema order
        _MODULE = mod
    return _MODULE


def _ch(e: Any) -> int:
    return ord(e.value)


# raw byte <-> enum member by table: an Enum call or ``.value`` costs several times a dict
# lookup, a few of each per message.  A byte outside a table goes through the Enum call,
# which raises as before.
_BY_BYTE: dict[type, dict[int, Any]] = {cls: {ord(v.value): v for v in cls}
                                        for cls in (Side, OrdType, TimeInForce, ExecType, OrdStatus, CxlRejResponseTo)}
_SIDE_OF, _ORD_TYPE_OF, _TIF_OF = _BY_BYTE[Side], _BY_BYTE[OrdType], _BY_BYTE[TimeInForce]
_BYTE_OF: dict[Any, int] = {v: b for table in _BY_BYTE.values() for b, v in table.items()}


_HEADER = struct.Struct("<HHHH")  # the SBE message header: blockLength, templateId, schemaId, version


@functools.cache
def _schema() -> Any:
    """orders.xml, parsed once: the exact form below and the generated module both come from it."""
    from tickline.codecs import load_builtin

    return load_builtin("orders.xml")


#: orders.xml's NewOrder in its exact form (its header, its block, nothing after: what every encoder
#: writes), derived from the schema: the one layout the sequencer's and the strategy SDK's one-call
#: readers and writers use (a test holds it to the generated codec, field by field)
NEW_ORDER = ExactForm(_schema(), "NewOrder")
#: NewOrder's char arrays after ClOrdId (start and end in the message): account, symbol
_NEW_ORDER_TEXT = (NEW_ORDER.span("account"), NEW_ORDER.span("symbol"))
_CL_START, _CL_END = NEW_ORDER.span("cl_ord_id")
_CL_LEN = _CL_END - _CL_START


def with_cl_ord_id(data: bytes, cl_ord_id: str) -> bytes:
    """A copy of ``data``, a NewOrder in its exact form (the caller has checked that), with its ClOrdId
    field holding ``cl_ord_id`` (ASCII, at most 20 characters), NUL-padded."""
    return b"".join((data[:_CL_START], cl_ord_id.encode("ascii").ljust(_CL_LEN, b"\0"), data[_CL_END:]))


def _member(table: dict[int, Any], cls: Any, raw: int) -> Any:
    v = table.get(raw)
    return cls(chr(raw)) if v is None else v


class OrderCodec:
    def __init__(self, capacity: int = 4096) -> None:
        m = self.m = sbe_module()
        self.buf = bytearray(capacity)
        self.view = memoryview(self.buf)
        self._new = m.NewOrderEncoder()
        self._cancel = m.CancelOrderEncoder()
        self._replace = m.ReplaceOrderEncoder()
        self._er = m.ExecutionReportEncoder()
        self._rej = m.OrderRejectEncoder()
        self._decoders = {c.TEMPLATE_ID: c() for c in (m.NewOrderDecoder, m.CancelOrderDecoder, m.ReplaceOrderDecoder,
                                                         m.ExecutionReportDecoder, m.OrderRejectDecoder)}
        self._header = m.MessageHeader()
        self._new_size = NEW_ORDER.size
        self._new_head = NEW_ORDER.head
        h = self._header.wrap(self._new_head, 0)
        written = bytes(self._new.wrap_and_apply_header(bytearray(self._new_size), 0).buffer[:m.HEADER_LENGTH])
        if m.HEADER_LENGTH != _HEADER.size or written != self._new_head or _HEADER.unpack(self._new_head) != (
                h.block_length, h.template_id, h.schema_id, h.version):
            raise RuntimeError("orders.xml's message header is not blockLength, templateId, schemaId, version "
                               "(uint16 each): fault=ours")

    # -- encode -------------------------------------------------------------

    def encode(self, msg: OrderRequest | VenueReport) -> tuple[memoryview, int]:
        text = getattr(msg, "text", "")
        need = self.m.HEADER_LENGTH + 128 + 4 + len(text.encode("utf-8"))
        if need > len(self.buf):
            self.buf = bytearray(need)
            self.view = memoryview(self.buf)
        b = self.buf
        if isinstance(msg, NewOrder):
            e = self._new.wrap_and_apply_header(b, 0)
            e.cl_ord_id, e.account, e.symbol = msg.cl_ord_id, msg.account, msg.symbol
            b_of = _BYTE_OF
            e.side_raw = b_of.get(msg.side) or _ch(msg.side)
            e.ord_type_raw = b_of.get(msg.ord_type) or _ch(msg.ord_type)
            e.time_in_force_raw = b_of.get(msg.time_in_force) or _ch(msg.time_in_force)
            e.price.mantissa, e.stop_price.mantissa = msg.price, msg.stop_price
            e.quantity, e.transact_time, e.expire_time = msg.quantity, msg.transact_time, msg.expire_time
        elif isinstance(msg, CancelOrder):
            e = self._cancel.wrap_and_apply_header(b, 0)
            e.cl_ord_id, e.orig_cl_ord_id, e.symbol = msg.cl_ord_id, msg.orig_cl_ord_id, msg.symbol
            e.side_raw, e.transact_time = _ch(msg.side), msg.transact_time
        elif isinstance(msg, ReplaceOrder):
            e = self._replace.wrap_and_apply_header(b, 0)
            e.cl_ord_id, e.orig_cl_ord_id, e.symbol = msg.cl_ord_id, msg.orig_cl_ord_id, msg.symbol
            e.side_raw, e.ord_type_raw, e.time_in_force_raw = _ch(msg.side), _ch(msg.ord_type), _ch(msg.time_in_force)
            e.price.mantissa, e.quantity, e.transact_time = msg.price, msg.quantity, msg.transact_time
        elif isinstance(msg, ExecutionReport):
            e = self._er.wrap_and_apply_header(b, 0)
            e.order_id, e.exec_id, e.cl_ord_id, e.symbol = msg.order_id, msg.exec_id, msg.cl_ord_id, msg.symbol
            e.side_raw, e.exec_type_raw, e.ord_status_raw = _ch(msg.side), _ch(msg.exec_type), _ch(msg.ord_status)
            e.reject_reason_raw = 255 if msg.reject_reason is None else int(msg.reject_reason)
            e.price.mantissa, e.last_price.mantissa = msg.price, msg.last_price
            e.last_quantity, e.leaves_quantity, e.cum_quantity = msg.last_quantity, msg.leaves_quantity, msg.cum_quantity
            e.avg_price.mantissa, e.transact_time = msg.avg_price, msg.transact_time
            e.put_text(msg.text)
        elif isinstance(msg, OrderReject):
            e = self._rej.wrap_and_apply_header(b, 0)
            e.order_id, e.cl_ord_id, e.orig_cl_ord_id = msg.order_id, msg.cl_ord_id, msg.orig_cl_ord_id
            e.ord_status_raw, e.response_to_raw = _ch(msg.ord_status), _ch(msg.response_to)
            e.reject_reason_raw, e.transact_time = int(msg.reject_reason), msg.transact_time
            e.put_text(msg.text)
        else:
            raise TypeError(f"not an order message: type={type(msg).__name__}")
        return self.view, self.m.HEADER_LENGTH + e.encoded_length

    def renumbered_new_order(self, data: bytes | bytearray | memoryview, cl_ord_id: str) -> bytes | None:
        """The bytes ``encode(decode(data)._replace(cl_ord_id=cl_ord_id))`` gives, for ``data``
        that :meth:`decode` accepted as a NewOrder, when it is in this schema's exact form (its
        header, its block and nothing after, every char array NUL-padded after its text): a copy
        with the ClOrdId replaced instead of every field encoded again; None for any other form
        (then decode and encode it).  ``cl_ord_id``: ASCII, at most 20 characters."""
        head, n = self._new_head, self._new_size
        if len(data) != n:
            return None
        if type(data) is not bytes:
            data = bytes(data)
        if not data.startswith(head):
            return None
        for off, end in _NEW_ORDER_TEXT:  # account, symbol: text, then only NULs
            if exact_text(data[off:end]) is None:
                return None
        return with_cl_ord_id(data, cl_ord_id)

    # -- decode -------------------------------------------------------------

    def decode(self, buf: Any, offset: int = 0, length: int | None = None) -> OrderRequest | VenueReport:
        """Decode one message; raises ``SbeDecodeError`` naming what is wrong."""
        m = self.m
        end = len(buf) if length is None else offset + length
        if end - offset < m.HEADER_LENGTH:
            raise SbeDecodeError(f"message shorter than the SBE header: fault=remote length={end - offset}")
        # the header in one unpack (its layout is checked against the generated one at __init__)
        block_length, template_id, schema_id, version = _HEADER.unpack_from(buf, offset)
        if schema_id != m.SCHEMA_ID:
            raise SbeDecodeError(f"wrong SBE schema: fault=remote schema_id={schema_id} expected={m.SCHEMA_ID}")
        d = self._decoders.get(template_id)
        if d is None:
            raise SbeDecodeError(f"unknown SBE template: fault=remote schema_id={schema_id} template_id={template_id}")
        if end - offset < m.HEADER_LENGTH + block_length or block_length < d.BLOCK_LENGTH:
            raise SbeDecodeError(f"truncated SBE message: fault=remote template_id={template_id} "
                                 f"length={end - offset} block_length={block_length}")
        try:
            d.wrap(buf, offset + m.HEADER_LENGTH, block_length, version)
            return self._to_message(template_id, d)
        except (ValueError, IndexError, m.MessageError) as e:  # enum values outside the schema, bad text
            raise SbeDecodeError(f"bad SBE message: fault=remote template_id={template_id} error={e}") from None

    @staticmethod
    def _to_message(tid: int, d: Any) -> OrderRequest | VenueReport:
        if tid == 1:
            return NewOrder(d.cl_ord_id, d.account, d.symbol, _member(_SIDE_OF, Side, d.side_raw),
                            _member(_ORD_TYPE_OF, OrdType, d.ord_type_raw), _member(_TIF_OF, TimeInForce, d.time_in_force_raw),
                            d.price.mantissa, d.stop_price.mantissa, d.quantity, d.transact_time, d.expire_time)
        if tid == 2:
            return CancelOrder(d.cl_ord_id, d.orig_cl_ord_id, d.symbol, Side(chr(d.side_raw)), d.transact_time)
        if tid == 3:
            return ReplaceOrder(d.cl_ord_id, d.orig_cl_ord_id, d.symbol, Side(chr(d.side_raw)),
                                OrdType(chr(d.ord_type_raw)), TimeInForce(chr(d.time_in_force_raw)), d.price.mantissa,
                                d.quantity, d.transact_time)
        if tid == 4:
            rr = d.reject_reason_raw
            return ExecutionReport(d.order_id, d.exec_id, d.cl_ord_id, d.symbol, Side(chr(d.side_raw)),
                                   ExecType(chr(d.exec_type_raw)), OrdStatus(chr(d.ord_status_raw)), d.price.mantissa,
                                   d.last_price.mantissa, d.last_quantity, d.leaves_quantity, d.cum_quantity,
                                   d.avg_price.mantissa, d.transact_time, None if rr == 255 else RejectReason(rr),
                                   d.text())
        return OrderReject(d.order_id, d.cl_ord_id, d.orig_cl_ord_id, OrdStatus(chr(d.ord_status_raw)),
                           CxlRejResponseTo(chr(d.response_to_raw)), RejectReason(d.reject_reason_raw),
                           d.transact_time, d.text())
