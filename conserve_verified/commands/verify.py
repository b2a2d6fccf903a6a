"""``conserve-verified verify``: check every registered theorem and mutant; write a certificate.

Loads every theory file of ``proofs/`` (or ``--proofs-dir``), checks each
theorem and each mutant with a per-claim timeout, prints a table (theorem,
expected, verdict, time, mutants refuted) and optionally writes the JSON
certificate (:mod:`conserve_verified.proof.certificate`).  Exit status: 0 when
every theorem came out as expected and every mutant was ``REFUTED``; 1
otherwise (or when a theory file failed to load); 2 for a usage error.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

from ..proof import (
    PROOFS_DIR,
    Status,
    Theorem,
    TheoremResult,
    check_all,
    load_theory_file,
    write_certificate,
)
from ..proof.check import default_timeout
from ..proof.claims import _check_timeout
from ..proof.registry import theory_files

NAME = "verify"
HELP = "check every theorem (must be PROVED) and mutant (must be REFUTED); write a certificate"

__all__ = ["HELP", "NAME", "configure", "format_table", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", type=pathlib.Path, default=None, help="write the certificate here"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds per claim (default: $CONSERVE_PROOF_TIMEOUT or 20)",
    )
    parser.add_argument(
        "-k", dest="pattern", default=None, help="only theorems whose id/name/theory matches"
    )
    parser.add_argument(
        "--proofs-dir",
        type=pathlib.Path,
        default=None,
        help=f"directory of theory files (default: {PROOFS_DIR})",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print every verdict's reason")


def _mark(ok: bool) -> str:
    return "ok" if ok else "FAIL"


def format_table(results: list[TheoremResult]) -> str:
    """The result table as fixed-width text."""
    rows = [("theorem", "name", "expected", "verdict", "time_s", "mutants refuted", "result")]
    for r in results:
        refuted = sum(v.status is Status.REFUTED for _, v in r.mutants)
        mutant_time = sum(v.time_s for _, v in r.mutants)
        rows.append(
            (
                r.theorem.id,
                r.theorem.name[:40],
                r.theorem.expect.value,
                r.verdict.status.value,
                f"{r.verdict.time_s + mutant_time:.2f}",
                f"{refuted}/{len(r.mutants)}",
                _mark(r.ok),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def _failures(results: list[TheoremResult]) -> list[str]:
    out = []
    for r in results:
        if not r.theorem_ok:
            out.append(
                f"{r.theorem.id}: expected {r.theorem.expect.value}\n" + r.verdict.describe()
            )
        for m, v in r.mutants:
            if v.status is not Status.REFUTED:
                out.append(f"{r.theorem.id} mutant {m.id}: expected REFUTED\n" + v.describe())
    return out


def run(args: argparse.Namespace) -> int:
    timeout = default_timeout() if args.timeout is None else _check_timeout(args.timeout)
    load_errors: list[str] = []
    theorems: list[Theorem] = []
    for path in theory_files(args.proofs_dir):
        try:
            theorems.extend(load_theory_file(path))
        except Exception as exc:  # report every broken theory file, keep checking the others
            load_errors.append(f"{path}: {type(exc).__name__}: {exc}")
    start = time.perf_counter()
    results = check_all(theorems, timeout, args.pattern)
    total = time.perf_counter() - start
    print(format_table(results))
    ok = all(r.ok for r in results) and not load_errors
    print(
        f"\n{len(results)} theorems, {sum(len(r.mutants) for r in results)} mutants, "
        f"{total:.1f} s, timeout {timeout:g} s per claim: {'all as expected' if ok else 'FAILED'}"
    )
    if args.verbose:
        for r in results:
            print(f"\n{r.theorem.id}: " + r.verdict.describe())
            for m, v in r.mutants:
                print(f"  mutant {m.id}: " + v.describe().replace("\n", "\n  "))
    for failure in _failures(results):
        print("\n" + failure, file=sys.stderr)
    for err in load_errors:
        print(f"\ncould not load {err}", file=sys.stderr)
    if args.json is not None:
        path = write_certificate(args.json, results, timeout)
        print(f"certificate written to {path}")
    return 0 if ok else 1
