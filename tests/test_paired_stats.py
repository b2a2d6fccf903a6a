"""Tests of conserve_verified.runner.paired against hand-computed examples and scipy/statsmodels."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from conserve_verified.errors import InvalidArgument
from conserve_verified.runner.paired import (
    average_draws,
    clustered_difference,
    cmh_test,
    covariate_adjusted_difference,
    mixed_difference,
    pair_by_seed,
    paired_difference,
)
from conserve_verified.runner.verdict import effect_row, holm_adjust


def test_paired_difference_matches_hand_computation() -> None:
    # d = (1, 2, 3): mean 2, sd 1, se 1/sqrt(3), t = 2*sqrt(3) with 2 df
    est = paired_difference([11.0, 12.0, 13.0], [10.0, 10.0, 10.0])
    half = st.t.ppf(0.975, 2) / math.sqrt(3)
    assert est.mean == pytest.approx(2.0)
    assert (est.low, est.high) == pytest.approx((2.0 - half, 2.0 + half))
    assert est.p_value == pytest.approx(2 * st.t.sf(2 * math.sqrt(3), 2))
    assert est.effect_size == pytest.approx(2.0)  # d_z = mean / sd = 2 / 1
    assert est.n == 3


def test_paired_difference_p_equals_ttest_rel() -> None:
    a = [0.71, 0.74, 0.69, 0.77, 0.73]
    b = [0.70, 0.70, 0.70, 0.72, 0.69]
    assert paired_difference(a, b).p_value == pytest.approx(st.ttest_rel(a, b).pvalue, rel=1e-12)


def test_paired_difference_is_tighter_than_welch_when_seeds_share_variance() -> None:
    from conserve_verified.runner.stats import mean_diff_ci

    base = [50.0, 60.0, 70.0, 80.0, 90.0]
    a = [x + 1.0 + 0.1 * i for i, x in enumerate(base)]
    est = paired_difference(a, base)
    welch = mean_diff_ci(a, base)
    assert est.high - est.low < (welch.high - welch.low) / 10
    assert est.low > 0 > welch.low


def test_paired_difference_zero_variance_uses_the_exact_sign_test() -> None:
    same = paired_difference([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert (same.mean, same.low, same.high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    degenerate = paired_difference([2.0, 3.0, 4.0], [1.0, 2.0, 3.0])
    assert (degenerate.low, degenerate.high, degenerate.p_value) == (1.0, 1.0, 0.0)
    shifted = paired_difference([2.0, 3.0, 4.0], [1.0, 2.0, 3.0], zero_variance="sign-test")
    # three identical positive differences: exact sign test, p = 2 * 0.5**3
    assert (shifted.low, shifted.high) == (1.0, 1.0)
    assert shifted.p_value == pytest.approx(0.25)
    assert shifted.p_value == pytest.approx(st.binomtest(3, 3, 0.5).pvalue)


def test_paired_difference_one_pair_has_no_ci() -> None:
    est = paired_difference([3.0], [1.0])
    assert est.mean == 2.0 and est.low is None and est.p_value is None and est.n == 1


def test_paired_difference_rejects_unpaired_lengths() -> None:
    with pytest.raises(InvalidArgument, match="b="):
        paired_difference([1.0, 2.0], [1.0])


def test_pair_by_seed_aligns_common_seeds() -> None:
    a, b, seeds = pair_by_seed({0: 1.0, 1: 2.0, 3: 4.0}, {3: 30.0, 1: 10.0, 2: 5.0, 0: None})
    assert seeds == [1, 3] and a == [2.0, 4.0] and b == [10.0, 30.0]


def test_average_draws_mean_sd_and_minimum() -> None:
    s = average_draws([float(i) for i in range(20)])
    assert s.mean == pytest.approx(9.5)
    assert s.sd == pytest.approx(np.std(range(20), ddof=1))
    assert s.n == 20
    with pytest.raises(InvalidArgument, match="values"):
        average_draws([1.0] * 19)


def test_mixed_difference_equals_paired_mean_for_balanced_pairs() -> None:
    a = [0.71, 0.74, 0.69, 0.77, 0.73]
    b = [0.60, 0.66, 0.61, 0.65, 0.64]
    y = a + b
    arm = [1] * 5 + [0] * 5
    seed = list(range(5)) * 2
    est = mixed_difference(y, arm, seed)
    assert est.mean == pytest.approx(np.mean(np.subtract(a, b)), abs=1e-8)
    assert est.low is not None and est.high is not None
    assert est.low < est.mean < est.high
    assert est.n == 5


def test_covariate_adjusted_difference_removes_a_linear_clean_gap() -> None:
    # d_i = 3 + 2 c_i exactly plus small noise: the intercept is the effect at c = 0
    c = np.array([-2.0, -1.0, 0.0, 1.0, 2.0, 3.0])
    noise = np.array([0.01, -0.02, 0.015, -0.01, 0.0, 0.005])
    d = 3.0 + 2.0 * c + noise
    est = covariate_adjusted_difference(d, np.zeros(6), c, np.zeros(6))
    assert est.mean == pytest.approx(3.0, abs=0.05)
    assert est.low is not None and est.high is not None and est.low < 3.0 < est.high
    import statsmodels.api as sm

    fit = sm.OLS(d, sm.add_constant(c)).fit()
    assert est.p_value == pytest.approx(float(fit.pvalues[0]))


def test_clustered_difference_uses_seeds_as_units_on_synthetic_trials() -> None:
    # 3 seeds x 8 trials; per-seed mean differences 0.25, 0.5, 0.75 (mean 0.5, sd 0.25)
    a = [*([1] * 2 + [0] * 6), *([1] * 4 + [0] * 4), *([1] * 6 + [0] * 2)]
    b = [0] * 24
    clusters = [0] * 8 + [1] * 8 + [2] * 8
    est = clustered_difference(a, b, clusters)
    half = st.t.ppf(0.975, 2) * 0.25 / math.sqrt(3)
    assert est.n == 3
    assert est.mean == pytest.approx(0.5)
    assert (est.low, est.high) == pytest.approx((0.5 - half, 0.5 + half))
    assert est.p_value == pytest.approx(st.ttest_1samp([0.25, 0.5, 0.75], 0.0).pvalue)
    # the pooled-trial interval (24 "independent" trials) is narrower: pooling overstates certainty
    d = np.subtract(a, b)
    pooled = st.t.ppf(0.975, 23) * d.std(ddof=1) / math.sqrt(24)
    assert half > pooled


def test_clustered_difference_identical_seed_rates_use_the_within_seed_floor() -> None:
    # every seed: one more success out of 4 -> between-seed variance 0, within-seed 0.25/4
    a = [1, 1, 0, 0] * 3
    b = [1, 0, 0, 0] * 3
    est = clustered_difference(a, b, [0] * 4 + [1] * 4 + [2] * 4)
    se = math.sqrt((0.25 / 4) / 3)
    assert est.mean == pytest.approx(0.25)
    assert (est.low, est.high) == pytest.approx(
        (0.25 - st.t.ppf(0.975, 2) * se, 0.25 + st.t.ppf(0.975, 2) * se)
    )
    assert est.p_value is not None and est.p_value > 0.05
    assert "floor" in est.method


def test_cmh_test_matches_statsmodels_and_detects_a_common_effect() -> None:
    from statsmodels.stats.contingency_tables import StratifiedTable

    tables = [[[30, 10], [15, 25]], [[28, 12], [14, 26]], [[33, 7], [20, 20]]]
    res = cmh_test(tables)
    ref = StratifiedTable(np.stack([np.asarray(t, float) for t in tables], axis=2))
    assert res.p_value == pytest.approx(float(ref.test_null_odds(correction=False).pvalue))
    assert res.p_value < 0.001 and res.odds_ratio > 1 and res.strata == 3
    null = cmh_test([[[10, 10], [10, 10]], [[5, 15], [5, 15]]])
    assert null.p_value == pytest.approx(1.0)


def test_cmh_test_degenerate_strata_give_p_one() -> None:
    assert cmh_test([[[10, 0], [10, 0]]]).p_value == 1.0
    with pytest.raises(InvalidArgument, match="tables"):
        cmh_test([[1, 2], [3, 4]])


def test_holm_adjust_of_paired_rows_against_hand_computation() -> None:
    # raw p = 0.01, 0.04, 0.03 -> Holm: sorted 0.01*3=0.03, 0.03*2=0.06, max(0.06, 0.04*1)=0.06
    rows = []
    for p in (0.01, 0.04, 0.03):
        est = paired_difference([1.0, 2.0, 3.0], [0.0, 0.5, 1.0])
        est = type(est)(est.mean, est.low, est.high, p, est.n, est.effect_size, est.method)
        rows.append(effect_row("E1", f"row p={p}", None, est))
    adj = holm_adjust(rows)
    assert [r["p_holm"] for r in adj] == pytest.approx([0.03, 0.06, 0.06])
