"""One E5 reaching trial in MuJoCo, and many trials in parallel processes.

A trial starts the Panda at :data:`~.scene.HOME_QPOS` with the target marker at
its TRUE position, drives the end-effector towards the *estimated* goal with
:class:`~.controller.DLSController`, records the end-effector every control
tick, flags self-contacts of the arm, and is judged against the TRUE target by
:func:`~.success.judge`.  The simulation runs until the first arrival within
tolerance, or until ``time_limit * overrun`` (so late arrivals are seen as
``"timeout"`` rather than ``"missed"``).

Trials are independent and deterministic: a trial's result depends only on its
:class:`TrialSpec`, not on the process that ran it or on the order.
"""

from __future__ import annotations

import concurrent.futures
import math
import multiprocessing
from dataclasses import asdict, dataclass, field
from typing import Any

import mujoco
import numpy as np

from ..errors import InvalidArgument, check_int
from .controller import DLSController
from .scene import PandaScene, load_scene, place_target
from .success import judge

__all__ = ["TrialResult", "TrialSpec", "in_self_contact", "run_trial", "run_trials"]


@dataclass(frozen=True)
class TrialSpec:
    """Everything one trial depends on.

    Attributes:
        target: TRUE target centre (3,), where the marker is and what success is judged on.
        goal: the goal the controller is given (the perception estimate), (3,).
        tolerance: success radius (m).
        time_limit: admissible time to arrive (s).
        overrun: the simulation runs up to ``time_limit * overrun`` at most.
        control_period: physics steps per control tick (and per recorded sample).
        controller: the reaching controller.
        keep_trajectory: return the recorded trajectory (for pictures).
        settle_distance: rest threshold (m) over ``settle_ticks`` ticks (see module docstring).
        settle_ticks: length of the rest window in control ticks.
    """

    target: tuple[float, float, float]
    goal: tuple[float, float, float]
    tolerance: float = 0.03
    time_limit: float = 3.0
    overrun: float = 1.25
    control_period: int = 10
    controller: DLSController = field(default_factory=DLSController)
    keep_trajectory: bool = False
    settle_distance: float = 1e-3
    settle_ticks: int = 10

    def __post_init__(self) -> None:
        for name in ("target", "goal"):
            v = np.asarray(getattr(self, name), dtype=np.float64)
            if v.shape != (3,) or not np.all(np.isfinite(v)):
                raise InvalidArgument(name, getattr(self, name), "must be 3 finite numbers")
        for name in ("tolerance", "time_limit"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise InvalidArgument(name, v, "must be a finite number > 0")
        if not (isinstance(self.overrun, (int, float)) and self.overrun >= 1):
            raise InvalidArgument("overrun", self.overrun, "must be a number >= 1")
        check_int("control_period", self.control_period)


@dataclass(frozen=True)
class TrialResult:
    """Outcome of one trial (JSON-serialisable through :meth:`to_dict`)."""

    success: bool
    reason: str
    time: float | None
    min_distance: float
    final_distance: float
    goal_error: float
    trajectory: list[list[float]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def in_self_contact(scene: PandaScene, data: mujoco.MjData) -> bool:
    """Whether any active contact joins two bodies of the arm."""
    if data.ncon == 0:
        return False
    geoms = data.contact.geom[: data.ncon]
    bodies = scene.model.geom_bodyid[geoms]
    robot = scene.robot_bodies
    return any(int(a) in robot and int(b) in robot for a, b in bodies)


def run_trial(spec: TrialSpec, scene: PandaScene | None = None) -> TrialResult:
    """Simulate one trial (see module docstring) and judge it."""
    scene = load_scene() if scene is None else scene
    model = scene.model
    data = mujoco.MjData(model)
    data.qpos[:] = scene.new_data().qpos
    data.ctrl[:] = data.qpos
    target = np.asarray(spec.target, dtype=np.float64)
    goal = np.asarray(spec.goal, dtype=np.float64)
    place_target(scene, data, target)
    mujoco.mj_forward(model, data)
    jac = np.zeros((3, model.nv))
    dt = model.opt.timestep * spec.control_period
    ticks = math.ceil(spec.time_limit * spec.overrun / dt)
    times = [0.0]
    positions = [data.site_xpos[scene.ee_site].copy()]
    contacts = [in_self_contact(scene, data)]
    for k in range(1, ticks + 1):
        spec.controller.command(scene, data, goal, jac)
        touched = False
        for _ in range(spec.control_period):
            mujoco.mj_step(model, data)
            touched = touched or in_self_contact(scene, data)
        times.append(k * dt)
        positions.append(data.site_xpos[scene.ee_site].copy())
        contacts.append(touched)
        if touched or np.linalg.norm(positions[-1] - target) <= spec.tolerance:
            break
        if k >= spec.settle_ticks:
            window = np.asarray(positions[-spec.settle_ticks - 1 :])
            if np.linalg.norm(window - window[-1], axis=1).max() < spec.settle_distance:
                break
    pos = np.asarray(positions)
    outcome = judge(
        np.asarray(times), pos, np.asarray(contacts), target, spec.tolerance, spec.time_limit
    )
    return TrialResult(
        success=outcome.success,
        reason=outcome.reason,
        time=outcome.time,
        min_distance=outcome.min_distance,
        final_distance=float(np.linalg.norm(pos[-1] - target)),
        goal_error=float(np.linalg.norm(goal - target)),
        trajectory=pos.round(5).tolist() if spec.keep_trajectory else None,
    )


def _worker_init() -> None:
    load_scene()  # compile once per worker process


def run_trials(specs: list[TrialSpec], workers: int = 2) -> list[TrialResult]:
    """Run ``specs`` (in order) with ``workers`` processes; ``workers=1`` runs inline.

    Results are in the order of ``specs`` and identical for every ``workers``.
    """
    check_int("workers", workers)
    if workers == 1 or len(specs) <= 1:
        scene = load_scene()
        return [run_trial(s, scene) for s in specs]
    # fork shares the compiled scene and costs milliseconds; workers use MuJoCo
    # and NumPy only (no torch), so forking a process that imported torch is safe.
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=_worker_init
    ) as pool:
        chunk = max(1, len(specs) // (4 * workers))
        return list(pool.map(run_trial, specs, chunksize=chunk))
