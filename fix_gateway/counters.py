"""The FIX gateway's Aeron counters, shown by ``tickline stat`` (and ``--prometheus``).

Per session: messages in and out, session-level rejects, resends (and gap fills), store
bytes; for the gateway: sessions configured and logged on, and the bridge's business
rejects.  The session layer counts in plain ints; ``GatewayCounters.maybe_update``,
called from the gateway's duty cycle, copies them into the counters every 100 ms (one
clock read per cycle, nothing per message).  Published when the gateway has an Aeron
client (``bridge = "aeron"``, or a named venue exposing ``aeron``); closed in the
gateway's ``on_close``.
"""

from __future__ import annotations

from typing import Any

from tickline.transport import counter_types as ct
from tickline.transport.counter_group import ComponentCounters

__all__ = ["GatewayCounters"]

# Beyond this many sessions only the gateway's totals are published (the driver's counter
# space is shared by every process on it).
MAX_SESSION_COUNTERS = 256


class GatewayCounters(ComponentCounters):
    component = "fix-gateway"

    def __init__(self, gateway: Any, aeron: Any) -> None:
        self.per_session = sum(len(ep.entries) for ep in gateway.endpoints) <= MAX_SESSION_COUNTERS
        super().__init__(gateway, aeron)

    @classmethod
    def for_gateway(cls, gateway: Any) -> "GatewayCounters | None":
        """Counters for ``gateway`` if it has an Aeron client to publish them through, else None."""
        aeron = gateway.link.aeron if gateway.link is not None else getattr(gateway.venue, "aeron", None)
        return cls.start(gateway, aeron)

    def update(self) -> None:
        g, gateway = self.group, self.owner
        configured = active = 0
        for ep in gateway.endpoints:
            for sid, e in ep.entries.items():
                s = e.session
                configured += 1
                active += s.is_logged_on
                if not self.per_session:
                    continue
                g.set(ct.GATEWAY_MESSAGES_IN, "messages in", s.messages_in, session=sid)
                g.set(ct.GATEWAY_MESSAGES_OUT, "messages out", s.messages_out, session=sid)
                g.set(ct.GATEWAY_REJECTS, "rejects", s.rejects_sent, session=sid, kind="session")
                g.set(ct.GATEWAY_RESENDS, "resends", s.resent, session=sid)
                g.set(ct.GATEWAY_STORE_BYTES, "store bytes", getattr(s.store, "size_bytes", 0), session=sid)
        g.set(ct.GATEWAY_SESSIONS, "sessions", configured, state="configured")
        g.set(ct.GATEWAY_SESSIONS, "sessions", active, state="logged_on")
        g.set(ct.GATEWAY_REJECTS, "rejects", sum(b.rejects for b in gateway.bridges), session="all", kind="business")
