"""Every counter type id tickline uses: the driver's (Aeron's well-known ones), the archive's
and each component's, in one table, so that two components never share an id and
``tickline stat`` / ``--prometheus`` can name what they read.

A counter in the CnC file carries a type id, a key and a label.  Aeron's driver uses the
ids below 100 (and Aeron's own archive and cluster theirs, around 100-230); tickline's
components use 1100-1199.  Component counters' labels read
``<component> <what>: key=value ...`` (``label()`` builds one); ``tickline stat
--prometheus`` turns the ``key=value`` pairs into Prometheus labels.

Pure Python, no extension needed: the readers import it too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["CounterType", "TYPES", "by_id", "label", "DRIVER_TYPE_NAMES",
           "SYSTEM", "PUBLISHER_LIMIT", "SENDER_POSITION", "RECEIVER_HWM", "SUBSCRIBER_POSITION",
           "RECEIVER_POSITION", "SEND_CHANNEL_STATUS", "RECEIVE_CHANNEL_STATUS", "SENDER_LIMIT",
           "CLIENT_HEARTBEAT", "PUBLISHER_POSITION", "SENDER_BPE",
           "ARCHIVE_RECORDING_POSITION", "ARCHIVE_TOTAL",
           "GATEWAY_SESSIONS", "GATEWAY_MESSAGES_IN", "GATEWAY_MESSAGES_OUT", "GATEWAY_REJECTS",
           "GATEWAY_RESENDS", "GATEWAY_STORE_BYTES",
           "CLUSTER_COMMIT_POSITION", "CLUSTER_APPEND_POSITION", "CLUSTER_APPLIED_POSITION", "CLUSTER_TERM",
           "CLUSTER_ROLE", "CLUSTER_ELECTIONS", "CLUSTER_SNAPSHOTS",
           "VENUE_ORDERS", "STRATEGY_ORDERS"]


@dataclass(frozen=True)
class CounterType:
    type_id: int
    name: str       # short name, as AeronStat prints types (``pub-pos``)
    metric: str     # Prometheus metric name
    component: str  # who owns counters of this type
    help: str


# -- the driver's (Aeron's well-known type ids) ---------------------------------------------
SYSTEM = 0
PUBLISHER_LIMIT = 1
SENDER_POSITION = 2
RECEIVER_HWM = 3
SUBSCRIBER_POSITION = 4
RECEIVER_POSITION = 5
SEND_CHANNEL_STATUS = 6
RECEIVE_CHANNEL_STATUS = 7
SENDER_LIMIT = 9
CLIENT_HEARTBEAT = 11
PUBLISHER_POSITION = 12
SENDER_BPE = 13

# -- tickline.archive -------------------------------------------------------------------------
ARCHIVE_RECORDING_POSITION = 100
ARCHIVE_TOTAL = 101

# -- tickline.fix_gateway (1100-1119) -----------------------------------------------------------
GATEWAY_SESSIONS = 1100
GATEWAY_MESSAGES_IN = 1101
GATEWAY_MESSAGES_OUT = 1102
GATEWAY_REJECTS = 1103
GATEWAY_RESENDS = 1104
GATEWAY_STORE_BYTES = 1105

# -- tickline.cluster members (1120-1139) -------------------------------------------------------
CLUSTER_COMMIT_POSITION = 1120
CLUSTER_APPEND_POSITION = 1121
CLUSTER_APPLIED_POSITION = 1122
CLUSTER_TERM = 1123
CLUSTER_ROLE = 1124
CLUSTER_ELECTIONS = 1125
CLUSTER_SNAPSHOTS = 1126

# -- applications: exchange-sim (1140-1149), strategies (1150-1159) -----------------------------
VENUE_ORDERS = 1140
STRATEGY_ORDERS = 1150

_D, _A, _G, _C = "driver", "archive", "fix-gateway", "cluster"
TYPES: tuple[CounterType, ...] = (
    CounterType(SYSTEM, "system", "aeron_system", _D, "the driver's system counters (the metric name is the label's)"),
    CounterType(PUBLISHER_LIMIT, "pub-lmt", "aeron_publisher_limit", _D, "how far a publication may write"),
    CounterType(SENDER_POSITION, "snd-pos", "aeron_sender_position", _D, "how far a network publication was sent"),
    CounterType(RECEIVER_HWM, "rcv-hwm", "aeron_receiver_hwm", _D, "highest position a receiver saw"),
    CounterType(SUBSCRIBER_POSITION, "sub-pos", "aeron_subscriber_position", _D, "how far a subscriber consumed"),
    CounterType(RECEIVER_POSITION, "rcv-pos", "aeron_receiver_position", _D, "how far a receiver has all data"),
    CounterType(SEND_CHANNEL_STATUS, "snd-channel", "aeron_send_channel_status", _D, "send channel state (1 active)"),
    CounterType(RECEIVE_CHANNEL_STATUS, "rcv-channel", "aeron_receive_channel_status", _D,
                "receive channel state (1 active)"),
    CounterType(SENDER_LIMIT, "snd-lmt", "aeron_sender_limit", _D, "how far flow control lets a sender go"),
    CounterType(CLIENT_HEARTBEAT, "client-heartbeat", "aeron_client_heartbeat_ms", _D, "a client's last heartbeat"),
    CounterType(PUBLISHER_POSITION, "pub-pos", "aeron_publisher_position", _D, "how far a publication wrote"),
    CounterType(SENDER_BPE, "snd-bpe", "aeron_sender_back_pressure_events", _D, "back-pressure events of a sender"),
    CounterType(ARCHIVE_RECORDING_POSITION, "rec-pos", "tickline_archive_recording_position", _A,
                "how far a recording got"),
    CounterType(ARCHIVE_TOTAL, "archive-total", "tickline_archive", _A, "archive totals (the metric name is the label's)"),
    CounterType(GATEWAY_SESSIONS, "fix-sessions", "tickline_fix_gateway_sessions", _G, "FIX sessions by state"),
    CounterType(GATEWAY_MESSAGES_IN, "fix-msgs-in", "tickline_fix_gateway_messages_in", _G,
                "FIX messages received from the peer"),
    CounterType(GATEWAY_MESSAGES_OUT, "fix-msgs-out", "tickline_fix_gateway_messages_out", _G,
                "FIX messages sent to the peer (resends included)"),
    CounterType(GATEWAY_REJECTS, "fix-rejects", "tickline_fix_gateway_rejects", _G,
                "session-level Rejects sent, and business rejects of the bridge"),
    CounterType(GATEWAY_RESENDS, "fix-resends", "tickline_fix_gateway_resends", _G,
                "messages resent (and gap fills) answering ResendRequests"),
    CounterType(GATEWAY_STORE_BYTES, "fix-store-bytes", "tickline_fix_gateway_store_bytes", _G,
                "bytes in the session's message store"),
    CounterType(CLUSTER_COMMIT_POSITION, "cluster-commit-pos", "tickline_cluster_commit_position", _C,
                "the member's commit position"),
    CounterType(CLUSTER_APPEND_POSITION, "cluster-append-pos", "tickline_cluster_append_position", _C,
                "end of the member's log"),
    CounterType(CLUSTER_APPLIED_POSITION, "cluster-applied-pos", "tickline_cluster_applied_position", _C,
                "how far the member's service applied the log"),
    CounterType(CLUSTER_TERM, "cluster-term", "tickline_cluster_term", _C, "the member's current term"),
    CounterType(CLUSTER_ROLE, "cluster-role", "tickline_cluster_role", _C,
                "the member's role: 0 follower, 1 candidate (or pre-candidate), 2 leader"),
    CounterType(CLUSTER_ELECTIONS, "cluster-elections", "tickline_cluster_elections", _C,
                "elections the member saw since it started (term increments)"),
    CounterType(CLUSTER_SNAPSHOTS, "cluster-snapshots", "tickline_cluster_snapshots", _C,
                "snapshots the member took or installed since it started"),
    CounterType(VENUE_ORDERS, "venue-orders", "tickline_exchange_sim_orders", "exchange-sim",
                "orders and reports of the exchange simulator, by outcome"),
    CounterType(STRATEGY_ORDERS, "strategy-orders", "tickline_strategy_orders", "strategy",
                "a strategy's orders, by outcome"),
)

_BY_ID = {t.type_id: t for t in TYPES}
assert len(_BY_ID) == len(TYPES), "a counter type id is used twice"
DRIVER_TYPE_NAMES = {t.type_id: t.name for t in TYPES if t.component == _D}


def by_id(type_id: int) -> CounterType | None:
    return _BY_ID.get(type_id)


_VALUE_UNSAFE = re.compile(r"[\s=]+")


def label(component: str, what: str, **fields: object) -> str:
    """A component counter's label: ``<component> <what>: k=v ...`` (values with blanks or
    ``=`` get ``_`` there, so the pairs parse back)."""
    pairs = " ".join(f"{k}={_VALUE_UNSAFE.sub('_', str(v)) or '_'}" for k, v in fields.items())
    return f"{component} {what}: {pairs}" if pairs else f"{component} {what}"
