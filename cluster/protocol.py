"""Client <-> cluster messages (ingress and egress), as frozen dataclasses.

The node shell carries them over whatever transport it has (Aeron streams in
production, the simulated network in tests); a future SBE cluster-protocol
schema maps one to one onto these types.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .messages import fast_init

__all__ = ["SessionConnect", "SessionClose", "IngressMessage", "EventCode", "SessionEvent", "EgressMessage", "Challenge",
           "ChallengeResponse", "Ingress", "Egress"]


@dataclass(frozen=True, slots=True)
class SessionConnect:
    client_id: int  # where egress goes (an Aeron response channel/stream in production)
    session_id: int  # chosen by the client, unique per client lifetime
    # what the cluster's authenticator checks (see cluster/auth.py); opaque to the transport
    credentials: bytes = b""


@dataclass(frozen=True, slots=True)
class ChallengeResponse:
    """Client -> leader: the answer to a :class:`Challenge` (new credentials)."""

    client_id: int
    session_id: int
    credentials: bytes = b""


@dataclass(frozen=True, slots=True)
class SessionClose:
    client_id: int
    session_id: int


@fast_init
@dataclass(frozen=True, slots=True)
class IngressMessage:
    client_id: int
    session_id: int
    correlation_id: int
    # every correlation id below ``floor`` has been answered; the cluster may forget them
    floor: int
    payload: bytes


Ingress = SessionConnect | SessionClose | IngressMessage | ChallengeResponse


class EventCode(enum.IntEnum):
    OK = 0  # session open (or closed, for a close)
    REDIRECT = 1  # not the leader; ``leader`` is a hint (may be None)
    ERROR = 2  # e.g. unknown session
    AUTHENTICATION_REJECTED = 3  # the authenticator refused the session's credentials; ``detail`` says why


@fast_init
@dataclass(frozen=True, slots=True)
class SessionEvent:
    session_id: int
    correlation_id: int
    code: EventCode
    leader: int | None = None
    detail: str = ""


@fast_init
@dataclass(frozen=True, slots=True)
class EgressMessage:
    session_id: int
    correlation_id: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Challenge:
    """Leader -> client: the authenticator wants more before it opens the
    session; the client answers with a :class:`ChallengeResponse`."""

    session_id: int
    data: bytes = b""


Egress = SessionEvent | EgressMessage | Challenge
