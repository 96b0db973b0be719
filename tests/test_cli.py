"""The top-level ``tickline`` command: subsystems register their commands independently."""

from __future__ import annotations

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
