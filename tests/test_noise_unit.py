"""Unit tests of :mod:`conserve_verified.noise`: interface, validation, hooks, attacks."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

from conserve_verified import Conserved, InvalidArgument, InvalidArgumentType, Pipeline
from conserve_verified.noise import (
    Adversarial,
    BiasNoise,
    Compose,
    DropoutNoise,
    GaussianNoise,
    MonocularDepthNoise,
    MultiplicativeNoise,
    fgsm,
    inject,
    pgd,
)
from conserve_verified.testing import FLOAT_DTYPES
from conserve_verified.tolerances import tolerance


def _injectors(seed: Any = 0) -> list[Any]:
    return [
        GaussianNoise(0.2, seed=seed),
        GaussianNoise(0.2, relative=True, correlation=0.5, seed=seed),
        MultiplicativeNoise(0.2, correlation=1.0, seed=seed),
        BiasNoise(0.3, mode="random", seed=seed),
        DropoutNoise(0.3, seed=seed),
    ]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("k", range(5))
def test_injector_preserves_shape_and_dtype(dtype: torch.dtype, k: int) -> None:
    inj = _injectors()[k]
    for shape in [(3, 7), (2, 3, 4, 5), (5,)]:
        h = torch.randn(shape).to(dtype)
        y = inj(h, 0)
        assert y.shape == h.shape and y.dtype == dtype
        assert bool(torch.isfinite(y).all())


@pytest.mark.parametrize("k", range(5))
def test_injector_seed_reproducible(k: int) -> None:
    h = torch.randn(8, 6, dtype=torch.float64)
    a, b = _injectors(7)[k], _injectors(7)[k]
    ya1, ya2 = a(h, 0), a(h, 1)
    assert torch.equal(ya1, b(h, 0)) and torch.equal(ya2, b(h, 1))
    a.reset()
    assert torch.equal(a(h, 0), ya1)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(_injectors(g1)[k](h), _injectors(g2)[k](h))


def test_different_seeds_differ() -> None:
    h = torch.randn(8, 6, dtype=torch.float64)
    assert not torch.equal(GaussianNoise(0.1, seed=0)(h), GaussianNoise(0.1, seed=1)(h))


def test_boundaries_selects_indices() -> None:
    h = torch.randn(4, 5)
    inj = GaussianNoise(1.0, boundaries=[1])
    assert torch.equal(inj(h, 0), h)
    assert not torch.equal(inj(h, 1), h)


def test_zero_sigma_is_identity() -> None:
    h = torch.randn(4, 5, dtype=torch.float64)
    for inj in (GaussianNoise(0.0), MultiplicativeNoise(0.0), DropoutNoise(0.0), BiasNoise(0.0)):
        assert torch.equal(inj(h), h)


def test_relative_noise_of_zero_sample_is_zero() -> None:
    h = torch.zeros(2, 5)
    assert torch.equal(GaussianNoise(0.5, relative=True)(h), h)


def test_noise_is_differentiable() -> None:
    h = torch.randn(4, 5, requires_grad=True)
    GaussianNoise(0.1, relative=True)(h).sum().backward()
    assert h.grad is not None and bool(torch.isfinite(h.grad).all())


def test_bias_is_systematic() -> None:
    inj = BiasNoise(0.5, mode="random", seed=2)
    h1, h2 = torch.randn(3, 6, dtype=torch.float64), torch.randn(3, 6, dtype=torch.float64)
    b1, b2 = inj(h1, 0) - h1, inj(h2, 0) - h2
    torch.testing.assert_close(b1, b2)
    torch.testing.assert_close(b1[0], b1[2])
    torch.testing.assert_close(b1.pow(2).mean(), torch.tensor(0.25, dtype=torch.float64))
    assert not torch.allclose(inj(h1, 1) - h1, b1)  # each boundary its own offset


def test_constant_bias_adds_magnitude() -> None:
    h = torch.randn(3, 6, dtype=torch.float64)
    torch.testing.assert_close(BiasNoise(-0.25)(h) - h, torch.full_like(h, -0.25))


def test_nonfinite_input_rejected() -> None:
    h = torch.randn(3, 4)
    h[1, 2] = math.nan
    with pytest.raises(InvalidArgument, match=r"index \(1, 2\)"):
        GaussianNoise(0.1)(h)


@pytest.mark.parametrize(
    ("factory", "argument"),
    [
        (lambda: GaussianNoise(-0.1), "sigma"),
        (lambda: GaussianNoise(math.nan), "sigma"),
        (lambda: GaussianNoise("0.1"), "sigma"),  # type: ignore[arg-type]
        (lambda: GaussianNoise(0.1, correlation=1.5), "correlation"),
        (lambda: GaussianNoise(0.1, relative=1), "relative"),  # type: ignore[arg-type]
        (lambda: GaussianNoise(0.1, seed=-1), "seed"),
        (lambda: GaussianNoise(0.1, seed=1.5), "seed"),  # type: ignore[arg-type]
        (lambda: GaussianNoise(0.1, boundaries=[-1]), "boundaries"),
        (lambda: GaussianNoise(0.1, boundaries="0"), "boundaries"),  # type: ignore[arg-type]
        (lambda: GaussianNoise(0.1, dim=()), "dim"),
        (lambda: MultiplicativeNoise(math.inf), "sigma"),
        (lambda: MultiplicativeNoise(0.1, correlation=-0.1), "correlation"),
        (lambda: DropoutNoise(1.0), "p"),
        (lambda: DropoutNoise(-0.5), "p"),
        (lambda: BiasNoise(0.1, mode="other"), "mode"),  # type: ignore[arg-type]
        (lambda: MonocularDepthNoise(scale_sigma=-1.0), "scale_sigma"),
        (lambda: MonocularDepthNoise(hole_prob=2.0), "hole_prob"),
        (lambda: MonocularDepthNoise(quantization=-0.1), "quantization"),
        (lambda: Compose(), "injectors"),
        (lambda: Compose(3), "injectors[0]"),  # type: ignore[arg-type]
    ],
)
def test_invalid_parameters_rejected(factory: Any, argument: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        factory()
    assert info.value.argument == argument


def test_invalid_call_arguments_rejected() -> None:
    with pytest.raises(InvalidArgumentType, match="h="):
        GaussianNoise(0.1)([1.0, 2.0])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentType, match="index="):
        GaussianNoise(0.1)(torch.ones(2, 2), 1.0)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="dim="):
        GaussianNoise(0.1, dim=3)(torch.ones(2, 2))
    with pytest.raises(InvalidArgument, match="depth images"):
        MonocularDepthNoise()(torch.ones(2, 3, 4, 4))
    with pytest.raises(InvalidArgument, match="depth must be >= 0"):
        MonocularDepthNoise()(-torch.ones(2, 4, 4))


def test_pipeline_boundary_hook_applies_injector_at_every_boundary() -> None:
    torch.manual_seed(0)
    p = Pipeline(nn.Linear(4, 6), nn.Linear(6, 6), nn.Linear(6, 3))
    x = torch.randn(5, 4)
    with p.boundary_hook(BiasNoise(1.0)):
        acts = p.boundary_activations(x)
    clean = p.boundary_activations(x)
    for a, c in zip(acts, clean, strict=True):
        assert not torch.allclose(a, c)
    # boundary 0 is exactly the clean activation + 1
    torch.testing.assert_close(acts[0], clean[0] + 1.0)


def test_conserved_pipeline_accepts_injector() -> None:
    torch.manual_seed(0)
    p = Conserved(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3), energy=2.0)
    with p.boundary_hook(GaussianNoise(0.5, seed=1)):
        acts = p.boundary_activations(torch.randn(5, 4))
    torch.testing.assert_close(acts[0].pow(2).sum(-1), torch.full((5,), 2.0))


def test_inject_every_neuron_of_each_layer() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    x = torch.randn(5, 4)
    clean = model(x)
    seen: list[int] = []

    def record(h: torch.Tensor, index: int) -> torch.Tensor:
        seen.append(index)
        return h + 1.0

    with inject(model, record) as handle:
        noisy = model(x)
    assert handle.names == ["0", "2"] and seen == [0, 1]
    assert not torch.allclose(noisy, clean)
    torch.testing.assert_close(model(x), clean)  # removed


def test_inject_rejects_unknown_names() -> None:
    with pytest.raises(InvalidArgument, match="names="):
        inject(nn.Sequential(nn.Linear(2, 2)), GaussianNoise(0.1), names=["nope"])


def test_compose_applies_in_order() -> None:
    h = torch.ones(2, 3, dtype=torch.float64)
    y = Compose(BiasNoise(1.0), MultiplicativeNoise(0.0))(h)
    torch.testing.assert_close(y, 2 * h)


def test_depth_quantisation_and_holes() -> None:
    d = torch.full((2, 8, 8), 1.0, dtype=torch.float64)
    d[:, :, 4:] = 3.0  # one vertical depth edge between columns 3 and 4
    inj = MonocularDepthNoise(
        scale_sigma=0.0, pixel_sigma=0.0, edge_threshold=0.5, hole_prob=1.0, quantization=0.25
    )
    y = inj(d)
    holes = y == 0.0
    assert bool(holes[:, :, 3:5].all()) and not bool(holes[:, :, :3].any())
    assert not bool(holes[:, :, 5:].any())
    torch.testing.assert_close(y[~holes], d[~holes])


def _pipes() -> tuple[Pipeline, Conserved, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    mods = [nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)]
    x, y = torch.randn(32, 8), torch.randint(0, 4, (32,))
    return Pipeline(*mods), Conserved(*mods, energy=4.0), x, y


@pytest.mark.parametrize("attack", [fgsm, pgd])
@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("boundary", [None, 0, 1])
def test_attack_respects_energy_budget(attack: Any, norm: str, boundary: int | None) -> None:
    """``||delta||^2 <= budget * ||h||^2`` per sample; the attack raises the loss."""
    plain, cons, x, y = _pipes()
    for pipe in (plain, cons):
        budget = 0.05
        adv: Adversarial = attack(pipe, x, y, budget, norm=norm, boundary=boundary)
        h = x if boundary is None else _pre_boundary(pipe, x, boundary)
        e = h.double().pow(2).sum(-1)
        de = adv.delta.double().pow(2).sum(-1)
        rtol = tolerance(torch.float32).energy_rtol
        assert bool((de <= budget * e * (1 + rtol)).all())
        loss = nn.functional.cross_entropy
        with torch.no_grad(), pipe.boundary_hook(adv):
            attacked = loss(pipe(adv.x), y)
        with torch.no_grad():
            assert float(attacked) > float(loss(pipe(x), y))


def _pre_boundary(pipe: Pipeline, x: torch.Tensor, boundary: int) -> torch.Tensor:
    got: list[torch.Tensor] = []

    def grab(h: torch.Tensor, i: int) -> torch.Tensor:
        if i == boundary:
            got.append(h)
        return h

    with torch.no_grad(), pipe.boundary_hook(grab):
        pipe(x)
    return got[0]


def test_fgsm_linf_saturates_the_box() -> None:
    plain, _, x, y = _pipes()
    adv = fgsm(plain, x, y, 0.01, norm="linf")
    torch.testing.assert_close(adv.delta.abs(), adv.radius.expand_as(x))


def test_pgd_is_reproducible_and_stronger_than_fgsm() -> None:
    plain, _, x, y = _pipes()
    a1 = pgd(plain, x, y, 0.05, norm="l2", seed=3, steps=20)
    a2 = pgd(plain, x, y, 0.05, norm="l2", seed=3, steps=20)
    assert torch.equal(a1.delta, a2.delta)
    f = fgsm(plain, x, y, 0.05, norm="l2")
    loss = nn.functional.cross_entropy
    with torch.no_grad():
        assert float(loss(plain(a1.x), y)) >= float(loss(plain(f.x), y))


def test_attack_invalid_arguments() -> None:
    plain, _, x, y = _pipes()
    with pytest.raises(InvalidArgument, match="budget="):
        fgsm(plain, x, y, -0.1)
    with pytest.raises(InvalidArgument, match="norm="):
        fgsm(plain, x, y, 0.1, norm="l1")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="boundary="):
        fgsm(plain, x, y, 0.1, boundary=5)
    with pytest.raises(InvalidArgumentType, match="model="):
        fgsm(nn.Sequential(nn.Linear(8, 4)), x, y, 0.1, boundary=0)
    with pytest.raises(InvalidArgument, match="steps="):
        pgd(plain, x, y, 0.1, steps=0)


def test_attack_leaves_parameters_without_grad() -> None:
    plain, _, x, y = _pipes()
    pgd(plain, x, y, 0.1, steps=3)
    assert all(p.grad is None for p in plain.parameters())


def test_monodepth_shift_is_one_offset_per_image_with_sd_shift_sigma() -> None:
    from conserve_verified.noise import MonocularDepthNoise as M

    d = torch.full((4000, 1, 4, 4), 0.8, dtype=torch.float64)
    out = M(scale_sigma=0.0, pixel_sigma=0.0, shift_sigma=0.05, hole_prob=0.0, seed=1)(d)
    off = (out - d).flatten(1)
    # one offset per image (every pixel of an image moves by the same amount)
    torch.testing.assert_close(off, off[:, :1].expand_as(off))
    assert float(off[:, 0].std()) == pytest.approx(0.05, rel=0.05)
    assert abs(float(off[:, 0].mean())) < 0.005
    with pytest.raises(InvalidArgument, match="shift_sigma"):
        M(shift_sigma=-0.1)


def test_reference_scaled_noise_is_inner_noise_times_reference_rms() -> None:
    from conserve_verified.noise import ReferenceScaled

    ref = torch.tensor([[3.0, 4.0], [0.0, 2.0]])  # per-sample rms: sqrt(12.5), sqrt(2)
    h = torch.randn(2, 2)
    hook = ReferenceScaled(GaussianNoise(0.1, seed=3))
    hook.set_reference([ref])
    want = h + torch.tensor([[12.5**0.5], [2**0.5]]) * (GaussianNoise(0.1, seed=3)(h, 0) - h)
    torch.testing.assert_close(hook(h, 0), want)
    # boundaries without a reference are left alone; a batch mismatch is an error
    torch.testing.assert_close(hook(h, 1), h)
    with pytest.raises(InvalidArgument, match="h"):
        hook(torch.randn(3, 2), 0)
    with pytest.raises(InvalidArgumentType, match="inner"):
        ReferenceScaled(3.0)  # type: ignore[arg-type]
