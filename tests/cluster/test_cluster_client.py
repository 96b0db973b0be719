"""The sans-IO cluster client's retry discipline: one send per message, resends
only after a timeout that follows observed latency or after a leader change,
bounded per poll, so a cluster that is merely behind is not flooded."""

from cluster_harness import NodeNet

from tickline.cluster.client import ClusterClient
from tickline.cluster.protocol import EgressMessage, EventCode, IngressMessage, SessionConnect, SessionEvent
from tickline.sequencer.basic import OrderSequencer


def connected(**kw):
    c = ClusterClient(7, 70, (1, 2, 3), **kw)
    assert [type(m).__name__ for _, m in c.poll(0)] == ["SessionConnect"]
    c.on_egress(SessionEvent(70, 0, EventCode.OK), 0)
    return c


def ingress(sends):
    return [m.correlation_id for _, m in sends if isinstance(m, IngressMessage)]


def test_each_message_is_sent_once_while_within_its_timeout():
    c = connected(retry_timeout=100)
    for k in range(1000):
        c.offer(b"o%d" % k, 0)
    assert ingress(c.poll(0)) == list(range(1, 1001))
    for now in range(1, 100):
        assert c.poll(now) == []  # a backlog of 1000 in flight: nothing resent
    assert c.retries == 0


def test_timed_out_messages_are_resent_at_most_retry_window_per_poll_and_the_guess_rotates_once():
    c = connected(retry_timeout=100, retry_window=16)
    for k in range(100):
        c.offer(b"o%d" % k, 0)
    c.poll(0)
    first = ingress(c.poll(100))
    assert first == list(range(1, 17))  # oldest first, bounded
    assert ingress(c.poll(100)) == list(range(17, 33))
    assert c.leader_guess == 1  # one stale check per retry_timeout/4, however many timed out
    c.poll(125)
    assert c.leader_guess == 2  # second check without any answer: try the next member


def test_timeouts_of_messages_sent_together_skip_the_answered_and_keep_the_oldest_first():
    # messages sent in one poll share one timer entry: the answered are skipped,
    # what the window leaves goes first on the next poll, and a message resent
    # since (here by a redirect) is not resent again by the older entry
    c = connected(retry_timeout=100, retry_window=4)
    for k in range(6):
        c.offer(b"a%d" % k, 0)
    assert ingress(c.poll(0)) == [1, 2, 3, 4, 5, 6]
    for k in range(3):
        c.offer(b"b%d" % k, 0)
    assert ingress(c.poll(0)) == [7, 8, 9]  # same due time, a second entry
    assert c.on_egress(EgressMessage(70, 2, b"ack"), 50) == [(2, b"ack")]
    c.on_egress(SessionEvent(70, 8, EventCode.REDIRECT, leader=1), 60)  # the leader it went to: resend at once
    assert ingress(c.poll(60)) == [8]
    assert ingress(c.poll(100)) == [1, 3, 4, 5]
    assert ingress(c.poll(100)) == [6, 7, 9]
    assert ingress(c.poll(100)) == []
    assert c.retries == 8  # the redirected one counts: it went through the timers (due at once)


def test_the_timeout_follows_the_observed_latency():
    c = connected(retry_timeout=25)
    now = 0
    for k in range(50):  # every answer takes 40 ms
        corr = c.offer(b"x", now)
        c.poll(now)
        now += 40
        c.on_egress(EgressMessage(70, corr, b"ack"), now)
    assert 100 < c.retry_after() <= 200  # 4 x ~40 ms (capped at 8 x 25), not the 25 ms floor
    corr = c.offer(b"y", now)
    c.poll(now)
    assert c.poll(now + 100) == []  # an answer 100 ms late is not yet a reason to resend
    assert ingress(c.poll(now + 200)) == [corr]


def test_a_new_leader_gets_every_unanswered_message_once_oldest_first():
    c = connected(retry_timeout=100, send_window=4)
    for k in range(6):
        c.offer(b"o%d" % k, 0)
    c.poll(0)
    c.on_egress(EgressMessage(70, 2, b"ack"), 1)
    c.connected = False  # the session is re-established with a new leader
    c.on_egress(SessionEvent(70, 0, EventCode.OK), 5)
    assert ingress(c.poll(5)) == [1, 3, 4, 5]  # send_window per poll
    assert ingress(c.poll(5)) == [6]
    assert all(m.floor == 1 for _, m in c.poll(6) if isinstance(m, IngressMessage))


def test_floor_is_the_lowest_unanswered_correlation():
    c = connected()
    for k in range(5):
        c.offer(b"x", 0)
    sends = c.poll(0)
    assert {m.floor for _, m in sends} == {1}
    for corr in (1, 2, 4):
        c.on_egress(EgressMessage(70, corr, b"a"), 1)
    assert c.floor == 3
    c.on_egress(EgressMessage(70, 3, b"a"), 1)
    c.on_egress(EgressMessage(70, 5, b"a"), 1)
    assert c.floor == 6 and not c.outstanding


def redirect(c, corr, leader, now):
    c.on_egress(SessionEvent(c.session_id, corr, EventCode.REDIRECT, leader=leader), now)


def test_a_redirect_naming_the_leader_is_followed_at_once_while_connecting_and_not_counted_as_a_timeout():
    # Seen in `tickline bench cluster`: a connect redirected to member 2 waited a
    # quarter timeout, its resend then counted as a second stale check and the
    # guess rotated to 3 just before 2 accepted, so every order of the session's
    # first poll went to a follower and waited out another redirect.
    c = ClusterClient(7, 70, (1, 2, 3), retry_timeout=100)
    assert [(dst, type(m).__name__) for dst, m in c.poll(0)] == [(1, "SessionConnect")]
    redirect(c, 0, 2, 1)
    assert [(dst, type(m).__name__) for dst, m in c.poll(1)] == [(2, "SessionConnect")]
    c.poll(60)
    assert c.leader_guess == 2
    c.on_egress(SessionEvent(70, 0, EventCode.OK), 70)
    c.offer(b"o", 70)
    assert [dst for dst, _ in c.poll(70)] == [2]


def test_a_redirected_message_goes_to_the_named_leader_on_the_next_poll():
    c = connected(retry_timeout=100)
    c.offer(b"o", 0)
    assert [dst for dst, _ in c.poll(0)] == [1]
    redirect(c, 1, 3, 2)
    sends = c.poll(2)
    assert [(dst, m.correlation_id) for dst, m in sends] == [(3, 1)]
    assert c.poll(3) == []  # once


def test_members_bouncing_a_message_between_them_slow_it_to_the_quarter_timeout():
    c = connected(retry_timeout=100)
    c.offer(b"o", 0)
    c.poll(0)
    hops = 0
    for now, named in enumerate([2, 1, 2, 1, 2, 1], start=1):
        redirect(c, 1, named, now)
        if ingress(c.poll(now)):
            hops += 1
    assert hops == 3  # len(members) hops at once, then none before retry_timeout // 4
    assert ingress(c.poll(6 + 25)) == [1]
    c.on_egress(EgressMessage(70, 1, b"ok"), 40)
    c.offer(b"p", 40)
    c.poll(40)
    redirect(c, 2, 2, 41)
    assert ingress(c.poll(41)) == [2]  # an answer resets the count


def test_every_message_a_follower_redirects_goes_to_the_named_leader_at_once():
    # the first redirect changes the guess; the rest of the batch, sent to the
    # follower before it, must not wait because the guess already names the leader
    c = connected(retry_timeout=100)
    for k in range(5):
        c.offer(b"o%d" % k, 0)
    assert {dst for dst, _ in c.poll(0)} == {1}
    for corr in range(1, 6):
        redirect(c, corr, 3, 1)
    sends = c.poll(1)
    assert [(dst, m.correlation_id) for dst, m in sends] == [(3, k) for k in range(1, 6)]


def test_a_connect_answered_after_the_guess_moved_on_sends_orders_to_the_member_that_answered():
    # Seen in bench cluster right after start: the connect went to member 1 before
    # any leader existed, the others redirected with no leader named so the guess
    # moved to 2, then 1 won the election and accepted the first connect.
    c = ClusterClient(7, 70, (1, 2, 3), retry_timeout=100)
    assert [m for m, _ in c.poll(0)] == [1]
    c.on_egress(SessionEvent(70, 0, EventCode.REDIRECT, leader=None), 1)
    assert c.leader_guess == 2
    c.on_egress(SessionEvent(70, 0, EventCode.OK, leader=1), 2)
    assert c.connected and c.leader_guess == 1
    c.offer(b"first", 2)
    assert [m for m, _ in c.poll(2)] == [1]
    c.on_egress(SessionEvent(70, 0, EventCode.OK, leader=9), 3)  # not a member: ignored
    assert c.leader_guess == 1


def test_the_leader_names_itself_in_its_answer_to_a_connect():
    net = NodeNet(OrderSequencer)
    leader = net.elect()
    net.ingress(leader, SessionConnect(client_id=7, session_id=70))
    net.run(20)
    [ok] = [m for m in net.egress[7] if type(m) is SessionEvent]
    assert ok.code == EventCode.OK and ok.leader == leader


def test_a_message_the_leader_keeps_not_answering_is_resent_ever_later_and_a_leader_change_starts_again():
    # an overloaded leader answers late: each resend of one message waits twice the one before
    # (capped), so the client adds a few copies of its backlog, not one per timeout
    c = connected(retry_timeout=100)
    corr = c.offer(b"o", 0)
    assert ingress(c.poll(0)) == [corr]
    resent_at = [now for now in range(1, 4000) if ingress(c.poll(now)) == [corr]]
    assert resent_at == [100, 300, 700, 1500, 2300, 3100, 3900]  # +100, +200, +400, +800, then +800 (2**MAX_BACKOFF)
    assert c.retries == 7
    c.on_egress(SessionEvent(70, corr, EventCode.ERROR, detail="unknown_session"), 4000)  # the session is gone
    assert [type(m).__name__ for _, m in c.poll(4000)] == ["SessionConnect"]
    c.on_egress(SessionEvent(70, 0, EventCode.OK, leader=1), 4000)
    assert ingress(c.poll(4000)) == [corr]  # resent at once once the session is open again
    assert ingress(c.poll(4099)) == []
    assert ingress(c.poll(4100)) == [corr]  # and from there its first timeout is the base one again
    assert ingress(c.poll(4299)) == []
    assert ingress(c.poll(4300)) == [corr]
