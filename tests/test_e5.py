"""Tests of experiment E5 (experiments/e5_panda): statistics, noise conditions, cells, report."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest
import torch

from conserve_verified.errors import InvalidArgument
from conserve_verified.runner import validate_module
from experiments import e5_panda
from experiments.e5_panda.noise_models import injectors, noise_seed
from experiments.e5_panda.proportions import mcnemar, newcombe, wilson

# --------------------------------------------------------------------------- statistics


def test_wilson_contains_the_observed_proportion() -> None:
    for k, n in [(0, 10), (3, 10), (10, 10), (45, 90)]:
        ci = wilson(k, n)
        assert ci.estimate == k / n
        assert ci.contains(k / n)
        assert 0.0 <= ci.low <= ci.high <= 1.0


def test_newcombe_matches_the_published_example() -> None:
    # Newcombe (1998), Table II, example (a): 56/70 vs 48/80, method 10: 0.0524 to 0.3339.
    d = newcombe(56, 70, 48, 80)
    assert d.estimate == pytest.approx(56 / 70 - 48 / 80)
    assert d.low == pytest.approx(0.0524, abs=5e-5)
    assert d.high == pytest.approx(0.3339, abs=5e-5)


def test_newcombe_equal_counts_contains_zero() -> None:
    assert newcombe(30, 90, 30, 90).contains(0.0)


def test_mcnemar_exact_values() -> None:
    assert mcnemar([True, False], [True, False]) == 1.0
    # 10 discordant pairs all one way: p = 2 * 0.5**10.
    assert mcnemar([True] * 10, [False] * 10) == pytest.approx(2 * 0.5**10)
    with pytest.raises(InvalidArgument, match="second"):
        mcnemar([True], [True, False])


def test_wilson_rejects_bad_counts() -> None:
    with pytest.raises(InvalidArgument, match="k"):
        wilson(11, 10)
    with pytest.raises(InvalidArgument, match="n"):
        wilson(0, 0)


# --------------------------------------------------------------------------- noise


def test_noise_conditions_clean_sigma_has_no_injector() -> None:
    assert injectors("all", 0.0, 0) == (None, None)


def test_noise_conditions_same_draws_for_both_arms() -> None:
    h = torch.randn(4, 32)
    img = torch.rand(4, 16, 16) + 0.5
    for noise in ("all", "gaussian", "both"):
        a_img, a_bd = injectors(noise, 0.2, 3)
        b_img, b_bd = injectors(noise, 0.2, 3)
        assert a_img is not None and a_bd is not None and b_img is not None and b_bd is not None
        torch.testing.assert_close(a_bd(h, 0), b_bd(h, 0), rtol=0, atol=0)
        torch.testing.assert_close(a_img(img, 0), b_img(img, 0), rtol=0, atol=0)
        assert not torch.equal(a_bd(h, 0), h)
    assert noise_seed(0, "all", 0.1) != noise_seed(1, "all", 0.1)


def test_noise_conditions_decompose_into_image_feature_and_scale_terms() -> None:
    img_only = injectors("image", 0.3, 0)
    bd_only = injectors("boundary", 0.3, 0)
    scale_only = injectors("scale", 0.3, 0)
    assert img_only[0] is not None and img_only[1] is None
    assert bd_only[0] is None and bd_only[1] is not None
    assert scale_only[0] is None and scale_only[1] is not None
    both, allc = injectors("both", 0.3, 0), injectors("all", 0.3, 0)
    assert both[0] is not None and both[1] is not None and allc[1] is not None
    # the image term: global scale/shift + local error, no holes
    assert both[0].shift_sigma > 0 and both[0].hole_prob == 0.0  # type: ignore[union-attr]
    # the scale-only term multiplies every feature of a sample by one factor
    h = torch.rand(5, 16) + 0.1
    ratio = scale_only[1](h, 0) / h
    torch.testing.assert_close(ratio, ratio[:, :1].expand_as(ratio))


def test_monodepth_boundary_noise_scale_part_is_removed_by_conservation() -> None:
    # The per-sample scale error is exactly what C_E forgets (0-homogeneity, T3).
    from conserve_verified import conserve
    from conserve_verified.noise import MultiplicativeNoise

    h = torch.randn(5, 16, dtype=torch.float64)
    scaled = MultiplicativeNoise(0.3, correlation=1.0, seed=0)(h, 0)
    torch.testing.assert_close(conserve(scaled, 16.0).abs(), conserve(h, 16.0).abs())


def test_noise_conditions_reject_bad_arguments() -> None:
    with pytest.raises(InvalidArgument, match="noise"):
        injectors("salt", 0.1, 0)
    with pytest.raises(InvalidArgument, match="sigma"):
        injectors("gaussian", -0.1, 0)


def test_conserved_goals_under_scale_only_noise_are_the_clean_goals_t3() -> None:
    from conserve_verified.robotics import build_pipeline, normalized_control
    from experiments.e5_panda.cell import perceive

    torch.manual_seed(0)
    p = build_pipeline("conserved", 16)
    images = torch.rand(8, 16, 16) + 0.5
    clean, _ = perceive(p, images, "scale", 0.0, 1)
    scaled, _ = perceive(p, images, "scale", 0.3, 1)
    assert (abs(scaled - clean) < 1e-6).all()
    # the control (C_E before the noise) is not protected from the scale term
    ctl = normalized_control(p)
    c_clean, _ = perceive(ctl, images, "scale", 0.0, 1)
    c_scaled, _ = perceive(ctl, images, "scale", 0.3, 1)
    assert (abs(c_clean - clean) < 1e-5).all()
    assert float(abs(c_scaled - c_clean).max()) > 1e-3


# --------------------------------------------------------------------------- experiment


def test_e5_module_follows_the_protocol() -> None:
    exp = validate_module(e5_panda)
    assert exp.name == "e5_panda" and exp.claims == ("E5",)
    for profile in ("smoke", "quick", "paper"):
        assert "seed" in exp.grids[profile]
    assert e5_panda.GRIDS["paper"]["trials"] == [90]
    assert len(e5_panda.GRIDS["paper"]["seed"]) == 3


class _Ctx:
    def __init__(self, out_dir: pathlib.Path | None) -> None:
        self.out_dir = out_dir


_TINY: dict[str, Any] = {
    "seed": 4,
    "conditions": ["image", "scale", "all"],
    "sigmas": [0.2],
    "curve_sigmas": [0.2],
    "trials": 3,
    "curve_targets": 4,
    "n_train": 16,
    "epochs": 1,
    "image_size": 16,
}


@pytest.fixture(scope="module")
def tiny_records(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("e5")
    return [
        {"experiment": "e5_panda", "config": {**_TINY, "arm": arm, "seed": seed}, "metrics": m}
        for seed in (4, 5)
        for arm in ("plain", "conserved")
        for m in [e5_panda.run_cell({**_TINY, "arm": arm, "seed": seed}, _Ctx(out))]
    ]


def test_e5_run_cell_deterministic_per_seed(
    tiny_records: list[dict[str, Any]], tmp_path: pathlib.Path
) -> None:
    first = tiny_records[1]["metrics"]
    assert first["eval_arms"] == ["conserved", "normalized"]
    # clean + 3 conditions x 1 sigma, for each of the two eval arms
    assert len(first["evaluations"]) == 2 * 4
    for e in first["evaluations"]:
        assert e["trials"] == 3 and len(e["per_trial"]["success"]) == 3
        assert sum(e["reasons"].values()) == 3
    # Fresh training without a cache, and loading the cache, give identical results.
    cfg = {**_TINY, "arm": "conserved"}
    again = e5_panda.run_cell(cfg, _Ctx(None))
    assert again == first
    cache = tmp_path / "c"
    e5_panda.run_cell(cfg, _Ctx(cache))
    assert list((cache / "e5_panda_cache").glob("*.pt"))
    assert e5_panda.run_cell(cfg, _Ctx(cache)) == first


def test_e5_scale_only_condition_gives_the_conserved_arm_its_clean_outcomes(
    tiny_records: list[dict[str, Any]],
) -> None:
    ev = {(e["condition"], e["eval_arm"]): e for e in tiny_records[1]["metrics"]["evaluations"]}
    assert ev[("scale", "conserved")]["per_trial"] == ev[("clean", "conserved")]["per_trial"]
    # image-only noise reaches conserved and control identically (no boundary noise, T2)
    assert ev[("image", "conserved")]["per_trial"] == ev[("image", "normalized")]["per_trial"]


def test_e5_run_cell_rejects_bad_config() -> None:
    with pytest.raises(InvalidArgument, match="arm"):
        e5_panda.run_cell({**_TINY, "arm": "both"}, _Ctx(None))
    with pytest.raises(InvalidArgument, match="trials"):
        e5_panda.run_cell({**_TINY, "arm": "plain", "trials": 0}, _Ctx(None))
    with pytest.raises(InvalidArgument, match="conditions"):
        e5_panda.run_cell({**_TINY, "arm": "plain", "conditions": ["salt"]}, _Ctx(None))


def test_e5_report_has_decomposition_table_rows_and_pictures(
    tiny_records: list[dict[str, Any]], tmp_path: pathlib.Path
) -> None:
    md = e5_panda.report(tiny_records, tmp_path)
    assert "cancelled by construction (T3)" in md
    assert "| image only" in md and "2 × 3" in md
    for name in ("e5_panda_success.png", "e5_panda_goal_error.png", "e5_panda_trial.png"):
        assert f"]({name})" in md
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    rows = e5_panda.claim_rows(tiny_records)
    assert {r["claim"] for r in rows} == {"E5"}
    assert len(rows) == 2 * 3  # image, all (not scale: T3) x (total, conservation, normalisation)
    assert all(
        r["n"] == 2 and r.get("p_holm") is not None for r in rows if r["p_value"] is not None
    )
