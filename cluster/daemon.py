"""A cluster member as a process: the node behind Aeron, run as an agent.

Over UDP the member embeds its own media driver (invoker mode, turned from
this agent's duty cycle; see :mod:`.aeron_io`) and talks Aeron UDP unicast:
its consensus and ingress subscriptions listen on its ``host:port`` from the
topology file, and it publishes to each peer's.  Over IPC (every member
``ipc``: one host) the members and their clients share the running media
driver in ``aeron_dir`` and talk through its IPC streams.  One duty cycle:
turn the driver and client conductor, poll consensus and ingress (everything
received shares one Ready, one fsync: group commit), tick the node, flush
egress.  With ``fsync = "always"`` the fsync runs on a native thread: the
duty cycle, and the driver it turns, go on while the disk works, and what
must wait for the sync (a follower's append position, the leader's own vote
towards commit) goes when it completes (see :class:`~.messages.Ready`).

Topology file (TOML)::

    data_dir = "/var/lib/tickline/cluster"   # member N uses data_dir/member-N
    fsync = "always"                          # or "none"
    snapshot_interval = 1048576               # bytes of log between snapshots, 0 = off
    election_timeout_min = 300                # ms, optional (also heartbeat_interval, election_timeout_max)
    aeron_dir = "/dev/shm"                    # optional: where each member makes its driver directory
    aeron_threading = "invoker"               # optional: or "threaded" (driver and conductor on their own
                                              # C threads); env TICKLINE_CLUSTER_AERON_THREADING overrides
    fsync_thread = true                       # optional: false runs fsync = "always" in the duty cycle, on
                                              # the caller's thread; env TICKLINE_CLUSTER_FSYNC_THREAD overrides
    idle = "backoff"                          # optional: the duty cycle's idle strategy (busy-spin, yielding,
                                              # sleeping, noop, backoff); env TICKLINE_CLUSTER_IDLE overrides
    idle_max_park_us = 1000                   # optional, backoff only: its longest sleep (see below);
                                              # env TICKLINE_CLUSTER_IDLE_MAX_PARK_US overrides
    member_key_file = "/etc/tickline/cluster.key"   # the cluster key: members sign consensus messages with it
    member_auth = "hmac-sha256"               # optional: or "none" (a trusted network only; no key file then)
    credentials_file = "/etc/tickline/cluster.credentials"  # clients' and operators' hashed secrets
    authenticator = "credentials-file"        # optional: or "none", or "package.module:factory"
    client_egress = ["127.0.0.1:*"]           # optional: where clients' egress may go (host:port, host:lo-hi,
                                              # host:*); default: the members' hosts, any port
    client_term_length_max = 1048576          # optional: the largest term length a client's egress may ask
    [members]
    1 = "127.0.0.1:9010"                      # the member's Aeron UDP endpoint
    2 = "127.0.0.1:9011"
    3 = "127.0.0.1:9012"

All members on one host can use IPC instead: every member's endpoint is
``"ipc"`` and ``aeron_dir`` is then the directory of the running media driver
they share, and their clients use (start it first, e.g. ``tickline driver
--dir /dev/shm/aeron-cluster -D aeron.threading.mode=SHARED -D aeron.timer.interval=100ms``;
see ``aeron_io.SHARED_DRIVER_OPTIONS`` for the client liveness trade-off, and
``aeron_io.IPC_UNTETHERED_WINDOW_MS`` for why a member killed with -9 and
restarted at once does not stall the streams into it).
``aeron_threading`` does not apply.

A member with nothing to do backs off as Aeron's default does: 10 spins, 5
yields, then sleeps from 1 us doubling up to ``idle_max_park_us``.  A message
that arrives during a sleep waits for its end, at each of the four hops of an
order (client, leader, followers, leader), so when orders are sparse the
longest sleep sets the latency; each wake-up costs CPU.  Measured with three
members over IPC on one 2-vCPU host (``tickline bench cluster``, 200 orders/s):
1000 us gives p50 1.4 ms, p99 2.4 ms and 0.04 cores per idle member; 100 us
gives p50 0.5 ms, p99 0.8 ms and 0.14 cores per idle member.  Under load
(10,000/s) it makes no difference: there is always work.  ``busy-spin`` is
the lowest latency when each member has a core of its own.

Security (see :mod:`.auth`): a member refuses to start without its key file
(unless ``member_auth = "none"``) and without its credentials file (unless
``authenticator`` is ``"none"`` or a plug-in); both must be mode 0600.

Cluster time is the wall clock in milliseconds since the epoch (never going
backwards within a process), as every member's entries must be comparable.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import random
import signal
import sys
import time
import tomllib
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from tickline.logs import add_arguments as add_log_arguments, kv, start_daemon
from tickline.transport.loader import LoadError, load_object
from tickline.transport.idle import BackoffIdleStrategy, IdleStrategy, idle_strategy_from_name

from .admin import ErrorRing, ErrorTee, answer, describe
from .config import ConsensusConfig
from .counters import ClusterCounters
from .disk import OsDisk
from .errors import ClusterError, ConfigError, NotLeaderError
from .log import FsyncPolicy
from .messages import AppendRequest, AppendResponse, InstallSnapshot, InstallSnapshotResponse, RequestVote, Role, TimeoutNow, VoteResponse
from .node import ClusterNode, NodeConfig
from .protocol import IngressMessage, SessionClose, SessionConnect
from .service import ACTION_RESUME, ACTION_SHUTDOWN, ACTION_SUSPEND
from .aeron_io import CLIENT_TERM_LENGTH, IPC_ENDPOINT, THREADING_MODES, AeronNodeIO, AeronStack, EgressPolicy, is_ipc, threading_mode
from .auth import MemberAuth, SessionGate, load_authenticator, load_member_key
from .protocol import ChallengeResponse
from . import wire

__all__ = ["Topology", "load_topology", "NodeAgent", "main"]

#: append batches stay well under the consensus stream's 512 KiB max message
MAX_APPEND_BYTES = 64 * 1024
#: a snapshot of any size goes to a lagging member in chunks of this many bytes, under that max message too
SNAPSHOT_CHUNK_BYTES = 256 * 1024
#: log segments grow in steps of this many bytes of zeros, so most fsyncs are fdatasyncs (see OsDisk)
PREALLOCATE_BYTES = 1024 * 1024
#: how often a running member moves what survived into the cyclic GC's permanent generation (see NodeAgent)
GC_FREEZE_MS = 1000
#: the backoff idle strategy's longest sleep, as Aeron's default (see the module docstring for the trade-off)
DEFAULT_MAX_PARK_US = 1000
#: the service a topology without ``service`` runs: the example order sequencer
DEFAULT_SERVICE = "tickline.sequencer.basic:service"
_MEMBER_MESSAGES = (RequestVote, VoteResponse, AppendRequest, AppendResponse, InstallSnapshot, InstallSnapshotResponse, TimeoutNow)
_INGRESS = (SessionClose, IngressMessage)
MEMBER_AUTH = ("hmac-sha256", "none")
log = logging.getLogger("tickline.cluster")


@dataclass(frozen=True)
class Topology:
    members: dict[int, tuple[str, int]]
    data_dir: str
    fsync: FsyncPolicy = FsyncPolicy.ALWAYS
    snapshot_interval: int = 0
    election_timeout_min: int = 300
    election_timeout_max: int = 600
    heartbeat_interval: int = 50
    aeron_dir: str | None = None
    aeron_threading: str | None = None  # None: TICKLINE_CLUSTER_AERON_THREADING or "invoker"
    fsync_thread: bool | None = None  # None: TICKLINE_CLUSTER_FSYNC_THREAD or True
    idle: str = "backoff"
    idle_max_park_us: int = DEFAULT_MAX_PARK_US
    member_auth: str = "hmac-sha256"
    member_key_file: str | None = None
    authenticator: str = "credentials-file"
    credentials_file: str | None = None
    client_egress: tuple[str, ...] | None = None  # None: the members' hosts, any port
    client_term_length_max: int = CLIENT_TERM_LENGTH

    def egress_policy(self) -> EgressPolicy:
        if self.client_egress is None:
            return EgressPolicy.for_members(self.members, self.client_term_length_max)
        return EgressPolicy.parse(self.client_egress, ipc=is_ipc(self.members), max_term_length=self.client_term_length_max)

    def member_key(self) -> bytes | None:
        """The cluster key, or None with ``member_auth = "none"``; a ConfigError if it cannot be had."""
        if self.member_auth == "none":
            return None
        if not self.member_key_file:
            raise ConfigError("members authenticate consensus messages with a key: name its file", key="member_key_file",
                              expected='a path to a 0600 file of hex (tickline cluster keygen FILE), or member_auth = "none" on a trusted network')
        return load_member_key(self.member_key_file)
    # The replicated service: ``module:factory``, called with the topology file's path (the
    # application's, loaded by name: the framework imports no application, ARCHITECTURE.md).
    service: str = DEFAULT_SERVICE
    source: str = ""  # the topology file this came from

    def idle_strategy(self) -> IdleStrategy:
        if self.idle == "backoff":
            return BackoffIdleStrategy(max_park_ns=self.idle_max_park_us * 1000)
        return idle_strategy_from_name(self.idle)

    def consensus(self, member: int) -> ConsensusConfig:
        return ConsensusConfig(member, tuple(sorted(self.members)), self.election_timeout_min, self.election_timeout_max,
                               self.heartbeat_interval, max_append_bytes=MAX_APPEND_BYTES,
                               snapshot_chunk_bytes=SNAPSHOT_CHUNK_BYTES)


def _addr(text: str, where: str) -> tuple[str, int]:
    if text == "ipc":
        return IPC_ENDPOINT
    host, sep, port = str(text).rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ConfigError("invalid cluster topology", file=where, key="members", value=text, expected="host:port or ipc")
    return host, int(port)


def _idle_settings(doc: dict, path: str, env: Mapping[str, str]) -> tuple[str, int]:
    """``idle`` and ``idle_max_park_us``, each overridden by ``TICKLINE_CLUSTER_IDLE``
    / ``TICKLINE_CLUSTER_IDLE_MAX_PARK_US`` when set; a bad value's error names
    where it came from."""
    idle_key, park_key = "idle", "idle_max_park_us"
    idle = doc.get("idle", "backoff")
    if "TICKLINE_CLUSTER_IDLE" in env:
        idle_key, idle = "TICKLINE_CLUSTER_IDLE", env["TICKLINE_CLUSTER_IDLE"]
    max_park = doc.get("idle_max_park_us", DEFAULT_MAX_PARK_US)
    park_set = "idle_max_park_us" in doc
    if "TICKLINE_CLUSTER_IDLE_MAX_PARK_US" in env:
        park_key, max_park, park_set = "TICKLINE_CLUSTER_IDLE_MAX_PARK_US", env["TICKLINE_CLUSTER_IDLE_MAX_PARK_US"], True
        max_park = int(max_park) if max_park.strip().isdigit() else max_park
    try:
        if not isinstance(idle, str):
            raise ValueError("not a name")
        idle_strategy_from_name(idle)
    except ValueError:
        raise ConfigError("invalid cluster topology", file=path, key=idle_key, value=idle, expected="backoff|busy-spin|yielding|sleeping|noop") from None
    if not isinstance(max_park, int) or isinstance(max_park, bool) or not 1 <= max_park <= 1_000_000:
        raise ConfigError("invalid cluster topology", file=path, key=park_key, value=max_park, expected="1..1000000")
    if park_set and idle != "backoff":
        raise ConfigError("invalid cluster topology: idle_max_park_us applies to the backoff strategy only", file=path,
                          key=park_key, idle=idle)
    return idle, max_park


def _security_settings(doc: dict[str, Any], path: str) -> dict[str, Any]:
    """The topology's security keys, type-checked (the files are read when a member starts)."""
    out: dict[str, Any] = {}
    member_auth = doc.get("member_auth", "hmac-sha256")
    if member_auth not in MEMBER_AUTH:
        raise ConfigError("invalid cluster topology", file=path, key="member_auth", value=member_auth, expected="|".join(MEMBER_AUTH))
    out["member_auth"] = member_auth
    for k in ("member_key_file", "credentials_file", "authenticator"):
        if k in doc:
            if not isinstance(doc[k], str) or not doc[k]:
                raise ConfigError("invalid cluster topology", file=path, key=k, value=doc[k], expected="a non-empty string")
            out[k] = doc[k]
    if "client_egress" in doc:
        v = doc["client_egress"]
        if not isinstance(v, list) or not all(isinstance(e, str) for e in v):
            raise ConfigError("invalid cluster topology", file=path, key="client_egress", value=v, expected='a list of "host:port|host:lo-hi|host:*"')
        out["client_egress"] = tuple(v)
    if "client_term_length_max" in doc:
        v = doc["client_term_length_max"]
        if not isinstance(v, int) or isinstance(v, bool):
            raise ConfigError("invalid cluster topology", file=path, key="client_term_length_max", value=v, expected="a power of two in 65536..1073741824")
        out["client_term_length_max"] = v
    return out


def load_topology(path: str, env: Mapping[str, str] | None = None) -> Topology:
    """Read and check a topology file; ``env`` (default ``os.environ``) may
    override the idle settings (see :func:`_idle_settings`)."""
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError("cluster topology file not found", file=path) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("cluster topology is not valid TOML", file=path, reason=str(exc)) from None
    if isinstance(doc.get("cluster"), dict):
        # A whole deployment's topology (tickline up): the cluster reads its own [cluster]
        # section; the media driver's directory is [driver] dir unless [cluster] names one.
        cluster = dict(doc["cluster"])
        driver = doc.get("driver")
        if "aeron_dir" not in cluster and isinstance(driver, dict) and isinstance(driver.get("dir"), str):
            cluster["aeron_dir"] = driver["dir"]
        doc = cluster
    members_doc = doc.get("members")
    if not isinstance(members_doc, dict) or not members_doc:
        raise ConfigError("invalid cluster topology", file=path, key="members", expected="a [members] table of id = \"host:port\"")
    members = {}
    for k, v in members_doc.items():
        if not str(k).isdigit():
            raise ConfigError("invalid cluster topology", file=path, key=f"members.{k}", expected="integer member id")
        members[int(k)] = _addr(v, path)
    if "data_dir" not in doc:
        raise ConfigError("invalid cluster topology", file=path, key="data_dir", expected="a directory path")
    known = {"members", "data_dir", "fsync", "snapshot_interval", "election_timeout_min", "election_timeout_max", "heartbeat_interval", "aeron_dir",
             "aeron_threading", "fsync_thread", "idle", "idle_max_park_us", "member_auth", "member_key_file", "authenticator",
             "credentials_file", "client_egress", "client_term_length_max", "service"}
    for k in doc:
        if k not in known:
            raise ConfigError("invalid cluster topology", file=path, key=k, expected="one of " + ",".join(sorted(known)))
    ints = {k: doc[k] for k in ("snapshot_interval", "election_timeout_min", "election_timeout_max", "heartbeat_interval") if k in doc}
    for k, v in ints.items():
        if not isinstance(v, int) or v < 0:
            raise ConfigError("invalid cluster topology", file=path, key=k, value=v, expected="non-negative integer")
    aeron_dir = doc.get("aeron_dir")
    if aeron_dir is not None and (not isinstance(aeron_dir, str) or not aeron_dir):
        raise ConfigError("invalid cluster topology", file=path, key="aeron_dir", value=aeron_dir, expected="a directory path")
    try:
        ipc = is_ipc(members)
    except ConfigError as exc:
        raise ConfigError(exc.what, file=path, **exc.fields) from None
    if ipc and aeron_dir is None:
        raise ConfigError("invalid cluster topology: ipc members share a running media driver", file=path, key="aeron_dir",
                          expected="the directory of that driver (tickline driver --dir DIR)")
    aeron_threading = doc.get("aeron_threading")
    if aeron_threading is not None and aeron_threading not in THREADING_MODES:
        raise ConfigError("invalid cluster topology", file=path, key="aeron_threading", value=aeron_threading,
                          expected="|".join(THREADING_MODES))
    fsync_thread = doc.get("fsync_thread")
    if fsync_thread is not None and not isinstance(fsync_thread, bool):
        raise ConfigError("invalid cluster topology", file=path, key="fsync_thread", value=fsync_thread, expected="true|false")
    idle, max_park = _idle_settings(doc, path, os.environ if env is None else env)
    service = doc.get("service", DEFAULT_SERVICE)
    try:
        load_object(service, key="service")
    except LoadError as exc:
        raise ConfigError("invalid cluster topology: the service does not load", file=path, key="service", value=service,
                          reason=str(exc)) from None
    security = _security_settings(doc, path)
    topo = Topology(members, str(doc["data_dir"]), FsyncPolicy.parse(doc.get("fsync", "always")), **ints, aeron_dir=aeron_dir,
                    aeron_threading=aeron_threading, fsync_thread=fsync_thread, idle=idle, idle_max_park_us=max_park,
                    service=service, source=path, **security)
    topo.consensus(next(iter(members)))  # validate timeouts now, not at start-up of a member
    try:
        topo.egress_policy()
    except ValueError as exc:
        raise ConfigError("invalid cluster topology", file=path, key="client_egress", reason=exc) from None
    return topo


def fsync_thread_enabled(configured: bool | None = None) -> bool:
    """Whether log fsyncs run on a native thread: ``TICKLINE_CLUSTER_FSYNC_THREAD``
    (``true``/``false``, also ``1``/``0``) when set, else ``configured`` (the
    topology file's ``fsync_thread``), else true."""
    env = os.environ.get("TICKLINE_CLUSTER_FSYNC_THREAD")
    if env is None:
        return True if configured is None else configured
    value = {"true": True, "1": True, "false": False, "0": False}.get(env.strip().lower())
    if value is None:
        raise ConfigError("invalid cluster config", key="TICKLINE_CLUSTER_FSYNC_THREAD", value=env, expected="true|false")
    return value


class NodeAgent:
    """Runs one member: ``do_work`` turns the embedded driver, polls Aeron and ticks the node."""

    def __init__(self, topology: Topology, member: int, clock: Callable[[], int] | None = None) -> None:
        self.topology = topology
        self.member = member
        self._clock = clock or (lambda: int(time.time() * 1000))
        self._now = 0
        self.node: ClusterNode | None = None
        self.gate: SessionGate | None = None
        self.stack: AeronStack | None = None
        self.io: AeronNodeIO | None = None
        self.stop_requested = False
        self.stopping_until: int | None = None
        self.errors = ErrorRing()  # what this member wrote to stderr lately (tickline cluster tool errors)
        self._shutdown_since: int | None = None  # when this member's shutdown snapshot was taken
        self.fsync_thread = topology.fsync is FsyncPolicy.ALWAYS and fsync_thread_enabled(topology.fsync_thread)
        # The member's heap grows by an Entry per log entry until a snapshot
        # compacts it, and a full collection of the cyclic GC walks all of it:
        # measured in `bench cluster`, stalls of 10-40 ms once a member held a
        # few hundred thousand entries, each delaying hundreds of orders.  The
        # member owns its process, so every GC_FREEZE_MS it freezes what
        # survived (gc.freeze moves it out of the collected generations, O(1)):
        # collections then walk only what was allocated since.  A frozen object
        # is still freed when its last reference goes; only a reference cycle
        # frozen while alive and dropped later is not reclaimed, and the
        # member's long-lived state (log entries, sessions, service state)
        # holds no cycles.
        self._gc_freeze_due = 0
        self.aeron_counters: ClusterCounters | None = None  # Aeron counters (counters.py)

    def role_name(self) -> str:
        return f"cluster-node-{self.member}"

    def now(self) -> int:
        self._now = max(self._now, self._clock())
        return self._now

    def on_start(self) -> None:
        t = self.topology
        ipc = is_ipc(t.members)
        # secrets first: a member that cannot authenticate does not join
        member_auth = MemberAuth(t.member_key())
        self.gate = SessionGate(load_authenticator(t.authenticator, t.credentials_file))
        self.stack = AeronStack(f"cluster-m{self.member}", t.aeron_dir, invoker=ipc or threading_mode(t.aeron_threading) == "invoker", shared=ipc)
        try:
            self.io = AeronNodeIO(self.stack, t.members, self.member, member_auth=member_auth, egress_policy=t.egress_policy())
            # fsync on a native thread: the duty cycle (and the driver it turns) goes on meanwhile
            disk = OsDisk(os.path.join(t.data_dir, f"member-{self.member}"), preallocate=PREALLOCATE_BYTES,
                          sync_thread=self.fsync_thread)
            cfg = NodeConfig(t.consensus(self.member), fsync=t.fsync, snapshot_interval=t.snapshot_interval)
            self.node = ClusterNode(cfg, disk, load_object(t.service)(t.source), self.io, random.Random(), now=self.now())
            self.node.on_action = self._on_action
            self.aeron_counters = ClusterCounters.start(self, self.stack.aeron)
        except BaseException:
            self.on_close()
            raise

    def _on_message(self, msg: object) -> None:
        node = self.node
        assert node is not None and self.io is not None and self.gate is not None
        if isinstance(msg, _MEMBER_MESSAGES):
            # the I/O shell passed only tagged messages from another configured member; one not for
            # this member is counted and logged by the node (fault=peer)
            node.on_member_message(msg, defer=True)
        elif isinstance(msg, _INGRESS):
            node.on_ingress(msg, defer=True)
        elif isinstance(msg, (SessionConnect, ChallengeResponse)):
            if node.core.role is not Role.LEADER:
                # not authenticated here: the leader does it, this member redirects
                node.on_ingress(SessionConnect(msg.client_id, msg.session_id), defer=True)
                return
            now = self.now()
            opened, answer = self.gate.on_connect(msg, now) if isinstance(msg, SessionConnect) else self.gate.on_challenge_response(msg, now)
            if opened is not None:
                node.on_ingress(opened, defer=True)
            elif answer is not None:
                self.io.send_egress(msg.client_id, answer)
        elif isinstance(msg, wire.AdminRequest):
            self._on_admin(msg)
        elif isinstance(msg, wire.StatusRequest):
            refused = msg.action != 0 and not self.gate.is_admin(msg.credentials)
            if refused:
                log.warning("admin request refused %s", kv(member=self.member, client=msg.client_id, action=msg.action,
                                                            reason="no_admin_credential", fault="client"))
            elif msg.action == 1:
                node.take_snapshot()
            elif msg.action == 2:
                node.shutdown()
            c = node.core
            s = self.io.stats
            self.io.send_egress(msg.client_id, wire.StatusResponse(
                self.member, c.role.value, c.term, -1 if c.leader is None else c.leader, c.last_position(),
                c.commit_position, c.applied_position, c.base_position, s.dropped, s.unauthenticated, s.bad_channel, refused))

    @property
    def data_dir(self) -> str:
        return os.path.join(self.topology.data_dir, f"member-{self.member}")

    def _on_admin(self, msg: wire.AdminRequest) -> None:
        """An operator's request (``tickline cluster tool``): DESCRIBE is open to anyone, as
        status is; every other action needs the admin credential."""
        node, io, gate = self.node, self.io, self.gate
        assert node is not None and io is not None and gate is not None
        leader = node.core.leader
        if msg.action == wire.ClusterAction.DESCRIBE:
            io.send_egress(msg.client_id, answer(self.member, msg, wire.AdminCode.OK, leader,
                                                 describe(node, self.member, self.data_dir, self.errors, io.stats)))
            return
        if not gate.is_admin(msg.credentials):
            print(f"error: admin request refused: member={self.member} client={msg.client_id} action={msg.action} "
                  f"reason=no_admin_credential fault=client", file=sys.stderr, flush=True)
            io.send_egress(msg.client_id, answer(self.member, msg, wire.AdminCode.REFUSED, leader, {"error": "an admin credential is needed"}))
            return
        if msg.action == wire.ClusterAction.ERRORS:
            io.send_egress(msg.client_id, answer(self.member, msg, wire.AdminCode.OK, leader, self.errors.to_json()))
        elif msg.action in (ACTION_SUSPEND, ACTION_RESUME, ACTION_SHUTDOWN):
            try:
                entry = node.propose_action(msg.action, msg.client_id, msg.request_id)
            except NotLeaderError:
                io.send_egress(msg.client_id, answer(self.member, msg, wire.AdminCode.NOT_LEADER, node.core.leader,
                                                     {"error": "a cluster action goes to the leader"}))
                return
            print(f"member={self.member} action={wire.ClusterAction(msg.action).name.lower()} appended position={entry.position} "
                  f"client={msg.client_id}", flush=True)
            if msg.action == ACTION_SHUTDOWN:  # the leader says where; every member answers again once stopped
                io.send_egress(msg.client_id, answer(self.member, msg, wire.AdminCode.OK, self.member,
                                                     {"appended": entry.position, "position": entry.end, "term": entry.term}))
        else:
            io.send_egress(msg.client_id, answer(self.member, msg, wire.AdminCode.ERROR, leader,
                                                 {"error": "unknown action", "action": msg.action}))

    def _on_action(self, node: ClusterNode, action: int, client_id: int, request_id: int, position: int) -> None:
        """A cluster action applied (every member, at the same log position)."""
        name = {ACTION_SUSPEND: "suspended", ACTION_RESUME: "resumed", ACTION_SHUTDOWN: "shutdown"}.get(action, str(action))
        print(f"member={self.member} {name} position={position}", flush=True)
        if action in (ACTION_SUSPEND, ACTION_RESUME) and node.core.role is Role.LEADER and self.io is not None:
            req = wire.AdminRequest(client_id, request_id, action)
            self.io.send_egress(client_id, answer(self.member, req, wire.AdminCode.OK, self.member,
                                                  {"position": position, "suspended": node.container.suspended}))

    def _check_shutdown(self, now: int) -> None:
        """Once this member's shutdown snapshot is taken: tell the operator, then stop
        (``done``) after lingering long enough for the others to learn the commit."""
        node = self.node
        assert node is not None and self.io is not None
        if node.terminated is None or self._shutdown_since is not None:
            return
        self._shutdown_since = now
        print(f"member={self.member} shutdown snapshot={node.terminated} position={node.terminate_at} exit=0", flush=True)
        if node.shutdown_requester is not None:
            client_id, rid = node.shutdown_requester
            req = wire.AdminRequest(client_id, rid, ACTION_SHUTDOWN)
            self.io.send_egress(client_id, answer(self.member, req, wire.AdminCode.OK, node.core.leader,
                                                  {"snapshot": node.terminated, "position": node.terminate_at, "stopped": True}))

    def _shutdown_done(self, now: int) -> bool:
        """After the shutdown snapshot: a follower lingers three heartbeats (its acknowledgement
        goes out); the leader until every follower holds the shutdown entry and three heartbeats
        (carrying its commit) have gone, or an election timeout if one never does."""
        node = self.node
        assert node is not None
        since = self._shutdown_since
        if since is None:
            return False
        t = self.topology
        linger = since + 3 * t.heartbeat_interval
        if node.core.role is not Role.LEADER:
            return now >= linger
        match = node.core.match_positions()
        followers_have_it = all(p >= (node.terminate_at or 0) for p in match.values())
        return (followers_have_it and now >= linger) or now >= since + t.election_timeout_max

    def do_work(self) -> int:
        assert self.stack is not None and self.io is not None and self.node is not None
        # The driver's own work count is not returned: it is rarely zero (timers,
        # status messages), and on a host with fewer cores than busy processes a
        # member that never idles takes CPU from the one that has messages to
        # handle.  Messages received or sent are the work that keeps it spinning.
        self.stack.do_work()
        # one Ready (one fsync) for everything this duty cycle received: group commit
        work = self.io.poll(self._on_message)
        if self.stop_requested:
            self.begin_shutdown()
        now = self.now()
        self.node.tick(now)
        if self.node.terminated is not None:
            self._check_shutdown(now)
        work += self.io.flush()
        if self.aeron_counters is not None:
            self.aeron_counters.maybe_update()
        if now >= self._gc_freeze_due:
            gc.freeze()
            self._gc_freeze_due = now + GC_FREEZE_MS
        if not self.io.polled_since_turn:
            work += 1  # a kick may have received what this cycle's poll missed: poll before idling
        return work

    def begin_shutdown(self) -> None:
        """Clean shutdown: hand leadership over, then stop within one election timeout."""
        if self.stopping_until is None and self.node is not None:
            target = self.node.shutdown()
            log.info("stopping %s", kv(member=self.member, transfer_to=target))
            self.stopping_until = self.now() + self.topology.election_timeout_min

    def done(self) -> bool:
        if self._shutdown_since is not None and self._shutdown_done(self.now()):
            return True
        return self.stopping_until is not None and (self.node is None or self.node.core.role is not Role.LEADER or self.now() >= self.stopping_until)

    def on_close(self) -> None:
        if self.aeron_counters is not None:
            self.aeron_counters.close()
            self.aeron_counters = None
        if self.node is not None:
            self.node.close()  # what waits for a sync in flight still goes out
        if self.io is not None:
            s = self.io.stats
            log.info("closing %s", kv(member=self.member, sent=s.sent, received=s.received, not_connected=s.not_connected,
                                      back_pressured=s.back_pressured, too_large=s.too_large, malformed=s.malformed,
                                      unknown_client=s.unknown_client, unauthenticated=s.unauthenticated,
                                      bad_channel=s.bad_channel, sessions_rejected=self.gate.rejected if self.gate else 0))
            self.io = None
        if self.stack is not None:
            self.stack.close()
            self.stack = None


def run(topology: Topology, member: int) -> int:
    """Run a member on the calling thread until SIGTERM/SIGINT (then shut down cleanly)."""
    agent = NodeAgent(topology, member)

    def request_stop(*_: object) -> None:
        # only a flag: the handler may run inside a fragment handler, mid-step
        agent.stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    idle = topology.idle_strategy()
    stderr = sys.stderr
    sys.stderr = ErrorTee(stderr, agent.errors)  # every error line also goes to the ring
    try:
        agent.on_start()
    except BaseException:
        sys.stderr = stderr
        raise
    try:
        node = agent.node
        assert node is not None and agent.stack is not None
        r = node.recovery
        idle_name = topology.idle + (f"/{topology.idle_max_park_us}us" if topology.idle == "backoff" else "")
        log.info("started %s", kv(member=member, transport="aeron-ipc" if agent.stack.shared else "aeron-udp",
                                  aeron_dir=agent.stack.dir, aeron_threading="invoker" if agent.stack.invoker else "threaded",
                                  fsync=topology.fsync.value, fsync_thread=str(agent.fsync_thread).lower(), idle=idle_name,
                                  log_start=r.first_position, log_end=r.end_position, truncated_at=r.truncated_at,
                                  reason=r.reason, snapshot=node.core.base_position, term=node.core.term))
        if r.damaged:  # not a torn tail: what was lost is named, and the member votes only once caught up
            log.warning("damaged log %s %s", kv(member=member), r.describe())
        while not agent.done():
            idle.idle(agent.do_work())
    finally:
        try:
            agent.on_close()
        finally:
            sys.stderr = stderr
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tickline.cluster.daemon")
    p.add_argument("--config", required=True)
    p.add_argument("--member", type=int, required=True)
    add_log_arguments(p)
    args = p.parse_args(argv)
    if not start_daemon(args, "tickline cluster node"):
        return 2
    try:
        topo = load_topology(args.config)
        if args.member not in topo.members:
            raise ConfigError("member not in topology", file=args.config, member=args.member, members=",".join(map(str, sorted(topo.members))))
        return run(topo, args.member)
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
