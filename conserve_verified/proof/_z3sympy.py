"""Translation of Z3 terms and model values into exact SymPy objects.

Used to re-check a Z3 counterexample independently of Z3: the hypotheses and
the conclusion are translated to SymPy, the model's values are substituted as
exact rationals (or exact real algebraic numbers), and the truth values are
decided by SymPy.  The same translation renders Z3 claims as LaTeX.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import reduce
from typing import Any

import sympy as sp  # type: ignore[import-untyped]
import z3

__all__ = ["free_constants", "to_sympy", "value_to_sympy"]


def free_constants(terms: Iterable[z3.ExprRef]) -> list[z3.ExprRef]:
    """Uninterpreted constants (the variables) occurring in ``terms``, in first-seen order."""
    seen: dict[str, z3.ExprRef] = {}
    stack = list(terms)[::-1]
    while stack:
        t = stack.pop()
        if z3.is_const(t) and t.decl().kind() == z3.Z3_OP_UNINTERPRETED:
            seen.setdefault(str(t), t)
        else:
            stack.extend(reversed(t.children()))
    return list(seen.values())


def _symbol(t: z3.ExprRef) -> sp.Symbol:
    if t.sort() == z3.BoolSort():
        return sp.Symbol(str(t))
    integer = t.sort() == z3.IntSort()
    return sp.Symbol(str(t), real=True, integer=integer or None)


def value_to_sympy(v: z3.ExprRef) -> Any:
    """Exact SymPy value of a Z3 model value (rational, integer, boolean or real algebraic)."""
    if z3.is_true(v):
        return sp.true
    if z3.is_false(v):
        return sp.false
    if z3.is_int_value(v):
        return sp.Integer(v.as_long())
    if z3.is_rational_value(v):
        return sp.Rational(v.numerator_as_long(), v.denominator_as_long())
    if z3.is_algebraic_value(v):
        x = sp.Symbol("x")
        coeffs = [value_to_sympy(c) for c in v.poly()]  # ascending powers
        poly = sp.Poly(list(reversed(coeffs)), x)
        approx = v.approx(40)
        center = sp.Rational(approx.numerator_as_long(), approx.denominator_as_long())
        for root in sp.real_roots(poly):
            if abs(sp.N(root - center, 60)) < sp.Rational(1, 10**30):
                return root
        raise ValueError(f"could not identify the algebraic number {v}")
    raise ValueError(f"unsupported Z3 value {v} of sort {v.sort()}")


_NARY = {
    z3.Z3_OP_ADD: lambda a: sp.Add(*a),
    z3.Z3_OP_MUL: lambda a: sp.Mul(*a),
    z3.Z3_OP_AND: lambda a: sp.And(*a),
    z3.Z3_OP_OR: lambda a: sp.Or(*a),
}


def to_sympy(t: z3.ExprRef, symbols: dict[str, Any] | None = None) -> Any:
    """SymPy form of a Z3 arithmetic/boolean term over Reals and Ints.

    Variables become real SymPy symbols of the same name (or the objects given in
    ``symbols``).  Supported: numerals, ``+ - * / **``, comparisons, ``=``,
    ``distinct``, ``and or not implies``, ``if-then-else``, int-to-real.
    """
    symbols = {} if symbols is None else symbols
    if z3.is_rational_value(t) or z3.is_int_value(t) or z3.is_algebraic_value(t):
        return value_to_sympy(t)
    if z3.is_true(t):
        return sp.true
    if z3.is_false(t):
        return sp.false
    kind = t.decl().kind()
    if z3.is_const(t) and kind == z3.Z3_OP_UNINTERPRETED:
        name = str(t)
        if name not in symbols:
            symbols[name] = _symbol(t)
        return symbols[name]
    args = [to_sympy(c, symbols) for c in t.children()]
    if kind in _NARY:
        return _NARY[kind](args)
    if kind == z3.Z3_OP_SUB:
        return reduce(lambda a, b: a - b, args)
    if kind == z3.Z3_OP_UMINUS:
        return -args[0]
    if kind in (z3.Z3_OP_DIV, z3.Z3_OP_IDIV):
        return args[0] / args[1]
    if kind == z3.Z3_OP_POWER:
        return args[0] ** args[1]
    if kind in (z3.Z3_OP_TO_REAL, z3.Z3_OP_TO_INT):
        return args[0] if kind == z3.Z3_OP_TO_REAL else sp.floor(args[0])
    if kind == z3.Z3_OP_LE:
        return sp.Le(*args)
    if kind == z3.Z3_OP_LT:
        return sp.Lt(*args)
    if kind == z3.Z3_OP_GE:
        return sp.Ge(*args)
    if kind == z3.Z3_OP_GT:
        return sp.Gt(*args)
    if kind == z3.Z3_OP_EQ:
        return sp.Eq(*args) if len(args) == 2 else sp.And(*(sp.Eq(args[0], a) for a in args[1:]))
    if kind == z3.Z3_OP_DISTINCT:
        return sp.And(*(sp.Ne(a, b) for i, a in enumerate(args) for b in args[i + 1 :]))
    if kind == z3.Z3_OP_NOT:
        return sp.Not(args[0])
    if kind == z3.Z3_OP_IMPLIES:
        return sp.Implies(args[0], args[1])
    if kind == z3.Z3_OP_ITE:
        return sp.Piecewise((args[1], args[0]), (args[2], True))
    raise ValueError(f"unsupported Z3 operator {t.decl()} in {t}")
