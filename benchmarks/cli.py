"""Command line of the benchmark suite (shared by ``python -m benchmarks`` and
``conserve-verified bench``)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from conserve_verified.atomic import atomic_write_text
from conserve_verified.errors import ConserveError

from ._suite import PROFILES, SECTIONS, run
from .report import to_markdown

__all__ = ["configure", "execute", "main", "write_atomic"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the suite's options to ``parser``."""
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="the quick profile (default)")
    size.add_argument("--full", action="store_true", help="the full profile (more sizes, longer)")
    size.add_argument("--tiny", action="store_true", help="tiny sizes (seconds; smoke test)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the results as JSON")
    parser.add_argument(
        "--markdown", type=Path, metavar="PATH", help="write the Markdown tables to PATH"
    )
    parser.add_argument(
        "--threads",
        type=_positive,
        metavar="N",
        help="torch intra-op threads (default: the profile's; 1 on a shared machine)",
    )
    parser.add_argument(
        "--rounds",
        type=_positive,
        metavar="N",
        help="interleaved timing rounds, the fastest kept (default: the profile's)",
    )
    parser.add_argument(
        "--devices",
        nargs="+",
        choices=["cpu", "cuda"],
        metavar="DEVICE",
        help="devices of the operator section (default: cpu, and cuda when present); "
        "a named device that is missing is an error",
    )
    parser.add_argument(
        "--sections",
        nargs="+",
        choices=list(SECTIONS),
        metavar="SECTION",
        help=f"sections to run (default: all of {', '.join(SECTIONS)})",
    )


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    atomic_write_text(path, text)


def execute(args: argparse.Namespace) -> int:
    """Run the suite as ``args`` say; print the Markdown report; return 0."""
    name = "full" if args.full else "tiny" if args.tiny else "quick"
    profile = PROFILES[name]
    overrides: dict[str, Any] = {
        key: value
        for key, value in (
            ("threads", args.threads),
            ("rounds", args.rounds),
            ("devices", tuple(args.devices) if args.devices else None),
        )
        if value is not None
    }
    if overrides:
        profile = dataclasses.replace(profile, **overrides)

    def progress(name: str) -> None:
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)

    result: dict[str, Any] = run(profile, args.sections, progress)
    markdown = to_markdown(result)
    if args.json is not None:
        write_atomic(args.json, json.dumps(result, indent=2, sort_keys=True) + "\n")
    if args.markdown is not None:
        write_atomic(args.markdown, markdown)
    print(markdown, end="")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m benchmarks``."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmarks of conserve_verified (ratios against torch built-ins).",
    )
    configure(parser)
    try:
        return execute(parser.parse_args(argv))
    except ConserveError as exc:  # a typed error: one line, as conserve-verified prints it
        print(f"python -m benchmarks: error: {exc}", file=sys.stderr)
        return 2
