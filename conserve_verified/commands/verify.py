"""``conserve-verified verify``: check every registered theorem and mutant; write a certificate.

Loads every theory file of ``proofs/`` (or ``--proofs-dir``), checks each
theorem and each mutant, prints a table (theorem, scope, expected, verdict,
solvers, time, mutants refuted) and the list of instance-scoped theorems, and
optionally writes the JSON certificate
(:mod:`conserve_verified.proof.certificate`) with every SMT query saved as
SMT-LIB2 in ``smt/`` beside it.  ``-k`` matches theorem ids first (``-k T1``
selects T1 only), then names and theories.  Exit status: 0 when every theorem
came out as expected and every mutant was ``REFUTED``; 1 otherwise (or when a
theory file failed to load); 2 for a usage error or a ``-k`` that selects
nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import pathlib
import sys
import time
from collections.abc import Iterator

from ..proof import (
    PROOFS_DIR,
    Status,
    Theorem,
    TheoremResult,
    Verdict,
    check_all,
    load_theory_file,
    select,
    smt,
    write_certificate,
)
from ..proof.certificate import smt_summary
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
        "-k",
        dest="pattern",
        default=None,
        help="only theorems whose id matches (exactly or as a glob, e.g. T5*); "
        "if no id matches, those whose name or theory contains it",
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


def _solvers(v: Verdict) -> str:
    """Solvers behind an SMT verdict, over its parts: ``z3+cvc5``, ``z3 only``, or ``-``."""
    names: list[tuple[str, ...]] = []

    def walk(x: Verdict) -> None:
        if x.solvers:
            names.append(x.solvers)
        for p in x.parts:
            walk(p)

    walk(v)
    if not names:
        return "-"
    if all(len(n) == 2 for n in names):
        return "z3+cvc5"
    return "z3+cvc5 (" + ", ".join(sorted({n[0] + " only" for n in names if len(n) == 1})) + ")"


def format_table(results: list[TheoremResult]) -> str:
    """The result table as fixed-width text (names in full)."""
    rows = [
        (
            "theorem",
            "name",
            "scope",
            "expected",
            "verdict",
            "solvers",
            "time_s",
            "mutants refuted",
            "result",
        )
    ]
    for r in results:
        refuted = sum(v.status is Status.REFUTED for _, v in r.mutants)
        mutant_time = sum(v.time_s for _, v in r.mutants)
        scope = r.theorem.scope.kind if r.theorem.scope is not None else "?"
        rows.append(
            (
                r.theorem.id,
                r.theorem.name,
                scope,
                r.theorem.expect.value,
                r.verdict.status.value,
                _solvers(r.verdict),
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


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run the theory files' torch code (enumerations) on one intra-op thread.

    Verdicts must not depend on machine load: with two threads on a shared
    two-core machine an enumeration can run 20-40 times slower and hit its
    time budget; one thread keeps its time that of the work.  The previous
    thread count is restored on exit.
    """
    import torch  # local: the proof engine itself imports no torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def run(args: argparse.Namespace) -> int:
    with single_thread():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    timeout = default_timeout() if args.timeout is None else _check_timeout(args.timeout)
    load_errors: list[str] = []
    theorems: list[Theorem] = []
    for path in theory_files(args.proofs_dir):
        try:
            theorems.extend(load_theory_file(path))
        except Exception as exc:  # report every broken theory file, keep checking the others
            load_errors.append(f"{path}: {type(exc).__name__}: {exc}")
    chosen = select(theorems, args.pattern)
    if args.pattern and not chosen:
        print(
            f"verify: -k {args.pattern!r} matches no theorem id, name or theory "
            f"(ids: {', '.join(t.id for t in theorems)})",
            file=sys.stderr,
        )
        for error in load_errors:  # a theory file that failed to load may hold the match
            print(f"verify: theory file not loaded: {error}", file=sys.stderr)
        return 2
    if args.json is not None:
        smt.set_export_dir(args.json.parent / "smt")
    start = time.perf_counter()
    try:
        return _check_and_report(args, chosen, timeout, start, load_errors)
    finally:
        smt.set_export_dir(None)


def _check_and_report(
    args: argparse.Namespace,
    chosen: list[Theorem],
    timeout: float,
    start: float,
    load_errors: list[str],
) -> int:
    results = check_all(chosen, timeout)
    total = time.perf_counter() - start
    print(format_table(results))
    instances = [r.theorem for r in results if r.theorem.scope and not r.theorem.scope.is_general]
    if instances:
        print("\ninstance-scoped theorems (evidence for, not proofs of, a general statement):")
        for t in instances:
            assert t.scope is not None
            print(f"  {t.id}: {t.scope.detail}")
    ok = all(r.ok for r in results) and not load_errors
    print(
        f"\n{len(results)} theorems, {sum(len(r.mutants) for r in results)} mutants, "
        f"{total:.1f} s, timeout {timeout:g} s per claim: {'all as expected' if ok else 'FAILED'}"
    )
    summary = smt_summary(results)
    print(
        f"SMT queries: {summary['queries']} (exported as SMT-LIB2); cvc5 asked "
        f"{summary['cvc5_asked']}, decided by both solvers {summary['both_decided']}, "
        f"z3 only {summary['z3_only']}, cvc5 only {summary['cvc5_only']}; "
        f"cvc5 time {summary['cvc5_time_s']:.2f} s, z3 time {summary['z3_time_s']:.2f} s"
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
