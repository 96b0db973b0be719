"""``tickline strategy run MODULE:CLASS --config FILE`` and the ``tickline feed`` commands."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from typing import Any

from tickline.feed.cli import StopFlag, aeron_client, register_feed
from tickline.logs import add_arguments as add_log_arguments


def load_strategy_class(spec: str) -> Any:
    """``module:Class`` -> the class; ValueError naming what is wrong (the user's input)."""
    from .strategy import Strategy

    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"expected MODULE:CLASS: value={spec!r} fault=user")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"cannot import the strategy's module: module={module_name} error={e} fault=user") from None
    cls = getattr(module, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise ValueError(f"not a Strategy subclass: value={spec!r} fault=user")
    return cls


def build_gateway(config: Any, aeron: Any, clock: Any) -> Any:
    """The order gateway ``[<section>.gateway]`` describes.

    - ``kind = "sequencer"``: ``tickline.sequencer.client.SequencerGateway`` (imported only
      here), from ``topology`` (a file; default the strategy's own config file, where one
      topology file serves all components); ``cluster_credentials_file``: its credentials
      (a 0600 file holding ``principal:secret``); other keys go to it as keyword arguments;
    - ``kind = "simulated"``: ``SimulatedVenue`` (``fill_quantity`` optional);
    - ``kind = "module:callable"``: ``callable(config=..., aeron=..., clock=..., **other keys)``.
    """
    params = {k: v for k, v in config.gateway.items() if k != "kind"}
    kind = config.gateway["kind"]
    if kind == "simulated":
        from .testing import SimulatedVenue

        unknown = set(params) - {"fill_quantity"}
        if unknown:
            raise config.error(f"gateway.{sorted(unknown)[0]}", "unknown key for kind=simulated (known: fill_quantity)")
        return SimulatedVenue(clock.time_ns, fill_quantity=params.get("fill_quantity"), follow_market_data=True)
    if kind == "sequencer":
        try:
            from tickline.sequencer.client import SequencerGateway  # type: ignore[import-not-found]
        except ImportError as e:
            raise config.error("gateway.kind", f"the sequencer client is not available: {e}") from None
        topology = params.pop("topology", config.source)
        try:
            return SequencerGateway.from_topology(topology, where=f"{config.section}.gateway.cluster_credentials_file", **params)
        except TypeError as e:
            raise config.error("gateway", f"bad gateway keys: {e}") from None
        except ValueError as e:  # the cluster's ConfigError: a credentials file that cannot be used
            raise config.error("gateway.cluster_credentials_file", str(e)) from None
    module_name, _, attr = kind.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise config.error("gateway.kind", f"cannot load the gateway factory: {e}") from None
    return factory(config=config, aeron=aeron, clock=clock, **params)


def _cmd_run(args: argparse.Namespace) -> int:
    from tickline.transport import AgentInvoker, idle_strategy_from_name

    from .config import StrategyConfigError, load_toml
    from .runner import StrategyRunner, SystemClock

    import logging

    from tickline.logs import kv, start_daemon

    if not start_daemon(args, "tickline strategy run"):
        return 2
    log = logging.getLogger("tickline.strategy")
    try:
        cls = load_strategy_class(args.strategy)
        config = load_toml(args.config, args.section)
        strategy = cls(config)
    except (ValueError, StrategyConfigError) as e:
        print(f"tickline strategy run: {e}", file=sys.stderr)
        return 2
    stop = StopFlag()
    clock = SystemClock()
    with aeron_client(args.aeron_dir or config.aeron_dir, args.embedded) as aeron:
        try:
            gateway = build_gateway(config, aeron, clock)
        except StrategyConfigError as e:
            print(f"tickline strategy run: {e}", file=sys.stderr)
            return 2
        runner = StrategyRunner(strategy, gateway, aeron=aeron, clock=clock)
        recover = getattr(gateway, "recover", None)
        if recover is not None:  # a restarted strategy takes over its open orders and position
            state = recover(config.account)
            if state is not None:
                reports, positions = state
                adopted = runner.restore(reports, positions)
                log.info("recovered %s", kv(open_orders=adopted, positions=dict(positions or {})))
        invoker = AgentInvoker(runner)
        idle = idle_strategy_from_name(config.idle)
        log.info("running %s", kv(strategy=config.name, **{"class": args.strategy}, md=f"{config.md_channel}#{config.md_stream}",
                                  gateway=config.gateway["kind"], pid=os.getpid()))
        deadline = None if args.seconds is None else time.monotonic() + args.seconds
        next_status = 0.0
        try:
            invoker.start()
            while not stop.stop and not invoker.is_closed and (deadline is None or time.monotonic() < deadline):
                idle.idle(invoker.invoke())
                if args.status_file and time.monotonic() >= next_status:
                    next_status = time.monotonic() + 1.0
                    _write_status(args.status_file, runner, running=True)
        finally:
            invoker.close()
            close = getattr(gateway, "close", None)
            if close is not None:
                close()
        status = _write_status(args.status_file, runner, running=False)
        print(json.dumps(status), flush=True)
    return 0


def _write_status(path: str | None, runner: Any, running: bool) -> dict[str, Any]:
    summary = getattr(runner.strategy, "summary", None)
    status = {"strategy": runner.config.name, "running": running, "counters": runner.counters(),
              "positions": {s: {"quantity": p.quantity, "realized": p.realized_pnl}
                            for s, p in runner.books.positions.items()},
              "summary": summary() if summary is not None else None}
    if path:
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(status, f)
        os.replace(tmp, path)
    return status


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("strategy", help="run a strategy (tickline.strategy SDK)")
    sub = p.add_subparsers(dest="strategy_command", metavar="STRATEGY_COMMAND")
    p.set_defaults(func=lambda _a: p.print_help() or 2)
    r = sub.add_parser("run", help="run MODULE:CLASS with its TOML section until SIGTERM/Ctrl-C")
    r.add_argument("strategy", metavar="MODULE:CLASS", help="the Strategy subclass to run, e.g. tickline.strategy.examples.market_maker:MarketMaker")
    r.add_argument("--config", required=True, help="TOML file with the strategy's section")
    r.add_argument("--section", default="strategy", help="the section (dotted, e.g. strategies.mm1; default strategy)")
    r.add_argument("--aeron-dir", help="media driver directory (default: the config's aeron_dir, then Aeron's)")
    r.add_argument("--embedded", action="store_true", help="run a media driver inside this process")
    r.add_argument("--seconds", type=float, help="stop after this long")
    r.add_argument("--status-file", help="write counters, positions and the strategy's summary() here (JSON, every second)")
    add_log_arguments(r)
    r.set_defaults(func=_cmd_run)
    register_feed(subparsers)


def register_bench(bench_subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from tickline.feed.bench import register_bench as register_feed_bench

    register_feed_bench(bench_subparsers)
