"""``SequencerGateway`` over a scripted cluster link (what the cluster client would hand it):
which events it says it has taken, and that it names itself before anything else."""

from __future__ import annotations

from collections import deque
from types import SimpleNamespace

from tickline.sequencer import protocol as P
from tickline.sequencer.client import SequencerGateway


class ScriptedCluster:
    """Stands in for ``AeronClusterClient``: records offers, hands out scripted answers."""

    def __init__(self) -> None:
        self.client = SimpleNamespace(connected=True, outstanding={})
        self.offers: list[tuple[int, bytes]] = []
        self.answers: deque[tuple[int, bytes]] = deque()
        self.work = 0

    def offer(self, payload: bytes) -> int:
        corr = len(self.offers) + 1
        self.offers.append((corr, payload))
        return corr

    def poll(self) -> list[tuple[int, bytes]]:
        out = list(self.answers)
        self.answers.clear()
        return out

    def close(self) -> None:
        pass


def gateway() -> tuple[SequencerGateway, ScriptedCluster]:
    cluster = ScriptedCluster()
    return SequencerGateway({}, cluster=cluster), cluster  # type: ignore[arg-type]


def polls(cluster: ScriptedCluster) -> list[int]:
    return [P.decode(p).after for _, p in cluster.offers if P.peek(p) == (P.SCHEMA_ID, P.EVENT_POLL)]  # type: ignore[union-attr]


def test_events_are_acknowledged_only_once_every_one_went_to_the_handler():
    """A client killed with events received but not yet handed on must get them again: its next
    EventPoll (which tells the cluster what it took) waits until the handler has had them all."""
    gw, cluster = gateway()
    got: list[bytes] = []
    gw.poll(lambda m: got.append(bytes(m)), limit=1)
    assert polls(cluster) == [0]
    corr = cluster.offers[-1][0]
    cluster.answers.append((corr, P.encode_batch(3, [(1, b"e1"), (2, b"e2"), (3, b"e3")])))
    gw.poll(lambda m: got.append(bytes(m)), limit=1)
    assert got == [b"e1"]
    gw.poll(lambda m: got.append(bytes(m)), limit=1)
    assert got == [b"e1", b"e2"] and polls(cluster) == [0]  # e3 not handed on yet: nothing acknowledged
    gw.poll(lambda m: got.append(bytes(m)), limit=1)
    gw.poll(lambda m: got.append(bytes(m)), limit=1)
    assert got == [b"e1", b"e2", b"e3"] and polls(cluster) == [0, 3]


def test_a_named_client_attaches_before_its_first_order_and_takes_no_receipt_as_a_report():
    gw, cluster = gateway()
    gw.attach("fix:FIX.4.4:GW->C1")
    assert gw.send(b"order-bytes")
    assert [p for _, p in cluster.offers[:2]] == [P.encode_attach("fix:FIX.4.4:GW->C1"), b"order-bytes"]
    cluster.answers.append((1, P.encode_batch(0, [])))  # the Attach's receipt
    got: list[bytes] = []
    gw.poll(lambda m: got.append(bytes(m)))
    assert gw.attached and got == []
