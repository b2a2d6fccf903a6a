"""JSON certificates of a verification run (written atomically).

Shape::

    {"format": "conserve_verified.certificate/2", "created": ISO-8601 UTC,
     "versions": {"python", "z3", "cvc5", "sympy", "torch", "conserve_verified"},
     "ok": bool, "timeout_s": float | null,
     "budgets": {"z3_rlimit", "cvc5_rlimit", "safety_timeout_s"},
     "smt": {"queries", "both_unsat", "z3_only", "cvc5_only", "cvc5_time_s", "folder"},
     "theorems": [{"id", "name", "theory", "scope": {"kind", "detail"}, "statement",
                   "assumptions", "latex", "backend", "expect", "verdict", "ok", "reason",
                   "time_s", "solvers", "counterexample", "details", "parts",
                   "property_test", "statement_hash", "refutes", "corrects",
                   "mutants": [{"id", "description", "latex", "verdict", "reason", "time_s",
                                "counterexample", "statement_hash", ...}]}]}

``details`` of an SMT part holds the witness that its hypotheses are
satisfiable, the unsat core, the unused hypotheses, which hypotheses are
necessary (drop-one mutants) and, per query, both solvers' answers with the
SHA-256 of the query's SMT-LIB2 text and its file name in the ``smt`` folder.

The engine imports no torch: library versions are read from package metadata.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sympy  # type: ignore[import-untyped]
import z3

from ..atomic import atomic_write_text
from . import smt
from ._verdict import Verdict
from .check import TheoremResult

__all__ = ["FORMAT", "certificate", "smt_summary", "versions", "write_certificate"]

FORMAT = "conserve_verified.certificate/2"


def versions() -> dict[str, str]:
    """Versions of the solvers and libraries the verdicts depend on."""
    return {
        "python": platform.python_version(),
        "z3": z3.get_version_string(),
        "cvc5": _dist_version("cvc5"),
        "sympy": sympy.__version__,
        "torch": _dist_version("torch"),
        "conserve_verified": _dist_version("conserve_verified"),
    }


def _dist_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _queries(v: Verdict) -> list[dict[str, Any]]:
    out = list(v.details.get("queries", []))
    for p in v.parts:
        out.extend(_queries(p))
    return out


def smt_summary(results: Sequence[TheoremResult]) -> dict[str, Any]:
    """Counts over every SMT query of ``results``: how many, decided by both solvers or one."""
    queries = []
    for r in results:
        queries.extend(_queries(r.verdict))
        for _, v in r.mutants:
            queries.extend(_queries(v))
    decided = {"sat", "unsat"}
    both = sum(q["z3"]["result"] in decided and q["cvc5"]["result"] in decided for q in queries)
    z3_only = sum(
        q["z3"]["result"] in decided and q["cvc5"]["result"] not in decided for q in queries
    )
    cvc5_only = sum(
        q["cvc5"]["result"] in decided and q["z3"]["result"] not in decided for q in queries
    )
    asked = [q for q in queries if q["cvc5"]["reason"] != "not asked"]
    return {
        "queries": len(queries),
        "cvc5_asked": len(asked),
        "both_decided": both,
        "z3_only": z3_only,
        "cvc5_only": cvc5_only,
        "cvc5_time_s": round(sum(q["cvc5"]["time_s"] for q in asked), 4),
        "z3_time_s": round(sum(q["z3"]["time_s"] for q in queries), 4),
        "folder": None if smt.export_dir() is None else str(smt.export_dir()),
    }


def _verdict(v: Verdict) -> dict[str, Any]:
    return {
        "verdict": v.status.value,
        "reason": v.reason,
        "time_s": round(v.time_s, 6),
        "backend": v.backend,
        "solvers": list(v.solvers),
        "counterexample": v.counterexample,
        "details": v.details,
        "parts": [_verdict(p) for p in v.parts],
    }


def _theorem(r: TheoremResult) -> dict[str, Any]:
    t = r.theorem
    out: dict[str, Any] = {
        "id": t.id,
        "name": t.name,
        "theory": t.theory,
        "scope": None if t.scope is None else t.scope.as_dict(),
        "statement": t.statement,
        "assumptions": list(t.assumptions),
        "latex": t.latex,
        "backend": t.backend,
        "expect": t.expect.value,
        "ok": r.ok,
        **_verdict(r.verdict),
        "property_test": t.property_test,
        "statement_hash": t.statement_hash,
        "refutes": None
        if t.refutes is None
        else {"claim": t.refutes.claim_id, "text": t.refutes.text},
        "corrects": t.corrects or None,
        "mutants": [
            {
                "id": m.id,
                "description": m.description,
                "latex": m.claim.latex(),
                "statement_hash": m.claim.statement_hash(),
                **_verdict(v),
            }
            for m, v in r.mutants
        ],
    }
    return out


def certificate(results: Sequence[TheoremResult], timeout_s: float | None = None) -> dict[str, Any]:
    """The certificate of ``results`` as a JSON-serialisable dict."""
    return {
        "format": FORMAT,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "versions": versions(),
        "ok": all(r.ok for r in results),
        "timeout_s": timeout_s,
        "budgets": {
            "z3_rlimit": smt.Z3_RLIMIT,
            "cvc5_rlimit": smt.CVC5_RLIMIT,
            "safety_timeout_s": smt.SAFETY_TIMEOUT_S,
        },
        "smt": smt_summary(results),
        "theorems": [_theorem(r) for r in results],
    }


def write_certificate(
    path: str | os.PathLike[str], results: Sequence[TheoremResult], timeout_s: float | None = None
) -> Path:
    """Write :func:`certificate` to ``path`` atomically (temp file + rename); return the path."""
    target = Path(path)
    data = json.dumps(certificate(results, timeout_s), indent=2, sort_keys=False) + "\n"
    atomic_write_text(target, data)
    return target
