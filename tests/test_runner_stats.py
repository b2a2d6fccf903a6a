"""Tests of conserve_verified.runner.stats against scipy.stats and textbook identities."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from conserve_verified.errors import InvalidArgument, InvalidArgumentType
from conserve_verified.runner.stats import (
    cohens_d,
    hedges_g,
    hedges_g_from_stats,
    mean_ci,
    two_way_anova,
    welch,
    welch_from_stats,
)

A = [0.71, 0.74, 0.69, 0.77, 0.73]
B = [0.35, 0.31, 0.38, 0.36, 0.30, 0.33]


def test_mean_ci_half_width_is_t_quantile_times_standard_error() -> None:
    ci = mean_ci(A)
    sd = float(np.std(A, ddof=1))
    half = st.t.ppf(0.975, len(A) - 1) * sd / math.sqrt(len(A))
    assert ci.n == 5
    assert ci.mean == pytest.approx(np.mean(A), rel=1e-12)
    assert ci.half_width == pytest.approx(half, rel=1e-12)
    assert (ci.low, ci.high) == pytest.approx((ci.mean - half, ci.mean + half), rel=1e-12)
    lo, hi = st.t.interval(0.95, len(A) - 1, loc=np.mean(A), scale=st.sem(A))
    assert (ci.low, ci.high) == pytest.approx((lo, hi), rel=1e-12)


def test_mean_ci_wider_at_higher_confidence() -> None:
    assert mean_ci(A, 0.99).half_width > mean_ci(A, 0.95).half_width > mean_ci(A, 0.5).half_width


def test_mean_ci_single_value_is_unbounded_and_constant_sample_is_exact() -> None:
    one = mean_ci([3.0])
    assert one.mean == 3.0 and math.isinf(one.half_width) and one.n == 1
    const = mean_ci([2.0, 2.0, 2.0])
    assert const.half_width == 0.0 and const.low == const.high == 2.0


def test_welch_equals_scipy_ttest_ind_unequal_var() -> None:
    ours = welch(A, B)
    ref = st.ttest_ind(A, B, equal_var=False)
    assert ours.statistic == pytest.approx(float(ref.statistic), rel=1e-10)
    assert ours.p_value == pytest.approx(float(ref.pvalue), rel=1e-10)
    va, vb = np.var(A, ddof=1) / 5, np.var(B, ddof=1) / 6
    df = (va + vb) ** 2 / (va**2 / 4 + vb**2 / 5)
    assert ours.df == pytest.approx(df, rel=1e-12)


def test_welch_from_stats_equals_welch_on_the_samples() -> None:
    ours = welch_from_stats(
        float(np.mean(A)),
        float(np.std(A, ddof=1)),
        5,
        float(np.mean(B)),
        float(np.std(B, ddof=1)),
        6,
    )
    assert ours.p_value == pytest.approx(welch(A, B).p_value, rel=1e-10)


def test_welch_same_distribution_gives_large_p_and_shifted_gives_small_p() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(0, 1, 30), rng.normal(0, 1, 30)
    assert welch(x, y).p_value > 0.05
    assert welch(x, y + 3.0).p_value < 1e-6


def test_welch_degenerate_zero_variance_policy() -> None:
    assert welch([1.0, 1.0], [1.0, 1.0]).p_value == 1.0
    t = welch([2.0, 2.0], [1.0, 1.0])
    assert t.p_value == 0.0 and t.statistic == math.inf


def test_cohens_d_is_mean_difference_over_pooled_sd() -> None:
    na, nb = len(A), len(B)
    pooled = math.sqrt(
        ((na - 1) * np.var(A, ddof=1) + (nb - 1) * np.var(B, ddof=1)) / (na + nb - 2)
    )
    assert cohens_d(A, B) == pytest.approx((np.mean(A) - np.mean(B)) / pooled, rel=1e-12)
    assert cohens_d(B, A) == pytest.approx(-cohens_d(A, B), rel=1e-12)


def test_hedges_g_is_bias_corrected_d() -> None:
    n = len(A) + len(B)
    assert hedges_g(A, B) == pytest.approx(cohens_d(A, B) * (1 - 3 / (4 * n - 9)), rel=1e-12)
    assert abs(hedges_g(A, B)) < abs(cohens_d(A, B))


def test_two_way_anova_sums_of_squares_add_up_and_detect_interaction() -> None:
    rng = np.random.default_rng(1)
    y, a, b = [], [], []
    for i in range(2):
        for j in range(3):
            for _ in range(4):
                # pure interaction: effect +2 when i == 1 and j == 2 only
                y.append(float(rng.normal(0, 0.1) + (2.0 if (i, j) == (1, 2) else 0.0)))
                a.append(i)
                b.append(j)
    res = two_way_anova(y, a, b)
    ss_total = float(((np.asarray(y) - np.mean(y)) ** 2).sum())
    parts = sum(e["ss"] for e in res.effects.values()) + res.ss_error
    assert parts == pytest.approx(ss_total, rel=1e-10)
    assert res.effects["A:B"]["p"] < 1e-6
    assert res.effects["A:B"]["partial_eta_sq"] > 0.9
    assert res.df_error == 2 * 3 * 3


def test_two_way_anova_no_interaction_for_additive_effects() -> None:
    rng = np.random.default_rng(2)
    y, a, b = [], [], []
    for i in range(2):
        for j in range(2):
            for _ in range(10):
                y.append(float(i + 2 * j + rng.normal(0, 0.5)))
                a.append(i)
                b.append(j)
    res = two_way_anova(y, a, b)
    assert res.effects["A"]["p"] < 1e-3 and res.effects["B"]["p"] < 1e-3
    assert res.effects["A:B"]["partial_eta_sq"] < 0.2


def test_stats_reject_bad_input_with_typed_errors() -> None:
    with pytest.raises(InvalidArgument, match="NaN or Inf"):
        mean_ci([1.0, math.nan])
    with pytest.raises(InvalidArgument, match="at least 1"):
        mean_ci([])
    with pytest.raises(InvalidArgumentType):
        mean_ci("abc")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="confidence"):
        mean_ci(A, 1.5)
    with pytest.raises(InvalidArgument, match="at least 2"):
        welch([1.0], B)
    with pytest.raises(InvalidArgument, match="n_a"):
        welch_from_stats(1.0, 0.1, 1, 2.0, 0.1, 5)
    with pytest.raises(InvalidArgument, match="same number"):
        two_way_anova([1.0, 2.0, 3.0, 4.0, 5.0], [0, 0, 1, 1, 1], [0, 1, 0, 1, 1])


def test_hedges_g_from_stats_equals_hedges_g_of_the_samples() -> None:
    stats_a = (float(np.mean(A)), float(np.std(A, ddof=1)), len(A))
    stats_b = (float(np.mean(B)), float(np.std(B, ddof=1)), len(B))
    assert hedges_g_from_stats(*stats_a, *stats_b) == pytest.approx(hedges_g(A, B), rel=1e-12)
    assert hedges_g_from_stats(1.0, 0.0, 3, 1.0, 0.0, 4) == 0.0
    assert hedges_g_from_stats(2.0, 0.0, 3, 1.0, 0.0, 4) == math.inf


@pytest.mark.parametrize(
    ("args", "name"),
    [
        ((math.nan, 1.0, 3, 0.0, 1.0, 3), "mean_a"),
        ((0.0, -1.0, 3, 0.0, 1.0, 3), "sd_a"),
        ((0.0, 1.0, 3, 0.0, 1.0, 1), "n_b"),
    ],
)
def test_hedges_g_from_stats_rejects_bad_statistics(args: tuple[float, ...], name: str) -> None:
    with pytest.raises(InvalidArgument, match=name):
        hedges_g_from_stats(*args)  # type: ignore[arg-type]
