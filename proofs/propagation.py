r"""Theorems of noise propagation (claim S): linear layers, activation slopes, accumulation.

Notation: a linear unit ``y = sum_j w_j x_j`` receives noise ``xi`` with
per-element variance ``sigma^2`` and correlation ``c`` between elements; an
activation ``phi`` has slope at most ``g``; along depth, noise of variance
``s = sigma^2`` enters after every layer of gain ``g`` (``v_{k+1} = g^2 v_k + s``).
"""

from __future__ import annotations

import sympy as sp
import z3

from conserve_verified.proof import (
    Mutant,
    Theorem,
    all_of,
    general,
    induction,
    register,
    sum_identity,
    sympy_identity,
    z3_implies,
)

THEORY = "propagation"
TWINS = "property_tests/test_propagation.py"

# ----------------------------------------------------------------------------- S1

_w = sp.Matrix(sp.symbols("w1:4", real=True))
_sigma, _c = sp.symbols("sigma c", real=True)
_K = _sigma**2 * ((1 - _c) * sp.eye(3) + _c * sp.ones(3, 3))
_var_out = (_w.T * _K * _w)[0, 0]
_sum_sq = sum(wi**2 for wi in _w)
_sq_sum = sum(_w) ** 2

# every input width n: a unit's variance sum_j sum_k w_j w_k Sigma_jk (bilinearity of covariance)
_n = sp.Symbol("n", integer=True, positive=True)
_j, _k = sp.symbols("j k", integer=True)
_W = sp.IndexedBase("w")


def _cov(a: sp.Expr, b: sp.Expr) -> sp.Expr:
    """Sigma_ab = sigma^2 ((1 - c) delta_ab + c)."""
    return _sigma**2 * ((1 - _c) * sp.KroneckerDelta(a, b) + _c)


_VAR_N = sp.Sum(sp.Sum(_W[_j] * _cov(_j, _k) * _W[_k], (_k, 1, _n)), (_j, 1, _n))
_SUM_SQ_N = sp.Sum(_W[_j] ** 2, (_j, 1, _n))
_SQ_SUM_N = sp.Sum(_W[_j], (_j, 1, _n)) ** 2

S1 = register(
    Theorem(
        id="S1",
        name="linear propagation of noise",
        statement=(
            "For y = W x and noise with covariance Sigma the output noise covariance is "
            "W Sigma W^T (bilinearity of covariance); with per-element variance sigma^2 and "
            "correlation c, for every input width n a unit's variance is "
            "sigma^2 ((1 - c) sum_j W_ij^2 + c (sum_j W_ij)^2): uncorrelated noise "
            "scales with the mean of the squared weights, correlated noise with the squared "
            "mean of the weights."
        ),
        assumptions=(
            "noise with covariance sigma^2 ((1 - c) I + c 1 1^T)",
            "Var(sum_j w_j xi_j) = sum_j sum_k w_j w_k Cov(xi_j, xi_k)",
            "any input width n",
        ),
        scope=general("every input width n (symbolic sums)"),
        claim=all_of(
            sum_identity(
                _VAR_N,
                _sigma**2 * ((1 - _c) * _SUM_SQ_N + _c * _SQ_SUM_N),
                sizes=(_n,),
                latex=r"\sum_{j,k=1}^{n} w_j \Sigma_{jk} w_k = "
                r"\sigma^2\big((1-c)\sum_j w_j^2 + c(\sum_j w_j)^2\big)",
            ),
            sympy_identity(
                _var_out,
                _sigma**2 * ((1 - _c) * _sum_sq + _c * _sq_sum),
                latex=r"w^\top \Sigma w = \sigma^2\big((1-c)\sum_j w_j^2 + c(\sum_j w_j)^2\big)",
            ),
            labels=("every input width n", "instance: 3 inputs, explicit matrix"),
        ),
        mutants=(
            Mutant(
                id="correlated-mean-of-squares",
                description=(
                    "claims correlated noise also scales with the mean of the squared weights"
                ),
                claim=sum_identity(
                    _VAR_N,
                    _sigma**2 * _SUM_SQ_N,
                    sizes=(_n,),
                    latex=r"w^\top \Sigma w = \sigma^2 \sum_j w_j^2",
                ),
            ),
        ),
        property_test=f"{TWINS}::test_linear_propagation_variance",
        theory=THEORY,
    )
)

# ----------------------------------------------------------------------------- S2

_x = [z3.Real(f"x{i}") for i in range(3)]
_y = [z3.Real(f"y{i}") for i in range(3)]
_g = z3.Real("g")
_pairs = [(0, 1), (0, 2), (1, 2)]
_lipschitz = [(_y[i] - _y[j]) ** 2 <= _g * _g * (_x[i] - _x[j]) ** 2 for i, j in _pairs]


def _spread(v: list[z3.ArithRef]) -> z3.ArithRef:
    """``3 * sum_i (v_i - mean)^2`` written as the pairwise sum ``sum_{i<j} (v_i - v_j)^2``."""
    return sum(((v[i] - v[j]) ** 2 for i, j in _pairs), z3.RealVal(0))


_v = sp.symbols("v0:3", real=True)
_mean = sum(_v) / 3

# every sample size n: n sum_i (v_i - mean)^2 = (1/2) sum_i sum_j (v_i - v_j)^2, and the gap
# g^2 sum (x_i - x_j)^2 - sum (y_i - y_j)^2 is the sum of the per-pair gaps
_i2, _j2 = sp.symbols("i j", integer=True)
_V, _X, _Y = sp.IndexedBase("v"), sp.IndexedBase("x"), sp.IndexedBase("y")
_gs = sp.Symbol("g", nonnegative=True)
_MEAN_N = sp.Sum(_V[_i2], (_i2, 1, _n)) / _n


def _pair_sum(f: sp.Expr) -> sp.Expr:
    return sp.Sum(sp.Sum(f, (_j2, 1, _n)), (_i2, 1, _n))


S2 = register(
    Theorem(
        id="S2",
        name="activation slope bounds noise gain",
        statement=(
            "An activation with slope at most g (|phi(a) - phi(b)| <= g |a - b|) scales the "
            "noise variance by at most g^2: Var[phi(z)] <= g^2 Var[z] for the empirical "
            "distribution of every number n of samples, through the pairwise form of the "
            "variance."
        ),
        assumptions=(
            "g >= 0",
            "phi g-Lipschitz on the sample points",
            "a finite sum of nonnegative terms is nonnegative (used, not machine-checked)",
        ),
        scope=general("every sample size n (symbolic sums) of the empirical distribution"),
        claim=all_of(
            sum_identity(
                2 * _n * sp.Sum((_V[_i2] - _MEAN_N) ** 2, (_i2, 1, _n)),
                _pair_sum((_V[_i2] - _V[_j2]) ** 2),
                sizes=(_n,),
                latex=r"2n\sum_i (v_i-\bar v)^2 = \sum_{i,j}(v_i-v_j)^2",
            ),
            sum_identity(
                _gs**2 * _pair_sum((_X[_i2] - _X[_j2]) ** 2) - _pair_sum((_Y[_i2] - _Y[_j2]) ** 2),
                _pair_sum(_gs**2 * (_X[_i2] - _X[_j2]) ** 2 - (_Y[_i2] - _Y[_j2]) ** 2),
                sizes=(_n,),
                latex=r"g^2\sum_{i,j}(x_i-x_j)^2 - \sum_{i,j}(y_i-y_j)^2 = "
                r"\sum_{i,j}\big(g^2(x_i-x_j)^2 - (y_i-y_j)^2\big)",
            ),
            z3_implies(
                [_g >= 0, _lipschitz[0]],
                _g * _g * (_x[0] - _x[1]) ** 2 - (_y[0] - _y[1]) ** 2 >= 0,
            ),
            sympy_identity(
                3 * sum((vi - _mean) ** 2 for vi in _v),
                sum((_v[i] - _v[j]) ** 2 for i, j in _pairs),
                latex=r"3\sum_i (v_i-\bar v)^2 = \sum_{i<j}(v_i-v_j)^2",
            ),
            z3_implies([_g >= 0, *_lipschitz], _spread(_y) <= _g * _g * _spread(_x)),
            labels=(
                "pairwise form of the variance, every n",
                "the variance gap is the sum of the per-pair gaps, every n",
                "each per-pair gap is >= 0 (Lipschitz)",
                "instance: pairwise form, three points",
                "instance: Lipschitz bound, three points",
            ),
        ),
        mutants=(
            Mutant(
                id="gain-not-squared",
                description="variance scaled by g instead of g^2 (fails for g > 1)",
                claim=z3_implies([_g >= 0, *_lipschitz], _spread(_y) <= _g * _spread(_x)),
            ),
            Mutant(
                id="always-suppressed",
                description="every activation suppresses noise, whatever its slope",
                claim=z3_implies([_g >= 0, *_lipschitz], _spread(_y) <= _spread(_x)),
            ),
        ),
        property_test=f"{TWINS}::test_activation_slope_bounds_variance",
        theory=THEORY,
    )
)

# ----------------------------------------------------------------------------- S3

_s, _vk = z3.Real("s"), z3.Real("v")
_next = _g * _g * _vk + _s
_contracting = [_g >= 0, _g < 1, _s >= 0]

S3 = register(
    Theorem(
        id="S3",
        name="accumulation bounded iff gain < 1",
        statement=(
            "Noise entering after every layer accumulates as v_{k+1} = g^2 v_k + s (v_0 = 0). "
            "For 0 <= g < 1 it stays below s / (1 - g^2) at every depth; for g >= 1 it grows "
            "by at least s per layer, so it is unbounded in depth when s > 0."
        ),
        assumptions=("s = sigma^2 >= 0", "g >= 0 the layer gain", "v_0 = 0"),
        scope=general("every depth k >= 0 (induction on k)"),
        claim=all_of(
            induction(
                k=z3.Int("k"),
                state=[_vk],
                predicate=lambda _kk, st: z3.And(st[0] >= 0, st[0] * (1 - _g * _g) <= _s),
                init=[z3.RealVal(0)],
                transition=lambda _kk, st: [_g * _g * st[0] + _s],
                hypotheses=_contracting,
            ),
            z3_implies([_g >= 1, _s >= 0, _vk >= 0], _next >= _vk + _s),
            labels=("bounded for g < 1 (by induction)", "grows by >= s per layer for g >= 1"),
        ),
        mutants=(
            Mutant(
                id="no-accumulation",
                description="claims noise never exceeds one layer's worth s when g < 1",
                claim=z3_implies([*_contracting, _g > 0, _s > 0, _vk >= 0, _vk <= _s], _next <= _s),
            ),
            Mutant(
                id="bound-1-minus-g",
                description="the stationary level written s / (1 - g) is a fixed point",
                claim=z3_implies(
                    [*_contracting, _vk * (1 - _g) == _s],
                    (_g * _g * _vk + _s) == _vk,
                ),
            ),
        ),
        property_test=f"{TWINS}::test_noise_accumulation_bounded_iff_gain_below_one",
        theory=THEORY,
    )
)
