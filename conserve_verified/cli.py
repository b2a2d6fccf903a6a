"""Command-line interface ``conserve-verified``.

Subcommands live in :mod:`conserve_verified.commands`, one module each; a
module defines ``NAME``, ``HELP``, ``configure(parser)`` and ``run(args) -> int``
(and optionally ``DESCRIPTION`` and ``EPILOG`` for its ``--help``).  The CLI
discovers them, so adding a subcommand touches only its own module.  Every
subcommand's ``--help`` shows the defaults of its options.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType

from . import __version__, commands
from .errors import ConserveError

__all__ = ["build_parser", "main"]


def _command_modules() -> list[ModuleType]:
    mods = []
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{commands.__name__}.{info.name}")
        if all(hasattr(mod, a) for a in ("NAME", "HELP", "configure", "run")):
            mods.append(mod)
    return mods


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """``--help`` shows every option's default and keeps a command's epilog as written.

    A command module may define ``DESCRIPTION`` and ``EPILOG`` (e.g. the list of
    experiments and the claims they test) besides ``HELP``.  A default is not
    repeated where the help text already states one, nor shown when it is ``None``.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text.lower() or action.default in (None, argparse.SUPPRESS):
            return text
        if action.nargs == 0:  # a flag: its default (off) goes without saying
            return text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return f"{text} (default: %(default)s)" if text else "default: %(default)s"
        return text


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per discovered command."""
    parser = argparse.ArgumentParser(
        prog="conserve-verified",
        description="Prove, fuzz and measure energy-conserved neural pipelines.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for mod in _command_modules():
        p = sub.add_parser(
            mod.NAME,
            help=mod.HELP,
            description=getattr(mod, "DESCRIPTION", mod.HELP),
            epilog=getattr(mod, "EPILOG", None),
            formatter_class=_HelpFormatter,
        )
        mod.configure(p)
        for action in p._actions:
            if action.option_strings and not action.help and action.default is not None:
                action.help = "default: %(default)s"  # argparse skips options without help
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args))
    except ConserveError as exc:
        print(f"conserve-verified {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
