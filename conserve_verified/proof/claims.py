r"""Claims: the checkable statements inside theorems, one class per backend.

Every claim has ``backend`` (a short name), ``check(timeout_s) -> Verdict``,
``latex()`` (the statement in LaTeX, for the docs) and ``canonical()`` (a
canonical text form, hashed into the certificate).  Build them with the
constructors:

* :func:`sympy_identity` -- ``lhs == rhs`` for all admissible symbol values;
  proved by SymPy simplification and checked a second, independent way by
  exact evaluation at seeded random rational points;
* :func:`z3_implies` -- ``hypotheses => conclusion`` over Z3 Reals/Ints; a
  satisfying assignment of ``hypotheses and not conclusion`` is a
  counterexample, re-checked in exact SymPy arithmetic before it is reported;
* :func:`custom` -- any procedure returning a :class:`Verdict`; a ``REFUTED``
  result must come with a ``recheck`` function that confirms the counterexample;
* :func:`all_of` -- conjunction of claims (e.g. a dimension-free statement and
  its concrete small-dimension instance);
* :func:`induction` -- a statement for every depth ``k``: base case and step.
"""

from __future__ import annotations

import abc
import hashlib
import math
import random
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import sympy as sp  # type: ignore[import-untyped]
import z3

from ..errors import InvalidArgument, InvalidArgumentType
from ._budget import BudgetExceeded, time_budget
from ._verdict import Status, Verdict
from ._z3sympy import free_constants, to_sympy, value_to_sympy

__all__ = [
    "AllOf",
    "Claim",
    "Custom",
    "Induction",
    "SympyIdentity",
    "Z3Implies",
    "all_of",
    "custom",
    "induction",
    "sympy_identity",
    "z3_implies",
]


class Claim(abc.ABC):
    """A statement that a backend can check within a time budget."""

    backend: str = "abstract"

    @abc.abstractmethod
    def check(self, timeout_s: float) -> Verdict:
        """Decide the claim within ``timeout_s`` seconds (the engine adds timing)."""

    @abc.abstractmethod
    def latex(self) -> str:
        """The statement in LaTeX (math mode, without delimiters)."""

    @abc.abstractmethod
    def canonical(self) -> str:
        """Canonical text form, stable across runs (hashed into certificates)."""

    def statement_hash(self) -> str:
        """``sha256`` of :meth:`canonical`."""
        return hashlib.sha256(self.canonical().encode()).hexdigest()


def _check_timeout(timeout_s: Any) -> float:
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)):
        raise InvalidArgumentType("timeout_s", timeout_s, "a number of seconds")
    if not math.isfinite(timeout_s) or timeout_s <= 0:
        raise InvalidArgument("timeout_s", timeout_s, "must be a finite number of seconds > 0")
    return float(timeout_s)


# --------------------------------------------------------------------------- SymPy identity


def _is_zero_at(expr: Any, point: dict[Any, Any]) -> bool | None:
    """Whether ``expr`` is 0 at ``point``: exactly if the value is rational, else at 80 digits.

    ``None`` if the value is undefined there (division by zero, ...).
    """
    value = expr.xreplace(point)
    if value.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
        return None
    if value.is_Rational:
        return bool(value == 0)
    approx = sp.N(value, 80)
    if not approx.is_number or approx.has(sp.zoo, sp.nan):
        return None
    if approx.is_real is False:
        return None  # complex value: the point is outside the real domain
    return bool(abs(approx) < sp.Float(10, 80) ** -60)


def _reduce(expr: Any) -> Any:
    """``expr`` brought to 0 by the cheapest of expand / together / cancel / simplify, or not."""
    for step in (
        sp.expand,
        lambda e: sp.expand(sp.together(e)),
        lambda e: sp.cancel(sp.together(e)),
        sp.simplify,
    ):
        out = step(expr)
        if out == 0:
            return out
    return out


class SympyIdentity(Claim):
    """``lhs == rhs`` for every value of the free symbols allowed by their assumptions.

    ``lhs`` and ``rhs`` are SymPy expressions or matrices/vectors of equal shape
    (compared elementwise).

    Symbol assumptions (``positive``, ``nonnegative``, ``integer``, ...) and the
    optional ``conditions`` (SymPy relationals such as ``sp.Abs(c) <= 1``)
    define the admissible domain.  Symbolic check: ``lhs - rhs`` reduces to 0
    (expand, together, cancel, simplify).  Independent check: exact evaluation
    at ``samples`` seeded random
    rational points of the domain (done first: a nonzero exact value at a point
    refutes the identity with that point as counterexample).  ``PROVED`` needs
    both: zero at every point and symbolic reduction of ``lhs - rhs`` to 0;
    zero at every point without symbolic reduction is ``UNKNOWN``.
    """

    backend = "sympy"

    def __init__(
        self,
        lhs: Any,
        rhs: Any,
        conditions: Sequence[Any] = (),
        samples: int = 8,
        latex: str | None = None,
    ) -> None:
        self.lhs = sp.sympify(lhs)
        self.rhs = sp.sympify(rhs)
        lhs_m, rhs_m = sp.Matrix([self.lhs]), sp.Matrix([self.rhs])
        if isinstance(self.lhs, sp.MatrixBase) or isinstance(self.rhs, sp.MatrixBase):
            lhs_m, rhs_m = sp.Matrix(self.lhs), sp.Matrix(self.rhs)
        if lhs_m.shape != rhs_m.shape:
            raise InvalidArgument("rhs", rhs, f"shape {rhs_m.shape} differs from lhs {lhs_m.shape}")
        self._diff = lhs_m - rhs_m
        self.conditions = tuple(sp.sympify(c) for c in conditions)
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise InvalidArgument("samples", samples, "must be an int >= 1")
        self.samples = samples
        self._latex = latex
        free = set(self._diff.free_symbols)
        for c in self.conditions:
            free |= c.free_symbols
        self.symbols: tuple[sp.Symbol, ...] = tuple(sorted(free, key=lambda s: s.name))

    def latex(self) -> str:
        if self._latex is not None:
            return self._latex
        text = f"{sp.latex(self.lhs)} = {sp.latex(self.rhs)}"
        if self.conditions:
            text += r" \quad (" + r",\ ".join(sp.latex(c) for c in self.conditions) + ")"
        return text

    def canonical(self) -> str:
        assumptions = [f"{s.name}:{sorted(s.assumptions0.items())}" for s in self.symbols]
        return "|".join(
            ["sympy_identity", sp.srepr(self.lhs), sp.srepr(self.rhs)]
            + [sp.srepr(c) for c in self.conditions]
            + assumptions
        )

    def _sample_value(self, s: sp.Symbol, rng: random.Random) -> sp.Rational:
        if s.is_integer:
            lo = 1 if s.is_positive else 0 if s.is_nonnegative else -6
            return sp.Integer(rng.randint(lo, 8))
        q = sp.Rational(rng.randint(1, 60), rng.randint(1, 12))
        if s.is_positive or s.is_nonnegative:
            return q if rng.random() > 0.05 or s.is_positive else sp.Integer(0)
        # real symbols: include values in [-1, 1] often (cosines), and any sign
        if rng.random() < 0.5:
            q = sp.Rational(rng.randint(-24, 24), 24)
        return q if rng.random() < 0.5 else -q

    def _points(self) -> Iterable[dict[sp.Symbol, sp.Rational]]:
        rng = random.Random(int(self.statement_hash()[:16], 16))
        found = 0
        for _ in range(200 * self.samples):
            if found >= self.samples:
                return
            point = {s: self._sample_value(s, rng) for s in self.symbols}
            if all(c.xreplace(point) is sp.true for c in self.conditions):
                found += 1
                yield point

    def check(self, timeout_s: float) -> Verdict:
        with time_budget(timeout_s):
            checked = 0
            for point in self._points():
                zeros = [_is_zero_at(e, point) for e in self._diff]
                if any(z is None for z in zeros):
                    continue  # singular point (e.g. division by zero): not in the domain
                checked += 1
                if not all(zeros):
                    value = self._diff[zeros.index(False)].xreplace(point)
                    return Verdict(
                        Status.REFUTED,
                        f"lhs - rhs = {value} = {sp.N(value, 15)} != 0 at the counterexample",
                        {s.name: str(v) for s, v in point.items()},
                        backend=self.backend,
                    )
            if checked == 0:
                return Verdict(
                    Status.ERROR,
                    "no admissible sample point: the conditions may be unsatisfiable",
                    backend=self.backend,
                )
            left = [e for e in (_reduce(e) for e in self._diff) if e != 0]
            if not left:
                return Verdict(
                    Status.PROVED,
                    f"lhs - rhs simplifies to 0, and is 0 at {checked} random rational points "
                    "(exact, or 80-digit evaluation of radicals)",
                    backend=self.backend,
                )
            return Verdict(
                Status.UNKNOWN,
                f"simplification left {left} (not reduced to 0); "
                f"lhs - rhs is 0 at {checked} random points",
                backend=self.backend,
            )


def sympy_identity(
    lhs: Any,
    rhs: Any,
    *,
    conditions: Sequence[Any] = (),
    samples: int = 8,
    latex: str | None = None,
) -> SympyIdentity:
    """Claim ``lhs == rhs`` (SymPy); see :class:`SympyIdentity`."""
    return SympyIdentity(lhs, rhs, conditions, samples, latex)


# --------------------------------------------------------------------------- Z3 implication


class Z3Implies(Claim):
    """``And(hypotheses) => conclusion`` for every assignment of the Z3 variables.

    The solver searches for a model of ``And(hypotheses) and not conclusion``
    under a timeout: ``unsat`` proves the claim, ``unknown`` (timeout,
    incompleteness) gives ``UNKNOWN`` with Z3's reason, and ``sat`` gives a
    model that is re-checked in exact SymPy arithmetic (every hypothesis true,
    the conclusion false) before ``REFUTED`` is reported; a model that fails the
    re-check (e.g. a division by zero that Z3 interprets freely) is an ``ERROR``.
    """

    backend = "z3"

    def __init__(
        self, hypotheses: Sequence[Any], conclusion: Any, latex: str | None = None
    ) -> None:
        hyps = tuple(hypotheses)
        for i, h in enumerate((*hyps, conclusion)):
            if not z3.is_bool(h):
                name = "conclusion" if i == len(hyps) else f"hypotheses[{i}]"
                raise InvalidArgumentType(name, h, "a Z3 boolean expression")
        self.hypotheses: tuple[z3.BoolRef, ...] = hyps
        self.conclusion: z3.BoolRef = conclusion
        self._latex = latex
        self.variables = free_constants((*hyps, conclusion))

    def latex(self) -> str:
        if self._latex is not None:
            return self._latex
        hyps = r" \wedge ".join(sp.latex(to_sympy(h)) for h in self.hypotheses)
        concl = sp.latex(to_sympy(self.conclusion))
        return f"{hyps} \\implies {concl}" if hyps else concl

    def canonical(self) -> str:
        return "|".join(
            ["z3_implies", *(h.sexpr() for h in self.hypotheses), self.conclusion.sexpr()]
        )

    def check(self, timeout_s: float) -> Verdict:
        start = time.perf_counter()
        solver = z3.Solver()
        solver.set("timeout", max(1, int(timeout_s * 1000)))
        solver.add(*self.hypotheses)
        solver.add(z3.Not(self.conclusion))
        result = solver.check()
        if result == z3.unsat:
            return Verdict(Status.PROVED, "hypotheses and not(conclusion) is unsat", backend="z3")
        if result == z3.unknown:
            return Verdict(Status.UNKNOWN, f"z3: {solver.reason_unknown()}", backend="z3")
        model = solver.model()
        values = {
            str(v): value_to_sympy(model.eval(v, model_completion=True)) for v in self.variables
        }
        remaining = max(timeout_s - (time.perf_counter() - start), 0.5)
        with time_budget(remaining):
            problem = self.recheck(values)
        cex = {k: str(v) for k, v in values.items()}
        if problem is not None:
            return Verdict(
                Status.ERROR, f"z3 model failed its exact re-check: {problem}", cex, backend="z3"
            )
        return Verdict(
            Status.REFUTED,
            "z3 found a model of hypotheses and not(conclusion); re-checked exactly in SymPy",
            cex,
            backend="z3",
        )

    def recheck(self, values: dict[str, Any]) -> str | None:
        """``None`` if ``values`` satisfy every hypothesis and violate the conclusion, else why not.

        ``values`` maps variable names to exact SymPy numbers (or strings SymPy parses).
        """
        symbols: dict[str, Any] = {}
        subs = {}
        for name, value in values.items():
            symbols.setdefault(name, sp.Symbol(name, real=True))
            subs[symbols[name]] = sp.sympify(value)
        for i, h in enumerate(self.hypotheses):
            truth = to_sympy(h, symbols).subs(subs)
            if truth is not sp.true:
                return f"hypothesis {i} ({h}) evaluates to {truth}"
        truth = to_sympy(self.conclusion, symbols).subs(subs)
        if truth is not sp.false:
            return f"conclusion ({self.conclusion}) evaluates to {truth}"
        return None


def z3_implies(
    hypotheses: Sequence[Any], conclusion: Any, *, latex: str | None = None
) -> Z3Implies:
    """Claim ``And(hypotheses) => conclusion`` (Z3); see :class:`Z3Implies`."""
    return Z3Implies(hypotheses, conclusion, latex)


# --------------------------------------------------------------------------- custom


class Custom(Claim):
    """A claim decided by ``fn(timeout_s) -> Verdict``.

    ``fn`` should respect its time budget (it also runs inside
    :func:`time_budget`).  A ``REFUTED`` verdict is only reported if
    ``recheck(counterexample)`` returns ``None`` (the counterexample is
    confirmed); otherwise, or without a ``recheck``, the verdict is ``ERROR``.
    """

    def __init__(
        self,
        fn: Callable[[float], Verdict],
        latex: str,
        description: str,
        recheck: Callable[[dict[str, str]], str | None] | None = None,
        backend: str = "custom",
    ) -> None:
        if not callable(fn):
            raise InvalidArgumentType("fn", fn, "a callable fn(timeout_s) -> Verdict")
        if not isinstance(latex, str) or not latex:
            raise InvalidArgument("latex", latex, "must be a non-empty LaTeX string")
        if not isinstance(description, str) or not description:
            raise InvalidArgument("description", description, "must be a non-empty string")
        self.fn = fn
        self._latex = latex
        self.description = description
        self._recheck = recheck
        self.backend = backend

    def latex(self) -> str:
        return self._latex

    def canonical(self) -> str:
        name = getattr(self.fn, "__qualname__", repr(self.fn))
        return "|".join(["custom", self.backend, name, self.description, self._latex])

    def check(self, timeout_s: float) -> Verdict:
        with time_budget(timeout_s):
            verdict = self.fn(timeout_s)
        if not isinstance(verdict, Verdict):
            return Verdict(Status.ERROR, f"custom check returned {verdict!r}", backend=self.backend)
        if verdict.status is Status.REFUTED:
            if self._recheck is None or verdict.counterexample is None:
                return Verdict(
                    Status.ERROR,
                    "REFUTED without a re-checkable counterexample: " + verdict.reason,
                    verdict.counterexample,
                    backend=self.backend,
                )
            problem = self._recheck(verdict.counterexample)
            if problem is not None:
                return Verdict(
                    Status.ERROR,
                    f"counterexample failed its re-check: {problem}",
                    verdict.counterexample,
                    backend=self.backend,
                )
        return Verdict(
            verdict.status,
            verdict.reason,
            verdict.counterexample,
            backend=verdict.backend or self.backend,
            parts=verdict.parts,
        )


def custom(
    fn: Callable[[float], Verdict],
    *,
    latex: str,
    description: str,
    recheck: Callable[[dict[str, str]], str | None] | None = None,
    backend: str = "custom",
) -> Custom:
    """Claim decided by ``fn(timeout_s) -> Verdict``; see :class:`Custom`."""
    return Custom(fn, latex, description, recheck, backend)


# --------------------------------------------------------------------------- composites


def _run_part(claim: Claim, timeout_s: float) -> Verdict:
    start = time.perf_counter()
    try:
        verdict = claim.check(timeout_s)
    except BudgetExceeded as exc:
        verdict = Verdict(Status.UNKNOWN, str(exc), backend=claim.backend)
    except Exception as exc:  # a failing backend is an ERROR verdict, not a crash
        verdict = Verdict(Status.ERROR, f"{type(exc).__name__}: {exc}", backend=claim.backend)
    return verdict.with_time(time.perf_counter() - start)


class AllOf(Claim):
    """Conjunction: ``PROVED`` iff every part is; ``REFUTED`` if a part is refuted."""

    def __init__(self, claims: Sequence[Claim], labels: Sequence[str] | None = None) -> None:
        claims = tuple(claims)
        if not claims:
            raise InvalidArgument("claims", claims, "needs at least one claim")
        for i, c in enumerate(claims):
            if not isinstance(c, Claim):
                raise InvalidArgumentType(f"claims[{i}]", c, "a Claim")
        self.claims = claims
        self.labels = (
            tuple(labels)
            if labels is not None
            else tuple(f"part {i + 1}" for i in range(len(claims)))
        )
        if len(self.labels) != len(claims):
            raise InvalidArgument("labels", labels, "needs one label per claim")
        self.backend = "+".join(dict.fromkeys(c.backend for c in claims))

    def latex(self) -> str:
        return r" \\ ".join(
            rf"\text{{{label}: }} {c.latex()}"
            for label, c in zip(self.labels, self.claims, strict=True)
        )

    def canonical(self) -> str:
        return "all_of(" + ";".join(c.canonical() for c in self.claims) + ")"

    def _parts(self, timeout_s: float) -> tuple[Verdict, ...]:
        deadline = time.perf_counter() + timeout_s
        parts = []
        for c in self.claims:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                parts.append(Verdict(Status.UNKNOWN, "time budget exhausted", backend=c.backend))
                continue
            parts.append(_run_part(c, remaining))
        return tuple(parts)

    def check(self, timeout_s: float) -> Verdict:
        parts = self._parts(timeout_s)
        labelled = ", ".join(
            f"{lab}: {p.status}" for lab, p in zip(self.labels, parts, strict=True)
        )
        statuses = [p.status for p in parts]
        if Status.ERROR in statuses:
            return Verdict(Status.ERROR, labelled, backend=self.backend, parts=parts)
        if Status.REFUTED in statuses:
            first = parts[statuses.index(Status.REFUTED)]
            return Verdict(
                Status.REFUTED, labelled, first.counterexample, backend=self.backend, parts=parts
            )
        if all(s is Status.PROVED for s in statuses):
            return Verdict(Status.PROVED, labelled, backend=self.backend, parts=parts)
        return Verdict(Status.UNKNOWN, labelled, backend=self.backend, parts=parts)


def all_of(*claims: Claim, labels: Sequence[str] | None = None) -> AllOf:
    """Conjunction of ``claims``; see :class:`AllOf`."""
    return AllOf(claims, labels)


class Induction(AllOf):
    """A statement ``P(k)`` for every depth ``k >= k0`` by induction.

    ``base`` claims ``P(k0)``; ``step`` claims ``P(k) => P(k+1)`` for an
    arbitrary ``k``.  ``PROVED`` iff both are.  A refuted base refutes the
    statement; a refuted step only shows that this induction does not go
    through, so it gives ``UNKNOWN`` (with the step's counterexample in the parts).
    """

    def __init__(self, base: Claim, step: Claim) -> None:
        super().__init__((base, step), ("base", "step"))

    def canonical(self) -> str:
        return "induction(" + ";".join(c.canonical() for c in self.claims) + ")"

    def check(self, timeout_s: float) -> Verdict:
        verdict = super().check(timeout_s)
        base = verdict.parts[0]
        if verdict.status is Status.REFUTED and base.status is not Status.REFUTED:
            return Verdict(
                Status.UNKNOWN,
                "induction step refuted (the statement may still hold): " + verdict.reason,
                backend=self.backend,
                parts=verdict.parts,
            )
        return verdict


def induction(*, base: Claim, step: Claim) -> Induction:
    """Claim for every depth by induction; see :class:`Induction`."""
    return Induction(base, step)
