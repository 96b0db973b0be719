"""The gateway daemon: sessions from the topology file, acceptor and/or initiator,
and the bridge to the venue, on one agent.  The bridge is either Aeron (SBE
orders out on one stream, SBE execution reports in on another; a
``tickline exchange-sim`` or any other service answers) or the in-process
exchange simulator.

Topology file (TOML), section ``[fix_gateway]``::

    [fix_gateway]
    store_dir = "var/fix"          # one crash-safe log per session
    fsync = "batch"                # always | batch | none
    status_file = "var/fix/status.json"
    idle = "backoff"               # busy-spin | yielding | sleeping | backoff
    bridge = "aeron"               # aeron | in-process | module:factory; default: aeron when [fix_gateway.aeron] names a dir
                                   # (module:factory: factory(topology path) -> OrderSink + ExecutionSource, e.g.
                                   #  "tickline.sequencer.fix_venue:from_topology": orders through the sequencer cluster)
    [fix_gateway.aeron]            # the streams, same keys as [exchange_sim]
    dir = "/dev/shm/tickline-prod" # media driver directory (tickline driver --dir ...)
    embedded_driver = false        # true: start the C media driver inside the gateway, at dir
    order_channel = "aeron:ipc"
    order_stream_id = 1001
    report_channel = "aeron:ipc"
    report_stream_id = 1002
    offer_max_attempts = 1000      # an order the stream won't take within these bounds is
    offer_timeout_us = 2000        #   refused on FIX: BusinessMessageReject 380=4
    [fix_gateway.acceptor]
    host = "127.0.0.1"
    port = 9876                    # tls_cert_file/tls_key_file: TLS on this port
    max_message_size = 1048576     # every message on this port, Logon included
    max_connections = 1000         # and max_connections_per_address = 100
    max_failed_logons = 5          # per address within failed_logon_window_s = 60: refused meanwhile
    tls_client_cert = "none"       # none | optional | required (with tls_client_ca_file): mutual TLS
    [fix_gateway.venue]            # bridge = "in-process": the exchange simulator inside the gateway
    default_mode = "match"         # match | auto-fill | fill-only | rest
    modes = { AAPL = "auto-fill" }
    duplicate_window = 100000      # ended ClOrdIDs remembered for duplicate detection (0 = none)
    [[fix_gateway.sessions]]
    role = "acceptor"              # or "initiator" with host/port (and tls_ca_file) of the counterparty
    sender_comp_id = "GW"
    target_comp_id = "CLIENT1"
    begin_string = "FIX.4.4"
    transport_dictionary = "FIX44"
    username = "client1"           # acceptor: 553/554 checked against password_hash (or credentials_file)
    password_hash = "scrypt$16384$8$1$..."   # tickline fix-gateway --hash-password
    allowed_addresses = ["10.0.0.0/24"]      # optional; tls_client_cn = "client1" needs a verified client cert
    start_time = "08:00"           # optional schedule
    end_time = "17:00"
    timezone = "America/New_York"

Every ``[fix_gateway]`` scalar can be overridden by ``TICKLINE_FIX_GATEWAY_<KEY>``.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .aeron_bridge import AeronExecutionSource, AeronLink, AeronOrderSink, AeronStreams
from .bridge import BridgeReject, FixBridge
from .codec import GarbledMessage, ascii_uint, parse
from .config import ConfigError, from_env, read_section
from .io import AcceptorConfig, FixAcceptor, FixInitiator, InitiatorConfig
from .schedule import SessionSchedule
from .session import SessionConfig, State
from .store import FSYNC_POLICIES, FileStore

__all__ = ["GatewayConfig", "Gateway", "load_config", "IN_PROCESS_VENUE"]

#: The venue behind ``bridge = "in-process"``: an application class (``module:attribute``), loaded
#: only when that bridge is chosen, so this framework package imports no application package.
IN_PROCESS_VENUE = "tickline.venue.exchange_sim:ExchangeSim"
#: that venue's default duplicate-ClOrdID window (see its docstring)
DEFAULT_DUPLICATE_WINDOW = 100_000

_SCHEDULE_KEYS = {f.name for f in dataclasses.fields(SessionSchedule)}
_SESSION_KEYS = {f.name for f in dataclasses.fields(SessionConfig)}


@dataclass(frozen=True)
class SessionSpec:
    session: SessionConfig
    schedule: SessionSchedule
    host: str = "127.0.0.1"
    port: int = 0
    tls_ca_file: str = ""  # initiator: speak TLS, trusting this CA bundle


@dataclass(frozen=True)
class GatewayConfig:
    store_dir: str = "fix-store"
    fsync: str = "batch"
    status_file: str = ""
    status_interval_s: float = 1.0
    idle: str = "backoff"
    shutdown_timeout_s: float = 5.0
    acceptor: AcceptorConfig | None = None
    initiator: InitiatorConfig = field(default_factory=InitiatorConfig)
    venue_default_mode: str = "match"
    venue_modes: dict[str, str] = field(default_factory=dict)
    venue_duplicate_window: int = DEFAULT_DUPLICATE_WINDOW
    sessions: tuple[SessionSpec, ...] = ()
    bridge: str = ""  # "" = aeron if aeron.dir is set, else in-process; or "module:factory" (see Gateway)
    aeron: AeronStreams = field(default_factory=AeronStreams)
    source: str = ""  # the topology file this came from (a named bridge's factory gets it)
    cluster_credentials_file: str = ""  # a cluster-backed bridge's credentials (principal:secret, 0600); the bridge reads it

    @property
    def bridge_kind(self) -> str:
        return self.bridge or ("aeron" if self.aeron.dir else "in-process")

    def __post_init__(self) -> None:
        if self.bridge not in ("", "aeron", "in-process") and self.bridge.count(":") != 1:
            raise ConfigError(f"bad bridge: fault=config key=fix_gateway.bridge value={self.bridge!r} "
                              "allowed=aeron|in-process|module:factory")
        if self.fsync not in FSYNC_POLICIES:
            raise ConfigError(f"bad fsync policy: fault=config key=fix_gateway.fsync value={self.fsync!r}")
        if not self.sessions:
            raise ConfigError("no sessions: fault=config key=fix_gateway.sessions")
        if any(s.session.role == "acceptor" for s in self.sessions) and self.acceptor is None:
            raise ConfigError("acceptor sessions need [fix_gateway.acceptor]: fault=config key=fix_gateway.acceptor")
        if not isinstance(self.venue_duplicate_window, int) or self.venue_duplicate_window < 0:
            raise ConfigError(f"duplicate_window must be a whole number >= 0: fault=config "
                              f"key=fix_gateway.venue.duplicate_window value={self.venue_duplicate_window!r}")


def _check_keys(where: str, d: dict[str, Any], allowed: set[str]) -> None:
    for k in d:
        if k not in allowed:
            raise ConfigError(f"unknown key: fault=config key={where}.{k} allowed={','.join(sorted(allowed))}")


def load_config(path: str | os.PathLike[str], env: dict[str, str] | None = None) -> GatewayConfig:
    """Read and validate the ``[fix_gateway]`` section; ``ConfigError`` names file and key."""
    gw = read_section(path, "fix_gateway")
    top = {k: v for k, v in gw.items() if k not in ("acceptor", "initiator", "venue", "sessions", "aeron")}
    _check_keys("fix_gateway", top, {"store_dir", "fsync", "status_file", "status_interval_s", "idle", "shutdown_timeout_s",
                                     "bridge", "cluster_credentials_file"})
    try:
        acc = gw.get("acceptor")
        acceptor = AcceptorConfig(**acc) if isinstance(acc, dict) else None
        initiator = InitiatorConfig(**gw.get("initiator", {}))
        venue = gw.get("venue", {})
        aeron_table = gw.get("aeron", {})
        if not isinstance(aeron_table, dict):
            raise ConfigError(f"[fix_gateway.aeron] must be a table: fault=config path={path}")
        _check_keys("fix_gateway.aeron", aeron_table, {f.name for f in dataclasses.fields(AeronStreams)})
        streams = from_env(AeronStreams, "TICKLINE_FIX_GATEWAY_AERON_", env, **aeron_table)
        _check_keys("fix_gateway.venue", venue, {"default_mode", "modes", "duplicate_window"})
        specs = []
        for i, s in enumerate(gw.get("sessions", [])):
            where = f"fix_gateway.sessions[{i}]"
            _check_keys(where, s, _SESSION_KEYS | _SCHEDULE_KEYS | {"host", "port", "tls_ca_file"})
            sched = SessionSchedule(**{k: v for k, v in s.items() if k in _SCHEDULE_KEYS})
            sc = SessionConfig(**{k: v for k, v in s.items() if k in _SESSION_KEYS})
            specs.append(SessionSpec(sc, sched, s.get("host", "127.0.0.1"), int(s.get("port", 0)), s.get("tls_ca_file", "")))
        return from_env(GatewayConfig, "TICKLINE_FIX_GATEWAY_", env, **top, acceptor=acceptor, initiator=initiator,
                        venue_default_mode=venue.get("default_mode", "match"), venue_modes=dict(venue.get("modes", {})),
                        **({"venue_duplicate_window": venue["duplicate_window"]} if "duplicate_window" in venue else {}),
                        sessions=tuple(specs), aeron=streams, source=str(path))
    except TypeError as e:  # an unknown keyword in a sub-table
        raise ConfigError(f"bad topology file: fault=config path={path} error={e}") from None


def _idle(name: str):
    from tickline.transport.idle import idle_strategy_from_name

    return idle_strategy_from_name(name)


class Gateway:
    """The daemon's agents, wired.  ``run(stop)`` blocks until ``stop`` is set, then
    logs every session out (bounded by ``shutdown_timeout_s``) and closes."""

    def __init__(self, config: GatewayConfig, clock=time.time) -> None:
        self.config = config
        self.clock = clock
        self.rejects: list[BridgeReject] = []
        self.link: AeronLink | None = None
        self._link_closed = False
        self.venue: Any
        self.reports: Any
        self.stores = {spec.session.session_id: FileStore.for_session(_store_cfg(config), spec.session.session_id,
                                                                      clock()) for spec in config.sessions}
        self._named_venue = ":" in config.bridge_kind
        if config.bridge_kind == "aeron":
            self.link = AeronLink(config.aeron, "tickline-fix-gateway")
            self.venue = AeronOrderSink(self.link.aeron, config.aeron)
            self.reports = AeronExecutionSource(self.link.aeron, config.aeron)
        elif self._named_venue:
            # An application's venue (e.g. the sequencer cluster), named, not imported: one
            # object that is both OrderSink and ExecutionSource, made from the topology file.
            from tickline.transport.loader import load_object
            self.venue = self.reports = load_object(config.bridge_kind, key="fix_gateway.bridge")(config.source)
        else:
            # a restarted in-process venue continues from what the stores say it did
            seen, top = _venue_history(self.stores)
            from tickline.transport.loader import load_object
            self.venue = load_object(IN_PROCESS_VENUE)(lambda: int(clock() * 1e9), config.venue_modes, config.venue_default_mode,
                                                       config.venue_duplicate_window, first_id=max(_first_venue_id(clock()), top + 1))
            for sid, cl in seen:
                self.venue.remember(sid, cl)
            self.reports = self.venue
        self.endpoints: list[Any] = []
        self.acceptor = FixAcceptor(config.acceptor, clock=clock) if config.acceptor else None
        self.initiator = FixInitiator(config.initiator, clock=clock) if any(
            s.session.role == "initiator" for s in config.sessions) else None
        self.bridges: list[FixBridge] = []
        try:
            self._wire(config, clock)
        except BaseException:
            if self.link is not None:
                self.link.close()
            raise
        self._last_status = 0.0

    def _wire(self, config: GatewayConfig, clock) -> None:
        for ep in (self.acceptor, self.initiator):
            if ep is None:
                continue
            b = FixBridge(ep, self.venue, _Fanout(self, ep), clock, on_reject=self.rejects.append)
            ep.on_event = b.on_event
            self.endpoints.append(ep)
            self.bridges.append(b)
        for spec in config.sessions:
            store = self.stores[spec.session.session_id]
            if spec.session.role == "acceptor":
                assert self.acceptor is not None
                self.acceptor.add_session(spec.session, store, spec.schedule)
            else:
                assert self.initiator is not None
                tls = None
                if spec.tls_ca_file:
                    import ssl

                    try:
                        tls = ssl.create_default_context(cafile=spec.tls_ca_file)
                    except (OSError, ssl.SSLError) as e:
                        raise ConfigError(f"cannot load CA file: fault=config session={spec.session.session_id} "
                                          f"key=tls_ca_file value={spec.tls_ca_file!r} error={e}") from None
                self.initiator.add_session(spec.session, store, spec.schedule, host=spec.host, port=spec.port, tls=tls)

    def role_name(self) -> str:
        return "fix-gateway"

    def on_start(self) -> None:
        for ep in self.endpoints:
            ep.on_start()

    def do_work(self) -> int:
        work = 0
        for ep in self.endpoints:
            work += ep.do_work()
        for b in self.bridges:
            work += b.do_work()
        now = self.clock()
        if self.config.status_file and now - self._last_status >= self.config.status_interval_s:
            self._last_status = now
            self.write_status()
        return work

    def on_close(self) -> None:
        for ep in self.endpoints:
            ep.on_close()
        if self.config.status_file:
            self.write_status()
        self.close_link()

    def close_link(self) -> None:
        """Close the Aeron side (publication, subscription, client, embedded driver); idempotent."""
        if self._named_venue and not self._link_closed:
            self._link_closed = True
            self.venue.close()
        if self.link is not None and not self._link_closed:
            self._link_closed = True
            self.venue.close()
            self.reports.close()
            self.link.close()

    def bridge_status(self) -> dict[str, Any]:
        if self._named_venue:
            return {"kind": self.config.bridge_kind, **self.venue.status()}
        refused = sum(b.reports_refused for b in self.bridges)
        if self.link is None:
            return {"kind": "in-process", "connected": True, "reports_refused": refused,
                "possdup_ignored": sum(b.possdup_ignored for b in self.bridges)}
        return {"kind": "aeron", "connected": self.venue.is_connected, "orders_sent": self.venue.sent,
                "orders_refused": dict(self.venue.failed), "reports_received": self.reports.received,
                "reports_bad": self.reports.bad, "reports_refused": refused,
                "rejects": sum(b.rejects for b in self.bridges)}

    def status(self) -> list[dict[str, Any]]:
        out = []
        for ep in self.endpoints:
            for sid, e in ep.entries.items():
                st = e.session.store
                out.append({"session": sid, "role": e.session.config.role, "state": e.session.state.value,
                            "next_sender_seq": st.next_sender_seq, "next_target_seq": st.next_target_seq})
        return out

    def write_status(self) -> None:
        p = Path(self.config.status_file)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(p.suffix + ".tmp")
        doc = {"pid": os.getpid(), "time": self.clock(), "sessions": self.status(), "bridge": self.bridge_status()}
        if self.acceptor is not None:  # connections and logons refused, by reason
            doc["acceptor"] = {"connections": self.acceptor.connections, **self.acceptor.counters}
        tmp.write_text(json.dumps(doc, indent=1))
        os.replace(tmp, p)

    def all_disconnected(self) -> bool:
        return all(e.session.state == State.DISCONNECTED for ep in self.endpoints for e in ep.entries.values())

    def run(self, stop: threading.Event) -> None:
        idle = _idle(self.config.idle)
        self.on_start()
        # The daemon owns its process: move what start-up made (modules, dictionaries, plans) out of
        # the cyclic GC's generations, so its collections walk only what the duty cycles make.
        gc.freeze()
        try:
            while not stop.is_set():
                idle.idle(self.do_work())
            for ep in self.endpoints:
                ep.logout_all("Gateway shutting down")
                if isinstance(ep, FixInitiator):
                    for sid in ep.entries:
                        ep.enabled[sid] = False
            deadline = time.monotonic() + self.config.shutdown_timeout_s
            while not self.all_disconnected() and time.monotonic() < deadline:
                idle.idle(self.do_work())
            self.do_work()  # flush what the last cycle queued
        finally:
            self.on_close()


def _first_venue_id(now: float) -> int:
    """The in-process venue's first OrderID/ExecID: the start time in microseconds x 100 (18
    digits), so a restarted gateway issues ids above the last run's (which would need 100 ids a
    microsecond to catch up) while the clock does not step back; ``_venue_history`` raises it
    past every id in the stores, which covers a clock that did."""
    return int(now * 1e6) * 100


def _venue_history(stores: dict[str, FileStore]) -> tuple[list[tuple[str, str]], int]:
    """What the sessions' stores say the in-process venue did before a restart: the (session,
    ClOrdID) of every order it reported on, oldest first, and the highest OrderID/ExecID sent.
    A PossDup resend of such an order is then not executed again, a new order under its ClOrdID
    is a duplicate (within the venue's window), and new ids continue above the old.  Reads each
    stored ExecutionReport once, at start, in slices of the store."""
    marker = b"\x0135=8\x01"
    seen: list[tuple[str, str]] = []
    top = 0
    for sid, store in stores.items():
        last = store.next_sender_seq - 1
        for start in range(1, last + 1, 4096):
            for _, raw in store.get(start, min(last, start + 4095)):
                if marker not in raw:
                    continue
                try:
                    msg = parse(bytes(raw))
                except GarbledMessage:
                    continue
                cl = msg.get(11)
                if cl:
                    seen.append((sid, cl))
                for tag in (37, 17):
                    n = ascii_uint(msg.get(tag))
                    if n is not None and n > top:
                        top = n
    return seen, top


def _store_cfg(config: GatewayConfig):
    from .store import FileStoreConfig

    return FileStoreConfig(config.store_dir, config.fsync)


class _Fanout:
    """The venue's reports, split by endpoint: each bridge delivers only its own sessions'."""

    def __init__(self, gw: Gateway, endpoint: Any) -> None:
        self.gw, self.endpoint = gw, endpoint

    def poll(self, handler, limit: int) -> int:
        if len(self.gw.endpoints) == 1:
            return self.gw.reports.poll(handler, limit)
        # two endpoints: the first bridge polls and routes for both
        if self.endpoint is not self.gw.endpoints[0]:
            return 0

        def route(sid, rep):
            for b in self.gw.bridges:
                if sid in b.endpoint.entries or (sid is None and rep.cl_ord_id in b.routes):
                    b._deliver(sid, rep)
                    return
        return self.gw.reports.poll(route, limit)
