"""λ-sweep claim rows (M1, M2) and report on synthetic records; the dataset placeholder."""

from __future__ import annotations

import pathlib

from experiments import lambda_sweep as ls


def _records(data: str = "digits") -> list[dict[str, object]]:
    recs: list[dict[str, object]] = []
    for arch in ("mlp", "cnn"):
        for ds in (ls.RUN_DATA, "mnist1d"):
            for lam in (0.0, 0.01):
                for seed in range(3):
                    # interaction: the CNN saves far more energy on mnist1d than the MLP
                    pct = 1.0 if lam == 0 else (0.06 if (arch, ds) != ("cnn", "mnist1d") else 0.6)
                    energy = pct * (1.0 + 0.01 * seed)
                    recs.append(
                        {
                            "data": data,
                            "config": {"arch": arch, "dataset": ds, "lam": lam, "seed": seed},
                            "metrics": {
                                "energy_per_feature": energy,
                                "clean_accuracy": 0.9 + 0.001 * seed,
                            },
                        }
                    )
    return recs


def test_lambda_sweep_placeholder_is_the_runs_dataset() -> None:
    assert ls._dataset({"dataset": ls.RUN_DATA}, "fashion-mnist") == "fashion-mnist"
    assert ls._dataset({"dataset": "mnist1d"}, "fashion-mnist") == "mnist1d"
    rel = ls._relative(_records("fashion-mnist"))
    assert {x["dataset"] for x in rel} == {"fashion-mnist", "mnist1d"}


def test_lambda_sweep_claim_rows_m1_within_margin_and_m2_interaction() -> None:
    rows = ls.claim_rows(_records())
    m1 = [r for r in rows if r["claim"] == "M1"]
    assert len(m1) == 4 and all(r["compare"] == "level" and r["margin"] == ls.M1_MARGIN for r in m1)
    near_six = next(r for r in m1 if "(mlp, digits)" in r["quantity"])
    assert near_six["verdict"] == "reproduced" and abs(near_six["mean"] - 6.0) < 1e-9
    far = next(r for r in m1 if "(cnn, mnist1d)" in r["quantity"])
    assert far["verdict"] == "larger"
    m2 = {r["quantity"].split()[2]: r for r in rows if r["claim"] == "M2"}
    inter = m2["architecture_x_dataset"]
    assert inter["low"] <= inter["mean"] <= inter["high"] and inter["p_value"] < 0.05
    assert m2["architecture"]["margin"] == ls.M2_MARGIN


def test_lambda_sweep_report_plots_lambda_zero(tmp_path: pathlib.Path) -> None:
    text = ls.report(_records(), tmp_path)  # type: ignore[arg-type]
    assert "![λ-sweep](lambda_sweep.png)" in text
    assert (tmp_path / "lambda_sweep.png").stat().st_size > 0
