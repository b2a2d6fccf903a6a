r"""Identities with symbolic-length sums (SymPy ``Sum`` over ``IndexedBase``), for every width.

:class:`SumIdentity` claims ``lhs == rhs`` where both sides may contain sums
``Sum(body, (i, lo, hi))`` whose limits are symbolic sizes (``n``, ``h``,
``m``, ...), indexed quantities ``W[k, i]`` and undefined functions ``phi(z)``.
It is checked two independent ways:

1. **Symbolic**: every bound variable is renamed *capture-free* -- first to a
   unique fresh name (innermost binder first, so nested sums never share a
   name), then canonically by nesting depth and upper limit (so the same sum
   written with different dummies compares equal, while a nested sum keeps a
   name different from every sum around it) -- and ``lhs - rhs`` must reduce
   to 0.
2. **Concrete**: at sizes ``1, 2, 3`` (all sizes set equal, and a mixed
   assignment) the sums are expanded to explicit terms, every indexed
   quantity gets a seeded random integer, every application of an undefined
   function gets a seeded random value per distinct argument value (an
   arbitrary function), and other scalars random rationals; ``lhs - rhs``
   must be exactly 0.  The first nonzero instance refutes the claim (it is
   re-checked by :meth:`SumIdentity.recheck`).

``PROVED`` needs both; symbolic reduction without concrete confirmation is
never enough (this is what catches a renaming that captures a variable).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Sequence
from typing import Any

import sympy as sp  # type: ignore[import-untyped]
from sympy.core.function import AppliedUndef  # type: ignore[import-untyped]

from ..errors import InvalidArgument, InvalidArgumentType, check_int
from ._budget import time_budget
from ._verdict import Status, Verdict
from .claims import Claim

__all__ = [
    "SumIdentity",
    "canonical_dummies",
    "reduces_to_zero",
    "sum_identity",
    "sum_normal_form",
]

_fresh = itertools.count()


def _freshen(expr: Any) -> Any:
    """Every bound summation variable renamed to a unique fresh symbol (innermost first).

    A SymPy ``Sum`` may carry several limits (``Sum(f, (i, ..), (j, ..))``,
    the first innermost); each is renamed in turn, in the body and in the
    bounds of the limits inside it.
    """
    if isinstance(expr, sp.Sum):
        body = _freshen(expr.function)
        limits: list[tuple[Any, Any, Any]] = []
        for var, lo, hi in expr.limits:
            fresh = sp.Symbol(f"_b{next(_fresh)}", integer=True)
            body = body.xreplace({var: fresh})
            limits = [
                (v, l_.xreplace({var: fresh}), h_.xreplace({var: fresh})) for v, l_, h_ in limits
            ]
            limits.append((fresh, _freshen(lo), _freshen(hi)))
        return sp.Sum(body, *limits)
    if not expr.args:
        return expr
    return expr.func(*(_freshen(a) for a in expr.args))


def _by_depth(expr: Any, depth: int, taken: frozenset[str]) -> Any:
    if isinstance(expr, sp.Sum):
        k = len(expr.limits)
        body = _by_depth(expr.function, depth + k, taken)
        limits: list[tuple[Any, Any, Any]] = []
        for pos, (var, lo, hi) in enumerate(expr.limits):  # pos 0 is the innermost
            name = f"_d{depth + k - 1 - pos}_{hi}"
            while name in taken:
                name += "_"
            canon = sp.Symbol(name, integer=True)
            body = body.xreplace({var: canon})
            limits = [
                (v, l_.xreplace({var: canon}), h_.xreplace({var: canon})) for v, l_, h_ in limits
            ]
            limits.append((canon, lo, hi))
        return sp.Sum(body, *limits)
    if not expr.args:
        return expr
    return expr.func(*(_by_depth(a, depth, taken) for a in expr.args))


def canonical_dummies(expr: Any) -> Any:
    """``expr`` with capture-free canonical summation variables.

    Identity: ``canonical_dummies(Sum(f(i), (i, 1, n)))`` equals
    ``canonical_dummies(Sum(f(j), (j, 1, n)))`` (alpha-equivalence), and a sum
    nested inside another never receives its enclosing sum's variable name, so
    ``Sum(W[k, Sum(x[i], (i, 1, n))], (k, 1, n))`` keeps two distinct indices.
    """
    expr = sp.sympify(expr)
    taken = frozenset(s.name for s in expr.free_symbols)
    return _by_depth(_freshen(expr), 0, taken)


def _flat_sum(e: Any) -> tuple[Any, list[tuple[Any, Any, Any]]]:
    """``Sum(body, l_inner, ..., l_outer)`` as ``(body, [l_outer, ..., l_inner])``."""
    limits: list[tuple[Any, Any, Any]] = []
    while isinstance(e, sp.Sum):
        limits.extend(reversed(e.limits))
        e = e.function
    return e, limits


def _normal_term(term: Any) -> Any:
    """One product term as a single nested sum in normal form (see :func:`sum_normal_form`)."""
    coeff: list[Any] = []
    limits: list[tuple[Any, Any, Any]] = []
    for f in sp.Mul.make_args(term):
        base, times = f, 1
        if isinstance(f, sp.Pow) and isinstance(f.base, sp.Sum) and f.exp.is_Integer:
            base, times = f.base, int(f.exp)
        if isinstance(base, sp.Sum) and times >= 1:
            for _ in range(times):
                body, lims = _flat_sum(_freshen(base))  # fresh indices for every copy
                limits.extend(lims)
                coeff.append(body)
        else:
            coeff.append(f)
    if not limits:
        return term
    body = sp.expand(sp.Mul(*coeff))
    if any(isinstance(t, sp.Sum) or t.has(sp.Sum) for t in sp.Add.make_args(body)):
        inner = sum_normal_form(body)
        return sp.Add(*(_wrap(_normal_term(t), limits) for t in sp.Add.make_args(inner)))
    return sp.Add(*(_wrap(t, limits) for t in sp.Add.make_args(body)))


def _wrap(term: Any, limits: list[tuple[Any, Any, Any]]) -> Any:
    """``Sum(term, *limits)`` with Kronecker deltas between bound indices of one range removed
    and factors free of every bound index pulled out."""
    inner, inner_limits = _flat_sum(term) if isinstance(term, sp.Sum) else (term, [])
    limits = list(limits) + inner_limits
    changed = True
    while changed:
        changed = False
        for d in inner.atoms(sp.KroneckerDelta):
            a, b = d.args
            ranges = {v: (lo, hi) for v, lo, hi in limits}
            if a in ranges and b in ranges and ranges[a] == ranges[b] and a != b:
                inner = inner.xreplace({b: a}).xreplace({sp.KroneckerDelta(a, a): 1})
                limits = [lim for lim in limits if lim[0] != b]
                changed = True
                break
    bound = {v for v, _, _ in limits}
    outside: list[Any] = []
    kept: list[Any] = []
    for f in sp.Mul.make_args(inner):
        (kept if f.free_symbols & bound else outside).append(f)
    out = sp.Mul(*kept)
    for v, lo, hi in reversed(limits):
        if out.has(v):
            out = sp.Sum(out, (v, lo, hi))
        elif (hi - lo + 1).free_symbols & bound:
            out = out * (hi - lo + 1)
        else:
            outside.append(hi - lo + 1)
    return sp.Mul(*outside) * out


def sum_normal_form(expr: Any) -> Any:
    """``expr`` as a sum of terms ``c * Sum(monomial, *limits)`` (sums of products distributed).

    Rules, each an identity of finite sums: products of sums become one nested
    sum over fresh indices, ``Sum(f + g) = Sum(f) + Sum(g)``, factors free of an
    index leave its sum, ``Sum_j delta(i, j) f(j) = f(i)`` for bound ``i, j`` of
    the same range, and a sum whose body does not use its index is
    ``(hi - lo + 1)`` times the body.
    """
    e = sp.expand(sp.sympify(expr))
    for _ in range(4):  # pulled-out factors can form new products of sums: repeat to a fixpoint
        nxt = sp.expand(sp.Add(*(_normal_term(t) for t in sp.Add.make_args(e))))
        if nxt == e:
            break
        e = nxt
    return e


def _normal_is_zero(e: Any) -> bool:
    return bool(sp.expand(canonical_dummies(sum_normal_form(e))) == 0)


def reduces_to_zero(expr: Any) -> bool:
    """Whether ``expr`` (with sums) reduces to 0 symbolically (capture-free renaming first).

    Tries the sum normal form (:func:`sum_normal_form`) of ``expr`` and of each
    stage of a fixed simplification chain (``doit``/``expand``, canonical
    dummies, ``simplify``, ``factor_terms``).
    """
    expr = sp.sympify(expr)
    if _normal_is_zero(expr):
        return True
    e = canonical_dummies(sp.expand(expr.doit()))
    for step in (
        sp.expand,
        lambda x: canonical_dummies(sp.expand(x)),
        sp.simplify,
        lambda x: sp.simplify(sp.factor_terms(sp.expand(x))),
    ):
        e = step(e)
        if e == 0 or _normal_is_zero(e):
            return True
    return False


class SumIdentity(Claim):
    """``lhs == rhs`` for every value of the ``sizes`` (sum limits) and every entry (module doc)."""

    backend = "sympy-sums"

    def __init__(
        self,
        lhs: Any,
        rhs: Any,
        *,
        sizes: Sequence[sp.Symbol],
        latex: str,
        instance_sizes: Sequence[int] = (1, 2, 3),
        seeds: int = 3,
    ) -> None:
        self.lhs = sp.sympify(lhs)
        self.rhs = sp.sympify(rhs)
        sizes = tuple(sizes)
        if not sizes or not all(isinstance(s, sp.Symbol) and s.is_integer for s in sizes):
            raise InvalidArgumentType("sizes", sizes, "a non-empty tuple of integer SymPy symbols")
        if not latex:
            raise InvalidArgument("latex", latex, "must be a non-empty LaTeX string")
        inst = tuple(instance_sizes)
        if not inst or any(not isinstance(w, int) or w < 1 for w in inst):
            raise InvalidArgument("instance_sizes", instance_sizes, "must be positive integers")
        check_int("seeds", seeds)
        self.sizes = sizes
        self._latex = latex
        self.instance_sizes = inst
        self.seeds = seeds

    @property
    def difference(self) -> Any:
        """``lhs - rhs``."""
        return self.lhs - self.rhs

    def latex(self) -> str:
        return self._latex

    def canonical(self) -> str:
        return "|".join(
            [
                "sum_identity",
                sp.srepr(canonical_dummies(self.lhs)),
                sp.srepr(canonical_dummies(self.rhs)),
                ",".join(s.name for s in self.sizes),
            ]
        )

    def _assignments(self) -> Iterator[dict[sp.Symbol, int]]:
        for w in self.instance_sizes:
            yield {s: w for s in self.sizes}
        if len(self.sizes) > 1:
            yield {s: 1 + (i % 3) for i, s in enumerate(self.sizes)}

    def value(self, sizes: dict[str, int], seed: int) -> Any:
        """``lhs - rhs`` at ``sizes``; entries, function values and scalars drawn from ``seed``."""
        rng = random.Random(seed)
        by_name = {s.name: s for s in self.sizes}
        inst = self.difference.subs({by_name[k]: v for k, v in sizes.items()}).doit()
        indexed = sorted(inst.atoms(sp.Indexed), key=str)
        inst = inst.xreplace(
            {e: sp.Integer(rng.randint(1 if e.is_positive else -5, 5)) for e in indexed}
        )
        scalars = sorted(inst.free_symbols, key=lambda s: s.name)
        values = {}
        for s in scalars:
            q = sp.Rational(rng.randint(1, 9), rng.randint(1, 4))
            values[s] = q if s.is_positive or s.is_nonnegative or rng.random() < 0.5 else -q
        inst = inst.xreplace(values)
        memo: dict[tuple[Any, ...], Any] = {}

        def arbitrary(e: Any) -> Any:
            key = (e.func, *e.args)
            if key not in memo:
                memo[key] = sp.Rational(rng.randint(-7, 7), rng.randint(1, 3))
            return memo[key]

        for _ in range(8):  # nested applications: innermost first
            apps = [a for a in inst.atoms(AppliedUndef) if not a.atoms(AppliedUndef) - {a}]
            if not apps:
                break
            inst = inst.xreplace({a: arbitrary(a) for a in sorted(apps, key=str)})
        return sp.nsimplify(sp.simplify(inst))

    def check(self, timeout_s: float) -> Verdict:
        with time_budget(timeout_s):
            checked = 0
            for assignment in self._assignments():
                named = {s.name: v for s, v in assignment.items()}
                for seed in range(self.seeds):
                    value = self.value(named, seed)
                    checked += 1
                    if value != 0:
                        cex = {k: str(v) for k, v in named.items()}
                        cex["seed"] = str(seed)
                        return Verdict(
                            Status.REFUTED,
                            f"lhs - rhs = {value} != 0 at sizes {named}, entries seed {seed}",
                            cex,
                            backend=self.backend,
                        )
            if not reduces_to_zero(self.difference):
                return Verdict(
                    Status.UNKNOWN,
                    f"not reduced to 0 symbolically; 0 at {checked} concrete instances",
                    backend=self.backend,
                )
            sizes = ", ".join(s.name for s in self.sizes)
            return Verdict(
                Status.PROVED,
                f"reduces to 0 for symbolic sizes {sizes} (capture-free dummies), and is exactly 0 "
                f"at {checked} concrete instances (sizes {list(self.instance_sizes)} and mixed)",
                backend=self.backend,
                details={"instances": checked},
            )

    def recheck(self, cex: dict[str, str]) -> str | None:
        """``None`` if the reported instance makes ``lhs - rhs`` nonzero."""
        sizes = {s.name: int(cex[s.name]) for s in self.sizes}
        value = self.value(sizes, int(cex["seed"]))
        return None if value != 0 else f"value is 0 at {cex}"


def sum_identity(
    lhs: Any,
    rhs: Any,
    *,
    sizes: Sequence[sp.Symbol],
    latex: str,
    instance_sizes: Sequence[int] = (1, 2, 3),
    seeds: int = 3,
) -> SumIdentity:
    """Claim ``lhs == rhs`` for every size (symbolic sums); see :class:`SumIdentity`."""
    return SumIdentity(
        lhs, rhs, sizes=sizes, latex=latex, instance_sizes=instance_sizes, seeds=seeds
    )
