"""``tickline up TOPOLOGY``, ``tickline status TOPOLOGY``, ``tickline demo``
(the pipeline; ``tickline demo ping`` is the transport's ping-pong)."""

from __future__ import annotations

import argparse
import sys
import time

from tickline.logs import LEVELS


def _load(path: str, **kw: object):
    from .config import TopologyError, load

    try:
        return load(path, **kw)  # type: ignore[arg-type]
    except TopologyError as exc:
        print(f"tickline: {exc}", file=sys.stderr)
        return None


def _cmd_up(args: argparse.Namespace) -> int:
    from .supervisor import Supervisor

    from tickline.logs import LogConfigError, resolve_level

    try:
        resolve_level(args.log_level)  # the children's level, checked once here
    except LogConfigError as exc:
        print(f"tickline up: {exc}", file=sys.stderr)
        return 2
    topo = _load(args.topology)
    if topo is None:
        return 2
    from .run import StopSignals

    sup = Supervisor(topo, restart=args.restart, log_level=args.log_level)
    signals = StopSignals()
    try:
        sup.start()
        t0 = time.monotonic()
        next_table = t0 + args.status_interval
        while not signals.stop and (args.seconds is None or time.monotonic() - t0 < args.seconds):
            sup.pump(0.1)
            if args.status_interval and time.monotonic() >= next_table:
                next_table = time.monotonic() + args.status_interval
                print(sup.status_table(sup.member_roles()), flush=True)
    finally:
        sup.restart = False
        sup.stop()
    print(sup.status_table(), flush=True)
    dead = [c.spec.name for c in sup.children.values() if c.exit_code not in (0, None, -15) and c.restarts == 0]
    return 1 if dead and args.seconds is None and not signals.stop else 0


def _cmd_status(args: argparse.Namespace) -> int:
    """From outside: the members' roles (asked over Aeron) and each component's last status file."""
    import json
    import os

    topo = _load(args.topology, check_ports=False)
    if topo is None:
        return 2
    from .supervisor import Supervisor

    sup = Supervisor(topo)
    try:
        roles = sup.member_roles()
    finally:
        if sup._link is not None:
            sup._link.close()
    print(f"{'process':<14} {'role':<20} {'pid':>8} {'state':<10} {'messages':>10} {'errors':>7}")
    rc = 0
    for p in topo.processes:
        role, pid, state, msgs, errs = p.role, "-", "?", "-", "-"
        if p.name.startswith("member-"):
            r = roles.get(int(p.name.split("-")[1]), "?")
            role, state = f"cluster {r}", "running" if r != "?" else "no answer"
            rc |= r == "?"
        elif p.status_file and os.path.exists(p.status_file):
            try:
                with open(p.status_file) as f:
                    st = json.load(f)
                pid = str(st.get("pid", "-"))
                alive = os.path.exists(f"/proc/{pid}")
                state = "running" if alive else "stopped"
                msgs = str(st.get("messages", "-"))
                errs = str(st.get("bad", st.get("errors", "-")))
            except (OSError, ValueError):
                pass
        print(f"{p.name:<14} {role:<20} {pid:>8} {state:<10} {msgs:>10} {errs:>7}")
    return int(rc)


def _cmd_demo(args: argparse.Namespace) -> int:
    if getattr(args, "demo_command", None) == "ping":
        from tickline.transport.bench import cmd_demo

        return cmd_demo(args)
    from .demo import run_demo

    return run_demo(args.seconds, chaos=args.chaos, verbose=args.verbose, keep=args.keep)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("up", help="start every process of a topology file, watch them, stop them on Ctrl-C")
    p.add_argument("topology", help="the topology file (TOML)")
    p.add_argument("--restart", action="store_true", help="restart a process that dies (default: report it only)")
    p.add_argument("--seconds", type=float, default=None, help="stop everything after this long")
    p.add_argument("--status-interval", type=float, default=5.0, help="seconds between status tables (0: none)")
    p.add_argument("--log-level", choices=LEVELS, type=str.upper,
                   help="every process's least severe level logged (default: $TICKLINE_LOG_LEVEL, else INFO)")
    p.set_defaults(func=_cmd_up)
    p = subparsers.add_parser("status", help="the processes of a running topology: roles, messages, errors")
    p.add_argument("topology", help="the topology file (TOML) the processes were started from")
    p.set_defaults(func=_cmd_status)
    p = subparsers.add_parser("demo", help="the whole trading pipeline for ~10 s, then order counts and per-stage latency "
                                           "(demo ping: the transport's ping-pong)")
    p.add_argument("--seconds", type=float, default=10.0, help="how long the order flows send")
    p.add_argument("--chaos", action="store_true", help="kill the cluster leader twice; show nothing lost or repeated")
    p.add_argument("--verbose", action="store_true", help="print every process's log lines")
    p.add_argument("--keep", action="store_true", help="keep the run directory (logs, cluster data)")
    p.set_defaults(func=_cmd_demo)
    sub = p.add_subparsers(dest="demo_command", metavar="ping")
    ping = sub.add_parser("ping", help="ping-pong between two processes on an embedded driver, with percentiles")
    ping.add_argument("--count", type=int, default=100_000, help="round trips per message size")
    ping.set_defaults(func=_cmd_demo)


def register_bench(bench_subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from .bench import register_bench as _register

    _register(bench_subparsers)
