"""Smoke run of ``experiments/propagation.py``: protocol, determinism of the model, report."""

from __future__ import annotations

import pathlib

import pytest

from conserve_verified.runner import RunContext, cells, validate_module


@pytest.mark.slow
def test_propagation_experiment_smoke(tmp_path: pathlib.Path) -> None:
    import experiments.propagation as module

    exp = validate_module(module)
    ctx = RunContext(profile="smoke", out_dir=tmp_path)
    records = [
        {"experiment": exp.name, "config": cfg, "metrics": exp.run_cell(cfg, ctx)}
        for cfg in cells(exp, "smoke")
    ]
    text = exp.report(records, tmp_path)
    assert "(bound 10%): **PASS**" in text
    assert (tmp_path / "propagation_predicted_vs_measured.png").stat().st_size > 0
    assert (tmp_path / "propagation_depth.png").stat().st_size > 0
    runs = next(r for r in records if r["config"]["part"] == "validation")["metrics"]["runs"]
    assert len(runs) == 16 and all(run["speedup"] > 0 for run in runs)
    # every tap with a relative error carries the Monte Carlo estimate's own standard error
    taps = [t for run in runs for t in run["taps"] if t["rel_error"] is not None]
    assert taps and all(0 < t["mc_rel_se"] < 1 for t in taps)
    assert all(t["resolved"] == (t["rel_error"] > 2 * t["mc_rel_se"]) for t in taps)
    assert f"Resolved: {sum(t['resolved'] for t in taps)} of {len(taps)} tap errors" in text
    depth = next(r for r in records if r["config"]["part"] == "depth")["metrics"]
    assert 0.0 <= depth["test_accuracy"] <= 1.0
    conserved = depth["arms"]["conserved"]
    assert all(v is not None and v > 0 for v in conserved["linearity"])
    assert all(v is not None and 0.0 <= v <= 1.0 for v in conserved["outside_share"])
    assert all(v is None for v in depth["arms"]["plain"]["linearity"])
    assert "boundaries outside regime" in text and "LINEARITY_THRESHOLD" in text


def test_propagation_resolution_line_counts_resolved_errors() -> None:
    import experiments.propagation as module

    assert module._resolution_line([True, False, False]).startswith("Resolved: 1 of 3 tap errors")
    assert module._resolution_line([]) == "Monte Carlo standard errors: not recorded."


def test_ranges_compresses_runs() -> None:
    from experiments.propagation import _ranges

    assert _ranges([]) == "none"
    assert _ranges([3]) == "3"
    assert _ranges([1, 2, 3, 7, 9, 10]) == "1–3, 7, 9–10"


def _val_record(seed: int, err: float, speedup: float, relu_after: float) -> dict[str, object]:
    taps = [
        {"tap": "stages.1.0:Linear", "predicted": 1.0, "measured": 1.0, "rel_error": err,
         "per_unit_measured": [1.0, 2.0, 3.0 + seed]},
        {"tap": "stages.1.1:ReLU", "predicted": relu_after, "measured": relu_after,
         "rel_error": err / 2, "per_unit_measured": [0.5, 1.0, 1.0]},
    ]  # fmt: skip
    runs = [
        {"placement": "boundary", "noise": noise, "arm": "plain", "speedup": speedup, "taps": taps}
        for noise in ("additive", "additive-correlated")
    ]
    weights = {"stages.1.0:Linear": {"mean_sq": [1.0, 2.0, 3.0], "sq_mean": [3.0, 1.0, 2.0]}}
    return {
        "config": {"part": "validation", "seed": seed, "sigma": 0.05, "samples": 10},
        "metrics": {"runs": runs, "weights": weights},
    }


def _depth_record(seed: int, snr: list[float]) -> dict[str, object]:
    return {
        "config": {"part": "depth", "seed": seed, "depth_sigma": 0.01},
        "metrics": {"arms": {"plain": {"snr_measured": snr}}},
    }


def test_propagation_claim_rows_on_synthetic_records() -> None:
    from experiments.propagation import claim_rows

    recs = [_val_record(s, 0.01 + 0.005 * s, 500.0 + 50 * s, 0.5) for s in range(3)]
    recs += [_depth_record(s, [100.0, 80.0, 60.0, 58.0 + s]) for s in range(3)]
    rows = {r["quantity"].split(":")[0]: r for r in claim_rows(recs)}
    err = rows["predictor vs Monte Carlo"]
    assert err["mean"] == pytest.approx(1.5) and err["verdict"] == "reproduced"
    assert rows["speed"]["verdict"] == "reproduced" and rows["speed"]["mean"] > 0
    assert rows["suppression where slope < 1"]["mean"] == pytest.approx(0.30103, rel=1e-4)
    # SNR 80 -> ~59 dB-ratio: 10 log10(59/80) ≈ -1.3 dB, inside the ±3 dB margin
    bounded = rows["bounded accumulation"]
    assert bounded["verdict"] == "reproduced" and -3 < bounded["low"] < bounded["high"] < 3
    assert all(r["claim"] == "S" for r in rows.values())


def test_propagation_claim_rows_unbounded_growth_is_not_reproduced() -> None:
    from experiments.propagation import claim_rows

    recs = [_depth_record(s, [100.0, 10.0, 1.0, 0.1 * (1 + 0.1 * s)]) for s in range(3)]
    (row,) = claim_rows(recs)
    assert row["verdict"] == "larger" and row["high"] < -3
