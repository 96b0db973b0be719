"""``tickline demo``: the whole trading pipeline from the shipped topology
(``example.toml``), for a few seconds, then what happened to every order.

Order flows send through the 3-member sequencer cluster (risk, global
sequence), the venue adapter takes each sequenced order to the exchange
simulator exactly once, and its acks and fills come back through the cluster
to the flow that sent the order.  The report: order counts (sent, sequenced,
acked, filled, rejected by reason, unanswered), the venue's view, and a
latency table per stage.  ``--chaos`` kills the cluster's leader twice
(kill -9; the supervisor restarts it) and checks that nothing was lost or
repeated: every sequenced order filled once, the venue received every
sequence number once.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from importlib import resources
from typing import IO, Any, Callable, Sequence

from .config import load
from .supervisor import Supervisor

__all__ = ["run_demo", "example_topology"]

STAGES = (("order_to_sequenced", "order -> sequenced"),
          ("sequenced_to_venue_ack", "sequenced -> venue ack"),
          ("venue_fill_to_client", "venue fill -> order's sender"))


def example_topology(run_dir: str) -> str:
    """The shipped example with its paths under ``run_dir`` and its secrets made there
    (``run_dir/secrets``, by ``tickline.cluster.auth.provision``); returns the file written."""
    text = resources.files("tickline.topology").joinpath("example.toml").read_text()
    path = os.path.join(run_dir, "topology.toml")
    from tickline.transport import free_ports

    from tickline.cluster.auth import provision

    provision(os.path.join(run_dir, "secrets"))  # the cluster key, the credentials file, client.credentials (all 0600)
    with open(path, "w") as f:
        f.write(text.replace("{run}", run_dir).replace("{fix_port}", str(free_ports(kind="tcp")[0])))
    return path


class FixClient:
    """The demo's FIX client: one FIX 4.4 session to the gateway, a buy limit order on FLOW
    every ``interval`` seconds (all buys: its account's position counts its fills); follows every ClOrdID to its end.  An agent (driven by the demo's loop).

    After a re-logon (the gateway restarted) it re-sends, with PossResend(97)=Y and the same
    ClOrdID, every order it has heard nothing of: the gateway's side decides whether it had
    the order (then its reports are the answer) or not (then it is executed now).  A
    BusinessMessageReject of such a re-send (the gateway's way into the cluster not up yet) is
    retried, bounded; one of a first send ends the order, as it always has."""

    RESEND_TRIES = 40

    def __init__(self, port: int, seconds: float, sender: str = "FIXC1", target: str = "GW", interval: float = 0.2) -> None:
        from tickline.fix_gateway.io import FixInitiator, InitiatorConfig
        from tickline.fix_gateway.session import SessionConfig

        self.ini = FixInitiator(InitiatorConfig(reconnect_min_s=0.2, reconnect_max_s=0.5), on_event=self._on_event)
        self.ini.add_session(SessionConfig(sender_comp_id=sender, target_comp_id=target, role="initiator"), port=port)
        self.sid = f"FIX.4.4:{sender}->{target}"
        self.interval = interval
        self.seconds = seconds  # sends for this long after its logon (as the flows do after connecting)
        self.logged_on_at: float | None = None
        self.logged_on = False
        self.n = 0
        self._next = 0.0
        self.counts = {"sent": 0, "acked": 0, "filled": 0, "rejected": 0, "business_rejects": 0, "logons": 0, "resent": 0,
                       "repeated": 0, "unknown": 0}
        # ClOrdID -> {"fields", "acks", "fills", "end" (None | filled | rejected | business_reject), "resends", "retry_at"}
        self.orders: dict[str, dict[str, Any]] = {}
        self.ini.on_start()

    def _on_event(self, session_id: str, event: Any) -> None:
        from tickline.fix_gateway.session import ApplicationMessage, Disconnect, LoggedOn, LoggedOut

        if isinstance(event, LoggedOn):
            self.logged_on = True
            self.counts["logons"] += 1
            if self.logged_on_at is None:
                self.logged_on_at = time.monotonic()
            else:
                self._resend_unanswered()
        elif isinstance(event, (LoggedOut, Disconnect)):
            self.logged_on = False
        elif isinstance(event, ApplicationMessage):
            m = event.message
            cl = m.get(11) if m.msg_type == "8" else m.get(379)
            o = self.orders.get(cl or "")
            if o is None:
                self.counts["unknown"] += 1
                return
            if m.msg_type == "8":
                et = m.get(150)
                if et == "0":
                    o["acks"] += 1
                    if o["acks"] == 1:
                        self.counts["acked"] += 1
                    else:
                        self.counts["repeated"] += 1
                elif et == "F":
                    o["fills"] += 1
                    if m.get(39) == "2":
                        self._end(o, "filled")
                elif et == "8":
                    self._end(o, "rejected")
            elif m.msg_type == "j":
                if o["resends"] and o["resends"] < self.RESEND_TRIES:
                    o["retry_at"] = time.monotonic() + 0.3  # the re-send was not taken: try it again shortly
                else:
                    self._end(o, "business_reject")

    def _end(self, o: dict[str, Any], how: str) -> None:
        if o["end"] is not None:
            self.counts["repeated"] += 1  # a second end for one ClOrdID
            return
        o["end"] = how
        self.counts[{"filled": "filled", "rejected": "rejected", "business_reject": "business_rejects"}[how]] += 1

    def _resend_unanswered(self) -> None:
        for o in self.orders.values():
            if o["acks"] == 0 and o["end"] is None:
                o["retry_at"] = 0.0

    def _resend_due(self, now: float) -> None:
        for o in self.orders.values():
            if o["retry_at"] is not None and now >= o["retry_at"] and o["acks"] == 0 and o["end"] is None:
                o["retry_at"] = None
                o["resends"] += 1
                self.counts["resent"] += 1
                self.ini.submit(self.sid, "D", [*o["fields"], (97, "Y")])

    @property
    def sending(self) -> bool:
        return self.logged_on_at is None or time.monotonic() < self.logged_on_at + self.seconds

    @property
    def done(self) -> bool:
        return not self.sending and all(o["end"] is not None for o in self.orders.values())

    def send_order(self) -> None:
        from tickline.fix_gateway.session import utc_timestamp

        self.n += 1
        cl = f"FIX{self.n}"
        fields = [(11, cl), (1, "FIXACC"), (55, "FLOW"), (54, "1"), (60, utc_timestamp(time.time())),
                  (38, "5"), (40, "2"), (44, "100")]
        self.orders[cl] = {"fields": fields, "acks": 0, "fills": 0, "end": None, "resends": 0, "retry_at": None}
        self.ini.submit(self.sid, "D", fields)
        self.counts["sent"] += 1

    def burst(self, n: int) -> None:
        """``n`` orders at once, written to the socket before this returns (when logged on):
        what a kill of the gateway right after finds in flight."""
        if not self.logged_on:
            return
        for _ in range(n):
            self.send_order()
        self.ini.do_work()

    def do_work(self) -> int:
        now = time.monotonic()
        if self.logged_on:
            self._resend_due(now)
            if self.sending and now >= self._next:
                self._next = now + self.interval
                self.send_order()
        return self.ini.do_work()

    def close(self) -> None:
        self.ini.on_close()


def _pct(samples: list[int]) -> list[str]:
    if not samples:
        return ["0", "-", "-", "-", "-"]
    s = sorted(samples)
    pick = lambda q: s[min(len(s) - 1, int(q * len(s)))] / 1000  # noqa: E731
    return [str(len(s)), f"{pick(0.5):.0f}", f"{pick(0.9):.0f}", f"{pick(0.99):.0f}", f"{s[-1] / 1000:.0f}"]


def _table(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    line = lambda r: "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, rows)])


@dataclasses.dataclass
class PipelineRun:
    """What a run of the pipeline left behind (the status files' last words)."""

    flows: dict[str, dict[str, Any]]
    strategies: dict[str, dict[str, Any]]
    fix: dict[str, int]
    venue: dict[str, Any]
    exchange_orders: int | None
    kills: list[str]
    events: list[str]
    supervisor: Supervisor
    fix_orders: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # the FIX client's, by ClOrdID

    def problems(self, chaos: bool = False) -> list[str]:
        """Everything that says an order was lost or repeated (empty: none)."""
        stats, venue = self.flows, self.venue
        sequenced = sum(int(s.get("sequenced", 0)) for s in stats.values())
        filled = sum(int(s.get("filled", 0)) for s in stats.values())
        problems = []
        if sequenced == 0:
            problems.append("no order was sequenced")
        if any(int(s.get("unanswered", 0)) or int(s.get("open", 0)) for s in stats.values()):
            problems.append("orders without an answer or an end")
        if filled != sequenced:
            problems.append(f"filled={filled} != sequenced={sequenced}")
        # every sequence number, from 1 up, went to the exchange once: none skipped, none twice
        sent = venue.get("orders_sent", 0)
        if sent < sequenced or venue.get("last_seq") != sent or (self.exchange_orders is not None and self.exchange_orders != sent):
            problems.append(f"the venue took {sent} orders up to sequence {venue.get('last_seq')}, the exchange received "
                            f"{self.exchange_orders}, the flows alone had {sequenced} sequenced")
        if venue.get("repeated_to_venue", 0) or venue.get("gaps", 0) or any(int(s.get("repeated", 0)) for s in stats.values()):
            problems.append("something was repeated or skipped")
        fix = self.fix
        if fix and (fix.get("sent", 0) == 0 or fix.get("filled", 0) + fix.get("rejected", 0) + fix.get("business_rejects", 0) != fix["sent"]):
            problems.append(f"FIX orders without an end: {fix}")
        if chaos and len(self.kills) < 2:
            problems.append(f"only {len(self.kills)} leader kills happened (no leader found in time)")
        return problems


def run_pipeline(run_dir: str, seconds: float, *, kills: int | Sequence[str] = 0, verbose: bool = False, out: IO[str] | None = None,
                 during: Callable[[Supervisor, float], None] | None = None, rate: int | None = None,
                 table_every: float = 5.0, before_stop: Callable[[Supervisor], None] | None = None,
                 around_kill: Callable[[Supervisor, str, str], None] | None = None) -> PipelineRun:
    """Run the example topology under ``run_dir``: the flows send for ``seconds``;
    ``kills``: processes to kill -9 (each restarted), spread over that time: a number of
    leader kills, or a sequence of ``"leader"`` / ``"follower"`` / a process's name; ``during(sup,
    elapsed)`` is called every ~0.1 s.  Then every order is waited for (bounded),
    ``before_stop(sup)`` is called (the pipeline still up), and everything is stopped.
    ``around_kill(sup, name, phase)``: called around the kill of a process by name, phase
    ``before``, ``burst`` (the gateway's only: the FIX client has just written a burst of
    orders) and ``after`` (the kill sent)."""
    out = out or sys.stdout
    path = example_topology(run_dir)
    if rate is not None:
        _rewrite_rate(path, rate)
    topo = load(path)
    extra = ("--seconds", str(seconds))
    topo.processes = [dataclasses.replace(p, argv=(*p.argv, *extra)) if p.role == "order flow" else p for p in topo.processes]

    def echo(name: str, line: str) -> bool:
        return verbose or "Traceback" in line or "Error" in line or " ERROR " in line or "fault=" in line

    victims = ["leader"] * kills if isinstance(kills, int) else list(kills)
    sup = Supervisor(topo, restart=bool(victims), out=out, echo=echo)
    flows = [p for p in topo.processes if p.role == "order flow"]
    done_kills: list[str] = []
    fix_client: FixClient | None = None
    try:
        sup.start()
        if "fix_gateway" in topo.doc:
            fix_client = FixClient(int(topo.doc["fix_gateway"]["acceptor"]["port"]), seconds)
        t0 = time.monotonic()
        # The flows' clocks start when they connect (after the cluster's first election): the
        # run's time, and the leader kills, count from when the first orders went through.
        flowing: float | None = None
        kill_at: list[float] = []
        next_table = t0 + table_every
        start_deadline = t0 + 60.0
        while flowing is None or time.monotonic() < flowing + seconds:
            sup.pump(0.1)
            now = time.monotonic()
            if flowing is None:
                if all((_read(p.status_file) or {}).get("sequenced", 0) > 0 for p in flows):
                    flowing = now
                    kill_at = [now + seconds * (i + 1) / (len(victims) + 1.5) for i in range(len(victims))]
                elif now > start_deadline:
                    print("tickline demo: the flows sent nothing within 60 s (see the processes' lines above)", file=out, flush=True)
                    break
            if during is not None:
                during(sup, now - t0)
            if fix_client is not None:
                fix_client.do_work()
            if kill_at and now >= kill_at[0] and victims[len(victims) - len(kill_at)] not in ("leader", "follower"):
                name = victims[len(victims) - len(kill_at)]  # a process by name
                if sup.children[name].alive:
                    if around_kill is not None:
                        around_kill(sup, name, "before")
                    if fix_client is not None and name == "fix-gateway":
                        fix_client.burst(5)  # orders in flight when it dies: the case a gateway kill is about
                        if around_kill is not None:
                            around_kill(sup, name, "burst")
                    pid = sup.kill(name)
                    if around_kill is not None:
                        around_kill(sup, name, "after")
                    done_kills.append(f"{name} (pid {pid}) at {now - t0:.1f} s")
                    print(f"tickline demo: chaos: kill -9 {name} pid={pid}", file=out, flush=True)
                kill_at.pop(0)
            if kill_at and now >= kill_at[0]:
                role = victims[len(victims) - len(kill_at)]
                roles = sup.member_roles()
                if "leader" in roles.values():  # a follower is killed only while there is a leader too
                    m = next((m for m, r in sorted(roles.items()) if r == role), None)
                    if m is not None:
                        pid = sup.kill(f"member-{m}")
                        done_kills.append(f"member-{m} ({role}, pid {pid}) at {now - t0:.1f} s")
                        print(f"tickline demo: chaos: kill -9 the {role}, member-{m} pid={pid}", file=out, flush=True)
                        kill_at.pop(0)
            if table_every and now >= next_table:
                next_table = now + table_every
                print(sup.status_table(sup.member_roles()), file=out, flush=True)
        # drain: every order answered and at its end (bounded)
        deadline = time.monotonic() + (30.0 if victims else 15.0)
        while time.monotonic() < deadline:
            sup.pump(0.05)
            fix_done = True
            if fix_client is not None:
                fix_client.do_work()
                fix_done = fix_client.done
            st = [_read(p.status_file) for p in flows]
            if not fix_done:
                continue
            if all(s and not s.get("sending") and s.get("unanswered") == 0 and s.get("open") == 0 and s.get("sent", 0) > 0 for s in st):
                break
        if table_every:
            print(sup.status_table(sup.member_roles()), file=out, flush=True)
        if before_stop is not None:
            before_stop(sup)
    finally:
        if fix_client is not None:
            fix_client.close()
        sup.stop()
    stats = {p.name: _read(p.status_file) or {} for p in flows}
    strategies = {p.name: _read(p.status_file) or {} for p in topo.processes if p.role == "strategy"}
    venue = _read(os.path.join(topo.status_dir, "venue.json")) or {}
    ex_orders = None
    ex = sup.children.get("exchange-sim")
    if ex is not None:
        for line in ex.lines:
            if "stopped orders=" in line:
                ex_orders = int(line.split("stopped orders=")[1].split()[0])
    return PipelineRun(stats, strategies, dict(fix_client.counts) if fix_client else {}, venue, ex_orders, done_kills, list(sup.events), sup,
                       dict(fix_client.orders) if fix_client else {})


def _rewrite_rate(path: str, rate: int) -> None:
    import re

    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(re.sub(r"(?m)^rate = \d+", f"rate = {rate}", text))


def run_demo(seconds: float = 10.0, chaos: bool = False, verbose: bool = False, keep: bool = False,
             out: IO[str] | None = None) -> int:
    out = out or sys.stdout
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    run_dir = tempfile.mkdtemp(prefix="tickline-demo-", dir=base)
    os.chmod(run_dir, 0o700)
    try:
        print(f"tickline demo: the trading pipeline for {seconds:g} s{' with chaos (the leader killed twice)' if chaos else ''}: "
              f"a 3-member sequencer cluster over IPC, exchange-sim (a matching book, published as market data), the venue "
              f"adapter, a synthetic feed, a market maker, a tick-to-trade probe, 2 order flows, the FIX gateway and a FIX "
              f"client (run dir {run_dir})",
              file=out, flush=True)
        run = run_pipeline(run_dir, seconds, kills=2 if chaos else 0, verbose=verbose, out=out)
        return _report(run, chaos, out)
    finally:
        if not keep:
            shutil.rmtree(run_dir, ignore_errors=True)


def _read(path: str) -> dict[str, Any] | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _report(run: PipelineRun, chaos: bool, out: IO[str]) -> int:
    kills = run.kills
    stats, venue, ex_orders = run.flows, run.venue, run.exchange_orders
    names = list(stats)
    keys = [("sent", "sent"), ("sequenced", "sequenced (risk passed)"), ("acked", "acked by the venue"), ("filled", "filled"),
            ("rejected", "rejected")]
    rows = []
    for k, label in keys:
        vals = [int(stats[n].get(k, 0)) for n in names]
        rows.append([label, *map(str, vals), str(sum(vals))])
        if k == "rejected":
            reasons: dict[str, int] = {}
            for n in names:
                for r, c in stats[n].get("reject_reasons", {}).items():
                    reasons[r] = reasons.get(r, 0) + c
            for r in sorted(reasons):
                rows.append([f"  reason={r}", *(str(stats[n].get("reject_reasons", {}).get(r, 0)) for n in names), str(reasons[r])])
    for k, label in (("unanswered", "unanswered"), ("open", "open at the end"), ("repeated", "answers repeated")):
        vals = [int(stats[n].get(k, 0)) for n in names]
        rows.append([label, *map(str, vals), str(sum(vals))])
    print("\norders", file=out)
    print(_table(["", *names, "total"], rows), file=out)
    strat_rows = []
    probe_stages: dict[str, Any] = {}
    for n, st in run.strategies.items():
        c = st.get("counters", {})
        pos = st.get("positions", {})
        summ = st.get("summary") or {}
        if "stages_us" in summ:
            probe_stages = summ["stages_us"]
        strat_rows.append([n, str(c.get("sent", 0)), str(c.get("orders", {}).get("fills", 0)), str(c.get("denied", 0)),
                           str(c.get("open_orders", 0)), ",".join(f"{s}:{p.get('quantity')}" for s, p in pos.items()) or "-",
                           ",".join(f"{p.get('realized', 0):.2f}" for p in pos.values()) or "-",
                           str(c.get("md", {}).get("received", 0)), str(c.get("md", {}).get("gaps", 0))])
    if strat_rows:
        print("\nstrategies", file=out)
        print(_table(["strategy", "orders", "fills", "denied", "open", "position", "realized", "md in", "md gaps"], strat_rows), file=out)
    lat_rows = []
    probe = [("md_to_callback", "market data publish -> strategy callback", "probe"),
             ("tick_to_trade", "tick-to-trade (publish -> order sent)", "probe")]
    for key, label, who in probe:
        st = probe_stages.get(key)
        if st and st.get("count"):
            lat_rows.append([label, who, str(st["count"]), *(f"{st[q]:.0f}" for q in ("p50", "p90", "p99", "max"))])
    for key, label in STAGES:
        samples: list[int] = []
        for n in names:
            samples += stats[n].get("samples_ns", {}).get(key, [])
        lat_rows.append([label, "flows", *_pct(samples)])
    for key, label in (("send_to_ack", "strategy order -> venue ack"), ("fill_to_callback", "venue fill -> strategy on_fill")):
        st = probe_stages.get(key)
        if st and st.get("count"):
            lat_rows.append([label, "probe", str(st["count"]), *(f"{st[q]:.0f}" for q in ("p50", "p90", "p99", "max"))])
    print("\nlatency per stage (microseconds; one loaded host, every process in Python)", file=out)
    print(_table(["stage", "measured by", "n", "p50", "p90", "p99", "max"], lat_rows), file=out)
    sequenced = sum(int(s.get("sequenced", 0)) for s in stats.values())
    print(f"\nvenue: orders taken to the exchange {venue.get('orders_sent', 0)} (last sequence {venue.get('last_seq', '-')}), "
          f"repeated to the exchange {venue.get('repeated_to_venue', 0)}, re-sent by the cluster and suppressed "
          f"{venue.get('duplicates_suppressed', 0)}, reports back {venue.get('reports', 0)}; "
          f"exchange-sim received {ex_orders if ex_orders is not None else '?'}", file=out)
    if run.fix:
        f = run.fix
        print(f"FIX client (FIX 4.4 through the gateway and the cluster): sent {f['sent']}, acked {f['acked']}, filled {f['filled']}, "
              f"rejected {f['rejected']}, business rejects {f['business_rejects']}", file=out)
    if kills:
        print(f"chaos: killed {', '.join(kills)}", file=out)
    problems = run.problems(chaos)
    if problems:
        print("result: FAILED: " + "; ".join(problems), file=out, flush=True)
        return 1
    last = venue.get("last_seq")
    print(f"result: nothing lost (all {sequenced} sequenced flow orders acked and filled, none unanswered), "
          f"nothing repeated (the exchange received each sequence number 1..{last} once)", file=out, flush=True)
    return 0
