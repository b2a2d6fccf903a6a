"""Seconds per theorem of the proof suite (claim and each mutant), with verdicts.

Loads every theory file of ``proofs/`` (:func:`conserve_verified.proof.load_theories`)
and checks each registered theorem and its mutants with
:func:`~conserve_verified.proof.check_theorem` /
:func:`~conserve_verified.proof.check_mutant` under ``profile.proof_timeout_s``
per claim.  Times are wall clock, single run (solver times vary little from run
to run compared with their spread across theorems).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._suite import Profile

__all__ = ["run"]


def run(profile: Profile) -> dict[str, Any]:
    """One row per theorem: id, theory, backend, verdicts and seconds."""
    # imported here: the solvers are needed by this section only (the operator
    # section runs where they are not installed, e.g. on a GPU machine)
    from conserve_verified import proof

    start = time.perf_counter()
    theorems = list(proof.load_theories())
    load_s = time.perf_counter() - start
    registered = len(theorems)
    if profile.max_theorems is not None:
        theorems = theorems[: profile.max_theorems]
    rows: list[dict[str, Any]] = []
    for theorem in theorems:
        verdict = proof.check_theorem(theorem, profile.proof_timeout_s)
        mutants = [(m, proof.check_mutant(m, profile.proof_timeout_s)) for m in theorem.mutants]
        rows.append(
            {
                "id": theorem.id,
                "theory": theorem.theory,
                "backend": verdict.backend,
                "scope": theorem.scope.kind if theorem.scope is not None else "",
                "status": str(verdict.status),
                "expected": str(theorem.expect),
                "claim_s": verdict.time_s,
                "mutants": len(mutants),
                "mutants_refuted": sum(v.status is proof.Status.REFUTED for _, v in mutants),
                "mutants_s": sum(v.time_s for _, v in mutants),
            }
        )
    total = sum(r["claim_s"] + r["mutants_s"] for r in rows)
    return {
        "rows": rows,
        "registered": registered,
        "load_s": load_s,
        "total_s": total,
        "timeout_s": profile.proof_timeout_s,
    }
