"""The ``tickline`` command: one console script, a subcommand per job.

Each subsystem that has commands provides a module with
``register(subparsers: argparse._SubParsersAction) -> None``; the module adds its
parsers and sets ``func`` (a callable taking the parsed ``argparse.Namespace``
and returning an exit code) with ``parser.set_defaults(func=...)``.  A module that has a benchmark also provides
``register_bench(bench_subparsers) -> None`` and adds ``tickline bench NAME``.

Running a command imports only the module that defines it (``_COMMANDS`` /
``_BENCHES`` say which; a command missing there, ``--help`` and no command
import every module of ``COMMAND_MODULES``), so one broken subsystem leaves
the others' commands working, and a command does not pay for every import.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any

# Modules that add subcommands, in the order they appear in --help.
COMMAND_MODULES = [
    "tickline.transport.cli",
    "tickline.transport.bench_transports",
    "tickline.benchkit",
    "tickline.codecs.cli",
    "tickline.fix_gateway.cli",
    "tickline.cluster.cli",
    "tickline.archive.cli",
    # the trading application (ARCHITECTURE.md: framework and application)
    "tickline.venue.cli",
    "tickline.sequencer.cli",
    "tickline.topology.cli",
    "tickline.strategy.cli",
]

# Which module defines a command: only an optimisation (a command not listed
# here is found by importing every module of COMMAND_MODULES).
_COMMANDS = {
    "driver": "tickline.transport.cli",
    "stat": "tickline.transport.cli",
    "demo": "tickline.topology.cli",
    "codegen": "tickline.codecs.cli",
    "sbe-decode": "tickline.codecs.cli",
    "sbe-encode": "tickline.codecs.cli",
    "sbe-compat": "tickline.codecs.cli",
    "fix-gateway": "tickline.fix_gateway.cli",
    "fix-store": "tickline.fix_gateway.cli",
    "exchange-sim": "tickline.venue.cli",
    "venue": "tickline.venue.cli",
    "cluster": "tickline.cluster.cli",
    "archive": "tickline.archive.cli",
    "sequencer": "tickline.sequencer.cli",
    "up": "tickline.topology.cli",
    "status": "tickline.topology.cli",
    "strategy": "tickline.strategy.cli",
    "feed": "tickline.strategy.cli",
    "archive": "tickline.archive.cli",
}
_BENCHES = {
    "ping": "tickline.transport.cli",
    "codecs": "tickline.codecs.cli",
    "fix": "tickline.fix_gateway.cli",
    "cluster": "tickline.cluster.cli",
    "transports": "tickline.transport.bench_transports",
    "compare": "tickline.benchkit",
    "feed": "tickline.strategy.cli",
    "pipeline": "tickline.topology.cli",
}


class HelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to an option's help when it has a default worth
    showing (not None, not False) and the help does not already say it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (not action.option_strings or default is None or default is False or default is argparse.SUPPRESS
                or default == [] or "default" in text or isinstance(action, argparse._VersionAction)):
            return action.help
        return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    # Every parser under `tickline` (subcommands included) shows its defaults.
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def version_text() -> str:
    """tickline's version and the Aeron version it was built with.

    Aeron's own string (``AERON_VERSION``) reads ``aeron version=1.x commit=<sha>``, but its build
    takes ``<sha>`` from ``git log`` run in its source folder, which here is a folder of the
    build directory, not an Aeron checkout: the sha is then that of whatever repository
    encloses the build (tickline's own checkout), ``+guilty`` appended when that tree has
    uncommitted changes, or nothing but ``+guilty`` when built outside any repository (an
    sdist): hence ``commit=+guilty``.  It names no Aeron commit, so it is left out; the Aeron
    version is the pinned source release's.
    """
    from tickline import __version__

    lines = [f"tickline {__version__}"]
    try:
        from tickline._aeron import AERON_VERSION
    except Exception as exc:  # the extension did not load: say so, --version still answers
        lines.append(f"aeron unavailable (extension did not load: {type(exc).__name__}: {exc})")
        return "\n".join(lines)
    fields = dict(part.split("=", 1) for part in str(AERON_VERSION).split() if "=" in part)
    lines.append(f"aeron {fields.get('version', AERON_VERSION)}")
    return "\n".join(lines)


class _VersionAction(argparse.Action):
    # Computes the text only when asked (it loads the extension).
    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(version_text())
        parser.exit(0)


def _modules_for(argv: list[str]) -> list[str]:
    """The modules needed to parse ``argv``: the one defining its command when
    known, else all of them."""
    words = [a for a in argv if not a.startswith("-")]
    if not words and "--version" in argv:
        return []
    if not words or any(a in ("-h", "--help") for a in argv[: argv.index(words[0])]):
        return list(COMMAND_MODULES)
    table, name = (_BENCHES, words[1] if len(words) > 1 else None) if words[0] == "bench" else (_COMMANDS, words[0])
    module = table.get(name) if name else None
    return [module] if module in COMMAND_MODULES else list(COMMAND_MODULES)


def build_parser(modules: list[str] | None = None) -> argparse.ArgumentParser:
    parser = _Parser(prog="tickline", description="Aeron/SBE transport framework for trading systems")
    parser.add_argument("--version", action=_VersionAction, help="print tickline's version and Aeron's, then exit")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    bench = subparsers.add_parser("bench", help="benchmarks, each against a named peer measured in the same run")
    bench_subparsers = bench.add_subparsers(dest="bench", metavar="BENCH")

    def bench_help(_args: argparse.Namespace) -> int:
        bench.print_help()
        return 2

    bench.set_defaults(func=bench_help)
    for name in COMMAND_MODULES if modules is None else modules:
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


def main(argv: list[str] | None = None, modules: list[str] | None = None) -> int:
    """Run the command ``argv`` names (default: ``sys.argv[1:]``); its exit code.  ``modules``: the
    command modules to offer (default: those ``argv`` needs); a subsystem's stand-alone entry
    (``python -m tickline.fix_gateway.cli``) passes its own."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_modules_for(argv) if modules is None else modules)
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
