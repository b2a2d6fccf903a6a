"""Tests of conserve_verified.energy_first (architectures, objectives, efficiency metric)
and of the analysis of experiments/energy_first.py on synthetic records."""

from __future__ import annotations

import math
import pathlib

import numpy as np
import pytest
import torch
from scipy import stats as st
from torch import nn

from conserve_verified.energy_first import (
    ARCHITECTURES,
    ENERGY_LAMBDA,
    FREE_ENERGY_BETA,
    KINETIC_LAMBDA,
    GaussianBoundary,
    activation_energy,
    build_model,
    curve_auc,
    efficiency_gain,
    kinetic_energy,
    objective,
    parameter_count,
    steps_to_target,
    supports,
    train_curve,
)
from conserve_verified.errors import InvalidArgument

SHAPES = {
    "digits": ((1, 8, 8), 10),
    "mnist1d": ((1, 40), 10),
    "breast-cancer": ((30,), 2),
    "wine": ((13,), 3),
    "fashion-mnist": ((1, 28, 28), 10),
}


# ------------------------------------------------------------- efficiency metric


def test_steps_to_target_interpolates_between_evaluations() -> None:
    steps, acc = [0, 10, 20, 30], [0.1, 0.4, 0.8, 0.9]
    r = steps_to_target(steps, acc, 0.6)
    assert not r.censored and r.steps == pytest.approx(10 + (0.6 - 0.4) / (0.8 - 0.4) * 10)
    assert steps_to_target(steps, acc, 0.8).steps == pytest.approx(20.0)
    # the first crossing counts, even if the curve dips afterwards
    assert steps_to_target([0, 10, 20], [0.0, 0.9, 0.2], 0.45).steps == pytest.approx(5.0)


def test_steps_to_target_censored_at_the_budget() -> None:
    r = steps_to_target([0, 10, 20, 30], [0.1, 0.4, 0.8, 0.85], 0.9)
    assert r.censored and r.steps == 30.0


def test_steps_to_target_reached_at_the_first_evaluation() -> None:
    r = steps_to_target([0, 5], [0.95, 0.97], 0.9)
    assert r == type(r)(0.0, False)


def test_steps_to_target_rejects_bad_curves() -> None:
    with pytest.raises(InvalidArgument, match="strictly increasing"):
        steps_to_target([0, 10, 10], [0.1, 0.2, 0.3], 0.2)
    with pytest.raises(InvalidArgument, match="equal 1-D lengths"):
        steps_to_target([0, 10], [0.1], 0.2)
    with pytest.raises(InvalidArgument, match="NaN"):
        steps_to_target([0, 10], [0.1, math.nan], 0.2)
    with pytest.raises(InvalidArgument, match="target"):
        steps_to_target([0, 10], [0.1, 0.2], math.inf)


def test_curve_auc_is_mean_accuracy_over_the_budget() -> None:
    assert curve_auc([0, 10, 30], [0.7, 0.7, 0.7]) == pytest.approx(0.7)
    assert curve_auc([0, 100], [0.0, 1.0]) == pytest.approx(0.5)
    assert curve_auc([0, 10, 20], [0.0, 1.0, 1.0]) == pytest.approx(0.75)
    assert curve_auc([5], [0.3]) == 0.3


def test_efficiency_gain_is_relative_mean_difference_with_paired_bootstrap_ci() -> None:
    b = [100.0, 120.0, 90.0, 110.0, 105.0]
    v = [80.0, 95.0, 85.0, 90.0, 70.0]
    e = efficiency_gain(b, v)
    assert e.mean == pytest.approx(100 * (np.mean(b) - np.mean(v)) / np.mean(b))
    assert e.low is not None and e.high is not None and e.low < e.mean < e.high
    assert e.p_value == pytest.approx(float(st.ttest_rel(b, v).pvalue))
    d = np.subtract(b, v)
    assert e.effect_size == pytest.approx(d.mean() / d.std(ddof=1))
    assert e.n == 5
    # the bootstrap resamples seeds: every resampled gain lies between the extreme pair ratios
    ratios = 100 * (1 - np.divide(v, b))
    assert ratios.min() - 1e-9 <= e.low and e.high <= ratios.max() + 1e-9
    # reproducible
    assert efficiency_gain(b, v) == e


def test_efficiency_gain_sign_and_degenerate_policies() -> None:
    slower = efficiency_gain([10.0, 11.0, 12.0], [20.0, 21.0, 25.0])
    assert slower.mean is not None and slower.mean < 0
    same = efficiency_gain([50.0, 50.0, 50.0], [50.0, 50.0, 50.0])
    assert (same.mean, same.low, same.high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    shifted = efficiency_gain([50.0, 60.0, 70.0], [40.0, 50.0, 60.0])
    assert shifted.p_value == 0.0
    one = efficiency_gain([10.0], [5.0])
    assert one.mean == 50.0 and one.low is None and one.p_value is None
    with pytest.raises(InvalidArgument, match="> 0"):
        efficiency_gain([0.0, 1.0], [1.0, 1.0])
    with pytest.raises(InvalidArgument, match="equal lengths"):
        efficiency_gain([1.0, 2.0], [1.0])


# ------------------------------------------------------------------ architectures


@pytest.mark.parametrize("dataset", sorted(SHAPES))
def test_parameter_counts_matched_within_5_percent(dataset: str) -> None:
    shape, k = SHAPES[dataset]
    for arch, spec in ARCHITECTURES.items():
        if spec.baseline is None or not supports(arch, shape):
            continue
        n_v = parameter_count(build_model(arch, shape, k))
        n_b = parameter_count(build_model(spec.baseline, shape, k))
        assert abs(n_v - n_b) / n_b <= 0.05, (arch, n_v, n_b)
    # the two conventional MLP baselines have the same layer shapes
    assert parameter_count(build_model("resmlp", shape, k)) == parameter_count(
        build_model("mlp", shape, k)
    )


def test_same_seed_gives_the_same_initial_weights_within_the_mlp_family() -> None:
    def weights(arch: str) -> list[torch.Tensor]:
        torch.manual_seed(3)
        m = build_model(arch, (1, 8, 8), 10)
        return [p.detach().clone() for n, p in m.named_parameters() if "log_sigma" not in n]

    ref = weights("mlp")
    for arch in ("mlp+energy", "mlp+conserved", "mlp+free_energy", "resmlp", "resmlp+least_action"):
        got = weights(arch)
        assert len(got) == len(ref)
        for a, b in zip(got, ref, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_cnn_needs_image_or_signal_inputs() -> None:
    assert supports("cnn", (1, 40)) and supports("cnn+conserved", (3, 8, 8))
    assert not supports("cnn", (30,)) and supports("mlp", (30,))
    with pytest.raises(InvalidArgument, match="tabular has none"):
        build_model("cnn+conserved", (13,), 3)
    with pytest.raises(InvalidArgument, match="unknown architecture"):
        build_model("transformer", (13,), 3)


def _tiny_resmlp() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = build_model("resmlp+least_action", (3,), 2, width=4, depth=4)
    x = torch.randn(5, 3)
    y = torch.tensor([0, 1, 1, 0, 1])
    return model, x, y


@torch.no_grad()
def test_kinetic_term_equals_its_definition_on_a_tiny_network() -> None:
    model, x, y = _tiny_resmlp()
    stem, r1, r2, head = model.stages  # type: ignore[attr-defined]
    lin0 = stem[1]
    h0 = torch.relu(x @ lin0.weight.T + lin0.bias)
    h1 = h0 + torch.relu(h0 @ r1.linear.weight.T + r1.linear.bias)
    h2 = h1 + torch.relu(h1 @ r2.linear.weight.T + r2.linear.bias)
    # K = sum_k mean_i ||h_{k+1}[i] - h_k[i]||^2 / n, written out element by element
    k_manual = sum(
        sum(float(((b[i] - a[i]) ** 2).sum()) / 4 for i in range(5)) / 5
        for a, b in ((h0, h1), (h1, h2))
    )
    assert float(kinetic_energy([h0, h1, h2])) == pytest.approx(k_manual, rel=1e-6)
    logits = h2 @ head.weight.T + head.bias
    ce = float(nn.functional.cross_entropy(logits, y))
    total = float(objective("resmlp+least_action", model, x, y))  # type: ignore[arg-type]
    assert total == pytest.approx(ce + KINETIC_LAMBDA * k_manual, rel=1e-6)
    plain = float(objective("resmlp", model, x, y))  # type: ignore[arg-type]
    assert plain == pytest.approx(ce, rel=1e-6)


def test_kinetic_energy_of_a_constant_trajectory_is_zero_and_shapes_must_agree() -> None:
    h = torch.randn(3, 4)
    assert float(kinetic_energy([h, h, h])) == 0.0
    assert float(kinetic_energy([h])) == 0.0
    with pytest.raises(InvalidArgument, match="equal shapes"):
        kinetic_energy([h, torch.randn(3, 5)])


@torch.no_grad()
def test_energy_objective_adds_lambda_times_mean_per_feature_energy() -> None:
    torch.manual_seed(1)
    model = build_model("mlp+energy", (6,), 3, width=5, depth=3)
    x, y = torch.randn(7, 6), torch.tensor([0, 1, 2, 0, 1, 2, 0])
    s0, s1, head = model.stages  # type: ignore[attr-defined]
    h0 = s0(x)
    h1 = s1(h0)
    e = (h0.pow(2).sum(1).mean() / 5 + h1.pow(2).sum(1).mean() / 5) / 2
    assert float(activation_energy([h0, h1])) == pytest.approx(float(e), rel=1e-6)
    ce = nn.functional.cross_entropy(head(h1), y)
    got = objective("mlp+energy", model, x, y)  # type: ignore[arg-type]
    assert float(got) == pytest.approx(float(ce + ENERGY_LAMBDA * e), rel=1e-6)


@torch.no_grad()
def test_free_energy_kl_is_the_closed_form_gaussian_kl() -> None:
    g = GaussianBoundary(3, sigma0=0.5)
    mu = torch.tensor([[0.0, 1.0, -2.0], [0.5, 0.0, 0.0]])
    g.eval()
    assert torch.equal(g(mu), mu)  # evaluation uses the mean
    s2 = 0.25
    kl = 0.5 * (mu.pow(2) + s2 - 1.0 - math.log(s2))
    assert float(g.kl) == pytest.approx(float(kl.mean()), rel=1e-6)
    g.train()
    torch.manual_seed(0)
    z = g(mu)
    assert not torch.equal(z, mu) and float((z - mu).std()) == pytest.approx(0.5, abs=0.4)


@torch.no_grad()
def test_free_energy_objective_is_ce_plus_beta_kl() -> None:
    torch.manual_seed(2)
    model = build_model("mlp+free_energy", (6,), 3, width=5, depth=3)
    model.eval()
    x, y = torch.randn(4, 6), torch.tensor([0, 1, 2, 0])
    loss = objective("mlp+free_energy", model, x, y)  # type: ignore[arg-type]
    kls = [m.kl for m in model.modules() if isinstance(m, GaussianBoundary)]
    ce = nn.functional.cross_entropy(model(x), y)
    assert len(kls) == 2
    assert float(loss) == pytest.approx(float(ce + FREE_ENERGY_BETA * torch.stack(kls).mean()))


@torch.no_grad()
def test_conserved_mlp_boundaries_carry_unit_rms_per_feature() -> None:
    torch.manual_seed(0)
    model = build_model("mlp+conserved", (1, 8, 8), 10, width=16)
    hs = model.boundary_activations(torch.rand(9, 1, 8, 8))  # type: ignore[operator]
    for h in hs:
        torch.testing.assert_close(h.pow(2).mean(1), torch.ones(9), rtol=1e-5, atol=1e-5)


def test_train_curve_evaluates_at_zero_every_interval_and_the_budget() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(40, 5), torch.randint(0, 2, (40,))

    def run() -> list[float]:
        torch.manual_seed(0)
        m = build_model("mlp", (5,), 2, width=8, depth=3)
        c = train_curve("mlp", m, x, y, x, y, steps=7, eval_every=3, seed=4, batch_size=16)
        assert c.steps == [0, 3, 6, 7] and len(c.acc) == 4 and c.train_seconds > 0
        return c.acc

    assert run() == run()
    with pytest.raises(InvalidArgument, match="steps"):
        train_curve("mlp", build_model("mlp", (5,), 2), x, y, x, y, steps=0, eval_every=1, seed=0)


# ------------------------------------------------- experiment analysis (synthetic)


def _records(speedup: float, seeds: int = 5) -> list[dict[str, object]]:
    """Synthetic learning curves: every energy-first variant reaches each accuracy
    ``speedup`` times sooner than its baseline (a saturating exponential)."""
    recs: list[dict[str, object]] = []
    from experiments.energy_first import _MLP_FAMILY

    steps = list(range(0, 301, 2))
    for ds, scale in (("digits", 60.0), ("wine", 10.0), ("mnist1d", 120.0)):
        for arch in _MLP_FAMILY:
            fast = ARCHITECTURES[arch].baseline is not None
            for seed in range(seeds):
                # the seed's own variation, shared by the arms (they are paired by seed)
                noise = np.random.default_rng(seed).normal()
                tau = scale * (1 + 0.05 * noise) / (speedup if fast else 1.0)
                acc = [0.95 * (1 - math.exp(-s / tau)) for s in steps]
                recs.append(
                    {
                        "experiment": "energy_first",
                        "config": {"arch": arch, "dataset": ds, "schedule": "short", "seed": seed},
                        "metrics": {
                            "applicable": True,
                            "curve_steps": steps,
                            "curve_acc": acc,
                            "final_accuracy": acc[-1],
                            "auc": curve_auc(steps, acc),
                            "train_seconds": 1.0 + 0.01 * seed,
                            "parameters": 100,
                        },
                    }
                )
    return recs


def test_experiment_spec_is_valid() -> None:
    import experiments.energy_first as ef
    from conserve_verified.runner.claims import claim_ids
    from conserve_verified.runner.spec import cells, validate_module

    exp = validate_module(ef, claim_ids())
    offline = ["digits", "mnist1d", "breast-cancer", "wine"]
    assert ef.QUICK_DATASETS[:4] == offline
    assert ("fashion-mnist" in ef.QUICK_DATASETS) == ef._fashion_installed()
    assert len(cells(exp, "quick")) == 6 * len(ef.QUICK_DATASETS) * 5
    assert len(cells(exp, "paper")) == 8 * 5 * 10
    assert all(len(exp.grids[p]["seed"]) >= 5 for p in ("quick",))
    assert len(exp.grids["paper"]["seed"]) == 10
    for profile, grid in exp.grids.items():
        for sched in grid["schedule"]:
            assert set(grid["dataset"]) <= set(ef.SCHEDULES[sched]), profile


def test_claim_rows_find_a_known_speedup_and_report_renders(tmp_path: pathlib.Path) -> None:
    import experiments.energy_first as ef

    recs = _records(speedup=1.25)
    rows = ef.claim_rows(recs)  # type: ignore[arg-type]
    m3 = [r for r in rows if r["claim"] == "M3"]
    assert len(m3) == 3 * 4  # 3 datasets x 4 MLP-family variants
    for r in m3:
        # 1.25x faster everywhere: gain = 1 - 1/1.25 = 20% (interpolation error < 2 pp)
        assert r["mean"] == pytest.approx(20.0, abs=2.0)
        assert r["verdict"] == "reproduced" and r["p_holm"] is not None
    m2 = [r for r in rows if r["claim"] == "M2"]
    assert len(m2) == 2 and all(0.0 <= r["low"] <= r["high"] <= 1 for r in m2)
    arch, inter = (next(r for r in m2 if k in r["quantity"]) for k in ("architecture (", "x_d"))
    # a uniform speed-up is an architecture main effect, not an interaction with the dataset
    assert arch["low"] > 0.5 and inter["high"] < 0.2
    md = ef.report(recs, tmp_path)  # type: ignore[arg-type]
    assert "gain % [95% CI]" in md and "partial η²" in md and "MNIST-1D" in md
    for ds in ("digits", "wine", "mnist1d"):
        assert (tmp_path / f"energy_first_curves_{ds}.png").is_file()
        assert f"energy_first_curves_{ds}.png" in md


def test_claim_rows_no_speedup_is_not_reproduced_or_inconclusive() -> None:
    import experiments.energy_first as ef

    rows = ef.claim_rows(_records(speedup=1.0))  # type: ignore[arg-type]
    for r in (r for r in rows if r["claim"] == "M3"):
        assert abs(r["mean"]) < 5.0
        assert r["verdict"] in ("not reproduced", "consistent but inconclusive")


def test_not_applicable_cells_are_left_out() -> None:
    import experiments.energy_first as ef

    recs = _records(speedup=1.25, seeds=2)
    recs.append(
        {
            "experiment": "energy_first",
            "config": {"arch": "cnn", "dataset": "wine", "schedule": "short", "seed": 0},
            "metrics": {"applicable": False, "reason": "tabular"},
        }
    )
    assert all(c["arch"] != "cnn+conserved" for c in ef.comparisons(recs))  # type: ignore[arg-type]
