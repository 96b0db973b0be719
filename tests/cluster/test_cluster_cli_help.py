"""Every option of every ``tickline cluster`` subcommand (and ``bench cluster``)
has help text, and ``--help`` shows the defaults (issue 18, "small but visible")."""

import argparse
import subprocess
import sys

from tickline.cli import build_parser


def _subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def _walk(name, parser):
    yield name, parser
    for sub, p in _subparsers(parser):
        yield from _walk(f"{name} {sub}", p)


def _cluster_parsers():
    root = build_parser(["tickline.cluster.cli"])
    top = dict(_subparsers(root))
    yield from _walk("cluster", top["cluster"])
    yield "bench cluster", dict(_subparsers(top["bench"]))["cluster"]


def test_every_option_and_argument_of_every_cluster_command_has_help():
    missing = []
    seen = 0
    for name, parser in _cluster_parsers():
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            seen += 1
            if not action.help:
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert seen > 20
    assert missing == []


def _help(*command):
    out = subprocess.run([sys.executable, "-m", "tickline", *command, "--help"], capture_output=True, text=True, check=True).stdout
    return " ".join(out.split())  # argparse wraps lines where it likes


def test_help_shows_the_defaults_through_the_real_command():
    out = _help("cluster", "sim")
    assert "--seeds SEEDS how many seeds to run: START .. START+N-1 (default: 1000)" in out and "(default: struct)" in out
    out = _help("bench", "cluster")
    assert "per transport and run (default: 3.0)" in out and "survives a power cut) or none (the OS writes back) (default: always)" in out
    assert "which member of the topology" in _help("cluster", "node")
    assert "how long to wait for the answers (default: 20.0)" in _help("cluster", "tool", "shutdown")
