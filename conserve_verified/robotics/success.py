"""Success criterion of an E5 reaching trial, as a pure function of a trajectory.

A trial succeeds iff the end-effector comes within ``tolerance`` of the TRUE
target at some recorded time ``t <= time_limit`` and no self-collision of the
arm happened up to and including that time.  Otherwise the outcome says why:

* ``"self_collision"`` -- the arm touched itself before reaching the target;
* ``"timeout"`` -- the target was reached, but only after ``time_limit``;
* ``"missed"`` -- the end-effector never came within ``tolerance``.

Identity: ``judge(...).success == (judge(...).reason == "reached")``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import InvalidArgument

__all__ = ["Outcome", "Reason", "judge"]

Reason = Literal["reached", "missed", "timeout", "self_collision"]


@dataclass(frozen=True)
class Outcome:
    """Result of :func:`judge`.

    Attributes:
        success: the trial counts as a success.
        reason: ``"reached"`` on success, else why it failed.
        time: time of the first arrival within tolerance (or of the first
            self-collision for ``"self_collision"``); ``None`` if neither.
        min_distance: closest approach to the true target over the whole record (m).
    """

    success: bool
    reason: Reason
    time: float | None
    min_distance: float


def judge(
    times: np.ndarray,
    ee_positions: np.ndarray,
    self_collision: np.ndarray,
    target: np.ndarray,
    tolerance: float,
    time_limit: float,
) -> Outcome:
    """Judge one trajectory: see the module docstring for the rule.

    Args:
        times: increasing sample times, shape ``(T,)``.
        ee_positions: end-effector positions, shape ``(T, 3)``.
        self_collision: whether the arm was in self-contact at each sample, ``(T,)``.
        target: the true target position, ``(3,)``.
        tolerance: success radius (m), ``> 0``.
        time_limit: latest admissible arrival time (s), ``> 0``.
    """
    t = np.asarray(times, dtype=np.float64)
    p = np.asarray(ee_positions, dtype=np.float64)
    c = np.asarray(self_collision, dtype=bool)
    g = np.asarray(target, dtype=np.float64)
    if t.ndim != 1 or t.size == 0:
        raise InvalidArgument("times", t.shape, "must be a non-empty 1-d array")
    if p.shape != (t.size, 3):
        raise InvalidArgument("ee_positions", p.shape, f"must have shape ({t.size}, 3)")
    if c.shape != t.shape:
        raise InvalidArgument("self_collision", c.shape, f"must have shape ({t.size},)")
    if g.shape != (3,):
        raise InvalidArgument("target", g.shape, "must have shape (3,)")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(p)) and np.all(np.isfinite(g))):
        raise InvalidArgument("ee_positions", "<array>", "times, positions, target must be finite")
    if np.any(np.diff(t) <= 0):
        raise InvalidArgument("times", "<array>", "must be strictly increasing")
    for name, v in (("tolerance", tolerance), ("time_limit", time_limit)):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise InvalidArgument(name, v, "must be a finite number > 0")
        if not (math.isfinite(v) and v > 0):
            raise InvalidArgument(name, v, "must be a finite number > 0")
    dist = np.linalg.norm(p - g, axis=1)
    min_distance = float(dist.min())
    inside = np.flatnonzero(dist <= tolerance)
    hit = int(inside[0]) if inside.size else None
    collided = np.flatnonzero(c)
    first_collision = int(collided[0]) if collided.size else None
    if (
        first_collision is not None
        and t[first_collision] <= time_limit
        and (hit is None or first_collision <= hit)
    ):
        return Outcome(False, "self_collision", float(t[first_collision]), min_distance)
    if hit is None:
        return Outcome(False, "missed", None, min_distance)
    if t[hit] > time_limit:
        return Outcome(False, "timeout", float(t[hit]), min_distance)
    return Outcome(True, "reached", float(t[hit]), min_distance)
