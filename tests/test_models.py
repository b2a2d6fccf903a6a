"""Tests of the model builders: stage counts, boundary shapes, conserved arms on the shell."""

from __future__ import annotations

import pytest
import torch

from conserve_verified import Conserved, InvalidArgument, Pipeline
from conserve_verified.models import (
    ConservedStages,
    boundary_shapes,
    build_pipeline,
    cnn_stages,
    mlp_stages,
    resnet18_stages,
)


def _capture(p: Pipeline, x: torch.Tensor) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []

    def hook(h: torch.Tensor, i: int) -> torch.Tensor:
        seen.append(h.detach())
        return h

    with p.boundary_hook(hook):
        p(x)
    return seen


@pytest.mark.parametrize("depth", [2, 3, 5])
def test_mlp_stages_depth_gives_depth_minus_one_boundaries(depth: int) -> None:
    p = build_pipeline(mlp_stages((1, 8, 8), 10, 16, depth), "baseline", (1, 8, 8))
    assert p.num_boundaries == depth - 1
    assert p(torch.rand(3, 1, 8, 8)).shape == (3, 10)


def test_conserved_arm_has_unit_rms_where_noise_enters_and_after() -> None:
    torch.manual_seed(0)
    p = build_pipeline(mlp_stages((1, 8, 8), 10, 16, 4), "conserved", (1, 8, 8))
    assert isinstance(p, Conserved)
    x = torch.rand(5, 1, 8, 8)
    for h in _capture(p, x):
        torch.testing.assert_close(h.pow(2).mean(1), torch.ones(5))
    for h in p.boundary_activations(x):
        torch.testing.assert_close(h.pow(2).mean(1), torch.ones(5))


def test_resnet18_stages_shapes_with_and_without_batchnorm() -> None:
    for bn in (True, False):
        stages = resnet18_stages((1, 8, 8), 10, base_width=4, batchnorm=bn)
        assert len(stages) == 6
        assert boundary_shapes(stages, (1, 8, 8)) == [
            (4, 8, 8),
            (4, 8, 8),
            (8, 4, 4),
            (16, 2, 2),
            (32, 1, 1),
        ]
        has_bn = any(isinstance(m, torch.nn.BatchNorm2d) for s in stages for m in s.modules())
        assert has_bn == bn


def test_resnet18_conserved_arm_uses_per_boundary_energies() -> None:
    torch.manual_seed(0)
    p = build_pipeline(resnet18_stages((1, 8, 8), 10, 4, False), "conserved", (1, 8, 8))
    assert isinstance(p, ConservedStages)
    assert p.energies == [256.0, 256.0, 128.0, 64.0, 32.0]
    for h in _capture(p, torch.rand(2, 1, 8, 8)):
        torch.testing.assert_close(h.flatten(1).pow(2).mean(1), torch.ones(2))


def test_cnn_stages_work_in_1d_and_2d() -> None:
    assert build_pipeline(cnn_stages((1, 40), 10, 8, 3), "baseline", (1, 40))(
        torch.rand(2, 1, 40)
    ).shape == (2, 10)
    assert build_pipeline(cnn_stages((1, 8, 8), 10, 8, 3), "baseline", (1, 8, 8))(
        torch.rand(2, 1, 8, 8)
    ).shape == (2, 10)


def test_build_pipeline_rejects_unknown_arm() -> None:
    with pytest.raises(
        InvalidArgument, match="valid: \\['baseline', 'energy_penalized', 'conserved'\\]"
    ):
        build_pipeline(mlp_stages((4,), 2, 4, 2), "magic", (4,))


def test_conserved_arm_takes_one_energy_per_boundary() -> None:
    torch.manual_seed(0)
    p = build_pipeline(mlp_stages((1, 8, 8), 10, 16, 4), "conserved", (1, 8, 8), [1.0, 4.0, 0.25])
    assert isinstance(p, ConservedStages)
    assert p.energies == [16.0, 64.0, 4.0]
    for h, e in zip(_capture(p, torch.rand(3, 1, 8, 8)), (1.0, 4.0, 0.25), strict=True):
        torch.testing.assert_close(h.pow(2).mean(1), torch.full((3,), e))
    with pytest.raises(InvalidArgument, match="energy_per_feature"):
        build_pipeline(mlp_stages((1, 8, 8), 10, 16, 4), "conserved", (1, 8, 8), [1.0, 2.0])
    with pytest.raises(InvalidArgument, match="energy_per_feature"):
        build_pipeline(mlp_stages((1, 8, 8), 10, 16, 3), "conserved", (1, 8, 8), -1.0)


def test_without_reprojection_shares_stages_and_drops_the_post_hook_conserver() -> None:
    from conserve_verified.models import without_reprojection

    torch.manual_seed(0)
    p = build_pipeline(mlp_stages((1, 8, 8), 10, 16, 3), "conserved", (1, 8, 8))
    c = without_reprojection(p)
    assert all(a is b for a, b in zip(c.stages, p.stages, strict=True))
    doubled = _capture_after(c, lambda h, i: 2 * h)
    # the control lets a rescaled activation through; the conserved arm would re-project it
    assert all(float(h.pow(2).mean()) == pytest.approx(4.0, rel=1e-5) for h in doubled)


def _capture_after(p: Pipeline, hook: object) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []
    stage1 = p.stages[1]

    def grab(_m: torch.nn.Module, inp: tuple[torch.Tensor, ...]) -> None:
        seen.append(inp[0].detach())

    handle = stage1.register_forward_pre_hook(grab)
    try:
        with p.boundary_hook(hook), torch.no_grad():  # type: ignore[arg-type]
            p(torch.rand(4, 1, 8, 8))
    finally:
        handle.remove()
    return seen
