r"""Theorems of the conservation operator :math:`C_E(v) = \sqrt{E}\, v / \lVert v \rVert`.

Notation (DESIGN.md): ``r = sqrt(E) > 0``; clean signal ``s`` on the shell
``||s|| = r``; noise ``n``; ``x = s + n``; ``rho = ||x||``; ``c = cos(x, s)``
with ``|c| <= 1`` (Cauchy-Schwarz).  Statements are given in these
dimension-free scalar invariants where possible and are also checked on
explicit vectors in dimension 3.
"""

from __future__ import annotations

import sympy as sp

from conserve_verified.proof import Mutant, Theorem, all_of, register, sympy_identity

THEORY = "conservation"
TWINS = "property_tests/test_conserve.py"

r, rho = sp.symbols("r rho", positive=True)
E = sp.Symbol("E", positive=True)
alpha = sp.Symbol("alpha", positive=True)
v = sp.Matrix(sp.symbols("v1:4", real=True))


def _norm(u: sp.Matrix) -> sp.Expr:
    return sp.sqrt(sum(ui**2 for ui in u))


def _conserve(u: sp.Matrix, energy: sp.Expr = E) -> sp.Matrix:
    """C_E on an explicit vector."""
    return sp.sqrt(energy) * u / _norm(u)


def _energy(u: sp.Matrix) -> sp.Expr:
    return sum(ui**2 for ui in u)


# ----------------------------------------------------------------------------- T1

T1 = register(
    Theorem(
        id="T1",
        name="exact conservation",
        statement="Every nonzero vector is mapped to energy exactly E: ||C_E(v)||^2 = E.",
        assumptions=("E > 0", "v != 0"),
        claim=all_of(
            sympy_identity(
                (r / rho) ** 2 * rho**2,
                r**2,
                latex=r"\lVert C_E(v)\rVert^2 = (r/\rho)^2 \rho^2 = r^2 = E",
            ),
            sympy_identity(_energy(_conserve(v)), E),
            labels=("invariants (rho = ||v||, r = sqrt(E))", "dimension 3"),
        ),
        mutants=(
            Mutant(
                id="E-not-sqrtE",
                description="scaling by E instead of sqrt(E) gives energy E^2, not E",
                claim=sympy_identity(_energy(E * v / _norm(v)), E),
            ),
        ),
        property_test=f"{TWINS}::test_conserve_energy_exact",
        theory=THEORY,
    )
)
