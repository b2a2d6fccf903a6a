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
    induction,
    register,
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

S1 = register(
    Theorem(
        id="S1",
        name="linear propagation of noise",
        statement=(
            "For y = W x and noise with covariance Sigma the output noise covariance is "
            "W Sigma W^T; with per-element variance sigma^2 and correlation c a unit's "
            "variance is sigma^2 ((1 - c) sum_j W_ij^2 + c (sum_j W_ij)^2): uncorrelated noise "
            "scales with the mean of the squared weights, correlated noise with the squared "
            "mean of the weights."
        ),
        assumptions=("noise with covariance sigma^2 ((1 - c) I + c 1 1^T)", "one unit, 3 inputs"),
        claim=sympy_identity(
            _var_out,
            _sigma**2 * ((1 - _c) * _sum_sq + _c * _sq_sum),
            latex=r"w^\top \Sigma w = \sigma^2\big((1-c)\sum_j w_j^2 + c(\sum_j w_j)^2\big)",
        ),
        mutants=(
            Mutant(
                id="correlated-mean-of-squares",
                description=(
                    "claims correlated noise also scales with the mean of the squared weights"
                ),
                claim=sympy_identity(_var_out, _sigma**2 * _sum_sq),
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

S2 = register(
    Theorem(
        id="S2",
        name="activation slope bounds noise gain",
        statement=(
            "An activation with slope at most g (|phi(a) - phi(b)| <= g |a - b|) scales the "
            "noise variance by at most g^2: Var[phi(z)] <= g^2 Var[z] (for every distribution; "
            "checked for the empirical distribution of three points through the pairwise "
            "form of the variance)."
        ),
        assumptions=("g >= 0", "phi g-Lipschitz on the sample points"),
        claim=all_of(
            sympy_identity(
                3 * sum((vi - _mean) ** 2 for vi in _v),
                sum((_v[i] - _v[j]) ** 2 for i, j in _pairs),
                latex=r"3\sum_i (v_i-\bar v)^2 = \sum_{i<j}(v_i-v_j)^2",
            ),
            z3_implies([_g >= 0, *_lipschitz], _spread(_y) <= _g * _g * _spread(_x)),
            labels=("pairwise form of the variance", "Lipschitz bound"),
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
        claim=all_of(
            induction(
                base=z3_implies(_contracting, z3.RealVal(0) * (1 - _g * _g) <= _s),
                step=z3_implies(
                    [*_contracting, _vk >= 0, _vk * (1 - _g * _g) <= _s],
                    z3.And(_next >= 0, _next * (1 - _g * _g) <= _s),
                ),
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
