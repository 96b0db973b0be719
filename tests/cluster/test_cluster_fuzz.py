"""Structure-aware fuzzing of a member's consensus, ingress and admin inputs
(issue 13, item 5).

Three whole nodes (consensus, log, service container on simulated disks)
talk through the real wire codec: every message any of them sends is encoded
and decoded, and dispatched as the daemon does.  Into that traffic the fuzzer
injects mutations of valid messages taken from it: field values (boundaries,
neighbours of real positions and terms, other members, this member), entry
lists (dropped, repeated, swapped, shifted, re-termed, truncated payloads),
and the encoded bytes (block lengths, group counts, var-data lengths,
truncation, trailing bytes).  Bounded in count (seeded, a few seconds).

Nothing may escape a handler: a peer's fault is counted and dropped
(``RemoteProtocolError`` from the decoder is what the Aeron fragment handler
counts as malformed), and the cluster still elects a leader and commits after.
"""

import dataclasses
import random
import struct

import pytest

from tickline.cluster import wire
from tickline.cluster.aeron_io import IoStats
from tickline.cluster.config import ConsensusConfig
from tickline.cluster.auth import SessionGate, load_authenticator
from tickline.cluster.daemon import NodeAgent, Topology
from tickline.cluster.disk import SimDisk
from tickline.cluster.errors import RemoteProtocolError
from tickline.cluster.messages import (AppendRequest, AppendResponse, Entry, InstallSnapshot, InstallSnapshotResponse, RequestVote, Role,
                                       TimeoutNow, VoteResponse)
from tickline.cluster.node import ClusterNode, NodeConfig
from tickline.cluster.protocol import EgressMessage, IngressMessage, SessionClose, SessionConnect

BOUNDARY = (-2**63, -2**31, -2, -1, 0, 1, 2, 3, 4, 27, 28, 2**31 - 1, 2**32, 2**62, 2**63 - 1)


class Echo:
    """A service that answers every message with its payload, whatever the bytes."""

    def on_start(self, cluster): pass
    def on_session_open(self, session, timestamp): pass
    def on_session_close(self, session, timestamp): pass
    def on_message(self, session, timestamp, payload): session.offer(b"ok:" + bytes(payload[:16]))
    def on_timer(self, correlation_id, timestamp): pass
    def on_take_snapshot(self): return b"echo"
    def on_load_snapshot(self, data): pass
    def on_role_change(self, role): pass


class WireNet:
    """Nodes whose every message goes through wire.encode / wire.decode."""

    def __init__(self, seed):
        self.ids = (1, 2, 3)
        self.rng = random.Random(seed)
        self.queue = []  # (destination member, encoded bytes)
        self.samples = {}  # message type -> recent valid messages seen on the wire
        self.egress = []
        self.now = 0
        self.nodes = {}
        self.agents = {}
        topology = Topology({i: ("127.0.0.1", 1) for i in self.ids}, data_dir="unused")
        for i in self.ids:
            net = self

            class IO:
                stats = IoStats()

                def send(self, member, message):
                    net.queue.append((member, wire.encode(message)))

                def send_egress(self, client_id, message):
                    net.egress.append(wire.decode(wire.encode(message)))

            cfg = NodeConfig(ConsensusConfig(i, self.ids, election_timeout_min=10, election_timeout_max=20, heartbeat_interval=3,
                                             snapshot_chunk_bytes=64), segment_size=2048, snapshot_interval=3000)
            self.nodes[i] = ClusterNode(cfg, SimDisk(), Echo(), IO(), random.Random(seed * 7 + i))
            # the daemon's own dispatch (NodeAgent._on_message), around a node on a simulated disk
            agent = self.agents[i] = NodeAgent(topology, i)
            agent.node, agent.io = self.nodes[i], self.nodes[i].io
            self.nodes[i].on_action = agent._on_action  # as NodeAgent.on_start wires it
            # mutations that got past the member key's HMAC (an insider): every client is admitted,
            # so mutated connects and admin requests reach the node
            agent.gate = SessionGate(load_authenticator("none", None))

    def dispatch(self, member, data):
        """What the member's fragment handler (decode; malformed bytes are counted
        there) and NodeAgent do with one fragment."""
        try:
            msg = wire.decode(data)
        except RemoteProtocolError:
            return "malformed"
        self.samples.setdefault(type(msg), []).append(msg)
        del self.samples[type(msg)][:-20]
        if not isinstance(msg, wire.EgressChannel):  # bound by the I/O shell, never reaches the node
            self.agents[member]._on_message(msg)
        return "ok"

    def step(self):
        self.now += 1
        queue, self.queue = self.queue, []
        for member, data in queue:
            self.dispatch(member, data)
        for node in self.nodes.values():
            node.process()
            node.tick(self.now)

    def leader(self):
        leaders = [i for i, n in self.nodes.items() if n.core.role is Role.LEADER]
        return leaders[0] if len(leaders) == 1 else None


def mutate_value(rng, value, net):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        near = [value - 1, value + 1, value - 28, value + 28, value * 2, -value]
        real = [n.core.last_position() for n in net.nodes.values()] + [n.core.term + d for n in net.nodes.values() for d in (0, 1, 100)]
        return rng.choice([*BOUNDARY, *near, *real, *net.ids, 7, rng.randrange(-1000, 10**6)])
    if isinstance(value, bytes):
        k = rng.randrange(4)
        if k == 0:
            return value[: rng.randrange(len(value) + 1)]
        if k == 1:
            return value + bytes(rng.randrange(64))
        if k == 2 and value:
            b = bytearray(value)
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
            return bytes(b)
        return bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
    if isinstance(value, tuple):  # AppendRequest entries
        entries = list(value)
        k = rng.randrange(6)
        if k == 0 and entries:
            del entries[rng.randrange(len(entries))]
        elif k == 1 and entries:
            entries.insert(rng.randrange(len(entries)), rng.choice(entries))
        elif k == 2 and len(entries) > 1:
            i, j = rng.sample(range(len(entries)), 2)
            entries[i], entries[j] = entries[j], entries[i]
        elif k == 3 and entries:
            i = rng.randrange(len(entries))
            e = entries[i]
            field = rng.choice(["position", "term", "timestamp", "kind", "payload"])
            args = {f: getattr(e, f) for f in ("position", "term", "timestamp", "kind", "payload")}
            args[field] = mutate_value(rng, args[field], net)
            try:
                entries[i] = Entry(**args)
            except Exception:
                pass
        elif k == 4:
            entries = entries[: rng.randrange(len(entries) + 1)]
        else:
            entries.append(Entry(rng.choice(BOUNDARY[4:]), rng.choice([1, 2, 2**62]), 0, rng.randrange(8), b"\x01" * rng.randrange(30)))
        return tuple(entries)
    return value


def mutate_message(rng, msg, net):
    fields = [f.name for f in dataclasses.fields(msg)]
    changes = {}
    for name in rng.sample(fields, rng.randint(1, min(3, len(fields)))):
        changes[name] = mutate_value(rng, getattr(msg, name), net)
    try:
        return dataclasses.replace(msg, **changes)
    except Exception:
        return None


def mutate_bytes(rng, data):
    b = bytearray(data)
    k = rng.randrange(5)
    if k == 0:
        return bytes(b[: rng.randrange(len(b) + 1)])
    if k == 1:
        return bytes(b) + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
    fmt = rng.choice(["<H", "<I", "<q"])
    size = struct.calcsize(fmt)
    if len(b) < size:
        return bytes(b)
    at = rng.randrange(len(b) - size + 1)  # a block length, a group count, a var-data length, a field...
    limit = 2 ** (8 * size - (1 if fmt == "<q" else 0))
    value = rng.choice([0, 1, 2, 0xFF, 0xFFFF, limit - 1, rng.randrange(limit)])
    struct.pack_into(fmt, b, at, value)
    if k == 2:
        b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    return bytes(b)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_mutated_consensus_ingress_and_admin_messages_never_escape_a_members_handlers(seed):
    net = WireNet(seed)
    rng = random.Random(seed)
    for _ in range(200):
        net.step()
        if net.leader() is not None:
            break
    leader = net.leader()
    assert leader is not None
    for i in net.ids:  # valid client traffic to every member, so there is some of each kind to mutate
        net.queue.append((i, wire.encode(SessionConnect(7, 70))))
    for c in range(1, 30):
        net.queue.append((leader, wire.encode(IngressMessage(7, 70, c, 0, b"order %d" % c))))
        net.step()
    net.queue.append((leader, wire.encode(wire.StatusRequest(9, 1))))
    for rid, action in enumerate((wire.ClusterAction.DESCRIBE, wire.ClusterAction.SUSPEND, wire.ClusterAction.RESUME,
                                  wire.ClusterAction.ERRORS)):
        net.queue.append((leader, wire.encode(wire.AdminRequest(9, rid, action))))
        net.step()
    net.queue.append((leader, wire.encode(SessionClose(7, 70))))
    for _ in range(20):
        net.step()
    kinds = set(net.samples)
    assert {AppendRequest, AppendResponse, SessionConnect, IngressMessage, wire.StatusRequest, wire.AdminRequest} <= kinds
    # the suspend and resume went through the log and were answered once applied
    answers = {m.action: m.detail for m in net.egress if isinstance(m, wire.AdminResponse)}
    assert sorted(answers) == [wire.ClusterAction.DESCRIBE, wire.ClusterAction.ERRORS, wire.ClusterAction.SUSPEND,
                               wire.ClusterAction.RESUME]
    assert '"suspended":true' in answers[wire.ClusterAction.SUSPEND] and '"suspended":false' in answers[wire.ClusterAction.RESUME]

    injected = malformed = 0
    for n in range(3000):
        kind = rng.choice(sorted(net.samples, key=lambda t: t.__name__))
        msg = rng.choice(net.samples[kind])
        member = rng.choice(net.ids)
        if rng.random() < 0.5:
            m = mutate_message(rng, msg, net)
            try:
                data = wire.encode(m) if m is not None else None
            except (struct.error, OverflowError, ValueError, TypeError, AttributeError):
                data = None  # a value the sender's encoder cannot put on the wire
            if data is None:
                continue
        else:
            data = mutate_bytes(rng, wire.encode(msg))
        injected += 1
        if net.dispatch(member, data) == "malformed":
            malformed += 1
        if n % 5 == 0:
            net.step()
    for _ in range(300):  # the cluster survives: a leader, and it commits
        net.step()
    assert injected > 2000 and malformed > 100
    assert sum(node.peer_faults for node in net.nodes.values()) > 50  # the refusals were reached
    leader = net.leader()
    assert leader is not None
    before = net.nodes[leader].core.commit_position
    net.queue.append((leader, wire.encode(SessionConnect(8, 80))))
    for _ in range(50):
        net.step()
    assert net.nodes[leader].core.commit_position > before or net.leader() != leader
