"""The ``ace`` experiment measures retention under both noise conventions."""

from __future__ import annotations

import itertools
import pathlib
import sys
import types

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ace_module() -> types.ModuleType:
    sys.path.insert(0, str(REPO / "experiments"))
    try:
        import ace
    finally:
        sys.path.remove(str(REPO / "experiments"))
    return ace


def test_energy_cell_reports_absolute_and_relative_retention_for_every_sigma(
    ace_module: types.ModuleType, tmp_path: pathlib.Path
) -> None:
    from conserve_verified.runner.protocol import RunContext

    grid = ace_module.GRIDS["smoke"]
    cfg = {k: v[0] for k, v in grid.items()}
    cfg.update(part="energy", strategy="hard")
    metrics = ace_module.run_cell(cfg, RunContext())
    seen = {(e["convention"], e["sigma"]) for e in metrics["noise"]}
    assert seen == set(itertools.product(("absolute", "relative"), cfg["sigmas"]))
    for e in metrics["noise"]:
        assert 0.0 <= e["accuracy"] <= 1.0
        assert e["retention_pct"] == pytest.approx(100 * e["accuracy"] / metrics["clean_accuracy"])
    record = {"experiment": "ace", "config": cfg, "metrics": metrics}
    md = ace_module.report([record], tmp_path)
    relative = md.split("*relative σ*", 1)[1].split("\n\n", 2)[1]
    hard_row = next(line for line in relative.splitlines() if line.startswith("| hard |"))
    assert "–" not in hard_row
