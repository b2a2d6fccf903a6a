"""Property tests of the noise injectors: each docstring's distribution, checked statistically.

Moments are checked with exact tests from :mod:`scipy.stats` at a false-alarm
rate of ``ALPHA`` per check (z-test of the mean, chi-square test of the
variance, Fisher-z interval of the correlation, exact binomial test of the
dropout rate), on float64 noise so that rounding plays no part.
"""

from __future__ import annotations

import math

import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from conserve_verified.noise import (
    BiasNoise,
    DropoutNoise,
    GaussianNoise,
    MonocularDepthNoise,
    MultiplicativeNoise,
    NoiseInjector,
    ReferenceScaled,
)
from conserve_verified.testing import float_dtypes

#: False-alarm probability of each statistical check.
ALPHA = 1e-7
ROWS = 4000

_seeds = st.integers(0, 2**32 - 1)
_sigmas = st.floats(0.01, 3.0)
_corr = st.sampled_from([0.0, 0.3, 1.0])


def _assert_mean(x: torch.Tensor, mean: float, var: float) -> None:
    """z-test of ``E[x] = mean`` for i.i.d. ``x`` with known variance ``var``."""
    z = (float(x.mean()) - mean) / math.sqrt(var / x.numel())
    p = 2 * stats.norm.sf(abs(z))
    assert p > ALPHA, f"mean {float(x.mean()):.4g} vs {mean:.4g} (z={z:.2f})"


def _assert_variance(x: torch.Tensor, var: float) -> None:
    """Chi-square test of ``Var[x] = var`` for i.i.d. Gaussian ``x``."""
    n = x.numel()
    stat = (n - 1) * float(x.var()) / var
    p = 2 * min(stats.chi2.cdf(stat, n - 1), stats.chi2.sf(stat, n - 1))
    assert p > ALPHA, f"variance {float(x.var()):.4g} vs {var:.4g} (p={p:.2g})"


def _assert_correlation(a: torch.Tensor, b: torch.Tensor, rho: float) -> None:
    if rho == 1.0:
        torch.testing.assert_close(a, b)
        return
    ci = stats.pearsonr(a.numpy(), b.numpy()).confidence_interval(1 - ALPHA)
    assert ci.low <= rho <= ci.high, f"correlation interval {ci} misses {rho}"


def _signal(seed: int, cols: int = 6) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(ROWS, cols, generator=g, dtype=torch.float64) * 2.0 + 0.5


@given(_seeds, _sigmas, _corr)
def test_gaussian_noise_mean_variance_correlation(seed: int, sigma: float, c: float) -> None:
    """GaussianNoise: mean 0, variance ``sigma**2``, correlation ``c`` within a sample."""
    h = _signal(seed)
    n = GaussianNoise(sigma, correlation=c, seed=seed)(h) - h
    _assert_mean(n[:, 0], 0.0, sigma**2)
    _assert_variance(n[:, 1], sigma**2)
    _assert_correlation(n[:, 2], n[:, 3], c)


@given(_seeds, _sigmas, _corr)
def test_gaussian_noise_relative_matches_snr(seed: int, sigma: float, c: float) -> None:
    """relative=True: noise / rms(h) has mean 0 and variance ``sigma**2`` (SNR ``1/sigma**2``)."""
    h = _signal(seed)
    rms = h.pow(2).mean(-1, keepdim=True).sqrt()
    u = (GaussianNoise(sigma, relative=True, correlation=c, seed=seed)(h) - h) / rms
    _assert_mean(u[:, 0], 0.0, sigma**2)
    _assert_variance(u[:, 1], sigma**2)
    _assert_correlation(u[:, 2], u[:, 4], c)


@given(_seeds, st.floats(0.01, 1.0), _corr)
def test_multiplicative_noise_mean_variance(seed: int, sigma: float, c: float) -> None:
    """MultiplicativeNoise: ``(y - h) / h`` has mean 0, variance ``sigma**2``, correlation c."""
    h = _signal(seed)
    u = (MultiplicativeNoise(sigma, correlation=c, seed=seed)(h) - h) / h
    _assert_mean(u[:, 0], 0.0, sigma**2)
    _assert_variance(u[:, 1], sigma**2)
    _assert_correlation(u[:, 2], u[:, 5], c)


@given(_seeds, st.floats(0.0, 0.95), st.booleans())
def test_dropout_noise_mean_variance(seed: int, p: float, rescale: bool) -> None:
    """DropoutNoise: keep rate ``1 - p`` (exact binomial test); kept values scaled by 1/(1-p)."""
    h = _signal(seed)
    y = DropoutNoise(p, rescale=rescale, seed=seed)(h)
    kept = y != 0
    k, n = int(kept.sum()), kept.numel()
    assert stats.binomtest(k, n, 1.0 - p).pvalue > ALPHA
    factor = 1.0 / (1.0 - p) if rescale else 1.0
    torch.testing.assert_close(y[kept], h[kept] * factor)


@given(_seeds, st.floats(-2.0, 2.0), st.sampled_from(["constant", "random"]), st.booleans())
def test_bias_noise_rms_exact(seed: int, m: float, mode: str, relative: bool) -> None:
    """BiasNoise: ``rms(y - h) = |magnitude|`` (times ``rms(h)`` if relative), same every call."""
    h = _signal(seed)[:50]
    inj = BiasNoise(m, mode=mode, relative=relative, seed=seed)  # type: ignore[arg-type]
    b = inj(h) - h
    rms_h = h.pow(2).mean(-1).sqrt()
    expect = abs(m) * (rms_h if relative else torch.ones_like(rms_h))
    torch.testing.assert_close(b.pow(2).mean(-1).sqrt(), expect)
    torch.testing.assert_close(inj(h) - h, b)


@given(_seeds, st.floats(0.0, 0.3), st.floats(0.0, 0.3))
def test_depth_noise_scale_error_moments(seed: int, s_scale: float, s_pix: float) -> None:
    """MonocularDepthNoise: ``E[d'] = d``, ``Var[d'/d] = (1+s^2)(1+p^2) - 1`` (no holes/quant)."""
    d = torch.rand(ROWS, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    d = d + 0.5
    inj = MonocularDepthNoise(scale_sigma=s_scale, pixel_sigma=s_pix, hole_prob=0.0, seed=seed)
    ratio = inj(d) / d
    var = (1 + s_scale**2) * (1 + s_pix**2) - 1
    if var == 0.0:
        torch.testing.assert_close(ratio, torch.ones_like(ratio))
        return
    # ratio = s (1 + p z) is not Gaussian; its mean is tested with the known variance (CLT)
    _assert_mean(ratio[:, 0, 0], 1.0, var)


@given(_seeds, _sigmas, st.floats(0.1, 10.0))
def test_reference_scaled_noise_snr_against_the_clean_reference(
    seed: int, sigma: float, inflate: float
) -> None:
    """ReferenceScaled(GaussianNoise(sigma)): noise / rms(clean) has variance ``sigma**2``,
    whatever the scale of the (already perturbed) activation it is added to."""
    clean = _signal(seed)
    rms = clean.pow(2).mean(-1, keepdim=True).sqrt()
    hook = ReferenceScaled(GaussianNoise(sigma, seed=seed))
    hook.set_reference([clean])
    h = clean * inflate
    u = (hook(h, 0) - h) / rms
    _assert_mean(u[:, 0], 0.0, sigma**2)
    _assert_variance(u[:, 1], sigma**2)


_small = st.one_of(st.just(0.0), st.floats(1e-3, 0.3))


@given(_seeds, _small, _small)
def test_depth_noise_shift_moments(seed: int, s_scale: float, s_shift: float) -> None:
    """MonocularDepthNoise shift: ``E[d'] = d``, ``Var[d'] = d² s² + shift²`` (no pixel error)."""
    d = torch.full((ROWS, 2, 2), 0.8, dtype=torch.float64)
    inj = MonocularDepthNoise(
        scale_sigma=s_scale, pixel_sigma=0.0, shift_sigma=s_shift, hole_prob=0.0, seed=seed
    )
    e = (inj(d) - d)[:, 0, 0]
    var = 0.64 * s_scale**2 + s_shift**2
    if var == 0.0:
        torch.testing.assert_close(e, torch.zeros_like(e))
        return
    _assert_mean(e, 0.0, var)
    _assert_variance(e, var)


@given(_seeds, st.floats(0.01, 1.0), st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_depth_noise_holes_only_at_edges_and_quantised(
    seed: int, step: float, thr: float, hole_prob: float
) -> None:
    """Holes only at depth edges; every other pixel is a multiple of the quantisation step."""
    g = torch.Generator().manual_seed(seed)
    d = torch.rand(3, 1, 9, 9, dtype=torch.float64, generator=g) * 4.0
    inj = MonocularDepthNoise(
        edge_threshold=thr, hole_prob=hole_prob, quantization=step, hole_value=-1.0, seed=seed
    )
    y = inj(d)
    holes = y == -1.0
    edges = MonocularDepthNoise.edges(d, thr)
    assert not bool((holes & ~edges).any())
    if hole_prob == 1.0:
        assert torch.equal(holes, edges)
    q = y[~holes] / step
    torch.testing.assert_close(q, q.round())


_factories = st.sampled_from(
    [
        lambda s: GaussianNoise(0.3, seed=s),
        lambda s: GaussianNoise(0.3, relative=True, correlation=0.3, seed=s),
        lambda s: MultiplicativeNoise(0.3, correlation=1.0, seed=s),
        lambda s: BiasNoise(0.3, mode="random", seed=s),
        lambda s: DropoutNoise(0.3, seed=s),
    ]
)


@given(_factories, _seeds, float_dtypes(), st.integers(1, 5), st.integers(1, 9))
def test_injector_shape_dtype_and_seed(
    factory: object, seed: int, dtype: torch.dtype, rows: int, cols: int
) -> None:
    """Every injector keeps shape and dtype; the same seed gives the same output."""
    make = factory  # type: ignore[assignment]
    h = torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed)).to(dtype)
    a: NoiseInjector = make(seed)  # type: ignore[operator]
    b: NoiseInjector = make(seed)  # type: ignore[operator]
    y = a(h, 1)
    assert y.shape == h.shape and y.dtype == dtype
    assert torch.equal(y, b(h, 1))
