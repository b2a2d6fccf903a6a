"""Property tests of the conservation operator: the numeric twins of T1-T3.

Each test checks, on the torch implementation and on hard inputs from
:func:`conserve_verified.testing.hard_tensors`, the same statement that the
theorem of the same id proves symbolically in ``proofs/conservation.py``.
"""

from __future__ import annotations

import math

import torch
from hypothesis import given
from hypothesis import strategies as st

from conserve_verified import conserve
from conserve_verified.testing import HardTensor, assert_energy_equals, hard_tensors
from conserve_verified.tolerances import tolerance

_energies = st.floats(1e-3, 1e3, allow_nan=False, allow_infinity=False)


def _assert_close_elementwise(a: torch.Tensor, b: torch.Tensor) -> None:
    """``|a - b| <= energy_rtol * |b| + 2 s`` elementwise, measured in float64."""
    row = tolerance(a.dtype)
    ad, bd = a.double(), b.double()
    bound = row.energy_rtol * bd.abs() + 2 * row.smallest_subnormal
    excess = (ad - bd).abs() - bound
    assert float(excess.max()) <= 0.0, f"max excess {float(excess.max()):.3e} ({a.dtype})"


def _safe_power_of_two(x: torch.Tensor) -> float:
    """Largest ``2**k`` (k >= 0, k <= 8) such that ``2**k * x`` does not overflow."""
    headroom = math.log2(torch.finfo(x.dtype).max) - math.log2(float(x.double().abs().max()))
    return 2.0 ** min(8, max(0, math.floor(headroom) - 1))


@given(hard_tensors(), _energies)
def test_conserve_energy_exact(t: HardTensor, e: float) -> None:
    """T1: ``||C_E(x)||^2 = E`` for every nonzero sample."""
    y = conserve(t.x, e, t.dim)
    assert y.dtype == t.x.dtype and y.shape == t.x.shape
    assert_energy_equals(y, e, t.dim)


@given(hard_tensors(), _energies)
def test_conserve_idempotent(t: HardTensor, e: float) -> None:
    """T2: ``C_E(C_E(x)) = C_E(x)``."""
    y = conserve(t.x, e, t.dim)
    _assert_close_elementwise(conserve(y, e, t.dim), y)


@given(hard_tensors(), _energies)
def test_conserve_scale_invariant(t: HardTensor, e: float) -> None:
    """T3: ``C_E(a x) = C_E(x)`` for ``a > 0`` (exact powers of two, so ``a x`` is exact)."""
    a = _safe_power_of_two(t.x)
    _assert_close_elementwise(conserve(a * t.x, e, t.dim), conserve(t.x, e, t.dim))


@given(hard_tensors(dtypes=st.just(torch.float64)), st.floats(1e-6, 1e6), _energies)
def test_conserve_scale_invariant_real_factor(t: HardTensor, a: float, e: float) -> None:
    """T3 with arbitrary real ``a > 0`` in float64.

    ``a * x`` rounds once per element (relative ``u``, or absolute ``s/2`` in
    the subnormal range), so the outputs agree to ``function_rtol`` relatively
    plus ``4 sqrt(E) s / ||a x||`` absolutely.
    """
    ax = a * t.x
    dims = t.dim if isinstance(t.dim, tuple) else (t.dim,)
    if not bool(torch.isfinite(ax).all()) or not bool((ax != 0).any(dim=dims).all()):
        return  # a * x overflowed, or a sample underflowed to zero
    y1, y0 = conserve(ax, e, t.dim), conserve(t.x, e, t.dim)
    row = tolerance(torch.float64)
    rho = ax.abs().amax(dims, keepdim=True)  # ||a x|| >= max-abs
    bound = row.function_rtol * y0.abs() + (4 * math.sqrt(e) / rho) * row.smallest_subnormal
    assert bool(((y1 - y0).abs() <= bound).all())


@given(hard_tensors(), _energies)
def test_conserve_sign_flip(t: HardTensor, e: float) -> None:
    """T3, negative factor: ``C_E(-x) = -C_E(x)`` exactly (negation is exact)."""
    torch.testing.assert_close(conserve(-t.x, e, t.dim), -conserve(t.x, e, t.dim), rtol=0, atol=0)


@given(
    hard_tensors(dtypes=st.sampled_from([torch.float64, torch.float32])),
    _energies,
    st.integers(0, 2**31),
)
def test_conserve_gradient_orthogonal(t: HardTensor, e: float, seed: int) -> None:
    """0-homogeneity => ``<x, grad_x> = 0``: the input gradient is orthogonal to the input."""
    # scale each sample to max-abs 1 so that the gradient (~ r/||x||) stays in range
    dims = t.dim if isinstance(t.dim, tuple) else (t.dim,)
    xd = t.x.double()
    xd = xd / xd.abs().amax(dims, keepdim=True)
    x = xd.to(t.x.dtype).requires_grad_(True)
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    (grad,) = torch.autograd.grad(conserve(x, e, t.dim), x, g.to(x.dtype))
    gd, xv = grad.double(), x.detach().double()
    inner = (gd * xv).sum(dims).abs()
    # the terms that cancel in <x, grad> have size ~ sqrt(E) ||g|| (grad = (r/rho) P g)
    scale = g.pow(2).sum(dims).sqrt() * math.sqrt(e)
    u = tolerance(x.dtype).unit_roundoff
    n = math.prod(x.shape[d] for d in dims)
    assert bool((inner <= 8 * (n + 4) * u * scale).all()), float((inner / scale).max())
