"""Property tests of the constraint strategies: numeric twins of theorems A2 and A3.

* A2: the projected dual update keeps every dual variable non-negative, for any
  sequence of measured violations, tolerances and step sizes; and ACE drives the
  violation inside its final tolerance on a problem whose unconstrained optimum is
  infeasible.
* A3: an activation is feasible for the energy constraint at tolerance 0 (within
  rounding) exactly when it is a fixed point of ``C_E``.
"""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conserve_verified import conserve
from conserve_verified.constraints import (
    ACE,
    EnergyConstraint,
    Penalty,
    ToleranceSchedule,
    dual_update,
)
from conserve_verified.tolerances import energy_atol, tolerance

_finite = st.floats(-1e6, 1e6, allow_nan=False)
_seeds = st.integers(0, 2**31 - 1)


@given(
    st.lists(st.floats(0, 1e6), min_size=1, max_size=5),
    st.lists(_finite, min_size=1, max_size=5),
    st.floats(0, 1e6),
    st.floats(1e-6, 1e3),
)
def test_dual_update_nonnegative(
    dual: list[float], violation: list[float], eps: float, lr: float
) -> None:
    """A2: the dual update is the projection of the ascent step onto ``lam >= 0``.

    ``lam' = max(0, z)``, ``z = lam + eta (v - eps)``: ``lam' >= 0`` and
    ``(lam' - z)(mu - lam') >= 0`` for every ``mu >= 0``; it increases ``lam``
    where ``v > eps`` and does not increase it where ``v <= eps`` (``lam >= 0``).
    """
    k = min(len(dual), len(violation))
    lam = torch.tensor(dual[:k], dtype=torch.float64)
    v = torch.tensor(violation[:k], dtype=torch.float64)
    out = dual_update(lam, v, eps, lr)
    assert bool((out >= 0).all())
    step = lam + lr * (v - eps)
    assert torch.equal(out[step >= 0], step[step >= 0])
    for mu in (0.0, 0.5, 3.0):
        assert bool(((out - step) * (mu - out) >= 0).all())
    up = v > eps
    assert bool((out[up] >= lam[up]).all())
    clear = up & (lr * (v - eps) > lam.abs() * 2.0**-40)  # the increase is above rounding
    assert bool((out[clear] > lam[clear]).all())
    assert bool((out[v <= eps] <= lam[v <= eps]).all())


@given(_seeds, st.integers(1, 4), st.floats(0.01, 10.0), st.floats(0.05, 1.0))
def test_ace_duals_never_negative(seed: int, k: int, lr: float, aim: float) -> None:
    """A2: along a whole ACE run on random violations the duals stay ``>= 0``."""
    gen = torch.Generator().manual_seed(seed)
    ace = ACE(EnergyConstraint(1.0), dual_lr=lr, schedule=ToleranceSchedule(2.0, 0.01, 30), aim=aim)
    for _ in range(40):
        hs = [
            torch.randn(3, 5, generator=gen) * float(torch.rand(1, generator=gen) * 2)
            for _ in range(k)
        ]
        ace(*hs)
        ace.step()
        assert ace.dual is not None and ace.dual.shape == (k,)
        assert bool((ace.dual >= 0).all())


@given(_seeds, st.integers(1, 6), st.floats(0.1, 100.0))
def test_energy_feasible_at_zero_iff_conserved(seed: int, n: int, e: float) -> None:
    """A3: at ``eps = 0`` a nonzero ``h`` is feasible iff ``h = C_E(h)``.

    Feasible side: ``h = C_E(x)`` has violation within the energy tolerance of the
    dtype and is fixed by ``C_E``.  Infeasible side: ``a h`` with ``a`` away from 1 has
    violation ``|a^2 - 1| E`` and is moved by ``C_E``.
    """
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(4, n, generator=gen, dtype=torch.float64) + 0.1
    c = EnergyConstraint(e, reduction="max")
    h = conserve(x, e)
    atol = energy_atol(torch.float64, e, n)
    assert float(c.violation(h)) <= atol
    rtol = tolerance(torch.float64).energy_rtol
    assert float((conserve(h, e) - h).abs().max()) <= rtol * math.sqrt(e)
    a = float(torch.empty(1).uniform_(1.05, 2.0, generator=gen))
    for scale in (a, 1.0 / a):
        off = scale * h
        assert float(c.violation(off)) > atol
        assert float(c.violation(off)) >= 0.5 * abs(scale**2 - 1) * e
        assert float((conserve(off, e) - off).abs().max()) > rtol * math.sqrt(e)


def _toy(seed: int, strategy_kind: str, steps: int = 500) -> tuple[float, float, bool]:
    """Pull vectors towards targets off the energy shell under an energy constraint.

    Returns the final violation, the final tolerance and whether ACE says it is
    satisfied.  The targets sit at radius ``0.2 .. 3`` times ``sqrt(E)``, so the
    unconstrained optimum violates the constraint by far more than the tolerance.
    """
    gen = torch.Generator().manual_seed(seed)
    n = int(torch.randint(2, 17, (1,), generator=gen))
    m = int(torch.randint(1, 9, (1,), generator=gen))
    e = float(torch.empty(1).uniform_(0.5, 2.0, generator=gen))
    t = torch.randn(m, n, generator=gen, dtype=torch.float64)
    radius = torch.empty(m, 1, dtype=torch.float64).uniform_(0.2, 3.0, generator=gen)
    target = t / t.norm(dim=-1, keepdim=True) * math.sqrt(e) * radius
    h = (target + 0.1 * torch.randn(m, n, generator=gen, dtype=torch.float64)).requires_grad_()
    constraint = EnergyConstraint(e)
    end = 0.1 * e
    if strategy_kind == "ace":
        strategy: ACE | Penalty = ACE(
            constraint, dual_lr=0.5, schedule=ToleranceSchedule(4 * e, end, steps // 2)
        )
    else:
        strategy = Penalty(constraint, 0.01)
    opt = torch.optim.SGD([h], lr=0.01)
    for _ in range(steps):
        loss = (h - target).pow(2).sum(-1).mean() / e + strategy(h)
        opt.zero_grad()
        loss.backward()
        opt.step()
        strategy.step()
    final = float(constraint.violation(h.detach()))
    ok = strategy.satisfied() if isinstance(strategy, ACE) else final <= end
    return final, end, ok


@settings(max_examples=6)
@given(_seeds)
def test_ace_final_violation_within_tolerance(seed: int) -> None:
    """A2: ACE ends with the energy violation within its last tolerance ``eps_end``."""
    final, end, ok = _toy(seed, "ace")
    assert final <= end and ok, (final, end)


def test_penalty_with_small_weight_misses_the_tolerance() -> None:
    """The same problem under a fixed small penalty stays infeasible (the ACE test can fail)."""
    final, end, ok = _toy(0, "penalty", steps=300)
    assert final > end and not ok
