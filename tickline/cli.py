"""The ``tickline`` command: one console script, a subcommand per job.

Each subsystem that has commands provides a module with
``register(subparsers: argparse._SubParsersAction) -> None``; the module adds its
parsers and sets ``func`` (a callable taking the parsed ``argparse.Namespace``
and returning an exit code) with ``parser.set_defaults(func=...)``.  A module that has a benchmark also provides
``register_bench(bench_subparsers) -> None`` and adds ``tickline bench NAME``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that add subcommands, in the order they appear in --help.
COMMAND_MODULES = [
    "tickline.transport.cli",
    "tickline.transport.bench_transports",
    "tickline.benchkit",
    "tickline.codecs.cli",
    "tickline.fix_gateway.cli",
    "tickline.cluster.cli",
    "tickline.archive.cli",
    # the trading application (DESIGN.md: framework and application)
    "tickline.venue.cli",
    "tickline.sequencer.cli",
    "tickline.topology.cli",
    "tickline.strategy.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tickline", description="Aeron/SBE transport framework for trading systems")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    bench = subparsers.add_parser("bench", help="benchmarks, each against a named peer measured in the same run")
    bench_subparsers = bench.add_subparsers(dest="bench", metavar="BENCH")
    bench.set_defaults(func=lambda _args: bench.print_help() or 2)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and (name + ".").startswith(exc.name + "."):  # an optional package not installed (or not written yet): no commands from it
                continue
            print(f"tickline: the commands of {name} are unavailable: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        except Exception as exc:  # one broken subsystem must not take every other command down with it
            print(f"tickline: the commands of {name} are unavailable: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        if hasattr(module, "register"):
            module.register(subparsers)
        if hasattr(module, "register_bench"):
            module.register_bench(bench_subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
