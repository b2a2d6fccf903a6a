"""Unit tests of :mod:`conserve_verified.propagation`: closed forms, predictor vs Monte Carlo.

Predictor-vs-Monte-Carlo comparisons use 4,000 noise samples per input; the
acceptance bound is the issue's 10% relative error of the per-tap mean noise
variance (the Monte Carlo standard error is below 1% here).
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from scipy import stats
from torch import nn

from conserve_verified import Conserved, InvalidArgument, InvalidArgumentType, Pipeline
from conserve_verified.noise import (
    BiasNoise,
    Compose,
    DropoutNoise,
    GaussianNoise,
    MonocularDepthNoise,
    MultiplicativeNoise,
)
from conserve_verified.propagation import (
    LayerNoise,
    accumulated_variance,
    linear_noise_gain,
    mean_variance_se,
    monte_carlo,
    predict,
    relu_gaussian_moments,
    stationary_variance,
)
from conserve_verified.tolerances import tolerance

SAMPLES = 4000
REL = 0.10


def _mlp(seed: int = 0, act: type[nn.Module] = nn.ReLU) -> list[nn.Module]:
    torch.manual_seed(seed)
    return [
        nn.Sequential(nn.Linear(12, 16), act()),
        nn.Sequential(nn.Linear(16, 16), act()),
        nn.Linear(16, 5),
    ]


def _x(b: int = 4, n: int = 12, seed: int = 1) -> torch.Tensor:
    return torch.randn(b, n, generator=torch.Generator().manual_seed(seed)) + 0.5


def _assert_agree(pred: list[LayerNoise], mc: list[LayerNoise]) -> None:
    assert [p.name for p in pred] == [m.name for m in mc]
    for p, m in zip(pred, mc, strict=True):
        torch.testing.assert_close(p.signal, m.signal, rtol=1e-5, atol=1e-6)
        if m.noise_variance == 0.0:
            assert p.noise_variance == 0.0, p.name
            continue
        err = abs(p.noise_variance / m.noise_variance - 1.0)
        assert err <= REL, f"{p.name}: predicted {p.noise_variance:.4g} vs {m.noise_variance:.4g}"


_NOISES: list[tuple[str, dict[str, Any]]] = [
    ("additive", {"boundary_noise": GaussianNoise(0.05, seed=1)}),
    ("additive-correlated", {"boundary_noise": GaussianNoise(0.05, correlation=1.0, seed=1)}),
    ("additive-relative", {"boundary_noise": GaussianNoise(0.05, relative=True, seed=1)}),
    ("multiplicative", {"boundary_noise": MultiplicativeNoise(0.05, seed=1)}),
    ("neuron-additive", {"neuron_noise": GaussianNoise(0.05, correlation=0.5, seed=1)}),
    (
        "neuron-analog",
        {"neuron_noise": Compose(MultiplicativeNoise(0.05, seed=1), GaussianNoise(0.02, seed=2))},
    ),
    ("bias+additive", {"boundary_noise": Compose(BiasNoise(0.1), GaussianNoise(0.05, seed=1))}),
]


@pytest.mark.parametrize("conserved", [False, True])
@pytest.mark.parametrize(("label", "noise"), _NOISES, ids=[n for n, _ in _NOISES])
def test_predict_matches_monte_carlo_mlp(conserved: bool, label: str, noise: dict) -> None:
    mods = _mlp()
    model = Conserved(*mods, energy=3.0) if conserved else Pipeline(*mods)
    x = _x()
    _assert_agree(predict(model, x, **noise), monte_carlo(model, x, samples=SAMPLES, **noise))


def test_predict_matches_monte_carlo_dropout_plain() -> None:
    """Dropout without conservation (the C_E step is first order; a dropped unit is no
    small perturbation, so conserved boundaries under dropout are outside the small-noise
    regime this predictor is validated for)."""
    model = Pipeline(*_mlp())
    x, noise = _x(), DropoutNoise(0.1, seed=1)
    _assert_agree(
        predict(model, x, boundary_noise=noise),
        monte_carlo(model, x, boundary_noise=noise, samples=SAMPLES),
    )


def test_predict_matches_monte_carlo_conv() -> None:
    torch.manual_seed(0)
    mods = [
        nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU()),
        nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.Tanh()),
        nn.Sequential(nn.AvgPool2d(2), nn.Flatten(), nn.Linear(3 * 4 * 4, 4)),
    ]
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    for model in (Pipeline(*mods), Conserved(*mods, energy=2.0, dim=(1, 2, 3))):
        for noise in (GaussianNoise(0.02, seed=3), MultiplicativeNoise(0.05, seed=3)):
            kw = {"boundary_noise": noise} if model.num_boundaries else {}
            pred = predict(model, x, **kw)
            _assert_agree(pred, monte_carlo(model, x, samples=SAMPLES, **kw))


def test_predict_accepts_sequential_with_neuron_noise() -> None:
    model = nn.Sequential(*_mlp()[0], *_mlp()[1], _mlp()[2])
    noise = GaussianNoise(0.05, seed=1)
    x = _x()
    _assert_agree(
        predict(model, x, neuron_noise=noise),
        monte_carlo(model, x, neuron_noise=noise, samples=SAMPLES),
    )


def test_linear_layer_prediction_is_exact() -> None:
    """S1: after boundary noise (sigma, c) a linear layer has variance sigma^2 * gain."""
    torch.manual_seed(0)
    lin = nn.Linear(7, 5)
    model = Pipeline(nn.Identity(), lin)
    for c in (0.0, 0.4, 1.0):
        taps = predict(model, _x(3, 7), boundary_noise=GaussianNoise(0.3, correlation=c))
        expect = 0.09 * linear_noise_gain(lin.weight.detach().double(), c)
        torch.testing.assert_close(taps[-1].variance, expect.expand(3, 5))


def test_linear_noise_gain_is_mean_of_squares_or_squared_mean() -> None:
    w = torch.randn(4, 9, dtype=torch.float64)
    torch.testing.assert_close(linear_noise_gain(w, 0.0), 9 * w.pow(2).mean(1))
    torch.testing.assert_close(linear_noise_gain(w, 1.0), 81 * w.mean(1).pow(2))


def test_relu_gaussian_moments_match_numeric_integration() -> None:
    for mu, s, a in [(0.3, 1.0, 0.0), (-1.2, 0.5, 0.0), (2.0, 0.1, 0.0), (0.1, 0.7, 0.2)]:

        def phi(z: float, a: float = a) -> float:
            return max(z, a * z)

        dist = stats.norm(mu, s)
        m1 = dist.expect(phi)
        m2 = dist.expect(lambda z, phi=phi: phi(z) ** 2)
        slope = a + (1 - a) * dist.sf(0.0)
        mean, var, sl = relu_gaussian_moments(
            torch.tensor([mu], dtype=torch.float64),
            torch.tensor([s], dtype=torch.float64),
            a,
        )
        assert math.isclose(float(mean), m1, rel_tol=1e-7, abs_tol=1e-12)
        assert math.isclose(float(var), m2 - m1 * m1, rel_tol=1e-6, abs_tol=1e-12)
        assert math.isclose(float(sl), slope, rel_tol=1e-12)


def test_relu_gaussian_moments_deterministic_limit_and_stability() -> None:
    mu = torch.tensor([2.0, -2.0, 1e6, -1e6], dtype=torch.float64)
    mean, var, slope = relu_gaussian_moments(mu, torch.zeros(4, dtype=torch.float64))
    torch.testing.assert_close(mean, torch.tensor([2.0, 0.0, 1e6, 0.0], dtype=torch.float64))
    assert bool((var == 0).all())
    torch.testing.assert_close(slope, torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=torch.float64))
    # far from the kink the variance is the input variance (no cancellation garbage)
    _, var, _ = relu_gaussian_moments(mu, torch.ones(4, dtype=torch.float64))
    assert abs(float(var[2]) - 1.0) <= tolerance(torch.float64).function_rtol
    assert 0.0 <= float(var[3]) <= tolerance(torch.float64).function_rtol


def test_accumulated_variance_closed_form() -> None:
    """S3: v_L = sigma^2 sum_{k<L} g^{2k}, bounded iff |g| < 1."""
    for g in (0.5, 1.0, 1.5):
        v = 0.0
        for depth in range(1, 30):
            v = g * g * v + 0.2
            assert math.isclose(accumulated_variance(0.2, g, depth), v, rel_tol=1e-12)
    assert math.isclose(stationary_variance(0.2, 0.5), 0.2 / 0.75)
    assert stationary_variance(0.2, 1.0) == math.inf
    assert accumulated_variance(0.2, 0.5, 1000) <= stationary_variance(0.2, 0.5)


def test_linear_chain_prediction_follows_accumulation() -> None:
    """S3 on a pipeline: gain-g orthogonal layers with noise at every boundary."""
    q, _ = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64))
    for g in (0.7, 1.0, 1.3):
        layers = []
        for _ in range(8):
            lin = nn.Linear(6, 6, bias=False).double()
            lin.weight.data = g * q
            layers.append(lin)
        taps = predict(Pipeline(*layers), _x(2, 6).double(), boundary_noise=GaussianNoise(0.1))
        layer_taps = [t for t in taps if t.name.endswith("Linear")][1:]
        for depth, tap in enumerate(layer_taps, start=1):
            expect = 0.01 * g * g * accumulated_variance(1.0, g, depth)
            assert math.isclose(tap.noise_variance, expect, rel_tol=1e-9)


def test_conservation_removes_fully_correlated_multiplicative_noise() -> None:
    """T3 seen by the predictor: h (1 + sigma z0) is a positive rescaling, which C_E undoes."""
    model = Conserved(*_mlp(), energy=2.0)
    x = _x()
    noise = MultiplicativeNoise(0.05, correlation=1.0, seed=0)
    pred = predict(model, x, boundary_noise=noise)
    mc = monte_carlo(model, x, boundary_noise=noise, samples=500)
    for p, m in zip(pred, mc, strict=True):
        assert p.noise_variance <= 1e-12 * max(p.signal_power, 1.0)
        assert m.noise_variance <= 1e-8 * max(m.signal_power, 1.0)


@pytest.mark.parametrize("act", [nn.Tanh, nn.Sigmoid])
def test_slope_below_one_suppresses_noise(act: type[nn.Module]) -> None:
    """S2: an activation with slope <= g < 1 reduces the noise variance by at least g^2."""
    torch.manual_seed(0)
    model = Pipeline(nn.Identity(), act())
    x = _x(4, 8)
    taps = predict(model, x, boundary_noise=GaussianNoise(0.1))
    ratio = taps[-1].noise_variance / taps[-2].noise_variance
    g = 1.0 if act is nn.Tanh else 0.25
    assert ratio <= g * g
    mc = monte_carlo(model, x, boundary_noise=GaussianNoise(0.1), samples=SAMPLES)
    assert abs(mc[-1].noise_variance / taps[-1].noise_variance - 1) <= REL


def test_slope_and_gaussian_modes_agree_for_small_noise() -> None:
    model = Pipeline(*_mlp())
    x = _x()
    noise = GaussianNoise(1e-3)
    a = predict(model, x, boundary_noise=noise, activation="slope")
    b = predict(model, x, boundary_noise=noise, activation="gaussian")
    for ta, tb in zip(a, b, strict=True):
        if tb.noise_variance:
            assert abs(ta.noise_variance / tb.noise_variance - 1) <= 0.01


def test_snr_is_signal_power_over_noise_variance() -> None:
    taps = predict(Pipeline(*_mlp()), _x(), boundary_noise=GaussianNoise(0.1))
    t = taps[-1]
    assert math.isclose(t.snr, t.signal_power / t.noise_variance)
    assert taps[0].snr == math.inf


def test_predict_does_not_modify_model() -> None:
    model = Pipeline(*_mlp())
    before = [p.detach().clone() for p in model.parameters()]
    predict(model, _x(), boundary_noise=GaussianNoise(0.1))
    monte_carlo(model, _x(), boundary_noise=GaussianNoise(0.1), samples=10)
    for a, b in zip(before, model.parameters(), strict=True):
        assert torch.equal(a, b) and b.dtype == torch.float32
    assert "boundary" not in vars(model) and model._hook is None


@pytest.mark.parametrize(
    ("call", "exc", "argument"),
    [
        (lambda: predict("m", _x()), InvalidArgumentType, "model"),  # type: ignore[arg-type]
        (
            lambda: predict(Pipeline(nn.MaxPool1d(2), nn.Linear(6, 2)), _x()),
            InvalidArgument,
            "model",
        ),
        (
            lambda: predict(
                nn.Sequential(nn.Linear(12, 2)), _x(), boundary_noise=GaussianNoise(0.1)
            ),
            InvalidArgument,
            "boundary_noise",
        ),
        (
            lambda: predict(Pipeline(*_mlp()), _x(), boundary_noise=MonocularDepthNoise()),
            InvalidArgument,
            "noise",
        ),
        (
            lambda: predict(Pipeline(*_mlp()), _x(), boundary_noise=BiasNoise(0.1, relative=True)),
            InvalidArgument,
            "noise",
        ),
        (
            lambda: predict(Pipeline(*_mlp()), _x(), activation="exact"),
            InvalidArgument,
            "activation",
        ),  # type: ignore[arg-type]
        (lambda: predict(Pipeline(*_mlp()), torch.ones(12)), InvalidArgument, "x"),
        (lambda: monte_carlo(Pipeline(*_mlp()), _x(), samples=1), InvalidArgument, "samples"),
        (lambda: linear_noise_gain(torch.ones(3), 0.0), InvalidArgument, "weight"),
        (lambda: linear_noise_gain(torch.ones(3, 3), 1.5), InvalidArgument, "correlation"),
        (lambda: accumulated_variance(-1.0, 0.5, 3), InvalidArgument, "sigma2"),
        (lambda: accumulated_variance(1.0, 0.5, -3), InvalidArgument, "depth"),
        (lambda: stationary_variance(1.0, math.nan), InvalidArgument, "gain"),
    ],
)
def test_invalid_arguments_rejected(call: Any, exc: type[Exception], argument: str) -> None:
    with pytest.raises(exc) as info:
        call()
    assert info.value.argument == argument  # type: ignore[attr-defined]


def test_batchnorm_in_training_mode_rejected() -> None:
    model = Pipeline(nn.Linear(12, 4), nn.BatchNorm1d(4))
    with pytest.raises(InvalidArgument, match="eval"):
        predict(model, _x(), boundary_noise=GaussianNoise(0.1))
    model.eval()
    predict(model, _x(), boundary_noise=GaussianNoise(0.1))


# --------------------------------------------------------------------------- validity diagnostic


def _boundary_taps(taps: list[LayerNoise]) -> list[LayerNoise]:
    return [t for t in taps if t.name.startswith("boundary")]


def test_linearity_is_noise_std_over_clean_norm_at_first_boundary() -> None:
    mods, x, sigma = _mlp(), _x(), 0.05
    model = Conserved(*mods, energy=4.0)
    taps = predict(model, x, boundary_noise=GaussianNoise(sigma, seed=1))
    first = _boundary_taps(taps)[0]
    with torch.no_grad():
        h = mods[0](x).to(torch.float64)  # clean input of the first C_E, no noise upstream
    expected = sigma * math.sqrt(h.shape[1]) / h.norm(dim=1)
    assert first.linearity is not None
    torch.testing.assert_close(first.linearity, expected)
    assert first.max_linearity == pytest.approx(float(expected.max()))
    assert all(t.linearity is None for t in taps if not t.name.startswith("boundary"))


def test_linearity_absent_without_conservation_and_outside_absent_without_threshold() -> None:
    taps = predict(Pipeline(*_mlp()), _x(), boundary_noise=GaussianNoise(0.05, seed=1))
    assert all(t.linearity is None and t.max_linearity is None for t in taps)
    assert all(t.outside is None and t.outside_share is None for t in taps)


def test_outside_share_extremes() -> None:
    model, x = Conserved(*_mlp(), energy=4.0), _x()
    noise = GaussianNoise(0.05, seed=1)
    none = predict(model, x, boundary_noise=noise, linearity_threshold=1e6)
    every = predict(model, x, boundary_noise=noise, linearity_threshold=1e-12)
    assert all(t.outside_share == 0.0 for t in none)
    first = next(i for i, t in enumerate(every) if t.name == "boundary0")
    assert all(t.outside_share == 0.0 for t in every[:first])
    # everything after the first flagged C_E passed it (fresh noise at later
    # boundaries goes through a flagged C_E too)
    for t in _boundary_taps(every):
        assert t.outside_share == pytest.approx(1.0)
    # the threshold only adds a diagnostic: the prediction itself is unchanged
    for a, b in zip(none, every, strict=True):
        torch.testing.assert_close(a.variance, b.variance, rtol=0, atol=0)


def test_outside_part_is_the_noise_carried_from_the_flagged_boundary() -> None:
    """Flag only boundary 0: its carried part is exactly the variance that noise at
    boundary 0 alone produces downstream (the maps after it are linear).

    Stage 1 is the identity, so boundary 1 sees the tangent part of the boundary-0
    noise (ratio ``sqrt(15/16)`` of boundary 0's) plus a little fresh noise.
    """
    torch.manual_seed(0)
    ident = nn.Linear(16, 16)
    with torch.no_grad():
        ident.weight.copy_(torch.eye(16))
        ident.bias.zero_()
    model = Conserved(
        nn.Sequential(nn.Linear(12, 16), nn.ReLU()), ident, nn.Linear(16, 5), energy=1e4
    )
    x = _x(b=1)

    def noise() -> Compose:
        return Compose(
            GaussianNoise(0.05, boundaries=[0], seed=1), GaussianNoise(0.01, boundaries=[1], seed=2)
        )

    k0, k1 = (t.max_linearity for t in _boundary_taps(predict(model, x, boundary_noise=noise())))
    assert k0 is not None and k1 is not None and k1 < k0
    flagged = predict(model, x, boundary_noise=noise(), linearity_threshold=(k0 + k1) / 2)
    only0 = predict(model, x, boundary_noise=GaussianNoise(0.05, boundaries=[0], seed=1))
    for f, o in zip(flagged, only0, strict=True):
        assert f.outside is not None
        torch.testing.assert_close(f.outside, o.variance, rtol=1e-9, atol=1e-15)
    last = _boundary_taps(flagged)[-1]
    assert last.outside_share is not None and 0.0 < last.outside_share < 1.0


@pytest.mark.parametrize("bad", [0.0, -0.1, math.nan, math.inf])
def test_invalid_linearity_threshold_rejected(bad: float) -> None:
    with pytest.raises(InvalidArgument, match="linearity_threshold"):
        predict(Conserved(*_mlp(), energy=4.0), _x(), linearity_threshold=bad)


def test_linearity_threshold_type_rejected() -> None:
    with pytest.raises(InvalidArgumentType, match="linearity_threshold"):
        predict(Conserved(*_mlp(), energy=4.0), _x(), linearity_threshold="0.02")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("conv", "shape"),
    [
        (nn.Conv2d(3, 4, 3, 2, 1), (3, 7, 8)),
        (nn.Conv2d(4, 6, 3, 1, 2, dilation=2, groups=2), (4, 6, 5)),
        (nn.Conv2d(2, 2, 3, 1, 1, padding_mode="reflect"), (2, 5, 6)),
        (nn.Conv1d(3, 5, 5, 2, "valid"), (3, 11)),
        (nn.Conv3d(2, 3, 3, 1, 1, padding_mode="circular"), (2, 3, 4, 3)),
    ],
    ids=["stride", "dilation-groups", "reflect", "conv1d", "conv3d-circular"],
)
def test_conv_matrix_is_the_layer_applied_to_the_identity(conv: nn.Module, shape: tuple) -> None:
    from conserve_verified.propagation import _conv_matrix

    m = conv.double()
    n = math.prod(shape)
    eye = torch.eye(n, dtype=torch.float64).reshape(n, *shape)
    with torch.no_grad():
        expect = m._conv_forward(eye, m.weight, None).reshape(n, -1).T  # type: ignore[operator]
        dense = _conv_matrix(m, m.weight.detach(), shape)
    torch.testing.assert_close(dense, expect, rtol=1e-15, atol=1e-15)


def test_relu_rest_is_the_variance_beyond_the_linear_part() -> None:
    from conserve_verified.propagation import _relu_rest

    mean = torch.tensor([-3.0, -0.5, 0.0, 0.2, 1.5, 40.0, 2.0], dtype=torch.float64)
    var = torch.tensor([1.0, 0.3, 2.0, 0.01, 0.5, 1e-4, 0.0], dtype=torch.float64)
    for a in (0.0, 0.1):
        _, v, slope = relu_gaussian_moments(mean, var.sqrt(), a)
        rest = _relu_rest(mean, var, a)
        torch.testing.assert_close(rest, (v - slope**2 * var).clamp_min(0), rtol=1e-9, atol=1e-15)
        assert float(rest[-2]) == 0.0 and float(rest[-1]) == 0.0  # far from the kink; no noise


def test_mean_variance_se_is_the_spread_of_repeated_estimates() -> None:
    # iid N(0, v) units: q_s ~ v chi2_n / n, so SE = v sqrt(2 / (n S)) to first order
    gen = torch.Generator().manual_seed(7)
    v, s, n, repeats = 0.3, 200, 5, 400
    draws = torch.randn(repeats, s, n, generator=gen, dtype=torch.float64) * math.sqrt(v)
    estimates = draws.var(1).mean(-1)
    ses = torch.stack([mean_variance_se(d) for d in draws])
    spread = float(estimates.std())
    assert abs(float(ses.mean()) / spread - 1.0) < 0.15
    assert abs(float(ses.mean()) / (v * math.sqrt(2.0 / (n * s))) - 1.0) < 0.1


def test_mean_variance_se_needs_two_draws() -> None:
    with pytest.raises(InvalidArgument, match="samples"):
        mean_variance_se(torch.zeros(1, 3, dtype=torch.float64))


def test_monte_carlo_records_the_standard_error_and_predict_does_not() -> None:
    model = Pipeline(*_mlp())
    x = _x(3)
    noise = GaussianNoise(0.05, seed=1)
    mc = monte_carlo(model, x, boundary_noise=noise, samples=300)
    for m in mc:
        assert m.variance_se is not None and m.variance_se.shape == (3,)
        se = m.noise_variance_se
        assert se is not None
        assert se == pytest.approx(float(m.variance_se.pow(2).sum().sqrt()) / 3)
        if m.noise_variance > 0:
            assert 0 < se < m.noise_variance
    assert all(
        p.variance_se is None and p.noise_variance_se is None
        for p in predict(model, x, boundary_noise=noise)
    )
