"""Checking theorems and mutants with a timeout per claim."""

from __future__ import annotations

import fnmatch
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import InvalidArgument
from ._budget import BudgetExceeded
from ._verdict import Status, Verdict
from .claims import Claim, _check_timeout
from .registry import REGISTRY
from .theorem import Mutant, Theorem

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "TheoremResult",
    "check_all",
    "check_claim",
    "check_mutant",
    "check_theorem",
    "default_timeout",
    "select",
]

#: Per-claim timeout when none is given (override with ``$CONSERVE_PROOF_TIMEOUT``).
DEFAULT_TIMEOUT_S = 20.0


def default_timeout() -> float:
    """``$CONSERVE_PROOF_TIMEOUT`` seconds if set, else :data:`DEFAULT_TIMEOUT_S`."""
    raw = os.environ.get("CONSERVE_PROOF_TIMEOUT")
    if raw is None:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        raise InvalidArgument(
            "CONSERVE_PROOF_TIMEOUT", raw, "must be a number of seconds"
        ) from None
    return _check_timeout(value)


def check_claim(claim: Claim, timeout_s: float | None = None) -> Verdict:
    """Check one claim: never raises for a failing backend (that is an ``ERROR`` verdict).

    A budget overrun is ``UNKNOWN``; the verdict carries the wall-clock time.
    """
    timeout = default_timeout() if timeout_s is None else _check_timeout(timeout_s)
    start = time.perf_counter()
    try:
        verdict = claim.check(timeout)
    except BudgetExceeded as exc:
        verdict = Verdict(Status.UNKNOWN, str(exc), backend=claim.backend)
    except Exception as exc:  # a crashing backend is reported, not propagated
        verdict = Verdict(Status.ERROR, f"{type(exc).__name__}: {exc}", backend=claim.backend)
    return verdict.with_time(time.perf_counter() - start)


def check_theorem(theorem: Theorem, timeout_s: float | None = None) -> Verdict:
    """Verdict of ``theorem``'s claim (compare with ``theorem.expect``)."""
    return check_claim(theorem.claim, timeout_s)


def check_mutant(mutant: Mutant, timeout_s: float | None = None) -> Verdict:
    """Verdict of a mutant's claim (it is killed only if ``REFUTED``)."""
    return check_claim(mutant.claim, timeout_s)


@dataclass(frozen=True)
class TheoremResult:
    """A theorem with the verdicts of its claim and of each of its mutants."""

    theorem: Theorem
    verdict: Verdict
    mutants: tuple[tuple[Mutant, Verdict], ...]

    @property
    def theorem_ok(self) -> bool:
        """The claim came out as expected (``PROVED``, or ``REFUTED`` for a refutation theorem)."""
        return self.verdict.status is self.theorem.expect

    @property
    def mutants_ok(self) -> bool:
        """Every mutant was ``REFUTED``."""
        return all(v.status is Status.REFUTED for _, v in self.mutants)

    @property
    def ok(self) -> bool:
        """Both :attr:`theorem_ok` and :attr:`mutants_ok`."""
        return self.theorem_ok and self.mutants_ok


def select(theorems: Iterable[Theorem], pattern: str | None) -> list[Theorem]:
    """Theorems matching ``pattern`` (any case), ids first.

    If ``pattern`` matches one or more theorem ids exactly or as a glob
    (``T1``, ``T5*``, ``G?``), those theorems are selected and names are not
    searched (so ``-k T1`` never selects ``FP16``); otherwise theorems whose id,
    name or theory contains ``pattern`` or matches it as a glob.  An empty result
    is returned as ``[]`` (the caller decides what that means).
    """
    out = list(theorems)
    if not pattern:
        return out
    p = pattern.lower()
    by_id = [t for t in out if t.id.lower() == p or fnmatch.fnmatchcase(t.id.lower(), p)]
    if by_id:
        return by_id

    def match(text: str) -> bool:
        t = text.lower()
        return p in t or fnmatch.fnmatchcase(t, p)

    return [t for t in out if match(t.id) or match(t.name) or match(t.theory)]


def check_all(
    theorems: Iterable[Theorem] | None = None,
    timeout_s: float | None = None,
    pattern: str | None = None,
) -> list[TheoremResult]:
    """Check ``theorems`` (default: the whole :data:`REGISTRY`) and all their mutants."""
    chosen = select(REGISTRY.values() if theorems is None else theorems, pattern)
    return [
        TheoremResult(
            t,
            check_theorem(t, timeout_s),
            tuple((m, check_mutant(m, timeout_s)) for m in t.mutants),
        )
        for t in chosen
    ]
