"""The gauge-LR experiment: protocol, deterministic cells, and a report that renders."""

from __future__ import annotations

import math
import pathlib

import pytest

from experiments import gauge_lr


def test_gauge_lr_defines_the_protocol() -> None:
    assert gauge_lr.NAME == "gauge_lr"
    assert gauge_lr.CLAIMS == ("G",)
    for profile in ("smoke", "quick", "paper"):
        assert "seed" in gauge_lr.GRIDS[profile]


def test_gauge_lr_cell_is_deterministic_and_balance_keeps_loss() -> None:
    cfg = {
        "loss": "mse",
        "init": "imbalanced",
        "method": "balance",
        "lr": 0.4,
        "steps": 5,
        "seed": 0,
    }
    a = gauge_lr.run_cell(cfg, None)
    b = gauge_lr.run_cell(cfg, None)
    assert a == b
    plain = gauge_lr.run_cell({**cfg, "method": "none"}, None)
    # balancing does not change the function: same initial loss
    assert abs(a["loss0"] - plain["loss0"]) <= 1e-12 * plain["loss0"]
    assert a["drift"][0] < 1e-9 < plain["drift"][0]


def test_gauge_lr_large_step_is_unstable_small_step_is_not() -> None:
    cfg = {"loss": "mse", "init": "imbalanced", "method": "none", "lr": 3.2, "steps": 10, "seed": 0}
    big = gauge_lr.run_cell(cfg, None)
    small = gauge_lr.run_cell({**cfg, "lr": 0.05}, None)
    assert big["unstable"] and big["max_loss_ratio"] > 1.0
    assert not small["unstable"] and small["final_loss"] < small["loss0"]


def test_gauge_lr_report_renders_tables_and_plots(tmp_path: pathlib.Path) -> None:
    records = []
    for method in ("none", "gauge_step"):
        for lr in (0.4, 4.5):
            cfg = {"loss": "mse", "init": "imbalanced", "method": method, "lr": lr}
            cfg |= {"steps": 8, "seed": 0}
            records.append(
                {"experiment": "gauge_lr", "config": cfg, "metrics": gauge_lr.run_cell(cfg, None)}
            )
    text = gauge_lr.report(records, tmp_path)
    assert "largest stable lr" in text and "| mse | imbalanced | gauge_step |" in text
    assert (tmp_path / "gauge_lr_drift_mse.png").stat().st_size > 0


def _synthetic(stable_up_to: dict[str, list[float]]) -> list[dict[str, object]]:
    """Records where method m is stable up to ``stable_up_to[m][seed]`` on the quick lr grid."""
    recs: list[dict[str, object]] = []
    for method, per_seed in stable_up_to.items():
        for seed, top in enumerate(per_seed):
            for lr in gauge_lr._LRS_QUICK:
                cfg = {"loss": "mse", "init": "imbalanced", "method": method, "lr": lr}
                cfg |= {"steps": 50, "seed": seed}
                recs.append({"config": cfg, "metrics": {"unstable": lr > top}})
    return recs


def test_gauge_lr_claim_rows_paired_log2_ratio_of_largest_stable_lr() -> None:
    recs = _synthetic(
        {
            "none": [0.8, 0.8, 0.4, 0.8],
            "balance": [3.2, 3.2, 1.6, 2.26],
            "penalty": [0.4, 0.4, 0.1, 0.4],
        }
    )
    rows = gauge_lr.claim_rows(recs)
    by_method = {r["quantity"].split(" − ")[0].split()[-1]: r for r in rows}
    assert by_method["balance"]["verdict"] == "reproduced" and by_method["balance"]["n"] == 4
    expected = sum(
        math.log2(a / b) for a, b in zip([3.2, 3.2, 1.6, 2.26], [0.8, 0.8, 0.4, 0.8], strict=True)
    )
    assert by_method["balance"]["mean"] == pytest.approx(expected / 4)
    assert by_method["penalty"]["verdict"] == "reversed"
    assert by_method["balance"]["claim"] == "G" and by_method["balance"]["paper"] is None


def test_gauge_lr_claim_rows_one_seed_is_grid_too_small() -> None:
    rows = gauge_lr.claim_rows(_synthetic({"none": [0.8], "balance": [3.2]}))
    assert [r["verdict"] for r in rows] == ["grid too small for a verdict"]


def test_gauge_lr_claim_rows_both_arms_at_the_grid_ceiling_cannot_decide() -> None:
    top = gauge_lr._LRS_QUICK[-1]
    rows = gauge_lr.claim_rows(_synthetic({"none": [top] * 3, "balance": [top] * 3}))
    assert [r["verdict"] for r in rows] == ["grid too small for a verdict"]
    assert "wider lr grid" in rows[0]["note"]
