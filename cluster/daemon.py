"""A cluster member as a process: the node behind a transport, run as an agent.

The transport here is plain UDP datagrams carrying :mod:`.wire` messages, a
stand-in until the Aeron binding lands: :class:`UdpTransport` implements the
node's :class:`~tickline.cluster.node.NodeIO` boundary (send to member N,
send egress to client C) plus ``poll``; an Aeron transport will implement the
same three calls over publications and subscriptions.  Limits of the
stand-in: one datagram per message (appends are batched to fit; a snapshot
larger than a datagram cannot be sent to a lagging member) and no flow control.

Topology file (TOML)::

    data_dir = "/var/lib/tickline/cluster"   # member N uses data_dir/member-N
    fsync = "always"                          # or "none"
    snapshot_interval = 1048576               # bytes of log between snapshots, 0 = off
    election_timeout_min = 300                # ms, optional (also heartbeat_interval, election_timeout_max)
    [members]
    1 = "127.0.0.1:9010"
    2 = "127.0.0.1:9011"
    3 = "127.0.0.1:9012"

Cluster time is the wall clock in milliseconds since the epoch (never going
backwards within a process), as every member's entries must be comparable.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import sys
import time
import tomllib
from dataclasses import dataclass

from .config import ConsensusConfig
from .disk import OsDisk
from .errors import ClusterError, ConfigError, RemoteProtocolError
from .log import FsyncPolicy
from .messages import AppendRequest, AppendResponse, InstallSnapshot, RequestVote, Role, TimeoutNow, VoteResponse
from .node import ClusterNode, NodeConfig
from .client import ClusterClient
from .protocol import IngressMessage, SessionClose, SessionConnect
from .sequencer import OrderSequencer
from . import wire

__all__ = ["Topology", "load_topology", "UdpTransport", "NodeAgent", "UdpClusterClient", "query_status", "main"]

MAX_DATAGRAM = 65000
_MEMBER_MESSAGES = (RequestVote, VoteResponse, AppendRequest, AppendResponse, InstallSnapshot, TimeoutNow)
_INGRESS = (SessionConnect, SessionClose, IngressMessage)


@dataclass(frozen=True)
class Topology:
    members: dict[int, tuple[str, int]]
    data_dir: str
    fsync: FsyncPolicy = FsyncPolicy.ALWAYS
    snapshot_interval: int = 0
    election_timeout_min: int = 300
    election_timeout_max: int = 600
    heartbeat_interval: int = 50

    def consensus(self, member: int) -> ConsensusConfig:
        return ConsensusConfig(member, tuple(sorted(self.members)), self.election_timeout_min, self.election_timeout_max,
                               self.heartbeat_interval, max_append_bytes=MAX_DATAGRAM // 2)


def _addr(text: str, where: str) -> tuple[str, int]:
    host, sep, port = str(text).rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ConfigError("invalid cluster topology", file=where, key="members", value=text, expected="host:port")
    return host, int(port)


def load_topology(path: str) -> Topology:
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError("cluster topology file not found", file=path) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("cluster topology is not valid TOML", file=path, reason=str(exc)) from None
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
    known = {"members", "data_dir", "fsync", "snapshot_interval", "election_timeout_min", "election_timeout_max", "heartbeat_interval"}
    for k in doc:
        if k not in known:
            raise ConfigError("invalid cluster topology", file=path, key=k, expected="one of " + ",".join(sorted(known)))
    ints = {k: doc[k] for k in ("snapshot_interval", "election_timeout_min", "election_timeout_max", "heartbeat_interval") if k in doc}
    for k, v in ints.items():
        if not isinstance(v, int) or v < 0:
            raise ConfigError("invalid cluster topology", file=path, key=k, value=v, expected="non-negative integer")
    topo = Topology(members, str(doc["data_dir"]), FsyncPolicy.parse(doc.get("fsync", "always")), **ints)
    topo.consensus(next(iter(members)))  # validate timeouts now, not at start-up of a member
    return topo


class UdpTransport:
    """NodeIO over UDP datagrams.  Not thread-safe."""

    def __init__(self, topology: Topology, member: int) -> None:
        self.topology = topology
        self.member = member
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(topology.members[member])
        self.sock.setblocking(False)
        self.clients: dict[int, tuple[str, int]] = {}
        self.errors = 0

    def send(self, member: int, message: object) -> None:
        self._sendto(wire.encode(message), self.topology.members[member])

    def send_egress(self, client_id: int, message: object) -> None:
        addr = self.clients.get(client_id)
        if addr is not None:
            self._sendto(wire.encode(message), addr)

    def _sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            self.sock.sendto(data, addr)
        except (BlockingIOError, ConnectionRefusedError, OSError):
            self.errors += 1  # like a dropped datagram: consensus and clients retry

    def poll(self, handler, limit: int = 64) -> int:
        n = 0
        while n < limit:
            try:
                data, addr = self.sock.recvfrom(MAX_DATAGRAM + 1024)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self.errors += 1
                break
            n += 1
            try:
                msg = wire.decode(data)
            except RemoteProtocolError:
                self.errors += 1
                continue
            handler(msg, addr)
        return n

    def close(self) -> None:
        self.sock.close()


class NodeAgent:
    """Runs one member: ``do_work`` polls the transport and ticks the node."""

    def __init__(self, topology: Topology, member: int, clock=None) -> None:
        self.topology = topology
        self.member = member
        self._clock = clock or (lambda: int(time.time() * 1000))
        self._now = 0
        self.node: ClusterNode | None = None
        self.transport: UdpTransport | None = None
        self.stopping_until: int | None = None

    def role_name(self) -> str:
        return f"cluster-node-{self.member}"

    def now(self) -> int:
        self._now = max(self._now, self._clock())
        return self._now

    def on_start(self) -> None:
        t = self.topology
        self.transport = UdpTransport(t, self.member)
        disk = OsDisk(os.path.join(t.data_dir, f"member-{self.member}"))
        cfg = NodeConfig(t.consensus(self.member), fsync=t.fsync, snapshot_interval=t.snapshot_interval)
        self.node = ClusterNode(cfg, disk, OrderSequencer(), self.transport, random.Random(), now=self.now())

    def _on_message(self, msg: object, addr: tuple[str, int]) -> None:
        node = self.node
        assert node is not None and self.transport is not None
        if isinstance(msg, _MEMBER_MESSAGES):
            if msg.dst == self.member and msg.src in self.topology.members:
                node.on_member_message(msg, defer=True)
        elif isinstance(msg, _INGRESS):
            self.transport.clients[msg.client_id] = addr
            node.on_ingress(msg, defer=True)
        elif isinstance(msg, wire.StatusRequest):
            if msg.action == 1:
                node.take_snapshot()
            elif msg.action == 2:
                node.shutdown()
            c = node.core
            self.transport._sendto(wire.encode(wire.StatusResponse(
                self.member, c.role.value, c.term, -1 if c.leader is None else c.leader, c.last_position(),
                c.commit_position, c.applied_position, c.base_position)), addr)

    def do_work(self) -> int:
        assert self.transport is not None and self.node is not None
        # one Ready (one fsync) for everything this duty cycle received: group commit
        work = self.transport.poll(self._on_message, limit=256)
        self.node.tick(self.now())
        return work

    def begin_shutdown(self) -> None:
        """Clean shutdown: hand leadership over, then stop within one election timeout."""
        if self.stopping_until is None and self.node is not None:
            target = self.node.shutdown()
            print(f"member={self.member} stopping transfer_to={target}", flush=True)
            self.stopping_until = self.now() + self.topology.election_timeout_min

    def done(self) -> bool:
        return self.stopping_until is not None and (self.node is None or self.node.core.role is not Role.LEADER or self.now() >= self.stopping_until)

    def on_close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class UdpClusterClient:
    """The sans-IO :class:`~tickline.cluster.client.ClusterClient` over the UDP stand-in."""

    def __init__(self, topology: Topology, client_id: int, session_id: int, *, retry_timeout: int = 200) -> None:
        self.topology = topology
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((next(iter(topology.members.values()))[0], 0))
        self.sock.setblocking(False)
        self.client = ClusterClient(client_id, session_id, tuple(sorted(topology.members)), retry_timeout=retry_timeout)

    @staticmethod
    def now() -> int:
        return int(time.monotonic() * 1000)

    def offer(self, payload: bytes) -> int:
        return self.client.offer(payload, self.now())

    def poll(self) -> list[tuple[int, bytes]]:
        """Send what is due, read what arrived; returns newly answered (correlation id, payload)."""
        now = self.now()
        for member, msg in self.client.poll(now):
            try:
                self.sock.sendto(wire.encode(msg), self.topology.members[member])
            except OSError:
                pass
        out = []
        while True:
            try:
                data, _ = self.sock.recvfrom(MAX_DATAGRAM + 1024)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                continue  # e.g. ICMP port unreachable from a dead member
            try:
                out += self.client.on_egress(wire.decode(data), now)
            except RemoteProtocolError:
                continue
        return out

    def close(self) -> None:
        self.sock.close()


def query_status(topology: Topology, member: int, action: int = 0, timeout: float = 0.5) -> wire.StatusResponse | None:
    """Ask one member for its status (after ``action``); None if it does not answer in time."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(wire.encode(wire.StatusRequest(0, action)), topology.members[member])
            data, _ = s.recvfrom(4096)
        except OSError:
            return None
    m = wire.decode(data)
    return m if isinstance(m, wire.StatusResponse) else None


def run(topology: Topology, member: int) -> int:
    """Run a member on the calling thread until SIGTERM/SIGINT (then shut down cleanly)."""
    from tickline.transport.idle import BackoffIdleStrategy
    agent = NodeAgent(topology, member)
    signal.signal(signal.SIGTERM, lambda *_: agent.begin_shutdown())
    signal.signal(signal.SIGINT, lambda *_: agent.begin_shutdown())
    idle = BackoffIdleStrategy()
    agent.on_start()
    node = agent.node
    assert node is not None
    r = node.recovery
    print(f"member={member} started log_start={r.first_position} log_end={r.end_position} truncated_at={r.truncated_at} "
          f"reason={r.reason} snapshot={node.core.base_position} term={node.core.term}", flush=True)
    try:
        while not agent.done():
            idle.idle(agent.do_work())
    finally:
        agent.on_close()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tickline.cluster.daemon")
    p.add_argument("--config", required=True)
    p.add_argument("--member", type=int, required=True)
    args = p.parse_args(argv)
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
