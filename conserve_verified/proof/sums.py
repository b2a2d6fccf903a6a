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

from ..errors import InvalidArgument, InvalidArgumentType
from ._budget import time_budget
from ._verdict import Status, Verdict
from .claims import Claim

__all__ = ["SumIdentity", "canonical_dummies", "reduces_to_zero", "sum_identity"]

_fresh = itertools.count()


def _split_limits(expr: Any) -> Any:
    """Nested single-limit sums in place of multi-limit ones (``Sum(f, (i,..), (j,..))``)."""

    def split(e: sp.Sum) -> Any:
        out = e.function
        for limit in e.limits:  # the first limit is the innermost
            out = sp.Sum(out, limit)
        return out

    return expr.replace(lambda e: isinstance(e, sp.Sum) and len(e.limits) > 1, split)


def _freshen(expr: Any) -> Any:
    """Every bound summation variable renamed to a unique fresh symbol (innermost first)."""
    if isinstance(expr, sp.Sum):
        body = _freshen(expr.function)
        var, lo, hi = expr.limits[0]
        fresh = sp.Symbol(f"_b{next(_fresh)}", integer=True)
        return sp.Sum(body.xreplace({var: fresh}), (fresh, _freshen(lo), _freshen(hi)))
    if not expr.args:
        return expr
    return expr.func(*(_freshen(a) for a in expr.args))


def _by_depth(expr: Any, depth: int, taken: frozenset[str]) -> Any:
    if isinstance(expr, sp.Sum):
        var, lo, hi = expr.limits[0]
        name = f"_d{depth}_{hi}"
        while name in taken:
            name += "_"
        canon = sp.Symbol(name, integer=True)
        body = expr.function.xreplace({var: canon})
        return sp.Sum(_by_depth(body, depth + 1, taken), (canon, lo, hi))
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
    expr = _split_limits(sp.sympify(expr))
    taken = frozenset(s.name for s in expr.free_symbols)
    return _by_depth(_freshen(expr), 0, taken)


def reduces_to_zero(expr: Any) -> bool:
    """Whether ``expr`` (with sums) reduces to 0 symbolically (capture-free renaming first)."""
    e = canonical_dummies(sp.expand(sp.sympify(expr).doit()))
    for step in (
        sp.expand,
        lambda x: canonical_dummies(sp.expand(x)),
        sp.simplify,
        lambda x: sp.simplify(sp.factor_terms(sp.expand(x))),
    ):
        e = step(e)
        if e == 0:
            return True
    return False


class SumIdentity(Claim):
    """``lhs == rhs`` for every value of the ``sizes`` (sum limits) and every entry; see module doc."""

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
        if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
            raise InvalidArgument("seeds", seeds, "must be an int >= 1")
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
        """``lhs - rhs`` at the named sizes, with entries, function values and scalars from ``seed``."""
        rng = random.Random(seed)
        by_name = {s.name: s for s in self.sizes}
        inst = self.difference.subs({by_name[k]: v for k, v in sizes.items()}).doit()
        indexed = sorted(inst.atoms(sp.Indexed), key=str)
        inst = inst.xreplace({e: sp.Integer(rng.randint(-5, 5)) for e in indexed})
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
