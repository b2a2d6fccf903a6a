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
    depth = next(r for r in records if r["config"]["part"] == "depth")["metrics"]
    assert 0.0 <= depth["test_accuracy"] <= 1.0
    conserved = depth["arms"]["conserved"]
    assert all(v is not None and v > 0 for v in conserved["linearity"])
    assert all(v is not None and 0.0 <= v <= 1.0 for v in conserved["outside_share"])
    assert all(v is None for v in depth["arms"]["plain"]["linearity"])
    assert "boundaries outside regime" in text and "LINEARITY_THRESHOLD" in text


def test_ranges_compresses_runs() -> None:
    from experiments.propagation import _ranges

    assert _ranges([]) == "none"
    assert _ranges([3]) == "3"
    assert _ranges([1, 2, 3, 7, 9, 10]) == "1–3, 7, 9–10"
