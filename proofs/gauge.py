r"""Theorems of the gauge (neuron-wise rescaling) symmetry of ReLU-type networks: G1-G6.

Notation (DESIGN.md): a hidden neuron has incoming weights ``w`` (with bias
``beta``) and outgoing weights ``v``; ``a = ||w||^2 + beta^2``,
``b = ||v||^2``, imbalance ``delta = a - b``; ``phi`` is positively
homogeneous (ReLU, leaky ReLU with any slope ``s``): ``phi(alpha z) = alpha
phi(z)`` for ``alpha > 0``, and Euler's identity ``phi'(z) z = phi(z)`` holds
wherever ``phi`` is differentiable (``z != 0``).

G3 and G4 are proved for general layer widths: a hidden layer with ``n``
inputs, ``h`` neurons, ``m`` outputs and ``N`` samples, all symbolic, written
with SymPy indexed sums.  Neuron 1 stands for any neuron (the layer is
symmetric under relabelling), and the layer's input ``x`` and the
back-propagated signal ``g = dloss/dy`` are arbitrary, so the statements hold
for every hidden layer of a deep network.  The derivative of the loss along
the orbit tangent ``t = (w, beta, -v)`` is the directional derivative
``d/de L(theta + e t)`` at ``e = 0`` (chain rule: ``<grad L, t>``), and
``d delta / dt = <grad delta, theta'>`` with ``grad delta = 2 t``.
"""

from __future__ import annotations

import sympy as sp
import z3

from conserve_verified.proof import (
    InnerProductSpace,
    Mutant,
    Theorem,
    all_of,
    general,
    gram_identity,
    instance,
    register,
    sum_identity,
    sympy_identity,
    z3_implies,
)

THEORY = "gauge"
TWINS = "property_tests/test_gauge.py"

# --------------------------------------------------------------------------- symbols

n, h, m, N = sp.symbols("n h m N", integer=True, positive=True)
i, j, k, q, r, smp = sp.symbols("i j k q r t", integer=True)
eps = sp.Symbol("epsilon", real=True)
mu = sp.Symbol("mu", positive=True)
W, X, B, V, Gs = (sp.IndexedBase(name) for name in ("W", "x", "b", "V", "g"))
phi = sp.Function("phi")
dphi = sp.Function("dphi")  # phi'
SIZES = (n, h, m, N)


def _z3_relu(z: z3.ArithRef, slope: z3.ArithRef | float = 0) -> z3.ArithRef:
    """Leaky ReLU with slope ``slope`` (``0``: ReLU) as a Z3 term."""
    return z3.If(z > 0, z, slope * z)


def _euler(expr: sp.Expr) -> sp.Expr:
    """Replace derivative placeholders by ``dphi`` and apply Euler: ``phi(z) -> z dphi(z)``."""
    expr = expr.replace(lambda e: isinstance(e, sp.Subs), lambda e: dphi(e.point[0]))
    expr = expr.replace(
        lambda e: isinstance(e, sp.Derivative) and e.expr.func == phi,
        lambda e: dphi(*e.expr.args),
    )
    return expr.replace(phi, lambda z: z * dphi(z))


# --------------------------------------------------------------------------- the layer


def _pre(kk: sp.Expr, t: sp.Expr, scale: sp.Expr = 1) -> sp.Expr:
    """Pre-activation of neuron ``kk`` on sample ``t``; incoming weights/bias times ``scale``."""
    return sp.Sum(scale * W[kk, i] * X[i, t], (i, 1, n)) + scale * B[kk]


def _layer_loss(scale_in: sp.Expr, scale_out: sp.Expr, homogeneous: bool = True) -> sp.Expr:
    """Linearised loss ``sum_{t,j} g[j,t] y[j,t]`` of a layer, neuron 1's parameters scaled.

    ``y[j,t] = scale_out V[j,1] phi(z_1) + sum_{k=2..h} V[j,k] phi(z_k)``; with
    ``homogeneous=False`` the activation is ``phi(z) + 1`` (not homogeneous).
    """
    act = (lambda z: phi(z)) if homogeneous else (lambda z: phi(z) + 1)
    y1 = scale_out * V[j, 1] * act(_pre(1, smp, scale_in))
    rest = sp.Sum(V[j, k] * act(_pre(k, smp)), (k, 2, h))
    return sp.Sum(sp.Sum(Gs[j, smp] * (y1 + rest), (j, 1, m)), (smp, 1, N))


def _orbit_derivative(homogeneous: bool = True) -> sp.Expr:
    """``d/de L(w(1+e), beta(1+e), v(1-e))`` at ``e = 0`` -- the loss along the orbit tangent."""
    loss = _layer_loss(1 + eps, 1 - eps, homogeneous)
    return _euler(sp.diff(loss, eps).subs(eps, 0))


def _imbalance(scale_in: sp.Expr = 1, scale_out: sp.Expr = 1) -> sp.Expr:
    a = sp.Sum((scale_in * W[1, i]) ** 2, (i, 1, n)) + (scale_in * B[1]) ** 2
    b = sp.Sum((scale_out * V[j, 1]) ** 2, (j, 1, m))
    return a - b


def _a() -> sp.Expr:
    return sp.Sum(W[1, i] ** 2, (i, 1, n)) + B[1] ** 2


def _b() -> sp.Expr:
    return sp.Sum(V[j, 1] ** 2, (j, 1, m))


def _in_range_gradient(expr: sp.Expr, var: sp.Indexed) -> sp.Expr:
    """``d expr / d var`` for an index inside its range: the in-range branch of SymPy's result."""
    d = sp.diff(expr, var).doit()
    d = sp.piecewise_fold(d)
    if isinstance(d, sp.Piecewise):
        return d.args[0][0]
    return d


# --------------------------------------------------------------------------- G1

_z, _s, _al = z3.Reals("z s alpha")
_ALPHA_1 = sp.Symbol("alpha", positive=True)
_ALPHAS = sp.IndexedBase("alpha", positive=True)
_ZS = sp.IndexedBase("z")
_zs = z3.Reals("z1 z2 z3")
_vs = z3.Reals("v1 v2 v3")
_als = z3.Reals("alpha1 alpha2 alpha3")


def _z3_layer(alphas: list[z3.ArithRef], slope: z3.ArithRef | float) -> z3.ArithRef:
    """Output of one neuron-layer after rescaling: ``sum_k (v_k/alpha_k) phi(alpha_k z_k)``."""
    return z3.Sum(
        [(v / a) * _z3_relu(a * z, slope) for v, a, z in zip(_vs, alphas, _zs, strict=True)]
    )


G1 = register(
    Theorem(
        id="G1",
        name="orbit invariance",
        statement=(
            "For positively homogeneous phi (ReLU, leaky ReLU of any slope), phi(alpha z) = "
            "alpha phi(z) for alpha > 0; hence, for every layer width and every depth, scaling "
            "hidden neurons' incoming weights and bias by alpha_k and their outgoing weights by "
            "1/alpha_k leaves the network function unchanged."
        ),
        assumptions=(
            "alpha_k > 0 (each neuron its own alpha_k)",
            "phi = leaky ReLU, slope s real",
            "any input width n, layer width h, depth",
        ),
        scope=general(
            "every input width n and layer width h (symbolic sums); every depth, since the next "
            "layer's pre-activation is unchanged"
        ),
        claim=all_of(
            z3_implies([_al > 0], _z3_relu(_al * _z, _s) == _al * _z3_relu(_z, _s)),
            sum_identity(
                sp.Sum(_ALPHA_1 * W[1, i] * X[i], (i, 1, n)) + _ALPHA_1 * B[1],
                _ALPHA_1 * (sp.Sum(W[1, i] * X[i], (i, 1, n)) + B[1]),
                sizes=(n,),
                latex=r"(\alpha w)\cdot x + \alpha\beta = \alpha (w\cdot x + \beta)",
            ),
            sum_identity(
                sp.Sum(V[j, k] / _ALPHAS[k] * (_ALPHAS[k] * phi(_ZS[k])), (k, 1, h)),
                sp.Sum(V[j, k] * phi(_ZS[k]), (k, 1, h)),
                sizes=(h,),
                latex=r"\sum_{k=1}^{h} \frac{v_{jk}}{\alpha_k}\,\phi(\alpha_k z_k) = "
                r"\sum_{k=1}^{h} v_{jk}\,\phi(z_k)",
            ),
            z3_implies(
                [a > 0 for a in _als],
                _z3_layer(list(_als), _s) == _z3_layer([z3.RealVal(1)] * 3, _s),
            ),
            labels=(
                "positive homogeneity of leaky ReLU, phi(alpha z) = alpha phi(z)",
                "pre-activation scales with the incoming weights (every width n)",
                "next layer's pre-activation unchanged, homogeneity applied (every width h)",
                "instance: three neurons with independent scales, leaky ReLU itself",
            ),
        ),
        mutants=(
            Mutant(
                id="negative-alpha",
                description="a sign flip alpha < 0 is not a symmetry of ReLU",
                claim=z3_implies([_al != 0], _z3_relu(_al * _z) == _al * _z3_relu(_z)),
            ),
            Mutant(
                id="relu6",
                description="clipped ReLU min(max(z, 0), 6) is not positively homogeneous",
                claim=z3_implies(
                    [_al > 0],
                    z3.If(_al * _z > 6, 6, _z3_relu(_al * _z))
                    == _al * z3.If(_z > 6, 6, _z3_relu(_z)),
                ),
            ),
        ),
        property_test=f"{TWINS}::test_gauge_function_invariance",
        theory=THEORY,
    )
)

# --------------------------------------------------------------------------- G2

a_, b_, t_ = sp.symbols("a b t", positive=True)  # t = alpha^2
_orbit_norm = t_ * a_ + b_ / t_
_t_star = sp.sqrt(b_ / a_)
_za, _zb, _zt, _zr = z3.Reals("a b t root_ab")

G2 = register(
    Theorem(
        id="G2",
        name="balanced minimum",
        statement=(
            "On the orbit of a neuron with a = ||w_in||^2, b = ||w_out||^2 the norm "
            "alpha^2 a + b/alpha^2 is minimised at alpha^4 = b/a, with value 2 sqrt(ab), "
            "where the rescaled neuron is balanced (alpha^2 a = b/alpha^2)."
        ),
        assumptions=("a > 0", "b > 0", "alpha > 0"),
        scope=general("every a > 0, b > 0 (a, b squared norms of any widths)"),
        claim=all_of(
            sympy_identity(sp.diff(_orbit_norm, t_).subs(t_, _t_star), 0),
            sympy_identity(_orbit_norm.subs(t_, _t_star), 2 * sp.sqrt(a_ * b_)),
            sympy_identity(_t_star * a_, b_ / _t_star),
            z3_implies(
                [_za > 0, _zb > 0, _zt > 0, _zr > 0, _zr * _zr == _za * _zb],
                _zt * _za + _zb / _zt >= 2 * _zr,
            ),
            labels=(
                "stationary at alpha^2 = sqrt(b/a)",
                "minimum value 2 sqrt(ab)",
                "balanced there",
                "global lower bound (AM-GM) for every alpha",
            ),
        ),
        mutants=(
            Mutant(
                id="alpha-squared",
                description="alpha^2 = b/a (forgetting the fourth root) is not the minimiser",
                claim=sympy_identity(_orbit_norm.subs(t_, b_ / a_), 2 * sp.sqrt(a_ * b_)),
            ),
            Mutant(
                id="value-a-plus-b",
                description="the minimum is not a + b (that is the value at alpha = 1)",
                claim=z3_implies([_za > 0, _zb > 0, _zt > 0], _zt * _za + _zb / _zt >= _za + _zb),
            ),
        ),
        property_test=f"{TWINS}::test_gauge_balance_minimises_norm",
        theory=THEORY,
    )
)

# --------------------------------------------------------------------------- G3

_p, _sx, _beta, _c = sp.symbols("p s beta c", real=True)

G3 = register(
    Theorem(
        id="G3",
        name="conserved imbalance",
        statement=(
            "Under gradient flow of any loss, the imbalance delta = ||w_in||^2 + beta^2 - "
            "||w_out||^2 of every hidden neuron is constant: d delta/dt = -2 <grad L, t> = 0, "
            "because the loss is constant along the orbit tangent t (Euler's identity)."
        ),
        assumptions=(
            "phi positively homogeneous, differentiable at the pre-activations (z != 0)",
            "layer of general widths n (inputs), h (neurons), m (outputs), N samples",
            "x and g = dloss/dy arbitrary (any depth, any loss)",
        ),
        scope=general(
            "every width n, h, m and sample count N (symbolic sums); any depth, any loss"
        ),
        claim=all_of(
            z3_implies(
                [_z != 0],
                z3.If(_z > 0, 1, _s) * _z == _z3_relu(_z, _s),
            ),
            sum_identity(
                _orbit_derivative(),
                0,
                sizes=SIZES,
                latex=(
                    r"\frac{d}{d\epsilon} L\big(w(1+\epsilon), \beta(1+\epsilon), "
                    r"v(1-\epsilon)\big)\Big|_0 = \sum_{t,j} g_{jt} v_j "
                    r"\big(\phi'(z_t) z_t - \phi(z_t)\big) = 0"
                ),
            ),
            sum_identity(
                sp.diff(_imbalance(1 + eps, 1 - eps), eps).subs(eps, 0),
                2 * (_a() + _b()),
                sizes=SIZES,
                latex=r"\langle \nabla\delta, t\rangle = 2(a + b)",
            ),
            sum_identity(
                sp.Add(
                    _in_range_gradient(_imbalance(), W[1, q]) - 2 * W[1, q],
                    _in_range_gradient(_imbalance(), B[1]) - 2 * B[1],
                    _in_range_gradient(_imbalance(), V[r, 1]) + 2 * V[r, 1],
                ),
                0,
                sizes=SIZES,
                latex=r"\nabla\delta = 2t = 2(w, \beta, -v)",
            ),
            labels=(
                "Euler's identity phi'(z) z = phi(z) for leaky ReLU (z != 0)",
                "loss is flat along the orbit tangent (general widths)",
                "<grad delta, t> = 2(a + b) (general widths)",
                "grad delta = 2 t, so d delta/dt = <2t, -grad L> = -2 * 0",
            ),
        ),
        mutants=(
            Mutant(
                id="no-bias",
                description=(
                    "dropping the bias from a (delta = ||w||^2 - ||v||^2) breaks conservation: "
                    "the tangent without the bias leaves d/de L = -p phi'(z) beta"
                ),
                claim=sympy_identity(_p * _c * _sx - _p * _c * (_sx + _beta), 0),
            ),
            Mutant(
                id="non-homogeneous",
                description="with phi(z) + 1 (e.g. softplus-like offset) the loss is not flat",
                claim=sum_identity(
                    _orbit_derivative(False),
                    0,
                    sizes=SIZES,
                    latex=r"\frac{d}{d\epsilon} L = 0 \text{ for } \phi + 1",
                ),
            ),
        ),
        property_test=f"{TWINS}::test_gauge_imbalance_conserved_under_gd",
        theory=THEORY,
    )
)


# --------------------------------------------------------------------------- G4


def _penalty() -> sp.Expr:
    return mu * _imbalance() ** 2


def _tangent_gradient_residual() -> sp.Expr:
    """``grad R - 4 mu delta t`` over neuron 1's entries (must vanish entrywise)."""
    delta = _imbalance()
    return sp.Add(
        (_in_range_gradient(_penalty(), W[1, q]) - 4 * mu * delta * W[1, q]) ** 2,
        (_in_range_gradient(_penalty(), B[1]) - 4 * mu * delta * B[1]) ** 2,
        (_in_range_gradient(_penalty(), V[r, 1]) + 4 * mu * delta * V[r, 1]) ** 2,
    )


def _relaxation_residual() -> sp.Expr:
    """``<grad delta, -grad R> + 8 mu (a + b) delta`` with grad R = 4 mu delta t, general widths."""
    delta = _imbalance()
    along = sp.diff(_imbalance(1 + eps, 1 - eps), eps).subs(eps, 0)  # <grad delta, t>
    return -4 * mu * delta * along + 8 * mu * (_a() + _b()) * delta


_zmu, _zd, _zab = z3.Reals("mu delta a_plus_b")

G4 = register(
    Theorem(
        id="G4",
        name="dissipative relaxation",
        statement=(
            "The balancing penalty R = mu delta^2 has gradient 4 mu delta t, tangent to the "
            "orbit (so it does not change the function to first order), and under its gradient "
            "flow d delta/dt = -8 mu (a + b) delta: the imbalance decays."
        ),
        assumptions=(
            "mu > 0",
            "a neuron with general widths n (inputs), m (outputs)",
            "for R = mu sum_k delta_k^2 over a network, grad R = 4 mu sum_k delta_k t_k",
        ),
        scope=general("every width n, h, m (symbolic sums)"),
        claim=all_of(
            sum_identity(
                _tangent_gradient_residual(),
                0,
                sizes=SIZES,
                latex=r"\nabla (\mu\delta^2) = 4\mu\delta\, t",
            ),
            sum_identity(
                _relaxation_residual(),
                0,
                sizes=SIZES,
                latex=r"\dot\delta = \langle\nabla\delta, -\nabla R\rangle = -8\mu(a+b)\delta",
            ),
            z3_implies(
                [_zmu > 0, _zab > 0, _zd != 0],
                _zd * (-8 * _zmu * _zab * _zd) < 0,
            ),
            labels=(
                "grad R = 4 mu delta t (tangent to the orbit)",
                "d delta/dt = -8 mu (a + b) delta",
                "d(delta^2)/dt < 0 whenever delta != 0 (dissipation)",
            ),
        ),
        mutants=(
            Mutant(
                id="rate-a-minus-b",
                description="the rate is (a + b), not (a - b): tangent norms add",
                claim=sum_identity(
                    _relaxation_residual() - 16 * mu * _b() * _imbalance(),
                    0,
                    sizes=SIZES,
                    latex=r"\dot\delta = -8\mu(a-b)\delta",
                ),
            ),
            Mutant(
                id="rate-scalar",
                description="a + b cannot be replaced by 2 sqrt(ab) (equal only when balanced)",
                claim=sympy_identity(
                    -8 * mu * (a_ + b_) * (a_ - b_), -8 * mu * 2 * sp.sqrt(a_ * b_) * (a_ - b_)
                ),
            ),
        ),
        property_test=f"{TWINS}::test_gauge_penalty_gradient_tangent",
        theory=THEORY,
    )
)

# --------------------------------------------------------------------------- G5

w1, w2, y_, eta = sp.symbols("w1 w2 y eta", real=True)
_loss5 = (w1 * w2 - y_) ** 2 / 2
_hess = sp.hessian(_loss5, (w1, w2)).subs(y_, w1 * w2)
_zw1, _zw2, _zy, _zeta, _zlam = z3.Reals("w1 w2 y eta lam")

G5 = register(
    Theorem(
        id="G5",
        name="stable learning rate",
        statement=(
            "For f = w1 w2 with squared loss (f - y)^2 / 2, gradient descent is locally stable "
            "at a minimum iff eta < 2/(w1^2 + w2^2) (the Hessian there has eigenvalues 0 and "
            "w1^2 + w2^2); among the minima w1 w2 = y the balanced one |w1| = |w2| has the "
            "smallest w1^2 + w2^2 = 2|y| and so the largest stable step."
        ),
        assumptions=("y != 0", "eta > 0", "(w1, w2) on the minimum manifold w1 w2 = y"),
        scope=instance("the scalar model f = w1 w2 with squared loss"),
        claim=all_of(
            sympy_identity(_hess, sp.Matrix([[w2**2, w1 * w2], [w1 * w2, w1**2]])),
            sympy_identity(_hess.det(), 0),
            sympy_identity(_hess.trace(), w1**2 + w2**2),
            z3_implies(
                [_zeta > 0, _zlam > 0],
                ((1 - _zeta * _zlam) ** 2 < 1) == (_zeta * _zlam < 2),
            ),
            z3_implies([_zw1 * _zw2 == _zy], _zw1**2 + _zw2**2 >= 2 * _zy),
            z3_implies([_zw1 * _zw2 == _zy], _zw1**2 + _zw2**2 >= -2 * _zy),
            z3_implies([_zw1 * _zw2 == _zy, _zy > 0, _zw1**2 + _zw2**2 == 2 * _zy], _zw1 == _zw2),
            labels=(
                "Hessian at a minimum",
                "one zero eigenvalue (along the orbit)",
                "other eigenvalue w1^2 + w2^2",
                "|1 - eta lam| < 1 iff eta lam < 2 (transversal stability)",
                "w1^2 + w2^2 >= 2y on the minima",
                "w1^2 + w2^2 >= -2y on the minima",
                "equality only at the balanced point",
            ),
        ),
        mutants=(
            Mutant(
                id="eta-one-over",
                description="the threshold is 2/lam, not 1/lam: eta = 1.5/lam is still stable",
                claim=z3_implies(
                    [_zeta > 0, _zlam > 0],
                    ((1 - _zeta * _zlam) ** 2 < 1) == (_zeta * _zlam < 1),
                ),
            ),
            Mutant(
                id="product-curvature",
                description="the curvature is w1^2 + w2^2, not 2 w1 w2 (equal only when balanced)",
                claim=sympy_identity(_hess.trace(), 2 * w1 * w2),
            ),
        ),
        property_test=f"{TWINS}::test_gauge_stable_lr_scalar",
        theory=THEORY,
    )
)

# --------------------------------------------------------------------------- G6

_hv = sp.Matrix(sp.symbols("h1:4", real=True))
_H6 = InnerProductSpace("h")
_al6 = sp.Symbol("alpha", positive=True)
_E6 = sp.Symbol("E", positive=True)
_D6 = sp.diag(*sp.symbols("d1:4", positive=True))
_Wrow = sp.Matrix([sp.symbols("u1:4", real=True)]).T


def _c_e(u: sp.Matrix) -> sp.Matrix:
    return sp.sqrt(_E6) * u / sp.sqrt(sum(x**2 for x in u))


_zl, _ze, _za6 = z3.Reals("lam energy alpha")

G6 = register(
    Theorem(
        id="G6",
        name="conservation is gauge-invariant; energy penalties are not",
        statement=(
            "A common rescaling alpha > 0 of the neurons feeding C_E is invisible: "
            "C_E(alpha h) = C_E(h) (T3), so conservation commutes with the gauge action; "
            "the activation-energy penalty lam ||h||^2 is not invariant: along the orbit "
            "it becomes lam alpha^2 ||h||^2, whose infimum 0 is approached but not attained "
            "for h != 0."
        ),
        assumptions=("E > 0", "h != 0", "lam > 0", "alpha > 0", "h in R^n, any n >= 1"),
        scope=general("every dimension n >= 1 of the boundary, every alpha > 0"),
        claim=all_of(
            gram_identity(
                _H6,
                sp.sqrt(_E6) / _H6.norm(_al6 * _H6.vec("h")) * (_al6 * _H6.vec("h")),
                sp.sqrt(_E6) / _H6.norm(_H6.vec("h")) * _H6.vec("h"),
                latex=r"C_E(\alpha h) = C_E(h)\quad(h \in \mathbb{R}^n,\ \forall n)",
            ),
            z3_implies(
                [_zl > 0, _ze > 0, _za6 > 0],
                z3.And(
                    _zl * (_za6 / 2) ** 2 * _ze < _zl * _za6**2 * _ze,
                    _zl * _za6**2 * _ze > 0,
                ),
            ),
            labels=(
                "C_E(alpha h) = C_E(h) (every dimension)",
                "every orbit point is beaten by alpha/2, and the penalty stays > 0",
            ),
        ),
        mutants=(
            Mutant(
                id="per-neuron-through-CE",
                description=(
                    "per-neuron rescaling compensated by the next layer is not a symmetry "
                    "across C_E: u^T D^-1 C_E(D h) != u^T C_E(h)"
                ),
                claim=sympy_identity(
                    (_Wrow.T * _D6.inv() * _c_e(_D6 * _hv))[0, 0],
                    (_Wrow.T * _c_e(_hv))[0, 0],
                ),
            ),
            Mutant(
                id="penalty-invariant",
                description="the energy penalty is not constant along the orbit",
                claim=z3_implies([_zl > 0, _ze > 0, _za6 > 0], _zl * _za6**2 * _ze == _zl * _ze),
            ),
        ),
        property_test=f"{TWINS}::test_gauge_conserved_boundary_commutes",
        theory=THEORY,
    )
)
