"""Timing helpers: one ``Timer.blocked_autorange`` per candidate, median in milliseconds."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.benchmark import Timer

__all__ = ["best_of_rounds", "load_average", "set_threads", "time_ms"]


def time_ms(fn: Callable[[], Any], min_run_time: float, threads: int) -> dict[str, float]:
    """Median and interquartile range (ms) of ``fn()`` over ``blocked_autorange`` blocks.

    ``fn`` is called once before timing (warm-up: allocator, lazy init).
    """
    fn()
    m = Timer("fn()", globals={"fn": fn}, num_threads=threads).blocked_autorange(
        min_run_time=min_run_time
    )
    return {"median_ms": m.median * 1e3, "iqr_ms": m.iqr * 1e3, "runs": len(m.times)}


def load_average() -> float | None:
    """The 1-minute load average of the machine (``None`` where unavailable)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def set_threads(threads: int) -> int:
    """Set torch's intra-op threads; returns the previous count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    return previous


def best_of_rounds(
    candidates: dict[str, Callable[[], Any]], min_run_time: float, threads: int, rounds: int
) -> dict[str, dict[str, float]]:
    """Time every candidate ``rounds`` times, interleaved; keep each one's fastest round.

    Interleaving spreads slow phases of a shared machine over all candidates;
    the minimum over rounds of the per-round median is the estimate least
    inflated by other processes.
    """
    best: dict[str, dict[str, float]] = {}
    for _ in range(max(1, rounds)):
        for name, fn in candidates.items():
            t = time_ms(fn, min_run_time, threads)
            if name not in best or t["median_ms"] < best[name]["median_ms"]:
                best[name] = t
    return best
