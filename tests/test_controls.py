"""Tests of the normalisation-only control, the clean-RMS SNR matching and the attribution."""

from __future__ import annotations

import pytest
import torch

from conserve_verified import InvalidArgument, Pipeline, conserve
from conserve_verified.data import Dataset
from conserve_verified.models import (
    build_pipeline,
    mlp_stages,
    resnet18_stages,
    without_reprojection,
)
from conserve_verified.noise import GaussianNoise, ReferenceScaled
from conserve_verified.runner.conservation import (
    attribution,
    eval_pipelines,
    make_injector,
    noisy_accuracies,
    split_arm,
)
from conserve_verified.runner.workloads import train_classifier


def _conserved(kind: str) -> tuple[Pipeline, torch.Tensor]:
    torch.manual_seed(0)
    if kind == "mlp":
        stages = mlp_stages((1, 8, 8), 10, 16, 4)
    else:
        stages = resnet18_stages((1, 8, 8), 10, 4, False)
    return build_pipeline(stages, "conserved", (1, 8, 8)), torch.rand(6, 1, 8, 8)


@pytest.mark.parametrize("kind", ["mlp", "resnet"])
def test_control_differs_from_conserved_only_by_post_noise_reprojection(kind: str) -> None:
    model, x = _conserved(kind)
    control = without_reprojection(model)
    # same weights: the very same parameter tensors
    assert [id(p) for p in control.parameters()] == [id(p) for p in model.stages.parameters()]
    noise = GaussianNoise(0.3, seed=1)
    with torch.no_grad():
        # without noise the two compute the same function (C_E is the identity on its shell, T2)
        torch.testing.assert_close(control(x), model(x), rtol=1e-5, atol=1e-5)
        # with noise: conserved(x; n) == control(x; C_E ∘ n) -- the only difference
        with model.boundary_hook(noise):
            want = model(x)
        noise.reset()

        def reproject(h: torch.Tensor, i: int) -> torch.Tensor:
            out: torch.Tensor = model.conservers[i](noise(h, i))
            return out

        with control.boundary_hook(reproject):
            got = control(x)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        noise.reset()
        with control.boundary_hook(noise):
            plain_noise = control(x)
    assert not torch.allclose(plain_noise, want)


def test_control_of_a_separately_trained_model_has_the_conserved_weights() -> None:
    # Trained clean, the post-hook C_E acts on the shell, so a control trained on its own
    # ends with the same weights as the conserved arm (why one trained model serves both).
    g = torch.Generator().manual_seed(0)
    x = torch.rand(128, 1, 8, 8, generator=g)
    y = torch.randint(0, 10, (128,), generator=g)
    data = Dataset("t", x, y, x[:32], y[:32], 10, (1, 8, 8))
    weights = []
    for as_control in (False, True):
        torch.manual_seed(3)
        model = build_pipeline(mlp_stages((1, 8, 8), 10, 16, 3), "conserved", (1, 8, 8))
        net = without_reprojection(model) if as_control else model
        train_classifier(net, data, epochs=2, seed=3)
        weights.append([p.detach().clone() for p in model.stages.parameters()])
    for a, b in zip(*weights, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_without_reprojection_rejects_a_plain_pipeline() -> None:
    with pytest.raises(InvalidArgument, match="pipeline"):
        without_reprojection(Pipeline(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)))


def test_eval_pipelines_of_conserved_are_conserved_and_control() -> None:
    model, _ = _conserved("mlp")
    arms = eval_pipelines(model, "conserved")
    assert list(arms) == ["conserved", "normalized"] and arms["conserved"] is model
    assert type(arms["normalized"]) is Pipeline
    assert list(eval_pipelines(model, "baseline")) == ["baseline"]


def test_snr_matched_scale_uses_the_clean_rms() -> None:
    # a deterministic unit "noise" (+sigma on every feature) makes the scale visible exactly
    sigma = 0.5

    def inner(h: torch.Tensor, _i: int) -> torch.Tensor:
        return h + sigma

    clean = [torch.full((2, 4), 3.0), torch.full((2, 4), 2.0)]
    hook = ReferenceScaled(inner)
    hook.set_reference(clean)
    noisy_h = torch.full((2, 4), 10.0)  # already perturbed upstream: rms 10, clean rms 2
    out = hook(noisy_h, 1)
    torch.testing.assert_close(out - noisy_h, torch.full((2, 4), sigma * 2.0))
    # not the rms of the (noisy) activation it receives
    assert not torch.allclose(out - noisy_h, torch.full((2, 4), sigma * 10.0))


def test_relative_convention_noise_has_snr_one_over_sigma_squared_against_clean() -> None:
    torch.manual_seed(0)
    h = torch.randn(2000, 16) * torch.linspace(0.5, 3.0, 2000)[:, None]
    hook = make_injector("gaussian", 0.2, "relative", seed=5)
    assert isinstance(hook, ReferenceScaled)
    hook.set_reference([h])
    noise = hook(h * 4.0, 0) - h * 4.0  # the incoming activation is 4x the clean one
    ratio = noise.pow(2).sum() / h.pow(2).sum()
    assert float(ratio) == pytest.approx(0.04, rel=0.05)


def test_noisy_accuracies_relative_equals_manual_clean_reference() -> None:
    model, x = _conserved("mlp")
    base = Pipeline(*model.stages)  # any plain pipeline with two+ boundaries
    y = torch.randint(0, 10, (x.shape[0],), generator=torch.Generator().manual_seed(0))
    got = noisy_accuracies(base, x, y, "gaussian", 0.3, "relative", [11, 12], torch.device("cpu"))
    want = []
    for s in (11, 12):
        with torch.no_grad():
            clean = base.boundary_activations(x)
            hook = ReferenceScaled(GaussianNoise(0.3, seed=s))
            hook.set_reference(clean)
            with base.boundary_hook(hook):
                want.append(float((base(x).argmax(1) == y).float().mean()))
    assert got == pytest.approx(want)


def test_attribution_effects_add_up_to_the_total() -> None:
    base = {0: 50.0, 1: 55.0, 2: 53.0}
    norm = {0: 70.0, 1: 71.0, 2: 74.0}
    cons = {0: 70.5, 1: 71.0, 2: 74.5}
    est = attribution(base, norm, cons)
    assert est["total"].mean == pytest.approx(est["conservation"].mean + est["normalisation"].mean)
    assert est["normalisation"].n == 3


def test_split_arm_reads_the_energy_axis() -> None:
    assert split_arm("conserved") == ("conserved", 1.0)
    assert split_arm("conserved:E=4") == ("conserved", 4.0)
    assert split_arm("conserved:E=baseline") == ("conserved", "baseline")
    assert split_arm("baseline") == ("baseline", 1.0)
    with pytest.raises(InvalidArgument, match="arm"):
        split_arm("conserved:E=-1")


def test_conserve_is_identity_on_its_shell() -> None:
    # the fact (T2) the single-model control relies on
    v = conserve(torch.randn(4, 8), 8.0)
    torch.testing.assert_close(conserve(v, 8.0), v)


def test_e2_noise_seed_depends_on_depth() -> None:
    from experiments.e2_depth import noise_seed

    assert noise_seed(0, 2, 0, 0) != noise_seed(0, 3, 0, 0)
    assert (
        len(
            {
                noise_seed(s, d, c, k)
                for s in range(3)
                for d in range(2, 6)
                for c in range(2)
                for k in range(20)
            }
        )
        == 3 * 4 * 2 * 20
    )
