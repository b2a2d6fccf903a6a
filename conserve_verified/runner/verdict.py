r"""Claim rows: the paper's number next to ours, with a CI, a test, an effect size and a verdict.

An :class:`Estimate` is one measured quantity: its mean, 95% CI ``[low, high]``,
a two-sided test p-value, ``n`` independent units (seeds), an effect size and
the name of the method that produced it.  :func:`effect_row` turns it into a
claim row and gives the row a verdict; :func:`holm_adjust` corrects the
p-values of one claim's rows for multiple testing (Holm) and re-derives the
verdicts.  :func:`difference_row` (Welch, two independent arms) and
:func:`level_row` (one arm's level) build the :class:`Estimate` from raw runs.

Verdict rules (:func:`verdict_of`), with *significant* meaning ``p < 0.05``
(the Holm-adjusted p when the row has one; without any p, the CI excluding the
reference value stands in for the test):

* **grid too small for a verdict** -- ``n < 2`` or no finite CI.
* ``compare="effect"`` (a difference between arms; the test is against 0):

  - practically zero (``margin`` given, the claim is not a non-effect, and the
    whole CI lies inside ``[-margin, margin]``): **not reproduced**, however
    small p is (e.g. a difference of 0.01 pp with identical seeds).

  - claimed non-effect (``margin`` given and ``|paper| <= margin``):
    **reproduced** when the CI lies inside ``[-margin, margin]``; **larger**
    when the effect is significant and the CI lies entirely outside it;
    otherwise **consistent but inconclusive**.
  - claimed effect ``paper != 0``: **reversed** when significant with the
    opposite sign; **reproduced** when significant and ``low <= paper <= high``;
    **smaller** / **larger** when significant, same sign and the CI lies
    entirely below / above the paper's magnitude; not significant:
    **consistent but inconclusive** when the CI contains the paper's value,
    else **not reproduced**.
  - no paper value (``paper=None``: the claim states a positive effect of
    unstated size): significant positive -> **reproduced**, significant
    negative -> **reversed**, not significant -> **not reproduced** when a
    ``margin`` is given and the CI lies inside ``[-margin, margin]``, else
    **consistent but inconclusive**.

* ``compare="level"`` (a level, e.g. one arm's retention; the test, when any,
  is ours vs the paper's summary statistics):
  **reproduced** when ``low <= paper <= high`` and the CI is decisive -- inside
  ``[paper - margin, paper + margin]`` when a margin is given, else excluding 0;
  **consistent but inconclusive** when the CI contains the paper's value but
  is not decisive; **reversed** when the CI lies entirely on the other side
  of 0 from the paper's value; **smaller** / **larger** when the CI lies
  entirely below / above the paper's value and, when a p is given, it is
  significant (not significant: **consistent but inconclusive**, the paper's
  own spread covers the gap).

``refuted`` (a counterexample), ``proved`` (a corrected statement, with its
scope) and ``not decided`` (no certificate, or the engine said UNKNOWN/ERROR)
are reserved for rows built from the proof certificate (:func:`refuted_row`,
:func:`proof_row`; claim B).  ``not measured`` is the report's word for a
claim no experiment speaks to.  A wide CI can never earn **reproduced**: the
CI must also exclude no-effect (or fit in the stated margin).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidArgument, InvalidArgumentType
from .stats import hedges_g, hedges_g_from_stats, mean_ci, mean_diff_ci, welch, welch_from_stats

__all__ = [
    "ALPHA",
    "COMPARES",
    "GRID_TOO_SMALL",
    "VERDICTS",
    "Estimate",
    "difference_row",
    "effect_row",
    "estimate_mean",
    "holm_adjust",
    "level_row",
    "proof_row",
    "refuted_row",
    "verdict_of",
]

#: Significance level of every test (applied to the Holm-adjusted p when present).
ALPHA = 0.05

#: Verdict of a row whose grid cannot decide (fewer than 2 units or no CI).
GRID_TOO_SMALL = "grid too small for a verdict"

#: Possible verdicts, in report order.
VERDICTS = (
    "reproduced",
    "consistent but inconclusive",
    "smaller",
    "larger",
    "not reproduced",
    "reversed",
    "refuted",
    "proved",
    GRID_TOO_SMALL,
    "not decided",
    "not measured",
)

#: What a row compares: an effect (difference between arms, tested against 0) or a level.
COMPARES = ("effect", "level")

ClaimRow = dict[str, Any]


def _opt_real(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgumentType(name, value, "a real number or None")
    if math.isnan(value):
        raise InvalidArgument(name, value, "must not be NaN")
    return float(value)


@dataclass(frozen=True)
class Estimate:
    """An effect (or level) with its 95% CI ``[low, high]`` and a two-sided test p-value.

    ``n`` is the number of independent units (e.g. seeds); ``effect_size`` a
    standardised effect (Hedges' g, Cohen's d_z, ...); ``method`` names the
    statistics (e.g. ``"paired t"``).  Invariants (checked): ``low <= high``
    when both are given, ``0 <= p_value <= 1``, ``n`` an int ``>= 0``.
    """

    mean: float | None
    low: float | None
    high: float | None
    p_value: float | None
    n: int
    effect_size: float | None = None
    method: str = ""

    def __post_init__(self) -> None:
        for name in ("mean", "low", "high", "p_value", "effect_size"):
            _opt_real(name, getattr(self, name))
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 0:
            raise InvalidArgument("n", self.n, "must be an int >= 0")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise InvalidArgument("low/high", (self.low, self.high), "needs low <= high")
        if self.p_value is not None and not 0.0 <= self.p_value <= 1.0:
            raise InvalidArgument("p_value", self.p_value, "must lie in [0, 1]")
        if not isinstance(self.method, str):
            raise InvalidArgumentType("method", self.method, "a string")


def _significant(p: float | None, low: float, high: float, ref: float) -> bool:
    if p is not None:
        return p < ALPHA
    return not (low <= ref <= high)


def verdict_of(
    paper: float | None,
    mean: float | None,
    low: float | None,
    high: float | None,
    n: int,
    p: float | None,
    *,
    margin: float | None = None,
    compare: str = "effect",
) -> str:
    """The verdict of one row (rules in the module docstring); ``p`` is the p to test with."""
    if compare not in COMPARES:
        raise InvalidArgument("compare", compare, f"must be one of {COMPARES}")
    if (
        n < 2
        or mean is None
        or low is None
        or high is None
        or not (math.isfinite(low) and math.isfinite(high))
    ):
        return GRID_TOO_SMALL
    if compare == "level":
        if paper is None:
            raise InvalidArgument("paper", paper, "a level row needs the paper's value")
        return _level_verdict(paper, low, high, p, margin)
    if (
        margin is not None
        and (paper is None or abs(paper) > margin)
        and -margin <= low
        and high <= margin
    ):
        # practically zero: the whole CI lies inside +-margin, however small p is
        return "not reproduced"
    sig = _significant(p, low, high, 0.0)
    if paper is None:
        if sig:
            return "reproduced" if mean > 0 else "reversed"
        if margin is not None and -margin <= low and high <= margin:
            return "not reproduced"
        return "consistent but inconclusive"
    if margin is not None and abs(paper) <= margin:
        if -margin <= low and high <= margin:
            return "reproduced"
        if sig and (low > margin or high < -margin):
            return "larger"
        return "consistent but inconclusive"
    if sig and paper != 0 and mean != 0 and math.copysign(1, mean) != math.copysign(1, paper):
        return "reversed"
    inside = low <= paper <= high
    if sig:
        if inside:
            return "reproduced"
        if paper == 0:
            return "larger"
        below = high < paper if paper > 0 else low > paper
        return "smaller" if below else "larger"
    return "consistent but inconclusive" if inside else "not reproduced"


def _level_verdict(
    paper: float, low: float, high: float, p: float | None, margin: float | None
) -> str:
    if low <= paper <= high:
        if margin is not None:
            decisive = paper - margin <= low and high <= paper + margin
        else:
            decisive = not (low <= 0.0 <= high)
        return "reproduced" if decisive else "consistent but inconclusive"
    if paper != 0 and (high < 0 < paper or paper < 0 < low):
        return "reversed"
    if p is not None and p >= ALPHA:
        return "consistent but inconclusive"
    below = high < paper
    if paper < 0:
        below = not below
    return "smaller" if below else "larger"


def _row_verdict(row: ClaimRow) -> str:
    p = row.get("p_holm")
    if p is None:
        p = row.get("p_value")
    return verdict_of(
        row.get("paper"),
        row.get("mean"),
        row.get("low"),
        row.get("high"),
        int(row.get("n") or 0),
        p,
        margin=row.get("margin"),
        compare=row.get("compare", "effect"),
    )


def effect_row(
    claim: str,
    quantity: str,
    paper: float | None,
    est: Estimate,
    *,
    note: str = "",
    margin: float | None = None,
    compare: str = "effect",
) -> ClaimRow:
    """A claim row for ``est`` against the paper's value, with its verdict.

    Keys: claim, quantity, paper, mean, low, high, n, p_value, effect_size,
    verdict, note, method, compare, margin, p_holm (``None`` until
    :func:`holm_adjust`).  ``row["verdict"] == verdict_of(paper, est.mean,
    est.low, est.high, est.n, est.p_value, margin=margin, compare=compare)``.
    """
    if not isinstance(claim, str) or not claim:
        raise InvalidArgument("claim", claim, "must be a non-empty claim id")
    if not isinstance(quantity, str) or not quantity:
        raise InvalidArgument("quantity", quantity, "must be a non-empty description")
    if not isinstance(est, Estimate):
        raise InvalidArgumentType("est", est, "an Estimate")
    if compare not in COMPARES:
        raise InvalidArgument("compare", compare, f"must be one of {COMPARES}")
    paper_f = _opt_real("paper", paper)
    if paper_f is not None and math.isinf(paper_f):
        raise InvalidArgument("paper", paper, "must be finite")
    margin_f = _opt_real("margin", margin)
    if margin_f is not None and not (math.isfinite(margin_f) and margin_f >= 0):
        raise InvalidArgument("margin", margin, "must be a finite number >= 0")
    if compare == "level" and paper_f is None:
        raise InvalidArgument("paper", paper, "a level row needs the paper's value")
    row: ClaimRow = {
        "claim": claim,
        "quantity": quantity,
        "paper": paper_f,
        "mean": est.mean,
        "low": est.low,
        "high": est.high,
        "n": est.n,
        "p_value": est.p_value,
        "p_holm": None,
        "effect_size": est.effect_size,
        "method": est.method,
        "compare": compare,
        "margin": margin_f,
        "note": note,
    }
    row["verdict"] = _row_verdict(row)
    return row


def refuted_row(
    claim: str, quantity: str, *, note: str = "", method: str = "proof certificate"
) -> ClaimRow:
    """A row for a statement the proof engine refuted with a counterexample (verdict ``refuted``).

    No statistics: ``mean``/``low``/``high``/``p_value`` are ``None`` and ``n`` is 0;
    ``note`` carries the counterexample.
    """
    if not isinstance(claim, str) or not claim:
        raise InvalidArgument("claim", claim, "must be a non-empty claim id")
    return {
        "claim": claim,
        "quantity": quantity,
        "paper": None,
        "mean": None,
        "low": None,
        "high": None,
        "n": 0,
        "p_value": None,
        "p_holm": None,
        "effect_size": None,
        "method": method,
        "compare": "proof",
        "margin": None,
        "note": note,
        "verdict": "refuted",
    }


def proof_row(
    claim: str, quantity: str, verdict: str, *, note: str = "", method: str = "proof certificate"
) -> ClaimRow:
    """A row for a proof-engine result: ``verdict`` is ``refuted``, ``proved`` or ``not decided``.

    Identity: ``proof_row(c, q, "refuted", note=n) == refuted_row(c, q, note=n)``.
    """
    if verdict not in ("refuted", "proved", "not decided"):
        raise InvalidArgument("verdict", verdict, "must be 'refuted', 'proved' or 'not decided'")
    return dict(refuted_row(claim, quantity, note=note, method=method), verdict=verdict)


def holm_adjust(rows: list[ClaimRow]) -> list[ClaimRow]:
    """Holm-corrected copies of ``rows``, one family per claim id.

    For each claim, the raw ``p_value`` of its rows that have one go through
    ``statsmodels.stats.multitest.multipletests(method="holm")``; each such row
    gets ``p_holm`` and its verdict recomputed with it.  Rows without a p-value
    (and proof rows) are returned unchanged.  Idempotent: it always starts from
    the raw ``p_value``.  Order is preserved.
    """
    from statsmodels.stats.multitest import multipletests

    out = [dict(r) for r in rows]
    families: dict[str, list[int]] = {}
    for i, r in enumerate(out):
        if r.get("p_value") is not None and r.get("compare") in COMPARES:
            families.setdefault(str(r["claim"]), []).append(i)
    for idx in families.values():
        pvals = [float(out[i]["p_value"]) for i in idx]
        adjusted = multipletests(pvals, alpha=ALPHA, method="holm")[1]
        for i, p in zip(idx, adjusted, strict=True):
            out[i]["p_holm"] = float(p)
            out[i]["verdict"] = _row_verdict(out[i])
    return out


def estimate_mean(values: Sequence[float], *, null: float = 0.0, method: str = "t") -> Estimate:
    """Mean of independent ``values`` with its 95% t-CI and the one-sample t-test against ``null``.

    Identity: ``(low, high) == mean_ci(values)[low, high]`` and ``p_value ==
    scipy.stats.ttest_1samp(values, null).pvalue``; zero spread gives ``p = 1`` when
    the mean equals ``null``, else ``p = 0`` (never NaN).  One value: no CI, no p.
    """
    from scipy import stats as _st

    vals = [float(v) for v in values]
    if len(vals) < 2:
        mean = vals[0] if vals else None
        return Estimate(mean, None, None, None, len(vals), method=method)
    ci = mean_ci(vals)
    if ci.sd == 0.0:
        p = 1.0 if ci.mean == null else 0.0
        d = None
    else:
        p = float(_st.ttest_1samp(vals, null).pvalue)
        d = (ci.mean - null) / ci.sd
    return Estimate(ci.mean, ci.low, ci.high, p, ci.n, d, method=method)


def difference_row(
    claim: str,
    quantity: str,
    paper: float | None,
    a: Sequence[float],
    b: Sequence[float],
    note: str = "",
    *,
    margin: float | None = None,
) -> ClaimRow:
    """Row for the advantage ``mean(a) - mean(b)`` of two independent arms.

    Estimate: Welch 95% CI of the difference, Welch's t-test p, Hedges' g
    (method ``"Welch"``); verdict as :func:`effect_row` with ``compare="effect"``.
    Fewer than 2 runs on a side: the mean difference alone (grid too small).
    """
    if len(a) < 2 or len(b) < 2:
        mean = (sum(a) / len(a) - sum(b) / len(b)) if len(a) and len(b) else None
        est = Estimate(mean, None, None, None, min(len(a), len(b)), method="Welch")
        return effect_row(claim, quantity, paper, est, note=note, margin=margin)
    ci = mean_diff_ci(a, b)
    est = Estimate(
        ci.mean, ci.low, ci.high, welch(a, b).p_value, ci.n, hedges_g(a, b), method="Welch"
    )
    return effect_row(claim, quantity, paper, est, note=note, margin=margin)


def level_row(
    claim: str,
    quantity: str,
    paper: float,
    a: Sequence[float],
    paper_sd: float | None = None,
    paper_n: int | None = None,
    note: str = "",
    *,
    margin: float | None = None,
) -> ClaimRow:
    """Row for a level ``mean(a)`` against the paper's value (± ``paper_sd``, ``paper_n`` runs).

    Estimate: mean with its 95% t-CI; when the paper gives an SD and n, Welch's
    test of our runs against the paper's summary statistics and Hedges' g
    between them (method ``"t CI; Welch vs paper"``); verdict as
    :func:`effect_row` with ``compare="level"``.
    """
    if len(a) < 2:
        mean = sum(a) / len(a) if len(a) else None
        est = Estimate(mean, None, None, None, len(a), method="t CI")
        return effect_row(claim, quantity, paper, est, note=note, margin=margin, compare="level")
    ci = mean_ci(a)
    p = g = None
    method = "t CI"
    if paper_sd is not None and paper_n is not None and paper_n >= 2:
        p = welch_from_stats(ci.mean, ci.sd, ci.n, paper, paper_sd, paper_n).p_value
        g = hedges_g_from_stats(ci.mean, ci.sd, ci.n, paper, paper_sd, paper_n)
        method = "t CI; Welch vs paper"
    est = Estimate(ci.mean, ci.low, ci.high, p, ci.n, g, method=method)
    return effect_row(claim, quantity, paper, est, note=note, margin=margin, compare="level")
