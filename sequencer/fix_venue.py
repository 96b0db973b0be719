"""The FIX gateway's way into the sequencer: ``[fix_gateway] bridge =
"tickline.sequencer.fix_venue:from_topology"``.

One ``SequencerVenue`` is both the bridge's ``OrderSink`` and its
``ExecutionSource``.  Each FIX session gets a cluster session of its own (a
``SequencerGateway``, made on its first order), so ClOrdIds stay unique per
FIX session as FIX wants, and each session's acks, fills and rejects come
back to it alone.  An order offered while that session's cluster client is
not connected (or has too many unanswered messages) is refused, and the
bridge answers the FIX client with a BusinessMessageReject ("back pressured,
retry"): nothing is queued behind the client's back.

Each session's cluster client attaches under a name made of the FIX session id
(``fix:FIX.4.4:GW->FIXC1``), so a gateway restarted after a kill takes over
what its predecessor left in the cluster: orders it had sequenced keep their
ClOrdIds (a client's re-send of one is refused as a duplicate, and the bridge
keeps that refusal from the client: the order's own reports are the answer)
and their acks and fills, which come to the restarted gateway and go out on
the FIX session.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable

from tickline.fix_gateway.bridge import OrderRequest, VenueReport
from tickline.fix_gateway.sbe_orders import OrderCodec, SbeDecodeError

from . import protocol as P
from .client import CREDENTIALS_KEY, SequencerGateway, cluster_credentials, members_from_topology

__all__ = ["SequencerVenue", "from_topology", "origin_name"]


def from_topology(path: str) -> "SequencerVenue":
    """The venue for the gateway of topology ``path``: a cluster client per FIX session
    of its ``[fix_gateway]``, opened now so a session's first order finds it connected."""
    from tickline.fix_gateway.gateway import load_config

    members, aeron_dir = members_from_topology(path)
    config = load_config(path)
    credentials = cluster_credentials(config.cluster_credentials_file, f"fix_gateway.{CREDENTIALS_KEY}")
    venue = SequencerVenue(members, aeron_dir, credentials=credentials)
    for spec in config.sessions:
        venue.connect(spec.session.session_id)
    return venue


def origin_name(session_id: str) -> str:
    """The cluster name (``Attach``) of a FIX session's orders: ``fix:`` and the session id,
    or of its digest when that is longer than the name may be or not printable."""
    name = f"fix:{session_id}"
    raw = name.encode("utf-8", "replace")
    if len(raw) <= P.ORIGIN_LEN and all(0x20 < b < 0x7F for b in raw):
        return name
    return "fix#" + hashlib.sha256(raw).hexdigest()[:P.ORIGIN_LEN - 4]


class SequencerVenue:
    """Not thread safe: the gateway's agent thread only."""

    def __init__(self, members: dict[int, tuple[str, int]], aeron_dir: str | None, *, connect_timeout_s: float = 0.0,
                 credentials: bytes = b"") -> None:
        self.members = members
        self.credentials = credentials
        self.aeron_dir = aeron_dir
        self.gateways: dict[str, SequencerGateway] = {}
        self.codec = OrderCodec()
        self.decoder = OrderCodec()
        self.sent = self.refused = self.reports = self.bad = 0

    def _gateway(self, session_id: str) -> SequencerGateway:
        gw = self.gateways.get(session_id)
        if gw is None:
            gw = self.gateways[session_id] = SequencerGateway(self.members, aeron_dir=self.aeron_dir, credentials=self.credentials)
            gw.attach(origin_name(session_id))
        return gw

    def connect(self, session_id: str) -> None:
        """Open the session's cluster client ahead of its first order (optional)."""
        self._gateway(session_id)

    def offer(self, session_id: str, request: OrderRequest) -> bool:
        gw = self._gateway(session_id)
        if not gw.connected:
            gw.poll(lambda _m: None, 0)  # let it connect: a first order may find it not yet connected
        view, n = self.codec.encode(request)
        if gw.send(view[:n]):
            self.sent += 1
            return True
        self.refused += 1
        return False

    def poll(self, handler: Callable[[str | None, VenueReport], None], limit: int) -> int:
        work = 0
        for sid, gw in self.gateways.items():
            def deliver(view: memoryview, sid: str = sid) -> None:
                try:
                    report = self.decoder.decode(view)
                except SbeDecodeError:
                    self.bad += 1
                    return
                self.reports += 1
                handler(sid, report)  # type: ignore[arg-type]
            work += gw.poll(deliver, limit)
        return work

    def status(self) -> dict[str, Any]:
        return {"connected": all(g.connected for g in self.gateways.values()), "sessions": len(self.gateways),
                "orders_sent": self.sent, "orders_refused": self.refused, "reports_received": self.reports, "reports_bad": self.bad}

    def close(self) -> None:
        for gw in self.gateways.values():
            gw.close()
        self.gateways.clear()
