"""The gateway daemon: sessions from the topology file, acceptor and/or initiator,
and the bridge to the venue, on one agent.  The bridge is either Aeron (SBE
orders out on one stream, SBE execution reports in on another; a
``tickline exchange-sim`` or any other service answers) or the in-process
exchange simulator.

Topology file (TOML), section ``[fix_gateway]``::

    [fix_gateway]
    store_dir = "var/fix"          # one crash-safe log per session
    fsync = "batch"                # always | batch | none
    status_file = "var/fix/status.json"  # default: <store_dir>/status.json; "off": none
    status_interval_s = 0.1        # the file is rewritten within this long of a change
    message_log = false            # true: <store_dir>/<session>.messages.log, every message in and out
    admin_password_hash = "scrypt$..."  # tickline fix-gateway admin ... over <store_dir>/admin.sock (0600)
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

import collections
import dataclasses
import gc
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tickline.transport.files import make_private_dirs, private_opener

from .aeron_bridge import AeronExecutionSource, AeronLink, AeronOrderSink, AeronStreams
from .bridge import BridgeReject, FixBridge
from .codec import GarbledMessage, ascii_uint, parse
from .config import ConfigError, from_env, read_section
from .io import AcceptorConfig, FixAcceptor, FixInitiator, InitiatorConfig
from .admin import AdminServer
from .counters import GatewayCounters
from .auth import check_password_hash
from .codec import MAX_SEQ_NUM
from .msglog import MessageLog
from .schedule import SessionSchedule
from .session import SessionConfig, State
from .store import FSYNC_POLICIES, FileStore, safe_name as _safe_name

from tickline.logs import quote as _quote

__all__ = ["GatewayConfig", "Gateway", "load_config", "IN_PROCESS_VENUE"]

#: The venue behind ``bridge = "in-process"``: an application class (``module:attribute``), loaded
#: only when that bridge is chosen, so this framework package imports no application package.
IN_PROCESS_VENUE = "tickline.venue.exchange_sim:ExchangeSim"
#: that venue's default duplicate-ClOrdID window (see its docstring)
DEFAULT_DUPLICATE_WINDOW = 100_000

_log = logging.getLogger("tickline.fix_gateway")

_SCHEDULE_KEYS = {f.name for f in dataclasses.fields(SessionSchedule)}
_SESSION_KEYS = {f.name for f in dataclasses.fields(SessionConfig)}


@dataclass(frozen=True)
class SessionSpec:
    session: SessionConfig
    schedule: SessionSchedule
    host: str = "127.0.0.1"
    port: int = 0
    tls_ca_file: str = ""  # initiator: speak TLS, trusting this CA bundle
    message_log: bool | None = None  # None: [fix_gateway] message_log


@dataclass(frozen=True)
class GatewayConfig:
    store_dir: str = "fix-store"
    fsync: str = "batch"
    status_file: str = ""  # "" = <store_dir>/status.json; "off" = none
    status_interval_s: float = 0.1
    message_log: bool = False  # every session: QuickFIX-style log of each message in and out
    admin_password_hash: str = ""  # set: the admin socket <store_dir>/admin.sock answers with this credential
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
    def status_path(self) -> str:
        """Where the status file is ("" when turned off)."""
        if self.status_file == "off":
            return ""
        return self.status_file or str(Path(self.store_dir) / "status.json")

    @property
    def bridge_kind(self) -> str:
        return self.bridge or ("aeron" if self.aeron.dir else "in-process")

    def __post_init__(self) -> None:
        if self.bridge not in ("", "aeron", "in-process") and self.bridge.count(":") != 1:
            raise ConfigError(f"bad bridge: fault=config key=fix_gateway.bridge value={self.bridge!r} "
                              "allowed=aeron|in-process|module:factory")
        if self.fsync not in FSYNC_POLICIES:
            raise ConfigError(f"bad fsync policy: fault=config key=fix_gateway.fsync value={self.fsync!r}")
        if not isinstance(self.status_interval_s, (int, float)) or not 0 < self.status_interval_s <= 60:
            raise ConfigError(f"status_interval_s must be in (0, 60]: fault=config key=fix_gateway.status_interval_s "
                              f"value={self.status_interval_s!r}")
        if self.admin_password_hash:
            check_password_hash(self.admin_password_hash, "fix_gateway.admin_password_hash")
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
                                     "bridge", "message_log", "admin_password_hash", "cluster_credentials_file"})
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
            _check_keys(where, s, _SESSION_KEYS | _SCHEDULE_KEYS | {"host", "port", "tls_ca_file", "message_log"})
            sched = SessionSchedule(**{k: v for k, v in s.items() if k in _SCHEDULE_KEYS})
            sc = SessionConfig(**{k: v for k, v in s.items() if k in _SESSION_KEYS})
            ml = s.get("message_log")
            if ml is not None and not isinstance(ml, bool):
                raise ConfigError(f"message_log must be true or false: fault=config key={where}.message_log value={ml!r}")
            specs.append(SessionSpec(sc, sched, s.get("host", "127.0.0.1"), int(s.get("port", 0)), s.get("tls_ca_file", ""),
                                     ml))
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
        # the last refused messages (bounded: a peer sending bad orders must not grow it); each is logged
        self.rejects: collections.deque[BridgeReject] = collections.deque(maxlen=100)
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
        self._last_status_write = 0.0
        self._status_key: Any = None
        self._status_path = config.status_path
        self.admin = AdminServer(admin_socket_path(config), config.admin_password_hash, self._admin_command) \
            if config.admin_password_hash else None
        self.aeron_counters: GatewayCounters | None = None  # Aeron counters, from on_start (counters.py)

    def _wire(self, config: GatewayConfig, clock) -> None:
        for ep in (self.acceptor, self.initiator):
            if ep is None:
                continue
            b = FixBridge(ep, self.venue, _Fanout(self, ep), clock, on_reject=self._on_reject)
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
            if config.message_log if spec.message_log is None else spec.message_log:
                ep = self.acceptor if spec.session.role == "acceptor" else self.initiator
                assert ep is not None
                sid = spec.session.session_id
                ep.entries[sid].msglog = MessageLog(Path(config.store_dir) / f"{_safe_name(sid)}.messages.log",
                                                    max(spec.session.max_message_size, 1 << 16))

    def _on_reject(self, r: BridgeReject) -> None:
        self.rejects.append(r)
        _log.warning("reject_sent session=%s fault=remote kind=%s msg_type=%s ref_seq_num=%s reason=%s tag=%s text=%s",
                     r.session_id, r.kind, _quote(r.msg_type), r.seq_num, r.reason, r.tag, _quote(r.text))

    def role_name(self) -> str:
        return "fix-gateway"

    def on_start(self) -> None:
        for ep in self.endpoints:
            ep.on_start()
        if self.admin is not None:
            self.admin.start()
        self.aeron_counters = GatewayCounters.for_gateway(self)

    def do_work(self) -> int:
        work = 0
        for ep in self.endpoints:
            work += ep.do_work()
        for b in self.bridges:
            work += b.do_work()
        if self.admin is not None and self.admin.jobs:
            work += self.admin.drain()
        if self.aeron_counters is not None:
            self.aeron_counters.maybe_update()
        now = self.clock()
        if self._status_path and now - self._last_status >= self.config.status_interval_s:
            self._last_status = now
            self._maybe_write_status(now)
        return work

    def _maybe_write_status(self, now: float) -> None:
        # rewritten when a session's state or numbers changed (so within status_interval_s of
        # the change), and at least once a second (its "time" says the daemon is alive)
        key = [(e.session.state, e.session.store.next_sender_seq, e.session.store.next_target_seq, e.sock is None)
               for ep in self.endpoints for e in ep.entries.values()]
        if key != self._status_key or now - self._last_status_write >= 1.0:
            self._status_key = key
            self._last_status_write = now
            self.write_status()

    def on_close(self) -> None:
        for ep in self.endpoints:
            ep.on_close()
        for ep in self.endpoints:
            for e in ep.entries.values():
                if e.msglog is not None:
                    e.msglog.close()
        if self._status_path:
            self.write_status()
        if self.admin is not None:
            self.admin.close()
        if self.aeron_counters is not None:
            self.aeron_counters.close()
            self.aeron_counters = None
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
            return {"kind": self.config.bridge_kind, **self.venue.status(),
                    "resent_duplicates_ignored": sum(b.resent_duplicates_ignored for b in self.bridges)}
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
        p = Path(self._status_path)
        make_private_dirs(p.parent)
        tmp = p.with_suffix(p.suffix + ".tmp")
        doc = {"pid": os.getpid(), "time": self.clock(), "sessions": self.status(), "bridge": self.bridge_status()}
        if self.acceptor is not None:  # connections and logons refused, by reason
            doc["acceptor"] = {"connections": self.acceptor.connections, **self.acceptor.counters}
        with open(tmp, "w", opener=private_opener) as f:
            f.write(json.dumps(doc, indent=1))
        os.replace(tmp, p)

    def _admin_command(self, req: dict[str, Any]) -> dict[str, Any]:
        """One admin command (``admin.py``), on the agent thread."""
        cmd = req.get("command")
        now = self.clock()
        if cmd == "list":
            rows = []
            for ep in self.endpoints:
                for sid, e in ep.entries.items():
                    st = e.session.store
                    rows.append({"session": sid, "role": e.session.config.role, "state": e.session.state.value,
                                 "next_sender_seq": st.next_sender_seq, "next_target_seq": st.next_target_seq,
                                 "peer": f"{e.peer.host}:{e.peer.port}" if e.sock is not None and e.peer else ""})
            return {"ok": True, "sessions": rows}
        if cmd not in ("disconnect", "reset-seq", "set-next-seq"):
            return {"ok": False, "error": f"unknown command: fault=user command={_quote(str(cmd)[:40])} "
                                          f"allowed=list|disconnect|reset-seq|set-next-seq"}
        sid = req.get("session")
        e = next((ep.entries[sid] for ep in self.endpoints if isinstance(sid, str) and sid in ep.entries), None)
        if e is None:
            return {"ok": False, "error": f"unknown session: fault=user session={_quote(str(sid)[:80])}"}
        s = e.session
        if cmd == "disconnect":
            if s.state == State.DISCONNECTED and e.sock is None:
                return {"ok": False, "error": f"not connected: fault=user session={sid}"}
            reason = str(req.get("reason") or "Disconnected by the operator")[:200].replace("\x01", " ")
            if s.state == State.ACTIVE:
                s.logout(now, reason)  # the Logout handshake; the connection closes after it
            else:
                s.connection_lost(now, "admin_disconnect")
            _log.info("admin disconnect session=%s state=%s reason=%s", sid, s.state.value, _quote(reason))
            return {"ok": True, "session": sid, "state": s.state.value}
        if s.state != State.DISCONNECTED or e.sock is not None:
            return {"ok": False, "error": f"session is connected: fault=user session={sid} state={s.state.value} "
                                          f"(disconnect it first: sequence numbers change only on a logged-out session)"}
        if cmd == "reset-seq":
            s.reset_sequence_numbers(now)
            _log.info("admin reset_seq session=%s next_out=1 next_in=1", sid)
        else:
            new = {}
            for key in ("sender", "target"):
                v = req.get(key)
                if v is None:
                    continue
                if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= MAX_SEQ_NUM:
                    return {"ok": False, "error": f"bad sequence number: fault=user key={key} value={_quote(str(v)[:40])} "
                                                  f"range=1..{MAX_SEQ_NUM}"}
                new[key] = v
            if not new:
                return {"ok": False, "error": "nothing to set: fault=user (give sender and/or target)"}
            if "sender" in new:
                s.store.set_next_sender_seq(new["sender"])
            if "target" in new:
                s.store.set_next_target_seq(new["target"])
            s.store.sync()
            _log.info("admin set_next_seq session=%s next_out=%s next_in=%s", sid, s.store.next_sender_seq,
                      s.store.next_target_seq)
        return {"ok": True, "session": sid, "next_sender_seq": s.store.next_sender_seq,
                "next_target_seq": s.store.next_target_seq}

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


def admin_socket_path(config: GatewayConfig) -> str:
    return str(Path(config.store_dir) / "admin.sock")


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
