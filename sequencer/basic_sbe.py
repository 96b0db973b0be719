"""The order sequencer's wire format as SBE messages of ``schemas/orders.xml``:
``NewOrder`` in, ``ExecutionReport`` out (execType New with orderId = the
global sequence number, or Rejected with a reason).  Plugs into
:class:`~tickline.sequencer.basic.OrderSequencer` through the
:class:`~tickline.sequencer.basic.OrderCodec` seam; uses the on-the-fly
codec from :mod:`tickline.codecs.otf` (generated flyweights can replace it
without touching the service).
"""

from __future__ import annotations

from typing import Any

from tickline.codecs import MessageError, load_builtin
from tickline.codecs import otf

from .basic import NewOrder, OrderAck, Side, Status

__all__ = ["SbeOrderCodec"]

_REASON_TEXT = {Status.REJECTED_POSITION: "position_limit", Status.REJECTED_RATE: "rate_limit", Status.REJECTED_INVALID: "invalid_order"}
_TEXT_REASON = {v: k for k, v in _REASON_TEXT.items()}


class SbeOrderCodec:
    def __init__(self) -> None:
        self.schema = load_builtin("orders.xml")
        self._headers = {name: otf.default_header(self.schema, self.schema.message_by_name(name)) for name in ("NewOrder", "ExecutionReport")}

    def _encode(self, name: str, fields: dict[str, Any]) -> bytes:
        return otf.encode(self.schema, {"header": dict(self._headers[name]), "message": name, "fields": fields})

    def _decode(self, data: bytes, name: str) -> dict[str, Any]:
        try:
            doc, _ = otf.decode(self.schema, data)
        except MessageError as exc:
            raise ValueError(f"malformed SBE message: {exc}") from None
        if doc.get("message") != name:
            raise ValueError(f"unexpected SBE message: expected={name} got={doc.get('message')}")
        return doc["fields"]

    def encode_order(self, o: NewOrder) -> bytes:
        return self._encode("NewOrder", {
            "clOrdId": str(o.client_order_id), "account": str(o.account), "symbol": "", "side": "Buy" if o.side is Side.BUY else "Sell",
            "ordType": "Limit", "timeInForce": "Day", "price": {"mantissa": o.price}, "stopPrice": {"mantissa": None},
            "quantity": o.quantity, "transactTime": 0, "expireTime": None,
        })

    def decode_order(self, data: bytes) -> NewOrder:
        f = self._decode(bytes(data), "NewOrder")
        side = {"Buy": Side.BUY, "Sell": Side.SELL}.get(f["side"], 0)
        return NewOrder(f["account"], side, f["quantity"], f["price"]["mantissa"] or 0, f["clOrdId"])  # type: ignore[arg-type]

    def encode_ack(self, a: OrderAck) -> bytes:
        accepted = a.status is Status.ACCEPTED
        return self._encode("ExecutionReport", {
            "orderId": a.sequence, "execId": a.sequence, "clOrdId": str(a.client_order_id), "symbol": "", "side": "Buy",
            "execType": "New" if accepted else "Rejected", "ordStatus": "New" if accepted else "Rejected",
            "rejectReason": None if accepted else ("InvalidQuantity" if a.status is Status.REJECTED_INVALID else "ExceedsLimit"),
            "price": {"mantissa": None}, "lastPrice": {"mantissa": None}, "lastQuantity": 0, "leavesQuantity": 0, "cumQuantity": 0,
            "avgPrice": {"mantissa": None}, "transactTime": a.timestamp,
            "text": _REASON_TEXT.get(a.status, ""),
        })

    def decode_ack(self, data: bytes) -> OrderAck:
        f = self._decode(bytes(data), "ExecutionReport")
        status = Status.ACCEPTED if f["execType"] == "New" else _TEXT_REASON[f["text"]]
        return OrderAck(f["clOrdId"], status, f["orderId"], f["transactTime"])
