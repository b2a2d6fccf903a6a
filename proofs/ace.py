r"""Theorems of the constraint strategies: group averaging (A1), dual update (A2), ε = 0 (A3).

A1 is checked on the representation matrices the library itself builds
(:func:`conserve_verified.equivariance.dihedral_images`, :func:`cyclic_shifts`,
:func:`trivial`), converted to exact SymPy integers, with a fully symbolic weight
matrix ``W`` (every entry its own real symbol), plus an orthogonal representation
with irrational entries (D3 acting on the plane), so the statements are identities
in ``W`` for each of those groups.  The general argument behind them:
``sum_g f(g h) = sum_g f(g)`` (right multiplication permutes the group) gives
equivariance, ``P(W) = W`` for equivariant ``W`` gives idempotence, and
``rho(g)^T = rho(g)^{-1} = rho(g^{-1})`` makes ``P`` self-adjoint, hence (being
idempotent) the orthogonal projection onto the equivariant maps.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp
import z3

from conserve_verified.equivariance import (
    Representation,
    cyclic_shifts,
    dihedral_images,
    trivial,
)
from conserve_verified.proof import (
    InnerProductSpace,
    Mutant,
    Theorem,
    all_of,
    general,
    gram_identity,
    instance,
    register,
    sympy_identity,
    z3_implies,
)

THEORY = "ace"
TWINS_EQ = "property_tests/test_equivariance_properties.py"
TWINS_C = "property_tests/test_constraints_properties.py"

Rep = tuple[list[sp.Matrix], Callable[[int], int]]


def _exact(rep: Representation) -> Rep:
    """The library's matrices as exact SymPy integer matrices, with the inverse map."""
    mats = [sp.Matrix(m.round().to(dtype=int).tolist()) for m in rep.matrices]
    return mats, rep.inverse


def _d3_plane() -> Rep:
    """D3 acting on R^2 by rotations of 120 degrees and reflections (orthogonal, irrational)."""
    c, s = sp.Rational(-1, 2), sp.sqrt(3) / 2
    rot = sp.Matrix([[c, -s], [s, c]])
    ref = sp.Matrix([[1, 0], [0, -1]])
    mats = [sp.eye(2), rot, rot * rot, ref, rot * ref, rot * rot * ref]
    inverse = {0: 0, 1: 2, 2: 1, 3: 3, 4: 4, 5: 5}
    return mats, inverse.__getitem__


def _average(w: sp.Matrix, rin: Rep, rout: Rep, use_inverse: bool = True) -> sp.Matrix:
    """``P(W) = (1/|G|) sum_g rho_out(g)^{-1} W rho_in(g)`` (or the mutant without ``^{-1}``)."""
    min_, _ = rin
    mout, inv = rout
    total = sp.zeros(*w.shape)
    for g in range(len(min_)):
        left = mout[inv(g)] if use_inverse else mout[g]
        total += left * w * min_[g]
    return (total / len(min_)).applyfunc(sp.expand)


def _weight(name: str, rows: int, cols: int) -> sp.Matrix:
    return sp.Matrix(rows, cols, lambda i, j: sp.Symbol(f"{name}{i}_{j}", real=True))


def _frob(a: sp.Matrix, b: sp.Matrix) -> sp.Expr:
    return sp.expand(sum(a[i] * b[i] for i in range(len(a))))


def _a1_claims(label: str, rin: Rep, rout: Rep) -> list[tuple[str, object]]:
    d_in, d_out = rin[0][0].shape[0], rout[0][0].shape[0]
    w, v = _weight("w", d_out, d_in), _weight("v", d_out, d_in)
    pw, pv = _average(w, rin, rout), _average(v, rin, rout)
    commutators = sp.Matrix.vstack(
        *[(rout[0][h] * pw - pw * rin[0][h]).applyfunc(sp.expand) for h in range(len(rin[0]))]
    )
    return [
        (f"{label}: idempotent P(P(W)) = P(W)", sympy_identity(_average(pw, rin, rout), pw)),
        (
            f"{label}: equivariant rho_out(h) P(W) = P(W) rho_in(h) for all h",
            sympy_identity(commutators, sp.zeros(*commutators.shape)),
        ),
        (
            f"{label}: self-adjoint <P(W), V> = <W, P(V)>",
            sympy_identity(_frob(pw, v), _frob(w, pv)),
        ),
    ]


def _a1_instances() -> list[tuple[str, object]]:
    d4 = dihedral_images(2)
    c4 = cyclic_shifts(4)
    c3 = cyclic_shifts(3)
    out: list[tuple[str, object]] = []
    out += _a1_claims("D4 on 2x2 images -> itself", _exact(d4), _exact(d4))
    out += _a1_claims("D4 on 3x3 images -> invariant", *_pair(dihedral_images(3), 1))
    out += _a1_claims("C4 shifts on R^4 -> itself", _exact(c4), _exact(c4))
    out += _a1_claims("C3 shifts on R^3 -> invariant R^2", *_pair(c3, 2))
    out += _a1_claims("D3 on R^2 (orthogonal, irrational) -> itself", _d3_plane(), _d3_plane())
    return out


def _pair(rep: Representation, d_out: int) -> tuple[Rep, Rep]:
    return _exact(rep), _exact(trivial(rep, (d_out,)))


def _homomorphism_claim() -> object:
    """The library's Cayley tables agree with its matrices: rho(a) rho(b) = rho(a * b)."""
    lhs, rhs = [], []
    for rep in (dihedral_images(3), cyclic_shifts(4)):
        mats, _ = _exact(rep)
        for a in range(rep.order):
            for b in range(rep.order):
                lhs.append(mats[a] * mats[b])
                rhs.append(mats[rep.compose(a, b)])
                if b == rep.inverse(a):
                    lhs.append(mats[a].T)  # orthogonal: rho(a)^T = rho(a^{-1})
                    rhs.append(mats[b])
    return sympy_identity(
        sp.Matrix([e for m in lhs for e in m]), sp.Matrix([e for m in rhs for e in m])
    )


_A1 = _a1_instances()
_d4 = _exact(dihedral_images(2))
_w4 = _weight("w", 4, 4)
_no_inverse = _average(_w4, _d4, _d4, use_inverse=False)
_skew = sp.Matrix([[1, 1], [0, -1]])  # an involution that is not orthogonal: C2 on R^2
_c2_skew: Rep = ([sp.eye(2), _skew], lambda g: g)
_w2, _v2 = _weight("w", 2, 2), _weight("v", 2, 2)

A1 = register(
    Theorem(
        id="A1",
        name="group averaging is the orthogonal projection onto equivariant maps",
        statement=(
            "For a finite group acting linearly, P(W) = (1/|G|) sum_g rho_out(g)^-1 W rho_in(g) "
            "is idempotent, its image is exactly equivariant, and for orthogonal "
            "representations P is self-adjoint, hence the orthogonal projection onto the "
            "equivariant subspace; proved with symbolic W for the library's D4 and C_n "
            "representations and for D3 acting on the plane."
        ),
        scope=instance(
            "symbolic W for the library's D4 (2x2 and 3x3 images), C4 on R^4, C3 on R^3 and D3 "
            "on the plane; the general finite-group argument is in the module docstring, not "
            "machine-checked"
        ),
        assumptions=(
            "G finite; rho_in, rho_out representations of G (rho(a) rho(b) = rho(ab))",
            "self-adjointness: rho_in, rho_out orthogonal",
        ),
        claim=all_of(
            _homomorphism_claim(),
            *[c for _, c in _A1],  # type: ignore[misc]
            labels=("library tables and matrices form representations", *[n for n, _ in _A1]),
        ),
        mutants=(
            Mutant(
                id="no-inverse",
                description=(
                    "averaging rho_out(g) W rho_in(g) without the inverse is not equivariant "
                    "for the non-abelian D4"
                ),
                claim=sympy_identity(
                    _d4[0][1] * _no_inverse, (_no_inverse * _d4[0][1]).applyfunc(sp.expand)
                ),
            ),
            Mutant(
                id="non-orthogonal",
                description=(
                    "for a non-orthogonal representation the average is a projection but "
                    "not an orthogonal one"
                ),
                claim=sympy_identity(
                    _frob(_average(_w2, _c2_skew, _c2_skew), _v2),
                    _frob(_w2, _average(_v2, _c2_skew, _c2_skew)),
                ),
            ),
        ),
        property_test=f"{TWINS_EQ}::test_average_linear_projector",
        theory=THEORY,
    )
)

# ----------------------------------------------------------------------------- A2

_lam, _eta, _v, _eps, _mu = z3.Reals("lam eta v eps mu")
_step = _lam + _eta * (_v - _eps)
_new = z3.If(_step > 0, _step, 0)  # lam' = max(0, lam + eta (v - eps))

A2 = register(
    Theorem(
        id="A2",
        name="the projected dual update is a projection that tracks the violation",
        statement=(
            "The dual update lam' = max(0, z) with z = lam + eta (v - eps) is the Euclidean "
            "projection of the ascent step z onto lam >= 0 (lam' >= 0 and (lam' - z)(mu - lam') "
            ">= 0 for every mu >= 0); with eta > 0 it increases lam strictly when the constraint "
            "is violated (v > eps), and for lam >= 0 it never increases lam when the constraint "
            "holds (v <= eps)."
        ),
        assumptions=("eta > 0", "lam >= 0 (for the last part)", "mu >= 0 (the projection test)"),
        scope=general("every lam, step eta > 0, violation v and tolerance eps (scalar dual)"),
        claim=all_of(
            z3_implies([_mu >= 0], z3.And(_new >= 0, (_new - _step) * (_mu - _new) >= 0)),
            z3_implies([_eta > 0, _v > _eps], _new > _lam),
            z3_implies([_lam >= 0, _eta > 0, _v <= _eps], _new <= _lam),
            labels=(
                "projection onto lam >= 0 (variational inequality)",
                "violated constraint: the dual increases",
                "satisfied constraint: the dual does not increase",
            ),
        ),
        mutants=(
            Mutant(
                id="no-clamp",
                description="plain dual ascent lam + eta (v - eps) goes negative when v < eps",
                claim=z3_implies([_lam >= 0, _eta > 0], _step >= 0),
            ),
            Mutant(
                id="negative-dual-allowed",
                description="without lam >= 0 a satisfied constraint can raise the dual (to 0)",
                claim=z3_implies([_eta > 0, _v <= _eps], _new <= _lam),
            ),
        ),
        property_test=f"{TWINS_C}::test_dual_update_nonnegative",
        theory=THEORY,
    )
)

# ----------------------------------------------------------------------------- A3

_h = z3.Reals("h1 h2 h3")
_HS = InnerProductSpace("h")
_Es = sp.Symbol("E", positive=True)
_E, _r, _rho, _eps3 = z3.Reals("E r rho eps")
_shell = [
    _E > 0,
    _r > 0,
    _r * _r == _E,
    _rho > 0,
    _rho * _rho == sum(x * x for x in _h),
]
_gap = _rho * _rho - _E
_abs_gap = z3.If(_gap >= 0, _gap, -_gap)
_fixed = z3.And(*[x == _r * x / _rho for x in _h])

A3 = register(
    Theorem(
        id="A3",
        name="at tolerance 0 the energy constraint's feasible set is the conserved set",
        statement=(
            "In every dimension, for h != 0: | ||h||^2 - E | <= 0 if and only if "
            "h = C_E(h) = sqrt(E) h / ||h||."
        ),
        assumptions=("E > 0", "h != 0 (rho = ||h|| > 0)", "h in R^n, any n >= 1"),
        scope=general("every dimension n >= 1"),
        claim=all_of(
            gram_identity(
                _HS,
                _HS.energy(sp.sqrt(_Es) / _HS.norm(_HS.vec("h")) * _HS.vec("h") - _HS.vec("h")),
                (sp.sqrt(_Es) / _HS.norm(_HS.vec("h")) - 1) ** 2 * _HS.energy(_HS.vec("h")),
                latex=r"\lVert C_E(h) - h\rVert^2 = (r/\rho - 1)^2 \rho^2\quad(\forall n)",
            ),
            z3_implies(
                [_E > 0, _r > 0, _r * _r == _E, _rho > 0],
                (z3.If(_rho * _rho - _E >= 0, _rho * _rho - _E, _E - _rho * _rho) <= 0)
                == ((_r / _rho - 1) * (_r / _rho - 1) * _rho * _rho == 0),
            ),
            labels=(
                "||C_E(h) - h||^2 in (r, rho), every dimension",
                "zero gap iff (r/rho - 1)^2 rho^2 = 0 (so iff C_E(h) = h)",
            ),
        ),
        mutants=(
            Mutant(
                id="positive-tolerance",
                description=(
                    "at a tolerance eps > 0 feasible activations need not be fixed by C_E"
                ),
                claim=z3_implies([*_shell, _eps3 > 0], z3.Implies(_abs_gap <= _eps3, _fixed)),
            ),
        ),
        property_test=f"{TWINS_C}::test_energy_feasible_at_zero_iff_conserved",
        theory=THEORY,
    )
)
