"""The cluster over Aeron: the node's I/O boundary, the client link and the
media driver under them.

Two transports, chosen by the topology's member endpoints:

- **UDP** (``host:port``; members on one host or several): each process
  embeds its own media driver, see below.
- **IPC** (every endpoint ``ipc``; all members and clients on one host): they
  share one media driver that runs on its own (``tickline driver``,
  ``aeronmd``), whose directory is the topology's ``aeron_dir``, and talk
  through its shared-memory logs: no datagram, system call or driver turn on
  the data path (stream ids below).

UDP streams (Aeron UDP unicast; a member's endpoint is its ``host:port`` in
the topology file):

- consensus, stream 100: one exclusive publication per peer, to the peer's
  endpoint; one subscription per member on its own endpoint;
- ingress, stream 101: clients (and the operator tool) publish to a member's
  endpoint; the member subscribes on the same endpoint;
- egress, stream 102: each client subscribes on an endpoint of its own and
  tells members where it is with an :class:`~.wire.EgressChannel` message on
  ingress, ahead of its requests (and again periodically, so a restarted
  member learns it too); the member keeps one egress publication per client
  channel.  A client's channel is checked first (:class:`EgressPolicy`): only
  ``udp`` with ``endpoint``, ``term-length`` and ``mtu`` (or ``ipc`` with
  ``term-length``), an endpoint the topology allows (``client_egress``) and a
  term length within its bound (``client_term_length_max``).

The consensus stream carries only consensus messages, each sealed with the
cluster key's HMAC (:class:`~.auth.MemberAuth`); the ingress stream carries
only client and operator messages.  What arrives on the wrong stream, without
a valid tag, or from a member id not in the topology is dropped and counted
(``unauthenticated``), never stepped.

IPC streams, all on channel ``aeron:ipc``: consensus to member N on stream
``IPC_CONSENSUS_BASE + N``, ingress to member N on ``IPC_INGRESS_BASE + N``,
egress to a client on a stream id the client draws at random from
``[IPC_EGRESS_MIN, 2**31)`` and announces in its EgressChannel message.

Aeron delivers in order, reliably and with flow control, and reassembles
messages up to the publication's ``max_message_length`` (term length / 8):
4 MiB consensus terms carry messages up to 512 KiB: append batches (64 KiB)
and snapshot chunks (256 KiB; a snapshot of any size goes to a lagging member
as many of them, see ``InstallSnapshot``).  A larger message is not sent: it
is counted under ``too_large`` and reported on stderr with its size, because
it means our configuration (term length vs. batch or chunk size) is wrong,
not the peer.  ``NOT_CONNECTED`` and
``BACK_PRESSURED`` never block the duty cycle: the message is dropped and
counted (Raft retries appends and elections; clients retry requests).

Over UDP each process embeds its own media driver in invoker mode and turns it, and
the client conductor, from its own duty cycle (:meth:`AeronStack.do_work`):
on a 2-core host a driver thread per process would only compete with the
node's Python thread for the cores (measured with ``tickline bench cluster``:
threaded mode, ``aeron_threading = "threaded"`` in the topology file or
``TICKLINE_CLUSTER_AERON_THREADING=threaded``, had 10x the
3-member p99 at 1,000 orders/s).  The driver directory is unique per process
and removed on close.  Over IPC each process runs only an invoker-mode
client conductor on the shared driver, turned the same way.

Not thread-safe: one duty cycle owns each object here.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import tempfile
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from tickline.transport import Aeron, FragmentAssembler, MediaDriver, OfferResult, Publication
from tickline.transport.driver import driver_pid_if_active
from tickline.transport.uri import ChannelError, ChannelUri, free_ports, parse_size

from tickline.logs import quote

from . import wire
from .auth import MemberAuth
from .client import ClusterClient
from .errors import ConfigError, RemoteProtocolError
from .protocol import EventCode, SessionEvent
from .messages import AppendRequest, AppendResponse, InstallSnapshot, InstallSnapshotResponse, RequestVote, TimeoutNow, VoteResponse

log = logging.getLogger("tickline.cluster")

__all__ = [
    "CONSENSUS_STREAM", "INGRESS_STREAM", "EGRESS_STREAM", "THREADING_MODES", "threading_mode", "AeronStack", "AeronNodeIO", "IoStats",
    "ClusterLink", "AeronClusterClient", "query_status", "EgressPolicy", "EgressRefused",
]

CONSENSUS_STREAM = 100
INGRESS_STREAM = 101
EGRESS_STREAM = 102
CONSENSUS_TERM_LENGTH = 4 * 1024 * 1024  # max message 512 KiB
CLIENT_TERM_LENGTH = 1024 * 1024  # max message 128 KiB
POLL_LIMIT = 256
DRIVER_TURNS = 16
#: how often a client repeats its EgressChannel to each member it sends to (ms)
BIND_INTERVAL_MS = 200
#: egress held for a client whose new egress publication is not connected yet
PENDING_EGRESS_LIMIT = 1024
PENDING_EGRESS_MS = 2000
MAX_CLIENT_CHANNELS = 256

DRIVER_OPTIONS = {
    # a member killed with -9 is noticed (its peers' publications go NOT_CONNECTED) in 2 s, not 5
    "aeron.publication.connection.timeout": "2000000000",
    # Driver and client live in one process and are turned by the same duty
    # cycle, so they stall together (a long fsync, a paused test loop): with
    # the default 10 s the driver would declare its own client dead on the
    # first turn after such a stall.  (Unblock must exceed client liveness.)
    "aeron.client.liveness.timeout": str(60 * 10**9),
    "aeron.publication.unblock.timeout": str(70 * 10**9),
}
CLIENT_DRIVER_TIMEOUT_S = 60.0
#: Over IPC a member killed with -9 leaves its subscriptions in the shared driver
#: until the driver's client liveness timeout (10 s), and a tethered subscription
#: that no longer reads holds every publication into its stream back once a
#: window (half a term) is ahead of it: the member restarted in its place, and so
#: the cluster's writes, stalled for seconds (issue 13, item 9).  So members
#: subscribe untethered (``tether=false``), and the publications into a member
#: (peers' consensus, clients' ingress) let an untethered subscriber that has
#: fallen 3/4 of a window behind go after IPC_UNTETHERED_WINDOW_MS, keep it
#: lingering IPC_UNTETHERED_LINGER_MS, then rest it for IPC_UNTETHERED_RESTING_MS
#: before it rejoins at the current position.  A stall then lasts about window
#: + linger (0.5 s) per window of traffic, however long the driver keeps the
#: dead client.  The trade-off: a live member whose duty cycle stalls while 3/4
#: of a window (1.5 MiB of consensus, 384 KiB of ingress) waits for it, for
#: longer than those 250 ms, loses that backlog and rejoins about 1.5 s later;
#: Raft resends what a follower lacks and clients retry, so nothing committed
#: is lost, only time.  The client liveness timeout stays at 10 s: a shorter one
#: would declare a member dead (and end it) after any stall that long.
IPC_UNTETHERED_WINDOW_MS = 250
IPC_UNTETHERED_LINGER_MS = 250
IPC_UNTETHERED_RESTING_MS = 1000
IPC_TIMER_INTERVAL_MS = 100  # the shared driver's aeron.timer.interval (SHARED_DRIVER_OPTIONS)
#: how the benchmark and tests run the shared driver of ipc members (``tickline driver -D NAME=VALUE``):
#: one thread for conductor, sender and receiver (only the conductor has work over IPC), and Aeron's
#: default client liveness, 10 s.  A member killed with -9 keeps its subscriptions until the
#: driver times its client out, but untethered they hold nothing back for long (above); a
#: member stalled longer than that (an fsync, a pause) is declared dead and must be restarted.
SHARED_DRIVER_OPTIONS = {
    "aeron.threading.mode": "SHARED",
    # the conductor checks untethered subscriptions (see IPC_UNTETHERED_WINDOW_MS) on this timer:
    # Aeron's default, 1 s, would make each of those steps take up to a second
    "aeron.timer.interval": str(IPC_TIMER_INTERVAL_MS * 10**6),
    "aeron.client.liveness.timeout": str(10 * 10**9),
    "aeron.publication.connection.timeout": DRIVER_OPTIONS["aeron.publication.connection.timeout"],
}
#: a member endpoint of ``ipc`` in the topology: reached through the shared driver's IPC streams
IPC_ENDPOINT = ("ipc", 0)
IPC_CONSENSUS_BASE = 10_000_000
IPC_INGRESS_BASE = 20_000_000
IPC_EGRESS_MIN = 100_000_000
#: member ids stay below this over IPC, so the consensus and ingress stream ids do not overlap
IPC_MAX_MEMBER_ID = 1_000_000
#: what may arrive on each stream (anything else there is dropped and counted)
MEMBER_MESSAGES = (RequestVote, VoteResponse, AppendRequest, AppendResponse, InstallSnapshot, InstallSnapshotResponse, TimeoutNow)
#: the keys a client's egress channel may have, by media; anything else is refused
EGRESS_KEYS = {"udp": frozenset({"endpoint", "term-length", "mtu"}), "ipc": frozenset({"term-length"})}


class EgressRefused(ValueError):
    """A client's egress channel the member will not publish to.  ``answerable``:
    its endpoint is allowed, so the refusal can be told on it (with safe settings)."""

    def __init__(self, reason: str, answer_channel: str | None = None) -> None:
        super().__init__(reason)
        self.answer_channel = answer_channel


@dataclass(frozen=True)
class EgressPolicy:
    """Where a member may publish a client's egress (the topology's
    ``client_egress`` and ``client_term_length_max``).

    ``endpoints``: ``(host, lowest port, highest port)``, the host compared
    as written (no name lookup); ``ipc``: the members talk IPC, so egress is
    ``aeron:ipc`` only.  A channel without ``term-length`` gets
    ``CLIENT_TERM_LENGTH``.  The member holds at most ``MAX_CLIENT_CHANNELS``
    egress publications, so egress log buffers stay under
    ``MAX_CLIENT_CHANNELS x 3 x max_term_length``."""

    endpoints: tuple[tuple[str, int, int], ...] = ()
    ipc: bool = False
    max_term_length: int = CLIENT_TERM_LENGTH

    @classmethod
    def parse(cls, entries: list[str] | tuple[str, ...], *, ipc: bool, max_term_length: int = CLIENT_TERM_LENGTH) -> "EgressPolicy":
        """``entries``: ``host:port``, ``host:low-high`` or ``host:*``; raises ValueError naming a bad one."""
        out = []
        for e in entries:
            host, sep, ports = str(e).rpartition(":")
            lo_s, dash, hi_s = ports.partition("-")
            if not sep or not host:
                raise ValueError(f"not host:port, host:low-high or host:*: {e!r}")
            if ports == "*":
                lo, hi = 1, 65535
            elif lo_s.isdigit() and (hi_s.isdigit() if dash else True):
                lo, hi = int(lo_s), int(hi_s) if dash else int(lo_s)
            else:
                raise ValueError(f"not host:port, host:low-high or host:*: {e!r}")
            if not 1 <= lo <= hi <= 65535:
                raise ValueError(f"port range outside 1..65535 or reversed: {e!r}")
            out.append((host, lo, hi))
        if not 64 * 1024 <= max_term_length <= 1024**3 or max_term_length & (max_term_length - 1):
            raise ValueError(f"term length bound not a power of two in 64k..1g: {max_term_length}")
        return cls(tuple(out), ipc, max_term_length)

    @classmethod
    def for_members(cls, members: dict[int, tuple[str, int]], max_term_length: int = CLIENT_TERM_LENGTH) -> "EgressPolicy":
        """The default: clients on the members' hosts, any port (or IPC)."""
        if is_ipc(members):
            return cls((), True, max_term_length)
        return cls(tuple(sorted({(h, 1, 65535) for h, _ in members.values()})), False, max_term_length)

    def check(self, channel: str) -> str:
        """The channel to publish the client's egress on (``term-length`` set), or
        :class:`EgressRefused` saying why not."""
        try:
            uri = ChannelUri.parse(channel)
        except ChannelError as exc:
            raise EgressRefused(f"malformed channel: {exc}") from None
        if (uri.media == "ipc") != self.ipc:
            raise EgressRefused(f"this member's egress goes over {'ipc' if self.ipc else 'udp'} only")
        answer = None
        if uri.media == "udp":
            endpoint = uri.get("endpoint")
            if endpoint is None:
                raise EgressRefused("udp egress needs endpoint=host:port")
            host, _, port_s = endpoint.rpartition(":")
            port = int(port_s) if port_s.isdigit() else -1
            if not any(h == host and lo <= port <= hi for h, lo, hi in self.endpoints):
                # no answer: publishing to an endpoint the topology does not list is what is refused
                raise EgressRefused(f"endpoint not allowed by client_egress: endpoint={endpoint}")
            answer = str(ChannelUri("udp", {"endpoint": endpoint, "term-length": str(CLIENT_TERM_LENGTH)}))
        else:
            answer = str(ChannelUri("ipc", {"term-length": str(CLIENT_TERM_LENGTH)}))
        extra = sorted(set(uri.params) - EGRESS_KEYS[uri.media])
        if extra:
            raise EgressRefused(f"channel keys not allowed: keys={','.join(extra)} allowed={','.join(sorted(EGRESS_KEYS[uri.media]))}", answer)
        term = uri.get("term-length")
        term_length = parse_size(term) if term is not None else CLIENT_TERM_LENGTH
        if term_length > self.max_term_length:
            raise EgressRefused(f"term length above client_term_length_max: term-length={term} max={self.max_term_length}", answer)
        params = dict(uri.params)
        params["term-length"] = str(term_length)
        return str(ChannelUri(uri.media, params))


def is_ipc(members: dict[int, tuple[str, int]]) -> bool:
    """True if the members are reached over IPC (every endpoint ``ipc``), False
    for UDP (none is); a mix is a ConfigError."""
    ipc = [m for m, ep in members.items() if ep == IPC_ENDPOINT]
    if ipc and len(ipc) != len(members):
        raise ConfigError("invalid cluster topology: members mix ipc and host:port endpoints", ipc=",".join(map(str, sorted(ipc))),
                          expected="every member ipc (one host, one shared media driver) or every member host:port")
    for m in ipc:
        if not 0 <= m < IPC_MAX_MEMBER_ID:
            raise ConfigError("invalid cluster topology: member id out of range for ipc", member=m, expected=f"0..{IPC_MAX_MEMBER_ID - 1}")
    return bool(ipc)


def default_aeron_base() -> str:
    return "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()


def udp_channel(host: str, port: int, term_length: int | None = None) -> str:
    ch = f"aeron:udp?endpoint={host}:{port}"
    return ch + f"|term-length={term_length}" if term_length else ch


def ipc_channel(term_length: int | None = None) -> str:
    return f"aeron:ipc?term-length={term_length}" if term_length else "aeron:ipc"


def ipc_member_subscription() -> str:
    """A member's IPC subscription: untethered (see IPC_UNTETHERED_WINDOW_MS)."""
    return "aeron:ipc?tether=false"


def ipc_into_member(term_length: int) -> str:
    """A publication into a member's IPC stream: lets a dead member's untethered
    subscription go (see IPC_UNTETHERED_WINDOW_MS)."""
    return (f"aeron:ipc?term-length={term_length}|untethered-window-limit-timeout={IPC_UNTETHERED_WINDOW_MS}ms"
            f"|untethered-linger-timeout={IPC_UNTETHERED_LINGER_MS}ms|untethered-resting-timeout={IPC_UNTETHERED_RESTING_MS}ms")


THREADING_MODES = ("invoker", "threaded")


def threading_mode(configured: str | None = None) -> str:
    """The Aeron threading mode: ``TICKLINE_CLUSTER_AERON_THREADING`` when set
    (so one member can be switched for an experiment), else ``configured``
    (the topology file's ``aeron_threading``), else ``invoker``."""
    env = os.environ.get("TICKLINE_CLUSTER_AERON_THREADING")
    mode = env if env is not None else configured or "invoker"
    if mode not in THREADING_MODES:
        key = "TICKLINE_CLUSTER_AERON_THREADING" if env is not None else "aeron_threading"
        raise ConfigError("invalid cluster config", key=key, value=mode, expected="|".join(THREADING_MODES))
    return mode


class AeronStack:
    """An embedded invoker-mode media driver plus an invoker-mode client on it;
    or, with ``shared=True``, only an invoker-mode client on the running media
    driver whose directory is ``base``.

    ``base``: the directory under which the driver's own directory is made
    (``/dev/shm`` by default); ``name`` goes into that directory's name.
    """

    def __init__(self, name: str, base: str | None = None, *, invoker: bool | None = None, shared: bool = False) -> None:
        self.shared = shared
        self.driver: MediaDriver | None = None
        if shared:
            if not base:
                raise ConfigError("ipc members share a running media driver: give its directory", key="aeron_dir")
            self.invoker = True
            self.dir = base
            if driver_pid_if_active(base) is None:
                raise ConfigError("no running media driver in aeron_dir: ipc members and their clients share one "
                                  "(start it with `tickline driver --dir DIR`)", aeron_dir=base)
            try:
                self.aeron = Aeron(base, invoker=True, timeout=CLIENT_DRIVER_TIMEOUT_S)
            except Exception as exc:
                raise ConfigError("cannot connect to the shared media driver (start it with `tickline driver --dir DIR`)",
                                  aeron_dir=base, reason=exc) from None
            self._turn = self.aeron.duty_cycle()
            return
        base = base or default_aeron_base()
        os.makedirs(base, exist_ok=True)
        if invoker is None:
            invoker = threading_mode() == "invoker"
        self.invoker = invoker
        self.dir = os.path.join(base, f"tickline-{name}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        self.driver = MediaDriver.embedded(self.dir, invoker=invoker, options=DRIVER_OPTIONS)
        try:
            self.aeron = (Aeron(self.dir, invoker=True, wait_hook=self.driver.do_work, timeout=CLIENT_DRIVER_TIMEOUT_S) if invoker
                          else Aeron(self.dir, timeout=CLIENT_DRIVER_TIMEOUT_S))
            # one call into C turns the driver, then the client conductor
            self._turn = self.aeron.duty_cycle(self.driver) if invoker else None
        except BaseException:
            self.driver.close()
            shutil.rmtree(self.dir, ignore_errors=True)
            raise

    def do_work(self) -> int:
        """Turn driver and client until they run dry (bounded): one driver cycle
        sends only a few datagrams per publication and reads only a few, and a
        node's duty cycle (fsync included) is long, so one turn per cycle would
        cap the cluster at a few datagrams per fsync."""
        if not self.invoker:
            return 0
        turn = self._turn
        assert turn is not None
        work = turn()
        if work == 0:  # (nearly every call of an idle client or member: no loop to set up)
            return 0
        for _ in range(DRIVER_TURNS - 1):
            n = turn()
            if n == 0:
                break
            work += n
        return work

    def close(self) -> None:
        try:
            self.aeron.close()
        finally:
            if self.driver is not None:  # never the shared driver, nor its directory
                self.driver.close()
                shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class IoStats:
    """Counts of what the I/O shell sent, received and dropped (never blocking)."""

    sent: int = 0
    received: int = 0
    not_connected: int = 0
    back_pressured: int = 0
    too_large: int = 0
    malformed: int = 0
    unknown_client: int = 0
    bad_channel: int = 0
    unauthenticated: int = 0  # consensus messages with a bad or missing tag, from a non-member, or on the wrong stream

    @property
    def dropped(self) -> int:
        return self.not_connected + self.back_pressured + self.too_large + self.unknown_client


def _offer(pub: Publication, data: bytes, stats: IoStats, what: str) -> bool:
    """Offer without blocking; count and drop what cannot go now."""
    if len(data) > pub.max_message_length:
        stats.too_large += 1
        if stats.too_large % 100 == 1:
            log.error("message larger than the stream's max_message_length, not sent: to=%s length=%d "
                      "max_message_length=%d channel=%s fault=ours count=%d (raise the term length)", what, len(data),
                      pub.max_message_length, quote(pub.channel), stats.too_large)
        return False
    for _ in range(2):  # ADMIN_ACTION (term rotation) succeeds on an immediate retry
        r = pub.offer(data)
        if r > 0:
            stats.sent += 1
            return True
        if r != OfferResult.ADMIN_ACTION:
            break
    if r == OfferResult.BACK_PRESSURED:
        stats.back_pressured += 1
    else:
        stats.not_connected += 1
    return False


@dataclass
class _Egress:
    pub: Publication
    created: float
    pending: deque[bytes] = field(default_factory=deque)  # waiting for the publication to connect
    batch: list[bytes] = field(default_factory=list)  # this duty cycle's egress, offered by flush()
    connected: bool = False
    limit: int = 0  # pub.max_message_length, read once: the property costs ~0.1 us, once per order

    def __post_init__(self) -> None:
        self.limit = self.pub.max_message_length


class AeronNodeIO:
    """:class:`~tickline.cluster.node.NodeIO` for member ``member`` of ``topology`` over ``stack``.

    :meth:`poll` reads consensus and ingress and hands each decoded message to
    ``handler``; :meth:`flush` sends egress held for clients whose egress
    publication was still connecting.
    """

    def __init__(self, stack: AeronStack, members: dict[int, tuple[str, int]], member: int, *,
                 member_auth: MemberAuth | None = None, egress_policy: EgressPolicy | None = None) -> None:
        """``member_auth``: seals and checks consensus messages (None: no tags, a
        trusted network); ``egress_policy``: where clients' egress may go (None:
        :meth:`EgressPolicy.for_members`)."""
        self.stack = stack
        self.member = member
        self.members = frozenset(members)
        self.auth = member_auth or MemberAuth(None)
        self.egress_policy = egress_policy or EgressPolicy.for_members(members)
        self.stats = IoStats()
        aeron = stack.aeron
        self.ipc = is_ipc(members)
        if self.ipc:
            if not stack.shared:
                raise ConfigError("ipc members need a stack on the shared media driver (AeronStack(shared=True))", member=member)
            self.consensus_sub = aeron.add_subscription(ipc_member_subscription(), IPC_CONSENSUS_BASE + member)
            self.ingress_sub = aeron.add_subscription(ipc_member_subscription(), IPC_INGRESS_BASE + member)
            self.peers = {m: aeron.add_exclusive_publication(ipc_into_member(CONSENSUS_TERM_LENGTH), IPC_CONSENSUS_BASE + m)
                          for m in members if m != member}
        else:
            host, port = members[member]
            self.consensus_sub = aeron.add_subscription(udp_channel(host, port), CONSENSUS_STREAM)
            self.ingress_sub = aeron.add_subscription(udp_channel(host, port), INGRESS_STREAM)
            self.peers = {m: aeron.add_exclusive_publication(udp_channel(h, p, CONSENSUS_TERM_LENGTH), CONSENSUS_STREAM)
                          for m, (h, p) in members.items() if m != member}
        self.clients: dict[int, tuple[str, int]] = {}  # client id -> its egress (channel, stream id)
        self.egress: dict[tuple[str, int], _Egress] = {}
        self._handler: Callable[[object], None] = lambda m: None
        self._to_flush: list[_Egress] = []
        self._waiting: dict[tuple[str, int], _Egress] = {}  # channels whose egress waits for the publication to connect
        self._refused_logged: set[tuple[str, int]] = set()
        self._consensus = FragmentAssembler(self._on_consensus)
        self._ingress = FragmentAssembler(self._on_ingress)
        self.polled_since_turn = True  # False after kick() until the next poll()

    # -- NodeIO
    def send(self, member: int, message: object) -> None:
        pub = self.peers.get(member)
        if pub is None:
            self.stats.not_connected += 1
            return
        _offer(pub, self.auth.seal(wire.encode(message)), self.stats, f"member-{member}")

    def send_egress(self, client_id: int, message: object) -> None:
        key = self.clients.get(client_id)
        if key is None:
            self.stats.unknown_client += 1
            return
        e = self.egress[key]
        data = wire.encode(message)
        if len(data) > e.limit:
            _offer(e.pub, data, self.stats, f"client-{client_id}")  # counts and reports it
            return
        if e.connected:
            # held until flush(): a duty cycle's egress to one client goes out in one offer_batch call
            e.batch.append(data)
            if len(e.batch) == 1:
                self._to_flush.append(e)
            return
        if e.pub.is_connected:
            e.connected = True
            e.batch.append(data)
            self._to_flush.append(e)
        elif len(e.pending) < PENDING_EGRESS_LIMIT and time.monotonic() - e.created < PENDING_EGRESS_MS / 1000:
            e.pending.append(data)
            self._waiting[key] = e
        else:
            self.stats.not_connected += 1

    def kick(self) -> None:
        """Offer the egress held so far and turn the embedded driver once, so
        what was just offered leaves now (the node calls this before an fsync)."""
        if self._to_flush:
            self.flush()
        turn = self.stack._turn
        if turn is not None and not self.stack.shared:  # over IPC an offer is in the subscriber's log already
            turn()
            # That turn may have read datagrams into the subscriptions' images
            # after this cycle's poll: the owner must poll again before it
            # idles, or a received message waits out a whole park.
            self.polled_since_turn = False

    # -- the duty cycle
    def poll(self, handler: Callable[[object], None], limit: int = POLL_LIMIT) -> int:
        self._handler = handler
        self.polled_since_turn = True
        return int(self.consensus_sub.poll(self._consensus, limit)) + int(self.ingress_sub.poll(self._ingress, limit))

    def flush(self) -> int:
        """Offer the egress held this duty cycle (one ``offer_batch`` per client
        channel) and what waited for a client's egress publication to connect."""
        work = 0
        if self._to_flush:
            to_flush, self._to_flush = self._to_flush, []
            for e in to_flush:
                batch, e.batch = e.batch, []
                if e.pending:  # older egress still waiting: keep the order
                    e.pending.extend(batch)
                    continue
                n = e.pub.offer_batch(batch)
                self.stats.sent += n
                work += n
                # refused: ADMIN_ACTION succeeds on a retry; anything else drops it, as _offer does
                for data in batch[n:]:
                    if _offer(e.pub, data, self.stats, e.pub.channel):
                        work += 1
                    else:
                        e.connected = e.pub.is_connected
        if self._waiting:  # only the channels holding egress from before they connected
            for key, e in list(self._waiting.items()):
                if e.pub.is_connected:
                    while e.pending and _offer(e.pub, e.pending[0], self.stats, e.pub.channel):
                        e.pending.popleft()
                        work += 1
                elif time.monotonic() - e.created >= PENDING_EGRESS_MS / 1000:
                    self.stats.not_connected += len(e.pending)
                    e.pending.clear()
                if not e.pending:
                    del self._waiting[key]
        return work

    def _decode(self, buffer: memoryview) -> object | None:
        try:
            return wire.decode(buffer)
        except RemoteProtocolError as exc:
            self.stats.malformed += 1
            if self.stats.malformed % 100 == 1:
                log.error("%s member=%d count=%d", exc, self.member, self.stats.malformed)
            return None

    def _unauthenticated(self, why: str, detail: str = "") -> None:
        self.stats.unauthenticated += 1
        if self.stats.unauthenticated % 100 == 1:
            log.error("consensus message dropped: reason=%s%s member=%d fault=peer count=%d", why, detail, self.member,
                      self.stats.unauthenticated)

    def _on_consensus(self, buffer: memoryview, header: object) -> None:
        body = self.auth.open(buffer)
        if body is None:
            self._unauthenticated("bad_or_missing_tag", f" length={len(buffer)}")
            return
        msg = self._decode(body)
        if msg is None:
            return
        if not isinstance(msg, MEMBER_MESSAGES):
            self._unauthenticated("not_a_consensus_message", f" type={type(msg).__name__}")
            return
        if msg.dst != self.member or msg.src == self.member or msg.src not in self.members:
            self._unauthenticated("not_from_a_member_to_this_one", f" src={msg.src} dst={msg.dst}")
            return
        self.stats.received += 1
        self._handler(msg)

    def _on_ingress(self, buffer: memoryview, header: object) -> None:
        msg = self._decode(buffer)
        if msg is None:
            return
        if isinstance(msg, MEMBER_MESSAGES):
            self._unauthenticated("consensus_message_on_ingress", f" type={type(msg).__name__}")
            return
        self.stats.received += 1
        if isinstance(msg, wire.EgressChannel):
            self.bind(msg.client_id, msg.channel, msg.stream_id)
        else:
            self._handler(msg)

    def bind(self, client_id: int, channel: str, stream_id: int = EGRESS_STREAM) -> None:
        """Send egress for ``client_id`` to ``channel`` and ``stream_id`` from now on."""
        key = (channel, stream_id)
        if key not in self.egress:
            try:
                checked = self.egress_policy.check(channel)
                pub = self.stack.aeron.add_exclusive_publication(checked, stream_id)
            except Exception as exc:  # the client's fault: a channel we will not or cannot publish to
                self.stats.bad_channel += 1
                # each refused channel once (clients repeat their EgressChannel), then every 100th
                first = len(self._refused_logged) < 64 and (channel, stream_id) not in self._refused_logged
                if first:
                    self._refused_logged.add((channel, stream_id))
                if first or self.stats.bad_channel % 100 == 1:
                    log.error("egress channel refused: client=%s channel=%s stream=%s reason=%s fault=client count=%d",
                              client_id, quote(channel[:200]), stream_id, quote(exc), self.stats.bad_channel)
                answer = getattr(exc, "answer_channel", None)
                if answer is not None:
                    self._answer_refusal(answer, stream_id, f"egress channel refused: {exc}")
                return
            self._evict_if_full()
            self.egress[key] = _Egress(pub, time.monotonic())
        self.clients[client_id] = key

    def _answer_refusal(self, channel: str, stream_id: int, detail: str) -> None:
        """Tell a client why its egress channel was refused, on its endpoint with
        safe settings: a SessionEvent ERROR with session id -1 (about the link,
        not a session).  Best effort: the publication is kept like any client's
        (bounded by MAX_CLIENT_CHANNELS) until the client names a good channel."""
        key = (channel, stream_id)
        e = self.egress.get(key)
        if e is None:
            try:
                pub = self.stack.aeron.add_exclusive_publication(channel, stream_id)
            except Exception:
                return
            self._evict_if_full()
            e = self.egress[key] = _Egress(pub, time.monotonic())
        data = wire.encode(SessionEvent(-1, 0, EventCode.ERROR, detail=detail[:500]))
        if len(e.pending) < PENDING_EGRESS_LIMIT:
            e.pending.append(data)
            self._waiting[key] = e

    def _evict_if_full(self) -> None:
        if len(self.egress) >= MAX_CLIENT_CHANNELS:
            old = next(iter(self.egress))
            self.egress.pop(old).pub.close()
            self._waiting.pop(old, None)
            for c in [c for c, k in self.clients.items() if k == old]:
                del self.clients[c]

    def close(self) -> None:
        for pub in self.peers.values():
            pub.close()
        for e in self.egress.values():
            e.pub.close()
        self.consensus_sub.close()
        self.ingress_sub.close()


class ClusterLink:
    """A client's side of the streams: an ingress publication per member, an
    egress subscription of its own, the EgressChannel handshake.  Owns an
    :class:`AeronStack` unless given one.  Not thread-safe."""

    def __init__(self, members: dict[int, tuple[str, int]], *, client_id: int | None = None,
                 stack: AeronStack | None = None, aeron_base: str | None = None, invoker: bool | None = None,
                 egress_channel: str | None = None, credentials: bytes = b"") -> None:
        """``aeron_base``: over UDP, where this link's own driver directory is
        made; over IPC (``ipc`` members), the shared media driver's directory.
        ``egress_channel``: where members send egress (default: a free port on
        the first member's host, or IPC); it must be one the topology's
        ``client_egress`` allows.  ``credentials``: what the link's admin
        requests carry (:func:`query_status`)."""
        self.credentials = bytes(credentials)
        self.members = members
        self.client_id = random.getrandbits(62) if client_id is None else client_id
        ipc = is_ipc(members)
        self._own_stack = stack is None
        self.stack = stack or AeronStack("cluster-client", aeron_base, invoker=invoker, shared=ipc)
        self.stats = IoStats()
        try:
            aeron = self.stack.aeron
            if ipc:
                self.egress_channel, self.egress_stream = egress_channel or ipc_channel(), random.randrange(IPC_EGRESS_MIN, 2**31)
                self.pubs = {m: aeron.add_exclusive_publication(ipc_into_member(CLIENT_TERM_LENGTH), IPC_INGRESS_BASE + m) for m in members}
            else:
                host = next(iter(members.values()))[0]
                self.egress_channel = egress_channel or udp_channel(host, free_ports(1, host)[0])
                self.egress_stream = EGRESS_STREAM
                self.pubs = {m: aeron.add_exclusive_publication(udp_channel(h, p, CLIENT_TERM_LENGTH), INGRESS_STREAM)
                             for m, (h, p) in members.items()}
            self.egress_sub = aeron.add_subscription(self.egress_channel, self.egress_stream)
        except BaseException:
            if self._own_stack:
                self.stack.close()
            raise
        self._bound_at = {m: -BIND_INTERVAL_MS for m in members}
        self._was_connected = {m: False for m in members}
        self._bind_msg = wire.encode(wire.EgressChannel(self.client_id, self.egress_channel, self.egress_stream))
        self.inbox: list[object] = []
        self._assembler = FragmentAssembler(self._on_fragment)

    @staticmethod
    def now() -> int:
        return time.monotonic_ns() // 1_000_000

    def send(self, member: int, message: object, now: int) -> bool:
        """Send to ``member`` (after an EgressChannel when due); False if dropped."""
        pub = self.pubs[member]
        connected = pub.is_connected
        if not connected:
            self._was_connected[member] = False
            self.stats.not_connected += 1
            return False
        if not self._was_connected[member] or now - self._bound_at[member] >= BIND_INTERVAL_MS:
            if not _offer(pub, self._bind_msg, self.stats, f"member-{member}"):
                return False
            self._bound_at[member] = now
            self._was_connected[member] = True
        return _offer(pub, wire.encode(message), self.stats, f"member-{member}")

    def send_batch(self, member: int, messages: list[object], now: int) -> int:
        """Send ``messages`` to ``member`` in one ``offer_batch`` (after an
        EgressChannel when due); returns how many went (the rest were dropped)."""
        pub = self.pubs[member]
        if not pub.is_connected:
            self._was_connected[member] = False
            self.stats.not_connected += len(messages)
            return 0
        if not self._was_connected[member] or now - self._bound_at[member] >= BIND_INTERVAL_MS:
            if not _offer(pub, self._bind_msg, self.stats, f"member-{member}"):
                return 0
            self._bound_at[member] = now
            self._was_connected[member] = True
        encode = wire.encode
        data = [encode(m) for m in messages]
        n = 0
        if max(map(len, data)) <= pub.max_message_length:  # else offer_batch raises; _offer reports it
            n = pub.offer_batch(data)
            self.stats.sent += n
        for d in data[n:]:  # refused: ADMIN_ACTION succeeds on a retry, anything else is counted and dropped
            if _offer(pub, d, self.stats, f"member-{member}"):
                n += 1
        return n

    def poll_egress(self, limit: int = POLL_LIMIT) -> int:
        """Turn the driver and client, read egress into :attr:`inbox`."""
        return self.stack.do_work() + int(self.egress_sub.poll(self._assembler, limit))

    def _on_fragment(self, buffer: memoryview, header: object) -> None:
        try:
            self.inbox.append(wire.decode(buffer))
        except RemoteProtocolError:
            self.stats.malformed += 1
            return
        self.stats.received += 1

    def close(self) -> None:
        if self._own_stack:
            self.stack.close()  # closes the publications and subscription with the client
        else:
            for pub in self.pubs.values():
                pub.close()
            self.egress_sub.close()

    def __enter__(self) -> "ClusterLink":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AeronClusterClient:
    """The sans-IO :class:`~tickline.cluster.client.ClusterClient` over Aeron
    ingress/egress: follower redirects and retries as the client decides."""

    def __init__(self, members: dict[int, tuple[str, int]], client_id: int | None = None, session_id: int | None = None, *,
                 retry_timeout: int = 200, aeron_base: str | None = None, invoker: bool | None = None, credentials: bytes = b"",
                 on_challenge: Callable[[bytes], bytes] | None = None, egress_channel: str | None = None) -> None:
        """``credentials`` go with the session's connect (the default authenticator
        reads ``principal:secret``); ``on_challenge`` answers an authenticator's
        challenge.  If the cluster rejects them, :attr:`rejected` says why."""
        self.link = ClusterLink(members, client_id=client_id, aeron_base=aeron_base, invoker=invoker, egress_channel=egress_channel,
                                credentials=credentials)
        sid = random.getrandbits(48) if session_id is None else session_id
        self.client = ClusterClient(self.link.client_id, sid, tuple(sorted(members)), retry_timeout=retry_timeout,
                                    credentials=credentials, on_challenge=on_challenge)
        self.work = 0  # what the last poll did (sent, received, driver work): for an idle strategy

    now = staticmethod(ClusterLink.now)

    @property
    def rejected(self) -> str | None:
        """The cluster's reason for refusing this client's credentials, or None."""
        return self.client.rejected

    def offer(self, payload: bytes) -> int:
        return self.client.offer(payload, self.now())

    def poll(self) -> list[tuple[int, bytes]]:
        """Send what is due, read what arrived; returns newly answered (correlation id, payload)."""
        link = self.link
        now = self.now()
        sends = self.client.poll(now)
        if sends:
            by_member: dict[int, list[object]] = {}
            for member, msg in sends:
                by_member.setdefault(member, []).append(msg)
            for member, msgs in by_member.items():
                link.send_batch(member, msgs, now)
        link.stack.do_work()
        self.work = len(sends) + link.egress_sub.poll(link._assembler, POLL_LIMIT)  # messages only, as NodeAgent.do_work
        out: list[tuple[int, bytes]] = []
        if link.inbox:
            inbox, link.inbox = link.inbox, []
            for msg in inbox:
                out += self.client.on_egress(msg, now)
        return out

    def close(self) -> None:
        self.link.close()


def query_status(link: ClusterLink, member: int, action: int = 0, timeout: float = 1.0) -> wire.StatusResponse | None:
    """Ask one member for its status (after ``action``: 1 snapshot, 2 step down,
    which need the admin credential: the link's ``credentials``; a refused
    action comes back with ``refused`` set); None if it does not answer within
    ``timeout`` seconds.  The request is repeated while unanswered only when
    ``action`` is 0 (actions are not idempotent)."""
    deadline = time.monotonic() + timeout
    link.poll_egress()
    link.inbox = [m for m in link.inbox if not isinstance(m, wire.StatusResponse)]
    sent = False
    next_send = 0.0
    while time.monotonic() < deadline:
        t = time.monotonic()
        if (not sent or action == 0) and t >= next_send:
            if link.send(member, wire.StatusRequest(link.client_id, action, link.credentials if action else b""), link.now()):
                sent = True
                next_send = t + 0.1
        link.poll_egress()
        for i, m in enumerate(link.inbox):
            if isinstance(m, wire.StatusResponse) and m.member == member:
                del link.inbox[i]
                return m
        time.sleep(0.0005)
    return None
