"""``tickline exchange-sim --config FILE``: the simulated venue as an Aeron
service (section ``[exchange_sim]``); ``tickline venue --config FILE``: the
venue adapter between the sequencer cluster and that venue (section
``[venue]``).  SIGTERM/SIGINT stop either, exit 0.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading


def _cmd_exchange_sim(args: argparse.Namespace) -> int:
    from tickline.transport import AeronError

    from tickline.fix_gateway.config import ConfigError

    from .exchange_service import load_exchange_config, run_exchange_sim

    try:
        cfg = load_exchange_config(args.config)
    except ConfigError as e:
        print(f"tickline exchange-sim: {e}", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    s = cfg.streams

    def running(agent) -> None:
        print(f"tickline exchange-sim: running orders={s.order_channel}#{s.order_stream_id} "
              f"reports={s.report_channel}#{s.report_stream_id} default_mode={cfg.default_mode}",
              file=sys.stderr, flush=True)
    try:
        agent = run_exchange_sim(cfg, stop, running)
    except (AeronError, ValueError) as e:
        print(f"tickline exchange-sim: {e}", file=sys.stderr)
        return 1
    print(f"tickline exchange-sim: stopped orders={agent.orders} reports={agent.reports} bad={agent.bad} "
          f"unsent={agent.venue.pending} replayed={agent.venue.replayed} md_published={agent.md_published}", file=sys.stderr, flush=True)
    for err in agent.errors:
        print(f"tickline exchange-sim: bad input: {err}", file=sys.stderr)
    return 0



def _cmd_venue(args: argparse.Namespace) -> int:
    from tickline.cluster.daemon import load_topology
    from tickline.cluster.errors import ClusterError
    from tickline.fix_gateway.config import ConfigError as FixConfigError
    from tickline.sequencer.client import CREDENTIALS_KEY, cluster_credentials
    from tickline.topology.run import run_agent

    from .adapter import ConfigError, VenueAdapter, load_venue_config
    from .exchange_service import load_exchange_config

    try:
        topo = load_topology(args.config)
        cfg = load_venue_config(args.config)
        streams = load_exchange_config(args.config).streams
        credentials = cluster_credentials(cfg.cluster_credentials_file, f"venue.{CREDENTIALS_KEY}")
    except (ClusterError, ConfigError, FixConfigError, OSError) as e:
        print(f"tickline venue: {e}", file=sys.stderr)
        return 2
    if args.status_file:
        import dataclasses
        cfg = dataclasses.replace(cfg, status_file=args.status_file)
    adapter = VenueAdapter(topo.members, streams, cfg, aeron_dir=topo.aeron_dir, credentials=credentials)
    rc = run_agent(adapter, "venue")
    print(f"tickline venue: orders_sent={adapter.orders_sent} reports={adapter.reports} "
          f"duplicates_suppressed={adapter.orders.duplicates_suppressed} bad={adapter.bad}", file=sys.stderr, flush=True)
    return rc


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("exchange-sim", help="run the simulated venue as an Aeron service")
    p.add_argument("--config", required=True, help="topology file (TOML) with an [exchange_sim] section")
    p.set_defaults(func=_cmd_exchange_sim)
    p = subparsers.add_parser("venue", help="run the venue adapter: sequenced orders from the cluster to the exchange, reports back")
    p.add_argument("--config", required=True, help="topology file (TOML): [cluster], [exchange_sim], [venue]")
    p.add_argument("--status-file", default="", help="write counters (JSON) here every 0.5 s")
    p.set_defaults(func=_cmd_venue)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m tickline.venue.cli``), the same commands as under ``tickline``."""
    parser = argparse.ArgumentParser(prog="tickline")
    register(parser.add_subparsers(dest="command", metavar="COMMAND"))
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    return int(func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
