"""``tickline sequencer flow --config FILE --name NAME``: an order-flow client
(:mod:`.flow`) from the topology's ``[[flow]]`` entry of that name."""

from __future__ import annotations

import argparse
import logging
import sys
import tomllib

from tickline.logs import add_arguments as add_log_arguments
from tickline.logs import kv, start_daemon

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
    if not start_daemon(args, "tickline sequencer flow"):
        return 2
    log = logging.getLogger("tickline.sequencer.flow")
    opts = {k: v for k, v in entry.items() if k not in ("name", CREDENTIALS_KEY)}
    flow = OrderFlow(gw, name=args.name, status_file=args.status_file, stop_after=args.seconds, **opts)
    rc = run_agent(flow, log, flow=args.name)
    s = flow.stats()
    log.info("totals %s", kv(flow=args.name, **{k: s[k] for k in ("sent", "sequenced", "acked", "filled", "rejected", "unanswered")}))
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
    add_log_arguments(f)
    f.set_defaults(func=_cmd_flow)
