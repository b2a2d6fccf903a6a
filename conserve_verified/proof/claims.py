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
import inspect
import math
import random
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import sympy as sp  # type: ignore[import-untyped]
import z3

from ..errors import InvalidArgument, InvalidArgumentType, check_int
from ._budget import BudgetExceeded, time_budget
from ._verdict import Status, Verdict
from ._z3sympy import free_constants, to_sympy, value_to_sympy
from .smt import Query, decide

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
    "recurrence_induction",
    "source_hash",
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
        check_int("samples", samples)
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

    Checked in this order (every query goes through :func:`.smt.decide`:
    exported as SMT-LIB2, decided by Z3 and by cvc5 under deterministic
    resource limits):

    1. **Vacuity.**  ``And(hypotheses)`` must be satisfiable: a model is found
       and re-checked exactly in SymPy (recorded as the ``witness``).
       Unsatisfiable hypotheses give ``ERROR`` (a vacuous implication is never
       ``PROVED``); undecided ones give ``UNKNOWN``.
    2. **The proof query** ``And(hypotheses) and not conclusion``: ``unsat`` from
       both solvers proves the claim (``solvers = ("z3", "cvc5")``); ``unsat``
       from one solver while the other cannot decide proves it with that one
       solver named; ``sat`` from one and ``unsat`` from the other is ``ERROR``;
       a Z3 model is re-checked in exact SymPy arithmetic (every hypothesis
       true, the conclusion false) before ``REFUTED`` is reported (a model that
       fails its re-check is ``ERROR``).
    3. **Necessity** (after a proof): for each hypothesis a drop-one mutant --
       the claim without that hypothesis -- decided by Z3: ``sat`` means the
       hypothesis is necessary; then a minimal unsat core of the proof query by
       deletion (a hypothesis leaves the core if the query stays unsat without
       it), and the hypotheses outside it (``unused_hypotheses``).
    """

    backend = "z3"

    def __init__(
        self,
        hypotheses: Sequence[Any],
        conclusion: Any,
        latex: str | None = None,
        labels: Sequence[str] | None = None,
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
        if labels is None:
            labels = [f"h{i}: {h}" for i, h in enumerate(hyps)]
        if len(labels) != len(hyps):
            raise InvalidArgument("labels", labels, "needs one label per hypothesis")
        self.labels: tuple[str, ...] = tuple(labels)

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

    def _values(self, model: dict[str, Any]) -> dict[str, Any]:
        return {
            str(v): value_to_sympy(model[str(v)]) if str(v) in model else sp.Integer(0)
            for v in self.variables
        }

    def check(self, timeout_s: float) -> Verdict:
        start = time.perf_counter()
        details: dict[str, Any] = {"hypotheses": list(self.labels)}
        queries: list[dict[str, Any]] = []
        details["queries"] = queries

        # 1. vacuity: the hypotheses must have a model
        sat_q = decide(Query("hypotheses satisfiable", self.hypotheses, self.labels))
        queries.append(sat_q.as_dict())
        if not sat_q.agree:
            return Verdict(
                Status.ERROR,
                "solvers disagree on whether the hypotheses are satisfiable",
                backend="z3",
                details=details,
            )
        if sat_q.z3.result == "unsat" or (
            sat_q.z3.result != "sat" and sat_q.cvc5.result == "unsat"
        ):
            return Verdict(
                Status.ERROR,
                "the hypotheses are unsatisfiable: the implication is vacuous "
                f"({'+'.join(sat_q.unsat_by)})",
                backend="z3",
                details=details,
            )
        if sat_q.model is None:
            return Verdict(
                Status.UNKNOWN,
                "could not establish that the hypotheses are satisfiable: "
                f"{sat_q.z3.reason}; {sat_q.cvc5.reason}",
                backend="z3",
                details=details,
            )
        witness = self._values(sat_q.model)
        problem = self._recheck_hypotheses(witness)
        if problem is not None:
            return Verdict(
                Status.ERROR,
                f"the witness of the hypotheses failed its exact re-check: {problem}",
                backend="z3",
                details=details,
            )
        details["witness"] = {k: str(v) for k, v in witness.items()}

        # 2. the proof query
        goal_label = "not conclusion"
        proof_q = decide(
            Query(
                "proof: hypotheses and not conclusion",
                (*self.hypotheses, z3.Not(self.conclusion)),
                (*self.labels, goal_label),
            )
        )
        queries.append(proof_q.as_dict())
        if not proof_q.agree:
            return Verdict(
                Status.ERROR,
                f"z3 and cvc5 disagree: z3 {proof_q.z3.result}, cvc5 {proof_q.cvc5.result}",
                backend="z3",
                details=details,
            )
        if proof_q.model is not None:
            values = self._values(proof_q.model)
            remaining = max(timeout_s - (time.perf_counter() - start), 0.5)
            with time_budget(remaining):
                problem = self.recheck(values)
            cex = {k: str(v) for k, v in values.items()}
            if problem is not None:
                return Verdict(
                    Status.ERROR,
                    f"z3 model failed its exact re-check: {problem}",
                    cex,
                    backend="z3",
                    details=details,
                )
            return Verdict(
                Status.REFUTED,
                "z3 found a model of hypotheses and not(conclusion); re-checked exactly in SymPy"
                + (" (cvc5: sat)" if proof_q.cvc5.result == "sat" else ""),
                cex,
                backend="z3",
                solvers=proof_q.sat_by,
                details=details,
            )
        if not proof_q.unsat_by:
            return Verdict(
                Status.UNKNOWN,
                f"{proof_q.z3.reason}; {proof_q.cvc5.reason}",
                backend="z3",
                details=details,
            )

        # 3. necessity: drop-one mutants, then a minimal unsat core by deletion
        negated = z3.Not(self.conclusion)
        necessary: dict[str, str] = {}
        for i, label in enumerate(self.labels):
            rest = tuple(h for j, h in enumerate(self.hypotheses) if j != i)
            drop = decide(Query(f"drop hypothesis {i}", (*rest, negated)), second_solver=False)
            queries.append(drop.as_dict())
            necessary[label] = {"sat": "necessary", "unsat": "not necessary"}.get(
                drop.z3.result, "undecided"
            )
        details["necessary"] = necessary
        core = list(range(len(self.hypotheses)))
        for i in range(len(self.hypotheses)):
            if necessary[self.labels[i]] != "not necessary":
                continue  # needed with every other hypothesis present: stays in the core
            trial = [j for j in core if j != i]
            if len(trial) == len(self.hypotheses) - 1:
                still = True  # the drop-one query above was unsat
            else:
                q = decide(
                    Query(
                        f"core without hypothesis {i}",
                        (*(self.hypotheses[j] for j in trial), negated),
                    ),
                    second_solver=False,
                )
                queries.append(q.as_dict())
                still = q.z3.result == "unsat"
            if still:
                core = trial
        details["unsat_core"] = [self.labels[j] for j in core]
        details["unused_hypotheses"] = [lab for j, lab in enumerate(self.labels) if j not in core]
        solvers = proof_q.unsat_by
        only = (
            ""
            if len(solvers) == 2
            else f"; decided by {solvers[0]} only ({proof_q.cvc5.reason or proof_q.z3.reason})"
        )
        unused = details["unused_hypotheses"]
        note = f"; unused hypotheses: {', '.join(unused)}" if unused else ""
        return Verdict(
            Status.PROVED,
            "hypotheses satisfiable (witness re-checked); hypotheses and not(conclusion) unsat"
            + only
            + note,
            backend="z3",
            solvers=solvers,
            details=details,
        )

    @staticmethod
    def _exact(values: dict[str, Any]) -> tuple[dict[str, Any], dict[Any, Any]]:
        """Real SymPy symbols by name, and their exact values, for :func:`to_sympy`."""
        symbols = {name: sp.Symbol(name, real=True) for name in values}
        return symbols, {symbols[name]: sp.sympify(v) for name, v in values.items()}

    def _recheck_hypotheses(self, values: dict[str, Any]) -> str | None:
        symbols, subs = self._exact(values)
        for i, h in enumerate(self.hypotheses):
            truth = to_sympy(h, symbols).subs(subs)
            if truth is not sp.true:
                return f"hypothesis {i} ({h}) evaluates to {truth}"
        return None

    def recheck(self, values: dict[str, Any]) -> str | None:
        """``None`` if ``values`` satisfy every hypothesis and violate the conclusion, else why not.

        ``values`` maps variable names to exact SymPy numbers (or strings SymPy parses).
        """
        problem = self._recheck_hypotheses(values)
        if problem is not None:
            return problem
        symbols, subs = self._exact(values)
        truth = to_sympy(self.conclusion, symbols).subs(subs)
        if truth is not sp.false:
            return f"conclusion ({self.conclusion}) evaluates to {truth}"
        return None


def z3_implies(
    hypotheses: Sequence[Any],
    conclusion: Any,
    *,
    latex: str | None = None,
    labels: Sequence[str] | None = None,
) -> Z3Implies:
    """Claim ``And(hypotheses) => conclusion`` (Z3 and cvc5); see :class:`Z3Implies`."""
    return Z3Implies(hypotheses, conclusion, latex, labels)


# --------------------------------------------------------------------------- custom


ENGINE_PACKAGE = "conserve_verified.proof"


def source_hash(fn: Callable[..., Any]) -> str:
    """``sha256`` of ``fn``'s source code (of its code object if the source is unavailable).

    Identity: two functions with different source have different hashes, so a
    claim's statement hash pins the procedure that decides it.
    """
    try:
        text = inspect.getsource(fn)
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        text = repr(fn) if code is None else code.co_code.hex() + repr(code.co_consts)
    return hashlib.sha256(text.encode()).hexdigest()


def _defined_in_engine(fn: Callable[..., Any]) -> bool:
    module = getattr(fn, "__module__", "") or ""
    return module == ENGINE_PACKAGE or module.startswith(ENGINE_PACKAGE + ".")


class Custom(Claim):
    """A claim decided by an engine checker ``fn(timeout_s) -> Verdict``.

    One trust base: ``fn`` must be defined inside the engine
    (:mod:`conserve_verified.proof` and its modules, where every checker is
    unit-tested); a checker defined anywhere else -- a theory file, a test --
    gives ``ERROR``, whatever it returns.  The statement hash covers ``fn``'s
    source code (:func:`source_hash`).  ``fn`` runs inside :func:`time_budget`.
    A ``REFUTED`` verdict is only reported if ``recheck(counterexample)``
    returns ``None`` (the counterexample is confirmed); otherwise, or without a
    ``recheck``, the verdict is ``ERROR``.
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
        parts = ["custom", self.backend, name, source_hash(self.fn), self.description, self._latex]
        if self._recheck is not None:
            parts.append(source_hash(self._recheck))
        return "|".join(parts)

    def check(self, timeout_s: float) -> Verdict:
        if not _defined_in_engine(self.fn):
            return Verdict(
                Status.ERROR,
                f"custom checker {getattr(self.fn, '__qualname__', self.fn)!r} is defined in "
                f"{getattr(self.fn, '__module__', '?')!r}, outside the proof engine "
                f"({ENGINE_PACKAGE}): its verdict is not trusted",
                backend=self.backend,
            )
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
            solvers=verdict.solvers,
            details=verdict.details,
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
    """``P(k, state_k)`` for every depth ``k >= k0``, by induction built from ONE predicate ``P``.

    The engine derives both obligations from ``predicate`` itself (they cannot
    be about different statements):

    * base: ``hypotheses => P(k0, init)``;
    * step: ``hypotheses and k >= k0 and P(k, state) => P(k + 1, transition(k, state))``
      for an arbitrary ``k`` and ``state``.

    Both are :class:`Z3Implies` claims, so each is checked for vacuity (the
    step's hypotheses *together with* ``P(k)`` must be satisfiable) and
    cross-checked by cvc5.  ``PROVED`` iff both are; a refuted base refutes the
    statement; a refuted step only shows this induction does not go through
    (``UNKNOWN``).  The verdict records whether the induction hypothesis
    ``P(k)`` is in the step's unsat core (``induction_hypothesis_used``); if it
    is not, the statement holds at each depth without induction and the reason
    says so.
    """

    def __init__(
        self,
        k: z3.ArithRef,
        state: Sequence[z3.ArithRef],
        predicate: Callable[[Any, Sequence[Any]], z3.BoolRef],
        init: Sequence[Any],
        transition: Callable[[Any, Sequence[Any]], Sequence[Any]],
        hypotheses: Sequence[z3.BoolRef] = (),
        k0: int = 0,
    ) -> None:
        if not (z3.is_const(k) and k.sort() == z3.IntSort()):
            raise InvalidArgumentType("k", k, "a Z3 Int variable (the depth)")
        state = tuple(state)
        init = tuple(init)
        if len(init) != len(state):
            raise InvalidArgument(
                "init", init, f"needs one value per state variable ({len(state)})"
            )
        after = tuple(transition(k, state))
        if len(after) != len(state):
            raise InvalidArgument(
                "transition", after, f"must return one value per state variable ({len(state)})"
            )
        hyps = tuple(hypotheses)
        base_p = z3.substitute(predicate(k, init), (k, z3.IntVal(k0)))
        ih = predicate(k, state)
        self.k, self.state, self.k0 = k, state, k0
        self.ih_label = f"induction hypothesis P(k): {ih}"
        labels = [f"h{i}: {h}" for i, h in enumerate(hyps)]
        base = Z3Implies(hyps, base_p, labels=labels)
        step = Z3Implies(
            (*hyps, k >= k0, ih),
            predicate(k + 1, after),
            labels=(*labels, f"k >= {k0}", self.ih_label),
        )
        super().__init__((base, step), ("base P(k0)", "step P(k) => P(k+1)"))

    def canonical(self) -> str:
        return "induction(" + ";".join(c.canonical() for c in self.claims) + ")"

    def check(self, timeout_s: float) -> Verdict:
        verdict = super().check(timeout_s)
        base, step = verdict.parts
        if verdict.status is Status.REFUTED and base.status is not Status.REFUTED:
            return Verdict(
                Status.UNKNOWN,
                "induction step refuted (the statement may still hold): " + verdict.reason,
                backend=self.backend,
                parts=verdict.parts,
            )
        if verdict.status is Status.PROVED:
            used = self.ih_label in step.details.get("unsat_core", [])
            reason = verdict.reason + (
                ""
                if used
                else "; the step does not use the induction hypothesis P(k) "
                "(the statement holds at each depth directly)"
            )
            solvers = tuple(s for s in ("z3", "cvc5") if all(s in p.solvers for p in verdict.parts))
            return Verdict(
                Status.PROVED,
                reason,
                backend=self.backend,
                parts=verdict.parts,
                solvers=solvers,
                details={"induction_hypothesis_used": used},
            )
        return verdict


def induction(
    *,
    k: z3.ArithRef,
    state: Sequence[z3.ArithRef],
    predicate: Callable[[Any, Sequence[Any]], z3.BoolRef],
    init: Sequence[Any],
    transition: Callable[[Any, Sequence[Any]], Sequence[Any]],
    hypotheses: Sequence[z3.BoolRef] = (),
    k0: int = 0,
) -> Induction:
    """``P(k)`` for every depth ``k >= k0``, by induction from one predicate (see Induction)."""
    return Induction(k, state, predicate, init, transition, hypotheses, k0)


def recurrence_induction(
    k: Any,
    closed_form: Any,
    init: Any,
    recurrence: Callable[[Any, Any], Any],
    *,
    k0: int = 0,
    conditions: Sequence[Any] = (),
    latex: str | None = None,
) -> AllOf:
    """``V_k = closed_form(k)`` for every ``k >= k0`` (``V_{k0} = init``, ``V_{k+1} = recurrence``).

    Built from the one predicate ``P(k): V_k = closed_form(k)`` (SymPy): base
    ``closed_form(k0) = init`` and step ``closed_form(k + 1) = recurrence(closed_form(k), k)``
    as identities in the symbolic ``k`` (each checked symbolically and at random points).
    """
    base = SympyIdentity(closed_form.subs(k, k0), init, conditions, latex=latex)
    step = SympyIdentity(
        closed_form.subs(k, k + 1), recurrence(closed_form, k), conditions, latex=latex
    )
    return AllOf((base, step), ("base P(k0)", "step P(k) => P(k+1)"))
