"""The whole pipeline in real processes (the shipped example topology: a
driver, 3 cluster members over IPC, exchange-sim, the venue adapter, two order
flows), CI-sized: a few seconds of orders each.  No timing is asserted."""

from __future__ import annotations

import io
import os
import random
import subprocess
import sys
import time

import pytest

from tickline.cluster.aeron_io import AeronClusterClient, AeronStack
from tickline.cluster.auth import read_credentials
from tickline.fix_gateway.bridge import ExecType, ExecutionReport
from tickline.fix_gateway.sbe_orders import OrderCodec
from tickline.sequencer.service import REASONS
from tickline.topology.demo import run_pipeline

pytestmark = pytest.mark.multiprocess


def _totals(run, key):
    return sum(int(s.get(key, 0)) for s in run.flows.values())


def test_every_order_goes_through_risk_sequence_venue_and_back_to_its_sender(run_dir):
    out = io.StringIO()
    status: list[str] = []

    def during(sup, elapsed):  # `tickline status` from outside, once the flows have sent something
        if status or not os.path.exists(sup.children["flow-a"].spec.status_file):
            return
        r = subprocess.run([sys.executable, "-m", "tickline", "status", sup.topology.path], capture_output=True, text=True,
                           timeout=60)
        status.append(r.stdout + r.stderr)

    run = run_pipeline(run_dir, 2.0, rate=60, out=out, table_every=0, during=during)
    rows = {line.split()[0]: line for line in status[0].splitlines()[1:] if line.strip()}
    assert sum("cluster leader" in rows[f"member-{m}"] for m in (1, 2, 3)) == 1, status[0]
    assert "running" in rows["venue"] and "running" in rows["flow-a"], status[0]
    assert run.problems() == [], out.getvalue()
    sent, sequenced, rejected = _totals(run, "sent"), _totals(run, "sequenced"), _totals(run, "rejected")
    assert sent > 0 and sequenced + rejected == sent
    # every flow heard only of its own orders, each answer once
    for name, s in run.flows.items():
        assert s["unknown"] == 0 and s["repeated"] == 0 and s["malformed"] == 0, name
        assert set(s["reject_reasons"]) <= set(REASONS)
        assert sum(s["reject_reasons"].values()) == s["rejected"]
    # the venue saw each sequence number once, in order (the flows' and the strategies' orders)
    assert run.venue["orders_sent"] == run.venue["last_seq"] == run.exchange_orders >= sequenced
    assert run.venue["gaps"] == run.venue["bad"] == run.venue["repeated_to_venue"] == 0
    # the strategies ran on the same cluster: market data without gaps, every report theirs
    assert set(run.strategies) == {"mm", "probe"}
    for name, st in run.strategies.items():
        c = st["counters"]
        assert c["md"]["gaps"] == c["md"]["malformed"] == 0, name
        assert c["orders"]["unknown"] == c["orders"]["malformed"] == c["orders"]["duplicate_fills"] == 0, name
        assert c["callback_errors"] == 0, name
    assert run.strategies["mm"]["counters"]["sent"] > 0  # it quoted through the cluster
    # a FIX client through the gateway and the cluster: every order acked and filled
    assert run.fix["sent"] > 0 and run.fix["acked"] == run.fix["filled"] == run.fix["sent"], run.fix
    assert not [e for e in run.events if "DIED" in e], run.events


def test_a_leader_and_a_follower_killed_mid_flow_lose_nothing_and_send_nothing_twice(run_dir):
    out = io.StringIO()
    run = run_pipeline(run_dir, 4.0, kills=["leader", "follower"], rate=60, out=out, table_every=0)
    assert len(run.kills) == 2 and "leader" in run.kills[0] and "follower" in run.kills[1], out.getvalue()
    assert run.problems() == [], out.getvalue()
    sequenced = _totals(run, "sequenced")
    assert _totals(run, "filled") == sequenced and _totals(run, "unanswered") == 0
    assert run.venue["repeated_to_venue"] == 0 and run.venue["gaps"] == 0
    assert run.venue["orders_sent"] == run.venue["last_seq"] == run.exchange_orders >= sequenced
    died = [e for e in run.events if "DIED" in e]
    assert len(died) == 2 and all("member-" in d for d in died), run.events  # the kills, and nothing else
    # A FIX order that reaches the gateway while the cluster has no leader is refused at once with a
    # BusinessMessageReject (ApplicationNotAvailable) rather than held: the client knows its fate.
    # Nothing else may happen to one: every order filled or refused that way, none unanswered.
    fix = run.fix
    assert fix["sent"] > 0 and fix["rejected"] == 0 and fix["filled"] + fix["business_rejects"] == fix["sent"], fix
    assert fix["filled"] > fix["business_rejects"], fix  # the kills cost a few orders at most, not the flow


def test_malformed_messages_on_the_order_and_report_streams_are_refused_and_counted(run_dir):
    rng = random.Random(5)
    seen: dict[str, object] = {}

    def during(sup, elapsed):
        if elapsed < 1.0 or seen:
            return
        seen["done"] = True
        topo = sup.topology
        # garbage into the sequencer through the cluster: each answered with a reject, reason=malformed
        # (from a client with the topology's credentials; one without any is refused at connect)
        credentials = read_credentials(os.path.join(run_dir, "secrets", "client.credentials"))
        client = AeronClusterClient(topo.members, aeron_base=topo.driver_dir, credentials=credentials)
        stranger = AeronClusterClient(topo.members, aeron_base=topo.driver_dir, credentials=b"client:not-the-secret")
        stack = AeronStack("garbage", topo.driver_dir, shared=True)
        try:
            junk = [b"", b"\x00" * 3, bytes(rng.getrandbits(8) for _ in range(40)), b"\x30\x00\x01\x00\x65\x00\x00\x00" + b"\xff" * 8]
            for j in junk:
                client.offer(j)
            answers = []
            deadline = time.monotonic() + 20
            while len(answers) < len(junk) and time.monotonic() < deadline:
                answers += [p for _, p in client.poll()]
                sup.pump(0.01)
            seen["answers"] = [OrderCodec().decode(p) for p in answers]
            deadline = time.monotonic() + 20
            while stranger.client.rejected is None and time.monotonic() < deadline:
                stranger.poll()
                sup.pump(0.01)
            seen["stranger"] = (stranger.client.rejected, stranger.client.connected)
            # garbage on the exchange's report stream, which the venue adapter reads
            pub = stack.aeron.add_exclusive_publication("aeron:ipc", 1002)
            deadline = time.monotonic() + 10
            sent = 0
            while sent < 5 and time.monotonic() < deadline:
                stack.do_work()
                if pub.offer(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 60)))) > 0:
                    sent += 1
                sup.pump(0.01)
            seen["report_garbage"] = sent
        finally:
            client.close()
            stranger.close()
            stack.close()

    out = io.StringIO()
    run = run_pipeline(run_dir, 3.0, rate=40, out=out, during=during, table_every=0)
    answers = seen.get("answers")
    assert answers is not None and len(answers) == 4, out.getvalue()
    for a in answers:
        assert isinstance(a, ExecutionReport) and a.exec_type is ExecType.REJECTED and a.text.startswith("reason=malformed")
        assert "fault=peer" in a.text or "fault=remote" in a.text  # the sender's fault (sbe_orders says remote)
    rejected, connected = seen["stranger"]
    assert rejected is not None and not connected  # a client without the secret never got a session
    assert seen["report_garbage"] == 5
    assert run.venue["bad"] >= 5  # counted, never forwarded
    assert run.problems() == [], out.getvalue()  # and the flows went on, nothing lost
    assert not [e for e in run.events if "DIED" in e], run.events


def test_a_strategy_killed_mid_flow_is_restarted_and_takes_over_its_orders_and_position_from_the_cluster(run_dir):
    out = io.StringIO()
    run = run_pipeline(run_dir, 4.0, kills=["mm"], rate=30, out=out, table_every=0)
    assert len(run.kills) == 1 and run.kills[0].startswith("mm "), out.getvalue()
    lines = run.supervisor.children["mm"].lines
    recovered = [ln for ln in lines if "recovered open_orders=" in ln]
    assert recovered, lines  # the restarted market maker asked the cluster (SequencerGateway.recover)
    st = run.strategies["mm"]["counters"]
    assert st["orders"]["malformed"] == st["orders"]["duplicate_fills"] == st["callback_errors"] == 0
    assert run.problems() == [], out.getvalue()  # and the rest of the pipeline lost nothing


def test_the_venue_adapter_killed_mid_flow_is_restarted_and_every_order_is_executed_once_and_reported_once(run_dir):
    out = io.StringIO()
    run = run_pipeline(run_dir, 4.0, kills=["venue"], rate=60, out=out, table_every=0)
    assert len(run.kills) == 1 and run.kills[0].startswith("venue "), out.getvalue()
    died = [e for e in run.events if "DIED" in e]
    assert len(died) == 1 and "venue" in died[0], run.events  # the kill, and nothing else
    # every order reached its end and its sender heard each report once
    sequenced = _totals(run, "sequenced")
    assert sequenced > 0 and _totals(run, "filled") == sequenced and _totals(run, "unanswered") == 0
    for name, s in run.flows.items():
        assert s["unknown"] == 0 and s["repeated"] == 0 and s["open"] == 0, (name, s)
    for name, st in run.strategies.items():
        c = st["counters"]
        assert c["orders"]["unknown"] == c["orders"]["duplicate_fills"] == 0, name
    assert run.fix["sent"] > 0 and run.fix["filled"] == run.fix["sent"], run.fix
    # the exchange executed every sequence number once: what it received, less the resends it
    # answered from its reports (replayed), is the last sequence the restarted adapter reached
    ex = run.supervisor.children["exchange-sim"]
    stop = next(ln for ln in ex.lines if "stopped orders=" in ln)
    replayed = int(stop.split("replayed=")[1].split()[0])
    assert replayed > 0, stop  # the restarted adapter resent what it had no end for
    assert run.exchange_orders - replayed == run.venue["last_seq"] >= sequenced, (stop, run.venue)
    assert run.venue["gaps"] == run.venue["repeated_to_venue"] == run.venue["bad"] == 0, run.venue
