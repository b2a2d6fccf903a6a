"""``conserve-verified docs [--out DIR]``: build the HTML documentation.

The build regenerates the theorem pages from the registry and a certificate
the proof engine produces during the build (or ``--certificate``), the claims
table, the API reference and the experiment pages from the latest run
directory (``--report-dir``, default ``results/``).  Warnings are errors
unless ``--allow-warnings``.  Exit status: Sphinx's (0 = built cleanly).
"""

from __future__ import annotations

import argparse
import pathlib

from ..docsgen import BUILDERS, build

NAME = "docs"
HELP = "build the documentation (theorem pages, claims, API, experiments) with Sphinx"

__all__ = ["HELP", "NAME", "configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=pathlib.Path, default=pathlib.Path("docs/_build/html"), help="output dir"
    )
    parser.add_argument("--builder", default="html", choices=BUILDERS)
    parser.add_argument(
        "--source", type=pathlib.Path, default=None, help="Sphinx sources (default: docs/)"
    )
    parser.add_argument(
        "--certificate",
        type=pathlib.Path,
        default=None,
        help="render this certificate JSON instead of running the proof engine now",
    )
    parser.add_argument(
        "--report-dir",
        type=pathlib.Path,
        default=None,
        help="run directory of the experiment records (default: results/ when present)",
    )
    parser.add_argument(
        "--timeout", type=float, default=None, help="per-claim solver timeout in seconds"
    )
    parser.add_argument(
        "--allow-warnings", action="store_true", help="do not treat Sphinx warnings as errors"
    )


def run(args: argparse.Namespace) -> int:
    status = build(
        args.out,
        source_dir=args.source,
        builder=args.builder,
        certificate=args.certificate,
        report_dir=args.report_dir,
        proof_timeout_s=args.timeout,
        warnings_as_errors=not args.allow_warnings,
    )
    if status == 0:
        print(f"documentation written to {args.out / 'index.html'}")
    return status
