r"""Statistics for experiment reports (thin, checked wrappers over :mod:`scipy.stats`).

* :func:`mean_ci` -- mean with a t-based confidence interval:
  ``mean ± t_{(1+c)/2, n-1} · s / sqrt(n)``.
* :func:`welch` -- Welch's unequal-variance t-test of two samples.
* :func:`welch_from_stats` -- the same test from summary statistics (mean, SD, n),
  used to compare our runs with a paper's reported ``mean ± SD`` over its seeds.
* :func:`cohens_d` / :func:`hedges_g` / :func:`hedges_g_from_stats` -- standardised
  mean difference with the pooled SD, and its small-sample bias correction
  ``g = d · (1 - 3 / (4 (n_a + n_b) - 9))``.
* :func:`two_way_anova` -- two-factor ANOVA with interaction (statsmodels'
  ``ols`` + ``anova_lm``), with each effect's partial η² and its noncentral-F
  confidence interval (:func:`partial_eta_sq_ci`); used for the architecture ×
  dataset factorials of the λ-sweep and the energy-first experiment.

Degenerate inputs follow explicit policies instead of returning NaN:
a single observation has an unbounded interval (``±inf``); two samples with
zero variance give ``p = 1`` when their means are equal and ``p = 0`` otherwise,
and an effect size of ``0`` or ``±inf`` likewise.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as _st

from ..errors import InvalidArgument, InvalidArgumentType

__all__ = [
    "AnovaResult",
    "MeanCI",
    "TTest",
    "cohens_d",
    "hedges_g",
    "hedges_g_from_stats",
    "mean_ci",
    "mean_diff_ci",
    "partial_eta_sq_ci",
    "two_way_anova",
    "welch",
    "welch_from_stats",
]


def _sample(values: Any, name: str, min_n: int = 1) -> np.ndarray:
    if isinstance(values, (str, bytes)) or not isinstance(values, (Iterable, np.ndarray)):
        raise InvalidArgumentType(name, values, "a sequence of real numbers")
    try:
        arr = np.asarray(list(values), dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidArgumentType(name, values, "a sequence of real numbers") from None
    if arr.ndim != 1:
        raise InvalidArgument(name, values, "must be one-dimensional")
    if arr.size < min_n:
        raise InvalidArgument(name, values, f"needs at least {min_n} value(s), got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise InvalidArgument(name, values, "contains NaN or Inf")
    return arr


def _confidence(confidence: float) -> float:
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)):
        raise InvalidArgumentType("confidence", confidence, "a real number")
    if not 0.0 < confidence < 1.0:
        raise InvalidArgument("confidence", confidence, "must lie in (0, 1)")
    return float(confidence)


@dataclass(frozen=True)
class MeanCI:
    """Mean of a sample with a two-sided t confidence interval.

    ``half_width = t_{(1+confidence)/2, n-1} · sd / sqrt(n)``; ``low = mean - half_width``,
    ``high = mean + half_width``; ``sd`` is the sample SD (``ddof=1``, 0 when n = 1).
    """

    mean: float
    low: float
    high: float
    half_width: float
    sd: float
    n: int
    confidence: float

    def __str__(self) -> str:
        return f"{self.mean:.4g} ± {self.half_width:.2g} (n={self.n})"


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> MeanCI:
    """Mean with a t-based ``confidence`` interval (``±inf`` half-width when ``n == 1``)."""
    arr = _sample(values, "values")
    c = _confidence(confidence)
    n = int(arr.size)
    mean = float(arr.mean())
    if n == 1:
        return MeanCI(mean, -math.inf, math.inf, math.inf, 0.0, 1, c)
    sd = float(arr.std(ddof=1))
    half = float(_st.t.ppf((1.0 + c) / 2.0, n - 1)) * sd / math.sqrt(n)
    return MeanCI(mean, mean - half, mean + half, half, sd, n, c)


def mean_diff_ci(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> MeanCI:
    """Welch confidence interval of ``mean(a) - mean(b)`` (independent samples, n >= 2 each).

    ``half_width = t_{(1+c)/2, df} · sqrt(s_a²/n_a + s_b²/n_b)`` with the
    Welch–Satterthwaite ``df``; ``n`` is ``min(n_a, n_b)``, ``sd`` the standard error.
    """
    xa, xb = _sample(a, "a", 2), _sample(b, "b", 2)
    c = _confidence(confidence)
    va, vb = xa.var(ddof=1) / xa.size, xb.var(ddof=1) / xb.size
    diff = float(xa.mean() - xb.mean())
    se = math.sqrt(va + vb)
    if se == 0.0:
        return MeanCI(diff, diff, diff, 0.0, 0.0, int(min(xa.size, xb.size)), c)
    df = (va + vb) ** 2 / (va**2 / (xa.size - 1) + vb**2 / (xb.size - 1))
    half = float(_st.t.ppf((1.0 + c) / 2.0, df)) * se
    return MeanCI(diff, diff - half, diff + half, half, se, int(min(xa.size, xb.size)), c)


@dataclass(frozen=True)
class TTest:
    """Result of a t-test: statistic, two-sided p-value and (Welch) degrees of freedom."""

    statistic: float
    p_value: float
    df: float


def _degenerate(mean_a: float, mean_b: float, df: float) -> TTest:
    if mean_a == mean_b:
        return TTest(0.0, 1.0, df)
    return TTest(math.copysign(math.inf, mean_a - mean_b), 0.0, df)


def _check_summary(
    mean_a: float, sd_a: float, n_a: int, mean_b: float, sd_b: float, n_b: int
) -> None:
    """Summary statistics must be finite, SDs >= 0 and sizes ints >= 2 (else InvalidArgument)."""
    for name, v in (("mean_a", mean_a), ("sd_a", sd_a), ("mean_b", mean_b), ("sd_b", sd_b)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise InvalidArgument(name, v, "must be a finite real number")
    for name, v in (("sd_a", sd_a), ("sd_b", sd_b)):
        if v < 0:
            raise InvalidArgument(name, v, "must be >= 0")
    for name, n in (("n_a", n_a), ("n_b", n_b)):
        if isinstance(n, bool) or not isinstance(n, int) or n < 2:
            raise InvalidArgument(name, n, "must be an int >= 2")


def welch_from_stats(
    mean_a: float, sd_a: float, n_a: int, mean_b: float, sd_b: float, n_b: int
) -> TTest:
    """Welch's t-test from summary statistics (SDs with ``ddof=1``).

    Identity: ``t = (m_a - m_b) / sqrt(s_a²/n_a + s_b²/n_b)``; df by Welch–Satterthwaite.
    """
    _check_summary(mean_a, sd_a, n_a, mean_b, sd_b, n_b)
    va, vb = sd_a**2 / n_a, sd_b**2 / n_b
    if va + vb == 0.0:
        return _degenerate(float(mean_a), float(mean_b), float(n_a + n_b - 2))
    df = (va + vb) ** 2 / ((va**2) / (n_a - 1) + (vb**2) / (n_b - 1))
    res = _st.ttest_ind_from_stats(mean_a, sd_a, n_a, mean_b, sd_b, n_b, equal_var=False)
    return TTest(float(res.statistic), float(res.pvalue), float(df))


def welch(a: Sequence[float], b: Sequence[float]) -> TTest:
    """Welch's unequal-variance two-sample t-test (two-sided).

    Identity: equals ``scipy.stats.ttest_ind(a, b, equal_var=False)`` (checked in tests).
    """
    xa, xb = _sample(a, "a", 2), _sample(b, "b", 2)
    return welch_from_stats(
        float(xa.mean()),
        float(xa.std(ddof=1)),
        xa.size,
        float(xb.mean()),
        float(xb.std(ddof=1)),
        xb.size,
    )


def _pooled_d(
    mean_a: float, var_a: float, n_a: int, mean_b: float, var_b: float, n_b: int
) -> float:
    pooled = math.sqrt(((n_a - 1) * var_a + (n_b - 1) * var_b) / (n_a + n_b - 2))
    diff = float(mean_a - mean_b)
    if pooled == 0.0:
        return 0.0 if diff == 0.0 else math.copysign(math.inf, diff)
    return diff / pooled


def _hedges_factor(n_total: int) -> float:
    return 1.0 - 3.0 / (4.0 * n_total - 9.0)


def cohens_d(a: Sequence[float], b: Sequence[float]) -> float:
    """Cohen's d: ``(mean_a - mean_b) / s_pooled``.

    ``s_pooled² = ((n_a - 1) s_a² + (n_b - 1) s_b²) / (n_a + n_b - 2)``.
    """
    xa, xb = _sample(a, "a", 2), _sample(b, "b", 2)
    var_a, var_b = float(xa.var(ddof=1)), float(xb.var(ddof=1))
    return _pooled_d(float(xa.mean()), var_a, xa.size, float(xb.mean()), var_b, xb.size)


def hedges_g(a: Sequence[float], b: Sequence[float]) -> float:
    """Hedges' g: ``cohens_d(a, b) · (1 - 3 / (4 (n_a + n_b) - 9))``."""
    d = cohens_d(a, b)
    n = len(list(a)) + len(list(b))
    return d * _hedges_factor(n)


def hedges_g_from_stats(
    mean_a: float, sd_a: float, n_a: int, mean_b: float, sd_b: float, n_b: int
) -> float:
    """Hedges' g from summary statistics (SDs with ``ddof=1``), as :func:`hedges_g`.

    Identity: equals ``hedges_g(a, b)`` for samples with those means, SDs and sizes.
    Invalid statistics raise :class:`InvalidArgument` as in :func:`welch_from_stats`.
    """
    _check_summary(mean_a, sd_a, n_a, mean_b, sd_b, n_b)
    return _pooled_d(mean_a, sd_a**2, n_a, mean_b, sd_b**2, n_b) * _hedges_factor(n_a + n_b)


@dataclass(frozen=True)
class AnovaResult:
    """Two-way ANOVA table: per effect its sum of squares, df, F, p and partial η² with a CI.

    ``effects`` maps ``"A"``, ``"B"``, ``"A:B"`` to dicts with keys ``ss``, ``df``,
    ``F``, ``p``, ``partial_eta_sq``, ``eta_low``, ``eta_high``; ``ss_error``/``df_error``
    the residual; ``typ`` the sums-of-squares type; ``balanced`` whether every cell
    has the same number of observations (then types I, II and III coincide).
    Partial η² of an effect is ``SS_effect / (SS_effect + SS_error)``; its
    ``confidence`` interval is the noncentral-F interval (see :func:`partial_eta_sq_ci`).
    """

    effects: dict[str, dict[str, float]]
    ss_error: float
    df_error: int
    typ: int = 2
    balanced: bool = True
    confidence: float = 0.95


def _ncp_for(f_obs: float, df1: float, df2: float, target: float) -> float:
    """Noncentrality ``λ >= 0`` with ``P(F'(df1, df2, λ) <= f_obs) = target`` (0 if none)."""
    from scipy.optimize import brentq

    def gap(lam: float) -> float:
        return float(_st.ncf.cdf(f_obs, df1, df2, lam)) - target

    if gap(0.0) <= 0.0:
        return 0.0
    hi = max(10.0, f_obs * df1 * 2.0)
    while gap(hi) > 0.0:
        hi *= 4.0
        if hi > 1e12:
            return hi
    return float(brentq(gap, 0.0, hi, xtol=1e-10, rtol=1e-12))


def partial_eta_sq_ci(
    f_obs: float, df1: float, df2: float, confidence: float = 0.95
) -> tuple[float, float]:
    """Two-sided confidence interval of a partial η² from its F statistic (noncentral F).

    Identity: with ``λ_lo``/``λ_hi`` the noncentralities at which ``f_obs`` is the
    ``(1+c)/2`` / ``(1-c)/2`` quantile of ``F'(df1, df2, λ)`` (0 where none exists),
    the interval is ``λ / (λ + df1 + df2 + 1)`` at both (Steiger 2004; the
    ``effectsize``/MBESS construction).  It covers the *population* partial η²;
    the sample value ``F·df1 / (F·df1 + df2)`` is biased upwards and may lie
    outside it (an F far below 1 gives ``[0, 0]``).
    """
    c = _confidence(confidence)
    for name, v in (("f_obs", f_obs), ("df1", df1), ("df2", df2)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
            raise InvalidArgument(name, v, "must be a real number")
    if df1 <= 0 or df2 <= 0 or not (math.isfinite(df1) and math.isfinite(df2)):
        raise InvalidArgument("df1/df2", (df1, df2), "must be finite and > 0")
    if f_obs < 0:
        raise InvalidArgument("f_obs", f_obs, "must be >= 0")
    if math.isinf(f_obs):
        return 1.0, 1.0
    n = df1 + df2 + 1.0
    lo = _ncp_for(float(f_obs), float(df1), float(df2), (1.0 + c) / 2.0)
    hi = _ncp_for(float(f_obs), float(df1), float(df2), (1.0 - c) / 2.0)
    return lo / (lo + n), hi / (hi + n)


_EFFECT_TERMS = (("A", "C(a, Sum)"), ("B", "C(b, Sum)"), ("A:B", "C(a, Sum):C(b, Sum)"))


def two_way_anova(
    y: Sequence[float],
    a: Sequence[Any],
    b: Sequence[Any],
    *,
    typ: int = 2,
    confidence: float = 0.95,
) -> AnovaResult:
    """Two-factor ANOVA with interaction, by statsmodels (``ols`` + ``anova_lm``).

    The model is ``y ~ C(a, Sum) * C(b, Sum)`` (sum-to-zero contrasts, so type III
    is meaningful); ``typ`` is the sums-of-squares type (1, 2 or 3).  Every
    ``(a, b)`` cell needs at least 2 observations; unequal cell sizes are allowed.
    Identity (balanced designs): ``SS_total = SS_A + SS_B + SS_AB + SS_error``,
    and types I, II and III agree.  When ``SS_error`` is 0 (to rounding) an
    effect gets ``F = inf, p = 0`` if its SS is positive and ``F = 0, p = 1``
    otherwise; partial η² is then 1 (CI [1, 1]) or 0 (CI [0, 1]).
    """
    import pandas as pd
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    yy = _sample(y, "y", 4)
    c = _confidence(confidence)
    if typ not in (1, 2, 3) or isinstance(typ, bool):
        raise InvalidArgument("typ", typ, "must be 1, 2 or 3")
    la, lb = [str(v) for v in a], [str(v) for v in b]
    if len(la) != yy.size or len(lb) != yy.size:
        raise InvalidArgument("a/b", (len(la), len(lb)), f"must have the length of y ({yy.size})")
    levels_a, levels_b = sorted(set(la)), sorted(set(lb))
    if len(levels_a) < 2 or len(levels_b) < 2:
        raise InvalidArgument("a/b", (levels_a, levels_b), "each factor needs at least 2 levels")
    counts = {(i, j): 0 for i in levels_a for j in levels_b}
    for fa, fb in zip(la, lb, strict=True):
        counts[(fa, fb)] += 1
    if min(counts.values()) < 2:
        raise InvalidArgument(
            "design",
            sorted(counts.items()),
            "needs every (a, b) cell filled with at least 2 observations",
        )
    frame = pd.DataFrame({"y": yy, "a": la, "b": lb})
    fit = smf.ols("y ~ C(a, Sum) * C(b, Sum)", data=frame).fit()
    table = anova_lm(fit, typ=typ)
    ss_e = float(table.loc["Residual", "sum_sq"])
    df_e = round(float(table.loc["Residual", "df"]))
    ss_total = float(((yy - yy.mean()) ** 2).sum())
    no_error = ss_e <= 1e-12 * max(ss_total, 1e-300)
    if no_error:
        ss_e = 0.0
    effects: dict[str, dict[str, float]] = {}
    for key, term in _EFFECT_TERMS:
        ss = max(float(table.loc[term, "sum_sq"]), 0.0)
        df = float(table.loc[term, "df"])
        if no_error:
            positive = ss > 1e-12 * max(ss_total, 1e-300)
            f, p = (math.inf, 0.0) if positive else (0.0, 1.0)
            eta, lo, hi = (1.0, 1.0, 1.0) if positive else (0.0, 0.0, 1.0)
        else:
            f, p = float(table.loc[term, "F"]), float(table.loc[term, "PR(>F)"])
            eta = ss / (ss + ss_e)
            lo, hi = partial_eta_sq_ci(f, df, float(df_e), c)
        effects[key] = {
            "ss": ss,
            "df": df,
            "F": f,
            "p": p,
            "partial_eta_sq": eta,
            "eta_low": lo,
            "eta_high": hi,
        }
    balanced = len(set(counts.values())) == 1
    return AnovaResult(effects, ss_e, df_e, typ, balanced, c)
