"""Typed verdicts of the proof engine.

A check never returns a bare boolean: it returns a :class:`Verdict` whose
:class:`Status` is one of

* ``PROVED``   -- the solver established the statement for every admissible input;
* ``REFUTED``  -- the solver found a counterexample, and the counterexample was
  re-checked concretely (exact rationals, or high-precision arithmetic for
  algebraic values) before being reported;
* ``UNKNOWN``  -- no decision (solver timeout, incomplete procedure); the reason
  says why.  ``UNKNOWN`` never counts as proved;
* ``ERROR``    -- the check itself failed (exception, or a counterexample that
  did not survive its re-check).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["Status", "Verdict"]


class Status(enum.Enum):
    """Outcome of one check."""

    PROVED = "PROVED"
    REFUTED = "REFUTED"
    UNKNOWN = "UNKNOWN"
    ERROR = "ERROR"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Verdict:
    """Result of checking one claim.

    Attributes:
        status: the typed outcome.
        reason: one line saying how the outcome was reached (or why there is none).
        counterexample: for ``REFUTED``, the model as ``{variable: exact value}``
            with values written as exact rationals (``"-3/2"``) or exact algebraic
            numbers; ``None`` otherwise.
        time_s: wall-clock seconds spent on the check.
        backend: which backend produced the verdict (``"sympy"``, ``"z3"``, ...).
        parts: verdicts of the sub-claims of a composite claim, in order.
        solvers: the solvers that agree on a ``PROVED``/``REFUTED`` SMT verdict
            (``("z3", "cvc5")``, or one of them when the other could not decide).
        details: JSON-serialisable evidence: the witness that the hypotheses are
            satisfiable, the unsat core, unused and necessary hypotheses, and per
            SMT query both solvers' answers and the SMT-LIB2 hash (certificate).
    """

    status: Status
    reason: str = ""
    counterexample: dict[str, str] | None = None
    time_s: float = 0.0
    backend: str = ""
    parts: tuple[Verdict, ...] = field(default=())
    solvers: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def proved(self) -> bool:
        """True only for ``PROVED`` (never for ``UNKNOWN``)."""
        return self.status is Status.PROVED

    @property
    def refuted(self) -> bool:
        """True only for ``REFUTED`` (a counterexample that passed its re-check)."""
        return self.status is Status.REFUTED

    def with_time(self, time_s: float) -> Verdict:
        """The same verdict with ``time_s`` replaced."""
        return replace(self, time_s=time_s)

    def describe(self) -> str:
        """Multi-line human-readable form (used in pytest failures and the CLI)."""
        solvers = f" ({'+'.join(self.solvers)})" if self.solvers else ""
        lines = [f"{self.status} [{self.backend}]{solvers} in {self.time_s:.3f} s: {self.reason}"]
        if self.counterexample is not None:
            lines.append("counterexample:")
            lines.extend(f"    {k} = {v}" for k, v in self.counterexample.items())
        for i, part in enumerate(self.parts):
            sub = part.describe().splitlines()
            lines.append(f"  part {i + 1}: {sub[0]}")
            lines.extend(f"    {s}" for s in sub[1:])
        return "\n".join(lines)
