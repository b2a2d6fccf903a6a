"""Verdict rules of claim rows on synthetic estimates (one test per rule of runner.verdict)."""

from __future__ import annotations

import pytest
from statsmodels.stats.multitest import multipletests

from conserve_verified.errors import InvalidArgument, InvalidArgumentType
from conserve_verified.runner.verdict import (
    GRID_TOO_SMALL,
    VERDICTS,
    Estimate,
    difference_row,
    effect_row,
    holm_adjust,
    level_row,
    refuted_row,
    verdict_of,
)


def _est(mean: float, low: float, high: float, p: float | None, n: int = 5) -> Estimate:
    return Estimate(mean, low, high, p, n, method="synthetic")


def _v(paper: float | None, est: Estimate, **kw: object) -> str:
    return str(effect_row("X", "q", paper, est, **kw)["verdict"])  # type: ignore[arg-type]


def test_reproduced_when_paper_in_ci_and_ci_excludes_zero() -> None:
    assert _v(40.0, _est(41.0, 38.0, 44.0, 1e-6)) == "reproduced"


def test_wide_ci_containing_paper_and_zero_is_inconclusive_not_reproduced() -> None:
    # The M2 case: eta^2 0.001 "reproduced" by CI [0.000, 0.631] -- no longer.
    assert _v(40.0, _est(10.0, -30.0, 50.0, 0.6)) == "consistent but inconclusive"
    assert _v(0.44, _est(0.3, -0.01, 0.631, 0.07, n=12)) == "consistent but inconclusive"


def test_reversed_when_significant_with_opposite_sign() -> None:
    # E4 without BatchNorm, sigma 0.5: -29.3 [-39.5, -19.0] against +58.0.
    assert _v(58.0, _est(-29.3, -39.5, -19.0, 1e-4)) == "reversed"
    assert _v(-5.0, _est(3.0, 1.0, 5.0, 0.01)) == "reversed"


def test_smaller_and_larger_when_significant_same_sign_ci_beside_paper() -> None:
    assert _v(40.0, _est(10.0, 5.0, 15.0, 1e-3)) == "smaller"
    assert _v(4.8, _est(20.0, 15.0, 25.0, 1e-3)) == "larger"
    # negative paper value: magnitude comparison mirrors
    assert _v(-40.0, _est(-10.0, -15.0, -5.0, 1e-3)) == "smaller"
    assert _v(-4.0, _est(-10.0, -15.0, -5.0, 1e-3)) == "larger"


def test_not_reproduced_when_no_significant_effect_and_ci_excludes_paper() -> None:
    assert _v(45.1, _est(0.5, -2.0, 3.0, 0.7)) == "not reproduced"


def test_non_effect_with_margin_reproduced_only_when_ci_inside_margin() -> None:
    # E3 dropout: paper -0.3 pp, a principled non-effect; margin 2 pp.
    assert _v(-0.3, _est(0.2, -1.0, 1.4, 0.7), margin=2.0) == "reproduced"
    assert _v(-0.3, _est(0.2, -3.0, 3.4, 0.8), margin=2.0) == "consistent but inconclusive"
    assert _v(-0.3, _est(6.0, 4.0, 8.0, 1e-3), margin=2.0) == "larger"
    assert _v(-0.3, _est(1.5, 0.5, 2.5, 0.01), margin=2.0) == "consistent but inconclusive"


def test_unsized_positive_claim_uses_sign_and_margin() -> None:
    assert _v(None, _est(2.0, 1.0, 3.0, 0.001)) == "reproduced"
    assert _v(None, _est(-2.0, -3.0, -1.0, 0.001)) == "reversed"
    assert _v(None, _est(0.1, -0.2, 0.4, 0.5)) == "consistent but inconclusive"
    assert _v(None, _est(0.1, -0.2, 0.4, 0.5), margin=1.0) == "not reproduced"


def test_grid_too_small_for_one_unit_or_no_ci() -> None:
    assert _v(1.0, Estimate(2.0, None, None, None, 1)) == GRID_TOO_SMALL
    assert _v(1.0, Estimate(2.0, None, None, 0.01, 5)) == GRID_TOO_SMALL
    assert _v(1.0, Estimate(2.0, float("-inf"), float("inf"), None, 3)) == GRID_TOO_SMALL


def test_significance_falls_back_to_ci_excluding_zero_without_p() -> None:
    assert _v(40.0, _est(41.0, 38.0, 44.0, None)) == "reproduced"
    assert _v(40.0, _est(10.0, -30.0, 50.0, None)) == "consistent but inconclusive"


def test_level_rows_need_a_decisive_ci() -> None:
    lvl = {"compare": "level"}
    assert _v(93.3, _est(92.0, 90.0, 95.0, None), **lvl) == "reproduced"
    assert _v(93.3, _est(92.0, 90.0, 95.0, None), margin=2.0, **lvl) == (
        "consistent but inconclusive"
    )
    assert _v(93.3, _est(93.0, 92.0, 94.5, None), margin=2.0, **lvl) == "reproduced"
    assert _v(93.3, _est(50.0, -10.0, 110.0, None), **lvl) == "consistent but inconclusive"
    assert _v(93.3, _est(60.0, 55.0, 65.0, 1e-4), **lvl) == "smaller"
    assert _v(35.1, _est(60.0, 55.0, 65.0, 1e-4), **lvl) == "larger"
    assert _v(35.1, _est(60.0, 55.0, 65.0, 0.2), **lvl) == "consistent but inconclusive"
    assert _v(35.1, _est(-6.0, -9.0, -3.0, None), **lvl) == "reversed"


def test_holm_adjust_matches_hand_computed_example() -> None:
    # p = (0.01, 0.04, 0.03): sorted 0.01, 0.03, 0.04 -> 3*0.01, 2*0.03, max(1*0.04, 0.06)
    rows = [
        effect_row("E3", "a", 1.0, _est(1.0, 0.5, 1.5, 0.01)),
        effect_row("E3", "b", 1.0, _est(1.0, 0.5, 1.5, 0.04)),
        effect_row("E3", "c", 1.0, _est(1.0, 0.5, 1.5, 0.03)),
    ]
    assert [r["verdict"] for r in rows] == ["reproduced"] * 3
    adj = holm_adjust(rows)
    assert [r["p_holm"] for r in adj] == pytest.approx([0.03, 0.06, 0.06])
    assert [r["verdict"] for r in adj] == [
        "reproduced",
        "consistent but inconclusive",
        "consistent but inconclusive",
    ]
    expected = multipletests([0.01, 0.04, 0.03], method="holm")[1]
    assert [r["p_holm"] for r in adj] == pytest.approx(list(expected))
    assert rows[1]["p_holm"] is None  # input rows are not mutated
    assert holm_adjust(adj) == adj  # idempotent: starts from the raw p


def test_holm_adjust_families_are_per_claim_and_rows_without_p_untouched() -> None:
    rows = [
        effect_row("E1", "a", 1.0, _est(1.0, 0.5, 1.5, 0.04)),
        effect_row("E3", "b", 1.0, _est(1.0, 0.5, 1.5, 0.04)),
        effect_row("E3", "c", 1.0, _est(1.0, 0.5, 1.5, None)),
        refuted_row("B", "T5a", note="n = -1.5 s"),
    ]
    adj = holm_adjust(rows)
    assert adj[0]["p_holm"] == pytest.approx(0.04) and adj[1]["p_holm"] == pytest.approx(0.04)
    assert adj[2] == rows[2] and adj[3] == rows[3] and adj[3]["verdict"] == "refuted"


def test_effect_row_keys_and_verdict_identity() -> None:
    est = _est(41.0, 38.0, 44.0, 1e-6)
    row = effect_row("E1", "q", 40.0, est, note="n", margin=None)
    assert set(row) >= {
        "claim", "quantity", "paper", "mean", "low", "high", "n", "p_value", "effect_size",
        "verdict", "note", "method", "compare", "p_holm", "margin",
    }  # fmt: skip
    assert row["verdict"] == verdict_of(40.0, 41.0, 38.0, 44.0, 5, 1e-6)
    assert row["verdict"] in VERDICTS and row["method"] == "synthetic"


def test_difference_row_is_welch_estimate_through_effect_row() -> None:
    a = [80.0, 82.0, 78.0, 81.0, 79.0]
    b = [40.0, 38.0, 41.0, 39.0, 42.0]
    row = difference_row("E1", "q", 40.0, a, b)
    assert row["verdict"] == "reproduced" and row["method"] == "Welch"
    assert difference_row("E1", "q", 10.0, a, b)["verdict"] == "larger"
    assert difference_row("E1", "q", -40.0, a, b)["verdict"] == "reversed"
    assert difference_row("E1", "q", 1.0, [1.0], [2.0])["verdict"] == GRID_TOO_SMALL


def test_level_row_is_level_compare() -> None:
    a = [80.0, 82.0, 78.0, 81.0, 79.0]
    row = level_row("E1", "q", 80.0, a, 1.0, 5)
    assert row["compare"] == "level" and row["verdict"] == "reproduced"
    assert level_row("E1", "q", 35.1, a, 1.1, 5)["verdict"] == "larger"
    assert level_row("E2", "q", 93.3, [90.0])["verdict"] == GRID_TOO_SMALL


@pytest.mark.parametrize(
    ("kwargs", "arg"),
    [
        ({"compare": "levels"}, "compare"),
        ({"margin": -1.0}, "margin"),
        ({"margin": float("inf")}, "margin"),
    ],
)
def test_effect_row_rejects_bad_arguments(kwargs: dict[str, object], arg: str) -> None:
    with pytest.raises(InvalidArgument, match=arg):
        effect_row("E1", "q", 1.0, _est(1.0, 0.0, 2.0, 0.5), **kwargs)  # type: ignore[arg-type]


def test_estimate_rejects_inconsistent_values() -> None:
    with pytest.raises(InvalidArgument, match="low/high"):
        Estimate(1.0, 2.0, 0.0, None, 3)
    with pytest.raises(InvalidArgument, match="p_value"):
        Estimate(1.0, 0.0, 2.0, 1.5, 3)
    with pytest.raises(InvalidArgument, match="n="):
        Estimate(1.0, 0.0, 2.0, 0.5, -1)
    with pytest.raises(InvalidArgumentType, match="mean"):
        Estimate("1", 0.0, 2.0, 0.5, 3)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="paper"):
        effect_row("E1", "q", None, _est(1.0, 0.0, 2.0, 0.5), compare="level")


def test_estimate_mean_is_t_ci_and_one_sample_t_test() -> None:
    from scipy import stats as sps

    from conserve_verified.runner.stats import mean_ci
    from conserve_verified.runner.verdict import estimate_mean

    vals = [1.0, 2.0, 4.0, 3.5]
    est = estimate_mean(vals, null=1.0)
    ci = mean_ci(vals)
    assert (est.low, est.high, est.n) == (ci.low, ci.high, 4)
    assert est.p_value == pytest.approx(sps.ttest_1samp(vals, 1.0).pvalue)
    assert estimate_mean([2.0, 2.0]).p_value == 0.0
    assert estimate_mean([0.0, 0.0]).p_value == 1.0
    one = estimate_mean([3.0])
    assert one.low is None and one.p_value is None and one.n == 1


def test_practically_zero_effect_is_not_reproduced_even_when_significant() -> None:
    from conserve_verified.runner.verdict import verdict_of

    # -0.011 pp with four nearly identical seeds: tiny p, CI inside the 2 pp margin
    assert verdict_of(42.3, -0.011, -0.012, -0.010, 4, 1e-6, margin=2.0) == "not reproduced"
    assert verdict_of(None, 0.0, 0.0, 0.0001, 3, 1e-5, margin=2.0) == "not reproduced"
    # without a margin the same row is reversed
    assert verdict_of(42.3, -0.011, -0.012, -0.010, 4, 1e-6) == "reversed"
    # a claimed non-effect is still judged by its own rule
    assert verdict_of(-0.3, 0.1, -0.5, 0.6, 4, 0.7, margin=2.0) == "reproduced"
