r"""Confidence intervals and tests for success rates (binomial proportions).

* :func:`wilson` -- Wilson score interval of ``k`` successes in ``n`` trials
  (:meth:`scipy.stats.binomtest(...).proportion_ci(method="wilson")`).
* :func:`newcombe` -- Newcombe's hybrid score interval (method 10 of Newcombe,
  *Stat. Med.* 17:873, 1998) for the difference ``p1 - p2`` of two independent
  proportions, built from the two Wilson intervals ``(l_i, u_i)``:

  .. math:: d - \sqrt{(p_1 - l_1)^2 + (u_2 - p_2)^2},\quad
            d + \sqrt{(u_1 - p_1)^2 + (p_2 - l_2)^2}.

* :func:`mcnemar` -- exact McNemar test for paired binary outcomes (the two arms
  face the same targets and the same noise draws): a two-sided binomial test of
  the discordant pairs ``b`` (only arm 1 succeeded) against ``c`` (only arm 2).

Identity: ``newcombe(k, n, k, n)`` contains 0, and ``wilson(k, n)`` contains ``k / n``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

from conserve_verified.errors import InvalidArgument, check_int

__all__ = ["Interval", "mcnemar", "newcombe", "wilson"]


@dataclass(frozen=True)
class Interval:
    """An estimate with a two-sided confidence interval."""

    estimate: float
    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


def _counts(k: int, n: int) -> None:
    check_int("n", n)
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= n:
        raise InvalidArgument("k", k, f"must be an int in [0, {n}]")


def wilson(k: int, n: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval for ``k`` successes out of ``n``."""
    _counts(k, n)
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return Interval(k / n, float(ci.low), float(ci.high))


def newcombe(k1: int, n1: int, k2: int, n2: int, confidence: float = 0.95) -> Interval:
    """Newcombe hybrid score interval for ``k1/n1 - k2/n2`` (see module docstring)."""
    a = wilson(k1, n1, confidence)
    b = wilson(k2, n2, confidence)
    d = a.estimate - b.estimate
    low = d - math.sqrt((a.estimate - a.low) ** 2 + (b.high - b.estimate) ** 2)
    high = d + math.sqrt((a.high - a.estimate) ** 2 + (b.estimate - b.low) ** 2)
    return Interval(d, low, high)


def mcnemar(first: Sequence[bool], second: Sequence[bool]) -> float:
    """Two-sided exact McNemar p-value for paired outcomes ``first[i]``, ``second[i]``."""
    if len(first) != len(second):
        raise InvalidArgument("second", len(second), f"must pair with first ({len(first)})")
    b = sum(1 for x, y in zip(first, second, strict=True) if x and not y)
    c = sum(1 for x, y in zip(first, second, strict=True) if y and not x)
    if b + c == 0:
        return 1.0
    return float(stats.binomtest(b, b + c, 0.5).pvalue)
