"""Cluster actions in the log (entry kind ACTION), on whole nodes with simulated
disks: suspend and resume are replicated, survive a snapshot and a restart, and
refuse client messages without losing them; a shutdown snapshots every member
at one position, and is never acted on again when replayed or learnt late."""

from cluster_harness import NodeNet
from test_cluster_service import Recorder, session_net

from tickline.cluster.messages import Entry, EntryKind
from tickline.cluster.protocol import EgressMessage, EventCode, IngressMessage, SessionEvent
from tickline.cluster.service import ACTION, ACTION_RESUME, ACTION_SHUTDOWN, ACTION_SUSPEND, entry_problem


def messages(net, i):
    return [c for c in net.services[i].calls if c[0] == "message"]


def test_suspend_refuses_client_messages_on_every_member_and_resume_applies_their_retries():
    net, leader = session_net()
    net.nodes[leader].propose_action(ACTION_SUSPEND, 9, 1)
    net.run(10)
    assert all(net.nodes[i].container.suspended for i in net.ids)
    end = net.nodes[leader].core.last_position()
    net.ingress(leader, IngressMessage(7, 70, 1, 1, b"held"))
    net.run(10)
    # refused before the log: nothing appended, nothing applied, the client told why
    assert net.nodes[leader].core.last_position() == end
    assert SessionEvent(70, 1, EventCode.ERROR, leader=leader, detail="suspended") in net.egress[7]
    assert all(messages(net, i) == [] for i in net.ids)
    net.nodes[leader].propose_action(ACTION_RESUME, 9, 2)
    net.run(10)
    assert not any(net.nodes[i].container.suspended for i in net.ids)
    net.ingress(leader, IngressMessage(7, 70, 1, 1, b"held"))  # the client's retry
    net.run(10)
    assert all(messages(net, i) == [("message", 70, 1, "held")] for i in net.ids)
    assert EgressMessage(70, 1, b"echo:held") in net.egress[7]


def test_a_message_already_in_the_log_behind_a_suspend_is_refused_on_apply_by_every_member_alike():
    net, leader = session_net()
    node = net.nodes[leader]
    node.core.propose(EntryKind.ACTION, ACTION.pack(ACTION_SUSPEND, 9, 1))
    node.core.propose(EntryKind.MESSAGE, b"".join(x.to_bytes(8, "little") for x in (70, 1, 1)) + b"raced")  # appended before applied
    node.process()
    net.run(10)
    assert all(messages(net, i) == [] for i in net.ids)
    assert all(net.nodes[i].container.refused_suspended == 1 for i in net.ids)
    assert SessionEvent(70, 1, EventCode.ERROR, leader=leader, detail="suspended") in net.egress[7]


def test_suspended_survives_a_snapshot_and_a_restart():
    net = NodeNet(Recorder)
    leader = net.elect()
    net.nodes[leader].propose_action(ACTION_SUSPEND, 9, 1)
    net.run(10)
    follower = next(i for i in net.ids if i != leader)
    net.nodes[follower].take_snapshot()
    net.stop(follower)
    net.start(follower)
    assert net.nodes[follower].container.suspended  # from the snapshot: the entry is not replayed
    assert net.nodes[follower].core.base_position > 0


def test_a_shutdown_snapshots_every_member_at_or_past_its_position():
    net, leader = session_net()
    net.ingress(leader, IngressMessage(7, 70, 1, 1, b"before"))
    net.run(5)
    entry = net.nodes[leader].propose_action(ACTION_SHUTDOWN, 9, 5)
    assert net.nodes[leader].stopping
    net.ingress(leader, IngressMessage(7, 70, 2, 1, b"after"))  # the leader takes nothing new once the shutdown is in
    net.run(10)
    assert SessionEvent(70, 2, EventCode.ERROR, leader=leader, detail="shutting_down") in net.egress[7]
    for i in net.ids:
        n = net.nodes[i]
        assert n.terminate_at == entry.end and n.terminated is not None and n.terminated >= entry.end
        assert n.shutdown_requester == (9, 5)
        assert n.core.base_position == n.terminated  # the snapshot is the member's newest
        assert messages(net, i) == [("message", 70, 1, "before")]


def test_a_shutdown_entry_read_back_from_the_members_own_log_is_not_acted_on_again():
    net = NodeNet(Recorder)
    leader = net.elect()
    follower = next(i for i in net.ids if i != leader)
    net.nodes[follower].on_member_message = lambda m, defer=False: None  # it takes no part from here
    entry = net.nodes[leader].propose_action(ACTION_SHUTDOWN, 9, 5)
    net.run(10)
    # the follower never heard of it; the other two stopped, with snapshots covering it
    assert net.nodes[follower].terminate_at is None
    assert all(net.nodes[i].terminated is not None for i in net.ids if i != follower)
    for i in net.ids:  # the whole cluster restarts, as after a shutdown
        net.stop(i)
    for i in net.ids:
        net.start(i)
    leader2 = net.elect()
    net.run(30)
    n = net.nodes[follower]
    assert n.core.applied_position >= entry.end  # it learnt the shutdown entry from the new leader, in a later term
    assert n.terminate_at is None and n.terminated is None
    assert all(net.nodes[i].terminate_at is None for i in net.ids)
    assert net.nodes[leader2].core.term > entry.term


def test_an_action_entry_the_container_cannot_apply_is_a_peer_fault():
    assert entry_problem(Entry(0, 1, 0, EntryKind.ACTION, ACTION.pack(ACTION_SUSPEND, 1, 2))) is None
    assert entry_problem(Entry(0, 1, 0, EntryKind.ACTION, ACTION.pack(99, 1, 2))) == "unknown_action_99"
    assert entry_problem(Entry(0, 1, 0, EntryKind.ACTION, b"\x03")) == "payload_length_1_for_kind_5"
