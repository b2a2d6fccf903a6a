"""Robotics for experiment E5: a MuJoCo Franka Panda perception -> control pipeline.

* :mod:`.scene` -- the Panda (from ``gymnasium-robotics``), a table, a target marker;
* :mod:`.camera` -- a ray-cast depth camera (``mj_multiRay``, no GL);
* :mod:`.perception` -- depth encoder and goal head as the stages of a
  :class:`~conserve_verified.Pipeline` / :class:`~conserve_verified.Conserved`;
* :mod:`.controller` -- damped-least-squares reaching controller;
* :mod:`.success` -- the success criterion as a pure function of a trajectory;
* :mod:`.trial` -- one trial in MuJoCo, many in parallel processes;
* :mod:`.picture` -- matplotlib picture of a trial.

Requires the optional dependency ``gymnasium-robotics`` (``pip install
'conserve_verified[robotics]'``); :func:`.scene.franka_asset_dir` raises a clear
:class:`~conserve_verified.errors.InvalidArgument` when it is missing.
"""

from __future__ import annotations

from .camera import DepthCamera, overhead_camera
from .controller import DLSController
from .perception import (
    DepthEncoder,
    GoalHead,
    build_pipeline,
    estimate_goals,
    normalized_control,
    render_dataset,
    train_pipeline,
)
from .picture import plot_trials
from .scene import (
    HOME_QPOS,
    PandaScene,
    franka_asset_dir,
    load_scene,
    place_target,
    sample_targets,
)
from .success import Outcome, judge
from .trial import TrialResult, TrialSpec, in_self_contact, run_trial, run_trials

__all__ = [
    "HOME_QPOS",
    "DLSController",
    "DepthCamera",
    "DepthEncoder",
    "GoalHead",
    "Outcome",
    "PandaScene",
    "TrialResult",
    "TrialSpec",
    "build_pipeline",
    "estimate_goals",
    "franka_asset_dir",
    "in_self_contact",
    "judge",
    "load_scene",
    "normalized_control",
    "overhead_camera",
    "place_target",
    "plot_trials",
    "render_dataset",
    "run_trial",
    "run_trials",
    "sample_targets",
    "train_pipeline",
]
