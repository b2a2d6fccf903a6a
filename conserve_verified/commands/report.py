"""``conserve-verified report [--out DIR]``: write ``report.md`` and ``report.html``.

Exit status 0 when the report was written and nothing failed, 1 when it was
written but some cells or experiment reports failed (listed in the report and
on stderr).
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from ..runner.discovery import discover
from ..runner.report import build_report

NAME = "report"
HELP = "write report.md and report.html (paper vs reproduced, per experiment) from stored results"

__all__ = ["HELP", "NAME", "configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results"))
    parser.add_argument(
        "--experiments-dir",
        type=pathlib.Path,
        default=None,
        help="directory of experiment modules (default: ./experiments)",
    )


def run(args: argparse.Namespace) -> int:
    res = build_report(args.out, discover(args.experiments_dir))
    print(f"report: {res.markdown} and {res.html}")
    for p in res.problems:
        print(f"conserve-verified report: {p}", file=sys.stderr)
    return 1 if res.problems else 0
