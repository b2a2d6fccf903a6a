"""Claim rows: the paper's number next to ours, with a CI, a test, an effect size and a verdict.

Two kinds of row:

* :func:`difference_row` -- an *advantage* ``mean(a) - mean(b)`` (e.g. conserved
  minus baseline retention, in percentage points).  Ours: Welch 95% CI of the
  difference, Welch's t-test p-value of ``a`` vs ``b``, Hedges' g.
  Verdict: **reproduced** when the paper's value lies in our 95% CI;
  **partly** when it does not but our difference is significant (p < 0.05) with
  the paper's sign (the direction reproduces, not the size); **not
  reproduced** otherwise.
* :func:`level_row` -- a *level* (e.g. retention of one arm).  Ours: mean with
  95% t-CI; when the paper gives an SD and n, Welch's test of our runs against
  the paper's summary statistics and Hedges' g between them.
  Verdict: **reproduced** when the paper's value lies in our 95% CI, else
  **not reproduced**.

With fewer than two runs on a side no CI or test exists and the verdict is
**insufficient runs**.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .stats import hedges_g, hedges_g_from_stats, mean_ci, mean_diff_ci, welch, welch_from_stats

__all__ = ["VERDICTS", "difference_row", "level_row"]

#: Possible verdicts.
VERDICTS = ("reproduced", "partly", "not reproduced", "insufficient runs")

ClaimRow = dict[str, Any]


def _row(claim: str, quantity: str, paper: float, **kw: Any) -> ClaimRow:
    base: ClaimRow = {
        "claim": claim,
        "quantity": quantity,
        "paper": paper,
        "mean": None,
        "low": None,
        "high": None,
        "n": 0,
        "p_value": None,
        "effect_size": None,
        "verdict": "insufficient runs",
        "note": "",
    }
    base.update(kw)
    return base


def difference_row(
    claim: str, quantity: str, paper: float, a: Sequence[float], b: Sequence[float], note: str = ""
) -> ClaimRow:
    """Row for the advantage ``mean(a) - mean(b)`` against the paper's value (see module doc)."""
    if len(a) < 2 or len(b) < 2:
        mean = (sum(a) / len(a) - sum(b) / len(b)) if a and b else None
        return _row(claim, quantity, paper, mean=mean, n=min(len(a), len(b)), note=note)
    ci = mean_diff_ci(a, b)
    p = welch(a, b).p_value
    if ci.low <= paper <= ci.high:
        verdict = "reproduced"
    elif p < 0.05 and ci.mean != 0 and math.copysign(1, ci.mean) == math.copysign(1, paper):
        verdict = "partly"
    else:
        verdict = "not reproduced"
    return _row(
        claim,
        quantity,
        paper,
        mean=ci.mean,
        low=ci.low,
        high=ci.high,
        n=ci.n,
        p_value=p,
        effect_size=hedges_g(a, b),
        verdict=verdict,
        note=note,
    )


def level_row(
    claim: str,
    quantity: str,
    paper: float,
    a: Sequence[float],
    paper_sd: float | None = None,
    paper_n: int | None = None,
    note: str = "",
) -> ClaimRow:
    """Row for a level ``mean(a)`` against the paper's value (± ``paper_sd``, ``paper_n`` runs)."""
    if len(a) < 2:
        mean = sum(a) / len(a) if a else None
        return _row(claim, quantity, paper, mean=mean, n=len(a), note=note)
    ci = mean_ci(a)
    p = g = None
    if paper_sd is not None and paper_n is not None and paper_n >= 2:
        p = welch_from_stats(ci.mean, ci.sd, ci.n, paper, paper_sd, paper_n).p_value
        g = hedges_g_from_stats(ci.mean, ci.sd, ci.n, paper, paper_sd, paper_n)
    verdict = "reproduced" if ci.low <= paper <= ci.high else "not reproduced"
    return _row(
        claim,
        quantity,
        paper,
        mean=ci.mean,
        low=ci.low,
        high=ci.high,
        n=ci.n,
        p_value=p,
        effect_size=g,
        verdict=verdict,
        note=note,
    )
