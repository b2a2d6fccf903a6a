r"""Dimension-free proofs: identities in the Gram algebra of a real inner-product space.

A statement about vectors ``s, n, v, ... in R^n`` that uses only linear
combinations, inner products and norms can be proved for **every** dimension
at once: write each vector as a formal linear combination of the named
vectors (:class:`Vec`) and each inner product through the bilinear, symmetric
Gram symbols ``g_ab = <a, b>`` (:class:`InnerProductSpace`).  An identity
that reduces to 0 in that algebra uses nothing but bilinearity and symmetry of
the inner product, so it holds in every real inner-product space -- in
particular in ``R^n`` for every ``n`` (and for vectors that are collinear or
orthogonal alike).

:class:`GramIdentity` checks such an identity two independent ways:

1. **Symbolic**: ``lhs - rhs`` (a scalar, or every coefficient of a vector
   difference) reduces to 0 in the Gram symbols (SymPy);
2. **Concrete**: in dimensions ``1, 2, 3, 5, 8`` (by default) with seeded random
   integer vectors and rational scalars, the actual vectors are built, every
   inner product computed exactly, and ``lhs - rhs`` must be exactly 0 (a
   vector identity is compared as vectors of ``R^n``, not coefficient-wise).
   A nonzero value refutes the identity with that instance.

``PROVED`` needs both.  :func:`cauchy_schwarz` proves ``<a,b>^2 <= |a|^2 |b|^2``
the same way, from the identity ``|a|^2|b|^2 - <a,b>^2 = |b|^2 |a - t b|^2``
(``t = <a,b>/|b|^2``) and the inner-product axiom ``<w, w> >= 0``.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sympy as sp  # type: ignore[import-untyped]

from ..errors import InvalidArgument, InvalidArgumentType, check_int
from ._budget import time_budget
from ._verdict import Status, Verdict
from .claims import Claim, _is_zero_at, _reduce

__all__ = [
    "DIMENSIONS",
    "GramIdentity",
    "InnerProductSpace",
    "Vec",
    "cauchy_schwarz",
    "gram_identity",
]

#: Dimensions of the concrete instances every Gram identity is also checked in.
DIMENSIONS = (1, 2, 3, 5, 8)


class Vec:
    """A formal linear combination ``sum_b coeffs[b] * b`` of named vectors ``b``.

    Supports ``+``, ``-``, negation and multiplication/division by scalars
    (SymPy expressions).  Identity: ``(c u + v).coeffs[b] = c u.coeffs[b] + v.coeffs[b]``.
    """

    def __init__(self, coeffs: Mapping[str, Any]) -> None:
        self.coeffs: dict[str, Any] = {b: sp.sympify(c) for b, c in coeffs.items()}

    def _combine(self, other: Vec, sign: int) -> Vec:
        if not isinstance(other, Vec):
            raise InvalidArgumentType("other", other, "a Vec")
        out = dict(self.coeffs)
        for b, c in other.coeffs.items():
            out[b] = out.get(b, sp.Integer(0)) + sign * c
        return Vec(out)

    def __add__(self, other: Vec) -> Vec:
        return self._combine(other, 1)

    def __sub__(self, other: Vec) -> Vec:
        return self._combine(other, -1)

    def __neg__(self) -> Vec:
        return Vec({b: -c for b, c in self.coeffs.items()})

    def __mul__(self, scalar: Any) -> Vec:
        if isinstance(scalar, Vec):
            raise InvalidArgumentType("scalar", scalar, "a scalar (use InnerProductSpace.inner)")
        k = sp.sympify(scalar)
        return Vec({b: k * c for b, c in self.coeffs.items()})

    __rmul__ = __mul__

    def __truediv__(self, scalar: Any) -> Vec:
        return self * (1 / sp.sympify(scalar))

    def basis(self) -> tuple[str, ...]:
        """Names of the vectors this combination uses."""
        return tuple(sorted(self.coeffs))

    def __repr__(self) -> str:
        return " + ".join(f"({c})*{b}" for b, c in sorted(self.coeffs.items())) or "0"


class InnerProductSpace:
    """Named vectors of a real inner-product space of unspecified dimension.

    ``InnerProductSpace("s", "n")`` introduces vectors ``s`` and ``n`` (each
    assumed nonzero: ``<a, a> > 0``) and the Gram symbols ``g_s_s > 0``,
    ``g_n_n > 0``, ``g_n_s`` real (symmetric: ``g_s_n`` is ``g_n_s``).
    """

    def __init__(self, *names: str) -> None:
        if not names:
            raise InvalidArgument("names", names, "needs at least one vector name")
        for name in names:
            if not isinstance(name, str) or not name.isidentifier():
                raise InvalidArgument("names", name, "each name must be an identifier")
        if len(set(names)) != len(names):
            raise InvalidArgument("names", names, "names must be distinct")
        self.names = tuple(names)
        self._gram: dict[tuple[str, str], sp.Symbol] = {}
        for a in names:
            for b in names:
                key = (min(a, b), max(a, b))
                if key not in self._gram:
                    diag = key[0] == key[1]
                    self._gram[key] = sp.Symbol(
                        f"g_{key[0]}_{key[1]}", positive=True if diag else None, real=True
                    )

    def vec(self, name: str) -> Vec:
        """The named vector as a :class:`Vec`."""
        if name not in self.names:
            raise InvalidArgument("name", name, f"unknown vector; known: {self.names}")
        return Vec({name: 1})

    def vectors(self) -> tuple[Vec, ...]:
        """Every named vector, in order."""
        return tuple(self.vec(n) for n in self.names)

    def gram(self, a: str, b: str) -> sp.Symbol:
        """The Gram symbol ``<a, b>``."""
        key = (min(a, b), max(a, b))
        if key not in self._gram:
            raise InvalidArgument("a, b", (a, b), f"unknown vectors; known: {self.names}")
        return self._gram[key]

    @property
    def gram_symbols(self) -> tuple[sp.Symbol, ...]:
        """Every Gram symbol, in a fixed order."""
        return tuple(self._gram[k] for k in sorted(self._gram))

    def inner(self, u: Vec, v: Vec) -> Any:
        """``<u, v> = sum_{a,b} u_a v_b g_ab`` (bilinear and symmetric)."""
        total = sp.Integer(0)
        for a, ca in u.coeffs.items():
            for b, cb in v.coeffs.items():
                total += ca * cb * self.gram(a, b)
        return total

    def energy(self, u: Vec) -> Any:
        """``||u||^2 = <u, u>``."""
        return self.inner(u, u)

    def norm(self, u: Vec) -> Any:
        """``||u|| = sqrt(<u, u>)``."""
        return sp.sqrt(self.inner(u, u))


def _as_vector(value: Any, space: InnerProductSpace, point: Mapping[str, sp.Matrix]) -> Any:
    if isinstance(value, Vec):
        n = next(iter(point.values())).shape[0]
        total = sp.zeros(n, 1)
        for b, c in value.coeffs.items():
            total += c * point[b]
        return total
    return value


class GramIdentity(Claim):
    """``lhs == rhs`` (scalars or :class:`Vec`) in every real inner-product space (module doc)."""

    backend = "sympy-gram"

    def __init__(
        self,
        space: InnerProductSpace,
        lhs: Any,
        rhs: Any,
        *,
        latex: str,
        dimensions: Sequence[int] = DIMENSIONS,
        samples: int = 3,
    ) -> None:
        if not isinstance(space, InnerProductSpace):
            raise InvalidArgumentType("space", space, "an InnerProductSpace")
        if isinstance(lhs, Vec) != isinstance(rhs, Vec):
            raise InvalidArgument("rhs", rhs, "lhs and rhs must both be vectors or both scalars")
        if not latex:
            raise InvalidArgument("latex", latex, "must be a non-empty LaTeX string")
        dims = tuple(dimensions)
        if not dims or any(not isinstance(d, int) or d < 1 for d in dims):
            raise InvalidArgument("dimensions", dimensions, "must be positive integers")
        check_int("samples", samples)
        self.space, self.lhs, self.rhs = space, lhs, rhs
        self._latex = latex
        self.dimensions = dims
        self.samples = samples

    def latex(self) -> str:
        return self._latex

    def _differences(self) -> list[Any]:
        if isinstance(self.lhs, Vec):
            diff = self.lhs - self.rhs
            return [diff.coeffs[b] for b in diff.basis()]
        return [sp.sympify(self.lhs) - sp.sympify(self.rhs)]

    def _scalars(self) -> list[sp.Symbol]:
        gram = set(self.space.gram_symbols)
        free: set[sp.Symbol] = set()
        for d in self._differences():
            free |= d.free_symbols
        return sorted(free - gram, key=lambda s: s.name)

    def canonical(self) -> str:
        scalars = [f"{s.name}:{sorted(s.assumptions0.items())}" for s in self._scalars()]
        return "|".join(
            [
                "gram_identity",
                ",".join(self.space.names),
                sp.srepr(sp.Matrix(self._differences())),
                *scalars,
                ",".join(map(str, self.dimensions)),
            ]
        )

    def _instances(self) -> Iterable[tuple[int, dict[str, sp.Matrix], dict[sp.Symbol, Any]]]:
        rng = random.Random(int(self.statement_hash()[:16], 16))
        for n in self.dimensions:
            for _ in range(self.samples):
                vectors = {}
                for name in self.space.names:
                    while True:
                        v = sp.Matrix([rng.randint(-4, 4) for _ in range(n)])
                        if any(v):
                            break
                    vectors[name] = v
                scalars = {}
                for s in self._scalars():
                    q = sp.Rational(rng.randint(1, 30), rng.randint(1, 7))
                    scalars[s] = (
                        q if (s.is_positive or s.is_nonnegative or rng.random() < 0.5) else -q
                    )
                yield n, vectors, scalars

    def _value_at(self, vectors: Mapping[str, sp.Matrix], scalars: Mapping[Any, Any]) -> Any:
        subs: dict[Any, Any] = dict(scalars)
        for a in self.space.names:
            for b in self.space.names:
                subs[self.space.gram(a, b)] = (vectors[a].T * vectors[b])[0, 0]
        if isinstance(self.lhs, Vec):
            lhs = _as_vector(self.lhs, self.space, vectors)
            rhs = _as_vector(self.rhs, self.space, vectors)
            return [e.xreplace(subs) for e in (lhs - rhs)]
        return [(sp.sympify(self.lhs) - sp.sympify(self.rhs)).xreplace(subs)]

    def check(self, timeout_s: float) -> Verdict:
        with time_budget(timeout_s):
            checked = 0
            for n, vectors, scalars in self._instances():
                values = self._value_at(vectors, scalars)
                zeros = [_is_zero_at(v, {}) for v in values]
                if any(z is None for z in zeros):
                    continue  # a singular instance (e.g. a zero vector in a denominator)
                checked += 1
                if not all(zeros):
                    cex = {"dimension": str(n)}
                    cex.update({k: str(list(v)) for k, v in vectors.items()})
                    cex.update({s.name: str(v) for s, v in scalars.items()})
                    return Verdict(
                        Status.REFUTED,
                        f"lhs - rhs = {values[zeros.index(False)]} != 0 in dimension {n}",
                        cex,
                        backend=self.backend,
                    )
            if checked == 0:
                return Verdict(
                    Status.ERROR, "no admissible concrete instance", backend=self.backend
                )
            left = [e for e in (_reduce(d) for d in self._differences()) if e != 0]
            if left:
                return Verdict(
                    Status.UNKNOWN,
                    f"not reduced to 0 in the Gram algebra: {left}; 0 at {checked} instances",
                    backend=self.backend,
                )
            return Verdict(
                Status.PROVED,
                "reduces to 0 in the Gram algebra (bilinearity and symmetry only), so it holds "
                "in every real inner-product space, every dimension n; also exactly 0 at "
                f"{checked} random instances in dimensions {', '.join(map(str, self.dimensions))}",
                backend=self.backend,
                details={"dimensions_checked": list(self.dimensions), "instances": checked},
            )

    def recheck(self, cex: dict[str, str]) -> str | None:
        """``None`` if the counterexample ``cex`` (as reported) makes ``lhs - rhs`` nonzero."""
        vectors = {
            name: sp.Matrix([sp.Rational(x) for x in cex[name].strip("[]").split(",")])
            for name in self.space.names
        }
        scalars = {s: sp.Rational(cex[s.name]) for s in self._scalars()}
        values = self._value_at(vectors, scalars)
        return None if any(_is_zero_at(v, {}) is False for v in values) else "value is 0"


def gram_identity(
    space: InnerProductSpace,
    lhs: Any,
    rhs: Any,
    *,
    latex: str,
    dimensions: Sequence[int] = DIMENSIONS,
    samples: int = 3,
) -> GramIdentity:
    """Claim ``lhs == rhs`` in every real inner-product space; see :class:`GramIdentity`."""
    return GramIdentity(space, lhs, rhs, latex=latex, dimensions=dimensions, samples=samples)


class CauchySchwarz(GramIdentity):
    """``<a, b>^2 <= ||a||^2 ||b||^2`` in every real inner-product space (``b != 0``).

    Proof: the Gram identity ``||a||^2 ||b||^2 - <a,b>^2 = ||b||^2 ||a - t b||^2``
    with ``t = <a,b>/||b||^2`` (checked as a :class:`GramIdentity`), whose
    right side is ``>= 0`` by the inner-product axiom ``<w, w> >= 0``.
    """

    def __init__(self, space: InnerProductSpace, a: str, b: str) -> None:
        u, v = space.vec(a), space.vec(b)
        t = space.inner(u, v) / space.energy(v)
        super().__init__(
            space,
            space.energy(u) * space.energy(v) - space.inner(u, v) ** 2,
            space.energy(v) * space.energy(u - t * v),
            latex=rf"\langle {a},{b}\rangle^2 \le \lVert {a}\rVert^2\lVert {b}\rVert^2",
        )
        self.a, self.b = a, b

    def check(self, timeout_s: float) -> Verdict:
        verdict = super().check(timeout_s)
        if verdict.status is not Status.PROVED:
            return verdict
        return Verdict(
            Status.PROVED,
            f"||{self.a}||^2 ||{self.b}||^2 - <{self.a},{self.b}>^2 = "
            f"||{self.b}||^2 ||{self.a} - t {self.b}||^2 >= 0 (inner-product axiom <w,w> >= 0); "
            + verdict.reason,
            backend=self.backend,
            details=verdict.details,
        )


def cauchy_schwarz(space: InnerProductSpace, a: str, b: str) -> CauchySchwarz:
    """Claim ``<a, b>^2 <= ||a||^2 ||b||^2`` (hence ``|cos(a, b)| <= 1``) in every dimension."""
    return CauchySchwarz(space, a, b)
