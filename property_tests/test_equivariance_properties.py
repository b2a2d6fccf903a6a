"""Property tests of group averaging: the numeric twins of theorem A1.

For random models and weights, random inputs and every group element, on the
groups the library ships (D4 on square images, C_n on signals), the group-averaged
model is equivariant and the averaged linear map is an idempotent, equivariant,
orthogonal projection -- up to rounding bounded with ``function_rtol`` from
:mod:`conserve_verified.tolerances`.
"""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from conserve_verified.equivariance import (
    GroupAveraged,
    Representation,
    average_linear,
    cyclic_shifts,
    dihedral_images,
    trivial,
)
from conserve_verified.testing import assert_equivariant
from conserve_verified.tolerances import tolerance

_dtypes = st.sampled_from([torch.float64, torch.float32])


@st.composite
def _groups(draw: st.DrawFn) -> Representation:
    if draw(st.booleans()):
        return dihedral_images(draw(st.integers(2, 5)))
    return cyclic_shifts(draw(st.integers(2, 12)))


def _mlp(d_in: int, d_out: int, seed: int, dtype: torch.dtype) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(d_in, 16), nn.Tanh(), nn.Linear(16, d_out)).to(
        dtype
    )


@given(_groups(), st.booleans(), _dtypes, st.integers(0, 2**31 - 1), st.integers(1, 4))
def test_group_average_equivariant(
    rep: Representation, invariant: bool, dtype: torch.dtype, seed: int, batch: int
) -> None:
    """A1: the group-averaged model satisfies ``f(rho_in(g) x) = rho_out(g) f(x)`` for all g.

    The two sides average the same ``|G|`` terms in a different order, so they agree to
    ``function_rtol`` times the mean magnitude of the terms (elementwise).
    """
    rep_out = trivial(rep, (3,)) if invariant else rep
    model = _mlp(rep.dim, rep_out.dim, seed, dtype)
    body = model if invariant else nn.Sequential(model, nn.Unflatten(1, rep.event_shape))
    averaged = GroupAveraged(body, rep, rep_out)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, *rep.event_shape, generator=gen, dtype=torch.float64).to(dtype)
    with torch.no_grad():
        scale = averaged.terms(x).abs().mean(0).double()
        fx = averaged(x)
        for g in range(rep.order):
            lhs = averaged(rep.act(x, g)).double()
            rhs = rep_out.act(fx, g).double()
            bound = tolerance(dtype).function_rtol * rep_out.act(scale, g)
            assert bool(((lhs - rhs).abs() <= bound).all()), (g, float((lhs - rhs).abs().max()))
    atol = tolerance(dtype).function_rtol * float(scale.max())
    assert_equivariant(averaged, x, rep, rep_out, atol=atol)


@given(_groups(), st.booleans(), st.integers(0, 2**31 - 1))
def test_average_linear_projector(rep: Representation, invariant: bool, seed: int) -> None:
    """A1: ``P`` is idempotent, ``P(W)`` is equivariant, and ``W - P(W)`` is orthogonal to
    every equivariant map (the orthogonal projection, permutation representations).
    """
    rep_out = trivial(rep, (2,)) if invariant else rep
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(rep_out.dim, rep.dim, generator=gen, dtype=torch.float64)
    v = torch.randn(rep_out.dim, rep.dim, generator=gen, dtype=torch.float64)
    pw = average_linear(w, rep, rep_out)
    pv = average_linear(v, rep, rep_out)
    rtol = tolerance(torch.float64).function_rtol
    scale = float(w.abs().max())
    assert float((average_linear(pw, rep, rep_out) - pw).abs().max()) <= rtol * scale
    for g in range(rep.order):
        commutator = rep_out.matrix(g) @ pw - pw @ rep.matrix(g)
        assert float(commutator.abs().max()) <= rtol * scale
    inner = float(((w - pw) * pv).sum())
    assert abs(inner) <= rtol * float(w.abs().sum() * pv.abs().max())
    # the projection is no further from W than any other equivariant map (here P(V))
    assert float((w - pw).norm()) <= float((w - pv).norm()) * (1 + rtol)


@given(_groups(), st.integers(0, 2**31 - 1))
def test_group_average_fixes_equivariant_maps(rep: Representation, seed: int) -> None:
    """A1: averaging an already equivariant linear map returns it (``P(P(W)) = P(W)``)."""
    gen = torch.Generator().manual_seed(seed)
    w = average_linear(torch.randn(rep.dim, rep.dim, generator=gen, dtype=torch.float64), rep, rep)
    lin = nn.Linear(rep.dim, rep.dim, bias=False).double()
    with torch.no_grad():
        lin.weight.copy_(w)
    body = nn.Sequential(nn.Flatten(), lin, nn.Unflatten(1, rep.event_shape))
    x = torch.randn(3, *rep.event_shape, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(GroupAveraged(body, rep, rep)(x), body(x))
