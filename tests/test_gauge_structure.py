"""Tests of gauge tracing (:func:`conserve_verified.gauge.gauge_structure`) on model families.

Identity under test (G1): for every traced model and random log-scales ``u``,
``gauge_transform(model, s, u)`` leaves ``model(x)`` unchanged, and the scales
joined by an addition are merged (a residual stream carries one scale per channel).
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from conserve_verified import Conserved, InvalidArgument
from conserve_verified.gauge import (
    balance,
    gauge_structure,
    gauge_transform,
    imbalance,
    random_log_scales,
)
from conserve_verified.testing import assert_gauge_invariant

# --------------------------------------------------------------------------- model zoo


def mlp(widths: tuple[int, ...] = (6, 8, 7, 3), slope: float | None = None) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(nn.ReLU() if slope is None else nn.LeakyReLU(slope))
    return nn.Sequential(*layers)


def vgg(channels: tuple[int, ...] = (4, 6, 8), classes: int = 3) -> nn.Sequential:
    layers: list[nn.Module] = []
    c_in = 3
    for c in channels:
        layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        c_in = c
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(c_in, classes))


class BasicBlock(nn.Module):
    """ResNet basic block: conv-(BN)-ReLU-conv-(BN) plus shortcut, then ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int, bn: bool) -> None:
        super().__init__()
        norm = (lambda c: nn.BatchNorm2d(c)) if bn else (lambda c: nn.Identity())
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=not bn)
        self.bn1 = norm(c_out)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=not bn)
        self.bn2 = norm(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=not bn), norm(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return self.relu(out)


class ResNet18(nn.Module):
    """ResNet-18 for small images ([2, 2, 2, 2] basic blocks), optional BatchNorm."""

    def __init__(self, width: int = 4, classes: int = 10, bn: bool = True) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, 1, 1, bias=not bn)
        self.bn = nn.BatchNorm2d(width) if bn else nn.Identity()
        self.relu = nn.ReLU()
        blocks = []
        c = width
        for i, w in enumerate((width, 2 * width, 4 * width, 8 * width)):
            for j in range(2):
                blocks.append(BasicBlock(c, w, 2 if (j == 0 and i > 0) else 1, bn))
                c = w
        self.layers = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.layers(self.relu(self.bn(self.stem(x))))
        return self.fc(torch.flatten(self.pool(h), 1))


class DenseBlockNet(nn.Module):
    """DenseNet-style: each layer's output is concatenated to its input along channels."""

    def __init__(self, growth: int = 3, layers: int = 3, classes: int = 4) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        c = 4
        self.convs = nn.ModuleList()
        for _ in range(layers):
            self.convs.append(nn.Conv2d(c, growth, 3, padding=1))
            c += growth
        self.transition = nn.Conv2d(c, 5, 1)
        self.fc = nn.Linear(5, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.stem(x))
        for conv in self.convs:
            h = torch.cat([h, torch.relu(conv(h))], 1)
        h = torch.relu(self.transition(h))
        return self.fc(h.mean((2, 3)))


def _randomise_bn(model: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g))
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)


ZOO = {
    "mlp": (lambda: mlp(), (5, 6)),
    "leaky_mlp": (lambda: mlp(slope=0.2), (5, 6)),
    "vgg": (lambda: vgg(), (2, 3, 8, 8)),
    "resnet18": (lambda: ResNet18(bn=False), (2, 3, 16, 16)),
    "resnet18_bn": (lambda: ResNet18(bn=True), (2, 3, 16, 16)),
    "densenet": (lambda: DenseBlockNet(), (2, 3, 6, 6)),
    "conserved": (
        lambda: Conserved(mlp((6, 8, 5)), nn.Sequential(nn.ReLU(), mlp((5, 7, 3))), energy=2.0),
        (5, 6),
    ),
}


def _build(name: str, dtype: torch.dtype = torch.float64) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    factory, shape = ZOO[name]
    model = factory().to(dtype).eval()
    _randomise_bn(model, 1)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(2), dtype=dtype)
    return model, x


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("name", sorted(ZOO))
def test_gauge_transform_preserves_function(name: str) -> None:
    model, x = _build(name)
    s = gauge_structure(model, x)
    assert s.num_scales > 0
    y = model(x)
    gauge_transform(model, s, random_log_scales(s, 1.5, torch.Generator().manual_seed(3)))
    torch.testing.assert_close(model(x), y, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(ZOO))
def test_gauge_transform_is_not_trivial(name: str) -> None:
    """The action really changes the parameters (so the invariance test can fail)."""
    model, x = _build(name)
    s = gauge_structure(model, x)
    before = [p.detach().clone() for p in model.parameters()]
    gauge_transform(model, s, random_log_scales(s, 1.5, torch.Generator().manual_seed(3)))
    changed = sum(
        int(not torch.equal(a, b)) for a, b in zip(before, model.parameters(), strict=True)
    )
    assert changed >= 2


@pytest.mark.parametrize("name", sorted(ZOO))
def test_balance_preserves_function_and_balances(name: str) -> None:
    model, x = _build(name)
    s = gauge_structure(model, x)
    gauge_transform(model, s, random_log_scales(s, 1.0, torch.Generator().manual_seed(4)))
    y = model(x)
    report = balance(model, s, tol=1e-7)
    assert report.converged and report.norm_after <= report.norm_before
    torch.testing.assert_close(model(x), y, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", sorted(ZOO))
def test_assert_gauge_invariant_accepts_zoo(name: str) -> None:
    model, x = _build(name)
    assert_gauge_invariant(model, x)


def test_mlp_scale_count_is_hidden_width() -> None:
    s = gauge_structure(mlp((6, 8, 7, 3)), torch.zeros(1, 6))
    assert s.num_scales == 8 + 7
    assert bool(s.compensated.all()) and not bool(s.absorbed.any())


def test_residual_addition_merges_scales() -> None:
    """Without BN, ResNet-18's identity shortcuts tie block input and output channels."""
    model, x = _build("resnet18")
    s = gauge_structure(model, x)
    w = 4
    per_stage_free = {
        # stem + residual stream of stage 1 share w scales; each block's inner conv1 has its own
        "stream": w + 2 * w + 4 * w + 8 * w,
        "inner": 2 * (w + 2 * w + 4 * w + 8 * w),
    }
    assert s.num_scales == per_stage_free["stream"] + per_stage_free["inner"]


def test_residual_merge_is_required() -> None:
    """Rescaling one branch of an addition alone breaks the function (tracing is not vacuous)."""
    model, x = _build("resnet18")
    y = model(x)
    with torch.no_grad():
        model.layers[0].conv2.weight.mul_(2.0)
        model.layers[0].conv2.bias.mul_(2.0)
        model.layers[1].conv1.weight.div_(2.0)
    assert not torch.allclose(model(x), y, rtol=1e-6, atol=1e-6)


def test_batchnorm_fixes_the_scale_of_its_input() -> None:
    model, x = _build("resnet18_bn")
    s = gauge_structure(model, x)
    touched = {a.name for a in s.actions}
    assert "stem.weight" not in touched  # feeds BN: fixed (BN's own scale symmetry)
    assert "bn.weight" in touched and "bn.bias" in touched
    assert "layers.0.conv1.weight" in touched  # consumer of the BN-produced stream


def test_densenet_concat_passes_scales_through() -> None:
    model, x = _build("densenet")
    s = gauge_structure(model, x)
    # stem (4) + three growth layers (3 each) + transition (5)
    assert s.num_scales == 4 + 3 * 3 + 5
    cons = {a.name: a.cons for a in s.actions if a.cons is not None}
    assert cons["transition.weight"].tolist() == list(range(4 + 3 * 3))


def test_conserved_boundary_absorbs_one_common_scale() -> None:
    model, x = _build("conserved")
    s = gauge_structure(model, x)
    # hidden 8 of stage 0 and hidden 7 of stage 1 are ordinary; the 5 outputs of
    # stage 0 feeding C_E share one absorbed, uncompensated scale
    assert s.num_scales == 8 + 7 + 1
    assert int(s.absorbed.sum()) == 1
    assert int((~s.compensated).sum()) == 1
    k = int(s.absorbed.nonzero())
    assert not bool(s.compensated[k])


def test_conserved_per_neuron_rescaling_is_not_a_symmetry() -> None:
    """Compensated per-neuron rescaling across C_E changes the function; a common scale does not."""
    model, x = _build("conserved")
    y = model(x)
    last = model.stages[0][-1]
    nxt = model.stages[1][1][0]
    alpha = torch.tensor([1.0, 2.0, 0.5, 3.0, 1.0], dtype=torch.float64)
    twin = copy.deepcopy(model)
    with torch.no_grad():
        twin.stages[0][-1].weight.mul_(alpha[:, None])
        twin.stages[0][-1].bias.mul_(alpha)
        twin.stages[1][1][0].weight.div_(alpha[None, :])
    assert not torch.allclose(twin(x), y, rtol=1e-6, atol=1e-6)
    with torch.no_grad():
        last.weight.mul_(3.0)
        last.bias.mul_(3.0)
    torch.testing.assert_close(model(x), y)
    assert nxt.weight.shape[1] == 5


@pytest.mark.parametrize(
    "act", [nn.GELU(), nn.Tanh(), nn.Sigmoid(), nn.SiLU(), nn.ELU(), nn.Softplus(), nn.ReLU6()]
)
def test_non_homogeneous_activation_is_refused(act: nn.Module) -> None:
    model = nn.Sequential(nn.Linear(3, 4), act, nn.Linear(4, 2))
    with pytest.raises(InvalidArgument, match="not positively homogeneous") as info:
        gauge_structure(model, torch.zeros(1, 3))
    assert info.value.argument == "model"


def test_non_homogeneous_activation_fixes_scale_when_not_strict() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2))
    s = gauge_structure(model, torch.zeros(1, 3), strict=False)
    assert s.num_scales == 5


def test_non_homogeneous_function_is_refused() -> None:
    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(3, 4)
            self.b = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(torch.nn.functional.gelu(self.a(x)))

    with pytest.raises(InvalidArgument, match="gelu"):
        gauge_structure(M(), torch.zeros(1, 3))


def test_product_of_activations_is_refused() -> None:
    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(3, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.a(x)
            return h * h

    with pytest.raises(InvalidArgument, match="product of two"):
        gauge_structure(M(), torch.zeros(1, 3))


def test_bias_constant_fixes_scale() -> None:
    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(3, 4)
            self.b = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(torch.relu(self.a(x) + 1.0))

    assert gauge_structure(M(), torch.zeros(1, 3)).num_scales == 0


def test_gauge_structure_rejects_bad_arguments() -> None:
    with pytest.raises(InvalidArgument, match="model"):
        gauge_structure("not a model", torch.zeros(1, 3))  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="example_input"):
        gauge_structure(mlp(), "x")  # type: ignore[arg-type]


def test_structure_rejects_other_model() -> None:
    s = gauge_structure(mlp((6, 8, 3)), torch.zeros(1, 6))
    with pytest.raises(InvalidArgument, match="different model"):
        gauge_transform(mlp((6, 9, 3)), s, torch.zeros(s.num_scales, dtype=torch.float64))


def test_imbalance_changes_under_gauge_but_function_does_not() -> None:
    model, x = _build("mlp")
    s = gauge_structure(model, x)
    d0 = imbalance(model, s).detach().clone()
    gauge_transform(model, s, torch.full((s.num_scales,), 0.5, dtype=torch.float64))
    assert not torch.allclose(imbalance(model, s).detach(), d0)
