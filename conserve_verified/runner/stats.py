r"""Statistics for experiment reports (thin, checked wrappers over :mod:`scipy.stats`).

* :func:`mean_ci` -- mean with a t-based confidence interval:
  ``mean ± t_{(1+c)/2, n-1} · s / sqrt(n)``.
* :func:`welch` -- Welch's unequal-variance t-test of two samples.
* :func:`welch_from_stats` -- the same test from summary statistics (mean, SD, n),
  used to compare our runs with a paper's reported ``mean ± SD`` over its seeds.
* :func:`cohens_d` / :func:`hedges_g` / :func:`hedges_g_from_stats` -- standardised
  mean difference with the pooled SD, and its small-sample bias correction
  ``g = d · (1 - 3 / (4 (n_a + n_b) - 9))``.
* :func:`two_way_anova` -- two-factor ANOVA with interaction for a balanced
  design, with each effect's partial η² (used for the architecture × dataset
  interaction of the λ-sweep).

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
    """Two-way ANOVA table: per effect its sum of squares, df, F, p and partial η².

    ``effects`` maps ``"A"``, ``"B"``, ``"A:B"`` to dicts with keys
    ``ss``, ``df``, ``F``, ``p``, ``partial_eta_sq``; ``ss_error``/``df_error`` the residual.
    Partial η² of an effect is ``SS_effect / (SS_effect + SS_error)``.
    """

    effects: dict[str, dict[str, float]]
    ss_error: float
    df_error: int


def two_way_anova(y: Sequence[float], a: Sequence[Any], b: Sequence[Any]) -> AnovaResult:
    """Two-factor ANOVA with interaction for a balanced design (equal n per cell, n >= 2).

    Identity (balanced designs): ``SS_total = SS_A + SS_B + SS_AB + SS_error``.
    Raises :class:`InvalidArgument` for unbalanced or incomplete designs.
    """
    yy = _sample(y, "y", 4)
    la, lb = list(a), list(b)
    if len(la) != yy.size or len(lb) != yy.size:
        raise InvalidArgument("a/b", (len(la), len(lb)), f"must have the length of y ({yy.size})")
    levels_a, levels_b = sorted(set(map(str, la))), sorted(set(map(str, lb)))
    if len(levels_a) < 2 or len(levels_b) < 2:
        raise InvalidArgument("a/b", (levels_a, levels_b), "each factor needs at least 2 levels")
    cell: dict[tuple[str, str], list[float]] = {}
    for v, fa, fb in zip(yy, la, lb, strict=True):
        cell.setdefault((str(fa), str(fb)), []).append(float(v))
    counts = {len(cell.get((i, j), [])) for i in levels_a for j in levels_b}
    if len(counts) != 1 or min(counts) < 2:
        raise InvalidArgument(
            "design",
            sorted((k, len(v)) for k, v in cell.items()),
            "needs every (a, b) cell filled with the same number (>= 2) of observations",
        )
    n = counts.pop()
    ka, kb = len(levels_a), len(levels_b)
    grand = float(yy.mean())
    m = np.array([[np.mean(cell[(i, j)]) for j in levels_b] for i in levels_a])
    ma, mb = m.mean(axis=1), m.mean(axis=0)
    ss_a = float(n * kb * ((ma - grand) ** 2).sum())
    ss_b = float(n * ka * ((mb - grand) ** 2).sum())
    ss_ab = float(n * ((m - ma[:, None] - mb[None, :] + grand) ** 2).sum())
    ss_e = float(sum(((np.asarray(v) - np.mean(v)) ** 2).sum() for v in cell.values()))
    df_a, df_b, df_ab, df_e = ka - 1, kb - 1, (ka - 1) * (kb - 1), ka * kb * (n - 1)
    effects: dict[str, dict[str, float]] = {}
    for key, ss, df in (("A", ss_a, df_a), ("B", ss_b, df_b), ("A:B", ss_ab, df_ab)):
        if ss_e == 0.0:
            f, p = (0.0, 1.0) if ss == 0.0 else (math.inf, 0.0)
        else:
            f = (ss / df) / (ss_e / df_e)
            p = float(_st.f.sf(f, df, df_e))
        denom = ss + ss_e
        eta = 0.0 if denom == 0.0 else ss / denom
        effects[key] = {"ss": ss, "df": float(df), "F": float(f), "p": p, "partial_eta_sq": eta}
    return AnovaResult(effects, ss_e, df_e)
