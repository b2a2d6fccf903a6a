"""The gauge-LR experiment: protocol, deterministic cells, and a report that renders."""

from __future__ import annotations

import pathlib

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
