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
    partial_eta_sq_ci,
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
    with pytest.raises(InvalidArgument, match="at least 2 observations"):
        two_way_anova([1.0, 2.0, 3.0, 4.0, 5.0], [0, 0, 1, 1, 1], [0, 1, 0, 1, 1])
    with pytest.raises(InvalidArgument, match="typ"):
        two_way_anova([1.0, 2.0, 3.0, 4.0] * 2, [0, 0, 1, 1] * 2, [0, 1, 0, 1] * 2, typ=4)
    with pytest.raises(InvalidArgument, match="at least 2 levels"):
        two_way_anova([1.0, 2.0, 3.0, 4.0], [0, 0, 0, 0], [0, 1, 0, 1])


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


# Montgomery, Design and Analysis of Experiments, Example 5.1 (battery life, hours):
# material type (1-3) x temperature (15, 70, 125 F), n = 4.  Textbook ANOVA table:
# SS 10683.72 / 39118.72 / 9613.78, error 18230.75 (df 27); F 7.91 / 28.97 / 3.56;
# p 0.0020 / < 0.0001 / 0.0186.
_BATTERY = {
    (1, 15): [130, 155, 74, 180],
    (1, 70): [34, 40, 80, 75],
    (1, 125): [20, 70, 82, 58],
    (2, 15): [150, 188, 159, 126],
    (2, 70): [136, 122, 106, 115],
    (2, 125): [25, 70, 58, 45],
    (3, 15): [138, 110, 168, 160],
    (3, 70): [174, 120, 150, 139],
    (3, 125): [96, 104, 82, 60],
}


def _battery() -> tuple[list[float], list[int], list[int]]:
    y, a, b = [], [], []
    for (m, t), v in _BATTERY.items():
        y += [float(x) for x in v]
        a += [m] * len(v)
        b += [t] * len(v)
    return y, a, b


@pytest.mark.parametrize("typ", [1, 2, 3])
def test_two_way_anova_matches_montgomery_battery_life_example(typ: int) -> None:
    res = two_way_anova(*_battery(), typ=typ)
    want = {"A": (10683.72, 2, 7.91), "B": (39118.72, 2, 28.97), "A:B": (9613.78, 4, 3.56)}
    for key, (ss, df, f) in want.items():
        assert res.effects[key]["ss"] == pytest.approx(ss, abs=0.01)
        assert res.effects[key]["df"] == df
        assert res.effects[key]["F"] == pytest.approx(f, abs=0.005)
    assert res.ss_error == pytest.approx(18230.75, abs=0.01) and res.df_error == 27
    assert res.effects["A"]["p"] == pytest.approx(0.0020, abs=5e-5)
    assert res.effects["B"]["p"] < 1e-4
    assert res.effects["A:B"]["p"] == pytest.approx(0.0186, abs=5e-5)
    assert res.balanced and res.typ == typ
    eta = 10683.72 / (10683.72 + 18230.75)
    assert res.effects["A"]["partial_eta_sq"] == pytest.approx(eta, rel=1e-6)


def test_two_way_anova_balanced_equals_hand_written_sums_of_squares() -> None:
    rng = np.random.default_rng(5)
    ka, kb, n = 3, 4, 5
    y = rng.normal(size=(ka, kb, n)) + np.arange(ka)[:, None, None] * 0.3
    m = y.mean(2)
    grand, ma, mb = y.mean(), m.mean(1), m.mean(0)
    ss_a = n * kb * ((ma - grand) ** 2).sum()
    ss_b = n * ka * ((mb - grand) ** 2).sum()
    ss_ab = n * ((m - ma[:, None] - mb[None, :] + grand) ** 2).sum()
    ss_e = ((y - m[..., None]) ** 2).sum()
    a = [i for i in range(ka) for _ in range(kb) for _ in range(n)]
    b = [j for _ in range(ka) for j in range(kb) for _ in range(n)]
    res = two_way_anova(y.ravel().tolist(), a, b)
    for key, ss in (("A", ss_a), ("B", ss_b), ("A:B", ss_ab)):
        assert res.effects[key]["ss"] == pytest.approx(ss, rel=1e-9)
        assert res.effects[key]["partial_eta_sq"] == pytest.approx(ss / (ss + ss_e), rel=1e-9)
    f_a = (ss_a / (ka - 1)) / (ss_e / (ka * kb * (n - 1)))
    assert res.effects["A"]["p"] == pytest.approx(st.f.sf(f_a, ka - 1, ka * kb * (n - 1)))


def _rss(y: np.ndarray, *cols: np.ndarray) -> float:
    x = np.column_stack([np.ones_like(y), *cols])
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    return float(((y - x @ beta) ** 2).sum())


def test_two_way_anova_unbalanced_types_are_model_comparisons() -> None:
    rng = np.random.default_rng(7)
    sizes = {(0, 0): 2, (0, 1): 5, (1, 0): 4, (1, 1): 3}
    a = np.array([i for (i, j), k in sizes.items() for _ in range(k)], dtype=float)
    b = np.array([j for (i, j), k in sizes.items() for _ in range(k)], dtype=float)
    y = 1.0 * a + 0.5 * b + rng.normal(0, 0.5, a.size)
    t1 = two_way_anova(y.tolist(), a.tolist(), b.tolist(), typ=1)
    t2 = two_way_anova(y.tolist(), a.tolist(), b.tolist(), typ=2)
    assert not t1.balanced
    # type I: A first, ignoring B; type II: A adjusted for B (no interaction)
    assert t1.effects["A"]["ss"] == pytest.approx(_rss(y) - _rss(y, a), rel=1e-9)
    assert t2.effects["A"]["ss"] == pytest.approx(_rss(y, b) - _rss(y, a, b), rel=1e-9)
    assert t2.effects["A:B"]["ss"] == pytest.approx(_rss(y, a, b) - _rss(y, a, b, a * b))
    assert t2.ss_error == pytest.approx(_rss(y, a, b, a * b), rel=1e-9)
    assert t1.effects["A"]["ss"] != pytest.approx(t2.effects["A"]["ss"], rel=1e-6)


def test_partial_eta_sq_ci_is_the_noncentral_f_inversion() -> None:
    f, df1, df2 = 7.91, 2.0, 27.0
    lo, hi = partial_eta_sq_ci(f, df1, df2)
    n = df1 + df2 + 1
    lam_lo, lam_hi = lo * n / (1 - lo), hi * n / (1 - hi)
    assert st.ncf.cdf(f, df1, df2, lam_lo) == pytest.approx(0.975, abs=1e-7)
    assert st.ncf.cdf(f, df1, df2, lam_hi) == pytest.approx(0.025, abs=1e-7)
    point = f * df1 / (f * df1 + df2)
    assert lo < point < hi
    lo99, hi99 = partial_eta_sq_ci(f, df1, df2, 0.99)
    assert lo99 < lo and hi99 > hi
    res = two_way_anova(*_battery()).effects["A"]
    assert (res["eta_low"], res["eta_high"]) == pytest.approx(
        partial_eta_sq_ci(res["F"], df1, df2), rel=1e-12
    )


def test_partial_eta_sq_ci_small_f_has_lower_bound_zero_and_bad_input_raises() -> None:
    lo, hi = partial_eta_sq_ci(0.1, 3, 40)
    assert lo == 0.0 and 0.0 < hi < 1.0
    assert partial_eta_sq_ci(0.0, 1, 10)[0] == 0.0
    assert partial_eta_sq_ci(math.inf, 1, 10) == (1.0, 1.0)
    with pytest.raises(InvalidArgument, match="f_obs"):
        partial_eta_sq_ci(-1.0, 1, 10)
    with pytest.raises(InvalidArgument, match="df1/df2"):
        partial_eta_sq_ci(1.0, 0, 10)
    with pytest.raises(InvalidArgument, match="confidence"):
        partial_eta_sq_ci(1.0, 1, 10, 1.0)


def test_partial_eta_sq_ci_covers_the_true_value() -> None:
    # one-way layout inside the two-way table: effect of A with known population eta^2
    rng = np.random.default_rng(11)
    n, effect, misses = 6, 0.5, 0
    a = [i for i in range(2) for _ in range(2) for _ in range(n)]
    b = [j for _ in range(2) for j in range(2) for _ in range(n)]
    shift = np.where(np.asarray(a) == 1, effect, -effect)
    true = effect**2 / (effect**2 + 1.0)  # sigma^2_A / (sigma^2_A + sigma^2_error)
    reps = 60
    for _ in range(reps):
        y = shift + rng.normal(0, 1, len(a))
        e = two_way_anova(y.tolist(), a, b).effects["A"]
        misses += not (e["eta_low"] <= true <= e["eta_high"])
    assert misses <= 9  # 5% nominal: P(misses > 9 | p = 0.05, n = 60) < 0.01


def test_two_way_anova_zero_error_policy() -> None:
    y = [0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0]
    a = [0, 0, 0, 0, 1, 1, 1, 1]
    b = [0, 0, 1, 1, 0, 0, 1, 1]
    res = two_way_anova(y, a, b)
    assert res.ss_error == 0.0
    assert res.effects["B"]["F"] == math.inf and res.effects["B"]["p"] == 0.0
    assert res.effects["B"]["partial_eta_sq"] == 1.0
    assert res.effects["A"]["F"] == 0.0 and res.effects["A"]["p"] == 1.0
    assert (res.effects["A"]["eta_low"], res.effects["A"]["eta_high"]) == (0.0, 1.0)
