"""Unit tests of :mod:`conserve_verified.equivariance`, one per stated identity/behaviour."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from conserve_verified import InvalidArgument, InvalidArgumentType
from conserve_verified.equivariance import (
    GroupAveraged,
    average_linear,
    cyclic_shifts,
    dihedral_images,
    equivariance_error,
    from_matrices,
    from_permutations,
    linear_equivariance_defect,
    trivial,
)
from conserve_verified.errors import ConservationViolation
from conserve_verified.testing import assert_equivariant
from conserve_verified.tolerances import tolerance

RTOL = tolerance(torch.float64).function_rtol


def test_dihedral_act_is_rot90_after_flip() -> None:
    rep = dihedral_images(5)
    x = torch.randn(3, 2, 5, 5)
    for g in range(8):
        f, k = divmod(g, 4)
        want = torch.rot90(x.flip(-1) if f else x, k, dims=(-2, -1))
        assert torch.equal(rep.act(x, g), want)


def test_dihedral_is_the_group_of_order_8() -> None:
    rep = dihedral_images(4)
    assert rep.order == 8 and rep.identity == 0
    rotations = [g for g in range(8) if g < 4]
    # rotations form the cyclic subgroup C4; every flip is its own inverse
    assert all(rep.compose(a, b) < 4 for a in rotations for b in rotations)
    assert all(rep.inverse(g) == g for g in range(4, 8))
    assert rep.compose(1, 1) == 2 and rep.inverse(1) == 3
    assert not torch.equal(rep.table, rep.table.T)  # D4 is not abelian


def test_cyclic_act_is_roll() -> None:
    rep = cyclic_shifts(7)
    x = torch.randn(2, 7)
    for s in range(7):
        assert torch.equal(rep.act(x, s), torch.roll(x, s, dims=-1))
    assert rep.compose(3, 5) == 1 and rep.inverse(2) == 5


def test_matrices_represent_the_action() -> None:
    for rep in (dihedral_images(3), cyclic_shifts(4)):
        x = torch.randn(5, *rep.event_shape, dtype=torch.float64)
        for g in range(rep.order):
            flat = x.reshape(5, -1) @ rep.matrix(g).T
            assert torch.equal(flat.reshape(x.shape), rep.act(x, g))
            # homomorphism: rho(a) rho(b) = rho(a * b)
            for b in range(rep.order):
                torch.testing.assert_close(
                    rep.matrix(g) @ rep.matrix(b), rep.matrix(rep.compose(g, b)), rtol=0, atol=0
                )


def test_from_matrices_recovers_the_group_of_a_rotation_representation() -> None:
    r90 = torch.tensor([[0.0, -1.0], [1.0, 0.0]])
    mats = torch.stack([torch.linalg.matrix_power(r90, k) for k in range(4)])
    rep = from_matrices("C4 on R^2", mats, 2)
    assert rep.order == 4 and rep.perms is None
    assert rep.compose(1, 1) == 2 and rep.inverse(1) == 3
    x = torch.tensor([[1.0, 0.0]])
    torch.testing.assert_close(rep.act(x, 1), torch.tensor([[0.0, 1.0]]))
    w = torch.randn(2, 2, dtype=torch.float64)
    p = average_linear(w, rep, rep)
    for g in range(4):
        torch.testing.assert_close(rep.matrix(g) @ p, p @ rep.matrix(g))


def test_average_linear_idempotent_and_equivariant() -> None:
    rep = dihedral_images(3)
    out = trivial(rep, (4,))
    w = torch.randn(4, 9, dtype=torch.float64)
    p = average_linear(w, rep, out)
    torch.testing.assert_close(average_linear(p, rep, out), p)
    for g in range(8):
        torch.testing.assert_close(p @ rep.matrix(g), p)  # invariant: constant on orbits
    # orbits of D4 on a 3x3 grid: centre, 4 edges, 4 corners -> each row has 3 distinct values
    assert all(len(torch.unique(row.round(decimals=12))) <= 3 for row in p)
    assert float(linear_equivariance_defect(p, rep, out)) <= (RTOL * float(p.norm())) ** 2
    assert float(linear_equivariance_defect(w, rep, out)) > 0.1


def test_group_averaged_model_is_equivariant_and_plain_model_is_not() -> None:
    rep = dihedral_images(4)
    out = trivial(rep, (3,))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3)).double()
    x = torch.randn(6, 4, 4, dtype=torch.float64)
    averaged = GroupAveraged(model, rep, out)
    assert_equivariant(averaged, x, rep, out)
    with pytest.raises(ConservationViolation, match="not equivariant under element"):
        assert_equivariant(model, x, rep, out)
    with torch.no_grad():
        err = equivariance_error(averaged, x, rep, out)
        plain = equivariance_error(model, x, rep, out)
    assert err.shape == (8, 6) and float(err.max()) <= RTOL
    assert float(plain[1:].min()) > 1e-3
    assert float(plain[0].max()) == 0.0


def test_equivariance_error_of_equivariant_shift_map_is_zero() -> None:
    rep = cyclic_shifts(6)
    conv = nn.Conv1d(1, 1, 3, padding=1, padding_mode="circular", bias=False).double()

    def model(x: torch.Tensor) -> torch.Tensor:
        return conv(x.unsqueeze(1)).squeeze(1)

    x = torch.randn(4, 6, dtype=torch.float64)
    with torch.no_grad():
        err = equivariance_error(model, x, rep, rep)
    assert float(err.max()) <= RTOL


def test_invalid_arguments_are_named() -> None:
    with pytest.raises(InvalidArgument, match="n=1"):
        dihedral_images(1)
    with pytest.raises(InvalidArgumentType, match="n="):
        cyclic_shifts(2.0)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="not closed"):
        from_permutations("bad", [[0, 1, 2], [1, 2, 0]], 3)
    with pytest.raises(InvalidArgument, match="not a permutation"):
        from_permutations("bad", [[0, 0, 1]], 3)
    rep = dihedral_images(3)
    with pytest.raises(InvalidArgument, match="trailing shape"):
        rep.act(torch.randn(2, 4, 4), 0)
    with pytest.raises(InvalidArgument, match="g=8"):
        rep.act(torch.randn(3, 3), 8)
    with pytest.raises(InvalidArgument, match="group table differs"):
        average_linear(torch.randn(3, 9), rep, trivial(cyclic_shifts(3), 3))
    with pytest.raises(InvalidArgument, match="weight"):
        average_linear(torch.randn(2, 2), rep, rep)


def test_order_and_dim() -> None:
    assert dihedral_images(8).dim == 64 and cyclic_shifts(40).order == 40
    assert math.prod(trivial(cyclic_shifts(3), (2, 5)).event_shape) == 10
