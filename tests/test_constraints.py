"""Unit tests of :mod:`conserve_verified.constraints`, one per stated identity/behaviour."""

from __future__ import annotations

import doctest
import itertools

import pytest
import torch
from torch import nn

import conserve_verified.constraints as constraints_module
from conserve_verified import InvalidArgument, InvalidArgumentType, conserve
from conserve_verified.constraints import (
    ACE,
    EnergyConstraint,
    EquivarianceConstraint,
    Hard,
    LinearEquivarianceConstraint,
    Penalty,
    ToleranceSchedule,
    dual_update,
)
from conserve_verified.equivariance import GroupAveraged, cyclic_shifts, dihedral_images, trivial
from conserve_verified.tolerances import energy_atol, tolerance


def test_docstring_training_loop_runs() -> None:
    result = doctest.testmod(constraints_module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_energy_violation_is_mean_abs_energy_gap_per_boundary() -> None:
    h1 = torch.tensor([[3.0, 4.0], [1.0, 0.0]], dtype=torch.float64)  # energies 25, 1
    h2 = torch.tensor([[2.0, 0.0]], dtype=torch.float64)  # energy 4
    v = EnergyConstraint(energy=4.0).violation(h1, h2)
    torch.testing.assert_close(v, torch.tensor([(21.0 + 3.0) / 2, 0.0], dtype=torch.float64))
    vmax = EnergyConstraint(energy=4.0, reduction="max").violation(h1)
    torch.testing.assert_close(vmax, torch.tensor([21.0], dtype=torch.float64))


def test_hard_energy_projection_is_conserve_and_zero_violation() -> None:
    h = torch.randn(8, 5, dtype=torch.float64)
    hard = Hard(EnergyConstraint(energy=3.0))
    y = hard.project(h)
    torch.testing.assert_close(y, conserve(h, 3.0))
    term = hard(y)
    assert float(term) == 0.0
    assert hard.last_violation is not None
    assert float(hard.last_violation.max()) <= energy_atol(torch.float64, 3.0, 5)


def test_penalty_term_is_lambda_times_violation_and_has_gradient() -> None:
    h = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    c = EnergyConstraint(energy=1.0)
    term = Penalty(c, lam=0.25)(h)
    torch.testing.assert_close(term, 0.25 * c.violation(h).sum())
    term.backward()
    assert h.grad is not None and float(h.grad.abs().sum()) > 0


def test_tolerance_schedule_goes_from_start_to_end_monotonically() -> None:
    for kind in ("geometric", "linear"):
        s = ToleranceSchedule(1.0, 0.01, 10, kind=kind)  # type: ignore[arg-type]
        values = [s(t) for t in range(15)]
        assert values[0] == 1.0 and values[10:] == [0.01] * 5
        assert all(a >= b for a, b in itertools.pairwise(values))
    torch.testing.assert_close(torch.tensor(ToleranceSchedule(1.0, 0.01, 10)(5)), torch.tensor(0.1))


def test_ace_dual_update_follows_projected_ascent() -> None:
    ace = ACE(EnergyConstraint(1.0), dual_lr=2.0, schedule=ToleranceSchedule(0.5, 0.5, 1), aim=1.0)
    h = torch.tensor([[2.0, 0.0]], dtype=torch.float64)  # violation 3
    term = ace(h)
    assert float(term) == 0.0  # dual starts at 0: unconstrained
    ace.step()
    assert ace.dual is not None and float(ace.dual[0]) == pytest.approx(2.0 * (3.0 - 0.5))
    ace(torch.tensor([[1.0, 0.0]], dtype=torch.float64))  # violation 0 -> dual decreases
    ace.step()
    assert float(ace.dual[0]) == pytest.approx(max(0.0, 5.0 + 2.0 * (0.0 - 0.5)))
    assert ace.t == 2 and ace.satisfied()
    assert set(ace.state()) == {"violation", "dual", "tolerance", "t"}


def test_dual_update_clamps_at_zero() -> None:
    out = dual_update(torch.tensor([0.1, 1.0]), torch.tensor([0.0, 5.0]), 1.0, 1.0)
    torch.testing.assert_close(out, torch.tensor([0.0, 5.0]))


def test_equivariance_constraint_zero_for_projection() -> None:
    rep = dihedral_images(3)
    out = trivial(rep, (2,))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(9, 2)).double()
    c = EquivarianceConstraint(rep, out)
    x = torch.randn(5, 3, 3, dtype=torch.float64)
    with torch.no_grad():
        assert float(c.violation(model, x)) > 1e-3
        projected = Hard(c).project(model)
        assert isinstance(projected, GroupAveraged)
        scale = float(projected(x).abs().max()) ** 2
        assert float(c.violation(projected, x)) <= tolerance(torch.float64).function_rtol * scale


def test_linear_equivariance_constraint_projects_parameters() -> None:
    rep = cyclic_shifts(5)
    c = LinearEquivarianceConstraint(rep, rep)
    w = torch.randn(5, 5, dtype=torch.float64)
    p = Hard(c).project(w)
    assert float(c.violation(w)) > 0.1
    assert float(c.violation(p)) <= (tolerance(torch.float64).function_rtol * float(p.norm())) ** 2
    # a shift-equivariant map is circulant: every row is the previous one rolled by one
    torch.testing.assert_close(p[1], torch.roll(p[0], 1))


def test_invalid_arguments_are_named() -> None:
    c = EnergyConstraint(1.0)
    with pytest.raises(InvalidArgument, match="lam=-1"):
        Penalty(c, -1.0)
    with pytest.raises(InvalidArgumentType, match="constraint="):
        Penalty("energy", 1.0)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="dual_lr=0"):
        ACE(c, 0.0, ToleranceSchedule(1.0, 0.1, 5))
    with pytest.raises(InvalidArgument, match="aim=2"):
        ACE(c, 1.0, ToleranceSchedule(1.0, 0.1, 5), aim=2.0)
    with pytest.raises(InvalidArgument, match="end=2"):
        ToleranceSchedule(1.0, 2.0, 5)
    with pytest.raises(InvalidArgument, match="energy=-1"):
        EnergyConstraint(-1.0)
    with pytest.raises(InvalidArgument, match="step"):
        ACE(c, 1.0, ToleranceSchedule(1.0, 0.1, 5)).step()
    with pytest.raises(InvalidArgument, match="contains nan"):
        c.violation(torch.tensor([[float("nan"), 1.0]]))
    ace = ACE(c, 1.0, ToleranceSchedule(1.0, 0.1, 5))
    ace(torch.ones(2, 3))
    with pytest.raises(InvalidArgument, match="components"):
        ace(torch.ones(2, 3), torch.ones(2, 3))
