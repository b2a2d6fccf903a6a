r"""Theorems of the conservation operator :math:`C_E(v) = \sqrt{E}\, v / \lVert v \rVert`.

Notation (DESIGN.md): ``r = sqrt(E) > 0``; clean signal ``s`` on the shell
``||s|| = r``; noise ``n``; ``x = s + n``; ``rho = ||x||``; ``c = cos(x, s)``.

Scope: every theorem here is **general** -- it holds in ``R^n`` for every
dimension ``n``.  The vector statements are proved in the Gram algebra of a
real inner-product space (:mod:`conserve_verified.proof.gram`: only
bilinearity and symmetry of the inner product are used, so no dimension is
fixed); the inequalities are proved by Z3 and cvc5 in the scalar invariants
``(r, rho, c)``, and the reduction of the vector quantities to those
invariants, and ``|c| <= 1`` (Cauchy-Schwarz), are themselves Gram-algebra
proofs for every ``n``.  Explicit vectors in dimensions 2 and 3 are checked as
extra evidence (labelled "instance") beside the general proofs.
"""

from __future__ import annotations

import sympy as sp
import z3

from conserve_verified.proof import (
    Claim,
    InnerProductSpace,
    Mutant,
    Refutes,
    Status,
    Theorem,
    Vec,
    all_of,
    cauchy_schwarz,
    general,
    gram_identity,
    induction,
    recurrence_induction,
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


# ----------------------------------------------------------------------------- every dimension

ONE = InnerProductSpace("v")  # one nonzero vector v of any dimension
(V_,) = ONE.vectors()
SN = InnerProductSpace("s", "n")  # clean signal s != 0 and noise n != 0, any dimension
S_, N_ = SN.vectors()
X_ = S_ + N_
R_, RHO_ = SN.norm(S_), SN.norm(X_)
COS_ = SN.inner(X_, S_) / (RHO_ * R_)


def _C(space: InnerProductSpace, u: Vec, energy: sp.Expr) -> Vec:
    """C_E(u) = sqrt(E) u / ||u|| in the Gram algebra."""
    return sp.sqrt(energy) / space.norm(u) * u


def _general_reduction() -> Claim:
    """||n||^2 and ||C_E(x) - s||^2 (E = ||s||^2) in the invariants (r, rho, c), every dimension."""
    return all_of(
        gram_identity(
            SN,
            SN.energy(N_),
            RHO_**2 + R_**2 - 2 * RHO_ * R_ * COS_,
            latex=r"\lVert n\rVert^2 = \rho^2 + r^2 - 2\rho r c",
        ),
        gram_identity(
            SN,
            SN.energy(_C(SN, X_, R_**2) - S_),
            2 * R_**2 * (1 - COS_),
            latex=r"\lVert C_E(x) - s\rVert^2 = 2r^2(1 - c)\quad (r = \lVert s\rVert)",
        ),
        labels=("noise energy in (r, rho, c)", "error in (r, rho, c)"),
    )


def _general_cauchy_schwarz() -> Claim:
    """|c| <= 1 for c = cos(x, s), every dimension (x = s + n)."""
    return cauchy_schwarz(InnerProductSpace("x", "s"), "x", "s")


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
        statement=(
            "Every nonzero vector v of every dimension n is mapped to energy exactly E: "
            "||C_E(v)||^2 = E."
        ),
        assumptions=("E > 0", "v != 0", "v in R^n, any n >= 1"),
        scope=general("every dimension n >= 1, every E > 0"),
        claim=all_of(
            gram_identity(
                ONE,
                ONE.energy(_C(ONE, V_, E)),
                E,
                latex=r"\lVert C_E(v)\rVert^2 = E \quad (v \in \mathbb{R}^n,\ \forall n)",
            ),
            *(sympy_identity(_energy(_conserve(w)), E) for w in (v[:2, :], v)),
            labels=("every dimension n", "instance: dimension 2", "instance: dimension 3"),
        ),
        mutants=(
            Mutant(
                id="E-not-sqrtE",
                description="scaling by E instead of sqrt(E) gives energy E^2, not E",
                claim=gram_identity(
                    ONE,
                    ONE.energy(E / ONE.norm(V_) * V_),
                    E,
                    latex=r"\lVert E v/\lVert v\rVert\rVert^2 = E",
                ),
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
        statement=(
            "Conserving twice is conserving once, for every nonzero v of every dimension: "
            "C_E(C_E(v)) = C_E(v)."
        ),
        assumptions=("E > 0", "v != 0", "v in R^n, any n >= 1"),
        scope=general("every dimension n >= 1, every E > 0"),
        claim=all_of(
            gram_identity(
                ONE,
                _C(ONE, _C(ONE, V_, E), E),
                _C(ONE, V_, E),
                latex=r"C_E(C_E(v)) = C_E(v) \quad (v \in \mathbb{R}^n,\ \forall n)",
            ),
            *(sympy_identity(_conserve(_conserve(w)), _conserve(w)) for w in (v[:2, :], v)),
            labels=("every dimension n", "instance: dimension 2", "instance: dimension 3"),
        ),
        mutants=(
            Mutant(
                id="other-energy",
                description="re-conserving at a different energy F is not idempotent",
                claim=gram_identity(
                    ONE,
                    _C(ONE, _C(ONE, V_, F), E),
                    _C(ONE, V_, F),
                    latex=r"C_E(C_F(v)) = C_F(v)",
                ),
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
            "C_E is 0-homogeneous in every dimension: C_E(a v) = C_E(v) for every a > 0, "
            "and a sign flip gives C_E(-a v) = -C_E(v)."
        ),
        assumptions=("E > 0", "v != 0", "a > 0", "v in R^n, any n >= 1"),
        scope=general("every dimension n >= 1, every a > 0"),
        claim=all_of(
            gram_identity(
                ONE, _C(ONE, alpha * V_, E), _C(ONE, V_, E), latex=r"C_E(\alpha v) = C_E(v)"
            ),
            gram_identity(
                ONE, _C(ONE, -alpha * V_, E), -_C(ONE, V_, E), latex=r"C_E(-\alpha v) = -C_E(v)"
            ),
            sympy_identity(_conserve(alpha * v), _conserve(v)),
            labels=(
                "positive factor, every dimension n",
                "negative factor, every dimension n",
                "instance: positive factor, dimension 3",
            ),
        ),
        mutants=(
            Mutant(
                id="one-homogeneous",
                description="C_E is not 1-homogeneous: C_E(a v) != a C_E(v)",
                claim=gram_identity(
                    ONE,
                    _C(ONE, alpha * V_, E),
                    alpha * _C(ONE, V_, E),
                    latex=r"C_E(\alpha v) = \alpha C_E(v)",
                ),
            ),
            Mutant(
                id="even",
                description="C_E is odd, not even: C_E(-v) != C_E(v)",
                claim=gram_identity(
                    ONE, _C(ONE, -V_, E), _C(ONE, V_, E), latex=r"C_E(-v) = C_E(v)"
                ),
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
            "For a clean signal s on the shell ||s|| = r and x = s + n, in every dimension: "
            "||n||^2 - ||C_E(x) - s||^2 = (rho - r)(rho + r - 2 r c)."
        ),
        assumptions=(
            "||s|| = r = sqrt(E) > 0",
            "x = s + n != 0",
            "rho = ||x||",
            "c = cos(x, s)",
            "s, n in R^n, any n >= 1",
        ),
        scope=general("every dimension n >= 1"),
        claim=all_of(
            gram_identity(
                SN,
                SN.energy(N_) - SN.energy(_C(SN, X_, R_**2) - S_),
                (RHO_ - R_) * (RHO_ + R_ - 2 * R_ * COS_),
                latex=r"\lVert n\rVert^2 - \lVert C_E(x) - s\rVert^2 = "
                r"(\rho - r)(\rho + r - 2rc)\quad(\forall n)",
            ),
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
            labels=(
                "every dimension n (Gram algebra)",
                "in the invariants",
                "instance: reduction to invariants, dimension 3",
                "instance: dimension 3",
            ),
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
        scope=general(
            "the counterexample's invariants (r, rho, c) are realised by vectors s, n in every "
            "dimension n >= 2, so claim B fails in each of them"
        ),
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
        scope=general(
            "explicit vectors in dimension 2; padded with zeros they refute the weak claim in "
            "every dimension n >= 2"
        ),
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
            "In every dimension, conservation strictly reduces the noise energy iff rho != r and "
            "(rho > r or c > (rho + r) / (2 r)); norm-preserving noise (rho = r) leaves "
            "it unchanged."
        ),
        assumptions=(
            "||s|| = r > 0",
            "x = s + n != 0",
            "rho = ||x||",
            "c = cos(x, s)",
            "s, n in R^n, any n >= 1",
        ),
        scope=general("every dimension n >= 1"),
        corrects="B",
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
            _general_reduction(),
            _general_cauchy_schwarz(),
            labels=(
                "strict reduction condition (invariants)",
                "equality for norm-preserving noise (invariants)",
                "reduction to invariants, every dimension",
                "|c| <= 1 (Cauchy-Schwarz), every dimension",
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

UX = InnerProductSpace("u", "x")  # u and x = u + n, both nonzero, any dimension
_UX_COS = UX.inner(UX.vec("u"), UX.vec("x")) / (UX.norm(UX.vec("u")) * UX.norm(UX.vec("x")))
_Er = sp.Symbol("E", positive=True)


def _general_shell_distance() -> Claim:
    """||C_E(x) - C_E(u)||^2 = 2E(1 - cos(u, x)) for nonzero u, x of every dimension."""
    return gram_identity(
        UX,
        UX.energy(_C(UX, UX.vec("x"), _Er) - _C(UX, UX.vec("u"), _Er)),
        2 * _Er * (1 - _UX_COS),
        latex=r"\lVert C_E(x) - C_E(u)\rVert^2 = 2E(1 - \cos\angle(u, x))\quad(\forall n)",
    )


a, b = z3.Reals("a b")
T6_INVARIANTS = [a > 0, b > 0, r > 0, c >= -1, c <= 1]
t6_lhs = 2 * r**2 * (1 - c)  # ||C_r(u + n) - C_r(u)||^2, c = cos(u, u + n)
t6_noise = a * a + b * b - 2 * a * b * c  # ||n||^2, a = ||u||, b = ||u + n||

T6 = register(
    Theorem(
        id="T6",
        name="Lipschitz-type bound",
        statement=(
            "In every dimension, ||C_E(u + n) - C_E(u)||^2 <= E ||n||^2 / (||u|| ||u + n||) "
            "for u, u + n != 0."
        ),
        assumptions=("E = r^2 > 0", "u != 0", "u + n != 0", "u, n in R^n, any n >= 1"),
        scope=general("every dimension n >= 1"),
        claim=all_of(
            z3_implies(
                T6_INVARIANTS,
                t6_lhs <= r * r * t6_noise / (a * b),
                latex=r"2r^2(1 - c) \le \frac{r^2 (a^2 + b^2 - 2abc)}{ab}\quad"
                r"(a = \lVert u\rVert,\ b = \lVert u + n\rVert,\ c = \cos\angle(u, u + n))",
            ),
            _general_shell_distance(),
            gram_identity(
                UX,
                UX.energy(UX.vec("x") - UX.vec("u")),
                UX.energy(UX.vec("u"))
                + UX.energy(UX.vec("x"))
                - 2 * UX.norm(UX.vec("u")) * UX.norm(UX.vec("x")) * _UX_COS,
                latex=r"\lVert n\rVert^2 = a^2 + b^2 - 2abc\quad(x = u + n,\ \forall n)",
            ),
            cauchy_schwarz(UX, "u", "x"),
            labels=(
                "invariants",
                "shell distance, every dimension",
                "noise in invariants, every dimension",
                "|c| <= 1 (Cauchy-Schwarz), every dimension",
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

# Conserved pipeline: after every boundary both the perturbed state h_k = C_E(a_k) and the clean
# state s_k = C_E(b_k) lie on the shell of energy E, whatever the layer f_k and noise n_k that
# produced a_k = f_k(h_{k-1}) + n_k and b_k = f_k(s_{k-1}); so
# ||h_k - s_k||^2 = 2E(1 - cos(a_k, b_k)) <= 4E at every depth k >= 1, by a bound that holds at
# each boundary on its own (no induction over depth is needed, and none is claimed).
SHELL = [r > 0, c >= -1, c <= 1]

# Unconserved pipeline with layer gain g and independent additive noise of variance sigma^2:
# V_{k+1} = g^2 V_k + sigma^2, V_0 = 0.  Each statement below is an induction over the depth k
# built by the engine from one predicate P(k).
g, sig2, var, bound = z3.Reals("g sigma2 V B")
k = z3.Int("k")
kr = z3.ToReal(k)
g_s = sp.Symbol("g", positive=True)
sig2_s = sp.Symbol("sigma2", positive=True)
k_s = sp.Symbol("k", integer=True, nonnegative=True)
GEOM = sig2_s * (1 - g_s ** (2 * k_s)) / (1 - g_s**2)  # sigma^2 sum_{j<k} g^(2j), g != 1


def _recurrence(_k: object, state: tuple[z3.ArithRef, ...] | list[z3.ArithRef]) -> list:
    """One unconserved layer: V -> g^2 V + sigma^2."""
    return [g * g * state[0] + sig2]


T7 = register(
    Theorem(
        id="T7",
        name="bounded accumulation",
        statement=(
            "With C_E at every boundary the noise energy ||h_k - s_k||^2 is at most 4E at every "
            "depth k, in every dimension and whatever the layers and noise (each boundary puts "
            "both states on the shell). Without it, additive noise of variance sigma^2 through "
            "layers of gain g accumulates as V_k = sigma^2 sum_{j<k} g^(2j): bounded by "
            "sigma^2/(1 - g^2) at every depth if g < 1, and at least k sigma^2 (unbounded) if "
            "g >= 1."
        ),
        assumptions=(
            "E = r^2 > 0",
            "every boundary input nonzero",
            "layers and noise arbitrary (conserved case)",
            "unconserved case: V_{k+1} = g^2 V_k + sigma^2, V_0 = 0 (independent noise, gain g)",
        ),
        scope=general("every depth k >= 0, every dimension n >= 1, every layer and noise"),
        claim=all_of(
            _general_shell_distance(),
            cauchy_schwarz(UX, "u", "x"),
            z3_implies(
                SHELL,
                2 * r * r * (1 - c) <= 4 * r * r,
                latex=r"|c| \le 1 \implies 2E(1 - c) \le 4E",
            ),
            recurrence_induction(
                k_s,
                GEOM,
                0,
                lambda closed, _k: g_s**2 * closed + sig2_s,
                conditions=[sp.Ne(g_s, 1)],
            ),
            induction(
                k=k,
                state=[var],
                predicate=lambda _k, st: z3.And(st[0] >= 0, st[0] <= bound),
                init=[z3.RealVal(0)],
                transition=_recurrence,
                hypotheses=[g >= 0, g < 1, sig2 > 0, bound * (1 - g * g) == sig2],
            ),
            induction(
                k=k,
                state=[var],
                predicate=lambda kk, st: st[0] >= z3.ToReal(kk) * sig2,
                init=[z3.RealVal(0)],
                transition=_recurrence,
                hypotheses=[g >= 1, sig2 > 0],
            ),
            labels=(
                "conserved: ||h_k - s_k||^2 = 2E(1 - cos) at each boundary, every dimension",
                "conserved: |cos| <= 1 (Cauchy-Schwarz), every dimension",
                "conserved: 2E(1 - cos) <= 4E",
                "unconserved: V_k = sigma^2 (1 - g^(2k))/(1 - g^2) (induction on k)",
                "g < 1: 0 <= V_k <= sigma^2/(1 - g^2) for all k (induction on k)",
                "g >= 1: V_k >= k sigma^2 for all k (induction on k)",
            ),
        ),
        mutants=(
            Mutant(
                id="bound-2E",
                description="the conserved noise energy is not bounded by 2E (antipodal states)",
                claim=z3_implies(SHELL, 2 * r * r * (1 - c) <= 2 * r * r),
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
