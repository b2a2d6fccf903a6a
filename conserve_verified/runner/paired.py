r"""Paired and clustered statistics that produce :class:`~.verdict.Estimate`\ s.

The conservation experiments compare arms that share their seeds (the same
batch order, the same noise draws), so arms are compared *paired by seed*, and
trial-level data (E5) are analysed at the level of the independent unit, the
seed, not the trial.

* :func:`average_draws` -- the mean (and SD) of ``>= min_draws`` noise draws of
  one trained model: the per-model value that enters a paired comparison.
* :func:`pair_by_seed` -- align two ``{seed: value}`` maps on their common seeds.
* :func:`paired_difference` -- ``mean(a_i - b_i)`` with its t CI, the paired
  t-test (``scipy.stats.ttest_rel``) and Cohen's ``d_z = mean(d) / sd(d)``.
* :func:`mixed_difference` -- the same contrast from a linear mixed model with
  the seed as random intercept (``statsmodels`` ``MixedLM``), for designs with
  several observations per seed and arm.
* :func:`covariate_adjusted_difference` -- the paired difference at equal
  covariate (ANCOVA on the paired differences, ``statsmodels`` OLS): the
  intercept of ``d_i = β₀ + β₁ c_i`` where ``c_i`` is the covariate difference
  (e.g. the clean-accuracy gap), so ``β₀`` is the effect at a matched covariate.
* :func:`clustered_difference` -- trial outcomes of two arms grouped in clusters
  (seeds): the per-cluster mean differences, then a t interval over clusters
  (``n`` = number of clusters, never the number of trials).
* :func:`cmh_test` -- the stratified Cochran–Mantel–Haenszel test of a common
  odds ratio 1 over 2×2 tables (``statsmodels`` ``StratifiedTable``).

Degenerate inputs get explicit policies, never NaN: paired differences with
zero variance give a zero-width CI and ``p = 1`` when their mean is 0, else
``p = 0`` or, with ``zero_variance="sign-test"``, the exact sign-test
``p = 2 · 0.5**n`` (``n`` identical signs are all the evidence there is);
seed-clustered trial differences use a within-seed variance floor
(:func:`clustered_difference`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as _st

from ..errors import InvalidArgument, InvalidArgumentType, check_int
from .stats import _confidence
from .stats import _sample as _array
from .verdict import Estimate

__all__ = [
    "MIN_DRAWS",
    "CMHResult",
    "DrawSummary",
    "average_draws",
    "clustered_difference",
    "cmh_test",
    "covariate_adjusted_difference",
    "mixed_difference",
    "pair_by_seed",
    "paired_difference",
]

#: Noise draws averaged per trained model (the issue asks for at least 20).
MIN_DRAWS = 20


@dataclass(frozen=True)
class DrawSummary:
    """Mean and SD (``ddof=1``) of ``n`` noise draws of one trained model."""

    mean: float
    sd: float
    n: int


def average_draws(values: Sequence[float], min_draws: int = MIN_DRAWS) -> DrawSummary:
    """The per-model average of its noise draws: ``mean(values)``, ``sd(values)``, ``n``.

    Raises :class:`InvalidArgument` when fewer than ``min_draws`` draws are given.
    """
    check_int("min_draws", min_draws)
    arr = _array(values, "values", min_draws)
    sd = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return DrawSummary(float(arr.mean()), sd, int(arr.size))


def pair_by_seed(
    a: Mapping[int, float | None], b: Mapping[int, float | None]
) -> tuple[list[float], list[float], list[int]]:
    """``(a_values, b_values, seeds)`` over the seeds both maps have a value for, sorted.

    Identity: ``a_values[i] == a[seeds[i]]`` and ``b_values[i] == b[seeds[i]]``.
    """
    for name, m in (("a", a), ("b", b)):
        if not isinstance(m, Mapping):
            raise InvalidArgumentType(name, m, "a mapping seed -> value")
    seeds = sorted(s for s in set(a) & set(b) if a[s] is not None and b[s] is not None)
    return [float(a[s]) for s in seeds], [float(b[s]) for s in seeds], seeds  # type: ignore[arg-type]


def _t_estimate(
    d: np.ndarray, confidence: float, method: str, zero_variance: str = "degenerate"
) -> Estimate:
    """t interval, one-sample t-test against 0 and ``d_z`` of the differences ``d``."""
    n = int(d.size)
    mean = float(d.mean())
    if n < 2:
        return Estimate(mean, None, None, None, n, method=method)
    sd = float(d.std(ddof=1))
    if sd <= 1e-12 * max(1.0, abs(mean)):  # identical up to rounding: no spread to test with
        if mean == 0.0:
            return Estimate(0.0, 0.0, 0.0, 1.0, n, 0.0, method)
        if zero_variance == "degenerate":
            return Estimate(mean, mean, mean, 0.0, n, None, method)
        # every pair differs by the same amount (discrete accuracies, few seeds): the t
        # statistic is infinite, but n identical signs carry only the evidence of an exact
        # sign test, p = 2 * 0.5**n.
        p = float(_st.binomtest(n, n, 0.5).pvalue)
        return Estimate(mean, mean, mean, p, n, None, method + "; zero variance: exact sign test")
    half = float(_st.t.ppf((1.0 + confidence) / 2.0, n - 1)) * sd / math.sqrt(n)
    p = float(_st.ttest_1samp(d, 0.0).pvalue)
    return Estimate(mean, mean - half, mean + half, p, n, mean / sd, method)


def paired_difference(
    a: Sequence[float],
    b: Sequence[float],
    confidence: float = 0.95,
    *,
    zero_variance: str = "degenerate",
) -> Estimate:
    """Paired difference ``mean(a_i - b_i)`` of two arms measured on the same units (seeds).

    Identities: ``p_value == scipy.stats.ttest_rel(a, b).pvalue``; the CI is
    ``mean(d) ± t_{(1+c)/2, n-1} · sd(d) / sqrt(n)``; ``effect_size`` is Cohen's
    ``d_z = mean(d) / sd(d)``; ``n`` the number of pairs.  One pair: the mean
    alone (no CI, no p: the verdict is "grid too small").

    Identical non-zero differences (zero variance) have an infinite t:
    ``zero_variance="degenerate"`` (default) reports ``p = 0``;
    ``zero_variance="sign-test"`` reports the exact sign-test ``p = 2 · 0.5**n``
    (all the evidence ``n`` identical signs carry; what the conservation
    experiments use, whose accuracies are discrete).
    """
    xa, xb = _array(a, "a"), _array(b, "b")
    if xa.size != xb.size:
        raise InvalidArgument("b", list(b), f"must pair with a ({xa.size} values), got {xb.size}")
    if zero_variance not in ("degenerate", "sign-test"):
        raise InvalidArgument("zero_variance", zero_variance, "must be 'degenerate' or 'sign-test'")
    return _t_estimate(xa - xb, _confidence(confidence), "paired t (by seed)", zero_variance)


def mixed_difference(
    y: Sequence[float], arm: Sequence[int], seed: Sequence[int], confidence: float = 0.95
) -> Estimate:
    """Arm contrast ``E[y | arm=1] - E[y | arm=0]`` from ``y ~ arm + (1 | seed)`` (REML).

    ``statsmodels.regression.mixed_linear_model.MixedLM`` with a random
    intercept per seed; the CI and the p-value are the Wald ones of the fixed
    effect of ``arm``.  For one observation per (seed, arm) and balanced data
    its point estimate equals :func:`paired_difference`'s mean.
    """
    import warnings

    from statsmodels.regression.mixed_linear_model import MixedLM

    yy = _array(y, "y", 4)
    aa = _array(arm, "arm", 4)
    if aa.size != yy.size or len(list(seed)) != yy.size:
        raise InvalidArgument("arm/seed", (aa.size, len(list(seed))), f"need {yy.size} each")
    if set(np.unique(aa)) - {0.0, 1.0} or len(np.unique(aa)) != 2:
        raise InvalidArgument("arm", list(arm), "must hold both 0 and 1 and nothing else")
    groups = np.asarray(list(seed))
    exog = np.column_stack([np.ones_like(aa), aa])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = MixedLM(yy, exog, groups=groups).fit(reml=True)
    c = _confidence(confidence)
    mean = float(fit.fe_params[1])
    se = float(fit.bse_fe[1])
    n = len(np.unique(groups))
    if not math.isfinite(se) or se == 0.0:
        p = 1.0 if mean == 0.0 else 0.0
        return Estimate(mean, mean, mean, p, n, method="mixed model (seed random intercept)")
    z = float(_st.norm.ppf((1.0 + c) / 2.0))
    p = float(2 * _st.norm.sf(abs(mean / se)))
    return Estimate(
        mean, mean - z * se, mean + z * se, p, n, method="mixed model (seed random intercept)"
    )


def covariate_adjusted_difference(
    a: Sequence[float],
    b: Sequence[float],
    cov_a: Sequence[float],
    cov_b: Sequence[float],
    confidence: float = 0.95,
) -> Estimate:
    """Paired difference at a matched covariate: intercept ``β₀`` of ``d_i = β₀ + β₁ c_i``.

    ``d_i = a_i - b_i`` and ``c_i = cov_a_i - cov_b_i`` (e.g. the clean-accuracy
    gap between the arms of seed ``i``); ordinary least squares
    (``statsmodels`` OLS), t CI and t-test of ``β₀`` with ``n - 2`` df.  Needs
    ``n >= 3`` pairs and a covariate difference that varies (else the plain
    :func:`paired_difference` is the answer and is returned, method says so).
    """
    import statsmodels.api as sm

    xa, xb = _array(a, "a"), _array(b, "b")
    ca, cb = _array(cov_a, "cov_a"), _array(cov_b, "cov_b")
    if not (xa.size == xb.size == ca.size == cb.size):
        raise InvalidArgument("a/b/cov_a/cov_b", (xa.size, xb.size, ca.size, cb.size), "same n")
    d, c = xa - xb, ca - cb
    conf = _confidence(confidence)
    if d.size < 3 or float(np.ptp(c)) == 0.0:
        est = _t_estimate(d, conf, "paired t (covariate constant: no adjustment)")
        return est
    fit = sm.OLS(d, sm.add_constant(c)).fit()
    mean = float(fit.params[0])
    lo, hi = (float(v) for v in fit.conf_int(alpha=1.0 - conf)[0])
    p = float(fit.pvalues[0])
    if not (math.isfinite(lo) and math.isfinite(hi) and math.isfinite(p)):
        return Estimate(mean, mean, mean, 1.0 if mean == 0 else 0.0, int(d.size), method="OLS")
    return Estimate(mean, lo, hi, p, int(d.size), method="paired, adjusted for covariate gap (OLS)")


def clustered_difference(
    a: Sequence[float],
    b: Sequence[float],
    clusters: Sequence[Any],
    confidence: float = 0.95,
) -> Estimate:
    """Difference of two arms' trial outcomes with the cluster (seed) as the unit.

    ``a[i]``, ``b[i]`` are the two arms' outcomes of trial ``i`` (paired: the same
    target and noise draw), ``clusters[i]`` its cluster.  With ``d_i = a_i - b_i``
    and the per-cluster means ``m_k`` (``K`` clusters, ``n_k`` trials each), the
    estimate is ``mean(m)`` with the t interval ``mean(m) ± t_{K-1} · se`` and the
    t-test of 0 (``n = K`` clusters, never the number of trials), where

    ``se² = max(var(m), mean_k(var_k(d) / n_k)) / K``:

    the variance of a cluster mean is at least its within-cluster sampling
    variance, so when the observed between-cluster variance falls below it (e.g.
    three seeds that happen to give the same rate difference) the floor is used
    rather than a zero-width interval.  Trials of one cluster share a trained
    model, so they are not independent; this interval is wider than the pooled
    one whenever clusters differ.
    """
    xa, xb = _array(a, "a"), _array(b, "b")
    cl = list(clusters)
    if not (xa.size == xb.size == len(cl)):
        raise InvalidArgument("clusters", len(cl), f"need one per trial ({xa.size})")
    keys = sorted(set(cl), key=repr)
    d = xa - xb
    parts = [d[[i for i, k in enumerate(cl) if k == key]] for key in keys]
    means = np.asarray([p.mean() for p in parts])
    method = f"cluster-level t ({len(keys)} seeds)"
    conf = _confidence(confidence)
    k = int(means.size)
    mean = float(means.mean())
    if k < 2:
        return Estimate(mean, None, None, None, k, method=method)
    between = float(means.var(ddof=1))
    within = float(np.mean([p.var(ddof=1) / p.size if p.size > 1 else 0.0 for p in parts]))
    var = max(between, within)
    if var == 0.0:
        p0 = 1.0 if mean == 0.0 else 0.0
        return Estimate(mean, mean, mean, p0, k, method=method)
    se = math.sqrt(var / k)
    tq = float(_st.t.ppf((1.0 + conf) / 2.0, k - 1))
    p_val = float(2 * _st.t.sf(abs(mean / se), k - 1))
    if within > between:
        method += ", within-seed variance floor"
    return Estimate(mean, mean - tq * se, mean + tq * se, p_val, k, mean / math.sqrt(var), method)


@dataclass(frozen=True)
class CMHResult:
    """Cochran–Mantel–Haenszel test of a common odds ratio of 1 across strata."""

    statistic: float
    p_value: float
    odds_ratio: float
    strata: int


def cmh_test(tables: Sequence[Sequence[Sequence[float]]]) -> CMHResult:
    """Stratified CMH test over 2×2 tables ``[[a_success, a_fail], [b_success, b_fail]]``.

    ``statsmodels.stats.contingency_tables.StratifiedTable(...).test_null_odds(
    correction=False)`` and its pooled Mantel–Haenszel odds ratio.  Strata
    without any discordance information (a row or column sum of 0) contribute
    nothing; when every stratum is like that the test is undefined and
    ``p = 1`` (no evidence of a difference) is returned.
    """
    from statsmodels.stats.contingency_tables import StratifiedTable

    arr = np.asarray(tables, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[1:] != (2, 2) or arr.shape[0] < 1:
        raise InvalidArgument("tables", arr.shape, "must have shape (strata, 2, 2)")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise InvalidArgument("tables", arr.tolist(), "counts must be finite and >= 0")
    usable = [
        t for t in arr if t.sum(0).min() > 0 and t.sum(1).min() > 0
    ]  # both arms and both outcomes present
    if not usable:
        return CMHResult(0.0, 1.0, 1.0, int(arr.shape[0]))
    st = StratifiedTable(np.stack(usable, axis=2))
    res = st.test_null_odds(correction=False)
    stat, p = float(res.statistic), float(res.pvalue)
    if not math.isfinite(p):
        stat, p = 0.0, 1.0
    odds = float(st.oddsratio_pooled)
    return CMHResult(stat, p, odds if math.isfinite(odds) else math.inf, int(arr.shape[0]))
