"""The top-level ``tickline`` command: subsystems register their commands independently."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

import tickline.cli


def test_a_broken_subsystem_leaves_the_other_commands_working(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    # A subsystem whose CLI module fails to import, as one mid-edit would.
    (tmp_path / "tickline_broken_cli.py").write_text("from tickline.codecs import no_such_name\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(tickline.cli, "COMMAND_MODULES", ["tickline_broken_cli", "tickline.codecs.cli"])
    parser = tickline.cli.build_parser()
    err = capsys.readouterr().err
    assert "tickline_broken_cli are unavailable" in err and "ImportError: cannot import name 'no_such_name'" in err
    # codecs' commands are still there
    args = parser.parse_args(["codegen", "schema.xml", "-o", "out"])
    assert args.command == "codegen"


def test_every_subsystem_registers_without_error(capsys: pytest.CaptureFixture[str]) -> None:
    parser = tickline.cli.build_parser()
    assert capsys.readouterr().err == ""
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for command in ("driver", "stat", "demo", "codegen", "fix-gateway", "exchange-sim", "cluster", "bench"):
        assert command in commands


def test_no_command_prints_help_and_returns_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert tickline.cli.main([]) == 2
    assert "usage: tickline" in capsys.readouterr().out


def _run(code: str, tmp_path: Path) -> "subprocess.CompletedProcess[str]":
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "PYTHONPATH": str(tmp_path)})


def test_a_command_imports_only_its_own_subsystem(tmp_path: Path) -> None:
    # a broken subsystem listed first: `tickline stat` neither imports it nor warns about it
    (tmp_path / "tickline_broken_cli.py").write_text("raise RuntimeError('mid-edit')\n")
    code = f"""
import sys, tickline.cli as c
c.COMMAND_MODULES.insert(0, "tickline_broken_cli")
rc = c.main(["stat", "--dir", {str(tmp_path / "no-driver")!r}])
print("rc", rc)
print("loaded", sorted(m for m in sys.modules if m.endswith(".cli") or m == "tickline_broken_cli"))
"""
    r = _run(code, tmp_path)
    assert "rc 1" in r.stdout, r.stdout + r.stderr  # no driver there: stat's own error
    assert "loaded ['tickline.cli', 'tickline.transport.cli']" in r.stdout, r.stdout
    assert "unavailable" not in r.stderr and "tickline stat:" in r.stderr, r.stderr
    # a command not in the table (another helper's new module) is still found: every module loads
    r = _run(code.replace('["stat", "--dir"', '["no-such-command", "--dir"'), tmp_path)
    assert "tickline_broken_cli are unavailable: RuntimeError: mid-edit" in r.stderr, r.stderr
    assert "invalid choice: 'no-such-command'" in r.stderr and "codegen" in r.stderr, r.stderr


def test_version_names_tickline_and_the_aeron_it_was_built_with(capsys: pytest.CaptureFixture[str]) -> None:
    from tickline import __version__
    from tickline._aeron import AERON_VERSION

    with pytest.raises(SystemExit) as e:
        tickline.cli.main(["--version"])
    assert e.value.code == 0
    out = capsys.readouterr().out.splitlines()
    aeron_version = AERON_VERSION.split("version=")[1].split()[0]
    assert out[0] == f"tickline {__version__}"
    # Aeron's "commit=" is not Aeron's (the git repository around the build, "+guilty" when
    # dirty or absent): the version alone is shown
    assert out[1:] == [f"aeron {aeron_version}"], out


def test_help_shows_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, wanted in ((["bench", "fix", "--help"], ["round trips per target (default: 20000)",
                                                         "idle strategy of the tickline gateway agent (default: busy-spin)"]),
                         (["fix-gateway", "--help"], ["--log-level", "rotated log files kept (PATH.1 ... PATH.N) (default: 5)",
                                                      "default: $TICKLINE_LOG_LEVEL, else INFO"]),
                         (["stat", "--help"], ["refresh every SECONDS (default: 0.0)"])):
        with pytest.raises(SystemExit):
            tickline.cli.main(argv)
        out = "".join(capsys.readouterr().out.split())  # argparse wraps lines (even at a hyphen)
        for w in wanted:
            assert "".join(w.split()) in out, (argv, w, out)


def _undocumented(parser: argparse.ArgumentParser, path: str) -> list[str]:
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                missing += _undocumented(sub, f"{path} {name}")
        elif not action.help:
            missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    return missing


def test_every_option_and_argument_of_every_command_has_help() -> None:
    # `--help` is what an operator reads first: an option without a line of help is a guess
    missing = _undocumented(tickline.cli.build_parser(), "tickline")
    assert not missing, "\n".join(missing)
