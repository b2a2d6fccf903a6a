"""Unit tests of the gauge action, norms, penalty, balancing and coordinates.

One test per identity stated in :mod:`conserve_verified.gauge._action` and
:mod:`conserve_verified.gauge._balance`.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from conserve_verified import InvalidArgument
from conserve_verified.gauge import (
    ImbalanceMonitor,
    balance,
    balance_penalty,
    from_gauge_coordinates,
    gauge_coordinates,
    gauge_structure,
    gauge_transform,
    imbalance,
    log_imbalance,
    log_scale_penalty_step,
    orbit_norms,
    random_log_scales,
    transformed_parameters,
)


def _mlp(
    widths: tuple[int, ...] = (4, 6, 5, 3), seed: int = 0
) -> tuple[nn.Sequential, torch.Tensor]:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i in range(len(widths) - 1):
        layers += [nn.Linear(widths[i], widths[i + 1]), nn.ReLU()]
    model = nn.Sequential(*layers[:-1]).double()
    return model, torch.randn(7, widths[0], dtype=torch.float64)


def _params(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def test_gauge_transform_inverse_is_identity() -> None:
    model, x = _mlp()
    s = gauge_structure(model, x)
    before = _params(model)
    u = random_log_scales(s, 2.0, torch.Generator().manual_seed(1))
    gauge_transform(model, s, u)
    assert any(not torch.equal(before[k], v) for k, v in _params(model).items())
    gauge_transform(model, s, -u)
    for k, v in _params(model).items():
        torch.testing.assert_close(v, before[k], rtol=1e-14, atol=0)


def test_orbit_norms_scale_with_exp_2u_for_isolated_neuron() -> None:
    model, x = _mlp((4, 6, 3))
    s = gauge_structure(model, x)
    a0, b0 = (t.detach() for t in orbit_norms(model, s))
    u = random_log_scales(s, 1.0, torch.Generator().manual_seed(2))
    gauge_transform(model, s, u)
    a1, b1 = (t.detach() for t in orbit_norms(model, s))
    torch.testing.assert_close(a1, torch.exp(2 * u) * a0)
    torch.testing.assert_close(b1, torch.exp(-2 * u) * b0)


def test_transformed_parameters_match_gauge_transform() -> None:
    model, x = _mlp()
    s = gauge_structure(model, x)
    u = random_log_scales(s, 1.0, torch.Generator().manual_seed(3))
    functional = transformed_parameters(_params(model), s, u)
    gauge_transform(model, s, u)
    for k, v in _params(model).items():
        torch.testing.assert_close(functional[k], v)


def test_norm_gradient_in_log_scales_is_twice_the_imbalance() -> None:
    """d ||g(u) θ||^2 / du_k = 2 delta_k at u = 0."""
    model, x = _mlp()
    s = gauge_structure(model, x)
    u = torch.zeros(s.num_scales, dtype=torch.float64, requires_grad=True)
    params = transformed_parameters(_params(model), s, u)
    total = sum(p.pow(2).sum() for p in params.values())
    (grad,) = torch.autograd.grad(total, u)
    torch.testing.assert_close(grad, 2 * imbalance(model, s).detach())


def test_log_scale_penalty_step_keeps_function_and_reduces_penalty() -> None:
    model, x = _mlp((4, 6, 3))
    s = gauge_structure(model, x)
    gauge_transform(model, s, torch.full((s.num_scales,), 1.5, dtype=torch.float64))
    y = model(x).detach()
    r0 = float(balance_penalty(model, s, 1.0).detach())
    for _ in range(5):
        step = log_scale_penalty_step(model, s, 0.5)
        assert float(step.abs().max()) <= 0.25 + 1e-12  # |u| <= rate / 2
    assert float(balance_penalty(model, s, 1.0).detach()) < 0.1 * r0
    torch.testing.assert_close(model(x).detach(), y, rtol=1e-12, atol=1e-12)


def test_balance_one_hidden_layer_is_exact_in_one_sweep() -> None:
    model, x = _mlp((4, 6, 3))
    s = gauge_structure(model, x)
    report = balance(model, s)
    assert report.sweeps == 1 and report.converged
    a, b = (t.detach() for t in orbit_norms(model, s))
    torch.testing.assert_close(a, b)


def test_gauge_coordinates_round_trip_and_invariant_part() -> None:
    model, x = _mlp()
    s = gauge_structure(model, x)
    coords = gauge_coordinates(model, s, tol=1e-12)
    rebuilt = from_gauge_coordinates(coords, s)
    for k, v in _params(model).items():
        torch.testing.assert_close(rebuilt[k], v, rtol=1e-10, atol=1e-12)
    twin = copy.deepcopy(model)
    gauge_transform(twin, s, random_log_scales(s, 1.0, torch.Generator().manual_seed(4)))
    other = gauge_coordinates(twin, s, tol=1e-12)
    for k, v in coords.balanced.items():
        torch.testing.assert_close(other.balanced[k], v, rtol=1e-8, atol=1e-10)


def test_log_imbalance_is_zero_when_balanced_and_inf_without_consumers() -> None:
    from conserve_verified import Conserved

    model, x = _mlp((4, 6, 3))
    s = gauge_structure(model, x)
    balance(model, s)
    assert float(log_imbalance(model, s).abs().max()) < 1e-12
    p = Conserved(nn.Linear(4, 5), nn.Linear(5, 2), energy=1.0).double()
    sp_ = gauge_structure(p, x)
    li = log_imbalance(p, sp_)
    assert bool(torch.isinf(li).all()) and not bool(torch.isnan(li).any())


def test_balance_leaves_uncompensated_scale_alone() -> None:
    from conserve_verified import Conserved

    torch.manual_seed(0)
    p = Conserved(nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 5)), nn.Linear(5, 2))
    p = p.double()
    x = torch.randn(3, 4, dtype=torch.float64)
    s = gauge_structure(p, x)
    report = balance(p, s)
    k = int(s.absorbed.nonzero())
    assert float(report.log_scales[k]) == 0.0


def test_imbalance_monitor_records_drift() -> None:
    model, x = _mlp((4, 6, 3))
    mon = ImbalanceMonitor(model, x)
    first = mon.record(0)
    assert s_keys(first) == {
        "step",
        "max_abs_delta",
        "mean_abs_log_imbalance",
        "max_abs_log_imbalance",
        "norm",
    }
    assert mon.structure is not None
    gauge_transform(model, mon.structure, torch.full((6,), 1.0, dtype=torch.float64))
    second = mon.record(1)
    assert second["mean_abs_log_imbalance"] > first["mean_abs_log_imbalance"]
    assert mon.series("step") == [0.0, 1.0]
    with pytest.raises(InvalidArgument, match="example_input"):
        ImbalanceMonitor(model)


def s_keys(d: dict[str, float]) -> set[str]:
    return set(d)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"log_scales": torch.zeros(2, dtype=torch.float64)}, "log_scales"),
        ({"log_scales": torch.zeros(6, dtype=torch.long)}, "log_scales"),
        ({"log_scales": torch.full((6,), math.inf, dtype=torch.float64)}, "log_scales"),
    ],
)
def test_gauge_transform_rejects_bad_log_scales(kwargs: dict, argument: str) -> None:
    model, x = _mlp((4, 6, 3))
    s = gauge_structure(model, x)
    with pytest.raises(InvalidArgument) as info:
        gauge_transform(model, s, **kwargs)
    assert info.value.argument == argument


def test_bad_scalar_arguments_are_refused() -> None:
    model, x = _mlp((4, 6, 3))
    s = gauge_structure(model, x)
    with pytest.raises(InvalidArgument, match="mu"):
        balance_penalty(model, s, -1.0)
    with pytest.raises(InvalidArgument, match="rate"):
        log_scale_penalty_step(model, s, 2.0)
    with pytest.raises(InvalidArgument, match="max_sweeps"):
        balance(model, s, max_sweeps=0)
    with pytest.raises(InvalidArgument, match="spread"):
        random_log_scales(s, -1.0)
    with pytest.raises(InvalidArgument, match="structure"):
        orbit_norms(model, "s")  # type: ignore[arg-type]
