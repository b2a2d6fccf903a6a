"""Users' own models: a hand-built torchvision-style ResNet through the public API.

Each test is named after the behaviour it checks (issue: "for users' own models and data").
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from conserve_verified import (
    Conserved,
    ConserveEnergy,
    InvalidArgument,
    InvalidArgumentType,
    Pipeline,
    conserve_boundaries,
)
from conserve_verified.errors import check_int, summary
from conserve_verified.gauge import (
    balance,
    balanceable,
    gauge_coordinates,
    gauge_structure,
    imbalance,
)
from conserve_verified.testing import (
    assert_energy_conserved,
    assert_energy_equals,
    assert_gauge_invariant,
)


class Block(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, bn: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=not bn)
        self.bn1 = nn.BatchNorm2d(c_out) if bn else nn.Identity()
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=not bn)
        self.bn2 = nn.BatchNorm2d(c_out) if bn else nn.Identity()
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Conv2d(c_in, c_out, 1, stride, bias=not bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.downsample(x))


class TinyResNet(nn.Module):
    """torchvision-style names: conv1, bn1, relu, layer1, layer2, avgpool, fc."""

    def __init__(self, bn: bool = True, width: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 3, 1, 1, bias=not bn)
        self.bn1 = nn.BatchNorm2d(width) if bn else nn.Identity()
        self.relu = nn.ReLU()
        self.layer1 = nn.Sequential(Block(width, width, 1, bn))
        self.layer2 = nn.Sequential(Block(width, 2 * width, 2, bn))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu(self.bn1(self.conv1(x)))
        h = self.layer2(self.layer1(h))
        return self.fc(torch.flatten(self.avgpool(h), 1))


def _resnet(bn: bool = True) -> TinyResNet:
    torch.manual_seed(0)
    return TinyResNet(bn).eval()


def _x(n: int = 3) -> torch.Tensor:
    return torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(1))


# --------------------------------------------------------------------------- item 1


def test_conserve_boundaries_default_conserves_each_feature_map_over_all_non_batch_dims() -> None:
    model, x = _resnet(), _x()
    seen: list[torch.Tensor] = []
    with conserve_boundaries(model, ["layer1", "layer2"], energy=5.0):
        h = model.layer1.register_forward_hook(lambda _m, _i, out: seen.append(out))
        model(x)
        h.remove()
    assert_energy_equals(seen[0], 5.0, (1, 2, 3))
    assert seen[0].shape == (3, 4, 8, 8)


def test_conserve_boundaries_survives_zero_rows_of_a_relu_feature_map() -> None:
    # rows of a feature map that are all zero after a ReLU are no problem: a map is one sample
    model, x = _resnet(), _x()
    x[:, :, 4:, :] = 0.0  # bias-free convs + BN(eval, beta=0) keep the bottom rows at zero
    with conserve_boundaries(model, ["layer1", "layer2"]) as handle:
        y = model(x)
    assert bool(torch.isfinite(y).all())
    assert handle.dead_samples == {"layer1": 0, "layer2": 0}
    # row-wise conservation (dim=-1) would see dead rows: that is the case users hit
    with (
        conserve_boundaries(model, ["layer1"], dim=-1, zero="raise"),
        pytest.raises(InvalidArgument, match=r"sample \(0, 0, 7\) \(index over dims \(0, 1, 2\)"),
    ):
        model(x)


def test_conserve_boundaries_dead_sample_is_mapped_uniform_and_counted() -> None:
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    with torch.no_grad():
        model[0].bias.fill_(-100.0)  # every ReLU output dies
    with conserve_boundaries(model, ["1"], energy=6.0) as handle:
        y = model(torch.randn(5, 4))
        model(torch.randn(2, 4))
        assert handle.dead_samples == {"1": 7}
    expected = model[2](torch.ones(1, 6)).expand(5, 2)  # uniform direction sqrt(6/6) * ones
    torch.testing.assert_close(y, expected)


def test_conserve_boundaries_zero_raise_names_the_boundary_and_the_sample() -> None:
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    x = torch.randn(3, 4)
    with torch.no_grad():
        model[0].bias.fill_(-100.0)
    with (
        conserve_boundaries(model, ["1"], zero="raise"),
        pytest.raises(
            InvalidArgument,
            match=r"input of boundary '1'=<torch.float32 tensor of "
            r"shape \(3, 6\)>: sample \(0,\) \(index over dims \(0,\)",
        ),
    ):
        model(x)


def test_conserve_boundaries_refuses_a_bare_string_duplicates_and_double_hooking() -> None:
    model = _resnet()
    with pytest.raises(InvalidArgumentType, match=r"names='layer1'.*not a bare string"):
        conserve_boundaries(model, "layer1")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=r"named more than once"):
        conserve_boundaries(model, ["layer1", "layer1"])
    handle = conserve_boundaries(model, ["layer1"])
    with pytest.raises(InvalidArgument, match=r"already carry a conservation boundary"):
        conserve_boundaries(model, ["layer2", "layer1"])
    handle.remove()
    assert not handle.active
    conserve_boundaries(model, ["layer1"]).remove()  # free again after remove()


def test_conserve_boundaries_unknown_name_suggests_and_lists_full_names() -> None:
    with pytest.raises(InvalidArgument, match=r"did you mean 'layer1'\?.*'layer2\.0\.downsample'"):
        conserve_boundaries(_resnet(), ["layr1"])


def test_conserve_boundaries_handle_is_a_context_manager_restoring_the_model() -> None:
    model, x = _resnet(), _x()
    before = model(x)
    with conserve_boundaries(model, ["layer1"]) as handle:
        assert handle.active and handle.names == ["layer1"]
        assert not torch.allclose(model(x), before)
    assert not handle.active
    torch.testing.assert_close(model(x), before)


def test_conserved_dead_boundary_does_not_crash_and_is_counted() -> None:
    lin = nn.Linear(3, 4)
    with torch.no_grad():
        lin.bias.fill_(-100.0)
    p = Conserved(nn.Sequential(lin, nn.ReLU()), nn.Linear(4, 2), energy=2.0)
    assert bool(torch.isfinite(p(torch.randn(5, 3))).all())
    assert p.dead_samples == {0: 5}
    with pytest.raises(InvalidArgument, match=r"input of boundary 0=.*sample \(0,\)"):
        Conserved(nn.Sequential(lin, nn.ReLU()), nn.Linear(4, 2), zero="raise")(torch.randn(2, 3))


# --------------------------------------------------------------------------- item 2


def test_assert_energy_conserved_checks_every_hooked_boundary() -> None:
    model, x = _resnet(), _x()
    with conserve_boundaries(model, ["layer1", "layer2"], energy=3.0) as handle:
        assert_energy_conserved(model, x)
        # a boundary whose conserver is broken is caught, by name
        handle.boundaries[1].conserver.energy = 3.3
        handle.boundaries[1].conserver.forward = (  # type: ignore[method-assign]
            lambda h: 1.05 * torch.nn.functional.normalize(h.flatten(1), dim=1).reshape(h.shape)
        )
        with pytest.raises(AssertionError, match=r"boundary 'layer2': sample \d has energy"):
            assert_energy_conserved(model, x)


def test_assert_energy_conserved_on_conserved_pipeline_and_plain_module() -> None:
    p = Conserved(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2), energy=2.0)
    assert_energy_conserved(p, torch.randn(3, 4))
    plain = nn.Sequential(nn.Linear(4, 6), ConserveEnergy(7.0, dim=None))
    assert_energy_conserved(plain, torch.randn(3, 4))
    with pytest.raises(InvalidArgument, match=r"energy=None: required when the model has no "):
        assert_energy_conserved(nn.Linear(4, 6), torch.randn(3, 4))
    with pytest.raises(AssertionError, match=r"output: sample"):
        assert_energy_conserved(nn.Linear(4, 6), torch.randn(3, 4), energy=1.0)


@pytest.mark.parametrize("bn", [True, False])
def test_assert_gauge_invariant_on_hooked_resnet(bn: bool) -> None:
    model, x = _resnet(bn).double(), _x().double()
    with conserve_boundaries(model, ["layer1"]):
        assert_gauge_invariant(model, x, spread=2.0)
        s = gauge_structure(copy.deepcopy(model), x)
    plain = gauge_structure(model, x)
    # the boundary absorbs layer1's output scales into one common scale
    assert int(s.absorbed.sum()) >= 1 and int(plain.absorbed.sum()) == 0


def test_gauge_transform_that_breaks_hooked_boundary_is_refused_by_the_trace() -> None:
    # rescaling one channel feeding a conserved map is visible through C_E (not a symmetry):
    # the traced structure of the hooked model has fewer free scales than the plain one
    model, x = _resnet(False).double(), _x().double()
    plain = gauge_structure(model, x).num_scales
    with conserve_boundaries(model, ["layer1"]):
        hooked = gauge_structure(model, x).num_scales
    assert hooked < plain


def test_conserved_unwraps_a_single_sequential_and_refuses_a_single_module() -> None:
    seq = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    p = Conserved(seq, energy=2.0)
    assert p.num_boundaries == 2 and p.stages[0] is seq[0]
    assert Pipeline(seq).num_boundaries == 2
    with pytest.raises(InvalidArgument, match=r"at least two stages.*conserve_boundaries"):
        Conserved(nn.Linear(4, 2))


def test_boundary_hook_given_at_construction_equals_set_boundary_hook() -> None:
    torch.manual_seed(0)
    stages = [nn.Sequential(nn.Linear(4, 6), nn.ReLU()), nn.Linear(6, 2)]
    x = torch.randn(3, 4)

    def hook(h: torch.Tensor, i: int) -> torch.Tensor:
        return h + 0.5

    a = Conserved(*stages, energy=2.0, hook=hook)
    b = Conserved(*stages, energy=2.0)
    b.set_boundary_hook(hook)
    torch.testing.assert_close(a(x), b(x))
    assert not torch.allclose(a(x), Conserved(*stages, energy=2.0)(x))
    with pytest.raises(InvalidArgumentType, match="hook"):
        Pipeline(*stages, hook="noise")  # type: ignore[arg-type]


def test_balance_traces_the_structure_from_an_example_input() -> None:
    model, x = _resnet(False).double(), _x().double()
    with torch.no_grad():
        model.conv1.weight.mul_(8.0)
        model.layer1[0].conv1.weight.div_(8.0)
    before = model(x)
    report = balance(model, x, tol=1e-10)  # residual coupling: iterative sweeps
    assert report.converged and report.norm_after < report.norm_before
    torch.testing.assert_close(model(x), before)
    coords = gauge_coordinates(model, x, tol=1e-10)
    assert float(coords.log_scales.abs().max()) < 1e-6
    s = gauge_structure(model, x)
    ok = balanceable(model, s)
    assert float(imbalance(model, s).detach()[ok].abs().max()) < 1e-6 * report.norm_after


def test_balance_without_structure_names_the_fix() -> None:
    with pytest.raises(InvalidArgument, match=r"structure=None: needed: pass an example input"):
        balance(_resnet())
    with pytest.raises(InvalidArgumentType, match=r"structure='x'"):
        balance(_resnet(), "x")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- item 6


def test_summary_is_one_style_for_every_tensor_and_array() -> None:
    assert summary(torch.zeros(2, 3)) == "<torch.float32 tensor of shape (2, 3)>"
    assert summary(torch.arange(4)) == "<torch.int64 tensor of shape (4,)>"
    assert summary(np.arange(4)) == "<numpy.int64 array of shape (4,)>"
    assert summary(torch.tensor(7)) == "<torch.int64 tensor of shape () = 7>"
    assert summary(np.zeros((2, 2), dtype=np.float32)) == "<numpy.float32 array of shape (2, 2)>"
    for value in (torch.arange(1000), np.arange(1000), torch.randn(50, 50)):
        msg = str(InvalidArgument("v", value, "bad"))
        assert msg == f"v={summary(value)}: bad"


def test_check_int_returns_ints_at_least_low_and_names_anything_else() -> None:
    assert check_int("n", 1) == 1 and check_int("n", 0, low=0) == 0
    assert check_int("seeds", None, none=True) is None
    for bad in (0, -3, True, 2.0, "3", None):
        with pytest.raises(InvalidArgument, match=r"^n=.*: must be an int >= 1$"):
            check_int("n", bad)
    with pytest.raises(InvalidArgument, match=r"seeds=0: must be an int >= 1 or None"):
        check_int("seeds", 0, none=True)


def test_long_values_are_shortened_at_a_word_boundary() -> None:
    names = [f"layer{i}.block{i}.conv" for i in range(30)]
    msg = str(InvalidArgument("names", names, "bad"))
    shown = msg.split("=", 1)[1].split("...")[0]
    assert all(part.strip(" [],'") in names for part in shown.split(",") if part.strip(" [],'"))
    assert f"({len(repr(names))} characters)" in msg
