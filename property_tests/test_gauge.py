"""Property tests of the gauge tools: the numeric twins of G1-G6 (``proofs/gauge.py``).

Each test checks on the torch implementation, for Hypothesis-drawn networks
(widths, depth, leaky slope, dtype, seeds), the statement the theorem of the
same id proves symbolically.
"""

from __future__ import annotations

import copy
import itertools
import math

import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from conserve_verified import Conserved
from conserve_verified.gauge import (
    balance,
    balance_penalty,
    gauge_structure,
    gauge_transform,
    imbalance,
    orbit_norms,
    orbit_tangent,
    random_log_scales,
)
from conserve_verified.testing import assert_gauge_invariant
from conserve_verified.tolerances import tolerance

_DTYPES = st.sampled_from([torch.float64, torch.float32])


@st.composite
def mlps(draw: st.DrawFn, max_depth: int = 3) -> tuple[nn.Sequential, torch.Tensor]:
    """A ReLU / leaky-ReLU MLP in float64 and an input batch."""
    depth = draw(st.integers(1, max_depth))
    widths = [draw(st.integers(1, 7)) for _ in range(depth + 2)]
    slope = draw(st.sampled_from([0.0, 0.01, 0.3]))
    torch.manual_seed(draw(st.integers(0, 2**31 - 1)))
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(widths):
        layers += [nn.Linear(a, b), nn.LeakyReLU(slope) if slope else nn.ReLU()]
    model = nn.Sequential(*layers[:-1]).to(torch.float64)
    x = torch.randn(draw(st.integers(1, 5)), widths[0], dtype=torch.float64)
    return model, x


@given(mlps(), _DTYPES, st.floats(0.0, 2.0), st.integers(0, 2**31 - 1))
def test_gauge_function_invariance(
    net: tuple[nn.Sequential, torch.Tensor], dtype: torch.dtype, spread: float, seed: int
) -> None:
    """G1: a random gauge transformation leaves the network function unchanged.

    Tolerance: ``function_rtol`` of the dtype times the largest activation
    magnitude, as in :func:`conserve_verified.testing.assert_gauge_invariant`.
    """
    model, x = net
    model, x = model.to(dtype), x.to(dtype)
    assert_gauge_invariant(model, x, trials=2, spread=spread, seed=seed)


@given(mlps(), st.integers(0, 2**31 - 1))
def test_gauge_function_invariance_powers_of_two_exact(
    net: tuple[nn.Sequential, torch.Tensor], seed: int
) -> None:
    """G1 with scales 2**k: the action is exact in floating point, outputs agree bitwise."""
    model, x = net
    s = gauge_structure(model, x)
    twin = copy.deepcopy(model)
    u = random_log_scales(s, 4.0, torch.Generator().manual_seed(seed), powers_of_two=True)
    gauge_transform(twin, s, u)
    with torch.no_grad():
        assert torch.equal(twin(x), model(x))


def _sq_norm(model: nn.Module) -> float:
    return float(sum(p.detach().pow(2).sum() for p in model.parameters()))


@given(mlps(max_depth=2), st.integers(0, 2**31 - 1))
def test_gauge_balance_minimises_norm(net: tuple[nn.Sequential, torch.Tensor], seed: int) -> None:
    """G2: balance reaches a_k = b_k, lowers the norm below every nearby orbit point, is idempotent.

    For a one-hidden-layer net the minimum is also checked against the closed
    form ``sum_k 2 sqrt(a_k b_k)``.
    """
    model, x = net
    s = gauge_structure(model, x)
    gauge_transform(model, s, random_log_scales(s, 1.0, torch.Generator().manual_seed(seed)))
    a0, b0 = (t.detach() for t in orbit_norms(model, s))
    y = model(x).detach()
    report = balance(model, s, tol=1e-10)
    assert report.converged and report.norm_after <= report.norm_before * (1 + 1e-12)
    torch.testing.assert_close(model(x).detach(), y, rtol=1e-10, atol=1e-12)
    a, b = (t.detach() for t in orbit_norms(model, s))
    ok = (a > 0) & (b > 0)
    torch.testing.assert_close(a[ok], b[ok], rtol=1e-8, atol=1e-14)
    hidden = sum(isinstance(m_, nn.Linear) for m_ in model) == 2
    if hidden:  # one hidden layer: isolated neurons, closed form
        keep = (a0 > 0) & (b0 > 0)
        closed = float((2 * (a0[keep] * b0[keep]).sqrt()).sum())
        assert math.isclose(float((a + b)[keep].sum()), closed, rel_tol=1e-9)
    # every other orbit point nearby has a norm ||θ||^2 at least as large
    gen = torch.Generator().manual_seed(seed + 1)
    for _ in range(3):
        twin = copy.deepcopy(model)
        gauge_transform(twin, s, random_log_scales(s, 0.3, gen))
        assert _sq_norm(twin) >= _sq_norm(model) * (1 - 1e-12)
    again = balance(model, s, tol=1e-10)
    assert again.sweeps == 0


@given(mlps(), st.integers(0, 2**31 - 1))
def test_gauge_imbalance_conserved_under_gd(
    net: tuple[nn.Sequential, torch.Tensor], seed: int
) -> None:
    """G3: a gradient step changes delta_k only at second order.

    Exact identity of one step ``θ -> θ - η ∇L``: since ``<∇L, t_k> = 0``,
    ``Δδ_k = η² (||∇_in||² - ||∇_out||²)_k``, the imbalance of the gradient
    itself.  Checked in float64 for ``η`` from 1e-1 to 1e-4: the first-order
    term would be ``η`` times larger.
    """
    model, x = net
    s = gauge_structure(model, x)
    g = torch.Generator().manual_seed(seed)
    target = torch.randn(model(x).shape, generator=g, dtype=torch.float64)
    loss = 0.5 * (model(x) - target).pow(2).sum()
    params = dict(model.named_parameters())
    grads = dict(zip(params, torch.autograd.grad(loss, list(params.values())), strict=True))
    d0 = imbalance(model, s).detach()
    grad_imbalance = imbalance(grads, s).detach()
    for eta in (1e-1, 1e-2, 1e-4):
        stepped = {k: (p - eta * grads[k]).detach() for k, p in params.items()}
        change = imbalance(stepped, s).detach() - d0
        scale = float(orbit_norms(model, s)[0].detach().abs().max()) + 1.0
        torch.testing.assert_close(change, eta**2 * grad_imbalance, rtol=1e-6, atol=1e-12 * scale)


@given(mlps(), st.floats(0.01, 10.0), st.integers(0, 2**31 - 1))
def test_gauge_penalty_gradient_tangent(
    net: tuple[nn.Sequential, torch.Tensor], mu: float, seed: int
) -> None:
    """G4: ∇R = 4 mu sum_k delta_k t_k, and the function's derivative along it vanishes.

    For an isolated neuron (one hidden layer) also ``<∇delta_k, -∇R> = -8 mu (a_k + b_k) delta_k``.
    """
    model, x = net
    s = gauge_structure(model, x)
    gauge_transform(model, s, random_log_scales(s, 1.0, torch.Generator().manual_seed(seed)))
    params = dict(model.named_parameters())
    r = balance_penalty(model, s, mu)
    raw = torch.autograd.grad(r, list(params.values()), allow_unused=True)
    grad = {
        k: torch.zeros_like(p) if g_ is None else g_
        for (k, p), g_ in zip(params.items(), raw, strict=True)
    }
    delta = imbalance(model, s).detach()
    weights = torch.where(s.compensated, 4 * mu * delta, torch.zeros_like(delta))
    tangent = orbit_tangent(model, s, weights)
    for name, p in params.items():
        expected = tangent.get(name, torch.zeros_like(p))
        torch.testing.assert_close(grad[name], expected, rtol=1e-9, atol=1e-12)
    # directional derivative of f along grad R is 0 (infinitesimal G1): J v by double backward
    out = model(x)
    probe = torch.zeros_like(out, requires_grad=True)
    vjp = torch.autograd.grad(
        (out * probe).sum(), list(params.values()), create_graph=True, allow_unused=True
    )
    dot = sum((g_ * grad[k]).sum() for k, g_ in zip(params, vjp, strict=True) if g_ is not None)
    (jvp,) = torch.autograd.grad(dot, probe, allow_unused=True)
    jvp = torch.zeros_like(out) if jvp is None else jvp
    out_scale = float(out.detach().abs().max()) + 1.0
    grad_scale = max(float(g_.abs().max()) for g_ in grad.values()) + 1.0
    assert float(jvp.abs().max()) <= 1e-10 * out_scale * grad_scale
    if sum(isinstance(m_, nn.Linear) for m_ in model) == 2:
        a, b = (t.detach() for t in orbit_norms(model, s))
        # <t_k, G> by polarisation: (delta(θ + G) - delta(θ - G)) / 4, with grad delta_k = 2 t_k
        plus = {k: (p + grad[k]).detach() for k, p in params.items()}
        minus = {k: (p - grad[k]).detach() for k, p in params.items()}
        along = (imbalance(plus, s) - imbalance(minus, s)).detach() / 4
        rate = -2 * along
        torch.testing.assert_close(rate, -8 * mu * (a + b) * delta, rtol=1e-9, atol=1e-10)


@given(
    st.floats(0.2, 3.0),
    st.floats(-0.3, 0.3),
    st.floats(0.5, 2.0),
    st.sampled_from([0.9, 0.99, 1.01, 1.1]),
)
def test_gauge_stable_lr_scalar(w1: float, y_off: float, scale: float, factor: float) -> None:
    """G5: for f = w1 w2, squared loss, GD at a minimum is stable iff eta < 2/(w1^2 + w2^2).

    Starts at the minimum ``(w1, y / w1)`` displaced by ``1e-9`` along the
    transversal eigenvector ``(w2, w1)`` (plus ``y_off * 1e-9`` along the orbit)
    and runs 30 steps of gradient descent with ``eta = factor * 2 / (w1^2 + w2^2)``,
    staying in the linear regime: the residual ``w1 w2 - y`` shrinks for
    ``factor < 1`` and grows for ``factor > 1`` (by ``|1 - 2 factor|`` per step).
    """
    y = scale
    w = torch.tensor([w1, y / w1], dtype=torch.float64)
    lam = float((w**2).sum())
    eta = factor * 2.0 / lam
    normal = torch.stack([w[1], w[0]]) / math.sqrt(lam)
    orbit = torch.stack([w[0], -w[1]]) / math.sqrt(lam)
    w = w + 1e-9 * normal + y_off * 1e-9 * orbit
    start = abs(float(w[0] * w[1] - y))
    for _ in range(30):
        r = w[0] * w[1] - y
        w = w - eta * r * torch.stack([w[1], w[0]])
    end = abs(float(w[0] * w[1] - y))
    growth = abs(1 - 2 * factor) ** 30
    if factor < 1:
        assert end < start
    else:
        assert end > start
    assert math.isclose(end / start, growth, rel_tol=0.05)


@given(mlps(max_depth=2), st.floats(0.1, 10.0), st.floats(-2.0, 2.0), st.floats(0.1, 5.0))
def test_gauge_conserved_boundary_commutes(
    net: tuple[nn.Sequential, torch.Tensor], energy: float, log_alpha: float, lam: float
) -> None:
    """G6: a common scale before C_E is invisible; the energy penalty lam ||h||^2 is not.

    The first stage's output layer is rescaled by ``alpha = exp(log_alpha)``
    without compensation: the conserved pipeline's output is unchanged while the
    pre-conservation energy penalty scales by ``alpha**2``.
    """
    model, x = net
    torch.manual_seed(0)
    head = nn.Sequential(nn.ReLU(), nn.Linear(model[-1].out_features, 3)).to(torch.float64)
    p = Conserved(model, head, energy=energy)
    s = gauge_structure(p, x)
    assert int(s.absorbed.sum()) == 1
    with torch.no_grad():
        h0 = model(x)
        if bool((h0.abs().sum(-1) == 0).any()):
            return
        y0 = p(x)
        alpha = math.exp(log_alpha)
        model[-1].weight.mul_(alpha)
        model[-1].bias.mul_(alpha)
        y1 = p(x)
        h1 = model(x)
    row = tolerance(torch.float64)
    torch.testing.assert_close(
        y1, y0, rtol=row.function_rtol, atol=row.function_rtol * float(y0.abs().max())
    )
    penalty0 = lam * float(h0.pow(2).sum())
    penalty1 = lam * float(h1.pow(2).sum())
    assert math.isclose(penalty1, alpha**2 * penalty0, rel_tol=1e-9)


@given(mlps(), st.integers(0, 2**31 - 1), st.floats(0.5, 8.0))
def test_gauge_function_invariance_with_hooked_boundaries(
    net: tuple[nn.Sequential, torch.Tensor], seed: int, energy: float
) -> None:
    """G1 + G6 on a model hooked by conserve_boundaries: the traced gauge leaves it unchanged.

    Every ReLU output is a conservation boundary (over all its features), so the
    trace must absorb the scales entering each boundary; a random transformation
    of the remaining free scales does not move the output.
    """
    from conserve_verified import conserve_boundaries

    model, x = net
    names = [n for n, m in model.named_modules() if isinstance(m, (nn.ReLU, nn.LeakyReLU))]
    if not names:
        return
    with conserve_boundaries(model, names, energy=energy):
        s = gauge_structure(model, x)
        assert bool(s.absorbed.any())
        with torch.no_grad():
            before = model(x)
            twin = copy.deepcopy(model)
            gen = torch.Generator().manual_seed(seed)
            gauge_transform(twin, s, random_log_scales(s, 1.0, gen))
            after = twin(x)
    scale = max(1.0, float(before.abs().max()))
    assert (
        float((after - before).abs().max()) <= 64 * tolerance(torch.float64).function_rtol * scale
    )
