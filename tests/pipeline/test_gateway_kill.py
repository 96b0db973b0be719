"""The FIX gateway killed mid-flow (real processes: the shipped example
topology, a FIX 4.4 client through ``tickline fix-gateway`` and its sequencer
bridge into the 3-member cluster, the venue adapter, exchange-sim).  The
gateway is killed (-9) right after the client wrote a burst of orders, and the
supervisor restarts it on the same FIX store; the client logs on again and
re-sends (PossResend, same ClOrdID) every order it heard nothing of.  No
timing is asserted."""

from __future__ import annotations

import io
import re
import json
import os
import signal
import time

import pytest

from tickline.sequencer.client import SequencerGateway, cluster_credentials, members_from_topology
from tickline.topology.demo import run_pipeline

pytestmark = pytest.mark.multiprocess


def _gateway_status(run_dir):
    with open(os.path.join(run_dir, "fix", "status.json")) as f:
        return json.load(f)


def _sequencer_view(sup, run_dir, account):
    """(live orders, {symbol: (quantity, cost, realized)}) the sequencer keeps for ``account``,
    asked from outside by a cluster client of its own (``Recover``; None: no answer)."""
    members, aeron_dir = members_from_topology(sup.topology.path)
    creds = cluster_credentials(os.path.join(run_dir, "secrets", "client.credentials"), "test")
    gw = SequencerGateway(members, aeron_dir=aeron_dir, credentials=creds)
    try:
        return gw.recover(account, timeout=20.0)
    finally:
        gw.close()


def test_the_fix_gateway_killed_mid_flow_loses_no_acked_order_and_sends_none_twice(run_dir):
    seen: dict[str, object] = {}

    def before_stop(sup):  # the sequencer's own view of the FIX client's account, asked from outside
        seen["recovered"] = _sequencer_view(sup, run_dir, "FIXACC")

    def around_kill(sup, name, phase):
        # exchange-sim is held (SIGSTOP) from just before the burst until after the kill, so the
        # burst's orders are sequenced and at the venue but unanswered when the gateway dies: the
        # client has no ack for them and re-sends them to the restarted gateway
        if phase == "before":
            sup.kill("exchange-sim", signal.SIGSTOP)
            seen["in_before"] = _gateway_status(run_dir)["sessions"][0]["next_target_seq"]
        elif phase == "burst":
            # the gateway has read the burst (its status is rewritten within 0.1 s of a change)
            # and, within a duty cycle or two, sent the orders to the cluster (bounded waits)
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline:
                sup.pump(0.05)
                if _gateway_status(run_dir)["sessions"][0]["next_target_seq"] >= seen["in_before"] + 5:
                    break
            sup.pump(0.3)
        elif phase == "after":
            sup.pump(0.3)
            sup.kill("exchange-sim", signal.SIGCONT)  # its acks and fills go to the dead gateway's session

    out = io.StringIO()
    run = run_pipeline(run_dir, 4.0, kills=["fix-gateway"], rate=30, out=out, table_every=0, before_stop=before_stop,
                       around_kill=around_kill)
    assert len(run.kills) == 1 and run.kills[0].startswith("fix-gateway "), out.getvalue()
    died = [e for e in run.events if "DIED" in e]
    assert len(died) == 1 and "fix-gateway" in died[0], run.events  # the kill, and nothing else
    fix = run.fix
    assert fix["logons"] >= 2, fix  # the client came back through the restarted gateway
    assert fix["resent"] > 0, fix  # the burst's orders were in flight when it died, and re-sent
    orders = run.fix_orders
    # every order the client sent reached one end, and heard each report once
    assert all(o["end"] is not None for o in orders.values()), {k: o for k, o in orders.items() if o["end"] is None}
    assert fix["repeated"] == 0 and fix["unknown"] == 0 and fix["rejected"] == 0, fix
    acked = {cl for cl, o in orders.items() if o["acks"]}
    assert acked and all(orders[cl]["end"] == "filled" for cl in acked), fix  # FLOW fills every order
    assert all(o["fills"] == 1 for o in orders.values() if o["end"] == "filled"), fix
    # the sequencer's state agrees with the client's: nothing of FIXACC is open, and its position is
    # exactly the orders the client saw filled, each once (a re-send sequenced again would fill twice)
    recovered = seen.get("recovered")
    assert recovered is not None, out.getvalue()
    live, positions = recovered
    assert live == []
    net = sum(5 if dict(o["fields"])[54] == "1" else -5 for o in orders.values() if o["end"] == "filled")
    assert net == 5 * fix["filled"]  # all buys: a duplicate anywhere shows in the position
    assert positions.get("FLOW", (0, 0, 0))[0] == net, (positions, net, fix)
    # the restarted gateway had orders re-sent that the cluster had from its predecessor: refused there
    # as duplicates (not sequenced again) and kept from the client, whose acks and fills came instead
    bridge = _gateway_status(run_dir)["bridge"]
    assert bridge["resent_duplicates_ignored"] > 0, (bridge, fix)
    # and the venue's view agrees with the sequencer's: every sequence number to the exchange once
    assert run.problems() == [], out.getvalue()
    assert run.venue["repeated_to_venue"] == run.venue["gaps"] == run.venue["bad"] == 0, run.venue



def test_a_strategy_killed_mid_flow_and_restarted_ends_with_the_position_the_sequencer_holds(run_dir):
    """The market maker killed -9 mid-flow and restarted: it takes its open orders and position
    over from the cluster (SequencerGateway.recover), trades on, and when it stops its own
    position in every symbol is the one the sequencer keeps for its account from the venue's fills."""
    seen: dict[str, object] = {}

    def before_stop(sup):
        sup.stop_child("probe")  # the only taker of the market maker's quotes: no fill after this
        sup.pump(1.0)  # fills already on their way reach the market maker
        sup.stop_child("mm")  # its last status: its own position
        seen["recovered"] = _sequencer_view(sup, run_dir, "MM1")

    out = io.StringIO()
    # verbose: every child line goes to `out` (the supervisor keeps only a child's last 20 lines,
    # and the market maker logs each fill)
    run = run_pipeline(run_dir, 4.0, kills=["mm"], rate=30, out=out, table_every=0, before_stop=before_stop,
                       verbose=True)
    assert len(run.kills) == 1 and run.kills[0].startswith("mm "), out.getvalue()
    died = [e for e in run.events if "DIED" in e]
    assert len(died) == 1 and "mm" in died[0], run.events
    lines = [ln for ln in out.getvalue().splitlines() if re.search(r" mm +\| ", ln)]
    recovered_lines = [ln for ln in lines if "recovered open_orders=" in ln]
    assert len(recovered_lines) == 2, lines[-40:]  # at its first start (nothing) and after the kill
    # it was quoting when killed: the restarted one took its live quotes over
    assert int(recovered_lines[1].split("open_orders=")[1].split()[0]) > 0, recovered_lines
    st = run.strategies["mm"]
    assert st["running"] is False and st["counters"]["sent"] > 0, st
    recovered = seen.get("recovered")
    assert recovered is not None, out.getvalue()
    _live, positions = recovered
    mine = {sym: p["quantity"] for sym, p in st["positions"].items() if p["quantity"]}
    theirs = {sym: q for sym, (q, _cost, _realized) in positions.items() if q}
    assert mine == theirs, (mine, positions, st["counters"])
    c = st["counters"]
    assert c["orders"]["unknown"] == c["orders"]["malformed"] == c["orders"]["duplicate_fills"] == c["callback_errors"] == 0, c
    assert run.problems() == [], out.getvalue()
