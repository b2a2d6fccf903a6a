"""Formatting helpers for experiment reports (Markdown tables, CIs, p-values, grouping)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .protocol import Record
from .stats import mean_ci

__all__ = ["fmt_ci", "fmt_num", "fmt_p", "group_by", "markdown_table", "values"]


def fmt_num(x: float | None, digits: int = 1) -> str:
    """``x`` with ``digits`` decimals; ``"–"`` for ``None``; ``±inf`` spelled out."""
    if x is None:
        return "–"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.{digits}f}"


def fmt_ci(vals: Sequence[float], digits: int = 1) -> str:
    """``"mean [low, high] (n)"`` with a 95% t-CI; just ``"mean (n=1)"`` for one value."""
    if not vals:
        return "–"
    ci = mean_ci(list(vals))
    if ci.n < 2:
        return f"{fmt_num(ci.mean, digits)} (n=1)"
    lo, hi = fmt_num(ci.low, digits), fmt_num(ci.high, digits)
    return f"{fmt_num(ci.mean, digits)} [{lo}, {hi}] (n={ci.n})"


def fmt_p(p: float | None) -> str:
    """A p-value: ``"<1e-4"`` below 1e-4, else 2 significant digits; ``"–"`` for ``None``."""
    if p is None:
        return "–"
    return "<1e-4" if p < 1e-4 else f"{p:.2g}"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-style Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        lines.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(lines)


def group_by(records: Iterable[Record], key: Callable[[Record], Any]) -> dict[Any, list[Record]]:
    """Records grouped by ``key(record)``, groups in sorted key order."""
    out: dict[Any, list[Record]] = {}
    for r in records:
        out.setdefault(key(r), []).append(r)
    return dict(sorted(out.items(), key=lambda kv: str(kv[0])))


def values(records: Iterable[Record], get: Callable[[Record], float | None]) -> list[float]:
    """``get(record)`` of every record where it is not ``None``, in seed order."""
    pairs = [(r["config"].get("seed", 0), get(r)) for r in records]
    return [float(v) for _, v in sorted(pairs, key=lambda p: p[0]) if v is not None]
