"""Example clustered service: an order sequencer.

Every accepted order gets the next global sequence number; two risk checks
run first, both on replicated state only:

- position limit: an account's net position (buys minus sells of accepted
  orders) must stay within +/- ``max_position``;
- order-rate limit: at most ``max_orders`` accepted orders per account in any
  ``window`` of cluster time (log timestamps, never a local clock).

Wire format is behind :class:`OrderCodec` so the SBE codec generated from
``schemas/orders.xml`` can replace :class:`StructOrderCodec` without touching
the service logic.  :func:`decide` is the pure single-copy specification the
service applies and the linearizability checker uses as its model.
"""

from __future__ import annotations

import enum
import json
import struct
from dataclasses import dataclass, field
from typing import Protocol

from tickline.cluster.messages import Role, fast_init
from tickline.fix_gateway.bridge import Side

__all__ = ["service", "SIM_LIMITS", "codec", "sequencer_model", "sequencer_key", "Side", "NewOrder", "OrderAck", "Status", "RiskLimits", "SequencerState", "decide", "OrderCodec", "StructOrderCodec", "OrderSequencer"]


# The one Side of the whole pipeline (generated from schemas/orders.xml's Side enum: "1" buy, "2" sell).
_SIDE_BYTE = {Side.BUY: 1, Side.SELL: 2}


class Status(enum.IntEnum):
    ACCEPTED = 0
    REJECTED_POSITION = 1
    REJECTED_RATE = 2
    REJECTED_INVALID = 3


@fast_init
@dataclass(frozen=True, slots=True)
class NewOrder:
    account: int | str  # int with the struct codec, the SBE Account text with the SBE codec
    side: Side
    quantity: int
    price: int
    client_order_id: int | str


@fast_init
@dataclass(frozen=True, slots=True)
class OrderAck:
    client_order_id: int | str
    status: Status
    sequence: int  # global sequence number, 0 when rejected
    timestamp: int  # cluster time the order was sequenced at


@dataclass(frozen=True)
class RiskLimits:
    max_position: int = 1000
    max_orders: int = 5
    window: int = 100


@dataclass
class SequencerState:
    next_sequence: int = 1
    positions: dict[int | str, int] = field(default_factory=dict)
    recent: dict[int | str, list[int]] = field(default_factory=dict)  # account -> accepted timestamps in window

    def key(self) -> tuple:
        return (self.next_sequence, tuple(sorted(self.positions.items())), tuple(sorted((a, tuple(t)) for a, t in self.recent.items())))

    def copy(self) -> "SequencerState":
        return SequencerState(self.next_sequence, dict(self.positions), {a: list(t) for a, t in self.recent.items()})


# Enum members as module globals: a class attribute lookup on an Enum costs
# about ten times a global's, several times per order.
_BUY, _SELL = Side.BUY, Side.SELL
_SIDES = (_BUY, _SELL)
_ACCEPTED, _REJECTED_POSITION, _REJECTED_RATE, _REJECTED_INVALID = (
    Status.ACCEPTED, Status.REJECTED_POSITION, Status.REJECTED_RATE, Status.REJECTED_INVALID)


def decide(state: SequencerState, order: NewOrder, timestamp: int, limits: RiskLimits) -> OrderAck:
    """Apply ``order`` at cluster time ``timestamp`` to ``state`` (mutated) and return the ack."""
    side = order.side
    if order.quantity <= 0 or side not in _SIDES:
        return OrderAck(order.client_order_id, _REJECTED_INVALID, 0, timestamp)
    # The account's accepted timestamps still inside the window.  Filtered only
    # when one has left it (a list of at most max_orders; cheaper than a
    # comprehension per order), and extended in place: the state is this
    # service's own.
    recent = state.recent.get(order.account)
    cutoff = timestamp - limits.window
    if recent is not None and (not recent or min(recent) <= cutoff):
        recent = [t for t in recent if t > cutoff]
        if recent:
            state.recent[order.account] = recent
        else:
            del state.recent[order.account]
            recent = None
    if (0 if recent is None else len(recent)) >= limits.max_orders:
        return OrderAck(order.client_order_id, _REJECTED_RATE, 0, timestamp)
    signed = order.quantity if side is _BUY else -order.quantity
    new_position = state.positions.get(order.account, 0) + signed
    if abs(new_position) > limits.max_position:
        return OrderAck(order.client_order_id, _REJECTED_POSITION, 0, timestamp)
    state.positions[order.account] = new_position
    if recent is None:
        state.recent[order.account] = [timestamp]
    else:
        recent.append(timestamp)
    seq = state.next_sequence
    state.next_sequence += 1
    return OrderAck(order.client_order_id, _ACCEPTED, seq, timestamp)


class OrderCodec(Protocol):
    def encode_order(self, order: NewOrder) -> bytes: ...
    def decode_order(self, data: bytes) -> NewOrder: ...
    def encode_ack(self, ack: OrderAck) -> bytes: ...
    def decode_ack(self, data: bytes) -> OrderAck: ...


class StructOrderCodec:
    """Fixed little-endian layout, a stand-in until the SBE codec for
    ``schemas/orders.xml`` lands (same fields, same meaning)."""

    ORDER = struct.Struct("<qBqqq")
    ACK = struct.Struct("<qBqq")

    def encode_order(self, o: NewOrder) -> bytes:
        return self.ORDER.pack(o.account, _SIDE_BYTE.get(o.side, o.side if type(o.side) is int else 0), o.quantity, o.price, o.client_order_id)

    _SIDES = {1: Side.BUY, 2: Side.SELL}  # a dict lookup, not an enum call, per order

    def decode_order(self, data: bytes) -> NewOrder:
        account, side, qty, price, coid = self.ORDER.unpack(data)
        return NewOrder(account, self._SIDES.get(side, side), qty, price, coid)  # type: ignore[arg-type]

    def encode_ack(self, a: OrderAck) -> bytes:
        return self.ACK.pack(a.client_order_id, a.status, a.sequence, a.timestamp)  # an IntEnum packs as its int

    def decode_ack(self, data: bytes) -> OrderAck:
        coid, status, seq, ts = self.ACK.unpack(data)
        return OrderAck(coid, Status(status), seq, ts)


class OrderSequencer:
    """The ClusteredService.  A malformed order is answered REJECTED_INVALID."""

    def __init__(self, limits: RiskLimits = RiskLimits(), codec: OrderCodec | None = None) -> None:
        self.limits = limits
        self.codec: OrderCodec = codec or StructOrderCodec()
        self.state = SequencerState()
        self.role = Role.FOLLOWER
        self.cluster = None

    def on_start(self, cluster) -> None:
        self.cluster = cluster

    def on_session_open(self, session, timestamp: int) -> None:
        pass

    def on_session_close(self, session, timestamp: int) -> None:
        pass

    def on_message(self, session, timestamp: int, payload: bytes) -> None:
        try:
            order = self.codec.decode_order(payload)
        except (struct.error, ValueError):
            session.offer(self.codec.encode_ack(OrderAck(0, Status.REJECTED_INVALID, 0, timestamp)))
            return
        session.offer(self.codec.encode_ack(decide(self.state, order, timestamp, self.limits)))

    def on_timer(self, correlation_id: int, timestamp: int) -> None:
        pass

    def on_take_snapshot(self) -> bytes:
        s = self.state
        return json.dumps({"next": s.next_sequence, "positions": sorted(s.positions.items()), "recent": sorted(s.recent.items())}, separators=(",", ":")).encode()

    def on_load_snapshot(self, data: bytes) -> None:
        d = json.loads(data)
        self.state = SequencerState(d["next"], {a: p for a, p in d["positions"]}, {a: list(t) for a, t in d["recent"]})

    def on_role_change(self, role: Role) -> None:
        self.role = role


def service(topology_path: str) -> OrderSequencer:
    """The cluster daemon's factory (``service = "tickline.sequencer.basic:service"``): default limits."""
    return OrderSequencer()


# ---------------------------------------------------------------- the cluster simulator's workload
# (tickline.cluster.sim drives this module by name: SimOptions.workload)

#: limits small enough that the simulator's clients hit both risk checks
SIM_LIMITS = RiskLimits(max_position=600, max_orders=4, window=60)


def codec(name: str) -> OrderCodec:
    """The wire format by name: ``struct`` or ``sbe`` (SBE messages of schemas/orders.xml)."""
    if name == "sbe":
        from .basic_sbe import SbeOrderCodec
        return SbeOrderCodec()
    if name == "struct":
        return StructOrderCodec()
    raise ValueError(f"unknown order codec: fault=user codec={name!r} expected=struct|sbe")


def sequencer_model(limits: RiskLimits):
    """The single-copy order sequencer as a model for the checker: state is
    (SequencerState, last cluster time); time never goes backwards."""

    def step(state, order: NewOrder, ack):
        seq_state, last_ts = state
        if ack is None:
            # Never answered: it had no visible effect, or it took effect at an
            # unknown time.  Only the first is modelled; the simulator requires
            # every request to be answered before it checks, so none reach here.
            return [state]
        if ack.timestamp < last_ts:
            return []
        s = seq_state.copy()
        return [(s, ack.timestamp)] if decide(s, order, ack.timestamp, limits) == ack else []

    return step


def sequencer_key(state) -> tuple:
    return (state[0].key(), state[1])
