"""Tests of the CLI skeleton: discovery of subcommands and ``--help``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conserve_verified.cli import _command_modules, build_parser, main


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "conserve-verified" in out
    for mod in _command_modules():
        assert mod.NAME in out


def test_every_subcommand_has_help() -> None:
    parser = build_parser()
    for mod in _command_modules():
        with pytest.raises(SystemExit) as info:
            parser.parse_args([mod.NAME, "--help"])
        assert info.value.code == 0


def test_module_entry_point_runs() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "conserve_verified", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "0.1.0" in proc.stdout


def test_subcommand_help_shows_every_option_default(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in sub.choices.items():
        with pytest.raises(SystemExit):
            parser.parse_args([name, "--help"])
        out = " ".join(capsys.readouterr().out.split())
        for action in p._actions:
            if not action.option_strings or action.default in (None, argparse.SUPPRESS):
                continue
            if action.nargs == 0 or action.help == argparse.SUPPRESS:
                continue
            assert "default" in out, (name, action.dest)
            if "default" not in (action.help or "").lower():
                assert f"default: {action.default}" in out, (name, action.dest)


def test_bench_options_found_outside_the_checkout(tmp_path: Path) -> None:
    """``bench`` finds the checkout's suite with a cwd (and ``sys.path[0]``) elsewhere."""
    code = (
        "import sys; sys.path = [p for p in sys.path if p not in ('', '.')];"
        "from conserve_verified.cli import main; main(['bench', '--help'])"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "--quick" in proc.stdout and "--json" in proc.stdout
