r"""Theorems of the conservation operator :math:`C_E(v) = \sqrt{E}\, v / \lVert v \rVert`.

Notation (DESIGN.md): ``r = sqrt(E) > 0``; clean signal ``s`` on the shell
``||s|| = r``; noise ``n``; ``x = s + n``; ``rho = ||x||``; ``c = cos(x, s)``.
Statements are proved in the dimension-free scalar invariants ``(r, rho, c)``
with ``|c| <= 1`` (Cauchy-Schwarz), and the reduction to the invariants -- the
expressions of the vector quantities in ``(r, rho, c)`` and the Cauchy-Schwarz
bound (Lagrange's identity) -- is checked on explicit vectors in dimension 3.
"""

from __future__ import annotations

import sympy as sp
import z3

from conserve_verified.proof import (
    Claim,
    Mutant,
    Refutes,
    Status,
    Theorem,
    all_of,
    induction,
    register,
    sympy_identity,
    z3_implies,
)

THEORY = "conservation"
TWINS = "property_tests/test_conserve.py"
BOUNDS = "property_tests/test_conservation_bounds.py"

# ----------------------------------------------------------------------------- vectors (dim 3)

E, F = sp.symbols("E F", positive=True)
alpha = sp.Symbol("alpha", positive=True)
v = sp.Matrix(sp.symbols("v1:4", real=True))
s = sp.Matrix(sp.symbols("s1:4", real=True))
x = sp.Matrix(sp.symbols("x1:4", real=True))


def _dot(a: sp.Matrix, b: sp.Matrix) -> sp.Expr:
    return sum(ai * bi for ai, bi in zip(a, b, strict=True))


def _norm(a: sp.Matrix) -> sp.Expr:
    return sp.sqrt(_dot(a, a))


def _conserve(a: sp.Matrix, energy: sp.Expr = E) -> sp.Matrix:
    """C_E on an explicit vector."""
    return sp.sqrt(energy) * a / _norm(a)


def _energy(a: sp.Matrix) -> sp.Expr:
    return _dot(a, a)


def _cos(a: sp.Matrix, b: sp.Matrix) -> sp.Expr:
    return _dot(a, b) / (_norm(a) * _norm(b))


def _cauchy_schwarz_dim3() -> Claim:
    """Lagrange's identity ``|a|^2 |b|^2 - (a.b)^2 = sum_{i<j} (a_i b_j - a_j b_i)^2 >= 0``."""
    lagrange = sum((x[i] * s[j] - x[j] * s[i]) ** 2 for i in range(3) for j in range(i + 1, 3))
    return sympy_identity(
        _energy(x) * _energy(s) - _dot(x, s) ** 2,
        lagrange,
        latex=r"\lVert x\rVert^2\lVert s\rVert^2 - (x\cdot s)^2 = "
        r"\sum_{i<j}(x_i s_j - x_j s_i)^2 \ge 0 \;\Rightarrow\; |c| \le 1",
    )


def _shell_error_dim3() -> Claim:
    """``||C_r(x) - C_r(s)||^2 = 2 r^2 (1 - cos(x, s))`` (distance of two shell points)."""
    return sympy_identity(
        _energy(_conserve(x) - _conserve(s)),
        2 * E * (1 - _cos(x, s)),
        latex=r"\lVert C_E(x) - C_E(s)\rVert^2 = 2E(1 - \cos\angle(x, s))",
    )


def _noise_and_error_dim3() -> Claim:
    """For ``||s|| = r``: ``||n||^2`` and ``||C_E(x) - s||^2`` in the invariants ``(r, rho, c)``."""
    r_, rho_, c_ = _norm(s), _norm(x), _cos(x, s)
    return sympy_identity(
        sp.Matrix([_energy(x - s), _energy(_conserve(x, r_**2) - s)]),
        sp.Matrix([rho_**2 + r_**2 - 2 * rho_ * r_ * c_, 2 * r_**2 * (1 - c_)]),
        latex=r"\lVert n\rVert^2 = \rho^2 + r^2 - 2\rho r c,\quad "
        r"\lVert C_E(x) - s\rVert^2 = 2r^2(1 - c)\quad (r = \lVert s\rVert)",
    )


# ----------------------------------------------------------------------------- invariants (Z3)

r, rho, c = z3.Reals("r rho c")
INVARIANTS = [r > 0, rho > 0, c >= -1, c <= 1]
noise = rho**2 + r**2 - 2 * rho * r * c  # ||n||^2
error = 2 * r**2 * (1 - c)  # ||C_E(x) - s||^2

r_s, rho_s = sp.symbols("r rho", positive=True)
c_sym = sp.Symbol("c", real=True)

# ----------------------------------------------------------------------------- T1

T1 = register(
    Theorem(
        id="T1",
        name="exact conservation",
        statement="Every nonzero vector is mapped to energy exactly E: ||C_E(v)||^2 = E.",
        assumptions=("E > 0", "v != 0"),
        claim=all_of(
            *(sympy_identity(_energy(_conserve(w)), E) for w in (v[:2, :], v)),
            labels=("dimension 2", "dimension 3"),
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

# ----------------------------------------------------------------------------- T2

T2 = register(
    Theorem(
        id="T2",
        name="idempotence",
        statement="Conserving twice is conserving once: C_E(C_E(v)) = C_E(v).",
        assumptions=("E > 0", "v != 0"),
        claim=all_of(
            *(sympy_identity(_conserve(_conserve(w)), _conserve(w)) for w in (v[:2, :], v)),
            labels=("dimension 2", "dimension 3"),
        ),
        mutants=(
            Mutant(
                id="other-energy",
                description="re-conserving at a different energy F is not idempotent",
                claim=sympy_identity(_conserve(_conserve(v, F)), _conserve(v, F)),
            ),
        ),
        property_test=f"{TWINS}::test_conserve_idempotent",
        theory=THEORY,
    )
)

# ----------------------------------------------------------------------------- T3

T3 = register(
    Theorem(
        id="T3",
        name="gauge (scale) invariance",
        statement=(
            "C_E is 0-homogeneous: C_E(a v) = C_E(v) for every a > 0, "
            "and a sign flip gives C_E(-a v) = -C_E(v)."
        ),
        assumptions=("E > 0", "v != 0", "a > 0"),
        claim=all_of(
            sympy_identity(_conserve(alpha * v), _conserve(v)),
            sympy_identity(_conserve(-alpha * v), -_conserve(v)),
            labels=("positive factor, dimension 3", "negative factor, dimension 3"),
        ),
        mutants=(
            Mutant(
                id="one-homogeneous",
                description="C_E is not 1-homogeneous: C_E(a v) != a C_E(v)",
                claim=sympy_identity(_conserve(alpha * v), alpha * _conserve(v)),
            ),
            Mutant(
                id="even",
                description="C_E is odd, not even: C_E(-v) != C_E(v)",
                claim=sympy_identity(_conserve(-v), _conserve(v)),
            ),
        ),
        property_test=f"{TWINS}::test_conserve_scale_invariant",
        theory=THEORY,
    )
)

# ----------------------------------------------------------------------------- T4

T4 = register(
    Theorem(
        id="T4",
        name="error identity",
        statement=(
            "For a clean signal s on the shell ||s|| = r and x = s + n: "
            "||n||^2 - ||C_E(x) - s||^2 = (rho - r)(rho + r - 2 r c)."
        ),
        assumptions=("||s|| = r = sqrt(E) > 0", "x = s + n != 0", "rho = ||x||", "c = cos(x, s)"),
        claim=all_of(
            sympy_identity(
                (rho_s**2 + r_s**2 - 2 * rho_s * r_s * c_sym) - 2 * r_s**2 * (1 - c_sym),
                (rho_s - r_s) * (rho_s + r_s - 2 * r_s * c_sym),
                conditions=[sp.Abs(c_sym) <= 1],
            ),
            _noise_and_error_dim3(),
            sympy_identity(
                _energy(x - s) - _energy(_conserve(x, _energy(s)) - s),
                (_norm(x) - _norm(s)) * (_norm(x) + _norm(s) - 2 * _norm(s) * _cos(x, s)),
            ),
            labels=("invariants", "reduction to invariants, dimension 3", "dimension 3"),
        ),
        mutants=(
            Mutant(
                id="missing-r",
                description="dropping the factor r in the cosine term",
                claim=sympy_identity(
                    (rho_s**2 + r_s**2 - 2 * rho_s * r_s * c_sym) - 2 * r_s**2 * (1 - c_sym),
                    (rho_s - r_s) * (rho_s + r_s - 2 * c_sym),
                    conditions=[sp.Abs(c_sym) <= 1],
                ),
            ),
            Mutant(
                id="rho-for-r",
                description="using rho instead of r in the cosine term",
                claim=sympy_identity(
                    (rho_s**2 + r_s**2 - 2 * rho_s * r_s * c_sym) - 2 * r_s**2 * (1 - c_sym),
                    (rho_s - r_s) * (rho_s + r_s - 2 * rho_s * c_sym),
                    conditions=[sp.Abs(c_sym) <= 1],
                ),
            ),
        ),
        property_test=f"{BOUNDS}::test_conserve_error_identity",
        theory=THEORY,
    )
)

# ----------------------------------------------------------------------------- T5

PAPER_B = (
    "Conserved noise energy is strictly less than input noise energy: "
    "||C_E(s + n) - s||^2 < ||n||^2."
)

s1, s2, n1, n2 = z3.Reals("s1 s2 n1 n2")
r2, rho2 = z3.Reals("r_s rho_x")
_x1, _x2 = s1 + n1, s2 + n2
VECTORS_2D = [
    r2 > 0,
    r2 * r2 == s1 * s1 + s2 * s2,
    rho2 > 0,
    rho2 * rho2 == _x1 * _x1 + _x2 * _x2,
    n1 * n1 + n2 * n2 > 0,
]
noise_2d = n1 * n1 + n2 * n2
error_2d = (r2 * _x1 / rho2 - s1) ** 2 + (r2 * _x2 / rho2 - s2) ** 2

T5a = register(
    Theorem(
        id="T5a",
        name="paper claim B is false",
        statement=(
            "The unconditional claim that conservation strictly reduces the noise energy, "
            "||C_E(s + n) - s||^2 < ||n||^2 for every nonzero noise n, is false; the engine "
            "finds a counterexample in the invariants (r, rho, c)."
        ),
        assumptions=("||s|| = r > 0", "n != 0", "x = s + n != 0"),
        claim=z3_implies(
            [*INVARIANTS, noise > 0],
            error < noise,
            latex=r"\forall r, \rho > 0,\ |c| \le 1,\ \lVert n\rVert > 0:\ "
            r"2r^2(1 - c) < \rho^2 + r^2 - 2\rho r c",
        ),
        expect=Status.REFUTED,
        refutes=Refutes("B", PAPER_B),
        property_test=f"{BOUNDS}::test_conserve_noise_can_grow",
        theory=THEORY,
    )
)

T5b = register(
    Theorem(
        id="T5b",
        name="conservation can increase the noise energy",
        statement=(
            "Even the weak form of claim B, ||C_E(s + n) - s||^2 <= ||n||^2, is false: the "
            "engine finds explicit vectors s, n in dimension 2 for which conservation "
            "increases the noise energy."
        ),
        assumptions=("||s|| = r > 0", "n != 0", "x = s + n != 0", "dimension 2"),
        claim=z3_implies(
            VECTORS_2D,
            error_2d <= noise_2d,
            latex=r"\forall s, n \in \mathbb{R}^2,\ n \ne 0,\ s + n \ne 0:\ "
            r"\lVert C_{\lVert s\rVert^2}(s + n) - s\rVert^2 \le \lVert n\rVert^2",
        ),
        expect=Status.REFUTED,
        refutes=Refutes("B", PAPER_B),
        property_test=f"{BOUNDS}::test_conserve_noise_can_grow",
        theory=THEORY,
    )
)

REDUCTION_CONDITION = z3.And(rho != r, z3.Or(rho > r, 2 * r * c > rho + r))

T5 = register(
    Theorem(
        id="T5",
        name="noise reduction, corrected",
        statement=(
            "Conservation strictly reduces the noise energy iff rho != r and "
            "(rho > r or c > (rho + r) / (2 r)); norm-preserving noise (rho = r) leaves "
            "it unchanged."
        ),
        assumptions=("||s|| = r > 0", "x = s + n != 0", "rho = ||x||", "c = cos(x, s)"),
        claim=all_of(
            z3_implies(
                INVARIANTS,
                (error < noise) == REDUCTION_CONDITION,
                latex=r"\lVert C_E(x) - s\rVert^2 < \lVert n\rVert^2 \iff "
                r"\rho \ne r \wedge \left(\rho > r \vee c > \frac{\rho + r}{2r}\right)",
            ),
            z3_implies(
                [*INVARIANTS, rho == r],
                error == noise,
                latex=r"\rho = r \implies \lVert C_E(x) - s\rVert^2 = \lVert n\rVert^2",
            ),
            _noise_and_error_dim3(),
            _cauchy_schwarz_dim3(),
            labels=(
                "strict reduction condition",
                "equality for norm-preserving noise",
                "reduction to invariants, dimension 3",
                "|c| <= 1, dimension 3",
            ),
        ),
        mutants=(
            Mutant(
                id="only-growth",
                description="'reduction iff the noise grows the norm (rho > r)' misses c near 1",
                claim=z3_implies(INVARIANTS, (error < noise) == (rho > r)),
            ),
            Mutant(
                id="only-alignment",
                description="'reduction iff c > (rho + r)/(2r)' misses every rho > r",
                claim=z3_implies(INVARIANTS, (error < noise) == (2 * r * c > rho + r)),
            ),
        ),
        property_test=f"{BOUNDS}::test_conserve_noise_reduction_condition",
        theory=THEORY,
    )
)

# ----------------------------------------------------------------------------- T6

a, b = z3.Reals("a b")
T6_INVARIANTS = [a > 0, b > 0, r > 0, c >= -1, c <= 1]
t6_lhs = 2 * r**2 * (1 - c)  # ||C_r(u + n) - C_r(u)||^2, c = cos(u, u + n)
t6_noise = a * a + b * b - 2 * a * b * c  # ||n||^2, a = ||u||, b = ||u + n||

T6 = register(
    Theorem(
        id="T6",
        name="Lipschitz-type bound",
        statement=("||C_E(u + n) - C_E(u)||^2 <= E ||n||^2 / (||u|| ||u + n||) for u, u + n != 0."),
        assumptions=("E = r^2 > 0", "u != 0", "u + n != 0"),
        claim=all_of(
            z3_implies(
                T6_INVARIANTS,
                t6_lhs <= r * r * t6_noise / (a * b),
                latex=r"2r^2(1 - c) \le \frac{r^2 (a^2 + b^2 - 2abc)}{ab}\quad"
                r"(a = \lVert u\rVert,\ b = \lVert u + n\rVert,\ c = \cos\angle(u, u + n))",
            ),
            _shell_error_dim3(),
            sympy_identity(
                _energy(x - s),
                _energy(s) + _energy(x) - 2 * _norm(s) * _norm(x) * _cos(x, s),
                latex=r"\lVert n\rVert^2 = a^2 + b^2 - 2abc\quad(u = s,\ u + n = x)",
            ),
            _cauchy_schwarz_dim3(),
            labels=(
                "invariants",
                "shell distance, dimension 3",
                "noise in invariants, dimension 3",
                "|c| <= 1, dimension 3",
            ),
        ),
        mutants=(
            Mutant(
                id="one-sided-denominator",
                description="normalising by ||u||^2 alone instead of ||u|| ||u + n||",
                claim=z3_implies(T6_INVARIANTS, t6_lhs <= r * r * t6_noise / (a * a)),
            ),
            Mutant(
                id="nonexpansive",
                description="C_E is not nonexpansive near the origin: ||C(u+n)-C(u)|| <= ||n||",
                claim=z3_implies(T6_INVARIANTS, t6_lhs <= t6_noise),
            ),
        ),
        property_test=f"{BOUNDS}::test_conserve_lipschitz_bound",
        theory=THEORY,
    )
)

# ----------------------------------------------------------------------------- T7

# Conserved pipeline: P(k) = "perturbed state h_k and clean state s_k both have energy E",
# hence ||h_k - s_k||^2 = 2E(1 - c_k) <= 4E.  The step holds for an arbitrary layer f_k and
# noise n_k: h_{k+1} = C_E(f_k(h_k) + n_k), s_{k+1} = C_E(f_k(s_k)), with pre-activations of
# norms p, q > 0 and cosine c.
eh, es, p, q = z3.Reals("e_h e_s p q")
SHELL = [r > 0, p > 0, q > 0, c >= -1, c <= 1]
next_h = (r / p) ** 2 * p**2  # ||C_E(a)||^2 with ||a|| = p
next_s = (r / q) ** 2 * q**2
next_err = next_h + next_s - 2 * (r / p) * (r / q) * (p * q * c)  # ||C_E(a) - C_E(b)||^2
ON_SHELL = z3.And(next_h == r * r, next_s == r * r, next_err <= 4 * r * r)

# Unconserved pipeline with layer gain g and independent additive noise of variance sigma^2:
# V_{k+1} = g^2 V_k + sigma^2, V_0 = 0, hence V_k = sigma^2 sum_{j<k} g^(2j).
g, sig2, var, bound = z3.Reals("g sigma2 V B")
k = z3.Int("k")
kr = z3.ToReal(k)
g_s = sp.Symbol("g", positive=True)
sig2_s = sp.Symbol("sigma2", positive=True)
k_s = sp.Symbol("k", integer=True, nonnegative=True)
GEOM = sig2_s * (1 - g_s ** (2 * k_s)) / (1 - g_s**2)  # sigma^2 sum_{j<k} g^(2j), g != 1

T7 = register(
    Theorem(
        id="T7",
        name="bounded accumulation",
        statement=(
            "With C_E at every boundary the noise energy ||h_k - s_k||^2 is at most 4E at every "
            "depth k. Without it, additive noise of variance sigma^2 through layers of gain g "
            "accumulates as V_k = sigma^2 sum_{j<k} g^(2j): bounded by sigma^2/(1 - g^2) at "
            "every depth if g < 1, and at least k sigma^2 (unbounded) if g >= 1."
        ),
        assumptions=(
            "E = r^2 > 0",
            "every boundary input nonzero",
            "layers arbitrary (conserved case)",
            "unconserved case: V_{k+1} = g^2 V_k + sigma^2, V_0 = 0 (independent noise, gain g)",
        ),
        claim=all_of(
            induction(
                base=z3_implies(SHELL, ON_SHELL),
                step=z3_implies([*SHELL, eh == r * r, es == r * r], ON_SHELL),
            ),
            _shell_error_dim3(),
            induction(
                base=sympy_identity(GEOM.subs(k_s, 0), 0),
                step=sympy_identity(
                    g_s**2 * GEOM + sig2_s,
                    GEOM.subs(k_s, k_s + 1),
                    conditions=[sp.Ne(g_s, 1)],
                ),
            ),
            induction(
                base=z3_implies(
                    [g >= 0, g < 1, sig2 > 0, bound * (1 - g * g) == sig2, var == 0],
                    var <= bound,
                ),
                step=z3_implies(
                    [g >= 0, g < 1, sig2 > 0, bound * (1 - g * g) == sig2, var >= 0, var <= bound],
                    z3.And(g * g * var + sig2 >= 0, g * g * var + sig2 <= bound),
                ),
            ),
            induction(
                base=z3_implies([g >= 1, sig2 > 0, var == 0], var >= 0 * sig2),
                step=z3_implies(
                    [g >= 1, sig2 > 0, k >= 0, var >= kr * sig2],
                    g * g * var + sig2 >= (kr + 1) * sig2,
                ),
            ),
            labels=(
                "conserved: ||h_k - s_k||^2 <= 4E for all k (induction)",
                "shell distance, dimension 3",
                "unconserved: V_k = sigma^2 (1 - g^(2k))/(1 - g^2) (induction)",
                "g < 1: V_k <= sigma^2/(1 - g^2) for all k (induction)",
                "g >= 1: V_k >= k sigma^2 for all k (induction)",
            ),
        ),
        mutants=(
            Mutant(
                id="bound-2E",
                description="the conserved noise energy is not bounded by 2E (antipodal states)",
                claim=z3_implies(SHELL, next_err <= 2 * r * r),
            ),
            Mutant(
                id="unit-gain-bounded",
                description="with gain g = 1 the unconserved noise is not bounded by 4 sigma^2",
                claim=z3_implies([sig2 > 0, k >= 0, var == kr * sig2], var <= 4 * sig2),
            ),
        ),
        property_test=f"{BOUNDS}::test_conserve_bounded_accumulation",
        theory=THEORY,
    )
)
