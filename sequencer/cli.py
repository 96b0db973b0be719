"""``tickline sequencer flow --config FILE --name NAME``: an order-flow client
(:mod:`.flow`) from the topology's ``[[flow]]`` entry of that name."""

from __future__ import annotations

import argparse
import sys
import tomllib

FLOW_KEYS = {"name", "rate", "symbol", "account", "mid", "qty", "bad_share", "seed", "cluster_credentials_file"}


def flow_entry(path: str, name: str) -> dict:
    with open(path, "rb") as f:
        doc = tomllib.load(f)
    for entry in doc.get("flow", []):
        if entry.get("name") == name:
            return entry
    raise KeyError(f"no [[flow]] entry with this name: fault=user file={path} name={name}")


def _cmd_flow(args: argparse.Namespace) -> int:
    from tickline.cluster.errors import ClusterError
    from tickline.topology.run import run_agent

    from .client import CREDENTIALS_KEY, SequencerGateway
    from .flow import OrderFlow

    try:
        entry = flow_entry(args.config, args.name)
        gw = SequencerGateway.from_topology(args.config, cluster_credentials_file=entry.get(CREDENTIALS_KEY, ""),
                                            where=f"flow.{args.name}.{CREDENTIALS_KEY}")
    except (KeyError, OSError, ClusterError, tomllib.TOMLDecodeError) as e:
        print(f"tickline sequencer flow: {e}", file=sys.stderr)
        return 2
    opts = {k: v for k, v in entry.items() if k not in ("name", CREDENTIALS_KEY)}
    flow = OrderFlow(gw, name=args.name, status_file=args.status_file, stop_after=args.seconds, **opts)
    rc = run_agent(flow, f"flow {args.name}")
    s = flow.stats()
    print(f"tickline flow {args.name}: sent={s['sent']} sequenced={s['sequenced']} acked={s['acked']} filled={s['filled']} "
          f"rejected={s['rejected']} unanswered={s['unanswered']}", file=sys.stderr, flush=True)
    return rc


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("sequencer", help="the order sequencer's clients: an order flow")
    sub = p.add_subparsers(dest="sequencer_command", metavar="CMD")
    p.set_defaults(func=lambda _a: p.print_help() or 2)
    f = sub.add_parser("flow", help="send orders at a steady rate through the cluster and follow each to its end")
    f.add_argument("--config", required=True, help="topology file (TOML) with [cluster] and a [[flow]] entry")
    f.add_argument("--name", required=True, help="the [[flow]] entry")
    f.add_argument("--seconds", type=float, default=None, help="stop sending after this long (keeps answering)")
    f.add_argument("--status-file", default="", help="write counters (JSON) here every 0.5 s")
    f.set_defaults(func=_cmd_flow)
