"""The ``tickline`` command: one console script, a subcommand per job.

Each subsystem that has commands provides a module with
``register(subparsers: argparse._SubParsersAction) -> None``; the module adds its
parsers and sets ``func`` (a callable taking the parsed ``argparse.Namespace``
and returning an exit code) with ``parser.set_defaults(func=...)``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that add subcommands, in the order they appear in --help.
COMMAND_MODULES = [
    "tickline.transport.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tickline", description="Aeron/SBE transport framework for trading systems")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
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
