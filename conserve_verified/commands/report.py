"""``conserve-verified report [--out DIR] [--certificate PATH]``: write ``report.md`` and ``.html``.

The report joins the experiments' claim rows with the proof certificate
written by ``conserve-verified verify --json`` (default ``<out>/certificate.json``).
Exit status 0 when the report was written and nothing failed, 1 when it was
written but some cells or experiment reports failed or record files were
quarantined (listed in the report and on stderr), 2 (one line on stderr) when
``--out`` is missing or holds no records.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from ..errors import InvalidArgument
from ..runner.discovery import discover
from ..runner.report import NoRecords, build_report
from ..runner.store import atomic_write_text, load_records

NAME = "report"
HELP = "write report.md and report.html (paper vs reproduced, per experiment) from stored results"

__all__ = ["HELP", "NAME", "configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=pathlib.Path,
        default=pathlib.Path("results"),
        help="result store to report on (default: %(default)s)",
    )
    parser.add_argument(
        "--certificate",
        type=pathlib.Path,
        default=None,
        help="proof certificate from `verify --json` (default: OUT/certificate.json)",
    )
    parser.add_argument(
        "--csv",
        type=pathlib.Path,
        default=None,
        help="also write every record as one CSV row (config.*, metrics.* columns) to this file",
    )
    parser.add_argument(
        "--parquet",
        type=pathlib.Path,
        default=None,
        help="also write the records as Parquet (needs pyarrow or fastparquet)",
    )
    parser.add_argument(
        "--experiments-dir",
        type=pathlib.Path,
        default=None,
        help="directory of experiment modules (default: ./experiments)",
    )


def run(args: argparse.Namespace) -> int:
    try:
        res = build_report(
            args.out, discover(args.experiments_dir), args.certificate, require_records=True
        )
    except NoRecords as exc:
        print(f"conserve-verified report: error: {exc}", file=sys.stderr)
        return 2
    print(f"report: {res.markdown} and {res.html}")
    if args.csv is not None or args.parquet is not None:
        frame = load_records(args.out)
        if args.csv is not None:
            atomic_write_text(args.csv, frame.to_csv(index=False))
            print(f"records: {len(frame)} rows -> {args.csv}")
        if args.parquet is not None:
            try:
                frame.to_parquet(args.parquet, index=False)
            except ImportError as exc:
                raise InvalidArgument("--parquet", str(args.parquet), str(exc)) from None
            print(f"records: {len(frame)} rows -> {args.parquet}")
    for p in res.problems:
        print(f"conserve-verified report: {p}", file=sys.stderr)
    return 1 if res.problems else 0
