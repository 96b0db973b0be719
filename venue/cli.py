"""``tickline exchange-sim --config FILE``: the simulated venue as an Aeron
service (section ``[exchange_sim]``); ``tickline venue --config FILE``: the
venue adapter between the sequencer cluster and that venue (section
``[venue]``).  SIGTERM/SIGINT stop either, exit 0.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from tickline.logs import add_arguments as add_log_arguments
from tickline.logs import kv, start_daemon


def _cmd_exchange_sim(args: argparse.Namespace) -> int:
    from tickline.transport import AeronError

    from tickline.fix_gateway.config import ConfigError

    from .exchange_service import load_exchange_config, run_exchange_sim

    try:
        cfg = load_exchange_config(args.config)
    except ConfigError as e:
        print(f"tickline exchange-sim: {e}", file=sys.stderr)
        return 2
    if not start_daemon(args, "tickline exchange-sim"):
        return 2
    log = logging.getLogger("tickline.venue.exchange_sim")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    s = cfg.streams

    def running(agent) -> None:
        log.info("running %s", kv(orders=f"{s.order_channel}#{s.order_stream_id}",
                                  reports=f"{s.report_channel}#{s.report_stream_id}", default_mode=cfg.default_mode))
    try:
        agent = run_exchange_sim(cfg, stop, running)
    except (AeronError, ValueError) as e:
        log.error("failed %s", kv(error=e))
        return 1
    log.info("stopped %s", kv(orders=agent.orders, reports=agent.reports, bad=agent.bad, unsent=agent.venue.pending,
                              replayed=agent.venue.replayed, md_published=agent.md_published))
    for err in agent.errors:
        log.warning("bad input %s", kv(error=err))
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
    if not start_daemon(args, "tickline venue"):
        return 2
    log = logging.getLogger("tickline.venue")
    if args.status_file:
        import dataclasses
        cfg = dataclasses.replace(cfg, status_file=args.status_file)
    adapter = VenueAdapter(topo.members, streams, cfg, aeron_dir=topo.aeron_dir, credentials=credentials)
    rc = run_agent(adapter, log)
    log.info("totals %s", kv(orders_sent=adapter.orders_sent, reports=adapter.reports,
                             duplicates_suppressed=adapter.orders.duplicates_suppressed, bad=adapter.bad))
    return rc


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("exchange-sim", help="run the simulated venue as an Aeron service")
    p.add_argument("--config", required=True, help="topology file (TOML) with an [exchange_sim] section")
    add_log_arguments(p)
    p.set_defaults(func=_cmd_exchange_sim)
    p = subparsers.add_parser("venue", help="run the venue adapter: sequenced orders from the cluster to the exchange, reports back")
    p.add_argument("--config", required=True, help="topology file (TOML): [cluster], [exchange_sim], [venue]")
    p.add_argument("--status-file", default="", help="write counters (JSON) here every 0.5 s")
    add_log_arguments(p)
    p.set_defaults(func=_cmd_venue)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m tickline.venue.cli``), the same commands as under ``tickline``."""
    from tickline import cli

    return cli.main(argv, modules=["tickline.venue.cli"])


if __name__ == "__main__":
    sys.exit(main())
