"""The noise predictor on real architectures: residual blocks, BatchNorm, pooling, hooks.

Predictor-vs-Monte-Carlo comparisons use 4,000 noise samples per input and the
issue's acceptance bound, 10% relative error of the per-tap mean noise
variance, in the first-order regime (small noise).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from conserve_verified import Conserved, InvalidArgument, Pipeline, conserve_boundaries
from conserve_verified.models import build_pipeline, cnn_stages, resnet18_stages
from conserve_verified.noise import (
    BiasNoise,
    Compose,
    DropoutNoise,
    GaussianNoise,
    MultiplicativeNoise,
)
from conserve_verified.propagation import LayerNoise, monte_carlo, predict

SAMPLES = 4000
REL = 0.10


def _x(shape: tuple[int, ...] = (1, 8, 8), b: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.randn(b, *shape, generator=torch.Generator().manual_seed(seed))


def _assert_agree(pred: list[LayerNoise], mc: list[LayerNoise], rel: float = REL) -> None:
    assert [p.name for p in pred] == [m.name for m in mc]
    for p, m in zip(pred, mc, strict=True):
        torch.testing.assert_close(p.signal, m.signal, rtol=1e-5, atol=1e-6)
        if m.noise_variance == 0.0:
            assert p.noise_variance == 0.0, p.name
            continue
        err = abs(p.noise_variance / m.noise_variance - 1.0)
        assert err <= rel, f"{p.name}: predicted {p.noise_variance:.4g} vs {m.noise_variance:.4g}"


def _calibrated(model: nn.Module, shape: tuple[int, ...]) -> nn.Module:
    """Give BatchNorm layers non-trivial running statistics, then eval mode."""
    model.train()
    with torch.no_grad():
        for k in range(3):
            model(2.0 * _x(shape, 32, seed=10 + k) + 0.5)
    return model.eval()


class _Wrap(nn.Module):
    """A custom container: forces the traced (factor-form) path on any model."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.inner(x)
        return out


class _Twice(nn.Module):
    """``y = h + h`` with ``h = conv(x)``: both summands carry the same noise."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        return h + h


@pytest.mark.parametrize("batchnorm", [True, False])
@pytest.mark.parametrize("arm", ["baseline", "conserved"])
def test_resnet18_boundary_noise_predicted_within_10_percent(batchnorm: bool, arm: str) -> None:
    torch.manual_seed(0)
    stages = resnet18_stages((1, 8, 8), 10, base_width=2, batchnorm=batchnorm)
    model = _calibrated(build_pipeline(stages, arm, (1, 8, 8)), (1, 8, 8))
    noise: dict[str, Any] = {"boundary_noise": GaussianNoise(0.02, seed=1)}
    x = _x()
    _assert_agree(predict(model, x, **noise), monte_carlo(model, x, samples=SAMPLES, **noise))


def test_cnn_neuron_noise_predicted_within_10_percent() -> None:
    torch.manual_seed(0)
    model = Pipeline(*cnn_stages((1, 8, 8), 10, width=4, depth=3)).eval()
    noise: dict[str, Any] = {"neuron_noise": GaussianNoise(0.02, seed=3)}
    x = _x()
    _assert_agree(
        predict(_Wrap(model), x, **noise), monte_carlo(_Wrap(model), x, samples=SAMPLES, **noise)
    )


@pytest.mark.parametrize(
    "noise",
    [
        GaussianNoise(0.05, seed=1),
        GaussianNoise(0.05, correlation=0.5, seed=1),
        GaussianNoise(0.05, relative=True, seed=1),
        MultiplicativeNoise(0.05, correlation=0.3, seed=1),
        DropoutNoise(0.1, seed=1),
        Compose(BiasNoise(0.1, mode="random"), GaussianNoise(0.05, seed=2)),
    ],
    ids=["additive", "correlated", "relative", "multiplicative", "dropout", "bias+additive"],
)
def test_factor_form_equals_covariance_path_on_a_chain(noise: Any) -> None:
    # the same rules in two representations: full covariance (chains) and factor form (graphs)
    torch.manual_seed(0)
    mods = [
        nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU()),
        nn.Sequential(nn.AvgPool2d(2), nn.Flatten(), nn.Linear(48, 10), nn.Tanh()),
        nn.Linear(10, 4),
    ]
    chain = _calibrated(Pipeline(*mods), (1, 8, 8))
    x = _x()
    cov = predict(chain, x, neuron_noise=noise)
    factor = predict(_Wrap(chain.stages[0]).eval(), x, neuron_noise=noise)
    direct = predict(chain.stages[0], x, neuron_noise=noise)
    assert [t.name for t in factor] == [f"inner.{t.name}" for t in direct]
    for a, b in zip(direct, factor, strict=True):
        torch.testing.assert_close(a.variance, b.variance, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(a.mean, b.mean, rtol=1e-9, atol=1e-12)
    assert len(cov) > len(direct)


def test_residual_addition_keeps_cross_covariance() -> None:
    # Var[h + h] = 4 Var[h], not 2 Var[h] (what independent summands would give)
    x = _x()
    noise = GaussianNoise(0.1, seed=1, boundaries=[0])  # on the first conv only
    taps = predict(_Twice().eval(), x, neuron_noise=noise)
    assert [t.name for t in taps] == ["conv:Conv2d"]
    torch.testing.assert_close(taps[0].variance, torch.full_like(taps[0].variance, 0.01))
    head = nn.Conv2d(2, 1, 1, bias=False)
    deeper = predict(nn.Sequential(_Twice(), head).eval(), x, neuron_noise=noise)
    assert [t.name for t in deeper] == ["0.conv:Conv2d", "1:Conv2d"]
    w = head.weight.detach().double().flatten()
    expected = 4 * 0.01 * float(w.pow(2).sum())
    torch.testing.assert_close(
        deeper[-1].variance, torch.full_like(deeper[-1].variance, expected), rtol=1e-12, atol=0
    )


def test_bias_noise_is_predicted_as_a_mean_shift() -> None:
    torch.manual_seed(0)
    stages = resnet18_stages((1, 8, 8), 10, base_width=2, batchnorm=False)
    model = build_pipeline(stages, "baseline", (1, 8, 8)).eval()
    noise = {"boundary_noise": Compose(BiasNoise(0.2, mode="random"), GaussianNoise(0.01, seed=1))}
    x = _x()
    pred, mc = predict(model, x, **noise), monte_carlo(model, x, samples=SAMPLES, **noise)
    for p, m in zip(pred, mc, strict=True):
        assert p.bias is not None and m.bias is not None
        shift = float(m.bias.pow(2).mean())
        if shift > 1e-8:
            assert abs(float(p.bias.pow(2).mean()) / shift - 1.0) <= REL, p.name
            assert p.noise_power > p.noise_variance
    assert float(pred[-1].bias.abs().max()) > 0.0  # type: ignore[union-attr]


def test_hooked_model_boundaries_and_their_noise_are_predicted() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(*cnn_stages((1, 8, 8), 10, width=4, depth=3)).eval()
    x = _x()
    with conserve_boundaries(model, ["0", "1"], energy=8.0, hook=GaussianNoise(0.02, seed=4)):
        pred = predict(model, x)
        mc = monte_carlo(model, x, samples=SAMPLES)
    assert [t.name for t in pred if t.name.endswith(":boundary")] == ["0:boundary", "1:boundary"]
    _assert_agree(pred, mc)
    tap = next(t for t in pred if t.name == "0:boundary")
    assert tap.linearity is not None and float(tap.linearity.max()) < 0.05
    torch.testing.assert_close(
        tap.signal.pow(2).sum(-1), torch.full((3,), 8.0, dtype=torch.float64)
    )


def test_max_pooling_is_propagated_to_first_order() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
    noise: dict[str, Any] = {"neuron_noise": GaussianNoise(0.01, seed=1)}
    x = _x()
    _assert_agree(
        predict(_Wrap(model).eval(), x, **noise),
        monte_carlo(_Wrap(model).eval(), x, samples=SAMPLES, **noise),
    )


def test_unsupported_operation_is_refused_naming_the_node() -> None:
    class Square(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * x

    with pytest.raises(InvalidArgument, match=r"at mul .*not supported by the noise predictor"):
        predict(Square(), _x())


def test_linearity_threshold_is_refused_for_traced_models() -> None:
    model = Conserved(
        *build_pipeline(
            resnet18_stages((1, 8, 8), 10, base_width=2, batchnorm=False), "baseline", (1, 8, 8)
        ).stages,
        energy=4.0,
        dim=None,
    ).eval()
    with pytest.raises(InvalidArgument, match=r"linearity_threshold=0\.02: out-of-regime"):
        predict(model, _x(), boundary_noise=GaussianNoise(0.01), linearity_threshold=0.02)
    taps = predict(model, _x(), boundary_noise=GaussianNoise(0.01))
    assert all(t.linearity is not None for t in taps if t.name.startswith("boundary"))


def test_training_mode_batchnorm_is_refused() -> None:
    model = _Wrap(nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)))
    with pytest.raises(InvalidArgument, match=r"training mode.*model\.eval\(\)"):
        predict(model, _x())


@pytest.mark.slow
def test_propagation_arch_experiment_smoke_meets_the_error_bound(tmp_path: Any) -> None:
    import experiments.propagation_arch as module
    from conserve_verified.runner import RunContext, cells, validate_module

    exp = validate_module(module)
    ctx = RunContext(profile="smoke", out_dir=tmp_path)
    records = [
        {"experiment": exp.name, "config": cfg, "metrics": exp.run_cell(cfg, ctx)}
        for cfg in cells(exp, "smoke")
    ]
    rows = module.validation_rows(records)
    assert {(r["model"], r["arm"]) for r in rows} == {
        (m, a) for m in ("resnet18-bn", "resnet18", "cnn") for a in ("baseline", "conserved")
    }
    for r in rows:
        assert r["error_ok"], r
        assert r["boundaries"] == (5 if r["model"].startswith("resnet18") else 2)
        # the first-order predictor is measured against the same Monte Carlo run
        assert r["first_order_max_rel_error"] is not None and r["first_order_speedup"] > 0
    for rec in records:
        first = rec["metrics"]["first_order"]
        assert [b["tap"] for b in first["boundaries"]] == [
            b["tap"] for b in rec["metrics"]["boundaries"]
        ]
        assert [b["monte_carlo"] for b in first["boundaries"]] == [
            b["monte_carlo"] for b in rec["metrics"]["boundaries"]
        ]
    text = exp.report(records, tmp_path)
    assert "| resnet18-bn | conserved | 5 |" in text and "first-order speed ratio" in text


def test_propagation_arch_report_reads_records_without_the_first_order_predictor(
    tmp_path: Any,
) -> None:
    import experiments.propagation_arch as module

    metrics = {
        "clean_accuracy": 0.5,
        "boundaries": [{"tap": "boundary0", "features": 4, "rel_error": 0.01}],
        "max_rel_error": 0.01,
        "speedup": 12.0,
    }
    records: list[Any] = [
        {
            "experiment": module.NAME,
            "config": {"model": "cnn", "arm": "baseline"},
            "metrics": metrics,
        }
    ]
    (row,) = module.validation_rows(records)
    assert row["first_order_max_rel_error"] is None and row["first_order_speedup"] is None
    assert row["error_ok"] and not row["speed_ok"] and not row["first_order_error_ok"]
    cfg = {"sigma": 0.02, "inputs": 1, "samples": 10, "width": 2, "epochs": 1}
    text = module.report([{**records[0], "config": {**records[0]["config"], **cfg}}], tmp_path)
    assert (
        "| cnn | baseline | 1 | 4 | 50.0% | – | 1.00% | – | yes | 12.0× | **no** | 1 "
        "| – | – | – | – | – | 1 |" in text
    )
    assert row["equal_cost_samples"] is None  # the record's config has no sample count


def test_propagation_arch_resolved_counts_errors_beyond_two_monte_carlo_standard_errors() -> None:
    import experiments.propagation_arch as module

    def boundary(err: float, se: float) -> dict[str, Any]:
        resolved = err > module.RESOLVED_SE * se
        return {"features": 4, "rel_error": err, "mc_rel_se": se, "resolved": resolved}

    first = {
        "boundaries": [boundary(0.3, 0.01), boundary(0.02, 0.005)],
        "max_rel_error": 0.3,
        "speedup": 9.0,
    }
    metrics = {
        "clean_accuracy": 0.5,
        "boundaries": [boundary(0.001, 0.004), boundary(0.05, 0.01)],
        "max_rel_error": 0.05,
        "speedup": 4.0,
        "first_order": first,
    }
    rec = {"experiment": module.NAME, "config": {"model": "cnn", "arm": "baseline"}}
    (row,) = module.validation_rows([{**rec, "metrics": metrics}, {**rec, "metrics": metrics}])
    assert row["resolved"] == "2/4"  # 0.05 > 2 x 0.01 at each seed; 0.001 < 2 x 0.004
    assert row["first_order_resolved"] == "4/4"
    assert row["mc_rel_se"] == 0.01
    assert row["equal_cost_samples"] is None


def test_propagation_arch_equal_cost_samples_is_samples_over_the_speed_ratio() -> None:
    import experiments.propagation_arch as module

    def record(speedup: float) -> dict[str, Any]:
        metrics = {
            "clean_accuracy": 0.5,
            "boundaries": [{"features": 4, "rel_error": 0.01}],
            "max_rel_error": 0.01,
            "speedup": speedup,
        }
        config = {"model": "cnn", "arm": "baseline", "samples": 2000}
        return {"experiment": module.NAME, "config": config, "metrics": metrics}

    (row,) = module.validation_rows([record(8.0), record(10.0), record(20.0)])
    assert row["equal_cost_samples"] == 200.0  # median of 250, 200 and 100
    assert row["speedup"] == 10.0


def test_propagation_arch_boundary_rows_carry_the_monte_carlo_standard_error() -> None:
    import experiments.propagation_arch as module

    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4))
    pipe = Pipeline(*model)
    x = torch.randn(2, 6, generator=torch.Generator().manual_seed(0))
    noise = GaussianNoise(0.05, seed=3)
    mc = monte_carlo(pipe, x, boundary_noise=noise, samples=400)
    rows = module._boundary_rows(predict(pipe, x, boundary_noise=noise), mc)
    assert rows
    for r, m in zip(rows, [t for t in mc if t.name.startswith("boundary")], strict=True):
        assert r["monte_carlo_se"] == m.noise_variance_se
        assert 0 < r["mc_rel_se"] < 0.5
        assert r["resolved"] == (r["rel_error"] > module.RESOLVED_SE * r["mc_rel_se"])
