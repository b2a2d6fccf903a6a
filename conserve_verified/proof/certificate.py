"""JSON certificates of a verification run (written atomically).

Shape::

    {"format": "conserve_verified.certificate/1", "created": ISO-8601 UTC,
     "versions": {"python", "z3", "sympy", "torch", "conserve_verified"},
     "ok": bool, "timeout_s": float | null,
     "theorems": [{"id", "name", "theory", "statement", "assumptions", "latex",
                   "backend", "expect", "verdict", "ok", "reason", "time_s",
                   "counterexample", "parts", "property_test", "statement_hash",
                   "refutes", "mutants": [{"id", "description", "latex",
                   "verdict", "reason", "time_s", "counterexample",
                   "statement_hash"}]}]}
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sympy  # type: ignore[import-untyped]
import torch
import z3

from .. import __version__
from ..atomic import atomic_write_text
from ._verdict import Verdict
from .check import TheoremResult

__all__ = ["FORMAT", "certificate", "versions", "write_certificate"]

FORMAT = "conserve_verified.certificate/1"


def versions() -> dict[str, str]:
    """Versions of the solvers and libraries the verdicts depend on."""
    return {
        "python": platform.python_version(),
        "z3": z3.get_version_string(),
        "sympy": sympy.__version__,
        "torch": torch.__version__,
        "conserve_verified": __version__,
    }


def _verdict(v: Verdict) -> dict[str, Any]:
    return {
        "verdict": v.status.value,
        "reason": v.reason,
        "time_s": round(v.time_s, 6),
        "backend": v.backend,
        "counterexample": v.counterexample,
        "parts": [_verdict(p) for p in v.parts],
    }


def _theorem(r: TheoremResult) -> dict[str, Any]:
    t = r.theorem
    out: dict[str, Any] = {
        "id": t.id,
        "name": t.name,
        "theory": t.theory,
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
