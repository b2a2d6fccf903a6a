"""Property tests of noise propagation: the numeric twins of S1-S3 (``proofs/propagation.py``).

Each checks the theorem's statement on the torch implementation: the real
injectors and layers (Monte Carlo, exact statistical tests at false-alarm rate
``ALPHA``) and the analytic predictor of :mod:`conserve_verified.propagation`.
"""

from __future__ import annotations

import itertools
import math

import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats
from torch import nn

from conserve_verified import Pipeline
from conserve_verified.noise import GaussianNoise
from conserve_verified.propagation import (
    accumulated_variance,
    linear_noise_gain,
    predict,
    stationary_variance,
)
from conserve_verified.tolerances import tolerance

ALPHA = 1e-7
_seeds = st.integers(0, 2**32 - 1)
_RTOL = tolerance(torch.float64).function_rtol


@given(_seeds, st.floats(0.05, 2.0), st.sampled_from([0.0, 0.5, 1.0]), st.integers(1, 6))
def test_linear_propagation_variance(seed: int, sigma: float, c: float, n_in: int) -> None:
    """S1: a unit's noise variance is sigma^2 ((1 - c) sum W^2 + c (sum W)^2).

    The predictor gives it exactly; the real injector through the real layer
    matches it (chi-square test of the Monte Carlo variance of unit 0).
    """
    g = torch.Generator().manual_seed(seed)
    lin = nn.Linear(n_in, 3).double()
    with torch.no_grad():
        lin.weight.copy_(torch.randn(3, n_in, generator=g, dtype=torch.float64))
    model = Pipeline(nn.Identity(), lin)
    noise = GaussianNoise(sigma, correlation=c, seed=seed)
    x = torch.randn(2, n_in, generator=g, dtype=torch.float64)
    expect = sigma**2 * linear_noise_gain(lin.weight.detach(), c)
    pred = predict(model, x, boundary_noise=noise)[-1].variance
    torch.testing.assert_close(pred, expect.expand(2, 3), rtol=_RTOL * 16, atol=0.0)
    rows = 3000
    with torch.no_grad():
        out = lin(noise(x[:1].expand(rows, n_in)))
    v = float(expect[0])
    if v == 0.0:
        return
    stat = (rows - 1) * float(out[:, 0].var()) / v
    p = 2 * min(stats.chi2.cdf(stat, rows - 1), stats.chi2.sf(stat, rows - 1))
    assert p > ALPHA, (float(out[:, 0].var()), v)


_acts = st.sampled_from(
    [nn.ReLU(), nn.LeakyReLU(0.1), nn.Tanh(), nn.Hardtanh(), nn.Sigmoid(), nn.Softsign()]
)


@given(_seeds, _acts, st.floats(0.1, 3.0), st.floats(-2.0, 2.0), st.floats(0.01, 2.0))
def test_activation_slope_bounds_variance(
    seed: int, act: nn.Module, g: float, mu: float, sigma: float
) -> None:
    """S2: an activation with slope <= g scales the noise variance by at most g^2.

    ``g * act`` with a 1-Lipschitz ``act``: the empirical variance of the real
    activation's output is at most ``g^2`` times that of its input (this holds
    for empirical variances exactly, by the pairwise form); the predictor too.
    """
    gen = torch.Generator().manual_seed(seed)
    z = mu + sigma * torch.randn(2000, generator=gen, dtype=torch.float64)
    y = g * act(z)
    assert float(y.var()) <= g * g * float(z.var()) * (1 + _RTOL)
    model = Pipeline(nn.Identity(), act)
    taps = predict(
        model, torch.full((1, 4), mu, dtype=torch.float64), boundary_noise=GaussianNoise(sigma)
    )
    assert taps[-1].noise_variance <= taps[-2].noise_variance * (1 + _RTOL)


@given(st.floats(0.0, 1.8), st.integers(1, 25), st.floats(0.01, 1.0), _seeds)
def test_noise_accumulation_bounded_iff_gain_below_one(
    g: float, depth: int, sigma: float, seed: int
) -> None:
    """S3: v_L = sigma^2 sum_{k<L} g^{2k}: bounded by sigma^2/(1-g^2) iff g < 1.

    The predictor on a chain of gain-g orthogonal layers with noise at every
    boundary follows the recurrence; the closed form stays below the stationary
    level for g < 1 and grows at least linearly for g >= 1.
    """
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=gen, dtype=torch.float64))
    layers = []
    for _ in range(depth + 1):
        lin = nn.Linear(4, 4, bias=False).double()
        with torch.no_grad():
            lin.weight.copy_(g * q)
        layers.append(lin)
    taps = predict(
        Pipeline(*layers),
        torch.randn(1, 4, generator=gen, dtype=torch.float64),
        boundary_noise=GaussianNoise(sigma),
    )
    boundary = [t for t in taps if t.name.startswith("boundary")]
    s2 = sigma**2
    expect = accumulated_variance(s2, g, depth)
    assert math.isclose(boundary[-1].noise_variance, expect, rel_tol=64 * depth * _RTOL)
    if g < 1.0:
        assert expect <= stationary_variance(s2, g) * (1 + _RTOL)
    else:
        assert expect >= depth * s2 * (1 - _RTOL)


class _Wrap(nn.Module):
    """A custom container: the predictor traces it (factor form) instead of walking a chain."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.inner(x)
        return out


@given(
    _seeds,
    st.lists(st.integers(1, 6), min_size=2, max_size=4),
    st.floats(0.01, 1.0),
    st.sampled_from([0.0, 0.5, 1.0]),
)
def test_factor_form_equals_full_covariance(
    seed: int, widths: list[int], sigma: float, c: float
) -> None:
    """S1 + S2 in two representations: the traced (factor-form) predictor gives the same
    variances as the full-covariance predictor on the same chain of layers."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(widths):
        layers += [nn.Linear(a, b), nn.ReLU()]
    chain = nn.Sequential(*layers).double()
    x = torch.randn(
        3, widths[0], dtype=torch.float64, generator=torch.Generator().manual_seed(seed)
    )
    noise = GaussianNoise(sigma, correlation=c, seed=seed)
    direct = predict(chain, x, neuron_noise=noise)
    traced = predict(_Wrap(chain), x, neuron_noise=noise)
    assert [f"inner.{t.name}" for t in direct] == [t.name for t in traced]
    for a, b in zip(direct, traced, strict=True):
        torch.testing.assert_close(a.variance, b.variance, rtol=_RTOL * 64, atol=_RTOL * 64)
